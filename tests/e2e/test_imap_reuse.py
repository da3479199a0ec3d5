"""
The provider connection kept after an IMAP LOGOUT (uppool.h), with Dovecot
as the provider.

When a device logs out of a session that left nothing behind, the gateway
answers the LOGOUT itself and keeps the provider connection, unselected, for
the same account's next login: that login costs the provider no new
connection and no new login. These tests check what the device sees (the
LOGOUT reply, then the close), what the next device gets (the authenticated
state, not the last mailbox; nothing expunged), and every case where the
connection must not be handed on: another account, a new upstream password,
a new gateway password, a session that changed itself with ENABLE or
CONDSTORE or a command the gateway does not know, a LOGOUT sent behind
another command. Dovecot's own log says how many times it saw a login.
"""

import re
import secrets
import ssl
import threading

import pytest

from harness import make_message

from hostile import HostileProvider, IMAPFake, new_gateway, running_gateway

KEPT = r"[0-9a-f]{8} upstream kept host="
REUSED = re.compile(r"([0-9a-f]{8}) upstream reused host=\S+ addr=\S+ kept_ms=\d+ uses=(\d+) "
                    r"from=([0-9a-f]{8})")
CONNECTED = re.compile(r"upstream connected host=")


def login(gateway, user):
    c = gateway.raw("implicit")
    _, tagged = c.command("a", "LOGIN %s %s" % (user.name, user.password))
    assert tagged.startswith(b"a OK"), c.dump()
    return c


def logout_and_closed(c, tag="z"):
    """LOGOUT: a BYE, the tagged OK, then the connection ends."""
    untagged, tagged = c.command(tag, "LOGOUT")
    assert any(l.startswith(b"* BYE") for l in untagged), c.dump()
    assert tagged.startswith(tag.encode() + b" OK"), c.dump()
    try:
        while c.sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    except TimeoutError:
        pytest.fail("the gateway kept the connection open after LOGOUT")
    finally:
        c.close()
    return untagged


def pipelined_logout_relayed(c, first):
    """
    Reads the reply to the command tagged `first`, then that of the "z
    LOGOUT" sent behind it in the same write: the provider's BYE and OK.
    """
    _, tagged = c.read_until_tagged(first)
    assert tagged.startswith(first.encode() + b" OK"), c.dump()
    untagged, tagged = c.read_until_tagged("z")
    assert tagged.startswith(b"z OK") and any(l.startswith(b"* BYE") for l in untagged), c.dump()
    c.close()


def dovecot_logins(dovecot, login, off):
    dovecot.log_barrier()
    return len(re.findall(r"imap-login: \S*\s*Login: user=<%s>" % re.escape(login), dovecot.log_since(off)))


def kept_then(gateway, off):
    """Waits for the log line saying the last logout's connection is ready for reuse."""
    gateway.wait_log(KEPT, off)


def ok(c, tag, command):
    """Sends a command that must succeed; returns its untagged lines."""
    untagged, tagged = c.command(tag, command)
    assert tagged.startswith(tag.encode() + b" OK"), c.dump()
    return untagged


def login_reused(gateway, u, off):
    """Once the last LOGOUT's connection is kept, logs u in again: on that connection."""
    kept_then(gateway, off)
    c = login(gateway, u)
    assert REUSED.search(gateway.log_since(off)), gateway.log_since(off)
    return c


def assert_unselected(c, tag):
    """No mailbox is selected: FETCH is refused, as RFC 9051 says for the authenticated state."""
    _, tagged = c.command(tag, "FETCH 1 (FLAGS)")
    assert tagged.startswith((tag.encode() + b" BAD", tag.encode() + b" NO")), c.dump()


def test_next_login_of_the_account_reuses_the_connection(gateway, dovecot, make_user):
    u = make_user()
    box = "Reuse" + secrets.token_hex(3)
    msg = make_message("reuse %s" % box)
    uid = dovecot.append(u.login, box, msg)
    doff = dovecot.log_offset()
    off = gateway.log_offset()
    c = login(gateway, u)
    _, tagged = c.command("b", "SELECT %s" % box)
    assert tagged.startswith(b"b OK"), c.dump()
    untagged = logout_and_closed(c)
    # The gateway's own BYE: Dovecot's would say "Logging out" too, so the
    # log decides that it was kept.
    assert untagged == [b"* BYE Logging out\r\n"], untagged
    kept_then(gateway, off)
    c = login(gateway, u)
    log = gateway.log_since(off)
    reused = REUSED.findall(log)
    assert len(reused) == 1 and reused[0][1] == "2", log
    assert len(CONNECTED.findall(log)) == 1, log
    # A working session: the message, byte for byte.
    _, tagged = c.command("c", "SELECT %s" % box)
    assert tagged.startswith(b"c OK"), c.dump()
    c.send(b"d UID FETCH %d (BODY.PEEK[])\r\n" % uid)
    head = c.readline()
    n = int(re.search(rb"\{(\d+)\}\r\n$", head).group(1))
    body = b""
    while len(body) < n:
        body += c.readline()
    assert body[:n] == msg
    _, tagged = c.read_until_tagged("d")
    assert tagged.startswith(b"d OK"), c.dump()
    logout_and_closed(c)
    # Two device sessions, one login at the provider.
    assert dovecot_logins(dovecot, u.login, doff) == 1


