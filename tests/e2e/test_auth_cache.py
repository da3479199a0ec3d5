"""
The auth cache (`auth.cache_ttl`, 60 s by default): a verified credential
costs one slow hash, however many connections a device opens at once. Each
login's log line says how it was checked: hash=slow, device, cached, shared
or none.
"""

import os
import re
import secrets
import threading
import time

import pytest

import creds
from creds import (EXIT_OK, IMAP_AUTHFAILED, IMAP_OK, cli_status, device_add, imap_login,
                   log_offset, login_lines, new_person, out, pop3_login, quote, set_password,
                   smtp_login)
from harness import wait_for


@pytest.fixture(scope="module")
def gateway(workdir, ca, dovecot, postfix, request):
    """conftest's gateway, with brute-force delays off (see creds.NO_BRUTE_FORCE)."""
    yield from creds.module_gateway(workdir, ca, dovecot, postfix, request)

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


TTL = 2  # seconds


@pytest.fixture(scope="module")
def short_cache(workdir, ca, dovecot, postfix):
    """A gateway of its own with `auth: { cache_ttl: 2s }`."""
    gw = creds.CredGateway(os.path.join(workdir, "gw-ttl"), ca, dovecot, postfix,
                           extra="auth: { cache_ttl: %ds }" % TTL)
    with creds.running(gw):
        yield gw


def test_cache_entries_expire(short_cache, dovecot):
    gw = short_cache
    u = new_person(gw, dovecot)
    off = log_offset(gw)
    t0 = time.monotonic()
    assert IMAP_OK.match(imap_login(gw, u.name, u.password))
    assert IMAP_OK.match(imap_login(gw, u.name, u.password))
    rows = login_lines(gw, off, u.name, 2)
    if time.monotonic() - t0 < TTL:
        assert [r["hash"] for r in rows] == ["slow", "cached"], rows
    # A credential is remembered for cache_ttl from its verification, not
    # from its last use: log in again every 0.2 s until a login is checked
    # with the slow hash again. Not before the TTL, and not much after it.
    n = [2]

    def expired():
        assert IMAP_OK.match(imap_login(gw, u.name, u.password))
        n[0] += 1
        return login_lines(gw, off, u.name, n[0])[-1]["hash"] == "slow"

    wait_for(expired, TTL + 5.0,
             "a login %d s after the slow check to use the slow hash again, with logins every "
             "0.2 s meanwhile (does each cache hit extend the entry's life?)" % TTL, interval=0.2)
    elapsed = time.monotonic() - t0
    print("cache entry expired after %.2f s (cache_ttl %d s)" % (elapsed, TTL))
    assert elapsed >= TTL - 0.1, elapsed


def test_failed_logins_being_hashed_do_not_hold_up_cached_ones(gateway, make_user):
    # A crowd of logins for unknown users (each costs a full password hash,
    # as a known user's would) is hashed a few at a time, beside the
    # lookups other logins need: a cached login sent after the whole crowd
    # is answered while most of the crowd still waits. The thread pool is
    # first come, first served, so without the separate queue it was
    # answered after every hash queued before it.
    m = re.search(r"auth hash_threads=(\d+) pool_threads=(\d+)", gateway.log_text())
    assert m, "no 'auth hash_threads' line in the log"
    hash_threads = int(m.group(1))
    assert 1 <= hash_threads < int(m.group(2)), m.group(0)
    crowd = min(max(40, 20 * hash_threads), 90)  # under the per-address connection limit
    u = make_user()
    assert IMAP_OK.match(imap_login(gateway, u.name, u.password))    # now cached
    conns = [gateway.raw("implicit") for _ in range(crowd)]
    mine = gateway.raw("implicit")
    answered = [None] * crowd
    errors = []

    def wait_reply(i):
        try:
            line = conns[i].readline()
            answered[i] = time.monotonic()
            if not line.startswith(b"x NO"):
                errors.append("connection %d: %r" % (i, line))
        except Exception as e:
            errors.append("connection %d: %r" % (i, e))

    threads = [threading.Thread(target=wait_reply, args=(i,)) for i in range(crowd)]
    try:
        for i, c in enumerate(conns):
            c.send(b"x LOGIN nobody-%s-%d wrong-password\r\n" % (secrets.token_hex(4).encode(), i))
        for t in threads:
            t.start()
        _, reply = mine.command("a", "LOGIN %s %s" % (quote(u.name), quote(u.password)))
        mine_done = time.monotonic()
        assert IMAP_OK.match(reply), reply
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a failed login was never answered"
        assert not errors, errors
    finally:
        for c in conns + [mine]:
            c.close()
    later = sum(1 for t in answered if t > mine_done)
    print("cached login answered before %d of %d failed logins (%d hashing threads)"
          % (later, crowd, hash_threads))
    assert later >= crowd // 4, "only %d of %d failed logins were answered after it" % (later, crowd)
