/*
 * test_store_pg.c - what only the PostgreSQL backend has: reconnection
 * after a lost connection or a server outage, the statement timeout,
 * migrations serialised between gateways, strict UTF-8, byte order of
 * names, error messages without secrets. The behaviour both backends share
 * is tested by test_store.c, in its PostgreSQL pass.
 *
 * It needs a database of its own, named by the libpq connection string in
 * MG_TEST_STORE_PG_ONE; every test starts by dropping the store's tables
 * there. Without it the suite is skipped. The outage test also needs to
 * stop and start the server: MG_TEST_PG_SH (tests/pg.sh), MG_TEST_PG_DIR
 * and MG_TEST_PG_PORT, which tests/unit/run_store_pg.sh sets:
 *
 *   sh tests/unit/run_store_pg.sh build/test_store_pg
 */
#include <sys/time.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "store.h"

#define HASH_A	"$y$j9T$uRKk9hQuujaHcxi/Ipkg7.$i0mpp4CcNv9o4lni4jBeMeIxNZI6.zbUx8Uga7ctlj1"
#define HASH_B	"$2b$05$PODVNE/mJKX3BPbIyJejkOohJ0NzPzsO4psw1huDx0Lsecyu4bzfC"
#define DEVHASH(c)	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
			c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static const char	*conninfo;	/* MG_TEST_STORE_PG_ONE */

/* The test's own connection, for setting things up and looking behind the store's back. */
static PGconn *
raw_connect(void)
{
	PGconn	*c;

	c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("raw connection: %s", PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

static void
raw_exec(PGconn *c, const char *sql)
{
	PGresult	*r;

	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static long long
raw_int(PGconn *c, const char *sql)
{
	PGresult	*r;
	long long	 v;

	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* Drops everything the store may have made, so each test starts empty. */
static int
setup(void **state)
{
	PGconn	*c;

	(void)state;
	c = raw_connect();
	raw_exec(c, "DROP TABLE IF EXISTS audit, devices, accounts, users, meta, schema_version CASCADE");
	PQfinish(c);
	return 0;
}

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* conninfo with extra "key=value" settings appended. */
static const char *
with(const char *extra)
{
	static char	buf[1024];

	snprintf(buf, sizeof(buf), "%s %s", conninfo, extra);
	return buf;
}

static struct mg_store *
open_ok(const char *ci)
{
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";

	if ((st = mg_store_open_postgres(ci, err, sizeof(err))) == NULL)
		fail_msg("open: %s", err);
	return st;
}

static int64_t
generation(struct mg_store *st)
{
	char	err[MG_ERRLEN] = "";
	int64_t	gen = -1;

	if (mg_store_generation(st, &gen, err, sizeof(err)) != 0)
		fail_msg("generation: %s", err);
	return gen;
}

static void
make_account(struct mg_account *a, const char *user, const char *provider, uint8_t fill, size_t len)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->user, sizeof(a->user), "%s", user);
	snprintf(a->provider, sizeof(a->provider), "%s", provider);
	snprintf(a->login, sizeof(a->login), "%s@example.test", user);
	a->kind = MG_SECRET_PASSWORD;
	memset(a->sealed, fill, len);
	a->sealed_len = len;
}

static void
make_device(struct mg_device *d, const char *user, const char *label, const char *hash)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->user, sizeof(d->user), "%s", user);
	snprintf(d->label, sizeof(d->label), "%s", label);
	snprintf(d->hash, sizeof(d->hash), "%s", hash);
	d->scopes = MG_SCOPE_ALL;
}

static void
make_audit(struct mg_audit *a, const char *user, time_t ts, const char *detail)
{
	memset(a, 0, sizeof(*a));
	a->ts = ts;
	snprintf(a->kind, sizeof(a->kind), "login");
	snprintf(a->user, sizeof(a->user), "%s", user);
	snprintf(a->proto, sizeof(a->proto), "imap");
	snprintf(a->client, sizeof(a->client), "127.0.0.1:1234");
	snprintf(a->result, sizeof(a->result), "ok");
	snprintf(a->detail, sizeof(a->detail), "%s", detail);
}