def test_the_next_session_starts_unselected_and_nothing_is_expunged(gateway, dovecot, make_user):
    u = make_user()
    box = "Unsel" + secrets.token_hex(3)
    dovecot.append(u.login, box, make_message("keep me"))
    off = gateway.log_offset()
    c = login(gateway, u)
    ok(c, "b", "SELECT %s" % box)
    ok(c, "c", "STORE 1 +FLAGS (\\Deleted)")
    logout_and_closed(c)
    c = login_reused(gateway, u, off)
    assert_unselected(c, "d")
    # UNSELECT, not CLOSE: the message marked \Deleted is still there.
    untagged, tagged = c.command("e", "SELECT %s" % box)
    assert tagged.startswith(b"e OK") and b"* 1 EXISTS\r\n" in untagged, c.dump()
    untagged, tagged = c.command("f", "FETCH 1 (FLAGS)")
    assert tagged.startswith(b"f OK") and b"\\Deleted" in b"".join(untagged), c.dump()
    logout_and_closed(c)


def test_the_login_reply_carries_the_providers_capabilities(gateway, make_user):
    u = make_user()
    off = gateway.log_offset()
    c = gateway.raw("implicit")
    _, first = c.command("a", "LOGIN %s %s" % (u.name, u.password))
    logout_and_closed(c)
    kept_then(gateway, off)
    c = gateway.raw("implicit")
    _, second = c.command("a", "LOGIN %s %s" % (u.name, u.password))
    assert REUSED.search(gateway.log_since(off)), gateway.log_since(off)
    caps = re.compile(rb"\Aa OK \[CAPABILITY ([^\]]+)\]")
    assert caps.match(first) and caps.match(second), (first, second)
    assert set(caps.match(first).group(1).split()) == set(caps.match(second).group(1).split())
    logout_and_closed(c)


def test_other_accounts_never_get_the_connection(gateway, dovecot, make_user):
    a, b = make_user(), make_user()
    dovecot.append(b.login, "INBOX", make_message("for b only"))
    off = gateway.log_offset()
    logout_and_closed(login(gateway, a))
    kept_then(gateway, off)
    c = login(gateway, b)
    log = gateway.log_since(off)
    assert not REUSED.search(log) and len(CONNECTED.findall(log)) == 2, log
    untagged, tagged = c.command("b", "SELECT INBOX")
    assert tagged.startswith(b"b OK") and b"* 1 EXISTS\r\n" in untagged, c.dump()
    logout_and_closed(c)
    # a's connection is still there for a.
    c = login(gateway, a)
    assert REUSED.search(gateway.log_since(off)), gateway.log_since(off)
    logout_and_closed(c)


def test_a_new_upstream_password_is_never_served_an_old_connection(gateway, dovecot, make_user):
    u = make_user()
    off = gateway.log_offset()
    logout_and_closed(login(gateway, u))
    kept_then(gateway, off)
    new_app = "app-" + secrets.token_hex(8)
    dovecot.set_password(u.login, new_app)
    gateway.set_account(u.name, u.provider, u.login, new_app)
    doff = dovecot.log_offset()
    c = login(gateway, u)
    log = gateway.log_since(off)
    assert not REUSED.search(log) and len(CONNECTED.findall(log)) == 2, log
    logout_and_closed(c)
    assert dovecot_logins(dovecot, u.login, doff) == 1


def test_a_new_gateway_password_is_never_served_an_old_connection(gateway, make_user):
    u = make_user()
    off = gateway.log_offset()
    logout_and_closed(login(gateway, u))
    kept_then(gateway, off)
    u.password = "gw-" + secrets.token_hex(8)
    gateway.cli("user", "passwd", u.name, "--password-stdin", input=u.password + "\n")
    c = login(gateway, u)
    log = gateway.log_since(off)
    assert not REUSED.search(log) and len(CONNECTED.findall(log)) == 2, log
    logout_and_closed(c)


