"""
IMAP login through the gateway: greetings and capabilities on both
listeners, LOGIN and AUTHENTICATE PLAIN (with and without SASL-IR) on
implicit TLS and after STARTTLS, upstream over implicit TLS and over
STARTTLS, and the answers to wrong credentials.
"""

import imaplib
import re

import pytest

from harness import ALICE, ALICE_GW_PASSWORD, ALICE_LOGIN, ALICE_APP_PASSWORD
from harness import RawIMAP, capabilities, logout, plain_ir


def plain(user, password):
    return lambda _challenge: b"\0" + user.encode() + b"\0" + password.encode()


@pytest.fixture(scope="module")
def upstream_caps(dovecot):
    """What Dovecot advertises after login, asked directly."""
    # Raw: Dovecot moves the list to an untagged reply when the client
    # asked CAPABILITY before login, as imaplib does.
    c = RawIMAP.connect(dovecot.addr, dovecot.imaps_port, dovecot.ca.context())
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (ALICE_LOGIN, ALICE_APP_PASSWORD))
        caps = capabilities(tagged)
        assert caps, tagged
        return caps
    finally:
        c.close()


def assert_upstream_caps(reply, upstream_caps):
    """The tagged OK of a login carries the provider's capabilities."""
    caps = capabilities(reply)
    assert caps is not None, "no [CAPABILITY ...] in the login reply: %r" % (reply,)
    assert "IMAP4REV1" in caps
    # Only Dovecot's post-login list has these; the gateway's own
    # pre-login list does not.
    assert {"IDLE", "QRESYNC", "UIDPLUS"} <= caps, caps
    assert not any(c.startswith("AUTH=") for c in caps), caps
    assert caps <= upstream_caps, "not advertised by the provider: %s" % (caps - upstream_caps)


# -- greetings and capabilities ----------------------------------------------


def test_greeting_implicit_tls(gateway):
    c = gateway.raw("implicit")
    try:
        assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1"), c.greeting
        caps = capabilities(c.greeting)
        assert {"AUTH=PLAIN", "SASL-IR"} <= caps, caps
        assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
        untagged, tagged = c.command("a", "CAPABILITY")
        assert tagged.startswith(b"a OK"), tagged
        assert capabilities(untagged[0]) == caps, untagged
    finally:
        c.close()


def test_greeting_starttls_listener_before_tls(gateway):
    c = gateway.raw("plain")
    try:
        assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1"), c.greeting
        caps = capabilities(c.greeting)
        assert {"STARTTLS", "LOGINDISABLED"} <= caps, caps
        assert not any(x.startswith("AUTH=") for x in caps), caps
        untagged, tagged = c.command("a", "CAPABILITY")
        assert tagged.startswith(b"a OK"), tagged
        assert capabilities(untagged[0]) == caps, untagged
    finally:
        c.close()


def test_capabilities_after_starttls(gateway):
    m = gateway.imap_starttls()
    try:
        caps = set(m.capabilities)
        assert {"IMAP4REV1", "AUTH=PLAIN", "SASL-IR"} <= caps, caps
        assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
    finally:
        m.shutdown()