/*
 * Opening
 */

/* A fresh database gets the whole schema; opening again changes nothing. */
static void
test_open_fresh(void **state)
{
	struct mg_store	*st;
	PGconn		*c;

	(void)state;
	st = open_ok(conninfo);
	assert_int_equal(mg_store_schema_version(st), 2);
	assert_int_equal(generation(st), 0);
	mg_store_close(st);
	st = open_ok(conninfo);
	assert_int_equal(mg_store_schema_version(st), 2);
	mg_store_close(st);

	c = raw_connect();
	assert_int_equal(raw_int(c, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(raw_int(c, "SELECT version FROM schema_version"), 2);
	assert_int_equal(raw_int(c, "SELECT count(*) FROM meta"), 1);
	assert_int_equal(raw_int(c, "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit'"), 3);
	PQfinish(c);
}

/* Defaults the store adds to the connection string, unless it sets them. */
static void
test_open_defaults(void **state)
{
	struct mg_store	*st;
	PGconn		*c;

	(void)state;
	c = raw_connect();
	st = open_ok(conninfo);
	assert_int_equal(raw_int(c, "SELECT count(*) FROM pg_stat_activity"
	    " WHERE application_name = 'mailgate' AND datname = current_database()"), 1);
	mg_store_close(st);
	st = open_ok(with("application_name=mgtest_own"));
	assert_int_equal(raw_int(c, "SELECT count(*) FROM pg_stat_activity"
	    " WHERE application_name = 'mgtest_own' AND datname = current_database()"), 1);
	mg_store_close(st);
	PQfinish(c);
}

/* libpq's messages can quote the connection string; ours must never show a password. */
static void
test_open_errors(void **state)
{
	static const char *const bad[] = {
		"host=/nonexistent port=1 password=TOPSECRET connect_timeout=2",
		"password='TOPSECRET",
		"postgresql://mailgate:TOPSECRET@[::1:5432/db",
		"postgresql://mailgate:TOPSECRET@localhost:notaport/db",
		"dbname=x password=TOPSECRET bogus_option=1",
	};
	char	err[MG_ERRLEN];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(mg_store_open_postgres(bad[i], err, sizeof(err)));
		assert_true(strncmp(err, "postgresql: ", 12) == 0);
		if (strstr(err, "TOPSECRET") != NULL)
			fail_msg("case %zu: the password is in the message: %s", i, err);
	}
	err[0] = '\0';
	assert_null(mg_store_open_postgres(NULL, err, sizeof(err)));
	assert_string_not_equal(err, "");
}

/*
 * Migrations
 */

/* A version 1 store (users and accounts only) is brought to version 2 with its data. */
static void
test_migrate_v1(void **state)
{
	struct mg_store		*st;
	struct mg_user		 u;
	struct mg_account	 a;
	PGconn			*c;
	char			 err[MG_ERRLEN];

	(void)state;
	c = raw_connect();
	raw_exec(c,
	    "CREATE TABLE schema_version (version INT NOT NULL);"
	    "INSERT INTO schema_version VALUES (1);"
	    "CREATE TABLE users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, created BIGINT, updated BIGINT);"
	    "CREATE TABLE accounts (user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	    "  provider TEXT NOT NULL, login TEXT NOT NULL, kind INT NOT NULL, secret BYTEA NOT NULL,"
	    "  updated BIGINT, PRIMARY KEY (user_name, provider));"
	    "INSERT INTO users VALUES ('alice', 'h1', 100, 200), ('bob', 'h2', NULL, NULL);"
	    "INSERT INTO accounts VALUES ('alice', 'prov', 'alice@x', 1, '\\x00ff10'::bytea, 300);");
	st = open_ok(conninfo);
	assert_int_equal(mg_store_schema_version(st), 2);
	assert_int_equal(raw_int(c, "SELECT version FROM schema_version"), 2);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, "h1");
	assert_int_equal(u.created, 100);
	assert_int_equal(u.updated, 200);
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 0);
	/* NULL times read as 0, as in SQLite. */
	assert_int_equal(mg_store_user_get(st, "bob", &u, err, sizeof(err)), 1);
	assert_int_equal(u.created, 0);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &a, err, sizeof(err)), 1);
	assert_int_equal(a.sealed_len, 3);
	assert_memory_equal(a.sealed, "\x00\xff\x10", 3);
	assert_int_equal(a.updated, 300);
	assert_int_equal(generation(st), 0);
	mg_store_close(st);
	PQfinish(c);
}

