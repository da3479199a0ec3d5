"""
Hostile and failing providers (issue 5), played by the scripted fakes of
hostile.py because a real Dovecot or Postfix cannot misbehave on purpose:

- STARTTLS response injection: the provider's STARTTLS reply carries, in
  the same packet, plaintext responses a gateway must not take (fake
  capabilities, a fake login OK); the login must still happen inside TLS.
- PREAUTH instead of a greeting, and STARTTLS configured but not offered:
  temporary failure, no credential leaves the gateway.
- Faults: a provider that accepts and never answers, one that answers
  garbage or an endless line, one that closes in the middle of a large
  FETCH or RETR, one whose certificate names another host.

In every case the device gets the protocol's temporary failure (IMAP
`NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`, SMTP `454 4.7.0`) or a clean
close, the gateway's log says why, and the gateway keeps serving.
"""

import collections
import re
import secrets
import socket
import ssl
import time

import pytest

from harness import IO_TIMEOUT, PROVIDER_SAN, RawIMAP, RawPOP3, wait_for
from hostile import (LOGIN_OK, PROTOS, TEMP_FAIL, BigMessage, FakeSet, HostileProvider, device,
                     fake_for, garbage, login, make_leaf, new_gateway, probe, rss_kb,
                     running_gateway, secret_forms, server_context, silent)

CONNECT_TIMEOUT = 2

User = collections.namedtuple("User", "name password provider login app_password")

# What a gateway may send a provider before TLS on a STARTTLS connection.
PLAINTEXT_COMMANDS = {"imap": {b"CAPABILITY", b"STARTTLS"}, "pop3": {b"CAPA", b"STLS"},
                      "smtp": {b"EHLO", b"HELO", b"STARTTLS"}}


@pytest.fixture(scope="module")
def fakes(ca):
    fs = FakeSet(ca).start()
    try:
        yield fs
    finally:
        fs.stop()


@pytest.fixture(scope="module")
def hgw(workdir, ca, dovecot, postfix, fakes):
    # Every login here must open its own provider connection (TLS, login,
    # certificate checks): none is kept after LOGOUT (test_imap_reuse.py).
    gw = new_gateway(workdir, ca, dovecot, postfix,
                     timeouts={"connect": "%ds" % CONNECT_TIMEOUT, "upstream_reuse": 0},
                     providers_extra=fakes.providers_yaml())
    with running_gateway(gw) as g:
        yield g


@pytest.fixture(scope="module")
def other_host_context(ca):
    cert, key = make_leaf(ca, "other-host", "other.test", "DNS:other.test")
    return server_context(cert, key)


def fake_user(gw, provider="fake"):
    n = secrets.token_hex(4)
    u = User("h" + n, "gw-" + secrets.token_hex(8), provider, "h%s@fake.test" % n,
             "app-" + secrets.token_hex(8))
    gw.add_user(u.name, u.password)
    gw.set_account(u.name, provider, u.login, u.app_password)
    return u


def provider_name(tls):
    return FakeSet.NAMES[tls]


def try_login(gw, proto, u, how=None):
    """(final login reply, seconds it took); the connection is closed."""
    c = device(gw, proto, "implicit")
    try:
        t0 = time.monotonic()
        reply = login(c, proto, u.name, u.password, how)
        return reply, time.monotonic() - t0
    finally:
        c.close()


def log_offset(gw):
    return len(gw.log_text())


def wait_log(gw, off, pattern, what):
    """Waits until the gateway's log, after offset off, says why (a regex, any case)."""
    rx = re.compile(pattern, re.I)
    wait_for(lambda: rx.search(gw.log_text()[off:]), 5.0,
             "the gateway log to say why (%s: /%s/)" % (what, pattern),
             proc=gw.proc, log=lambda: gw.log_text()[off:])


def assert_tempfail(proto, reply, u):
    assert TEMP_FAIL[proto].match(reply), "expected a temporary failure, got %r" % reply
    for s in secret_forms(u.login, u.app_password) + secret_forms(u.name, u.password):
        assert s not in reply


