/*
 * test_store.c - the credential store, through its public interface.
 *
 * The suite runs against SQLite always, and a second time against
 * PostgreSQL when MG_TEST_STORE_PG is set. That variable is a libpq
 * connection string used as a template: every test gets its own EMPTY
 * database, named by replacing each literal "%d" with a counter that starts
 * at 0 for the first PostgreSQL test, e.g.
 *
 *   MG_TEST_STORE_PG="host=/tmp/pg port=5433 dbname=mgtest%d"
 *
 * The runner creates mgtest0 .. mgtest99 beforehand (PG_DATABASES); the
 * tests only create tables through the store and never drop anything.
 *
 * mg_store_open_postgres() is declared weak, so this file links without
 * the PostgreSQL backend: without it the second pass is skipped with a
 * notice, unless MG_TEST_STORE_PG asks for it, which is then a failure.
 * (A weak reference does not pull a member out of a static archive: link
 * store_pg.o itself.) Tests about SQLite itself (files, modes, WAL,
 * migrations done by hand, :memory:) run only in the SQLite pass.
 */
#include <sys/stat.h>

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"

/* Defined by store_pg.c when it is linked in; NULL otherwise. */
__attribute__((weak)) struct mg_store *mg_store_open_postgres(const char *, char *, size_t);

#define HASH_A	"$y$j9T$uRKk9hQuujaHcxi/Ipkg7.$i0mpp4CcNv9o4lni4jBeMeIxNZI6.zbUx8Uga7ctlj1"
#define HASH_B	"$2b$05$PODVNE/mJKX3BPbIyJejkOohJ0NzPzsO4psw1huDx0Lsecyu4bzfC"

#define PG_DATABASES	100	/* the runner creates mgtest0 .. mgtest99 */

/* Which backend the generic tests open: set by the group setups. */
enum backend {
	BACKEND_SQLITE,
	BACKEND_PG
};

static enum backend	 backend = BACKEND_SQLITE;
static const char	*pg_template;	/* MG_TEST_STORE_PG, with "%d" */
static int		 pg_counter;	/* the next test's database number */

struct fixture {
	char	dir[64];	/* a fresh mkdtemp directory */
	char	path[128];	/* dir/store.db, not yet created */
	char	conninfo[1024];	/* PostgreSQL pass: this test's own database */
	int	checked;	/* PostgreSQL pass: found empty at the first open */
};

/* Copies pg_template to out with every "%d" replaced by n. 0 ok, -1 too long. */
static int
pg_conninfo(int n, char *out, size_t outlen)
{
	const char	*p = pg_template, *q;
	size_t		 len = 0;
	int		 w;

	while ((q = strstr(p, "%d")) != NULL) {
		w = snprintf(out + len, outlen - len, "%.*s%d", (int)(q - p), p, n);
		if (w < 0 || (size_t)w >= outlen - len)
			return -1;
		len += (size_t)w;
		p = q + 2;
	}
	w = snprintf(out + len, outlen - len, "%s", p);
	return w < 0 || (size_t)w >= outlen - len ? -1 : 0;
}

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	if (backend == BACKEND_PG) {
		if (pg_counter >= PG_DATABASES)
			fail_msg("more than %d PostgreSQL tests: the runner makes only %d databases",
			    PG_DATABASES, PG_DATABASES);
		if (pg_conninfo(pg_counter++, f->conninfo, sizeof(f->conninfo)) == -1)
			fail_msg("MG_TEST_STORE_PG is too long");
	}
	*state = f;
	return 0;
}

static int
group_sqlite(void **state)
{
	(void)state;
	backend = BACKEND_SQLITE;
	return 0;
}

static int
group_pg(void **state)
{
	(void)state;
	backend = BACKEND_PG;
	pg_counter = 0;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct mg_store *
open_ok(const char *path)
{
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";

	st = mg_store_open_sqlite(path, err, sizeof(err));
	if (st == NULL)
		fail_msg("open %s: %s", path, err);
	return st;
}

static int
count_user_cb(const struct mg_user *u, void *arg)
{
	(void)u;
	(*(int *)arg)++;
	return 0;
}

static int
count_device_cb(const struct mg_device *d, void *arg)
{
	(void)d;
	(*(int *)arg)++;
	return 0;
}

static int
count_audit_cb(const struct mg_audit *a, void *arg)
{
	(void)a;
	(*(int *)arg)++;
	return 0;
}

/*
 * Opens the test's store on the pass's backend: the SQLite file, or the
 * test's own PostgreSQL database. Opening again reaches the same data.
 * A PostgreSQL database left over from an earlier run would make the
 * tests fail in puzzling ways, so the first open says so plainly.
 */
static struct mg_store *
store_open(struct fixture *f)
{
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";
	int64_t		 gen = -1;
	int		 n = 0;

	if (backend == BACKEND_SQLITE)
		return open_ok(f->path);
	st = mg_store_open_postgres(f->conninfo, err, sizeof(err));
	if (st == NULL)
		fail_msg("open postgresql %s: %s", f->conninfo, err);
	if (!f->checked) {
		if (mg_store_user_list(st, count_user_cb, &n, err, sizeof(err)) != 0 ||
		    mg_store_device_list(st, NULL, count_device_cb, &n, err, sizeof(err)) != 0 ||
		    mg_store_audit_list(st, NULL, 0, count_audit_cb, &n, err, sizeof(err)) != 0 ||
		    mg_store_generation(st, &gen, err, sizeof(err)) != 0)
			fail_msg("postgresql %s: %s", f->conninfo, err);
		if (n != 0 || gen != 0)
			fail_msg("postgresql %s is not empty: each test needs a new database "
			    "(see the top of test_store.c)", f->conninfo);
		f->checked = 1;
	}
	return st;
}

/* The SQLite schema is at version 2; PostgreSQL numbers its own. */
static void
assert_schema_current(struct mg_store *st)
{
	if (backend == BACKEND_SQLITE)
		assert_int_equal(mg_store_schema_version(st), 2);
	else
		assert_true(mg_store_schema_version(st) >= 1);
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

static int64_t
auth_gen(struct mg_store *st, const char *user)
{
	struct mg_user	u;
	char		err[MG_ERRLEN] = "";

	if (mg_store_user_get(st, user, &u, err, sizeof(err)) != 1)
		fail_msg("user_get %s: %s", user, err);
	return u.auth_gen;
}

/* Runs SQL on the file through a connection of the test's own. */
static void
raw_exec(const char *path, const char *sql)
{
	sqlite3	*db;
	char	*msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* The first column of the first row of a query, as an integer. */
static int
raw_int(const char *path, const char *sql)
{
	sqlite3		*db;
	sqlite3_stmt	*stmt;
	int		 v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

static void
make_account(struct mg_account *a, const char *user, const char *provider, const char *login,
    uint8_t fill, size_t len)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->user, sizeof(a->user), "%s", user);
	snprintf(a->provider, sizeof(a->provider), "%s", provider);
	snprintf(a->login, sizeof(a->login), "%s", login);
	a->kind = MG_SECRET_PASSWORD;
	memset(a->sealed, fill, len);
	a->sealed_len = len;
}

/* A device whose hash is 64 times the hex digit `h`. */
static void
make_device(struct mg_device *d, const char *user, const char *label, char h, unsigned scopes,
    const char *account)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->user, sizeof(d->user), "%s", user);
	snprintf(d->label, sizeof(d->label), "%s", label);
	memset(d->hash, h, MG_DEVHASH_LEN);
	d->hash[MG_DEVHASH_LEN] = '\0';
	d->scopes = scopes;
	snprintf(d->account, sizeof(d->account), "%s", account);
}

