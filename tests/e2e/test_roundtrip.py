"""
Mail sent through the gateway's SMTP submission by real clients (smtplib,
swaks, msmtp, curl; implicit TLS and STARTTLS) reaches the provider's
mailbox, and the same message read back through the gateway over IMAP and
POP3 is byte for byte what the provider stores. Also: a 20 MB attachment,
an 8-bit body (8BITMIME) and a UTF-8 recipient (SMTPUTF8) end to end.
"""

import os
import secrets
import subprocess

import pytest

from harness import UTF8_ADDR, UTF8_APP_PASSWORD, UTF8_LOGIN, logout, make_message


def fresh_message(tag, login, body_lines=None):
    t = "%s-%s" % (tag, secrets.token_hex(4))
    msg = make_message(t, body_lines=body_lines).replace(
        b"From: Sender <sender@example.test>", b"From: <%s>" % login.encode()).replace(
        b"To: Alice <alice@example.test>", b"To: <%s>" % login.encode())
    return msg, "<%s.0@example.test>" % t.replace("-", "")


def header_block(msg):
    return msg.split(b"\r\n\r\n", 1)[0]


def assert_same_message(stored, sent):
    """
    stored is what the provider serves: the message exactly as sent, under
    the trace headers Postfix and the delivery agent add on top.
    """
    assert stored.endswith(sent), stored[:800]
    added = stored[:-len(sent)]
    assert b"\r\n\r\n" not in added and b"by provider.test (Postfix)" in added, added


def imap_through_gateway(gateway, name, password, msgid):
    m = gateway.imap_ssl()
    try:
        m.login(name, password)
        typ, _ = m.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = m.uid("SEARCH", "HEADER", "Message-ID", msgid)
        assert typ == "OK" and data[0].split(), (typ, data)
        uid = data[0].split()[-1].decode()
        typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
        assert typ == "OK", (typ, data)
        return [item[1] for item in data if isinstance(item, tuple)][0]
    finally:
        logout(m)


def pop3_through_gateway(gateway, name, password, msgid):
    """RETR of the newest message, which must be the one with msgid."""
    p = gateway.pop3_ssl()
    try:
        p.user(name)
        p.pass_(password)
        count, _ = p.stat()
        assert count >= 1
        _, lines, _ = p.retr(count)
        msg = b"\r\n".join(lines) + b"\r\n"
        assert msgid.encode() in header_block(msg), header_block(msg)
        return msg
    finally:
        p.quit()


def read_back(gateway, dovecot, u, msgid, deadline=10.0):
    """The message as the provider stores it, checked identical through the
    gateway over IMAP and POP3."""
    _, stored = dovecot.wait_message(u.login, msgid, deadline=deadline)
    assert imap_through_gateway(gateway, u.name, u.password, msgid) == stored
    assert pop3_through_gateway(gateway, u.name, u.password, msgid) == stored
    return stored


# -- the clients ------------------------------------------------------------------


def run_client(argv, input=None, env=None):
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60, env=env)
    transcript = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, "%s exited %d:\n%s" % (argv[0], p.returncode, transcript)
    return transcript


def send_smtplib(gateway, u, msg, tls, mech, workdir):
    s = gateway.smtp_ssl() if tls == "implicit" else gateway.smtp_starttls()
    try:
        s.ehlo("device.test")
        s.user, s.password = u.name, u.password
        s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=True)
        assert s.sendmail(u.login, [u.login], msg) == {}
    finally:
        s.quit()
    return ""


def send_swaks(gateway, u, msg, tls, mech, workdir):
    port = gateway.smtps_port if tls == "implicit" else gateway.smtp_port
    return run_client(["swaks", "--server", "%s:%d" % (gateway.addr, port),
                       "--tlsc" if tls == "implicit" else "--tls",
                       "--tls-verify", "--tls-ca-path", gateway.ca.ca_cert,
                       "--auth", mech, "--auth-user", u.name, "--auth-password", u.password,
                       "--ehlo", "device.test", "--from", u.login, "--to", u.login,
                       "--data", "-", "--timeout", "20"],
                      # swaks ends DATA with CRLF "." CRLF after what it read:
                      # the message's own last CRLF would become an empty line.
                      input=msg[:-2] if msg.endswith(b"\r\n") else msg)


def send_msmtp(gateway, u, msg, tls, mech, workdir):
    conf = os.path.join(workdir, "msmtprc-%s-%s" % (u.name, tls))
    port = gateway.smtps_port if tls == "implicit" else gateway.smtp_port
    with open(conf, "w") as f:
        f.write("account device\n"
                "host %s\nport %d\ntimeout 20\n"
                "tls on\ntls_starttls %s\ntls_trust_file %s\n"
                "auth %s\nuser %s\npassword %s\nfrom %s\n"
                "account default : device\n"
                % (gateway.addr, port, "off" if tls == "implicit" else "on", gateway.ca.ca_cert,
                   mech.lower(), u.name, u.password, u.login))
    os.chmod(conf, 0o600)
    return run_client(["msmtp", "-C", conf, "--debug", "--", u.login], input=msg)


