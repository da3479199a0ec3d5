"""
POP3 through the gateway (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH, 3206
response codes): greeting and CAPA on both listeners, STLS rules, USER/PASS
and AUTH PLAIN, the codes of refused logins ([AUTH] for the device's fault,
[SYS/TEMP] for an upstream one), and after login the provider's session
relayed byte for byte. Real clients: poplib, curl and fetchmail.
"""

import os
import poplib
import re
import secrets
import ssl
import subprocess

import pytest

from harness import ALICE, ALICE_GW_PASSWORD, make_message, plain_ir

AUTH_ERR = re.compile(rb"^-ERR \[AUTH\] (\S[^\r\n]*)?\r\n$")
SYS_TEMP = re.compile(rb"^-ERR \[SYS/TEMP\] (\S[^\r\n]*)\r\n$")


def sasl_mechs(capa):
    """The mechanisms of the SASL line of a CAPA reply (None: no such line)."""
    for line in capa:
        words = line.split()
        if words and words[0] == "SASL":
            return set(words[1:])
    return None


def keywords(capa):
    return set(line.split()[0] for line in capa if line.split())


def pop3_message(tag, seed=0):
    """A message whose body has lines that need POP3 dot-stuffing."""
    return make_message("pop3 %s" % tag, ["First line.", ".a line with a leading dot",
                                          "..two dots", ".", "last line"], seed=seed)


def msgid_of(msg):
    return re.search(rb"^Message-ID: (<[^>]+>)", msg, re.M).group(1).decode()


def assert_sys_temp(status, user):
    mo = SYS_TEMP.match(status)
    assert mo, "expected -ERR [SYS/TEMP] <reason>, got %r" % (status,)
    reason = mo.group(1)
    assert len(reason) <= 200, reason
    assert user.app_password.encode() not in reason and user.password.encode() not in reason
    return reason


# -- greeting and CAPA --------------------------------------------------------


def test_greeting_and_capa_implicit_tls(gateway):
    c = gateway.raw_pop3("implicit")
    try:
        assert c.greeting.startswith(b"+OK"), c.greeting
        capa = c.capa()
        assert "USER" in keywords(capa), capa
        assert "PLAIN" in (sasl_mechs(capa) or ()), capa
        assert "STLS" not in keywords(capa), capa
        assert c.command("QUIT").startswith(b"+OK"), c.dump()
    finally:
        c.close()


def test_capa_before_and_after_stls(gateway):
    c = gateway.raw_pop3("plain")
    try:
        assert c.greeting.startswith(b"+OK"), c.greeting
        capa = c.capa()
        assert "STLS" in keywords(capa), capa
        assert "USER" not in keywords(capa), capa
        assert sasl_mechs(capa) is None, capa
        c.stls()
        capa = c.capa()
        assert "USER" in keywords(capa), capa
        assert "PLAIN" in (sasl_mechs(capa) or ()), capa
        assert "STLS" not in keywords(capa), capa
        assert c.login(ALICE, ALICE_GW_PASSWORD).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK "), c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("command", [
    "USER %s" % ALICE,
    "PASS %s" % ALICE_GW_PASSWORD,
    "AUTH PLAIN %s" % plain_ir(ALICE, ALICE_GW_PASSWORD),
    "AUTH PLAIN",
])
def test_login_refused_before_stls(gateway, command):
    c = gateway.raw_pop3("plain")
    try:
        status = c.command(command)
        assert AUTH_ERR.match(status), c.dump()
        # Still not logged in, and STLS still possible.
        assert c.command("STAT").startswith(b"-ERR"), c.dump()
        c.stls()
        assert c.login(ALICE, ALICE_GW_PASSWORD).startswith(b"+OK"), c.dump()
    finally:
        c.close()


def test_poplib_refuses_plaintext_user(gateway):
    p = gateway.pop3_plain()
    try:
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.user(ALICE)
    finally:
        p.quit()


def test_quit_before_login(gateway):
    for tls in ("implicit", "plain"):
        c = gateway.raw_pop3(tls)
        try:
            assert c.command("QUIT").startswith(b"+OK"), c.dump()
            # The gateway closes the connection after QUIT.
            with pytest.raises((EOFError, OSError)):
                c.readline()
        finally:
            c.close()


def test_stls_twice_or_on_implicit_listener_refused(gateway):
    for tls in ("implicit", "starttls"):
        c = gateway.raw_pop3(tls)
        try:
            assert c.command("STLS").startswith(b"-ERR"), c.dump()
            assert c.login(ALICE, ALICE_GW_PASSWORD).startswith(b"+OK"), c.dump()
        finally:
            c.close()


# -- STLS and pipelining ------------------------------------------------------