static void
make_hash(char *out, char h)
{
	memset(out, h, MG_DEVHASH_LEN);
	out[MG_DEVHASH_LEN] = '\0';
}

static void
make_audit(struct mg_audit *a, time_t ts, const char *kind, const char *user, const char *device,
    const char *proto, const char *result, const char *detail)
{
	memset(a, 0, sizeof(*a));
	a->ts = ts;
	snprintf(a->kind, sizeof(a->kind), "%s", kind);
	snprintf(a->user, sizeof(a->user), "%s", user);
	snprintf(a->device, sizeof(a->device), "%s", device);
	snprintf(a->proto, sizeof(a->proto), "%s", proto);
	snprintf(a->client, sizeof(a->client), "%s", strcmp(kind, "admin") == 0 ? "cli" : "192.0.2.7:40000");
	snprintf(a->result, sizeof(a->result), "%s", result);
	snprintf(a->detail, sizeof(a->detail), "%s", detail);
}

/* Collects list callbacks: names joined by ',' and a stop-after count. */
struct collect {
	char	names[1024];
	int	count;
	int	stop_after;	/* 0: never stop */
};

static void
collect_add(struct collect *c, const char *name)
{
	size_t	len = strlen(c->names);

	snprintf(c->names + len, sizeof(c->names) - len, "%s%s", len > 0 ? "," : "", name);
	c->count++;
}

static int
collect_user_cb(const struct mg_user *u, void *arg)
{
	struct collect	*c = arg;

	collect_add(c, u->name);
	return c->stop_after != 0 && c->count >= c->stop_after;
}

static int
collect_account_cb(const struct mg_account *a, void *arg)
{
	struct collect	*c = arg;
	char		 name[2 * MG_NAME_MAX];

	snprintf(name, sizeof(name), "%s/%s", a->user, a->provider);
	collect_add(c, name);
	return c->stop_after != 0 && c->count >= c->stop_after;
}

static int
collect_device_cb(const struct mg_device *d, void *arg)
{
	struct collect	*c = arg;
	char		 name[MG_NAME_MAX + MG_LABEL_MAX];

	snprintf(name, sizeof(name), "%s/%s", d->user, d->label);
	collect_add(c, name);
	return c->stop_after != 0 && c->count >= c->stop_after;
}

/* Audit records collect as their detail, and their ids must rise. */
struct collect_audit {
	struct collect	c;
	int64_t		last_id;
	struct mg_audit	first;		/* a copy of the first record seen */
};

static int
collect_audit_cb(const struct mg_audit *a, void *arg)
{
	struct collect_audit	*ca = arg;

	if (ca->c.count == 0)
		ca->first = *a;
	else if (a->id <= ca->last_id)
		fail_msg("audit id %lld after %lld", (long long)a->id, (long long)ca->last_id);
	ca->last_id = a->id;
	collect_add(&ca->c, a->detail);
	return ca->c.stop_after != 0 && ca->c.count >= ca->c.stop_after;
}

static void
test_open_creates_schema(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;

	st = open_ok(f->path);
	assert_int_equal(mg_store_schema_version(st), 2);
	assert_int_equal(generation(st), 0);
	mg_store_close(st);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
	    " AND name IN ('users', 'accounts', 'devices', 'meta', 'audit')"), 5);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
	    " AND name IN ('audit_user_ts', 'audit_ts')"), 2);
	/* The journal mode is stored in the file and outlives the connection. */
	assert_int_equal(raw_int(f->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a, got;
	struct mg_device	 d;
	struct mg_user		 u;
	char			 err[MG_ERRLEN];

	st = store_open(f);
	assert_schema_current(st);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "alice@gmail.com", 0x5a, 100);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_set_flags(st, "alice", 1, 0, err, sizeof(err)), 0);
	make_device(&d, "alice", "phone", 'c', MG_SCOPE_IMAP, "gmail");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	mg_store_close(st);

	st = store_open(f);
	assert_schema_current(st);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, HASH_A);
	assert_int_equal(u.disabled, 1);
	assert_int_equal(u.password_login, 0);
	assert_int_equal(u.auth_gen, 0);	/* flags do not move auth_gen */
	assert_int_equal(generation(st), 1);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &d, err, sizeof(err)), 1);
	assert_string_equal(d.account, "gmail");
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", &got, err, sizeof(err)), 1);
	assert_string_equal(got.login, "alice@gmail.com");
	assert_int_equal(got.sealed_len, 100);
	assert_memory_equal(got.sealed, a.sealed, 100);
	mg_store_close(st);
}

static void
test_migrations_idempotent(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	char		 err[MG_ERRLEN];
	int		 i, objects;

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	mg_store_close(st);
	objects = raw_int(f->path, "SELECT count(*) FROM sqlite_master");
	for (i = 0; i < 3; i++) {
		st = open_ok(f->path);
		assert_int_equal(mg_store_schema_version(st), 2);
		mg_store_close(st);
	}
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master"), objects);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM users"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta"), 1);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);
}

/* Two handles on one store (the gateway and the admin command). */
static void
test_two_handles(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st, *st2;
	char		 err[MG_ERRLEN];

	st = store_open(f);
	st2 = store_open(f);
	assert_int_equal(mg_store_user_add(st2, "bob", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 1);
	/* One handle's revoking change is what the other's generation shows. */
	assert_int_equal(mg_store_user_set_hash(st, "bob", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(generation(st2), 1);
	assert_int_equal(auth_gen(st2, "bob"), 1);
	mg_store_close(st2);
	mg_store_close(st);
}

static void
test_newer_version_refused(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";

	st = open_ok(f->path);
	mg_store_close(st);
	raw_exec(f->path, "PRAGMA user_version = 7");
	st = mg_store_open_sqlite(f->path, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "schema version 7"));
	assert_non_null(strstr(err, f->path));
	/* Refusing changes nothing. */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 7);
}

static void
test_failed_migration_rolls_back(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";

	/*
	 * A stray "accounts" table makes step 1 fail half way, after it has
	 * created "users": the whole step, users included, must roll back.
	 */
	raw_exec(f->path, "CREATE TABLE accounts (x)");
	st = mg_store_open_sqlite(f->path, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "migrating"));
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'users'"), 0);

	/* Once the obstacle is gone the migration runs. */
	raw_exec(f->path, "DROP TABLE accounts");
	st = open_ok(f->path);
	assert_int_equal(mg_store_schema_version(st), 2);
	mg_store_close(st);
}

