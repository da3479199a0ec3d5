"""
Several provider accounts per user. Logging in as USER+PROVIDER picks that
provider's account; a device added with --account PROVIDER uses that
account; otherwise the first account by provider name is used. Two
different Dovecot users stand behind the two providers, each with a message
of its own, so every test sees which mailbox it reached, and the gateway's
log line (provider=NAME) says the same.
"""

import secrets

import pytest

from creds import IMAP_UNAVAILABLE, Live, device_add, imap_login, log_offset, login_lines
from harness import make_message

FIRST, SECOND = "testprov", "testprov-starttls"   # in provider-name order


@pytest.fixture
def two_accounts(gateway, dovecot, make_user):
    """A user with an account at FIRST (login A) and at SECOND (login B)."""
    u = make_user(provider=FIRST)
    b_login = "%s-b@example.test" % u.name
    b_app = "app-" + secrets.token_hex(8)
    dovecot.add_user(b_login, b_app)
    gateway.set_account(u.name, SECOND, b_login, b_app)
    tag = secrets.token_hex(4)
    marks = {FIRST: "mailbox-A-" + tag, SECOND: "mailbox-B-" + tag}
    dovecot.append(u.login, "INBOX", make_message(marks[FIRST]))
    dovecot.append(b_login, "INBOX", make_message(marks[SECOND]))
    return u, b_login, marks


def reached(gateway, marks, user, password, proto="imap"):
    """
    Logs in and returns (the provider whose mailbox the session shows, the
    provider named in the gateway's login line); the two must agree.
    """
    off = log_offset(gateway)
    if proto == "imap":
        s = Live(gateway, user, password, idle=False)
        try:
            subjects = " ".join(s.fetch_subjects())
        finally:
            s.close()
    else:
        c = gateway.raw_pop3("implicit")
        try:
            assert c.login(user, password).startswith(b"+OK"), c.dump()
            assert c.command("TOP 1 0").startswith(b"+OK"), c.dump()
            subjects = b"".join(c.multiline()).decode("utf-8", "replace")
            c.command("QUIT")
        finally:
            c.close()
    seen = [p for p, m in marks.items() if m in subjects]
    assert len(seen) == 1, (user, subjects)
    name = user.split("+", 1)[0]
    (row,) = login_lines(gateway, off, name, 1)
    assert row["provider"] == seen[0], (row, seen)
    return seen[0]


def test_default_is_the_first_account_by_provider_name(gateway, two_accounts):
    u, _, marks = two_accounts
    assert reached(gateway, marks, u.name, u.password) == FIRST
    assert reached(gateway, marks, u.name, u.password, proto="pop3") == FIRST


def test_user_plus_provider_picks_the_account(gateway, two_accounts):
    u, _, marks = two_accounts
    assert reached(gateway, marks, u.name + "+" + SECOND, u.password) == SECOND
    assert reached(gateway, marks, u.name + "+" + FIRST, u.password) == FIRST
    assert reached(gateway, marks, u.name + "+" + SECOND, u.password, proto="pop3") == SECOND


def test_user_plus_provider_without_an_account(gateway, two_accounts):
    # A provider the gateway knows but the user has no account at: not the
    # device's fault.
    u, _, _ = two_accounts
    t = imap_login(gateway, u.name + "+untrusted", u.password)
    assert IMAP_UNAVAILABLE.match(t), t


def test_device_bound_to_an_account(gateway, two_accounts):
    u, _, marks = two_accounts
    bound = device_add(gateway, u.name, "work-laptop", account=SECOND)
    free = device_add(gateway, u.name, "phone")
    assert reached(gateway, marks, u.name, bound) == SECOND
    assert reached(gateway, marks, u.name, bound, proto="pop3") == SECOND
    assert reached(gateway, marks, u.name, free) == FIRST


def test_smtp_sends_as_the_chosen_account(gateway, dovecot, two_accounts):
    # The provider refuses a MAIL FROM other than the login: a message from
    # B's address is accepted only on a session logged in upstream as B.
    u, b_login, _ = two_accounts
    bound = device_add(gateway, u.name, "mailer", scopes="smtp", account=SECOND)
    for user, password in ((u.name + "+" + SECOND, u.password), (u.name, bound)):
        tag = secrets.token_hex(4)
        msg = make_message("multi %s" % tag).replace(b"sender@example.test", b_login.encode())
        off = log_offset(gateway)
        s = gateway.smtp_ssl()
        try:
            s.login(user, password)
            assert s.sendmail(b_login, [b_login], msg) == {}
        finally:
            s.quit()
        (row,) = login_lines(gateway, off, u.name, 1)
        assert row["provider"] == SECOND, row
        dovecot.wait_message(b_login, "<multi%s.0@example.test>" % tag)


def test_deleting_the_first_account_falls_back_to_the_next(gateway, two_accounts):
    u, _, marks = two_accounts
    gateway.cli("account", "del", u.name, FIRST)
    assert reached(gateway, marks, u.name, u.password) == SECOND
    t = imap_login(gateway, u.name + "+" + FIRST, u.password)
    assert IMAP_UNAVAILABLE.match(t), t