def assert_no_secret_sent(fake, u, plaintext_only=False):
    """
    Nothing the fake received in plaintext holds the credential; the
    device's gateway password never reaches a provider at all (nor the app
    password, unless plaintext_only).
    """
    plain = fake.plain_bytes()
    everything = fake.all_bytes()
    for s in secret_forms(u.login, u.app_password):
        assert s not in plain, "credential form %r sent in plaintext:\n%r" % (s, plain)
        if not plaintext_only:
            assert s not in everything, "credential form %r sent:\n%r" % (s, everything[:2000])
    for s in secret_forms(u.name, u.password):
        assert s not in everything, "the device's gateway password reached the provider"


def assert_plaintext_commands(fake, proto):
    """Before TLS the gateway sent only the commands that lead to STARTTLS."""
    for conn in fake.connections():
        for line in conn.plain_bytes().splitlines():
            words = line.split()
            if proto == "imap":
                words = words[1:]  # the tag
            assert words and words[0].upper() in PLAINTEXT_COMMANDS[proto], \
                "the gateway sent %r before TLS" % line


# -- STARTTLS response injection ------------------------------------------------


def imap_injection(tag):
    """Plaintext after `TAG OK begin TLS`: capabilities, and tagged OKs for the next tags."""
    mo = re.match(r"(\D*)(\d+)\Z", tag)
    prefix, n = (mo.group(1), int(mo.group(2))) if mo else (tag, 0)
    nxt = lambda i: ("%s%d" % (prefix, n + i)).encode()
    return (b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"
            b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
            + b"".join(b"%s OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected, logged in\r\n" % nxt(i)
                       for i in (1, 2, 3)))


INJECTIONS = {
    "imap": imap_injection,
    "pop3": b"+OK injected capabilities\r\nSASL PLAIN\r\nUSER\r\n.\r\n+OK injected: logged in\r\n",
    "smtp": (b"250-fake.test injected\r\n250 AUTH PLAIN LOGIN\r\n"
             b"235 2.7.0 injected: authenticated\r\n"),
}


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("real", ["accepts", "refuses"])
def test_starttls_response_injection(hgw, fakes, proto, real):
    u = fake_user(hgw, provider_name("starttls"))
    fake = fakes[(proto, "starttls")]
    script = fake_for(proto, {u.login: u.app_password}, inject=INJECTIONS[proto],
                      refuse=(real == "refuses"))
    fake.reset(script)
    reply, _ = try_login(hgw, proto, u)
    if real == "accepts":
        # The injected bytes were discarded: the handshake worked (it would
        # fail on bytes taken for TLS records) and the real login followed.
        assert LOGIN_OK[proto].match(reply), reply
    else:
        # Only the real reply counts: an injected OK taken would log the
        # device in although the provider refused the credential.
        assert_tempfail(proto, reply, u)
    fake.wait_done()
    conn = fake.connections()[0]
    assert conn.tls, "the gateway never completed TLS with the provider: %r" % conn.error
    assert script.logins == [u.login], script.logins
    assert_no_secret_sent(fake, u, plaintext_only=True)
    assert_plaintext_commands(fake, proto)
    # The credential did travel, inside TLS.
    assert any(s in conn.tls_bytes() for s in secret_forms(u.login, u.app_password))


# -- PREAUTH and missing STARTTLS --------------------------------------------------


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_imap_preauth_refused(hgw, fakes, tls):
    u = fake_user(hgw, provider_name(tls))
    fake = fakes[("imap", tls)]
    fake.reset(fake_for("imap", {u.login: u.app_password},
                        greeting=b"* PREAUTH [CAPABILITY IMAP4rev1] already logged in\r\n"))
    off = log_offset(hgw)
    reply, _ = try_login(hgw, "imap", u)
    assert_tempfail("imap", reply, u)
    fake.wait_done()
    data = fake.all_bytes()
    assert not re.search(rb"(?i)\b(LOGIN|AUTHENTICATE)\b", data), data
    assert_no_secret_sent(fake, u)
    wait_log(hgw, off, r"preauth", "PREAUTH")


