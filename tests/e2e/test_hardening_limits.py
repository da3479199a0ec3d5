"""
Limits (issue 5), on each protocol and, where it matters, on both kinds of
listener: connections per client address and in total, the pre-login line
length, IMAP literals before login, logged-in sessions per user, and the
login and idle timeouts. Going over a limit gives the protocol's error and a
close, never a crash; the gateway keeps serving everybody else.

Each connection-counting test runs its own gateway, so that no connection
of another test is counted.
"""

import select
import time

import pytest

from harness import ALICE, ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, ALICE_LOGIN, wait_for
from hostile import (AUTH_FAILED, LOGIN_OK, PROTOS, REFUSED, TEMP_FAIL, WELCOME, device,
                     greeting_text, login, new_gateway, probe, running_gateway, wait_closed)

ALICE_USERS = [(ALICE, ALICE_GW_PASSWORD, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)]
# The listeners a connection limit is checked on: implicit TLS (the error
# comes after the handshake) and STARTTLS (the error is the greeting).
LISTENERS = ["implicit", "plain"]
LINE_LIMIT = 1024
LITERAL_LIMIT = 512
LOGIN_TIMEOUT = 2
IDLE_TIMEOUT = 2


def gateway_with(workdir, ca, dovecot, postfix, extra="", timeouts=None):
    gw = new_gateway(workdir, ca, dovecot, postfix, extra=extra, timeouts=timeouts)
    return running_gateway(gw, users=ALICE_USERS)


def welcomed(gw, proto, tls, source=None):
    """A new connection that gets a greeting (kept open), or None when refused."""
    c = device(gw, proto, tls, source=source)
    if WELCOME[proto].match(greeting_text(proto, c)):
        return c
    c.close()
    return None


def assert_refused(gw, proto, tls, source=None):
    c = device(gw, proto, tls, source=source)
    try:
        g = greeting_text(proto, c)
        assert REFUSED[proto].match(g), "expected a refusal at the greeting, got %r" % g
        wait_closed(c)
    finally:
        c.close()


def close_all(conns):
    for c in conns:
        c.close()


# -- connections ------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("tls", LISTENERS)
def test_connections_per_ip(workdir, ca, dovecot, postfix, proto, tls):
    with gateway_with(workdir, ca, dovecot, postfix,
                      extra="limits: { connections_per_ip: 3 }") as gw:
        held = []
        try:
            for _ in range(3):
                c = device(gw, proto, tls)
                held.append(c)
                assert WELCOME[proto].match(greeting_text(proto, c)), c.dump()
            assert_refused(gw, proto, tls)
            # Another client address is not affected ...
            other = welcomed(gw, proto, tls, source="127.0.0.4")
            assert other is not None, "a connection from another address was refused"
            held.append(other)
            # ... the held connections still work ...
            assert all(probe_before_login(c, proto) for c in held)
            # ... and once one of ours is closed, a new one is welcome.
            held.pop(0).close()
            held.append(wait_for(lambda: welcomed(gw, proto, tls), 5.0,
                                 "a new connection after closing one"))
        finally:
            close_all(held)


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("tls", LISTENERS)
def test_connections_total(workdir, ca, dovecot, postfix, proto, tls):
    with gateway_with(workdir, ca, dovecot, postfix,
                      extra="limits: { connections: 4, connections_per_ip: 100 }") as gw:
        held = []
        try:
            for src in ("127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"):
                c = device(gw, proto, tls, source=src)
                held.append(c)
                assert WELCOME[proto].match(greeting_text(proto, c)), c.dump()
            assert_refused(gw, proto, tls, source="127.0.0.8")
            held.pop(0).close()
            held.append(wait_for(lambda: welcomed(gw, proto, tls, source="127.0.0.8"), 5.0,
                                 "a new connection after closing one"))
            assert all(probe_before_login(c, proto) for c in held)
        finally:
            close_all(held)