@pytest.mark.parametrize("commands", [
    ["ENABLE CONDSTORE"],
    ["SELECT INBOX (CONDSTORE)"],
    ["SELECT INBOX", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"],
    ["SELECT INBOX", "fetch 1:* (modseq)"],
    ["XNOSUCHCOMMAND"],
    ["UID XNOSUCH 1"],
], ids=["enable", "select-condstore", "changedsince", "modseq", "unknown", "uid-unknown"])
def test_a_session_that_changed_itself_is_not_kept(gateway, dovecot, make_user, commands):
    u = make_user()
    dovecot.append(u.login, "INBOX", make_message("condstore"))
    off = gateway.log_offset()
    c = login(gateway, u)
    for i, cmd in enumerate(commands):
        c.command("t%d" % i, cmd)
    logout_and_closed(c)
    # Had it been kept, this login would take it, ready or still settling.
    c = login(gateway, u)
    log = gateway.log_since(off)
    assert not re.search(KEPT, log) and not REUSED.search(log), log
    assert len(CONNECTED.findall(log)) == 2, log
    logout_and_closed(c)


def test_logout_behind_another_command_is_relayed(gateway, make_user):
    u = make_user()
    off = gateway.log_offset()
    c = login(gateway, u)
    c.send(b"b NOOP\r\nz LOGOUT\r\n")
    pipelined_logout_relayed(c, "b")
    c = login(gateway, u)
    log = gateway.log_since(off)
    assert not re.search(KEPT, log) and len(CONNECTED.findall(log)) == 2, log
    logout_and_closed(c)


def test_message_text_that_looks_like_logout_is_data(gateway, dovecot, make_user):
    # APPEND's literal holds a line "z LOGOUT": it is message text, relayed
    # byte for byte, and the session goes on; the real LOGOUT after it is
    # the one the gateway answers.
    u = make_user()
    box = "Lit" + secrets.token_hex(3)
    msg = make_message("looks like a command", ["z LOGOUT", "a1 OK fake", "{5}", "end"])
    off = gateway.log_offset()
    c = login(gateway, u)
    _, tagged = c.command("b", "CREATE %s" % box)
    assert tagged.startswith(b"b OK"), c.dump()
    c.send(b"c APPEND %s {%d+}\r\n" % (box.encode(), len(msg)) + msg + b"\r\n")
    _, tagged = c.read_until_tagged("c")
    assert tagged.startswith(b"c OK"), c.dump()
    _, tagged = c.command("d", "NOOP")
    assert tagged.startswith(b"d OK"), c.dump()
    logout_and_closed(c)
    kept_then(gateway, off)
    assert dovecot.fetch(u.login, box, 1) == msg


def test_kept_connection_closes_when_unused(workdir, ca, dovecot, postfix):
    # timeouts.upstream_reuse: 1: the connection is closed after a second
    # unused, and the next login makes a new one. 0: nothing is kept.
    name, pw, login_name, app = "ku", "gw-" + secrets.token_hex(6), \
        "ku%s@example.test" % secrets.token_hex(3), "app-" + secrets.token_hex(6)
    dovecot.add_user(login_name, app)

    class U:
        pass
    u = U()
    u.name, u.password = name, pw
    for reuse in (1, 0):
        gw = new_gateway(workdir, ca, dovecot, postfix, tag="reuse",
                         timeouts={"upstream_reuse": reuse})
        with running_gateway(gw, users=[(name, pw, "testprov", login_name, app)]):
            off = gw.log_offset()
            logout_and_closed(login(gw, u))
            if reuse:
                gw.wait_log(r"upstream kept closed host=\S+ reason=\"not used in time\"", off)
            c = login(gw, u)
            log = gw.log_since(off)
            assert not REUSED.search(log) and len(CONNECTED.findall(log)) == 2, log
            if not reuse:
                assert not re.search(KEPT, log), log
            logout_and_closed(c)


class KeptThenGate(IMAPFake):
    """
    The fake's first connection answers the gateway's CAPABILITY after the
    device's LOGOUT only when the test opens the gate, and then either
    answers it ("answer") or says BYE and closes ("bye"). Later connections
    are plain IMAPFake ones.
    """

    def __init__(self, accounts, outcome):
        super().__init__(accounts)
        self.outcome = outcome
        self.asked = threading.Event()
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.conns = 0

    def __call__(self, conn):
        with self.lock:
            self.conns += 1
            first = self.conns == 1
        if not first:
            return super().__call__(conn)
        conn.send(b"* OK [CAPABILITY %s] fake IMAP ready\r\n" % self.CAPS.encode())
        tag, name, args = self.read_command(conn)
        assert name == b"AUTHENTICATE", name
        conn.send(b"%s OK [CAPABILITY %s] logged in\r\n" % (tag, self.CAPS.encode()))
        tag, name, args = self.read_command(conn)
        assert name == b"CAPABILITY", name
        self.asked.set()
        assert self.gate.wait(30), "the test never opened the gate"
        if self.outcome == "bye":
            conn.send(b"* BYE going away\r\n")
            return
        conn.send(b"* CAPABILITY %s\r\n%s OK done\r\n" % (self.CAPS.encode(), tag))
        self.serve_rest(conn)

    def serve_rest(self, conn):
        # Logged in already: the loop of IMAPFake without its greeting.
        while True:
            tag, name, args = self.read_command(conn)
            if name == b"LOGOUT":
                conn.send(b"* BYE fake logging out\r\n%s OK LOGOUT done\r\n" % tag)
                return
            conn.send(b"%s OK %s done\r\n" % (tag, name))


@pytest.mark.parametrize("outcome", ["answer", "bye"])
def test_a_login_waits_for_a_kept_connection_still_settling(workdir, ca, dovecot, postfix, outcome):
    # A login that finds the account's connection still settling (its
    # CAPABILITY unanswered) waits for it: one round trip is less than a
    # new connection. If that connection fails instead, the login goes on
    # with a new one, and the device never sees the difference.
    fake = HostileProvider(ca, "imap", "implicit").start()
    try:
        name, pw = "kw", "gw-" + secrets.token_hex(6)
        login_name, app = "kw@fake.test", "app-" + secrets.token_hex(6)
        script = KeptThenGate({login_name: app}, outcome)
        fake.reset(script)
        gw = new_gateway(workdir, ca, dovecot, postfix, tag="reusewait",
                         providers_extra="  fake:\n    imap: %s\n    ca_file: %s\n" % (
                             fake.endpoint_yaml(), ca.ca_cert))

        class U:
            pass
        u = U()
        u.name, u.password = name, pw
        with running_gateway(gw, users=[(name, pw, "fake", login_name, app)]):
            off = gw.log_offset()
            logout_and_closed(login(gw, u))
            assert script.asked.wait(10), "the gateway never asked for CAPABILITY after LOGOUT"
            c = gw.raw("implicit")
            c.send(("a LOGIN %s %s\r\n" % (name, pw)).encode())
            gw.wait_log(r"upstream waiting for kept host=", off)
            script.gate.set()
            _, tagged = c.read_until_tagged("a")
            assert tagged.startswith(b"a OK"), c.dump()
            _, tagged = c.command("b", "NOOP")
            assert tagged.startswith(b"b OK"), c.dump()
            logout_and_closed(c)
            log = gw.log_since(off)
            if outcome == "answer":
                assert REUSED.search(log) and len(CONNECTED.findall(log)) == 1, log
                assert len(fake.connections()) == 1
            else:
                assert 'reason="provider said BYE"' in log, log
                assert not REUSED.search(log) and len(CONNECTED.findall(log)) == 2, log
                assert len(fake.connections()) == 2
    finally:
        fake.stop()


def test_logout_pipelined_behind_login(gateway, make_user):
    # LOGIN and LOGOUT in one write: the LOGOUT reaches the relay while the
    # provider login is still ending. It goes to the provider, the device
    # gets its BYE and OK, and the gateway goes on serving.
    u = make_user()
    off = gateway.log_offset()
    c = gateway.raw("implicit")
    c.send(("a LOGIN %s %s\r\nz LOGOUT\r\n" % (u.name, u.password)).encode())
    pipelined_logout_relayed(c, "a")
    c = login(gateway, u)
    _, tagged = c.command("b", "NOOP")
    assert tagged.startswith(b"b OK"), c.dump()
    logout_and_closed(c)
    log = gateway.log_since(off)
    assert len(CONNECTED.findall(log)) == 2 and not REUSED.search(log), log
    assert gateway.proc.poll() is None


def test_unselect_by_the_device_is_followed(gateway, dovecot, make_user):
    # The device's own UNSELECT, answered OK, leaves nothing to undo: the
    # connection is kept, and the next session starts unselected.
    u = make_user()
    off = gateway.log_offset()
    c = login(gateway, u)
    ok(c, "b", "SELECT INBOX")
    ok(c, "c", "UNSELECT")
    logout_and_closed(c)
    c = login_reused(gateway, u, off)
    assert_unselected(c, "d")
    logout_and_closed(c)

