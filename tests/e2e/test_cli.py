"""
The admin CLI against a running gateway's config: listings show names and
logins, never a password; bad requests exit non-zero.
"""

from harness import ALICE, ALICE_GW_PASSWORD, ALICE_LOGIN, ALICE_APP_PASSWORD


def out(p):
    return (p.stdout + p.stderr).decode("utf-8", "replace")


def test_user_list(gateway, make_user):
    u = make_user()
    text = out(gateway.cli("user", "list"))
    assert ALICE in text and u.name in text, text
    assert ALICE_GW_PASSWORD not in text and u.password not in text, text


def test_account_list(gateway, make_user):
    u = make_user(provider="testprov-starttls")
    text = out(gateway.cli("account", "list"))
    assert ALICE_LOGIN in text and "testprov" in text, text
    assert u.login in text and "testprov-starttls" in text, text
    assert ALICE_APP_PASSWORD not in text and u.app_password not in text, text
    text = out(gateway.cli("account", "list", u.name))
    assert u.login in text, text
    assert ALICE_LOGIN not in text, text


def test_account_for_unknown_provider_refused(gateway, make_user):
    u = make_user(upstream=False, with_account=False)
    p = gateway.cli("account", "set", u.name, "nosuchprovider", "--login", "x@example.test",
                    "--password-stdin", input="pw\n", check=False)
    assert p.returncode != 0, out(p)


def test_account_for_unknown_user_refused(gateway):
    p = gateway.cli("account", "set", "nosuchuser", "testprov", "--login", "x@example.test",
                    "--password-stdin", input="pw\n", check=False)
    assert p.returncode != 0, out(p)


def test_duplicate_user_refused(gateway):
    p = gateway.cli("user", "add", ALICE, "--password-stdin", input="other\n", check=False)
    assert p.returncode != 0, out(p)
    # And alice's password did not change.
    m = gateway.imap_ssl()
    try:
        typ, _ = m.login(ALICE, ALICE_GW_PASSWORD)
        assert typ == "OK"
    finally:
        m.logout()


def test_store_holds_no_plaintext_app_password(gateway, make_user):
    u = make_user()
    db = gateway.dir + "/store.db"
    with open(db, "rb") as f:
        data = f.read()
    for side in ("-wal", "-journal"):
        try:
            with open(db + side, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    assert u.app_password.encode() not in data
    assert u.password.encode() not in data