@pytest.mark.parametrize("proto", PROTOS)
def test_starttls_not_offered(hgw, fakes, proto):
    u = fake_user(hgw, provider_name("starttls"))
    fake = fakes[(proto, "starttls")]
    fake.reset(fake_for(proto, {u.login: u.app_password}, offer_tls=False))
    off = log_offset(hgw)
    reply, _ = try_login(hgw, proto, u)
    assert_tempfail(proto, reply, u)
    fake.wait_done()
    assert not any(c.tls for c in fake.connections())
    assert_no_secret_sent(fake, u)
    assert_plaintext_commands(fake, proto)
    wait_log(hgw, off, r"starttls|stls", "no STARTTLS")


# -- provider faults -------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_provider_never_answers(hgw, fakes, proto, tls):
    u = fake_user(hgw, provider_name(tls))
    fake = fakes[(proto, tls)]
    fake.reset(silent())
    off = log_offset(hgw)
    reply, took = try_login(hgw, proto, u)
    assert_tempfail(proto, reply, u)
    # timeouts.connect bounds connect + TLS + login.
    assert CONNECT_TIMEOUT - 0.5 <= took <= CONNECT_TIMEOUT + 3, took
    fake.wait_connections(1)
    fake.wait_done()
    assert_no_secret_sent(fake, u)
    wait_log(hgw, off, r"did not answer|time ?out|timed out", "no answer")
    # The gateway keeps serving: the same provider, behaving, works.
    fake.reset(fake_for(proto, {u.login: u.app_password}))
    reply, _ = try_login(hgw, proto, u)
    assert LOGIN_OK[proto].match(reply), reply


GARBAGE = {
    "binary": b"\x00\x01\x02HTTP/1.1 400 Bad Request\r\nServer: nonsense\r\n\r\n",
    "endless": b"A" * (1 << 20),
}


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_provider_answers_garbage(hgw, fakes, proto, kind):
    u = fake_user(hgw)
    fake = fakes[(proto, "implicit")]
    fake.reset(garbage(GARBAGE[kind]))
    off = log_offset(hgw)
    reply, took = try_login(hgw, proto, u)
    assert_tempfail(proto, reply, u)
    # Refused as soon as it is seen, not after the connect timeout.
    assert took < CONNECT_TIMEOUT - 0.5, took
    fake.wait_done()
    assert_no_secret_sent(fake, u)
    wait_log(hgw, off, r"not understood|bad reply|overlong|too long|malformed|unexpected|garbage"
                       r"|greeting", "garbage")


def endless_reply(proto, seconds=CONNECT_TIMEOUT + 3):
    """
    Greets, then answers the first command with a multi-line reply that
    never ends (untagged CAPABILITY lines, CAPA lines, 250- lines), as fast
    as the gateway takes it, for `seconds`.
    """
    def script(conn):
        if proto == "imap":
            conn.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hello\r\n")
            line = b"* CAPABILITY IMAP4rev1 " + b"X" * 100 + b"\r\n"
        elif proto == "pop3":
            conn.send(b"+OK hello\r\n")
            line = b"SASL PLAIN " + b"X" * 100 + b"\r\n"
        else:
            conn.send(b"220 hello\r\n")
            line = b"250-" + b"X" * 100 + b"\r\n"
        conn.readline()
        if proto == "pop3":
            conn.send(b"+OK capabilities follow\r\n")
        blob = line * 10000
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.send(blob)
    return script


