"""
After login the session is the provider's: messages delivered upstream are
read through the gateway byte for byte (imaplib and curl), messages
appended through the gateway land upstream byte for byte, large literals
cross in both directions, and IDLE sees new mail.
"""

import secrets
import ssl

import pytest

from harness import ALICE, ALICE_GW_PASSWORD, ALICE_LOGIN
from harness import IO_TIMEOUT, logout, make_message, run, uid_fetch_body


def mailbox_name(prefix):
    return "%s%s" % (prefix, secrets.token_hex(4))


def gw_login(gateway):
    m = gateway.imap_ssl()
    typ, _ = m.login(ALICE, ALICE_GW_PASSWORD)
    assert typ == "OK"
    return m


def test_fetch_message_delivered_upstream(gateway, dovecot):
    box = mailbox_name("Relay")
    msg = make_message("relay %s" % box, ["line one", "line two", "", "-- ", "end"])
    uid = dovecot.append(ALICE_LOGIN, box, msg)
    m = gw_login(gateway)
    try:
        typ, data = m.select(box, readonly=True)
        assert typ == "OK" and data == [b"1"], (typ, data)
        assert uid_fetch_body(m, uid) == msg
        typ, data = m.uid("FETCH", str(uid), "(RFC822.SIZE)")
        assert typ == "OK" and (b"RFC822.SIZE %d" % len(msg)) in data[0], data
    finally:
        logout(m)


def test_append_through_gateway(gateway, dovecot):
    box = mailbox_name("Append")
    msg = make_message("append %s" % box)
    m = gw_login(gateway)
    try:
        typ, data = m.create(box)
        assert typ == "OK", data
        typ, data = m.append(box, "(\\Seen)", None, msg)
        assert typ == "OK", data
    finally:
        logout(m)
    assert dovecot.fetch(ALICE_LOGIN, box, 1) == msg


def test_curl_list_and_fetch(gateway, dovecot, ca):
    box = mailbox_name("Curl")
    msg = make_message("curl %s" % box, ["Fetched by curl through mailgate."])
    uid = dovecot.append(ALICE_LOGIN, box, msg)
    base = "imaps://127.0.0.1:%d/" % gateway.imaps_port
    curl = ["curl", "-sS", "--max-time", str(int(IO_TIMEOUT)), "--cacert", ca.ca_cert,
            "-u", "%s:%s" % (ALICE, ALICE_GW_PASSWORD)]
    listing = run(curl + [base]).stdout
    assert b"INBOX" in listing, listing
    assert box.encode() in listing, listing
    listing = run(curl + [base + "INBOX"]).stdout
    assert b"INBOX" in listing, listing
    fetched = run(curl + [base + "%s;UID=%d" % (box, uid)]).stdout
    assert fetched == msg


def test_curl_wrong_password(gateway, ca):
    p = run(["curl", "-sS", "--max-time", str(int(IO_TIMEOUT)), "--cacert", ca.ca_cert,
             "-u", "%s:%s" % (ALICE, "not-the-password"),
             "imaps://127.0.0.1:%d/INBOX" % gateway.imaps_port], check=False)
    assert p.returncode == 67, (p.returncode, p.stderr)  # CURLE_LOGIN_DENIED


def test_curl_refuses_gateway_without_trust(gateway, ca):
    # The other CA did not sign the gateway's certificate: curl must refuse.
    p = run(["curl", "-sS", "--max-time", str(int(IO_TIMEOUT)), "--cacert", ca.other_ca_cert,
             "-u", "%s:%s" % (ALICE, ALICE_GW_PASSWORD),
             "imaps://127.0.0.1:%d/INBOX" % gateway.imaps_port], check=False)
    assert p.returncode == 60, (p.returncode, p.stderr)  # CURLE_PEER_FAILED_VERIFICATION


def test_large_message_fetched_byte_exact(gateway, dovecot):
    box = mailbox_name("Big")
    msg = make_message("big %s" % box, size=8 * 1024 * 1024, seed=1)
    assert len(msg) > 8_000_000
    uid = dovecot.append(ALICE_LOGIN, box, msg)
    m = gw_login(gateway)
    try:
        typ, _ = m.select(box, readonly=True)
        assert typ == "OK"
        got = uid_fetch_body(m, uid)
        assert len(got) == len(msg)
        assert got == msg
        # The session is still in step after the literal.
        typ, data = m.noop()
        assert typ == "OK", data
    finally:
        logout(m)


def test_large_append_byte_exact(gateway, dovecot):
    box = mailbox_name("BigAppend")
    msg = make_message("big append %s" % box, size=5 * 1024 * 1024, seed=2)
    m = gw_login(gateway)
    try:
        typ, _ = m.create(box)
        assert typ == "OK"
        typ, data = m.append(box, None, None, msg)
        assert typ == "OK", data
        typ, data = m.noop()
        assert typ == "OK", data
    finally:
        logout(m)
    assert dovecot.fetch(ALICE_LOGIN, box, 1) == msg


def test_idle_sees_upstream_delivery(gateway, dovecot):
    box = mailbox_name("Idle")
    dovecot.append(ALICE_LOGIN, box, make_message("first in %s" % box))
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"a OK"), c.dump()
        untagged, tagged = c.command("b", "SELECT %s" % box)
        assert tagged.startswith(b"b OK"), c.dump()
        assert b"* 1 EXISTS\r\n" in untagged, c.dump()
        c.send(b"t IDLE\r\n")
        line = c.readline()
        assert line.startswith(b"+"), c.dump()
        # Delivered behind the gateway's back; IDLE must report it. The
        # socket timeout is the deadline.
        dovecot.append(ALICE_LOGIN, box, make_message("second in %s" % box))
        while True:
            line = c.readline()
            assert not line.startswith(b"t "), c.dump()
            if line == b"* 2 EXISTS\r\n":
                break
        c.send(b"DONE\r\n")
        _, tagged = c.read_until_tagged("t")
        assert tagged.startswith(b"t OK"), c.dump()
        untagged, tagged = c.command("u", "UID FETCH 1:* (UID)")
        assert tagged.startswith(b"u OK") and len(untagged) == 2, c.dump()
    finally:
        c.close()


def test_concurrent_sessions(gateway, dovecot):
    # Several sessions of one user at once, each with its own upstream.
    sessions = [gw_login(gateway) for _ in range(5)]
    try:
        for i, m in enumerate(sessions):
            typ, data = m.select("INBOX", readonly=True)
            assert typ == "OK", (i, data)
        for m in sessions:
            typ, data = m.noop()
            assert typ == "OK"
    finally:
        for m in sessions:
            logout(m)


def test_logout_closes(gateway):
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"a OK"), c.dump()
        untagged, tagged = c.command("b", "LOGOUT")
        assert any(l.startswith(b"* BYE") for l in untagged), c.dump()
        assert tagged.startswith(b"b OK"), c.dump()
        # Then the gateway closes the connection (EOF within the deadline).
        try:
            while c.sock.recv(4096):
                pass
        except TimeoutError:
            pytest.fail("the gateway kept the connection open after LOGOUT")
        except (ConnectionResetError, ssl.SSLError):
            pass  # closed without close_notify: closed all the same
    finally:
        c.close()