def test_login_before_starttls_refused(gateway):
    m = gateway.imap_plain()
    try:
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, ALICE_GW_PASSWORD)
    finally:
        m.shutdown()
    c = gateway.raw("plain")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"a NO"), tagged
        _, tagged = c.command("b", "AUTHENTICATE PLAIN " + plain_ir(ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith((b"b NO", b"b BAD")), tagged
        # Still not logged in.
        _, tagged = c.command("c", "SELECT INBOX")
        assert tagged.startswith((b"c NO", b"c BAD")), tagged
        # And STARTTLS still works afterwards.
        c.starttls("d")
        _, tagged = c.command("e", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"e OK"), tagged
    finally:
        c.close()


# -- successful logins ---------------------------------------------------------


def check_session(m):
    """The session is now the provider's: SELECT and a search work."""
    typ, data = m.select("INBOX")
    assert typ == "OK", (typ, data)
    typ, data = m.uid("SEARCH", "ALL")
    assert typ == "OK", (typ, data)


def test_login_implicit_tls(gateway, upstream_caps):
    m = gateway.imap_ssl()
    try:
        typ, data = m.login(ALICE, ALICE_GW_PASSWORD)
        assert typ == "OK"
        assert_upstream_caps(data[0], upstream_caps)
        check_session(m)
    finally:
        logout(m)


def test_login_implicit_tls_by_dns_name(gateway):
    # The gateway's certificate also carries DNS:localhost.
    m = gateway.imap_ssl(host="localhost")
    try:
        typ, _ = m.login(ALICE, ALICE_GW_PASSWORD)
        assert typ == "OK"
    finally:
        logout(m)


def test_authenticate_plain_implicit_tls(gateway, upstream_caps):
    # imaplib sends AUTHENTICATE PLAIN without an initial response and
    # answers the continuation.
    m = gateway.imap_ssl()
    try:
        typ, data = m.authenticate("PLAIN", plain(ALICE, ALICE_GW_PASSWORD))
        assert typ == "OK"
        assert_upstream_caps(data[0], upstream_caps)
        check_session(m)
    finally:
        logout(m)


def test_authenticate_plain_sasl_ir(gateway, upstream_caps):
    c = gateway.raw("implicit")
    try:
        untagged, tagged = c.login_plain_ir("a", ALICE, ALICE_GW_PASSWORD)
        assert tagged.startswith(b"a OK"), c.dump()
        assert not any(l.startswith(b"+") for l in untagged), c.dump()
        assert_upstream_caps(tagged, upstream_caps)
        _, tagged = c.command("b", "SELECT INBOX")
        assert tagged.startswith(b"b OK"), c.dump()
        untagged, tagged = c.command("c", "LOGOUT")
        assert any(l.startswith(b"* BYE") for l in untagged), c.dump()
        assert tagged.startswith(b"c OK"), c.dump()
    finally:
        c.close()


def test_authenticate_plain_sasl_ir_after_starttls(gateway):
    c = gateway.raw("starttls")
    try:
        _, tagged = c.login_plain_ir("a", ALICE, ALICE_GW_PASSWORD)
        assert tagged.startswith(b"a OK [CAPABILITY"), c.dump()
    finally:
        c.close()


def test_login_starttls(gateway, upstream_caps):
    m = gateway.imap_starttls()
    try:
        typ, data = m.login(ALICE, ALICE_GW_PASSWORD)
        assert typ == "OK"
        assert_upstream_caps(data[0], upstream_caps)
        check_session(m)
    finally:
        logout(m)


def test_authenticate_plain_starttls(gateway, upstream_caps):
    m = gateway.imap_starttls()
    try:
        typ, data = m.authenticate("PLAIN", plain(ALICE, ALICE_GW_PASSWORD))
        assert typ == "OK"
        assert_upstream_caps(data[0], upstream_caps)
        check_session(m)
    finally:
        logout(m)


def test_authenticate_plain_cancelled(gateway):
    # RFC 3501 6.2.2: "*" cancels the exchange with a tagged BAD; the
    # session can log in afterwards.
    c = gateway.raw("implicit")
    try:
        c.send(b"a AUTHENTICATE PLAIN\r\n")
        line = c.readline()
        assert line.startswith(b"+"), c.dump()
        c.send(b"*\r\n")
        _, tagged = c.read_until_tagged("a")
        assert tagged.startswith(b"a BAD"), c.dump()
        _, tagged = c.command("b", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"b OK"), c.dump()
    finally:
        c.close()


def test_login_upstream_starttls(gateway, dovecot, make_user, upstream_caps):
    u = make_user(provider="testprov-starttls")
    off = dovecot.log_offset()
    for how in ("login", "authenticate"):
        m = gateway.imap_ssl()
        try:
            if how == "login":
                typ, data = m.login(u.name, u.password)
            else:
                typ, data = m.authenticate("PLAIN", plain(u.name, u.password))
            assert typ == "OK"
            assert_upstream_caps(data[0], upstream_caps)
            check_session(m)
        finally:
            logout(m)
    # Dovecot saw the gateway log in from 127.0.0.1 over TLS.
    dovecot.wait_log(r"Login: user=<%s>, method=\S+, rip=127\.0\.0\.1, lip=127\.0\.0\.2, "
                     r"mpid=\d+, TLS" % re.escape(u.login), off)


def test_login_quoted_and_literal_arguments(gateway, make_user):
    # RFC 3501 astring: atom, quoted string or literal. imaplib quotes the
    # password; here the user is a literal and the password a quoted string.
    u = make_user()
    c = gateway.raw("implicit")
    try:
        c.send(b"a LOGIN {%d}\r\n" % len(u.name))
        line = c.readline()
        assert line.startswith(b"+"), c.dump()
        c.send(u.name.encode() + b' "' + u.password.encode() + b'"\r\n')
        _, tagged = c.read_until_tagged("a")
        assert tagged.startswith(b"a OK"), c.dump()
    finally:
        c.close()


# -- refusals ------------------------------------------------------------------


AUTHFAILED = re.compile(rb"^a NO \[AUTHENTICATIONFAILED\] \S.*\r\n$")


def refusal(gateway, how, user, password, tls="implicit"):
    c = gateway.raw(tls)
    try:
        if how == "login":
            _, tagged = c.command("a", "LOGIN %s %s" % (user, password))
        else:
            _, tagged = c.login_plain_ir("a", user, password)
        return tagged
    finally:
        c.close()


@pytest.mark.parametrize("how", ["login", "authenticate"])
def test_wrong_password_and_unknown_user(gateway, how):
    wrong = refusal(gateway, how, ALICE, "not-the-password")
    assert AUTHFAILED.match(wrong), wrong
    unknown = refusal(gateway, how, "nosuchuser", "whatever")
    assert AUTHFAILED.match(unknown), unknown
    # Nothing tells an unknown user from a wrong password.
    assert unknown == wrong


def test_wrong_password_imaplib(gateway):
    m = gateway.imap_starttls()
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(ALICE, "not-the-password")
    finally:
        m.shutdown()
    m = gateway.imap_ssl()
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.authenticate("PLAIN", plain(ALICE, "not-the-password"))
    finally:
        m.shutdown()


def test_provider_password_is_not_the_gateway_password(gateway):
    # The device knows only its gateway password; the app password must not
    # open the gateway.
    assert AUTHFAILED.match(refusal(gateway, "login", ALICE, ALICE_APP_PASSWORD))


def test_retry_after_failure_on_same_connection(gateway):
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (ALICE, "not-the-password"))
        assert AUTHFAILED.match(tagged), tagged
        _, tagged = c.command("b", "LOGIN %s %s" % (ALICE, ALICE_GW_PASSWORD))
        assert tagged.startswith(b"b OK"), c.dump()
    finally:
        c.close()


def test_prelogin_commands_and_errors(gateway):
    """ID (with a list or NIL), NOOP, unknown and malformed commands before login."""
    c = gateway.raw("implicit")
    try:
        untagged, tagged = c.command("i1", 'ID ("name" "test-client" "version" "1")')
        assert tagged.startswith(b"i1 OK"), tagged
        assert untagged == [b'* ID ("name" "mailgate")\r\n'], untagged
        untagged, tagged = c.command("i2", "ID NIL")
        assert tagged.startswith(b"i2 OK") and untagged[0].startswith(b"* ID ("), (untagged, tagged)
        _, tagged = c.command("n1", "NOOP")
        assert tagged.startswith(b"n1 OK"), tagged
        # A command of the authenticated state is refused, not relayed.
        _, tagged = c.command("s1", "SELECT INBOX")
        assert tagged.startswith(b"s1 BAD"), tagged
        # A malformed one gets a tagged BAD and the session goes on.
        _, tagged = c.command("q1", 'LOGIN "unterminated')
        assert tagged.startswith(b"q1 BAD"), tagged
        _, tagged = c.command("n2", "NOOP")
        assert tagged.startswith(b"n2 OK"), tagged
    finally:
        c.close()


def assert_bye_then_closed(c, why):
    """The next line is a BYE saying why, and the gateway closes the connection after it."""
    line = c.readline()
    assert line.startswith(b"* BYE") and why in line, line
    with pytest.raises(EOFError):
        c.readline()


def test_overlong_line_is_refused_and_closed(gateway):
    c = gateway.raw("implicit")
    try:
        c.send(b"a LOGIN " + b"x" * 10000 + b"\r\n")
        assert_bye_then_closed(c, b"too long")
    finally:
        c.close()
    # ... and keeps serving others.
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("n", "NOOP")
        assert tagged.startswith(b"n OK"), tagged
    finally:
        c.close()


def test_three_failures_close_the_connection(gateway):
    """login.c counts failures per connection for every protocol: the third ends it."""
    c = gateway.raw("implicit")
    try:
        for i in range(3):
            _, tagged = c.command("f%d" % i, "LOGIN alice wrong-%d" % i)
            assert b"[AUTHENTICATIONFAILED]" in tagged, tagged
        assert_bye_then_closed(c, b"Too many authentication failures")
    finally:
        c.close()
