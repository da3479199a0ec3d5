/*
 * test_store.c - the SQLite credential store.
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

#define HASH_A	"$y$j9T$uRKk9hQuujaHcxi/Ipkg7.$i0mpp4CcNv9o4lni4jBeMeIxNZI6.zbUx8Uga7ctlj1"
#define HASH_B	"$2b$05$PODVNE/mJKX3BPbIyJejkOohJ0NzPzsO4psw1huDx0Lsecyu4bzfC"

struct fixture {
	char	dir[64];	/* a fresh mkdtemp directory */
	char	path[128];	/* dir/store.db, not yet created */
};

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	*state = f;
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

static void
test_open_creates_schema(void **state)
{
	struct fixture	*f = *state;
	struct mg_store	*st;

	st = open_ok(f->path);
	assert_int_equal(mg_store_schema_version(st), 1);
	mg_store_close(st);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
	    " AND name IN ('users', 'accounts')"), 2);
	/* The journal mode is stored in the file and outlives the connection. */
	assert_int_equal(raw_int(f->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture		*f = *state;
	struct mg_store		*st;
	struct mg_account	 a, got;
	struct mg_user		 u;
	char			 err[MG_ERRLEN];

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "alice@gmail.com", 0x5a, 100);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	mg_store_close(st);

	st = open_ok(f->path);
	assert_int_equal(mg_store_schema_version(st), 1);
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_string_equal(u.hash, HASH_A);
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
	struct mg_store	*st, *st2;
	char		 err[MG_ERRLEN];
	int		 i, objects;

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	mg_store_close(st);
	objects = raw_int(f->path, "SELECT count(*) FROM sqlite_master");
	for (i = 0; i < 3; i++) {
		st = open_ok(f->path);
		assert_int_equal(mg_store_schema_version(st), 1);
		mg_store_close(st);
	}
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master"), objects);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM users"), 1);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 1);

	/* Two handles on one file (the gateway and the admin command). */
	st = open_ok(f->path);
	st2 = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st2, "bob", HASH_B, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 1);
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
	assert_int_equal(mg_store_schema_version(st), 1);
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

	st = open_ok(f->path);
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

	st = open_ok(f->path);
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

	st = open_ok(f->path);
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
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM accounts"), 1);

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
	struct collect		 c;
	char			 err[MG_ERRLEN];

	st = open_ok(f->path);
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_user_add(st, "bob", HASH_B, err, sizeof(err)), 0);
	make_account(&a, "alice", "gmail", "a@gmail.com", 1, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "alice", "posteo", "a@posteo.de", 2, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);
	make_account(&a, "bob", "gmail", "b@gmail.com", 3, 40);
	assert_int_equal(mg_store_account_set(st, &a, err, sizeof(err)), 0);

	assert_int_equal(mg_store_user_del(st, "alice", err, sizeof(err)), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_account_list(st, NULL, collect_account_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.names, "bob/gmail");
	/* A new alice starts with no accounts. */
	assert_int_equal(mg_store_user_add(st, "alice", HASH_A, err, sizeof(err)), 0);
	assert_int_equal(mg_store_account_get(st, "alice", NULL, &a, err, sizeof(err)), 0);
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
	assert_int_equal(mg_store_schema_version(st), 1);
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
	struct mg_user		 u;
	struct collect		 c;
	char			 err[MG_ERRLEN] = "";

	st = open_ok(f->path);
	mg_store_close(st);
	/* Rows written behind the store's back that do not fit its structs. */
	raw_exec(f->path,
	    "INSERT INTO users VALUES (printf('%.300c', 'x'), 'h', 0, 0);"
	    "INSERT INTO users VALUES ('alice', 'h', 0, 0);"
	    "INSERT INTO accounts VALUES ('alice', 'gmail', 'l', 1, zeroblob(9000), 0);");
	st = open_ok(f->path);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mg_store_user_list(st, collect_user_cb, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "malformed"));
	assert_int_equal(mg_store_user_get(st, "alice", &u, err, sizeof(err)), 1);
	assert_int_equal(mg_store_account_get(st, "alice", "gmail", &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "9000 bytes"));
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
	struct mg_user		 u;
	char			 err[MG_ERRLEN];
	int			 i, bad = 0;

	a = malloc(sizeof(*a));
	if (a == NULL)
		return NULL;
	for (i = 0; i < READ_ROUNDS; i++) {
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
	pthread_t		 readers[READERS], writer;
	char			 err[MG_ERRLEN];
	int			 i;

	memset(&r, 0, sizeof(r));
	assert_int_equal(pthread_mutex_init(&r.mu, NULL), 0);
	r.st = open_ok(f->path);
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
	mg_store_close(r.st);
	pthread_mutex_destroy(&r.mu);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM accounts"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_del_cascades, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secure_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
		cmocka_unit_test(test_memory),
		cmocka_unit_test_setup_teardown(test_corrupt_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