def test_pipelined_after_stls_not_executed(gateway):
    c = gateway.raw_pop3("plain")
    try:
        c.send(b"STLS\r\nUSER %s\r\nPASS %s\r\n" % (ALICE.encode(), ALICE_GW_PASSWORD.encode()))
        line = c.readline_unbuffered()
        assert line.startswith(b"+OK"), c.dump()
        try:
            c.tls_handshake()
        except (ssl.SSLError, OSError) as e:
            pytest.fail("TLS handshake after STLS failed (%s): did the gateway answer the "
                        "pipelined commands in plaintext?\n%s" % (e, c.dump()))
        # Had USER and PASS been executed after the handshake, their +OK
        # replies would come first; STAT before login is an error.
        status = c.command("STAT")
        assert status.startswith(b"-ERR"), "pipelined commands were executed:\n%s" % c.dump()
        assert "USER" in keywords(c.capa()), c.dump()
        assert c.login(ALICE, ALICE_GW_PASSWORD).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK "), c.dump()
    finally:
        c.close()


def test_pipelined_login_and_commands(gateway):
    # Commands the device sends right behind PASS (or AUTH) in one write
    # reach the provider once the upstream login is done, in order.
    for login in (b"USER %s\r\nPASS %s\r\n" % (ALICE.encode(), ALICE_GW_PASSWORD.encode()),
                  b"AUTH PLAIN %s\r\n" % plain_ir(ALICE, ALICE_GW_PASSWORD).encode()):
        c = gateway.raw_pop3("implicit")
        try:
            c.send(login + b"STAT\r\nNOOP\r\nQUIT\r\n")
            if login.startswith(b"USER"):
                assert c.readline().startswith(b"+OK"), c.dump()
            assert c.readline().startswith(b"+OK"), c.dump()
            assert re.match(rb"\+OK \d+ \d+\r\n", c.readline()), c.dump()
            assert c.readline().startswith(b"+OK"), c.dump()
            assert c.readline().startswith(b"+OK"), c.dump()
        finally:
            c.close()


# -- logins -------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_poplib_user_pass(gateway, dovecot, make_user, tls):
    u = make_user()
    msg = pop3_message(secrets.token_hex(4))
    dovecot.append(u.login, "INBOX", msg)
    p = gateway.pop3_ssl() if tls == "implicit" else gateway.pop3_stls()
    try:
        assert p.user(u.name).startswith(b"+OK")
        assert p.pass_(u.password).startswith(b"+OK")
        count, size = p.stat()
        assert (count, size) == (1, len(msg))
        resp, lines, octets = p.retr(1)
        assert resp.startswith(b"+OK")
        assert b"\r\n".join(lines) + b"\r\n" == msg
    finally:
        p.quit()


def test_upstream_stls_provider(gateway, dovecot, make_user):
    # testprov-starttls: the gateway reaches Dovecot's plain POP3 port and
    # must STLS there before logging in (Dovecot refuses plaintext logins
    # from 127.0.0.1 to 127.0.0.2).
    u = make_user(provider="testprov-starttls")
    msg = pop3_message(secrets.token_hex(4))
    dovecot.append(u.login, "INBOX", msg)
    off = dovecot.log_offset()
    p = gateway.pop3_ssl()
    try:
        p.user(u.name)
        p.pass_(u.password)
        assert p.stat() == (1, len(msg))
        assert b"\r\n".join(p.retr(1)[1]) + b"\r\n" == msg
    finally:
        p.quit()
    dovecot.wait_log(r"pop3-login: Info: Login: user=<%s>[^\n]*rip=127\.0\.0\.1[^\n]*, TLS"
                     % re.escape(u.login), off)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_auth_plain_initial_response(gateway, tls):
    c = gateway.raw_pop3(tls)
    try:
        status = c.command("AUTH PLAIN " + plain_ir(ALICE, ALICE_GW_PASSWORD))
        assert status.startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK "), c.dump()
        assert c.command("QUIT").startswith(b"+OK"), c.dump()
    finally:
        c.close()


def test_auth_plain_continuation(gateway):
    c = gateway.raw_pop3("implicit")
    try:
        assert c.command("AUTH PLAIN") == b"+ \r\n", c.dump()
        status = c.command(plain_ir(ALICE, ALICE_GW_PASSWORD))
        assert status.startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK "), c.dump()
    finally:
        c.close()


def test_auth_plain_cancelled(gateway):
    c = gateway.raw_pop3("implicit")
    try:
        assert c.command("AUTH PLAIN") == b"+ \r\n", c.dump()
        assert c.command("*").startswith(b"-ERR"), c.dump()
        assert c.command("STAT").startswith(b"-ERR"), c.dump()
        assert c.login(ALICE, ALICE_GW_PASSWORD).startswith(b"+OK"), c.dump()
    finally:
        c.close()


