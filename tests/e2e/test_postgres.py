"""
The PostgreSQL store, shared by two gateways: a device added with the CLI
through gateway A's configuration logs in on both; revoking it through A
closes its live sessions on both within 5 s; while PostgreSQL is down every
login gets the protocol's temporary failure, never "wrong password", and
once it is back logins work again without a restart.
"""

import os
import time

import pytest

import creds
from creds import (EXIT_OK, IMAP_OK, IMAP_UNAVAILABLE, REVOKE_BOUND, Live, assert_all_tempfail,
                   assert_all_work, device_add, device_revoke, devices, imap_login, live_sessions,
                   new_person)
from harness import wait_for


@pytest.fixture(scope="module")
def pair(workdir, ca, dovecot, postfix, postgres):
    """
    Gateways A and B on one PostgreSQL database of their own (the server is
    shared with other modules), with the same master and device keys.
    """
    conninfo = postgres.create_database("mg_creds_pair")
    a = creds.postgres_gateway(os.path.join(workdir, "pgA"), ca, dovecot, postfix, conninfo)
    with creds.running(a):
        b = creds.postgres_gateway(os.path.join(workdir, "pgB"), ca, dovecot, postfix, conninfo,
                                   keys_of=a)
        with creds.running(b):
            yield a, b


def test_device_added_through_a_logs_in_on_both(pair, dovecot):
    a, b = pair
    p = new_person(a, dovecot)
    pw = device_add(a, p.name, "phone")
    assert (p.name, "phone") in devices(b, p.name)
    for gw in (a, b):
        assert_all_work(gw, p.name, pw)
        assert_all_work(gw, p.name, p.password)


def test_revoke_through_a_closes_sessions_on_both(pair, dovecot):
    a, b = pair
    p = new_person(a, dovecot)
    phone = device_add(a, p.name, "phone")
    laptop = device_add(a, p.name, "laptop")
    with live_sessions() as ss:
        doomed = [Live(a, p.name, phone), Live(b, p.name, phone)]
        kept = [Live(a, p.name, laptop), Live(b, p.name, laptop)]
        ss += doomed + kept
        device_revoke(a, p.name, "phone")
        t0 = time.monotonic()
        for gw, s in zip("AB", doomed):
            d = max(0.0, s.wait_closed() - t0)
            print("device revoke through A: session on gateway %s closed after %.2f s" % (gw, d))
            assert d < REVOKE_BOUND, "gateway %s closed the session after %.2f s" % (gw, d)
        for s in kept:
            s.alive()


def test_postgres_outage(pair, dovecot, postgres):
    a, b = pair
    p = new_person(a, dovecot)
    phone = device_add(a, p.name, "phone")
    # Cached on both before the outage: a cache hit must not hide it.
    for gw in (a, b):
        assert IMAP_OK.match(imap_login(gw, p.name, p.password))
    creds.pg_stop(postgres)
    try:
        for gw in (a, b):
            for pw in (p.password, phone, "wrong-password"):
                assert_all_tempfail(gw, p.name, pw)
    finally:
        creds.pg_start(postgres)

    # Each gateway finds its way back by itself: poll each until its first
    # successful login, then everything must work.
    t0 = time.monotonic()
    for name, gw in (("A", a), ("B", b)):
        tries = []

        def back():
            tries.append(imap_login(gw, p.name, p.password))
            return IMAP_OK.match(tries[-1])

        wait_for(back, 15.0, "a login through gateway %s once PostgreSQL is back" % name,
                 interval=0.2)
        print("gateway %s: first login %.2f s after PostgreSQL came back, after %d tries (%s)"
              % (name, time.monotonic() - t0, len(tries),
                 ", ".join(t[:20].decode("utf-8", "replace") for t in tries)))
        # On the way back too: a temporary failure or a login, never the
        # bad-password reply.
        assert all(IMAP_OK.match(t) or IMAP_UNAVAILABLE.match(t) for t in tries), tries
    for gw in (a, b):
        assert_all_work(gw, p.name, p.password)
        assert_all_work(gw, p.name, phone)
    assert a.cli("user", "list", check=False).returncode == EXIT_OK
