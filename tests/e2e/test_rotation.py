"""
Password changes. The provider app password rotates behind the device's
back: once `mailgate account set` holds the new one, the unchanged device
logs in again. The gateway password changes with `mailgate user passwd`.
Deleting an account or a user takes effect at the next login, without a
restart.
"""

import re

from harness import logout

AUTHFAILED = re.compile(rb"^a NO \[AUTHENTICATIONFAILED\] ")
UNAVAILABLE = re.compile(rb"^a NO \[UNAVAILABLE\] ")


def login(gateway, name, password):
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (name, password))
        if tagged.startswith(b"a OK"):
            _, sel = c.command("b", "SELECT INBOX")
            assert sel.startswith(b"b OK"), c.dump()
        return tagged
    finally:
        c.close()


def test_app_password_rotation(gateway, dovecot, make_user):
    u = make_user()
    assert login(gateway, u.name, u.password).startswith(b"a OK")
    for i in range(2):
        new = "%s-rot%d" % (u.app_password, i)
        dovecot.set_password(u.login, new)
        assert UNAVAILABLE.match(login(gateway, u.name, u.password))
        gateway.set_account(u.name, u.provider, u.login, new)
        tagged = login(gateway, u.name, u.password)
        assert tagged.startswith(b"a OK"), tagged


def test_app_password_rotation_imaplib(gateway, dovecot, make_user):
    # The same, with a real client library holding its one password.
    u = make_user()
    new = u.app_password + "-new"
    dovecot.set_password(u.login, new)
    gateway.set_account(u.name, u.provider, u.login, new)
    m = gateway.imap_ssl()
    try:
        typ, _ = m.login(u.name, u.password)
        assert typ == "OK"
        typ, _ = m.select("INBOX")
        assert typ == "OK"
    finally:
        logout(m)


def test_gateway_password_change(gateway, make_user):
    u = make_user()
    assert login(gateway, u.name, u.password).startswith(b"a OK")
    new = u.password + "-new"
    gateway.cli("user", "passwd", u.name, "--password-stdin", input=new + "\n")
    tagged = login(gateway, u.name, new)
    assert tagged.startswith(b"a OK"), tagged
    tagged = login(gateway, u.name, u.password)
    assert AUTHFAILED.match(tagged), tagged


def test_account_switch_provider(gateway, make_user):
    # `account set` on a user who had no account yet, then the account
    # deleted: UNAVAILABLE again.
    u = make_user(with_account=False)
    assert UNAVAILABLE.match(login(gateway, u.name, u.password))
    gateway.set_account(u.name, "testprov-starttls", u.login, u.app_password)
    tagged = login(gateway, u.name, u.password)
    assert tagged.startswith(b"a OK"), tagged
    gateway.cli("account", "del", u.name, "testprov-starttls")
    tagged = login(gateway, u.name, u.password)
    assert UNAVAILABLE.match(tagged), tagged


def test_user_deleted(gateway, make_user):
    u = make_user()
    assert login(gateway, u.name, u.password).startswith(b"a OK")
    gateway.cli("user", "del", u.name)
    tagged = login(gateway, u.name, u.password)
    assert AUTHFAILED.match(tagged), tagged