def test_auth_plain_bad_base64(gateway):
    c = gateway.raw_pop3("implicit")
    try:
        assert c.command("AUTH PLAIN") == b"+ \r\n", c.dump()
        assert c.command("not*base64!").startswith(b"-ERR"), c.dump()
        # Back to commands: the next line is not taken as a SASL response.
        assert c.command("STAT").startswith(b"-ERR"), c.dump()
        assert c.login(ALICE, ALICE_GW_PASSWORD).startswith(b"+OK"), c.dump()
    finally:
        c.close()


def test_auth_plain_poplib_raw(gateway):
    # poplib has no AUTH of its own: its _shortcmd over implicit TLS.
    p = gateway.pop3_ssl()
    try:
        resp = p._shortcmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_GW_PASSWORD))
        assert resp.startswith(b"+OK")
        count, _ = p.stat()
        assert count >= 0
    finally:
        p.quit()


@pytest.mark.parametrize("how", ["user", "auth"])
def test_wrong_password_and_unknown_user(gateway, how):
    for user, password in ((ALICE, "not-" + ALICE_GW_PASSWORD), ("nosuchuser", "whatever")):
        c = gateway.raw_pop3("implicit")
        try:
            if how == "user":
                status = c.login(user, password)
            else:
                status = c.command("AUTH PLAIN " + plain_ir(user, password))
            assert AUTH_ERR.match(status), c.dump()
            assert c.command("STAT").startswith(b"-ERR"), c.dump()
        finally:
            c.close()


# -- upstream faults: [SYS/TEMP], never [AUTH] ---------------------------------


def login_status(gateway, u, how, tls="implicit"):
    c = gateway.raw_pop3(tls)
    try:
        if how == "user":
            return c.login(u.name, u.password)
        return c.command("AUTH PLAIN " + plain_ir(u.name, u.password))
    finally:
        c.close()


@pytest.mark.parametrize("how", ["user", "auth"])
def test_user_without_account(gateway, make_user, how):
    u = make_user(upstream=False, with_account=False)
    assert_sys_temp(login_status(gateway, u, how), u)


@pytest.mark.parametrize("how", ["user", "auth"])
def test_provider_down(gateway, make_user, how):
    u = make_user(provider="down", upstream=False)
    assert_sys_temp(login_status(gateway, u, how), u)


def test_provider_certificate_not_trusted(gateway, dovecot, make_user):
    u = make_user(provider="untrusted")
    off = dovecot.log_offset()
    assert_sys_temp(login_status(gateway, u, "user"), u)
    dovecot.log_barrier()
    log = dovecot.log_since(off)
    assert u.login not in log, "the provider saw a login attempt for %s:\n%s" % (u.login, log)


def test_stale_app_password(gateway, dovecot, make_user):
    u = make_user()
    assert login_status(gateway, u, "user").startswith(b"+OK")
    dovecot.set_password(u.login, "rotated-" + u.app_password)
    off = dovecot.log_offset()
    status = login_status(gateway, u, "auth", tls="starttls")
    assert b"[AUTH]" not in status, status
    assert_sys_temp(status, u)
    dovecot.wait_log(r"passwd-file\(%s,127\.0\.0\.1,[^\n]*Password mismatch" % re.escape(u.login),
                     off)


def test_session_usable_after_sys_temp(gateway, make_user):
    u = make_user(provider="down", upstream=False)
    c = gateway.raw_pop3("implicit")
    try:
        assert_sys_temp(c.login(u.name, u.password), u)
        assert c.command("STAT").startswith(b"-ERR"), c.dump()
        assert c.command("QUIT").startswith(b"+OK"), c.dump()
    finally:
        c.close()


# -- after login: the provider's session, relayed -----------------------------