/* A store newer than the code is refused, and left as it is. */
static void
test_migrate_newer(void **state)
{
	PGconn	*c;
	char	 err[MG_ERRLEN] = "";

	(void)state;
	c = raw_connect();
	raw_exec(c, "CREATE TABLE schema_version (version INT NOT NULL); INSERT INTO schema_version VALUES (3)");
	assert_null(mg_store_open_postgres(conninfo, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 3"));
	assert_int_equal(raw_int(c, "SELECT version FROM schema_version"), 3);
	assert_int_equal(raw_int(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), 0);

	raw_exec(c, "INSERT INTO schema_version VALUES (2)");
	assert_null(mg_store_open_postgres(conninfo, err, sizeof(err)));
	assert_non_null(strstr(err, "2 rows"));
	PQfinish(c);
}

/* A step that fails leaves the store at the version before it. */
static void
test_migrate_fails(void **state)
{
	struct mg_store	*st;
	PGconn		*c;
	char		 err[MG_ERRLEN] = "";

	(void)state;
	c = raw_connect();
	/* Step 1 will fail: accounts exists already. */
	raw_exec(c, "CREATE TABLE accounts (x INT)");
	assert_null(mg_store_open_postgres(conninfo, err, sizeof(err)));
	assert_non_null(strstr(err, "migrating the schema"));
	assert_int_equal(raw_int(c, "SELECT count(*) FROM pg_tables WHERE tablename IN "
	    "('users', 'schema_version')"), 0);
	raw_exec(c, "DROP TABLE accounts");
	st = open_ok(conninfo);
	assert_int_equal(mg_store_schema_version(st), 2);
	mg_store_close(st);
	PQfinish(c);
}

struct opener {
	pthread_barrier_t	*go;
	int			 version;	/* -1: failed */
	char			 err[MG_ERRLEN];
};

static void *
opener_main(void *arg)
{
	struct opener	*o = arg;
	struct mg_store	*st;

	pthread_barrier_wait(o->go);
	if ((st = mg_store_open_postgres(conninfo, o->err, sizeof(o->err))) == NULL) {
		o->version = -1;
		return NULL;
	}
	o->version = mg_store_schema_version(st);
	mg_store_close(st);
	return NULL;
}

/* Gateways starting together on an empty database: one migrates, all open. */
static void
test_migrate_concurrent(void **state)
{
	enum { N = 8 };
	pthread_barrier_t	 go;
	pthread_t		 t[N];
	struct opener		 o[N];
	PGconn			*c;
	int			 i;

	(void)state;
	assert_int_equal(pthread_barrier_init(&go, NULL, N), 0);
	for (i = 0; i < N; i++) {
		memset(&o[i], 0, sizeof(o[i]));
		o[i].go = &go;
		assert_int_equal(pthread_create(&t[i], NULL, opener_main, &o[i]), 0);
	}
	/* Join them all before failing: a thread left running would disturb the next test. */
	for (i = 0; i < N; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&go);
	for (i = 0; i < N; i++)
		if (o[i].version != 2)
			fail_msg("opener %d: version %d: %s", i, o[i].version, o[i].err);
	c = raw_connect();
	assert_int_equal(raw_int(c, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(raw_int(c, "SELECT count(*) FROM meta"), 1);
	PQfinish(c);
}

/*
 * Data
 */

struct names {
	char	text[1024];
	int	count;
	int	stop_after;	/* 0: never */
	struct mg_store *st;	/* when set, the callback calls the store again */
};

static int
names_user_cb(const struct mg_user *u, void *arg)
{
	struct names	*n = arg;
	struct mg_user	 again;
	char		 err[MG_ERRLEN];

	if (n->st != NULL && mg_store_user_get(n->st, u->name, &again, err, sizeof(err)) != 1)
		fail_msg("user_get inside a list callback: %s", err);
	snprintf(n->text + strlen(n->text), sizeof(n->text) - strlen(n->text), "%s%s",
	    n->count > 0 ? "," : "", u->name);
	n->count++;
	return n->stop_after != 0 && n->count >= n->stop_after;
}

/* Names order by bytes (as SQLite's), whatever the database's collation. */
static void
test_byte_order(void **state)
{
	struct mg_store		*st;
	struct mg_account	 a;
	struct names		 n;
	char			 err[MG_ERRLEN];

	(void)state;
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "b", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "B", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "a", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "_x", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "\xc3\xa9t\xc3\xa9", HASH_A, err, sizeof(err)), 0);
	memset(&n, 0, sizeof(n));
	n.st = st;	/* and the callback may use the store: no deadlock */
	assert_int_equal(mg_store_user_list(st, names_user_cb, &n, err, sizeof(err)), 0);
	assert_string_equal(n.text, "B,_x,a,b,\xc3\xa9t\xc3\xa9");
	memset(&n, 0, sizeof(n));
	n.stop_after = 2;
	assert_int_equal(mg_store_user_list(st, names_user_cb, &n, err, sizeof(err)), 0);
	assert_string_equal(n.text, "B,_x");

	make_account(&a, "a", "zeta", 1, 10);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "a", "Zeta", 2, 10);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "a", NULL, &a, err, sizeof(err)), 1);
	assert_string_equal(a.provider, "Zeta");
	mg_store_close(st);
}

