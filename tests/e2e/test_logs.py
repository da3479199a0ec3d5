"""
What the gateway writes to its log after logins that succeed, fail and meet
upstream faults: never a gateway password nor an app password.
"""

from harness import plain_ir


def test_no_secrets_in_gateway_log(gateway, dovecot, make_user):
    ok = make_user()
    stale = make_user()
    untrusted = make_user(provider="untrusted")
    for u, pw in ((ok, ok.password), (ok, "wrong-" + ok.password), (untrusted, untrusted.password)):
        for how in ("login", "plain"):
            c = gateway.raw("implicit")
            try:
                if how == "login":
                    c.command("a", "LOGIN %s %s" % (u.name, pw))
                else:
                    c.login_plain_ir("a", u.name, pw)
            finally:
                c.close()
    dovecot.set_password(stale.login, "rotated-" + stale.app_password)
    c = gateway.raw("implicit")
    try:
        c.command("a", "LOGIN %s %s" % (stale.name, stale.password))
    finally:
        c.close()
    log = gateway.log_text()
    for u in (ok, stale, untrusted):
        for secret in (u.password, u.app_password, "wrong-" + u.password,
                       plain_ir(u.name, u.password)):
            assert secret not in log, "secret %r in the gateway log:\n%s" % (secret, log)
