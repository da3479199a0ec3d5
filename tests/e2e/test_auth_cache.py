"""
The auth cache (`auth.cache_ttl`, 60 s by default): a verified credential
costs one slow hash, however many connections a device opens at once. Each
login's log line says how it was checked: hash=slow, device, cached, shared
or none.
"""

import threading

from creds import (EXIT_OK, IMAP_AUTHFAILED, IMAP_OK, cli_status, device_add, imap_login,
                   log_offset, login_lines, out, pop3_login, quote, set_password, smtp_login)

N = 5


def parallel_logins(gateway, user, password, n=N):
    """
    n IMAP connections, TLS done and greeting read, send their LOGIN at the
    same moment (a barrier); returns the n tagged replies.
    """
    conns = [gateway.raw("implicit") for _ in range(n)]
    barrier = threading.Barrier(n, timeout=10)
    replies = [None] * n
    errors = []

    def run(i):
        try:
            barrier.wait()
            _, replies[i] = conns[i].command("a", "LOGIN %s %s" % (quote(user), quote(password)))
        except Exception as e:  # reported below, with the others
            errors.append("connection %d: %r\n%s" % (i, e, conns[i].dump()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "a login thread hung"
        assert not errors, "\n".join(errors)
        return replies
    finally:
        for c in conns:
            c.close()


def test_parallel_logins_cost_one_slow_hash(gateway, make_user):
    u = make_user()
    off = log_offset(gateway)
    replies = parallel_logins(gateway, u.name, u.password)
    assert all(IMAP_OK.match(r) for r in replies), replies
    rows = login_lines(gateway, off, u.name, N)
    hashes = sorted(r["hash"] for r in rows)
    print("five parallel logins: hash=%s" % ",".join(hashes))
    assert len(rows) == N, rows
    assert all((r["result"], r["device"]) == ("ok", "-") for r in rows), rows
    assert hashes.count("slow") == 1, hashes
    assert set(hashes) <= {"slow", "shared", "cached"}, hashes

    # A later login: from the cache.
    off = log_offset(gateway)
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
    (row,) = login_lines(gateway, off, u.name, 1)
    assert (row["result"], row["hash"]) == ("ok", "cached"), row

    # The other protocols share the cache.
    off = log_offset(gateway)
    assert pop3_login(gateway, u.name, u.password).startswith(b"+OK")
    assert smtp_login(gateway, u.name, u.password)[0] == 235
    rows = login_lines(gateway, off, u.name, 2)
    assert [(r["proto"], r["hash"]) for r in rows] == [("pop3", "cached"), ("smtp", "cached")], rows


def test_password_change_invalidates_the_cache(gateway, make_user):
    u = make_user()
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
    new = u.password + "-new"
    set_password(gateway, u.name, new)
    off = log_offset(gateway)
    assert IMAP_AUTHFAILED.match(imap_login(gateway, u.name, u.password))
    assert IMAP_OK.match(imap_login(gateway, u.name, new))
    old, fresh = login_lines(gateway, off, u.name, 2)
    assert old["result"] == "fail" and old["hash"] != "cached", old
    assert (fresh["result"], fresh["hash"]) == ("ok", "slow"), fresh


def test_disable_refuses_a_cached_credential_at_once(gateway, make_user):
    # A cache hit still reads the user: no poll interval to wait for.
    u = make_user()
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
    off = log_offset(gateway)
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))
    assert login_lines(gateway, off, u.name, 1)[0]["hash"] == "cached"
    p = cli_status(gateway, "user", "disable", u.name)
    assert p.returncode == EXIT_OK, out(p)
    off = log_offset(gateway)
    assert IMAP_AUTHFAILED.match(imap_login(gateway, u.name, u.password))
    assert login_lines(gateway, off, u.name, 1)[0]["result"] == "fail"
    p = cli_status(gateway, "user", "enable", u.name)
    assert p.returncode == EXIT_OK, out(p)
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))


def test_device_logins_log_hash_device(gateway, make_user):
    u = make_user()
    pw = device_add(gateway, u.name, "phone")
    off = log_offset(gateway)
    assert IMAP_OK.match(imap_login(gateway, u.name, pw))
    assert IMAP_OK.match(imap_login(gateway, u.name, pw))
    assert smtp_login(gateway, u.name, pw)[0] == 235
    rows = login_lines(gateway, off, u.name, 3)
    assert [(r["proto"], r["device"], r["hash"], r["result"]) for r in rows] == \
        [("imap", "phone", "device", "ok"), ("imap", "phone", "device", "ok"),
         ("smtp", "phone", "device", "ok")], rows