static void
test_not_a_database(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";
	FILE		*fp;

	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, just some text long enough to matter.\n", fp);
	fclose(fp);
	st = mg_store_open_sqlite(f->path, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "not a database"));

	assert_null(mg_store_open_sqlite("", err, sizeof(err)));
	assert_null(mg_store_open_sqlite(NULL, err, sizeof(err)));
	assert_null(mg_store_open_sqlite("/nonexistent-dir/store.db", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent-dir/store.db"));
}

static void
test_users(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	struct mg_user	 u;
	struct collect	 c;
	char		 err[MG_ERRLEN];
	time_t		 before;

	st = store_open(f);
	before = time(NULL);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "carol", "*", err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_B, err, sizeof(err)), 1);

	memset(&u, 0xff, sizeof(u));
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.name, "alice");
	assert_string_equal(u.hash, HASH_A);	/* the duplicate add changed nothing */
	assert_true(u.created >= before && u.created <= time(NULL));
	assert_int_equal(u.updated, u.created);
	/* A new user may log in, by password, and has nothing to revoke yet. */
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 0);
	assert_int_equal(mg_store_user_get(st, "dave", &u, err, sizeof(err)), 0);
	/* Names are exact: no case folding, no LIKE. */
	assert_int_equal(mg_store_user_get(st, "Alice", &u, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "al%", &u, err, sizeof(err)), 0);

	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, HASH_B);
	assert_int_equal(mg_store_user_set_hash(st, "dave", HASH_B, err, sizeof(err)), 1);

	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_user_list(st, collect_user_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice,bob,carol");
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(mg_store_user_list(st, collect_user_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice,bob");

	assert_int_equal(mg_store_user_del(st, "bob", err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_del(st, "bob", err, sizeof(err)), 1);
	assert_int_equal(mg_store_user_get(st, "bob", &u, err, sizeof(err)), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_user_list(st, collect_user_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice,carol");
	mg_store_close(st);
}

static void
test_validation(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a;
	struct mg_user		 u;
	char			 err[MG_ERRLEN], name[MG_NAME_MAX + 1], hash[MG_HASH_MAX + 1];

	st = store_open(f);
	assert_int_equal(mg_store_user_add(NULL, "alice", HASH_A, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_add(st, "", HASH_A, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(mg_store_user_add(st, NULL, HASH_A, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_add(st, "alice", NULL, err, sizeof(err)), -1);

	/* 255 bytes fit MG_NAME_MAX with the NUL; 256 do not. */
	memset(name, 'n', sizeof(name));
	name[MG_NAME_MAX] = '\0';
	assert_int_equal(mg_store_user_add(st, name, HASH_A, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
	name[MG_NAME_MAX - 1] = '\0';
	assert_int_equal(mg_store_user_add(st, name, HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, name, &u, err, sizeof(err)), 1);
	assert_string_equal(u.name, name);

	memset(hash, 'h', sizeof(hash));
	hash[MG_HASH_MAX] = '\0';
	assert_int_equal(mg_store_user_add(st, "alice", hash, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_set_hash(st, name, hash, err, sizeof(err)), -1);
	hash[MG_HASH_MAX - 1] = '\0';
	assert_int_equal(mg_store_user_add(st, "alice", hash, err, sizeof(err)), 0);

	make_account(&a, "alice", "gmail", "alice@gmail.com", 1, 0);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), -1);
	a.sealed_len = MG_SEALED_MAX + 1;
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), -1);
	a.sealed_len = 10;
	a.kind = 3;
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "kind"));
	a.kind = MG_SECRET_OAUTH2_REFRESH;
	a.login[0] = '\0';
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), -1);
	/* An unterminated array in the caller's struct is not read past its end. */
	memset(a.login, 'l', sizeof(a.login));
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_set(st, NULL, err, sizeof(err)), -1);

	assert_int_equal(mg_store_account_get(st, NULL, NULL, &a, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_get(st, "alice", "", &a, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_del(st, "alice", NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_list(st, NULL, NULL, err, sizeof(err)), -1);
	/* A NULL error buffer is allowed. */
	assert_int_equal(mg_store_user_add(st, "", HASH_A, NULL, 0), -1);
	mg_store_close(st);
}

static void
test_accounts(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a, got;
	struct collect		 c;
	char			 err[MG_ERRLEN];
	int			 i;

	st = store_open(f);
	make_account(&a, "alice", "gmail", "alice@gmail.com", 0x11, 64);
	/* No such user yet. */
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 1);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &got, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);

	memset(&got, 0xff, sizeof(got));
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", &got, err, sizeof(err)), 1);
	assert_string_equal(got.user, "alice");
	assert_string_equal(got.provider, "gmail");
	assert_string_equal(got.login, "alice@gmail.com");
	assert_int_equal(got.kind, MG_SECRET_PASSWORD);
	assert_int_equal(got.sealed_len, 64);
	assert_memory_equal(got.sealed, a.sealed, 64);
	assert_true(got.updated > 0);

	/* Replacing keeps one row and takes every new field. */
	make_account(&a, "alice", "gmail", "alice.new@gmail.com", 0x22, MG_SEALED_MAX);
	for (i = 0; i < MG_SEALED_MAX; i++)
		a.sealed[i] = (uint8_t)i;	/* binary, with NULs */
	a.kind = MG_SECRET_OAUTH2_REFRESH;
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", &got, err, sizeof(err)), 1);
	assert_string_equal(got.login, "alice.new@gmail.com");
	assert_int_equal(got.kind, MG_SECRET_OAUTH2_REFRESH);
	assert_int_equal(got.sealed_len, MG_SEALED_MAX);
	assert_memory_equal(got.sealed, a.sealed, MG_SEALED_MAX);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(st, NULL, collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/gmail");

	/* Without a provider: the first by provider name. */
	make_account(&a, "alice", "fastmail", "alice@fastmail.com", 0x33, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "alice", "posteo", "alice@posteo.de", 0x44, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "bob", "aol", "bob@aol.com", 0x55, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &got, err, sizeof(err)), 1);
	assert_string_equal(got.provider, "fastmail");
	assert_string_equal(got.login, "alice@fastmail.com");
	assert_int_equal(mg_store_account_get(st, "alice", "aol", &got, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "nobody", NULL, &got, err, sizeof(err)), 0);

	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(st, "alice", collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/fastmail,alice/gmail,alice/posteo");
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(st, NULL, collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/fastmail,alice/gmail,alice/posteo,bob/aol");
	memset(&c, 0, sizeof(c));
	c.stop_after = 1;
	assert_int_equal(mg_store_account_list(st, NULL, collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/fastmail");
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(st, "nobody", collect_account_cb, &c, err, sizeof(err)), 0);
	assert_int_equal(c.count, 0);

	assert_int_equal(mg_store_account_del(st, "alice", "fastmail", err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_del(st, "alice", "fastmail", err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_del(st, "nobody", "gmail", err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &got, err, sizeof(err)), 1);
	assert_string_equal(got.provider, "gmail");
	mg_store_close(st);
}

static void
test_user_del_cascades(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a;
	struct mg_device	 d;
	struct collect		 c;
	char			 err[MG_ERRLEN], hash[MG_DEVHASH_LEN + 1];

	st = store_open(f);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "a@gmail.com", 1, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "alice", "posteo", "a@posteo.de", 2, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "bob", "gmail", "b@gmail.com", 3, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_device(&d, "alice", "phone", '1', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "alice", "laptop", '2', MG_SCOPE_ALL, "posteo");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "bob", "phone", '1', MG_SCOPE_SMTP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);

	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), 0);
	assert_int_equal(generation(st), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(st, NULL, collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "bob/gmail");
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, NULL, collect_device_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "bob/phone");
	/* Deleting nobody bumps nothing. */
	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), 1);
	assert_int_equal(generation(st), 1);

	/* A new alice starts with no accounts and no devices. */
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &a, err, sizeof(err)), 0);
	make_hash(hash, '1');
	assert_int_equal(mg_store_device_find(st, "alice", hash, &d, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_get(st, "alice", "laptop", &d, err, sizeof(err)), 0);
	mg_store_close(st);
}

static void
test_secure_delete(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a;
	char			 err[MG_ERRLEN], *buf;
	static const char	 marker[] = "SEALED-SECRET-MARKER-0123456789";
	FILE			*fp;
	size_t			 n;

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "a@gmail.com", 0, 0);
	memcpy(a.sealed, marker, sizeof(marker));
	a.sealed_len = sizeof(marker);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	mg_store_close(st);

	st = open_ok(f->path);
	assert_int_equal(mg_store_account_del(st, "alice", "gmail", err, sizeof(err)), 0);
	/* Closing the last connection checkpoints the WAL into the file and removes it. */
	mg_store_close(st);
	assert_int_equal(access(f->path, F_OK), 0);

	buf = malloc(1 << 20);
	assert_non_null(buf);
	fp = fopen(f->path, "rb");
	assert_non_null(fp);
	n = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	assert_true(n > 0);
	assert_null(memmem(buf, n, marker, sizeof(marker) - 1));
	free(buf);
}

static void
test_file_mode(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	struct stat	 sb;
	char		 err[MG_ERRLEN], wal[160];
	mode_t		 old;

	old = umask(0);
	st = open_ok(f->path);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	/* The WAL file, made on the first write, takes the database's mode. */
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	mg_store_close(st);
	umask(old);
	assert_int_equal(unlink(f->path), 0);

	/* A strict umask must not leave the owner without write access. */
	old = umask(0277);
	st = open_ok(f->path);
	umask(old);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	mg_store_close(st);
}

static void
test_memory(void **state)
{
	struct mg_store	*st;
	struct mg_user	 u;
	char		 err[MG_ERRLEN];

	(void)state;
	st = open_ok(":memory:");
	assert_int_equal(mg_store_schema_version(st), 2);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	mg_store_close(st);
	mg_store_close(NULL);
}

static void
test_corrupt_rows(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a;
	struct mg_device	 d;
	struct mg_user		 u;
	struct collect		 c;
	char			 err[MG_ERRLEN] = "";

	st = open_ok(f->path);
	mg_store_close(st);
	/* Rows written behind the store's back that do not fit its structs. */
	raw_exec(f->path,
	    "INSERT INTO users (name, hash, created, updated) VALUES (printf('%.300c', 'x'), 'h', 0, 0);"
	    "INSERT INTO users (name, hash, created, updated) VALUES ('alice', 'h', 0, 0);"
	    "INSERT INTO accounts VALUES ('alice', 'gmail', 'l', 1, zeroblob(9000), 0);");
	st = open_ok(f->path);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_user_list(st, collect_user_cb, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "malformed"));
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "9000 bytes"));
	mg_store_close(st);

	/* Flags and scopes the store never writes are not guessed at. */
	raw_exec(f->path,
	    "INSERT INTO users (name, hash, created, updated, disabled) VALUES ('bob', 'h', 0, 0, 2);"
	    "INSERT INTO devices (user, label, hash, scopes, created) VALUES"
	    " ('alice', 'phone', printf('%.64c', 'a'), 0, 0);"
	    "INSERT INTO devices (user, label, hash, scopes, created) VALUES"
	    " ('alice', 'pad', printf('%.64c', 'b'), 8, 0);");
	st = open_ok(f->path);
	assert_int_equal(mg_store_user_get(st, "bob", &u, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "flags"));
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "scopes"));
	assert_int_equal(mg_store_device_get(st, "alice", "pad", &d, err, sizeof(err)), -1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, NULL, collect_device_cb, &c, err, sizeof(err)), -1);
	mg_store_close(st);
}

