"""
Device passwords: `mailgate device add` prints a generated password once;
the device logs in as its user with it, on the protocols of its scopes only.
The user's own password works beside them until `user password-login off`.
`device list` shows when and from where each device was last used; `device
revoke` takes one away; `user disable` stops every login of the user.
"""

import re

import pytest

import creds
from creds import (DEVICE_PASSWORD, EXIT_EXISTS, EXIT_NOTFOUND, EXIT_OK, EXIT_USAGE,
                   IMAP_AUTHFAILED, IMAP_OK, POP3_AUTH, assert_all_refused, assert_all_work,
                   cli_json, cli_status, device_add, device_revoke, devices, imap_login, out,
                   pop3_login, smtp_login)
from harness import wait_for


@pytest.fixture(scope="module")
def gateway(workdir, ca, dovecot, postfix, request):
    """conftest's gateway, with brute-force delays off (see creds.NO_BRUTE_FORCE)."""
    yield from creds.module_gateway(workdir, ca, dovecot, postfix, request)

# What `device list --json` may show for "not used yet".
NEVER = (None, "", "-", 0, "never")


def test_device_add_prints_the_password_once(gateway, make_user):
    u = make_user(upstream=False, with_account=False)
    pw = device_add(gateway, u.name, "phone")
    assert len(pw) == 39, pw
    # --json: the same, with the user, label and scopes.
    j = cli_json(gateway, "device", "add", u.name, "laptop", "--scopes", "imap,smtp")
    assert j["user"] == u.name and j["label"] == "laptop", j
    assert DEVICE_PASSWORD.match(j["password"]), j
    assert set(re.split(r"[,\s]+", j["scopes"])) == {"imap", "smtp"}, j
    assert j["password"] != pw
    # Never shown again: the listing has no password, nor the hash of one.
    p = gateway.cli("device", "list", u.name)
    text = (p.stdout + p.stderr).decode()
    assert "phone" in text and "laptop" in text, text
    assert pw not in text and j["password"] not in text, text
    assert "password" not in cli_json(gateway, "device", "list", u.name)[0]


def test_device_add_refusals(gateway, make_user):
    u = make_user(upstream=False, with_account=False)
    device_add(gateway, u.name, "phone")
    cases = [
        (["device", "add", u.name, "phone"], EXIT_EXISTS),
        (["device", "add", "nosuchuser", "phone"], EXIT_NOTFOUND),
        (["device", "add", u.name, "tablet", "--account", "nosuchprovider"], EXIT_NOTFOUND),
        (["device", "add", u.name, "tablet", "--scopes", "imap,nntp"], EXIT_USAGE),
        (["device", "revoke", u.name, "nosuchdevice"], EXIT_NOTFOUND),
        (["device", "revoke", "nosuchuser", "phone"], EXIT_NOTFOUND),
    ]
    for argv, want in cases:
        p = cli_status(gateway, *argv)
        assert p.returncode == want, "%s: want exit %d\n%s" % (" ".join(argv), want, out(p))
        assert not DEVICE_PASSWORD.match(p.stdout.decode().strip()), out(p)
    # None of the refused adds left a device behind.
    assert set(label for _, label in devices(gateway, u.name)) == {"phone"}


def test_device_password_logs_in_on_every_protocol(gateway, make_user):
    u = make_user()
    pw = device_add(gateway, u.name, "phone")
    assert_all_work(gateway, u.name, pw)
    # The user's own password still works beside it.
    assert_all_work(gateway, u.name, u.password)
    # A device password belongs to its user only.
    other = make_user()
    assert_all_refused(gateway, other.name, pw)


def test_device_scopes(gateway, make_user):
    u = make_user()
    smtp_only = device_add(gateway, u.name, "scanner", scopes="smtp")
    t = imap_login(gateway, u.name, smtp_only)
    assert IMAP_AUTHFAILED.match(t), t
    s = pop3_login(gateway, u.name, smtp_only)
    assert POP3_AUTH.match(s), s
    code, text = smtp_login(gateway, u.name, smtp_only)
    assert code == 235, (code, text)

    mail = device_add(gateway, u.name, "reader", scopes="imap,pop3")
    assert IMAP_OK.match(imap_login(gateway, u.name, mail))
    assert pop3_login(gateway, u.name, mail).startswith(b"+OK")
    code, text = smtp_login(gateway, u.name, mail)
    assert (code, text[:5]) == (535, "5.7.8"), (code, text)


