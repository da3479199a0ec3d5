"""
Live revocation: a revoking change made with the CLI ends the affected live
sessions within 5 s (the gateway polls the store every 2 s by default),
and only those. Each test measures the delay from the CLI's return to the
connection's close, prints it, and checks that the sessions that must
survive still relay to the provider afterwards.
"""

import re
import time

import pytest

import creds
from creds import (EXIT_OK, IMAP_AUTHFAILED, IMAP_OK, REVOKE_BOUND, Live, assert_all_refused,
                   cli_status, device_add, device_revoke, imap_login, live_sessions, log_offset,
                   log_since, out, revoke_delay, set_password, wait_log)


@pytest.fixture(scope="module")
def gateway(workdir, ca, dovecot, postfix, request):
    """conftest's gateway, with brute-force delays off (see creds.NO_BRUTE_FORCE)."""
    yield from creds.module_gateway(workdir, ca, dovecot, postfix, request)


def closes(run_cli, sessions, what):
    """
    Runs the CLI change, then waits for every session in `sessions` to
    close; each delay (from the CLI's return) must be under the bound.
    Returns the delays.
    """
    run_cli()
    t0 = time.monotonic()
    delays = []
    for s in sessions:
        d = max(0.0, s.wait_closed() - t0)
        print("%s: %s session of %s closed %.2f s after the CLI returned" % (what, s.proto, s.user, d))
        delays.append(d)
    late = [(s.proto, s.user, round(d, 2)) for s, d in zip(sessions, delays) if d >= REVOKE_BOUND]
    assert not late, "%s: sessions closed later than %.0f s: %s" % (what, REVOKE_BOUND, late)
    return delays


def revoked_lines(gw, offset, user):
    """The gateway's `<proto> revoked user=U device=...` lines after offset."""
    return re.findall(r" (\w+) revoked user=\"?%s\"? device=(\S+)" % re.escape(user),
                      log_since(gw, offset))


def wait_revoked_lines(gw, offset, user, n):
    wait_log(gw, r" \w+ revoked user=\"?%s\"? device=" % re.escape(user), offset, count=n)
    wait_log(gw, r" closed .*user=\"?%s\"? .*reason=\"credential revoked\"" % re.escape(user),
             offset, count=n)
    return sorted(revoked_lines(gw, offset, user))


def test_device_revoke_closes_that_device_only(gateway, make_user):
    u = make_user()
    phone = device_add(gateway, u.name, "phone")
    laptop = device_add(gateway, u.name, "laptop")
    off = log_offset(gateway)
    with live_sessions() as ss:
        s_phone = Live(gateway, u.name, phone)
        s_laptop = Live(gateway, u.name, laptop)
        s_password = Live(gateway, u.name, u.password)
        ss += [s_phone, s_laptop, s_password]
        revoke_delay(lambda: device_revoke(gateway, u.name, "phone"), s_phone, "device revoke")
        # The same check that closed the phone saw the others: they relay.
        s_laptop.alive()
        s_password.alive()
        assert wait_revoked_lines(gateway, off, u.name, 1) == [("imap", "phone")]
        assert IMAP_AUTHFAILED.match(imap_login(gateway, u.name, phone))
        assert IMAP_OK.match(imap_login(gateway, u.name, laptop))


def test_user_disable_closes_all_sessions_of_the_user(gateway, make_user):
    u = make_user()
    other = make_user()
    phone = device_add(gateway, u.name, "phone")
    off = log_offset(gateway)
    with live_sessions() as ss:
        mine = [Live(gateway, u.name, u.password),
                Live(gateway, u.name, phone),
                Live(gateway, u.name, u.password, proto="pop3"),
                Live(gateway, u.name, phone, proto="smtp")]
        theirs = Live(gateway, other.name, other.password)
        ss += mine + [theirs]
        closes(lambda: gateway.cli("user", "disable", u.name), mine, "user disable")
        theirs.alive()
        lines = wait_revoked_lines(gateway, off, u.name, 4)
        assert lines == sorted([("imap", "-"), ("imap", "phone"), ("pop3", "-"), ("smtp", "phone")]), lines
        assert revoked_lines(gateway, off, other.name) == []
    assert_all_refused(gateway, u.name, u.password)


def test_user_passwd_closes_all_sessions_of_the_user(gateway, make_user):
    u = make_user()
    phone = device_add(gateway, u.name, "phone")
    with live_sessions() as ss:
        mine = [Live(gateway, u.name, u.password), Live(gateway, u.name, phone)]
        ss += mine
        closes(lambda: set_password(gateway, u.name, u.password + "-new"), mine, "user passwd")
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password + "-new"))
    assert IMAP_AUTHFAILED.match(imap_login(gateway, u.name, u.password))


def test_user_del_closes_all_sessions_of_the_user(gateway, make_user):
    u = make_user()
    phone = device_add(gateway, u.name, "phone")
    with live_sessions() as ss:
        mine = [Live(gateway, u.name, u.password), Live(gateway, u.name, phone, proto="pop3")]
        ss += mine
        closes(lambda: gateway.cli("user", "del", u.name), mine, "user del")
    assert IMAP_AUTHFAILED.match(imap_login(gateway, u.name, phone))


def test_password_login_off_closes_password_sessions_only(gateway, make_user):
    u = make_user()
    phone = device_add(gateway, u.name, "phone")
    off = log_offset(gateway)
    with live_sessions() as ss:
        by_password = [Live(gateway, u.name, u.password),
                       Live(gateway, u.name, u.password, proto="smtp")]
        by_device = Live(gateway, u.name, phone)
        ss += by_password + [by_device]

        def off_():
            p = cli_status(gateway, "user", "password-login", u.name, "off")
            assert p.returncode == EXIT_OK, out(p)

        closes(off_, by_password, "password-login off")
        by_device.alive()
        assert wait_revoked_lines(gateway, off, u.name, 2) == [("imap", "-"), ("smtp", "-")]


def test_account_set_keeps_live_sessions(gateway, dovecot, make_user):
    u = make_user()
    witness = make_user()
    phone = device_add(gateway, u.name, "phone")
    w_phone = device_add(gateway, witness.name, "phone")
    with live_sessions() as ss:
        mine = [Live(gateway, u.name, u.password), Live(gateway, u.name, phone),
                Live(gateway, u.name, u.password, proto="pop3")]
        w = Live(gateway, witness.name, w_phone)
        ss += mine + [w]
        # The provider rotates the app password; the admin stores the new one.
        new_app = u.app_password + "-rotated"
        dovecot.set_password(u.login, new_app)
        gateway.set_account(u.name, u.provider, u.login, new_app)
        # Proof that the gateway has polled the store since: an unrelated
        # revocation, made after the account change, has ended its session.
        revoke_delay(lambda: device_revoke(gateway, witness.name, "phone"), w, "witness revoke")
        for s in mine:
            s.alive()
    # New logins use the new app password.
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