/* The version 1 schema as migration 1 made it: stores in the field have it. */
static const char v1_schema[] =
    "CREATE TABLE users ("
    "  name    TEXT PRIMARY KEY,"
    "  hash    TEXT NOT NULL,"
    "  created INTEGER,"
    "  updated INTEGER"
    ");"
    "CREATE TABLE accounts ("
    "  user     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
    "  provider TEXT NOT NULL,"
    "  login    TEXT NOT NULL,"
    "  kind     INTEGER NOT NULL,"
    "  secret   BLOB NOT NULL,"
    "  updated  INTEGER,"
    "  PRIMARY KEY (user, provider)"
    ");"
    "INSERT INTO users VALUES ('alice', '" HASH_A "', 100, 200);"
    "INSERT INTO users VALUES ('bob', '" HASH_B "', 300, 300);"
    "INSERT INTO accounts VALUES ('alice', 'gmail', 'alice@gmail.com', 1, x'00010203', 200);"
    "PRAGMA user_version = 1;";

static void
test_migrate_v1(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a;
	struct mg_device	 d;
	struct mg_user		 u;
	struct collect		 c;
	char			 err[MG_ERRLEN];

	raw_exec(f->path, v1_schema);
	st = open_ok(f->path);
	assert_int_equal(mg_store_schema_version(st), 2);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);

	/* The old rows are all there, and their users log in as before. */
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, HASH_A);
	assert_int_equal(u.created, 100);
	assert_int_equal(u.updated, 200);
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_user_list(st, collect_user_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice,bob");
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &a, err, sizeof(err)), 1);
	assert_string_equal(a.login, "alice@gmail.com");
	assert_int_equal(a.sealed_len, 4);
	assert_memory_equal(a.sealed, "\x00\x01\x02\x03", 4);
	assert_int_equal(a.updated, 200);
	assert_int_equal(generation(st), 0);

	/* And the new tables work, foreign key and cascade included. */
	make_device(&d, "alice", "phone", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "carol", "phone", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 1);
	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), 0);
	assert_int_equal(generation(st), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM devices"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM accounts"), 0);
	mg_store_close(st);
}

static void
test_failed_migration_v2(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	char		 err[MG_ERRLEN] = "";

	/*
	 * A stray "devices" table stops step 2 after it has altered users:
	 * the store must stay a working version 1 store, columns and all.
	 */
	raw_exec(f->path, v1_schema);
	raw_exec(f->path, "CREATE TABLE devices (x)");
	st = mg_store_open_sqlite(f->path, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "migrating"));
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_table_info('users')"), 4);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'"), 0);

	raw_exec(f->path, "DROP TABLE devices");
	st = open_ok(f->path);
	assert_int_equal(mg_store_schema_version(st), 2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM users"), 2);
	mg_store_close(st);
}

static void
test_flags_and_generation(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a;
	struct mg_device	 d;
	struct mg_user		 u;
	char			 err[MG_ERRLEN];

	st = store_open(f);
	assert_int_equal(generation(st), 0);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(generation(st), 0);

	/* A new password: the user's auth_gen and the generation, once each. */
	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(auth_gen(st, "alice"), 1);
	assert_int_equal(auth_gen(st, "bob"), 0);
	assert_int_equal(generation(st), 1);
	assert_int_equal(mg_store_user_set_hash(st, "nobody", HASH_B, err, sizeof(err)), 1);
	assert_int_equal(generation(st), 1);

	/*
	 * Flags: -1 keeps a flag; every change bumps the generation, not
	 * auth_gen (the flags themselves say which sessions end).
	 */
	assert_int_equal(mg_store_user_set_flags(st, "alice", 1, -1, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.disabled, 1);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 1);
	assert_string_equal(u.hash, HASH_B);
	assert_int_equal(generation(st), 2);
	assert_int_equal(mg_store_user_set_flags(st, "alice", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.disabled, 1);
	assert_int_equal(u.password_login, 0);
	assert_int_equal(u.auth_gen, 1);
	assert_int_equal(mg_store_user_set_flags(st, "alice", 0, -1, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.password_login, 0);
	assert_int_equal(u.auth_gen, 1);
	assert_int_equal(generation(st), 4);
	assert_int_equal(mg_store_user_set_flags(st, "nobody", 1, 1, err, sizeof(err)), 1);
	assert_int_equal(generation(st), 4);
	/* bob was never touched. */
	assert_int_equal(mg_store_user_get(st, "bob", &u, err, sizeof(err)), 1);
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 0);

	/* Accounts and new devices revoke nothing. */
	make_account(&a, "alice", "gmail", "alice@gmail.com", 9, 50);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "alice2@gmail.com", 8, 50);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_device(&d, "alice", "phone", '7', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_touch(st, "alice", "phone", 1700000000, "192.0.2.1:1",
	    err, sizeof(err)), 0);
	assert_int_equal(generation(st), 4);
	assert_int_equal(auth_gen(st, "alice"), 1);

	/* Revoking a device bumps the generation; the user's other credentials stay. */
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), 0);
	assert_int_equal(generation(st), 5);
	assert_int_equal(auth_gen(st, "alice"), 1);
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), 1);
	assert_int_equal(generation(st), 5);

	assert_int_equal(mg_store_user_del(st, "bob", err, sizeof(err)), 0);
	assert_int_equal(generation(st), 6);
	mg_store_close(st);
}