/* Names that are not UTF-8 cannot be stored; looking them up finds nothing. */
static void
test_utf8(void **state)
{
	struct mg_store		*st;
	struct mg_user		 u;
	struct mg_account	 a;
	struct mg_audit		 au;
	char			 err[MG_ERRLEN];

	(void)state;
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "bad\xff", HASH_A, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "UTF-8"));
	assert_int_equal(mg_store_user_add(st, "over\xc0\xaf", HASH_A, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_add(st, "surr\xed\xa0\x80", HASH_A, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_get(st, "bad\xff", &u, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_set_hash(st, "bad\xff", HASH_B, err, sizeof(err)), 1);
	assert_int_equal(mg_store_user_del(st, "bad\xff", err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_get(st, "bad\xff", NULL, &a, err, sizeof(err)), 0);
	make_account(&a, "bad\xff", "p", 1, 4);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 1);
	/* 4-byte sequences are fine. */
	assert_int_equal(mg_store_user_add(st, "emoji\xf0\x9f\x93\xa7", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "emoji\xf0\x9f\x93\xa7", &u, err, sizeof(err)), 1);

	/* The audit log keeps what a client tried, with '?' for what is not UTF-8. */
	make_audit(&au, "x\xff\xfey\xc3\xa9", 0, "bad name \xc3");
	assert_int_equal(mg_store_audit_add(st, &au, err, sizeof(err)), 0);
	mg_store_close(st);
	{
		PGconn		*c = raw_connect();
		PGresult	*r = PQexec(c, "SELECT user_name, detail FROM audit");

		assert_int_equal(PQntuples(r), 1);
		assert_string_equal(PQgetvalue(r, 0, 0), "x??y\xc3\xa9");
		assert_string_equal(PQgetvalue(r, 0, 1), "bad name ?");
		PQclear(r);
		PQfinish(c);
	}
}

/* Every byte value survives as a sealed secret, up to the largest; reseal compares bytes. */
static void
test_binary_secrets(void **state)
{
	struct mg_store		*st;
	struct mg_account	*a, *b;
	uint8_t			 old[MG_SEALED_MAX];
	char			 err[MG_ERRLEN];
	size_t			 i;

	(void)state;
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	assert_non_null(a);
	assert_non_null(b);
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_account(a, "alice", "p", 0, MG_SEALED_MAX);
	for (i = 0; i < MG_SEALED_MAX; i++)
		a->sealed[i] = (uint8_t)(i * 7 + (i >> 8));
	assert_int_equal(mg_store_account_set(st, a, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", "p", b, err, sizeof(err)), 1);
	assert_int_equal(b->sealed_len, MG_SEALED_MAX);
	assert_memory_equal(b->sealed, a->sealed, MG_SEALED_MAX);

	/* The compare-and-swap: a wrong old value writes nothing. */
	memcpy(old, a->sealed, MG_SEALED_MAX);
	old[100] ^= 1;
	assert_int_equal(mg_store_account_reseal(st, "alice", "p", old, MG_SEALED_MAX,
	    (const uint8_t *)"\x00\x01\x00", 3, err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_reseal(st, "alice", "p", a->sealed, MG_SEALED_MAX - 1,
	    (const uint8_t *)"\x00\x01\x00", 3, err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_reseal(st, "alice", "p", a->sealed, MG_SEALED_MAX,
	    (const uint8_t *)"\x00\x01\x00", 3, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", "p", b, err, sizeof(err)), 1);
	assert_int_equal(b->sealed_len, 3);
	assert_memory_equal(b->sealed, "\x00\x01\x00", 3);
	assert_int_equal(mg_store_account_reseal(st, "alice", "nope", b->sealed, 3,
	    (const uint8_t *)"x", 1, err, sizeof(err)), 1);
	assert_int_equal(generation(st), 0);
	mg_store_close(st);
	free(a);
	free(b);
}

/* Return codes from the constraints, and the generation bumps. */
static void
test_codes(void **state)
{
	struct mg_store		*st;
	struct mg_device	 d, out;
	struct mg_user		 u;
	char			 err[MG_ERRLEN];

	(void)state;
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_B, err, sizeof(err)), 1);
	make_device(&d, "alice", "phone", DEVHASH("a"));
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 2);
	make_device(&d, "alice", "laptop", DEVHASH("a"));
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 2);
	/* The duplicate hash must not show up in a message. */
	assert_null(strstr(err, DEVHASH("a")));
	make_device(&d, "nobody", "phone", DEVHASH("b"));
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 1);

	assert_int_equal(mg_store_device_find(st, "alice", DEVHASH("a"), &out, err, sizeof(err)), 1);
	assert_string_equal(out.label, "phone");
	assert_int_equal(out.last_used, 0);
	assert_true(out.created > 0);
	assert_int_equal(mg_store_device_touch(st, "alice", "phone", 12345, "10.0.0.1:999", err,
	    sizeof(err)), 0);
	assert_int_equal(mg_store_device_touch(st, "alice", "tablet", 12345, "", err, sizeof(err)), 1);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &out, err, sizeof(err)), 1);
	assert_int_equal(out.last_used, 12345);
	assert_string_equal(out.last_addr, "10.0.0.1:999");

	assert_int_equal(generation(st), 0);
	assert_int_equal(mg_store_device_revoke(st, "alice", "tablet", err, sizeof(err)), 1);
	assert_int_equal(generation(st), 0);
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), 0);
	assert_int_equal(generation(st), 1);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.auth_gen, 0);	/* a revoked device leaves the user's auth_gen */
	assert_int_equal(mg_store_user_set_flags(st, "alice", 1, -1, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_set_flags(st, "nobody", 1, -1, err, sizeof(err)), 1);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.disabled, 1);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 0);
	assert_int_equal(mg_store_user_set_flags(st, "alice", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.disabled, 1);
	assert_int_equal(u.password_login, 0);
	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.auth_gen, 1);	/* only a new password moves it */
	assert_int_equal(mg_store_user_set_hash(st, "nobody", HASH_B, err, sizeof(err)), 1);
	assert_int_equal(generation(st), 4);
	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), 1);
	assert_int_equal(generation(st), 5);
	mg_store_close(st);
}

