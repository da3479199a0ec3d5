"""
The audit trail (`mailgate audit`): every login (user, device, protocol,
client address, result, reason) and every admin change (what changed,
client "cli"), filtered by user and by time; never a secret, in the audit,
the store file or the gateway's log. A failed login reads "invalid
credentials" whether or not the user exists.
"""

import json
import secrets
import time

import pytest

import creds
from creds import (EXIT_OK, EXIT_USAGE, IMAP_AUTHFAILED, IMAP_OK, IMAP_UNAVAILABLE, cli_json,
                   cli_status, device_add, device_revoke, imap_login, out, pop3_login,
                   set_password, smtp_login, store_bytes)
from harness import ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, plain_ir, wait_for


@pytest.fixture(scope="module")
def gateway(workdir, ca, dovecot, postfix, request):
    """conftest's gateway, with brute-force delays off (see creds.NO_BRUTE_FORCE)."""
    yield from creds.module_gateway(workdir, ca, dovecot, postfix, request)


def audit(gateway, *args):
    rows = cli_json(gateway, "audit", *args)
    assert isinstance(rows, list), rows
    return rows


def logins(rows, user):
    return [r for r in rows if r["kind"] == "login" and r["user"] == user]


def test_audit_records_logins_and_admin_changes(gateway, dovecot, make_user):
    t_start = int(time.time()) - 1
    u = make_user()
    phone = device_add(gateway, u.name, "phone", scopes="pop3")
    nobody = "nobody" + secrets.token_hex(3)
    wrong = "wrong-" + secrets.token_hex(6)

    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
    assert pop3_login(gateway, u.name, phone).startswith(b"+OK")
    assert smtp_login(gateway, u.name, u.password)[0] == 235
    assert IMAP_AUTHFAILED.match(imap_login(gateway, u.name, wrong))
    assert IMAP_AUTHFAILED.match(imap_login(gateway, nobody, wrong))
    # The provider no longer takes the stored app password: not the
    # device's fault.
    new_app = u.app_password + "-rotated"
    dovecot.set_password(u.login, new_app)
    assert IMAP_UNAVAILABLE.match(imap_login(gateway, u.name, u.password))
    gateway.set_account(u.name, u.provider, u.login, new_app)
    new_pw = u.password + "-new"
    set_password(gateway, u.name, new_pw)
    device_revoke(gateway, u.name, "phone")

    want = [("imap", "ok", ""), ("pop3", "ok", "phone"), ("smtp", "ok", ""),
            ("imap", "fail", ""), ("imap", "tempfail", "")]

    def recorded():
        rows = audit(gateway)
        return rows if len(logins(rows, u.name)) >= len(want) and logins(rows, nobody) else None

    rows = wait_for(recorded, 5.0, "the audit to record %s's logins" % u.name)
    mine = logins(rows, u.name)
    got = [(r["protocol"], r["result"], r["device"] if r["device"] not in (None, "-") else "")
           for r in mine]
    assert got == want, json.dumps(mine, indent=1)
    for r in mine:
        assert "127.0.0.1" in r["client"], r
    fail = [r for r in mine if r["result"] == "fail"][0]
    assert fail["detail"] == "invalid credentials", fail
    assert [r for r in mine if r["result"] == "tempfail"][0]["detail"], mine

    # An unknown user's failure reads exactly as a wrong password does.
    (unknown,) = logins(rows, nobody)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("id", "time", "user", "client")}
    assert strip(unknown) == strip(fail), (unknown, fail)

    admin = [r for r in rows if r["kind"] == "admin" and r["user"] == u.name]
    assert all(r["client"] == "cli" and r["result"] == "ok" for r in admin), admin
    details = [r["detail"] for r in admin]
    for prefix in ("user add", "account set provider=testprov login=%s" % u.login,
                   "device add label=phone", "user passwd", "device revoke label=phone"):
        assert any(d.startswith(prefix) for d in details), (prefix, details)
    assert len([d for d in details if d.startswith("account set")]) == 2, details

    # --user: that user's records only.
    only = audit(gateway, "--user", u.name)
    assert only and all(r["user"] == u.name for r in only), only
    assert len(only) == len(mine) + len(admin), only

    # --since: epoch seconds, a date, a UTC time, an age.
    now = int(time.time())
    today = time.strftime("%Y-%m-%d", time.gmtime(t_start))
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(now + 86400))
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    for since, has in ((str(t_start), True), (str(now + 3600), False), (today, True),
                       (tomorrow, False), (iso(t_start), True), (iso(now + 3600), False),
                       ("30m", True)):
        got = audit(gateway, "--user", u.name, "--since", since)
        assert bool(got) == has, "--since %s: %d records" % (since, len(got))
        if has:
            assert len(got) == len(only), "--since %s: %d of %d records" % (since, len(got), len(only))
    p = cli_status(gateway, "audit", "--since", "last tuesday")
    assert p.returncode == EXIT_USAGE, out(p)

    # No secret of this test, nor of the standing user, anywhere.
    secrets_used = [u.password, new_pw, wrong, phone, u.app_password, new_app,
                    ALICE_GW_PASSWORD, ALICE_APP_PASSWORD, plain_ir(u.name, u.password)]
    text = cli_status(gateway, "audit", "--json").stdout.decode("utf-8", "replace")
    text += cli_status(gateway, "audit").stdout.decode("utf-8", "replace")
    db = store_bytes(gateway)
    log = gateway.log_text()
    for s in secrets_used:
        assert s not in text, "secret %r in the audit" % s
        assert s.encode() not in db, "secret %r in the store file" % s
        assert s not in log, "secret %r in the gateway log" % s


def test_audit_of_every_admin_change(gateway, make_user):
    # The remaining admin verbs each leave one record, with the CLI as client.
    u = make_user()
    device_add(gateway, u.name, "tablet")
    steps = [("user", "disable", u.name), ("user", "enable", u.name),
             ("user", "password-login", u.name, "off"), ("account", "del", u.name, u.provider),
             ("user", "del", u.name)]
    for argv in steps:
        p = cli_status(gateway, *argv)
        assert p.returncode == EXIT_OK, out(p)
    rows = [r for r in audit(gateway, "--user", u.name) if r["kind"] == "admin"]
    details = [r["detail"] for r in rows]
    for prefix in ("user disable", "user enable", "user password-login", "account del", "user del"):
        assert any(d.startswith(prefix) for d in details), (prefix, details)
    assert all(r["client"] == "cli" for r in rows), rows
    # The audit outlives the user it is about.
    assert any(d.startswith("user add") for d in details), details
