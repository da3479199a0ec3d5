"""
Upstream faults are the gateway's or the provider's, not the device's: they
answer `NO [UNAVAILABLE] <short reason>`, never AUTHENTICATIONFAILED (a
device that sees AUTHENTICATIONFAILED asks its user for a new password,
which would not help). An untrusted provider never sees a credential.
"""

import re

import pytest


UNAVAILABLE = re.compile(rb"^a NO \[UNAVAILABLE\] (\S[^\r\n]*)\r\n$")


def try_login(gateway, user, how, tls="implicit"):
    c = gateway.raw(tls)
    try:
        if how == "login":
            _, tagged = c.command("a", "LOGIN %s %s" % (user.name, user.password))
        else:
            _, tagged = c.login_plain_ir("a", user.name, user.password)
        return tagged
    finally:
        c.close()


def assert_unavailable(tagged, user):
    mo = UNAVAILABLE.match(tagged)
    assert mo, "expected a NO [UNAVAILABLE] reason, got %r" % (tagged,)
    reason = mo.group(1)
    assert len(reason) <= 200, reason
    # The reason is for the device: no secret of the account in it.
    assert user.app_password.encode() not in reason
    assert user.password.encode() not in reason
    return reason


@pytest.mark.parametrize("how", ["login", "authenticate"])
def test_user_without_account(gateway, make_user, how):
    u = make_user(upstream=False, with_account=False)
    assert_unavailable(try_login(gateway, u, how), u)


@pytest.mark.parametrize("how", ["login", "authenticate"])
def test_provider_unreachable(gateway, make_user, how):
    u = make_user(provider="down", upstream=False)
    assert_unavailable(try_login(gateway, u, how), u)


@pytest.mark.parametrize("how", ["login", "authenticate"])
def test_provider_certificate_not_trusted(gateway, dovecot, make_user, how):
    # The provider exists, knows the user and would accept the app
    # password: only the certificate check stands in the way.
    u = make_user(provider="untrusted")
    off = dovecot.log_offset()
    assert_unavailable(try_login(gateway, u, how), u)
    # The gateway did reach the provider and gave up during the handshake ...
    # (Dovecot words it "no auth attempts", or "disconnected before auth was
    # ready" when the gateway hung up before Dovecot's auth service answered.)
    dovecot.wait_log(r"imap-login: .*Disconnected.*\((no auth attempts|disconnected before auth"
                     r" was ready)[^\n]*"
                     r"rip=127\.0\.0\.1, lip=127\.0\.0\.2", off)
    # ... and never logged in: after a barrier (a login by someone else,
    # logged after it), the user's name is nowhere in the log.
    dovecot.log_barrier()
    log = dovecot.log_since(off)
    assert "Login: user=<%s>" % u.login not in log, log
    assert u.login not in log, "the provider saw a login attempt for %s:\n%s" % (u.login, log)


@pytest.mark.parametrize("how", ["login", "authenticate"])
def test_stale_app_password(gateway, dovecot, make_user, how):
    u = make_user()
    assert try_login(gateway, u, how).startswith(b"a OK")
    # The provider's password changes; the gateway still holds the old one.
    dovecot.set_password(u.login, "rotated-" + u.app_password)
    off = dovecot.log_offset()
    tagged = try_login(gateway, u, how)
    assert b"AUTHENTICATIONFAILED" not in tagged, tagged
    assert_unavailable(tagged, u)
    # It was the provider that refused the stale app password.
    dovecot.wait_log(r"passwd-file\(%s,127\.0\.0\.1,[^\n]*Password mismatch" % re.escape(u.login),
                     off)


def test_unavailable_on_starttls_listener(gateway, make_user):
    u = make_user(provider="down", upstream=False)
    assert_unavailable(try_login(gateway, u, "login", tls="starttls"), u)


def test_session_usable_after_unavailable(gateway, make_user):
    # A refused upstream leaves the device's session not authenticated:
    # no command reaches a provider, and LOGOUT still works.
    u = make_user(provider="down", upstream=False)
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (u.name, u.password))
        assert_unavailable(tagged, u)
        _, tagged = c.command("b", "SELECT INBOX")
        assert tagged.startswith((b"b NO", b"b BAD")), c.dump()
        untagged, tagged = c.command("c", "LOGOUT")
        assert tagged.startswith(b"c OK"), c.dump()
    finally:
        c.close()