/* Without the generation counter a revoking change is undone and reported. */
static void
test_generation_missing(void **state)
{
	struct mg_store	*st;
	struct mg_user	 u;
	PGconn		*c;
	char		 err[MG_ERRLEN] = "";

	(void)state;
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	c = raw_connect();
	raw_exec(c, "DELETE FROM meta");
	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "generation counter is missing"));
	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, HASH_A);
	assert_int_equal(u.auth_gen, 0);
	assert_int_equal(mg_store_generation(st, &u.auth_gen, err, sizeof(err)), -1);
	/* And the connection is still good for the next call. */
	raw_exec(c, "INSERT INTO meta VALUES ('generation', 41)");
	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(generation(st), 42);
	PQfinish(c);
	mg_store_close(st);
}

struct audit_walk {
	int	count;
	int64_t	last_id;
	int	stop_after;
	int	ordered;
};

static int
audit_cb(const struct mg_audit *a, void *arg)
{
	struct audit_walk	*w = arg;

	if (a->id <= w->last_id)
		w->ordered = 0;
	w->last_id = a->id;
	w->count++;
	return w->stop_after != 0 && w->count >= w->stop_after;
}

/* The audit log is read in pages; a walk sees every record once, in order. */
static void
test_audit_pages(void **state)
{
	struct mg_store		*st;
	struct mg_audit		 a;
	struct audit_walk	 w;
	char			 err[MG_ERRLEN];
	int			 i;

	(void)state;
	st = open_ok(conninfo);
	for (i = 0; i < 1203; i++) {
		make_audit(&a, i % 3 == 0 ? "alice" : "bob", 1000 + i, "x");
		assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	}
	memset(&w, 0, sizeof(w));
	w.ordered = 1;
	assert_int_equal(mg_store_audit_list(st, NULL, 0, audit_cb, &w, err, sizeof(err)), 0);
	assert_int_equal(w.count, 1203);
	assert_true(w.ordered);
	memset(&w, 0, sizeof(w));
	w.ordered = 1;
	assert_int_equal(mg_store_audit_list(st, "alice", 0, audit_cb, &w, err, sizeof(err)), 0);
	assert_int_equal(w.count, 401);
	assert_true(w.ordered);
	memset(&w, 0, sizeof(w));
	assert_int_equal(mg_store_audit_list(st, "bob", 2000, audit_cb, &w, err, sizeof(err)), 0);
	/* ts 2000 to 2202 is i 1000 to 1202: 203 records, 67 of them alice's. */
	assert_int_equal(w.count, 136);
	memset(&w, 0, sizeof(w));
	w.stop_after = 600;
	assert_int_equal(mg_store_audit_list(st, NULL, 0, audit_cb, &w, err, sizeof(err)), 0);
	assert_int_equal(w.count, 600);
	memset(&w, 0, sizeof(w));
	w.stop_after = 500;	/* exactly one page */
	assert_int_equal(mg_store_audit_list(st, NULL, 0, audit_cb, &w, err, sizeof(err)), 0);
	assert_int_equal(w.count, 500);
	mg_store_close(st);
}

