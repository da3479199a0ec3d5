"""
STARTTLS on the device side (RFC 3501 6.2.1, RFC 7817): commands pipelined
after STARTTLS in the same packet were sent in plaintext and must never be
executed, neither before the handshake nor after it.
"""

import ssl

import pytest

from harness import ALICE, ALICE_GW_PASSWORD
from harness import capabilities


def starttls_with_injection(gateway, injected):
    c = gateway.raw("plain")
    c.send(b"a STARTTLS\r\n" + injected)
    # Read the STARTTLS reply a byte at a time: whatever follows it on the
    # socket belongs to the TLS handshake.
    line = c.readline_unbuffered()
    while not line.startswith(b"a "):
        assert line.startswith(b"* "), c.dump()
        line = c.readline_unbuffered()
    assert line.startswith(b"a OK"), c.dump()
    try:
        c.tls_handshake()
    except (ssl.SSLError, OSError) as e:
        pytest.fail("TLS handshake after STARTTLS failed (%s): did the gateway answer the "
                    "pipelined command in plaintext?\n%s" % (e, c.dump()))
    return c


def test_pipelined_capability_not_executed(gateway):
    c = starttls_with_injection(gateway, b"b CAPABILITY\r\n")
    try:
        untagged, tagged = c.command("c", "NOOP")
        assert tagged.startswith(b"c OK"), c.dump()
        seen = [l for l in c.transcript if l.startswith(b"S: b ")]
        assert not seen, "the pipelined command was answered:\n%s" % c.dump()
        assert not [l for l in untagged if capabilities(l)], c.dump()
        # The session works normally over TLS.
        untagged, tagged = c.command("d", "CAPABILITY")
        assert tagged.startswith(b"d OK"), c.dump()
        caps = capabilities(untagged[0])
        assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps, caps
    finally:
        c.close()


def test_pipelined_login_not_executed(gateway):
    c = starttls_with_injection(gateway, b"b LOGIN %s %s\r\n" % (ALICE.encode(),
                                                                 ALICE_GW_PASSWORD.encode()))
    try:
        _, tagged = c.command("c", "NOOP")
        assert tagged.startswith(b"c OK"), c.dump()
        assert not [l for l in c.transcript if l.startswith(b"S: b ")], c.dump()
        # Not logged in by the injected command.
        _, tagged = c.command("d", "SELECT INBOX")
        assert tagged.startswith((b"d NO", b"d BAD")), c.dump()
        # A real login over TLS works.
        _, tagged = c.command("e", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"e OK"), c.dump()
    finally:
        c.close()


def test_starttls_twice_refused(gateway):
    c = gateway.raw("starttls")
    try:
        _, tagged = c.command("a", "STARTTLS")
        assert tagged.startswith((b"a NO", b"a BAD")), c.dump()
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith(b"b OK"), c.dump()
    finally:
        c.close()


def test_starttls_refused_on_implicit_listener(gateway):
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "STARTTLS")
        assert tagged.startswith((b"a NO", b"a BAD")), c.dump()
    finally:
        c.close()