static void
test_devices(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_device	 d, got;
	struct collect		 c;
	char			 err[MG_ERRLEN], hash[MG_DEVHASH_LEN + 1];
	time_t			 before;

	st = store_open(f);
	make_device(&d, "alice", "phone", 'a', MG_SCOPE_IMAP | MG_SCOPE_SMTP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 1);	/* no such user */
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	before = time(NULL);
	/* What the caller puts in the store-kept fields is not used. */
	d.created = 5;
	d.last_used = 6;
	snprintf(d.last_addr, sizeof(d.last_addr), "198.51.100.1:2");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);

	/* A taken label, or a taken hash, for the same user. */
	make_device(&d, "alice", "phone", 'b', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 2);
	make_device(&d, "alice", "laptop", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 2);
	/* Labels and hashes are per user; labels are exact, case included. */
	make_device(&d, "bob", "phone", 'a', MG_SCOPE_POP3, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "alice", "laptop", 'b', MG_SCOPE_ALL, "gmail");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "alice", "Phone", 'c', MG_SCOPE_POP3, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);

	memset(&got, 0xff, sizeof(got));
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &got, err, sizeof(err)), 1);
	assert_string_equal(got.user, "alice");
	assert_string_equal(got.label, "phone");
	make_hash(hash, 'a');
	assert_string_equal(got.hash, hash);
	assert_int_equal(got.scopes, MG_SCOPE_IMAP | MG_SCOPE_SMTP);
	assert_string_equal(got.account, "");
	assert_true(got.created >= before && got.created <= time(NULL));
	assert_int_equal(got.last_used, 0);
	assert_string_equal(got.last_addr, "");
	assert_int_equal(mg_store_device_get(st, "alice", "laptop", &got, err, sizeof(err)), 1);
	assert_string_equal(got.account, "gmail");
	assert_int_equal(got.scopes, MG_SCOPE_ALL);
	assert_int_equal(mg_store_device_get(st, "alice", "tablet", &got, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_get(st, "Alice", "phone", &got, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_get(st, "nobody", "phone", &got, err, sizeof(err)), 0);

	/* find: by user and hash. */
	memset(&got, 0, sizeof(got));
	assert_int_equal(mg_store_device_find(st, "alice", hash, &got, err, sizeof(err)), 1);
	assert_string_equal(got.label, "phone");
	assert_int_equal(mg_store_device_find(st, "bob", hash, &got, err, sizeof(err)), 1);
	assert_string_equal(got.user, "bob");
	assert_int_equal(got.scopes, MG_SCOPE_POP3);
	make_hash(hash, 'b');
	assert_int_equal(mg_store_device_find(st, "alice", hash, &got, err, sizeof(err)), 1);
	assert_string_equal(got.label, "laptop");
	assert_int_equal(mg_store_device_find(st, "bob", hash, &got, err, sizeof(err)), 0);
	make_hash(hash, 'd');
	assert_int_equal(mg_store_device_find(st, "alice", hash, &got, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_find(st, "nobody", hash, &got, err, sizeof(err)), 0);

	/* touch records the last login. */
	assert_int_equal(mg_store_device_touch(st, "alice", "phone", 1700000000, "[2001:db8::1]:51234",
	    err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &got, err, sizeof(err)), 1);
	assert_int_equal(got.last_used, 1700000000);
	assert_string_equal(got.last_addr, "[2001:db8::1]:51234");
	assert_int_equal(got.scopes, MG_SCOPE_IMAP | MG_SCOPE_SMTP);
	assert_int_equal(mg_store_device_touch(st, "alice", "phone", 1700000100, "192.0.2.9:1",
	    err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &got, err, sizeof(err)), 1);
	assert_int_equal(got.last_used, 1700000100);
	assert_string_equal(got.last_addr, "192.0.2.9:1");
	/* bob's phone is another device. */
	assert_int_equal(mg_store_device_get(st, "bob", "phone", &got, err, sizeof(err)), 1);
	assert_int_equal(got.last_used, 0);
	assert_int_equal(mg_store_device_touch(st, "alice", "tablet", 1700000000, "192.0.2.9:1",
	    err, sizeof(err)), 1);
	assert_int_equal(mg_store_device_touch(st, "nobody", "phone", 1700000000, "",
	    err, sizeof(err)), 1);

	/* Lists by user and label ("P" sorts before "l" in bytes). */
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, "alice", collect_device_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/Phone,alice/laptop,alice/phone");
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, NULL, collect_device_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/Phone,alice/laptop,alice/phone,bob/phone");
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(mg_store_device_list(st, NULL, collect_device_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/Phone,alice/laptop");
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, "nobody", collect_device_cb, &c, err, sizeof(err)), 0);
	assert_int_equal(c.count, 0);

	/* Revoking frees the label and the hash. */
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), 1);
	assert_int_equal(mg_store_device_revoke(st, "nobody", "phone", err, sizeof(err)), 1);
	make_hash(hash, 'a');
	assert_int_equal(mg_store_device_find(st, "alice", hash, &got, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_find(st, "bob", hash, &got, err, sizeof(err)), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, NULL, collect_device_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/Phone,alice/laptop,bob/phone");
	make_device(&d, "alice", "phone", 'a', MG_SCOPE_SMTP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &got, err, sizeof(err)), 1);
	assert_int_equal(got.scopes, MG_SCOPE_SMTP);
	assert_int_equal(got.last_used, 0);
	mg_store_close(st);
}

static void
test_device_validation(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_device	 d, got;
	struct collect		 c;
	char			 err[MG_ERRLEN], hash[MG_DEVHASH_LEN + 2], addr[MG_ADDR_MAX + 1];
	int64_t			 gen;

	st = store_open(f);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);

	/* Labels: [A-Za-z0-9_.-]{1,63}. */
	make_device(&d, "alice", "", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "label"));
	make_device(&d, "alice", "my phone", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "label"));
	make_device(&d, "alice", "a/b", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "t\xc3\xa9l\xc3\xa9phone", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "phone\n", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "", 'a', MG_SCOPE_IMAP, "");
	memset(d.label, 'x', sizeof(d.label));	/* 64 bytes, no NUL */
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
	d.label[MG_LABEL_MAX - 1] = '\0';		/* 63: fits */
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "alice", "Az09_.-", 'b', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);

	/* Hashes: exactly 64 lower-case hex digits. */
	make_device(&d, "alice", "h", 'c', MG_SCOPE_IMAP, "");
	d.hash[MG_DEVHASH_LEN - 1] = '\0';
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "hash"));
	make_device(&d, "alice", "h", 'C', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "h", 'g', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "h", 'c', MG_SCOPE_IMAP, "");
	memset(d.hash, 'c', sizeof(d.hash));		/* 65 bytes, no NUL */
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	memset(hash, 'c', sizeof(hash));
	hash[MG_DEVHASH_LEN + 1] = '\0';		/* 65 digits */
	assert_int_equal(mg_store_device_find(st, "alice", hash, &got, err, sizeof(err)), -1);
	hash[MG_DEVHASH_LEN - 1] = '\0';		/* 63 digits */
	assert_int_equal(mg_store_device_find(st, "alice", hash, &got, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_find(st, "alice", NULL, &got, err, sizeof(err)), -1);
	make_hash(hash, 'c');
	assert_int_equal(mg_store_device_find(st, "alice", hash, NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_find(st, "", hash, &got, err, sizeof(err)), -1);

	/* Scopes: not empty, nothing beyond imap, pop3, smtp. */
	make_device(&d, "alice", "h", 'c', 0, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "scopes"));
	make_device(&d, "alice", "h", 'c', 0x8, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "h", 'c', MG_SCOPE_ALL | 0x80000000u, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);

	/* The user and the account are names; the account may be "". */
	make_device(&d, "", "h", 'c', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	make_device(&d, "alice", "h", 'c', MG_SCOPE_IMAP, "");
	memset(d.account, 'p', sizeof(d.account));	/* no NUL */
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_add(st, NULL, err, sizeof(err)), -1);

	/* Nothing above was written. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, "alice", collect_device_cb, &c, err, sizeof(err)), 0);
	assert_int_equal(c.count, 2);

	/* touch: an address that fits and has no control bytes, a real time. */
	memset(addr, '1', sizeof(addr));
	addr[MG_ADDR_MAX] = '\0';			/* 64 bytes: too long */
	assert_int_equal(mg_store_device_touch(st, "alice", "Az09_.-", 1700000000, addr,
	    err, sizeof(err)), -1);
	addr[MG_ADDR_MAX - 1] = '\0';			/* 63: fits */
	assert_int_equal(mg_store_device_touch(st, "alice", "Az09_.-", 1700000000, addr,
	    err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_touch(st, "alice", "Az09_.-", 1700000000, "1.2.3.4\r\n",
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "control"));
	assert_int_equal(mg_store_device_touch(st, "alice", "Az09_.-", 1700000000, NULL,
	    err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_touch(st, "alice", "Az09_.-", 0, "", err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_touch(st, "alice", "no such", 1700000000, "",
	    err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_get(st, "alice", "Az09_.-", &got, err, sizeof(err)), 1);
	assert_string_equal(got.last_addr, addr);

	/* The rest of the device calls check their labels too. */
	assert_int_equal(mg_store_device_get(st, "alice", "a b", &got, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_revoke(st, "alice", "", err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_revoke(st, "alice", NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_list(st, NULL, NULL, NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_list(st, "", collect_device_cb, &c, err, sizeof(err)), -1);

	/* Flags are 0, 1 or -1. */
	assert_int_equal(mg_store_user_set_flags(st, "alice", 2, -1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "disabled"));
	assert_int_equal(mg_store_user_set_flags(st, "alice", -1, -2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "password_login"));
	assert_int_equal(mg_store_user_set_flags(st, "", 1, 1, err, sizeof(err)), -1);
	assert_int_equal(mg_store_generation(st, NULL, err, sizeof(err)), -1);
	assert_int_equal(mg_store_generation(NULL, &gen, err, sizeof(err)), -1);
	/* None of the refused calls bumped anything. */
	assert_int_equal(generation(st), 0);
	assert_int_equal(auth_gen(st, "alice"), 0);
	mg_store_close(st);
}

static void
test_audit(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_audit		 a;
	struct collect_audit	 ca;
	char			 err[MG_ERRLEN];
	time_t			 before;

	st = store_open(f);
	/* No users needed: a failed login records the name that was tried. */
	make_audit(&a, 1000, "login", "alice", "phone", "imap", "ok", "r1");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	make_audit(&a, 2000, "login", "mallory", "", "smtp", "fail", "r2");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	make_audit(&a, 3000, "admin", "alice", "", "", "ok", "r3");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	before = time(NULL);
	make_audit(&a, 0, "login", "alice", "", "pop3", "tempfail", "r4");	/* 0: now */
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	/* Written after r4 but dated before r2: the list goes by id, not by ts. */
	make_audit(&a, 1500, "login", "alice", "laptop", "imap", "ok", "r5 t\xc3\xa9st");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	make_audit(&a, 1600, "admin", "", "", "", "ok", "r6 key rotate");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);

	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, NULL, 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r1,r2,r3,r4,r5 t\xc3\xa9st,r6 key rotate");
	assert_true(ca.first.id > 0);
	assert_int_equal(ca.first.ts, 1000);
	assert_string_equal(ca.first.kind, "login");
	assert_string_equal(ca.first.user, "alice");
	assert_string_equal(ca.first.device, "phone");
	assert_string_equal(ca.first.proto, "imap");
	assert_string_equal(ca.first.client, "192.0.2.7:40000");
	assert_string_equal(ca.first.result, "ok");
	assert_string_equal(ca.first.detail, "r1");

	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, "alice", 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r1,r3,r4,r5 t\xc3\xa9st");
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, NULL, 1600, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r2,r3,r4,r6 key rotate");
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, "alice", 2500, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r3,r4");
	/* since is inclusive. */
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, "alice", 3000, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r3,r4");
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, NULL, before, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r4");
	assert_true(ca.first.ts >= before && ca.first.ts <= time(NULL));
	assert_string_equal(ca.first.result, "tempfail");
	assert_string_equal(ca.first.client, "192.0.2.7:40000");
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, "Alice", 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_int_equal(ca.c.count, 0);
	memset(&ca, 0, sizeof(ca));
	ca.c.stop_after = 2;
	assert_int_equal(mg_store_audit_list(st, NULL, 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "r1,r2");
	/* Audit records are not revoking changes. */
	assert_int_equal(generation(st), 0);
	mg_store_close(st);
}

/* A batch goes in whole, in order; a batch with one bad record goes in not at all. */
static void
test_audit_add_many(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_audit		 a[4];
	struct collect_audit	 ca;
	char			 err[MG_ERRLEN];

	st = store_open(f);
	make_audit(&a[0], 1000, "login", "alice", "phone", "imap", "ok", "b1");
	make_audit(&a[1], 900, "login", "bob", "", "smtp", "fail", "b2");
	make_audit(&a[2], 0, "login", "alice", "", "pop3", "tempfail", "b3");
	assert_int_equal(mg_store_audit_add_many(st, a, 3, err, sizeof(err)), 0);
	assert_int_equal(mg_store_audit_add_many(st, a, 0, err, sizeof(err)), 0);
	/* The fourth record is refused, so none of the four is written. */
	make_audit(&a[0], 1000, "login", "carol", "", "imap", "ok", "c1");
	make_audit(&a[1], 1000, "login", "carol", "", "imap", "ok", "c2");
	make_audit(&a[2], 1000, "login", "carol", "", "imap", "ok", "c3");
	make_audit(&a[3], 1000, "login", "carol\nresult=ok", "", "imap", "ok", "c4");
	assert_int_equal(mg_store_audit_add_many(st, a, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "control"));
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, NULL, 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "b1,b2,b3");
	assert_int_equal(ca.first.ts, 1000);
	assert_string_equal(ca.first.device, "phone");
	/* The first three alone go in. */
	assert_int_equal(mg_store_audit_add_many(st, a, 3, err, sizeof(err)), 0);
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, "carol", 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_string_equal(ca.c.names, "c1,c2,c3");
	mg_store_close(st);
}

static void
test_audit_validation(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_audit		 a;
	struct collect_audit	 ca;
	char			 err[MG_ERRLEN];

	st = store_open(f);
	make_audit(&a, 1000, "", "alice", "", "imap", "ok", "x");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "kind"));
	make_audit(&a, 1000, "login", "alice", "", "imap", "", "x");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "result"));
	/* Control bytes are refused, not escaped or dropped. */
	make_audit(&a, 1000, "login", "alice\nresult=ok", "", "imap", "fail", "x");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "control"));
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "bad\x1b[2J");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "del\x7f");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "tab\there");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	/* A field without room for its NUL is refused, not cut. */
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "");
	memset(a.detail, 'd', sizeof(a.detail));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
	a.detail[sizeof(a.detail) - 1] = '\0';		/* 255 bytes: fits */
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), 0);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "x");
	memset(a.proto, 'p', sizeof(a.proto));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "x");
	memset(a.device, 'd', sizeof(a.device));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "x");
	memset(a.client, 'c', sizeof(a.client));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "x");
	memset(a.user, 'u', sizeof(a.user));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "x");
	memset(a.kind, 'k', sizeof(a.kind));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, 1000, "login", "alice", "", "imap", "fail", "x");
	memset(a.result, 'r', sizeof(a.result));
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	make_audit(&a, -1, "login", "alice", "", "imap", "fail", "x");
	assert_int_equal(mg_store_audit_add(st, &a, err, sizeof(err)), -1);
	assert_int_equal(mg_store_audit_add(st, NULL, err, sizeof(err)), -1);

	memset(&ca, 0, sizeof(ca));
	assert_int_equal(mg_store_audit_list(st, NULL, -1, collect_audit_cb, &ca, err, sizeof(err)), -1);
	assert_int_equal(mg_store_audit_list(st, "", 0, collect_audit_cb, &ca, err, sizeof(err)), -1);
	assert_int_equal(mg_store_audit_list(st, NULL, 0, NULL, NULL, err, sizeof(err)), -1);
	/* Only the one valid record was written. */
	assert_int_equal(mg_store_audit_list(st, NULL, 0, collect_audit_cb, &ca, err, sizeof(err)), 0);
	assert_int_equal(ca.c.count, 1);
	assert_int_equal(strlen(ca.first.detail), sizeof(a.detail) - 1);
	mg_store_close(st);
}