/*
 * Threads, lost connections, outages
 */

struct worker {
	struct mg_store	*st;
	int		 id;
	int		 changes;	/* successful set_hash calls */
	char		 err[MG_ERRLEN];
	int		 failed;
};

static void *
worker_main(void *arg)
{
	struct worker		*w = arg;
	struct mg_user		 u;
	struct mg_account	 a;
	struct mg_audit		 au;
	char			 name[32];
	int64_t			 gen;
	int			 i;

	for (i = 0; i < 100 && !w->failed; i++) {
		snprintf(name, sizeof(name), "w%d-%d", w->id, i % 10);
		if (i < 10 && mg_store_user_add(w->st, name, HASH_A, w->err, sizeof(w->err)) != 0)
			w->failed = 1;
		else if (mg_store_user_get(w->st, name, &u, w->err, sizeof(w->err)) != 1)
			w->failed = 2;
		else if (i % 5 == 0 && mg_store_user_set_hash(w->st, name, HASH_B, w->err,
		    sizeof(w->err)) != 0)
			w->failed = 3;
		else if (mg_store_generation(w->st, &gen, w->err, sizeof(w->err)) != 0)
			w->failed = 4;
		else {
			if (i % 5 == 0)
				w->changes++;
			make_account(&a, name, "p", (uint8_t)i, 32);
			make_audit(&au, name, 0, "worker");
			if (mg_store_account_set(w->st, &a, w->err, sizeof(w->err)) != 0)
				w->failed = 5;
			else if (mg_store_audit_add(w->st, &au, w->err, sizeof(w->err)) != 0)
				w->failed = 6;
		}
	}
	return NULL;
}