@pytest.mark.parametrize("proto", PROTOS)
def test_provider_endless_reply(hgw, fakes, proto):
    u = fake_user(hgw)
    fake = fakes[(proto, "implicit")]
    fake.reset(endless_reply(proto))
    base = rss_kb(hgw.proc.pid)
    reply, took = try_login(hgw, proto, u)
    assert_tempfail(proto, reply, u)
    # Refused by a bound on the reply or by timeouts.connect at the latest,
    # with memory to match.
    assert took <= CONNECT_TIMEOUT + 2, took
    assert rss_kb(hgw.proc.pid) - base < 16 * 1024
    fake.wait_done()
    assert_no_secret_sent(fake, u)


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_provider_certificate_for_other_host(hgw, fakes, other_host_context, proto, tls):
    u = fake_user(hgw, provider_name(tls))
    fake = fakes[(proto, tls)]
    fake.reset(fake_for(proto, {u.login: u.app_password}), context=other_host_context)
    off = log_offset(hgw)
    reply, _ = try_login(hgw, proto, u)
    assert_tempfail(proto, reply, u)
    fake.wait_done()
    conns = fake.connections()
    assert conns and not any(c.tls for c in conns), "a handshake with the wrong host succeeded"
    assert not fake.tls_bytes()
    assert_no_secret_sent(fake, u)
    wait_log(hgw, off, r"certificate|verify|host ?name|mismatch", "wrong host")


def tls_client(gw, port):
    """A device connection whose TLS EOF without close_notify raises (ragged EOFs count)."""
    sock = socket.create_connection((gw.addr, port), timeout=IO_TIMEOUT)
    return gw.ca.context().wrap_socket(sock, server_hostname=gw.addr, suppress_ragged_eofs=False)


def read_to_eof(c):
    """Everything until the gateway closes; SSL errors (an unclean close) fail."""
    data = bytearray(c.buf)
    c.buf = b""
    while True:
        try:
            chunk = c.sock.recv(1 << 20)
        except ssl.SSLEOFError as e:
            raise AssertionError("the gateway closed without a TLS close_notify (%s) after "
                                 "%d bytes" % (e, len(data)))
        except socket.timeout:
            raise AssertionError("the gateway neither relayed nor closed after %d bytes"
                                 % len(data))
        if not chunk:
            return bytes(data)
        data += chunk


UPSTREAM_CONNECTED = re.compile(r"upstream connected host=\S+ addr=\S+ port=(\d+) .*resumed=(yes|no)")
GOODBYE = {"imap": ("z", "LOGOUT"), "pop3": ("QUIT",), "smtp": ("QUIT",)}


@pytest.mark.parametrize("proto", PROTOS)
def test_upstream_tls_session_resumed_after_unclean_end(hgw, fakes, proto):
    # The fake closes its socket after LOGOUT/QUIT without a close_notify,
    # and the device closes too, so no session ends with one. The ticket
    # the provider gave must still be offered, and taken, at the next
    # login there (OpenSSL's default would mark it unresumable).
    u = fake_user(hgw)
    fake = fakes[(proto, "implicit")]
    fake.reset(fake_for(proto, {u.login: u.app_password}))
    assert_later_logins_resume(hgw, proto, u)


def assert_later_logins_resume(hgw, proto, u, after_first=None):
    """Three logins and logouts of u; after_first() runs after the first. The last two resume."""
    off = log_offset(hgw)
    for i in range(3):
        c = device(hgw, proto, "implicit")
        try:
            reply = login(c, proto, u.name, u.password)
            assert LOGIN_OK[proto].match(reply), reply
            c.command(*GOODBYE[proto])
        finally:
            c.close()
        if i == 0 and after_first is not None:
            after_first()
    lines = UPSTREAM_CONNECTED.findall(hgw.log_text()[off:])
    assert len(lines) == 3 and len({port for port, _ in lines}) == 1, lines
    assert [resumed for _, resumed in lines[1:]] == ["yes", "yes"], hgw.log_text()[off:]