static void
test_account_reseal(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	*a, *b, *got;
	char			 err[MG_ERRLEN];

	/* Three 8 KiB structs: on the heap. */
	a = malloc(sizeof(*a));
	b = malloc(sizeof(*b));
	got = malloc(sizeof(*got));
	assert_true(a != NULL && b != NULL && got != NULL);
	st = store_open(f);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_account(a, "alice", "gmail", "alice@gmail.com", 0xa1, 60);
	a->sealed[0] = 0;	/* a NUL inside the blob is compared too */
	assert_int_equal(mg_store_account_set(st, a, err, sizeof(err)), 0);
	make_account(b, "alice", "gmail", "alice@gmail.com", 0xb2, MG_SEALED_MAX);

	/* Still a: replaced. */
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", a->sealed, a->sealed_len,
	    b->sealed, b->sealed_len, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", got, err, sizeof(err)), 1);
	assert_int_equal(got->sealed_len, MG_SEALED_MAX);
	assert_memory_equal(got->sealed, b->sealed, MG_SEALED_MAX);
	assert_string_equal(got->login, "alice@gmail.com");
	assert_int_equal(got->kind, MG_SECRET_PASSWORD);

	/* No longer a: nothing written. */
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", a->sealed, a->sealed_len,
	    a->sealed, a->sealed_len, err, sizeof(err)), 1);
	/* Nor is a prefix of the stored secret a match. */
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", b->sealed, b->sealed_len - 1,
	    a->sealed, a->sealed_len, err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", got, err, sizeof(err)), 1);
	assert_int_equal(got->sealed_len, MG_SEALED_MAX);
	assert_memory_equal(got->sealed, b->sealed, MG_SEALED_MAX);
	/* Gone, or never there. */
	assert_int_equal(mg_store_account_reseal(st, "alice", "posteo", b->sealed, b->sealed_len,
	    a->sealed, a->sealed_len, err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_reseal(st, "nobody", "gmail", b->sealed, b->sealed_len,
	    a->sealed, a->sealed_len, err, sizeof(err)), 1);

	/* Argument checks. */
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", b->sealed, 0,
	    a->sealed, a->sealed_len, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", NULL, 10,
	    a->sealed, a->sealed_len, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", b->sealed, b->sealed_len,
	    a->sealed, MG_SEALED_MAX + 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "new sealed secret"));
	assert_int_equal(mg_store_account_reseal(st, "alice", "gmail", b->sealed, b->sealed_len,
	    NULL, 10, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_reseal(st, "alice", NULL, b->sealed, b->sealed_len,
	    a->sealed, a->sealed_len, err, sizeof(err)), -1);
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", got, err, sizeof(err)), 1);
	assert_memory_equal(got->sealed, b->sealed, MG_SEALED_MAX);
	/* A new seal of the same secret revokes nothing. */
	assert_int_equal(generation(st), 0);
	mg_store_close(st);
	free(a);
	free(b);
	free(got);
}