/* One store shared by threads, as the gateway's thread pool shares it. */
static void
test_threads(void **state)
{
	enum { N = 8 };
	struct mg_store	*st;
	struct worker	 w[N];
	pthread_t	 t[N];
	int		 i, changes = 0;

	(void)state;
	st = open_ok(conninfo);
	for (i = 0; i < N; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].st = st;
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < N; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < N; i++) {
		if (w[i].failed)
			fail_msg("worker %d failed at step %d: %s", i, w[i].failed, w[i].err);
		changes += w[i].changes;
	}
	assert_int_equal(generation(st), changes);
	mg_store_close(st);
}

/* Ends the store's server process from outside, as a server restart or a DBA would. */
static void
terminate_store_backend(PGconn *c)
{
	assert_int_equal(raw_int(c, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000)"
	    " FROM pg_stat_activity WHERE application_name = 'mgtest_term') AS t"), 1);
}

/*
 * A connection the server dropped: a read is retried on a new connection
 * at once; a write fails (it may or may not have happened) and the next
 * call reconnects.
 */
static void
test_lost_connection(void **state)
{
	struct mg_store	*st;
	struct mg_user	 u;
	PGconn		*c;
	char		 err[MG_ERRLEN] = "";

	(void)state;
	c = raw_connect();
	st = open_ok(with("application_name=mgtest_term"));
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);

	terminate_store_backend(c);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);

	terminate_store_backend(c);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_A, err, sizeof(err)), -1);
	assert_true(strncmp(err, "postgresql: ", 12) == 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_A, err, sizeof(err)), 0);

	/* In the middle of a revoking change's transaction, too. */
	terminate_store_backend(c);
	assert_int_equal(mg_store_user_set_hash(st, "bob", HASH_B, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_set_hash(st, "bob", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(generation(st), 1);
	mg_store_close(st);
	PQfinish(c);
}

/*
 * A query stuck behind a lock ends at the statement timeout (5 s) instead
 * of holding a pool thread; the store works again once the lock is gone.
 */
static void
test_statement_timeout(void **state)
{
	struct mg_store	*st;
	struct mg_user	 u;
	PGconn		*c;
	char		 err[MG_ERRLEN] = "";
	double		 t0, dt;

	(void)state;
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	c = raw_connect();
	raw_exec(c, "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
	t0 = now_s();
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), -1);
	dt = now_s() - t0;
	print_message("    user_get behind a lock failed after %.1f s: %s\n", dt, err);
	assert_true(dt >= 4.5 && dt < 8);
	assert_non_null(strstr(err, "statement timeout"));
	raw_exec(c, "ROLLBACK");
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	mg_store_close(st);
	PQfinish(c);

	/* A timeout the connection string sets is kept. */
	st = open_ok(with("options='-c statement_timeout=1000'"));
	c = raw_connect();
	raw_exec(c, "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
	t0 = now_s();
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), -1);
	dt = now_s() - t0;
	assert_true(dt >= 0.9 && dt < 3);
	raw_exec(c, "ROLLBACK");
	mg_store_close(st);
	PQfinish(c);
}