def send_curl(gateway, u, msg, tls, mech, workdir):
    path = os.path.join(workdir, "curl-msg-%s-%s.eml" % (u.name, tls))
    with open(path, "wb") as f:
        f.write(msg)
    if tls == "implicit":
        url, extra = "smtps://%s:%d" % (gateway.addr, gateway.smtps_port), []
    else:
        url, extra = "smtp://%s:%d" % (gateway.addr, gateway.smtp_port), ["--ssl-reqd"]
    return run_client(["curl", "--silent", "--show-error", "--verbose", "--max-time", "20",
                       "--cacert", gateway.ca.ca_cert, "-u", "%s:%s" % (u.name, u.password),
                       "--login-options", "AUTH=" + mech, "--mail-from", u.login,
                       "--mail-rcpt", u.login, "-T", path, url + "/device.test"] + extra)


SENDERS = {"smtplib": send_smtplib, "swaks": send_swaks, "msmtp": send_msmtp, "curl": send_curl}


@pytest.mark.parametrize("client,tls,mech", [
    ("smtplib", "implicit", "PLAIN"),
    ("smtplib", "starttls", "LOGIN"),
    ("swaks", "implicit", "LOGIN"),
    ("swaks", "starttls", "PLAIN"),
    ("msmtp", "implicit", "PLAIN"),
    ("msmtp", "starttls", "LOGIN"),
    ("curl", "implicit", "PLAIN"),
    ("curl", "starttls", "LOGIN"),
])
def test_client_sends_and_reads_back(gateway, dovecot, make_user, workdir, client, tls, mech):
    u = make_user()
    msg, msgid = fresh_message("%s-%s" % (client, tls), u.login,
                               ["Sent by %s over %s with AUTH %s." % (client, tls, mech),
                                ".a line starting with a dot", "", "end"])
    transcript = SENDERS[client](gateway, u, msg, tls, mech, workdir)
    assert u.app_password not in transcript
    stored = read_back(gateway, dovecot, u, msgid)
    assert_same_message(stored, msg)


# -- size, 8-bit, UTF-8 --------------------------------------------------------------


def test_20mb_attachment(gateway, dovecot, make_user):
    u = make_user()
    tag = secrets.token_hex(4)
    # 20 MiB of random bytes, base64-encoded: about 27 MB on the wire.
    msg = make_message("big %s" % tag, size=20 * 1024 * 1024 * 4 // 3, seed=7)
    msg = msg.replace(b"From: Sender <sender@example.test>", b"From: <%s>" % u.login.encode())
    msgid = "<big%s.7@example.test>" % tag
    s = gateway.smtp_ssl()
    try:
        s.login(u.name, u.password)
        assert s.sendmail(u.login, [u.login], msg) == {}
    finally:
        s.quit()
    _, stored = dovecot.wait_message(u.login, msgid, deadline=30)
    assert_same_message(stored, msg)
    assert imap_through_gateway(gateway, u.name, u.password, msgid) == stored


def test_8bit_body(gateway, dovecot, make_user):
    u = make_user()
    tag = secrets.token_hex(4)
    msgid = "<8bit-%s@example.test>" % tag
    msg = (b"From: <%s>\r\nTo: <%s>\r\nSubject: 8bit %s\r\nMessage-ID: %s\r\n"
           b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           % (u.login.encode(), u.login.encode(), tag.encode(), msgid.encode())
           + "Grüße aus Köln, ½ € — 日本語テキスト.\r\n".encode()
           + bytes(range(0x80, 0x100)) + b"\r\n")
    s = gateway.smtp_starttls()
    try:
        s.login(u.name, u.password)
        assert s.has_extn("8bitmime")
        assert s.sendmail(u.login, [u.login], msg, mail_options=["BODY=8BITMIME"]) == {}
    finally:
        s.quit()
    stored = read_back(gateway, dovecot, u, msgid)
    assert_same_message(stored, msg)


def test_smtputf8_recipient(gateway, dovecot, postfix, make_user):
    # The recipient's address is UTF-8; Postfix's virtual alias sends it
    # to the mailbox of the ASCII login UTF8_LOGIN, which a gateway user
    # then reads through the gateway.
    sender = make_user()
    tag = secrets.token_hex(4)
    msgid = "<utf8-%s@example.test>" % tag
    msg = ("From: <%s>\r\nTo: Jörg <%s>\r\nSubject: Grüße %s\r\nMessage-ID: %s\r\n"
           "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nHallo Jörg, schöne Grüße.\r\n"
           % (sender.login, UTF8_ADDR, tag, msgid)).encode()
    s = gateway.smtp_ssl()
    try:
        s.ehlo("device.test")
        assert s.has_extn("smtputf8")
        s.login(sender.name, sender.password)
        # After AUTH the extensions are the provider's: SMTPUTF8 still there.
        s.ehlo("device.test")
        assert s.has_extn("smtputf8")
        assert s.sendmail(sender.login, [UTF8_ADDR], msg,
                          mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    finally:
        s.quit()
    postfix.wait_log(r"to=<%s>, orig_to=<%s>.*status=sent" % (UTF8_LOGIN, UTF8_ADDR))
    _, stored = dovecot.wait_message(UTF8_LOGIN, msgid)
    assert stored.endswith(msg), stored[:600]
    name, pw = "joerg%s" % tag, "gw-joerg-" + tag
    gateway.add_user(name, pw)
    gateway.set_account(name, "testprov", UTF8_LOGIN, UTF8_APP_PASSWORD)
    assert imap_through_gateway(gateway, name, pw, msgid) == stored
    assert pop3_through_gateway(gateway, name, pw, msgid) == stored