@pytest.mark.parametrize("proto", PROTOS)
def test_upstream_ticket_offered_again_without_a_new_one(hgw, fakes, proto):
    # After the first login here the provider sends no more tickets, so the
    # second and third logins both resume with the ticket of the first. That
    # is also what happens to every login that starts while another one is
    # between its resumed handshake and the provider's next ticket: under
    # load, 14 % of the bench's logins did a full handshake. OpenSSL 3.0
    # marks the session a TLS 1.3 client resumed with as used up; the one
    # kept for the provider must not be that session.
    u = fake_user(hgw)
    fake = fakes[(proto, "implicit")]
    fake.reset(fake_for(proto, {u.login: u.app_password}))
    ctx = fake.context
    tickets = ctx.num_tickets

    def no_more_tickets():
        ctx.num_tickets = 0
    try:
        assert_later_logins_resume(hgw, proto, u, after_first=no_more_tickets)
    finally:
        ctx.num_tickets = tickets


def no_ticket_context(cert, key):
    """A provider context that never resumes a session: every login shows the certificate."""
    c = server_context(cert, key)
    c.num_tickets = 0
    return c


UPSTREAM_CHAIN = re.compile(r"upstream connected .* resumed=(yes|no) chain=(\w+)")


@pytest.mark.parametrize("proto", PROTOS)
def test_upstream_chain_verified_once_then_cached(hgw, ca, fakes, proto):
    # A provider that never resumes shows the same certificate at every
    # login; its chain is built and checked once, then looked up. Only the
    # very same certificate, for the same name, is looked up: a re-issued
    # one is verified in full, and one from an untrusted CA is refused
    # although a certificate for that name was accepted a moment ago.
    same = no_ticket_context(ca.provider_cert, ca.provider_key)
    # Same CA and names, a new key (one per run: the cache is the provider's, for every protocol).
    reissued = no_ticket_context(*make_leaf(ca, "provider-reissued-" + proto, "provider.test",
                                            PROVIDER_SAN))
    untrusted = no_ticket_context(*make_leaf(ca, "provider-untrusted-" + proto, "provider.test",
                                             PROVIDER_SAN, other_ca=True))
    u = fake_user(hgw)
    fake = fakes[(proto, "implicit")]
    script = fake_for(proto, {u.login: u.app_password})
    off = log_offset(hgw)
    for context in (same, same, reissued, reissued):
        fake.reset(script, context=context)
        reply, _ = try_login(hgw, proto, u)
        assert LOGIN_OK[proto].match(reply), reply
    chains = UPSTREAM_CHAIN.findall(hgw.log_text()[off:])
    assert len(chains) == 4, hgw.log_text()[off:]
    # The first may find the provider's certificate cached by an earlier test.
    assert chains[0] in (("no", "full"), ("no", "cached")), chains
    assert chains[1:] == [("no", "cached"), ("no", "full"), ("no", "cached")], chains
    fake.reset(script, context=untrusted)
    reply, _ = try_login(hgw, proto, u)
    assert_tempfail(proto, reply, u)
    fake.wait_done()
    assert_no_secret_sent(fake, u)
    wait_log(hgw, off, r"certificate verify failed", "an untrusted certificate for a cached name")
    assert len(UPSTREAM_CHAIN.findall(hgw.log_text()[off:])) == 4


def test_provider_closes_mid_fetch(hgw, fakes):
    u = fake_user(hgw)
    msg = BigMessage(8 << 20, seed=3)
    cut = 1 << 20
    fake = fakes[("imap", "implicit")]
    fake.reset(fake_for("imap", {u.login: u.app_password}, messages=[msg], cut_fetch_at=cut))
    off = log_offset(hgw)
    c = RawIMAP(tls_client(hgw, hgw.imaps_port), hgw.ca.context(), hgw.addr)
    try:
        c.greeting = c.readline()
        assert login(c, "imap", u.name, u.password).startswith(b"a OK"), c.dump()
        _, tagged = c.command("s", "SELECT INBOX")
        assert tagged.startswith(b"s OK"), c.dump()
        c.send(b"f FETCH 1 BODY[]\r\n")
        head = c.readline()
        assert head == b"* 1 FETCH (BODY[] {%d}\r\n" % msg.size, head
        data = read_to_eof(c)
    finally:
        c.close()
    # Whatever arrived is the start of the message: nothing invented, and
    # no tagged OK that would make the device take a truncated message.
    expected = b"".join(msg.chunks())[:cut]
    assert len(data) <= cut and expected.startswith(data), len(data)
    wait_log(hgw, off, r"upstream|provider", "provider closed")
    # ... and the gateway keeps serving.
    fake.reset(fake_for("imap", {u.login: u.app_password}))
    reply, _ = try_login(hgw, "imap", u)
    assert reply.startswith(b"a OK"), reply