static int
pg_sh(const char *cmd)
{
	char	 line[1024];

	snprintf(line, sizeof(line), "sh %s %s %s %s >/dev/null", getenv("MG_TEST_PG_SH"), cmd,
	    getenv("MG_TEST_PG_DIR"), strcmp(cmd, "start") == 0 ? getenv("MG_TEST_PG_PORT") : "");
	return system(line);
}

/*
 * The server goes away and comes back: calls fail fast while it is gone,
 * and the same store works again when it returns, without a restart.
 */
static void
test_outage(void **state)
{
	struct mg_store	*st;
	struct mg_user	 u;
	char		 err[MG_ERRLEN] = "";
	double		 t0, dt;
	int		 i, rc;

	(void)state;
	if (getenv("MG_TEST_PG_SH") == NULL || getenv("MG_TEST_PG_DIR") == NULL ||
	    getenv("MG_TEST_PG_PORT") == NULL) {
		print_message("    (needs MG_TEST_PG_SH, MG_TEST_PG_DIR, MG_TEST_PG_PORT: "
		    "run through tests/unit/run_store_pg.sh)\n");
		skip();
	}
	st = open_ok(conninfo);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(pg_sh("stop"), 0);

	for (i = 0; i < 3; i++) {
		t0 = now_s();
		assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), -1);
		dt = now_s() - t0;
		assert_true(strncmp(err, "postgresql: ", 12) == 0);
		assert_true(dt < 2);
	}
	print_message("    while the server is down: %s\n", err);

	assert_int_equal(pg_sh("start"), 0);
	t0 = now_s();
	while ((rc = mg_store_user_get(st, "alice", &u, err, sizeof(err))) != 1) {
		assert_int_equal(rc, -1);
		if (now_s() - t0 > 10)
			fail_msg("the store did not recover within 10 s: %s", err);
		usleep(50000);
	}
	print_message("    recovered %.2f s after the server was back\n", now_s() - t0);
	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), 0);
	mg_store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_open_fresh, setup),
		cmocka_unit_test_setup(test_open_defaults, setup),
		cmocka_unit_test_setup(test_open_errors, setup),
		cmocka_unit_test_setup(test_migrate_v1, setup),
		cmocka_unit_test_setup(test_migrate_newer, setup),
		cmocka_unit_test_setup(test_migrate_fails, setup),
		cmocka_unit_test_setup(test_migrate_concurrent, setup),
		cmocka_unit_test_setup(test_byte_order, setup),
		cmocka_unit_test_setup(test_utf8, setup),
		cmocka_unit_test_setup(test_binary_secrets, setup),
		cmocka_unit_test_setup(test_codes, setup),
		cmocka_unit_test_setup(test_generation_missing, setup),
		cmocka_unit_test_setup(test_audit_pages, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_lost_connection, setup),
		cmocka_unit_test_setup(test_statement_timeout, setup),
		cmocka_unit_test_setup(test_outage, setup),
	};

	conninfo = getenv("MG_TEST_STORE_PG_ONE");
	if (conninfo == NULL || *conninfo == '\0') {
		printf("[ NOTICE ] store_pg: skipped (MG_TEST_STORE_PG_ONE is not set; "
		    "run it with: sh tests/unit/run_store_pg.sh %s)\n", "build/test_store_pg");
		return 0;
	}
	return cmocka_run_group_tests_name("store_pg", tests, NULL, NULL);
}