/* device_find is the device login path: it must probe an index, not scan. */
static void
test_device_find_indexed(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;
	sqlite3		*db;
	sqlite3_stmt	*stmt;
	const char	*detail;
	int		 found = 0;

	st = open_ok(f->path);
	mg_store_close(st);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT * FROM devices"
	    " WHERE user = ?1 AND hash = ?2", -1, &stmt, NULL), SQLITE_OK);
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		detail = (const char *)sqlite3_column_text(stmt, 3);
		if (detail != NULL && strstr(detail, "INDEX") != NULL &&
		    strstr(detail, "hash=?") != NULL)
			found = 1;
	}
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	assert_true(found);
}

/*
 * A revoking change and its bumps are one transaction: with the generation
 * row gone (a store edited by hand), each revoking call fails and leaves
 * the change itself undone.
 */
static void
test_revoke_is_atomic(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_device	 d;
	struct mg_user		 u;
	char			 err[MG_ERRLEN] = "";
	int64_t			 gen;

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_device(&d, "alice", "phone", 'a', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	raw_exec(f->path, "DELETE FROM meta");

	assert_int_equal(mg_store_generation(st, &gen, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "generation counter is missing"));
	err[0] = '\0';
	assert_int_equal(mg_store_user_set_hash(st, "alice", HASH_B, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "generation counter is missing"));
	assert_int_equal(mg_store_user_set_flags(st, "alice", 1, 0, err, sizeof(err)), -1);
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), -1);
	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), -1);

	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, HASH_A);
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.password_login, 1);
	assert_int_equal(u.auth_gen, 0);
	assert_int_equal(mg_store_device_get(st, "alice", "phone", &d, err, sizeof(err)), 1);
	/* No transaction was left open: other writes still work. */
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	mg_store_close(st);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM users"), 2);

	raw_exec(f->path, "INSERT INTO meta VALUES ('generation', 41)");
	st = open_ok(f->path);
	assert_int_equal(mg_store_device_revoke(st, "alice", "phone", err, sizeof(err)), 0);
	assert_int_equal(generation(st), 42);
	mg_store_close(st);
}

/* A list callback may call the store again from its own thread, revoking included. */
static int
revoke_each_cb(const struct mg_device *d, void *arg)
{
	struct mg_store	*st = arg;
	char		 err[MG_ERRLEN];

	if (mg_store_device_revoke(st, d->user, d->label, err, sizeof(err)) != 0)
		fail_msg("revoke %s/%s from a callback: %s", d->user, d->label, err);
	return 0;
}