def test_provider_closes_mid_retr(hgw, fakes):
    u = fake_user(hgw)
    msg = BigMessage(4 << 20, seed=4)
    cut = 1 << 20
    fake = fakes[("pop3", "implicit")]
    fake.reset(fake_for("pop3", {u.login: u.app_password}, messages=[msg], cut_retr_at=cut))
    c = RawPOP3(tls_client(hgw, hgw.pop3s_port), hgw.ca.context(), hgw.addr)
    try:
        c.greeting = c.readline()
        assert login(c, "pop3", u.name, u.password).startswith(b"+OK"), c.dump()
        status = c.command("RETR 1")
        assert status.startswith(b"+OK"), c.dump()
        data = read_to_eof(c)
    finally:
        c.close()
    expected = b"".join(msg.chunks())[:cut]
    assert len(data) <= cut and expected.startswith(data), len(data)
    # A device must not see the end of the message: no "." line at the end.
    assert not data.endswith(b"\r\n.\r\n")
    fake.reset(fake_for("pop3", {u.login: u.app_password}))
    c = device(hgw, "pop3")
    try:
        assert login(c, "pop3", u.name, u.password).startswith(b"+OK"), c.dump()
        assert probe(c, "pop3"), c.dump()
    finally:
        c.close()


def test_no_secret_in_log_after_hostile_providers(hgw):
    # Runs last in this module: every login above used fresh credentials,
    # none of which may be in the log. The app passwords all start "app-".
    log = hgw.log_text()
    assert not re.search(r"app-[0-9a-f]{16}", log), re.search(r".*app-[0-9a-f]{16}.*", log).group(0)
    assert not re.search(r"gw-[0-9a-f]{16}", log), re.search(r".*gw-[0-9a-f]{16}.*", log).group(0)


RESOLVED = re.compile(r"upstream resolved host=localhost addresses=\d+")


def test_provider_name_looked_up_once_and_again_when_unreachable(workdir, ca, dovecot, postfix):
    # A provider named by host name: the first login looks the name up, the
    # next ones use the cached addresses; when none of them answers, the
    # cache is dropped and the next login looks the name up again.
    fake = HostileProvider(ca, "imap", "implicit", addr="127.0.0.1").start()
    try:
        u = User("named1", "gw-" + secrets.token_hex(8), "named", "n1@fake.test",
                 "app-" + secrets.token_hex(8))
        fake.reset(fake_for("imap", {u.login: u.app_password}))
        extra = "  named:\n    imap: { host: localhost, port: %d, tls: implicit }\n" \
                "    ca_file: %s\n" % (fake.port, ca.ca_cert)
        gw = new_gateway(workdir, ca, dovecot, postfix, providers_extra=extra)
        with running_gateway(gw) as g:
            g.add_user(u.name, u.password)
            g.set_account(u.name, "named", u.login, u.app_password)
            for _ in range(2):
                reply, _ = try_login(g, "imap", u)
                assert LOGIN_OK["imap"].match(reply), reply
            assert len(RESOLVED.findall(g.log_text())) == 1, g.log_text()
            fake.stop()
            reply, _ = try_login(g, "imap", u)
            assert TEMP_FAIL["imap"].match(reply), reply
            assert len(RESOLVED.findall(g.log_text())) == 1, g.log_text()
            fake.start()
            reply, _ = try_login(g, "imap", u)
            assert LOGIN_OK["imap"].match(reply), reply
            assert len(RESOLVED.findall(g.log_text())) == 2, g.log_text()
            # Address literals are never looked up.
            assert "upstream resolved host=127." not in g.log_text()
    finally:
        fake.stop()
