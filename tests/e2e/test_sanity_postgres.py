"""
The `postgres` fixture behaves like a database server a gateway would use:
it accepts the mailgate role over TCP, makes databases on demand, and a
stop and a start keep the data on the same port. Then one gateway on a
PostgreSQL store (Gateway(postgres=...)) from `mailgate init` to a login,
with its rows where they should be.
"""

import os

import pytest

import harness
from harness import ALICE_APP_PASSWORD, ALICE_LOGIN, Gateway, HarnessError, logout


def test_server_is_utf8_and_reachable_over_tcp(postgres):
    out = postgres.psql(postgres.dbname, "SELECT current_user, current_setting('server_encoding')")
    assert out.strip() == "mailgate|UTF8"
    assert postgres.conninfo.startswith("host=127.0.0.1 port=%d " % postgres.port)


def test_create_database_is_idempotent(postgres):
    ci = postgres.create_database("sanity_db")
    assert ci == postgres.conninfo_for("sanity_db")
    assert postgres.create_database("sanity_db") == ci
    assert postgres.psql("sanity_db", "SELECT current_database()").strip() == "sanity_db"
    with pytest.raises(HarnessError):
        postgres.create_database("no spaces; please")


def test_stop_and_start_keep_the_data(postgres):
    postgres.create_database("sanity_keep")
    postgres.psql("sanity_keep", "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('kept')")
    postgres.stop()
    try:
        with pytest.raises(HarnessError):
            postgres.psql("sanity_keep", "SELECT 1")
    finally:
        postgres.start()
    assert postgres.psql("sanity_keep", "SELECT v FROM t").strip() == "kept"


def test_gateway_on_postgres(workdir, ca, dovecot, postfix, postgres):
    ci = postgres.create_database("sanity_gw")
    gw = Gateway(os.path.join(workdir, "gw-pg-sanity"), ca, dovecot, postfix, postgres=ci)
    try:
        gw.start()
        conf = harness.read_text(gw.conf)
        assert 'postgres: "%s"' % ci in conf and "sqlite" not in conf
        gw.add_user("pguser", "gw-pg-secret")
        gw.set_account("pguser", "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)
        m = gw.imap_ssl()
        try:
            typ, _ = m.login("pguser", "gw-pg-secret")
            assert typ == "OK"
        finally:
            logout(m)
    finally:
        gw.stop()
    assert gw.proc.returncode == 0, harness.tail(gw.log_text())
    # The rows are in PostgreSQL, and no SQLite file was made.
    assert postgres.psql("sanity_gw", "SELECT name FROM users").split() == ["pguser"]
    assert postgres.psql("sanity_gw", "SELECT user_name, provider FROM accounts").strip() == \
        "pguser|testprov"
    assert postgres.psql("sanity_gw", "SELECT version FROM schema_version").strip() == "2"
    assert not os.path.exists(os.path.join(gw.dir, "store.db"))