static void
test_callback_reenters(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_device	 d;
	struct collect		 c;
	char			 err[MG_ERRLEN];

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_device(&d, "alice", "a", '1', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "alice", "b", '2', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	make_device(&d, "alice", "c", '3', MG_SCOPE_IMAP, "");
	assert_int_equal(mg_store_device_add(st, &d, err, sizeof(err)), 0);
	assert_int_equal(mg_store_device_list(st, "alice", revoke_each_cb, st, err, sizeof(err)), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_device_list(st, NULL, collect_device_cb, &c, err, sizeof(err)), 0);
	assert_int_equal(c.count, 0);
	assert_int_equal(generation(st), 3);
	assert_int_equal(auth_gen(st, "alice"), 0);
	mg_store_close(st);
}

/* The concurrency test: readers and a writer on one store handle. */
#define READERS		4
#define READ_ROUNDS	2000
#define WRITE_ROUNDS	400

struct race {
	struct mg_store	*st;
	int		 errors;	/* each thread adds its own count under mu */
	pthread_mutex_t	 mu;
};

static void *
race_reader(void *arg)
{
	struct race		*r = arg;
	struct mg_account	*a;
	struct mg_device	 d;
	struct mg_user		 u;
	char			 err[MG_ERRLEN], hash[MG_DEVHASH_LEN + 1];
	int64_t			 gen, last_gen = 0;
	int			 i, bad = 0, rc;

	a = malloc(sizeof(*a));
	if (a == NULL)
		return NULL;
	make_hash(hash, 'e');
	for (i = 0; i < READ_ROUNDS; i++) {
		/* The generation never goes back. */
		if (mg_store_generation(r->st, &gen, err, sizeof(err)) != 0 || gen < last_gen)
			bad++;
		last_gen = gen;
		/* The writer's device comes and goes; it is whole when found. */
		rc = mg_store_device_find(r->st, "alice", hash, &d, err, sizeof(err));
		if (rc == -1 || (rc == 1 && (strcmp(d.label, "phone") != 0 || d.scopes != MG_SCOPE_ALL)))
			bad++;
		if (mg_store_user_get(r->st, "alice", &u, err, sizeof(err)) != 1 ||
		    (strcmp(u.hash, HASH_A) != 0 && strcmp(u.hash, HASH_B) != 0))
			bad++;
		if (mg_store_account_get(r->st, "alice", i % 2 ? "gmail" : NULL, a, err, sizeof(err)) != 1 ||
		    strcmp(a->provider, "gmail") != 0 || a->sealed_len < 100 ||
		    a->sealed[0] != a->sealed[a->sealed_len - 1])
			bad++;
		/* The writer's scratch user may or may not exist, never error. */
		if (mg_store_user_get(r->st, "scratch", &u, err, sizeof(err)) == -1)
			bad++;
	}
	free(a);
	pthread_mutex_lock(&r->mu);
	r->errors += bad;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void *
race_writer(void *arg)
{
	struct race		*r = arg;
	struct mg_account	*a;
	struct mg_device	 d;
	char			 err[MG_ERRLEN];
	int			 i, bad = 0;

	a = malloc(sizeof(*a));
	if (a == NULL)
		return NULL;
	for (i = 0; i < WRITE_ROUNDS; i++) {
		if (mg_store_user_set_hash(r->st, "alice", i % 2 ? HASH_A : HASH_B, err, sizeof(err)) != 0)
			bad++;
		make_account(a, "alice", "gmail", "alice@gmail.com", (uint8_t)i, 100 + (size_t)i);
		if (mg_store_account_set(r->st, a, err, sizeof(err)) != 0)
			bad++;
		if (mg_store_user_add(r->st, "scratch", HASH_A, err, sizeof(err)) != 0)
			bad++;
		make_account(a, "scratch", "gmail", "s@gmail.com", 1, 40);
		if (mg_store_account_set(r->st, a, err, sizeof(err)) != 0)
			bad++;
		if (mg_store_user_del(r->st, "scratch", err, sizeof(err)) != 0)
			bad++;
		make_device(&d, "alice", "phone", 'e', MG_SCOPE_ALL, "");
		if (mg_store_device_add(r->st, &d, err, sizeof(err)) != 0 ||
		    mg_store_device_touch(r->st, "alice", "phone", 1700000000 + i, "192.0.2.1:1",
		    err, sizeof(err)) != 0 ||
		    mg_store_device_revoke(r->st, "alice", "phone", err, sizeof(err)) != 0)
			bad++;
	}
	free(a);
	pthread_mutex_lock(&r->mu);
	r->errors += bad;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fixture		*f = *state;
	struct race		 r;
	struct mg_account	 a;
	struct collect		 c;
	pthread_t		 readers[READERS], writer;
	char			 err[MG_ERRLEN];
	int			 i;

	memset(&r, 0, sizeof(r));
	assert_int_equal(pthread_mutex_init(&r.mu, NULL), 0);
	r.st = store_open(f);
	assert_int_equal(mg_store_user_add(r.st, "alice", HASH_A, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "alice@gmail.com", 7, 100);
	assert_int_equal(mg_store_account_set(r.st, &a, err, sizeof(err)), 0);

	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, race_reader, &r), 0);
	assert_int_equal(pthread_create(&writer, NULL, race_writer, &r), 0);
	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_join(readers[i], NULL), 0);
	assert_int_equal(pthread_join(writer, NULL), 0);

	assert_int_equal(r.errors, 0);
	assert_int_equal(mg_store_account_get(r.st, "alice", "gmail", &a, err, sizeof(err)), 1);
	assert_int_equal(a.sealed_len, 100 + WRITE_ROUNDS - 1);
	assert_int_equal(mg_store_user_get(r.st, "scratch", NULL, err, sizeof(err)), -1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(r.st, NULL, collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "alice/gmail");
	/*
	 * Every revoking write bumped exactly once, none lost to a race:
	 * per round a new hash (alice), a deletion (scratch) and a revoked
	 * device (alice); only the new hash moves alice's auth_gen.
	 */
	assert_int_equal(generation(r.st), 3 * WRITE_ROUNDS);
	assert_int_equal(auth_gen(r.st, "alice"), WRITE_ROUNDS);
	mg_store_close(r.st);
	pthread_mutex_destroy(&r.mu);
}

/* Tests about SQLite itself: files, modes, WAL, migrations done by hand, :memory:. */
#define SQLITE_ONLY_TESTS \
	cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_failed_migration_v2, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_secure_delete, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown), \
	cmocka_unit_test(test_memory), \
	cmocka_unit_test_setup_teardown(test_corrupt_rows, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_device_find_indexed, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_revoke_is_atomic, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_callback_reenters, setup, teardown)

/* Tests of the interface: every backend must pass them. Each gets a fresh store. */
#define GENERIC_TESTS \
	cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_users, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_validation, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_accounts, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_user_del_cascades, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_flags_and_generation, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_devices, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_device_validation, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_audit, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_audit_add_many, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_audit_validation, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_account_reseal, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown)

int
main(void)
{
	const struct CMUnitTest sqlite_tests[] = { SQLITE_ONLY_TESTS, GENERIC_TESTS };
	const struct CMUnitTest pg_tests[] = { GENERIC_TESTS };
	int failed;

	failed = cmocka_run_group_tests_name("store_sqlite", sqlite_tests, group_sqlite, NULL);

	pg_template = getenv("MG_TEST_STORE_PG");
	if (pg_template == NULL || *pg_template == '\0') {
		printf("[ NOTICE ] store_postgresql: skipped (MG_TEST_STORE_PG is not set%s)\n",
		    mg_store_open_postgres == NULL ? "; the PostgreSQL backend is not linked in" : "");
		return failed;
	}
	if (mg_store_open_postgres == NULL) {
		fprintf(stderr, "[  ERROR   ] store_postgresql: MG_TEST_STORE_PG is set, but this test "
		    "was built without the PostgreSQL backend (link src/store_pg.c)\n");
		return failed + 1;
	}
	if (strstr(pg_template, "%d") == NULL) {
		fprintf(stderr, "[  ERROR   ] store_postgresql: MG_TEST_STORE_PG has no \"%%d\" for the "
		    "per-test database number, e.g. \"host=/tmp/pg dbname=mgtest%%d\"\n");
		return failed + 1;
	}
	failed += cmocka_run_group_tests_name("store_postgresql", pg_tests, group_pg, NULL);
	return failed;
}