def probe_before_login(c, proto):
    """A command every listener answers before login (even before STARTTLS)."""
    if proto == "imap":
        return c.command("n", "NOOP")[1].startswith(b"n OK")
    if proto == "pop3":
        return c.command("CAPA").startswith(b"+OK") and c.multiline() is not None
    return c.command("NOOP")[0] == 250


# -- lines and literals before login ----------------------------------------------


@pytest.fixture(scope="module")
def lgw(workdir, ca, dovecot, postfix):
    extra = ("limits: { imap_line: %d, pop3_line: %d, smtp_line: %d, literal: %d }"
             % (LINE_LIMIT, LINE_LIMIT, LINE_LIMIT, LITERAL_LIMIT))
    with gateway_with(workdir, ca, dovecot, postfix, extra=extra) as gw:
        yield gw


@pytest.mark.parametrize("tls", LISTENERS)
def test_imap_line_limit(lgw, tls):
    c = device(lgw, "imap", tls)
    try:
        # Just under the limit: an ordinary command.
        arg = "x" * (LINE_LIMIT - 40)
        _, tagged = c.command("i", 'ID ("name" "%s")' % arg)
        assert tagged.startswith(b"i OK"), c.dump()
        c.send(b"a LOGIN " + b"x" * (2 * LINE_LIMIT) + b"\r\n")
        lines = wait_closed(c)
        assert lines and lines[0].startswith(b"* BYE "), c.dump()
    finally:
        c.close()
    assert_still_serving(lgw, "imap")


@pytest.mark.parametrize("tls", LISTENERS)
def test_pop3_line_limit(lgw, tls):
    c = device(lgw, "pop3", tls)
    try:
        c.command("NOOP " + "x" * (LINE_LIMIT - 40))  # answered, whatever the answer
        assert c.command("CAPA").startswith(b"+OK"), c.dump()
        c.multiline()
        c.send(b"USER " + b"x" * (2 * LINE_LIMIT) + b"\r\n")
        lines = wait_closed(c)
        assert lines and lines[0].startswith(b"-ERR"), c.dump()
    finally:
        c.close()
    assert_still_serving(lgw, "pop3")


@pytest.mark.parametrize("tls", LISTENERS)
def test_smtp_line_limit(lgw, tls):
    c = device(lgw, "smtp", tls)
    try:
        code, _ = c.command("NOOP " + "x" * (LINE_LIMIT - 40))
        assert code == 250, c.dump()
        c.send(b"EHLO " + b"x" * (2 * LINE_LIMIT) + b"\r\n")
        code, lines = c.reply()
        assert code == 500 and lines[0].startswith("5.5.6"), c.dump()
        wait_closed(c)
    finally:
        c.close()
    assert_still_serving(lgw, "smtp")


def assert_still_serving(gw, proto):
    c = device(gw, proto)
    try:
        assert LOGIN_OK[proto].match(login(c, proto, ALICE, ALICE_GW_PASSWORD)), c.dump()
        assert probe(c, proto), c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("tls", LISTENERS)
def test_imap_synchronizing_literal_over_limit(lgw, tls):
    c = device(lgw, "imap", tls)
    try:
        c.send(b"a LOGIN {%d}\r\n" % (LITERAL_LIMIT + 1))
        line = c.readline()
        assert line.startswith(b"a BAD"), "expected a tagged BAD, no continuation: %r" % line
        # The session goes on: the literal was never invited.
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith(b"b OK"), c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("tls", LISTENERS)
def test_imap_nonsynchronizing_literal_over_limit(lgw, tls):
    c = device(lgw, "imap", tls)
    try:
        c.send(b"a LOGIN {%d+}\r\n" % (LITERAL_LIMIT + 1))
        lines = wait_closed(c)
        assert lines and lines[0].startswith(b"* BYE "), c.dump()
    finally:
        c.close()
    assert_still_serving(lgw, "imap")


def test_imap_literal_within_limit(lgw):
    c = device(lgw, "imap")
    try:
        c.send(b"a LOGIN {%d}\r\n" % len(ALICE))
        assert c.readline().startswith(b"+"), c.dump()
        c.send(ALICE.encode() + b' "%s"\r\n' % ALICE_GW_PASSWORD.encode())
        _, tagged = c.read_until_tagged("a")
        assert tagged.startswith(b"a OK"), c.dump()
    finally:
        c.close()


