"""
Password changes. The provider app password rotates behind the device's
back: once `mailgate account set` holds the new one, the unchanged device
logs in again. The gateway password changes with `mailgate user passwd`.
Deleting an account or a user takes effect at the next login, without a
restart. The last test tells the whole story on IMAP, POP3 and SMTP at once.
"""

import re
import secrets

from harness import logout, make_message

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


# -- the whole story, on all three protocols -------------------------------------


def imap_reply(gateway, name, password):
    return login(gateway, name, password)


def pop3_reply(gateway, name, password):
    c = gateway.raw_pop3("implicit")
    try:
        status = c.login(name, password)
        if status.startswith(b"+OK"):
            stat = c.command("STAT")
            assert stat.startswith(b"+OK "), c.dump()
            c.command("QUIT")
        return status
    finally:
        c.close()


def smtp_reply(gateway, name, password):
    c = gateway.raw_smtp("starttls")
    try:
        c.ehlo()
        code, lines = c.auth_plain(name, password)
        return code, " ".join(lines)
    finally:
        c.close()


def smtp_send(gateway, dovecot, device):
    """The device's own client (smtplib, its settings unchanged) sends a
    message; it arrives."""
    tag = secrets.token_hex(4)
    msg = make_message("rotation %s" % tag).replace(b"Sender <sender@example.test>",
                                                   device["login"].encode())
    s = gateway.smtp_ssl()
    try:
        s.login(device["name"], device["password"])
        assert s.sendmail(device["login"], [device["login"]], msg) == {}
    finally:
        s.quit()
    dovecot.wait_message(device["login"], "<rotation%s.0@example.test>" % tag)


def test_rotation_all_protocols(gateway, dovecot, make_user):
    u = make_user()
    # What the user's devices hold; never changed by the app-password rotation.
    device = {"name": u.name, "password": u.password, "login": u.login}

    def all_work(password):
        assert imap_reply(gateway, u.name, password).startswith(b"a OK")
        assert pop3_reply(gateway, u.name, password).startswith(b"+OK")
        assert smtp_reply(gateway, u.name, password)[0] == 235

    all_work(u.password)
    smtp_send(gateway, dovecot, device)

    # The provider's app password rotates: every protocol reports an
    # upstream fault, none blames the device's password.
    new_app = u.app_password + "-rotated"
    dovecot.set_password(u.login, new_app)
    assert UNAVAILABLE.match(imap_reply(gateway, u.name, u.password))
    assert re.match(rb"-ERR \[SYS/TEMP\] ", pop3_reply(gateway, u.name, u.password))
    code, text = smtp_reply(gateway, u.name, u.password)
    assert (code, text[:5]) == (454, "4.7.0"), (code, text)

    # The admin stores the new one once: the unchanged devices work again.
    gateway.set_account(u.name, u.provider, u.login, new_app)
    all_work(device["password"])
    smtp_send(gateway, dovecot, device)

    # The gateway password changes: the new one works everywhere, the old
    # one nowhere, with the device-fault answers.
    new_gw = u.password + "-new"
    gateway.cli("user", "passwd", u.name, "--password-stdin", input=new_gw + "\n")
    all_work(new_gw)
    assert AUTHFAILED.match(imap_reply(gateway, u.name, u.password))
    assert re.match(rb"-ERR \[AUTH\] ", pop3_reply(gateway, u.name, u.password))
    code, text = smtp_reply(gateway, u.name, u.password)
    assert (code, text[:5]) == (535, "5.7.8"), (code, text)
    smtp_send(gateway, dovecot, dict(device, password=new_gw))