def test_commands_relayed(gateway, dovecot, make_user):
    u = make_user()
    msgs = [pop3_message("relay%d" % i, seed=i) for i in range(3)]
    for m in msgs:
        dovecot.append(u.login, "INBOX", m)
    # What the provider answers, asked directly ...
    d = dovecot.pop3(u.login)
    try:
        want = {"stat": d.stat(), "list": d.list()[1], "uidl": d.uidl()[1],
                "top": d.top(2, 1)[1]}
    finally:
        d.quit()
    # ... is what the device sees through the gateway.
    c = gateway.raw_pop3("implicit")
    try:
        assert c.login(u.name, u.password).startswith(b"+OK"), c.dump()
        stat = c.command("STAT")
        assert stat == b"+OK %d %d\r\n" % want["stat"], c.dump()
        assert c.command("LIST").startswith(b"+OK"), c.dump()
        assert c.multiline() == [l + b"\r\n" for l in want["list"]]
        assert c.command("UIDL").startswith(b"+OK"), c.dump()
        assert c.multiline() == [l + b"\r\n" for l in want["uidl"]]
        assert c.command("TOP 2 1").startswith(b"+OK"), c.dump()
        assert c.multiline() == [l + b"\r\n" for l in want["top"]]
        for i, m in enumerate(msgs, 1):
            assert c.command("RETR %d" % i).startswith(b"+OK"), c.dump()
            assert b"".join(c.multiline()) == m
        assert c.command("DELE 2").startswith(b"+OK"), c.dump()
        assert c.command("RETR 2").startswith(b"-ERR"), c.dump()
        assert c.command("NOOP").startswith(b"+OK"), c.dump()
        assert c.command("QUIT").startswith(b"+OK"), c.dump()
    finally:
        c.close()
    # QUIT went to the provider: the deletion is committed.
    d = dovecot.pop3(u.login)
    try:
        assert d.stat() == (2, len(msgs[0]) + len(msgs[2]))
    finally:
        d.quit()


# -- real clients: curl and fetchmail ------------------------------------------


def curl(gateway, u, url, *extra):
    argv = ["curl", "--silent", "--show-error", "--max-time", "20", "--cacert",
            gateway.ca.ca_cert, "-u", "%s:%s" % (u.name, u.password)] + list(extra) + [url]
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


@pytest.mark.parametrize("scheme", ["pop3s", "pop3+stls"])
def test_curl_list_and_retrieve(gateway, dovecot, make_user, scheme):
    u = make_user()
    msgs = [pop3_message("curl%d" % i, seed=i) for i in range(2)]
    for m in msgs:
        dovecot.append(u.login, "INBOX", m)
    if scheme == "pop3s":
        base, extra = "pop3s://%s:%d" % (gateway.addr, gateway.pop3s_port), []
    else:
        base, extra = "pop3://%s:%d" % (gateway.addr, gateway.pop3_port), ["--ssl-reqd"]
    p = curl(gateway, u, base + "/", *extra)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"1 %d\r\n2 %d\r\n" % (len(msgs[0]), len(msgs[1])), p.stdout
    p = curl(gateway, u, base + "/2", *extra)
    assert p.returncode == 0, p.stderr
    assert p.stdout == msgs[1]


def test_curl_wrong_password(gateway, make_user):
    u = make_user()
    u.password = "not-" + u.password
    p = curl(gateway, u, "pop3s://%s:%d/" % (gateway.addr, gateway.pop3s_port))
    # CURLE_LOGIN_DENIED
    assert p.returncode == 67, (p.returncode, p.stderr)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_fetchmail(gateway, dovecot, make_user, workdir, tls):
    u = make_user()
    msgs = [pop3_message("fetchmail%d" % i, seed=i) for i in range(2)]
    for m in msgs:
        dovecot.append(u.login, "INBOX", m)
    home = os.path.join(workdir, "fetchmail-%s" % u.name)
    os.makedirs(home, mode=0o700)
    out = os.path.join(home, "delivered")
    rc = os.path.join(home, "fetchmailrc")
    # fetchmail checks host names but not IP addresses in certificates:
    # sslcommonname names the one the gateway's certificate carries. With
    # "ssl", TLS from the first byte; without it, sslproto makes STLS
    # mandatory.
    port = gateway.pop3s_port if tls == "implicit" else gateway.pop3_port
    with open(rc, "w") as f:
        f.write('set no syslog\n'
                'poll %s proto POP3 port %d timeout 15\n'
                '  user "%s" there with password "%s" is "root" here\n'
                '  %s sslcertck sslcertfile "%s" sslproto "TLS1.2+" sslcommonname "localhost"\n'
                '  keep fetchall\n'
                '  mda "/bin/sh -c \'cat >> %s; echo =====END===== >> %s\'"\n'
                % (gateway.addr, port, u.name, u.password, "ssl" if tls == "implicit" else "",
                   gateway.ca.ca_cert, out, out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
    p = subprocess.run(["fetchmail", "-f", rc, "-v", "--nodetach", "--invisible"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    transcript = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, transcript
    assert u.password not in transcript
    if tls == "starttls":
        assert "POP3> STLS" in transcript, transcript
    # fetchmail hands the MDA each message with LF line ends.
    with open(out, "rb") as f:
        got = f.read().split(b"=====END=====\n")[:-1]
    assert got == [m.replace(b"\r\n", b"\n") for m in msgs]
    # "keep": still there upstream.
    d = dovecot.pop3(u.login)
    try:
        assert d.stat()[0] == 2
    finally:
        d.quit()