# -- sessions per user -------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOS)
def test_sessions_per_user(workdir, ca, dovecot, postfix, proto):
    with gateway_with(workdir, ca, dovecot, postfix,
                      extra="limits: { sessions_per_user: 2 }") as gw:
        held = []
        try:
            for _ in range(2):
                c = device(gw, proto)
                held.append(c)
                assert LOGIN_OK[proto].match(login(c, proto, ALICE, ALICE_GW_PASSWORD)), c.dump()
            c = device(gw, proto)
            held.append(c)
            reply = login(c, proto, ALICE, ALICE_GW_PASSWORD)
            assert TEMP_FAIL[proto].match(reply), "expected a temporary failure, got %r" % reply
            assert not AUTH_FAILED[proto].match(reply)
            # The sessions that were there go on.
            assert all(probe(h, proto) for h in held[:2])
            # One ends: a new login works again.
            held.pop(0).close()

            def again():
                d = device(gw, proto)
                if LOGIN_OK[proto].match(login(d, proto, ALICE, ALICE_GW_PASSWORD)):
                    return d
                d.close()
                return None
            held.append(wait_for(again, 5.0, "a login after one session ended"))
        finally:
            close_all(held)


# -- timeouts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tgw(workdir, ca, dovecot, postfix):
    timeouts = {"login": "%ds" % LOGIN_TIMEOUT, "idle": "%ds" % IDLE_TIMEOUT}
    with gateway_with(workdir, ca, dovecot, postfix, timeouts=timeouts) as gw:
        yield gw


LOGIN_TIMEOUT_REPLY = {"imap": b"* BYE ", "pop3": b"-ERR", "smtp": b"421 4.4.2"}


@pytest.mark.parametrize("proto", PROTOS)
def test_login_timeout(tgw, proto):
    # The three listener states at once: TLS, plaintext before STARTTLS,
    # and TLS after STARTTLS.
    t0 = time.monotonic()
    conns = [device(tgw, proto, tls) for tls in ("implicit", "plain", "starttls")]
    try:
        for c in conns:
            lines = wait_closed(c, deadline=LOGIN_TIMEOUT + 5)
            took = time.monotonic() - t0
            assert lines and lines[0].startswith(LOGIN_TIMEOUT_REPLY[proto]), c.dump()
            assert LOGIN_TIMEOUT - 0.5 <= took <= LOGIN_TIMEOUT + 3, took
    finally:
        close_all(conns)


@pytest.mark.parametrize("proto", PROTOS)
def test_idle_timeout(tgw, proto):
    c = device(tgw, proto)
    try:
        assert LOGIN_OK[proto].match(login(c, proto, ALICE, ALICE_GW_PASSWORD)), c.dump()
        t0 = time.monotonic()
        wait_closed(c, deadline=IDLE_TIMEOUT + 5)
        took = time.monotonic() - t0
        assert IDLE_TIMEOUT - 0.5 <= took <= IDLE_TIMEOUT + 3, took
    finally:
        c.close()


def test_activity_keeps_session(tgw):
    # Idle means silent: a session that talks more often than the idle
    # timeout survives well past it.
    c = device(tgw, "imap")
    try:
        assert login(c, "imap", ALICE, ALICE_GW_PASSWORD).startswith(b"a OK"), c.dump()
        end = time.monotonic() + 2 * IDLE_TIMEOUT + 1
        n = 0
        while time.monotonic() < end:
            n += 1
            _, tagged = c.command("n%d" % n, "NOOP")
            assert tagged.startswith(b"n%d OK" % n), c.dump()
            # Throttling: the next NOOP after half the idle timeout (sooner
            # if the gateway says something, which the NOOP then reads).
            select.select([c.sock], [], [], IDLE_TIMEOUT / 2)
    finally:
        c.close()