def test_device_list_last_used(gateway, make_user):
    u = make_user()
    pw = device_add(gateway, u.name, "phone")
    device_add(gateway, u.name, "spare", scopes="pop3")
    rows = devices(gateway, u.name)
    assert set(rows) == {(u.name, "phone"), (u.name, "spare")}, rows
    phone = rows[(u.name, "phone")]
    for key in ("label", "scopes", "account", "created", "last_used", "last_address"):
        assert key in phone, phone
    assert phone["created"], phone
    assert phone["last_used"] in NEVER, phone
    assert phone["last_address"] in (None, "", "-"), phone

    assert IMAP_OK.match(imap_login(gateway, u.name, pw))

    def used():
        r = devices(gateway, u.name)[(u.name, "phone")]
        return r if r["last_used"] not in NEVER else None

    phone = wait_for(used, 5.0, "device list to show the phone's last use")
    assert "127.0.0.1" in str(phone["last_address"]), phone
    # The unused device shows no use; a login with the user's own password
    # is no device's use.
    assert devices(gateway, u.name)[(u.name, "spare")]["last_used"] in NEVER
    # Without USER: every user's devices, this one's among them.
    assert (u.name, "phone") in devices(gateway)


def test_device_revoke(gateway, make_user):
    u = make_user()
    phone = device_add(gateway, u.name, "phone")
    laptop = device_add(gateway, u.name, "laptop")
    assert_all_work(gateway, u.name, phone)
    device_revoke(gateway, u.name, "phone")
    assert_all_refused(gateway, u.name, phone)
    assert_all_work(gateway, u.name, laptop)
    assert set(label for _, label in devices(gateway, u.name)) == {"laptop"}
    # The label is free again: a new device, a new password.
    again = device_add(gateway, u.name, "phone")
    assert again != phone
    assert IMAP_OK.match(imap_login(gateway, u.name, again))


def test_password_login_off(gateway, make_user):
    u = make_user()
    pw = device_add(gateway, u.name, "phone")
    p = cli_status(gateway, "user", "password-login", u.name, "off")
    assert p.returncode == EXIT_OK, out(p)
    assert_all_refused(gateway, u.name, u.password)
    assert_all_work(gateway, u.name, pw)
    p = cli_status(gateway, "user", "password-login", u.name, "on")
    assert p.returncode == EXIT_OK, out(p)
    assert_all_work(gateway, u.name, u.password)
    for argv, want in ((["user", "password-login", u.name, "maybe"], EXIT_USAGE),
                       (["user", "password-login", "nosuchuser", "off"], EXIT_NOTFOUND)):
        p = cli_status(gateway, *argv)
        assert p.returncode == want, out(p)


def test_user_disable_enable(gateway, make_user):
    u = make_user()
    pw = device_add(gateway, u.name, "phone")
    p = cli_status(gateway, "user", "disable", u.name)
    assert p.returncode == EXIT_OK, out(p)
    # Neither the password nor a device logs in; the reply is the
    # bad-credential one, as for an unknown user.
    assert_all_refused(gateway, u.name, u.password)
    assert_all_refused(gateway, u.name, pw)
    # Still listed, with everything it had.
    names = [r.get("name") or r.get("user") for r in cli_json(gateway, "user", "list")]
    assert u.name in names, names
    assert (u.name, "phone") in devices(gateway, u.name)
    p = cli_status(gateway, "user", "enable", u.name)
    assert p.returncode == EXIT_OK, out(p)
    assert_all_work(gateway, u.name, u.password)
    assert_all_work(gateway, u.name, pw)
    for verb in ("disable", "enable"):
        p = cli_status(gateway, "user", verb, "nosuchuser")
        assert p.returncode == EXIT_NOTFOUND, out(p)
