/*
 * store_sqlite.c - the SQLite backend of the credential store.
 *
 * One connection per store, opened in serialized (FULLMUTEX) mode so that
 * threads may share it. Serialized mode protects each SQLite call, but an
 * operation here is several calls (prepare, bind, step, sqlite3_changes,
 * sqlite3_errmsg, finalize), and another thread's call in between would
 * change the answer of sqlite3_changes() and sqlite3_errmsg(). So every
 * operation holds the connection's own mutex (sqlite3_db_mutex(), recursive)
 * from start to end, and prepares and finalizes its statements itself: no
 * statement outlives the call that made it, so none is ever shared.
 *
 * Every write is a single statement and therefore atomic on its own:
 * "account for an unknown user" is the foreign key failing, not a separate
 * look-up that could race with a concurrent delete.
 *
 * The schema is versioned by PRAGMA user_version; see sq_migrations[].
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "store.h"
#include "store_impl.h"

#define SQ_BUSY_TIMEOUT_MS	5000	/* wait this long for another process's lock */

struct sq_store {
	sqlite3	*db;		/* the one connection, serialized mode */
	char	*path;		/* the database file, for error messages */
	int	 version;	/* schema version reached at open */
};

/*
 * The schema, one step per version: step i takes a store from version i to
 * version i + 1. Steps are only ever appended, never edited, because stores
 * in the field have already run the old ones. Each runs in one transaction
 * together with the user_version bump, so a step that fails part way leaves
 * the store exactly at the version before it.
 *
 * foreign_keys is on while steps run, and it cannot be changed inside a
 * transaction: a future step that rebuilds a referenced table must do so
 * without dropping it (ALTER TABLE ... RENAME is safe), or the cascade would
 * delete the rows that reference it.
 */
static const char *const sq_migrations[] = {
	/* 1: gateway users and their upstream accounts. */
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
	");",
};

#define SQ_VERSION	((int)(sizeof(sq_migrations) / sizeof(sq_migrations[0])))

static void	sq_lock(struct sq_store *);
static void	sq_unlock(struct sq_store *);
static void	sq_err(struct sq_store *, const char *, char *, size_t);
static int	sq_exec(struct sq_store *, const char *, const char *, char *, size_t);
static int	sq_prepare(struct sq_store *, const char *, sqlite3_stmt **, const char *, char *, size_t);
static int	sq_query_int(struct sq_store *, const char *, int *, char *, size_t);
static int	sq_query_text(struct sq_store *, const char *, char *, size_t, char *, size_t);
static int	sq_create_file(const char *, char *, size_t);
static int	sq_configure(struct sq_store *, int, char *, size_t);
static int	sq_migrate(struct sq_store *, char *, size_t);
static void	sq_rollback(struct sq_store *);
static int	sq_col_text(struct sq_store *, sqlite3_stmt *, int, char *, size_t, const char *,
		    char *, size_t);
static int	sq_row_user(struct sq_store *, sqlite3_stmt *, struct mg_user *, char *, size_t);
static int	sq_row_account(struct sq_store *, sqlite3_stmt *, struct mg_account *, char *, size_t);

static void	sq_close(void *);
static int	sq_schema_version(void *);
static int	sq_user_add(void *, const char *, const char *, char *, size_t);
static int	sq_user_set_hash(void *, const char *, const char *, char *, size_t);
static int	sq_user_del(void *, const char *, char *, size_t);
static int	sq_user_get(void *, const char *, struct mg_user *, char *, size_t);
static int	sq_user_list(void *, mg_user_cb, void *, char *, size_t);
static int	sq_account_set(void *, const struct mg_account *, char *, size_t);
static int	sq_account_get(void *, const char *, const char *, struct mg_account *, char *, size_t);
static int	sq_account_del(void *, const char *, const char *, char *, size_t);
static int	sq_account_list(void *, const char *, mg_account_cb, void *, char *, size_t);

static const struct mg_store_ops sq_ops = {
	.name = "sqlite",
	.close = sq_close,
	.schema_version = sq_schema_version,
	.user_add = sq_user_add,
	.user_set_hash = sq_user_set_hash,
	.user_del = sq_user_del,
	.user_get = sq_user_get,
	.user_list = sq_user_list,
	.account_set = sq_account_set,
	.account_get = sq_account_get,
	.account_del = sq_account_del,
	.account_list = sq_account_list,
};

/*
 * The connection's mutex is recursive, so a list callback may call the
 * store again from the same thread.
 */
static void
sq_lock(struct sq_store *s)
{
	sqlite3_mutex_enter(sqlite3_db_mutex(s->db));
}

static void
sq_unlock(struct sq_store *s)
{
	sqlite3_mutex_leave(sqlite3_db_mutex(s->db));
}

/* Fills err with what failed and SQLite's reason. Call with the lock held. */
static void
sq_err(struct sq_store *s, const char *what, char *err, size_t errlen)
{
	mg_store_err(err, errlen, "sqlite store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* Runs constant SQL (no parameters, no rows wanted). 0 ok, -1 error. */
static int
sq_exec(struct sq_store *s, const char *sql, const char *what, char *err, size_t errlen)
{
	char	*msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		mg_store_err(err, errlen, "sqlite store %s: %s: %s", s->path, what,
		    msg != NULL ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
sq_prepare(struct sq_store *s, const char *sql, sqlite3_stmt **stmt, const char *what,
    char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(s->db, sql, -1, 0, stmt, NULL) != SQLITE_OK) {
		*stmt = NULL;
		sq_err(s, what, err, errlen);
		return -1;
	}
	return 0;
}

/* Runs a statement that returns one integer, such as a PRAGMA query. */
static int
sq_query_int(struct sq_store *s, const char *sql, int *val, char *err, size_t errlen)
{
	sqlite3_stmt	*stmt = NULL;
	int		 ret = -1;

	if (sq_prepare(s, sql, &stmt, sql, err, errlen) == -1)
		goto fail;
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		sq_err(s, sql, err, errlen);
		goto fail;
	}
	*val = sqlite3_column_int(stmt, 0);
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	return ret;
}

/* Runs a statement that returns one text value, such as PRAGMA journal_mode. */
static int
sq_query_text(struct sq_store *s, const char *sql, char *buf, size_t buflen, char *err, size_t errlen)
{
	sqlite3_stmt		*stmt = NULL;
	const unsigned char	*t;
	int			 ret = -1;

	if (sq_prepare(s, sql, &stmt, sql, err, errlen) == -1)
		goto fail;
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		sq_err(s, sql, err, errlen);
		goto fail;
	}
	if ((t = sqlite3_column_text(stmt, 0)) == NULL) {
		mg_store_err(err, errlen, "sqlite store %s: %s: no value", s->path, sql);
		goto fail;
	}
	snprintf(buf, buflen, "%s", (const char *)t);
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	return ret;
}

/*
 * Creates the database file with mode 0600 before SQLite sees it, because
 * SQLite would create it 0644 (less the umask), and changing the umask
 * around the open would race with other threads creating files. SQLite
 * gives the -wal and -shm files it makes later the main file's mode, so
 * they are 0600 too. An existing file is left as its owner set it. SQLite
 * takes an empty file for a new database.
 */
static int
sq_create_file(const char *path, char *err, size_t errlen)
{
	int	fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		mg_store_err(err, errlen, "sqlite store %s: %s", path, strerror(errno));
		return -1;
	}
	/* The umask may have taken bits away from 0600; the owner needs both. */
	if (fchmod(fd, 0600) == -1) {
		mg_store_err(err, errlen, "sqlite store %s: chmod: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Sets the connection up. Each PRAGMA is read back, because SQLite ignores
 * a PRAGMA it cannot honour instead of failing: foreign_keys is silently
 * off inside a transaction or in a build without it, and journal_mode stays
 * as it was on a file system WAL cannot use. Without foreign keys, deleting
 * a user would leave its accounts behind.
 */
static int
sq_configure(struct sq_store *s, int memory, char *err, size_t errlen)
{
	char	mode[16];
	int	v;

	if (sqlite3_extended_result_codes(s->db, 1) != SQLITE_OK ||
	    sqlite3_busy_timeout(s->db, SQ_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		sq_err(s, "setting up the connection", err, errlen);
		return -1;
	}
	if (sq_query_text(s, "PRAGMA journal_mode=WAL", mode, sizeof(mode), err, errlen) == -1)
		return -1;
	if (strcmp(mode, memory ? "memory" : "wal") != 0) {
		mg_store_err(err, errlen, "sqlite store %s: cannot use WAL journal mode (got \"%s\")",
		    s->path, mode);
		return -1;
	}
	if (sq_exec(s, "PRAGMA foreign_keys=ON", "enabling foreign keys", err, errlen) == -1 ||
	    sq_query_int(s, "PRAGMA foreign_keys", &v, err, errlen) == -1)
		return -1;
	if (v != 1) {
		mg_store_err(err, errlen, "sqlite store %s: foreign keys cannot be enabled", s->path);
		return -1;
	}
	/* Overwrite deleted rows, so a removed secret does not linger in free pages. */
	if (sq_query_int(s, "PRAGMA secure_delete=ON", &v, err, errlen) == -1)
		return -1;
	if (v != 1) {
		mg_store_err(err, errlen, "sqlite store %s: secure_delete cannot be enabled", s->path);
		return -1;
	}
	return 0;
}

/* Ends a failed transaction; the first error is already in err. */
static void
sq_rollback(struct sq_store *s)
{
	/* Some errors roll back by themselves; ROLLBACK would then fail. */
	if (!sqlite3_get_autocommit(s->db))
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Brings the schema up to SQ_VERSION, one step per transaction. The
 * version is read again once the write lock is held, because another
 * process (the admin command next to a running gateway) may have migrated
 * the store in the meantime. A store newer than this code is refused rather
 * than used, since its tables may mean something this code does not know.
 */
static int
sq_migrate(struct sq_store *s, char *err, size_t errlen)
{
	char	sql[64];
	int	v;

	if (sq_query_int(s, "PRAGMA user_version", &v, err, errlen) == -1)
		return -1;
	while (v != SQ_VERSION) {
		if (v < 0 || v > SQ_VERSION)
			break;
		if (sq_exec(s, "BEGIN IMMEDIATE", "starting a migration", err, errlen) == -1)
			return -1;
		if (sq_query_int(s, "PRAGMA user_version", &v, err, errlen) == -1)
			goto fail;
		if (v < 0 || v >= SQ_VERSION) {
			sq_rollback(s);
			continue;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
		if (sq_exec(s, sq_migrations[v], "migrating the schema", err, errlen) == -1 ||
		    sq_exec(s, sql, "recording the schema version", err, errlen) == -1 ||
		    sq_exec(s, "COMMIT", "committing a migration", err, errlen) == -1)
			goto fail;
		v++;
	}
	if (v != SQ_VERSION) {
		mg_store_err(err, errlen, "sqlite store %s is at schema version %d, but this mailgate "
		    "knows versions up to %d; use a newer mailgate", s->path, v, SQ_VERSION);
		return -1;
	}
	s->version = v;
	return 0;
fail:
	sq_rollback(s);
	return -1;
}

struct mg_store *
mg_store_open_sqlite(const char *path, char *err, size_t errlen)
{
	struct sq_store	*s = NULL;
	int		 memory, rc;

	if (path == NULL || *path == '\0') {
		mg_store_err(err, errlen, "sqlite store: no path given");
		return NULL;
	}
	/* Sharing one connection between threads needs a thread-safe SQLite. */
	if (sqlite3_threadsafe() == 0) {
		mg_store_err(err, errlen, "sqlite store %s: SQLite was built without thread support", path);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
		mg_store_err(err, errlen, "sqlite store %s: out of memory", path);
		goto fail;
	}
	/* An in-memory store has no file to protect; the tests use one. */
	memory = strcmp(path, ":memory:") == 0;
	if (!memory && sq_create_file(path, err, errlen) == -1)
		goto fail;
	rc = sqlite3_open_v2(path, &s->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		mg_store_err(err, errlen, "sqlite store %s: %s", path,
		    s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if (sq_configure(s, memory, err, errlen) == -1 || sq_migrate(s, err, errlen) == -1)
		goto fail;
	return mg_store_new(&sq_ops, s, err, errlen);
fail:
	sq_close(s);
	return NULL;
}

static void
sq_close(void *impl)
{
	struct sq_store	*s = impl;

	if (s == NULL)
		return;
	/*
	 * Every statement is finalized by the call that prepared it, so this
	 * closes at once; the _v2 form would still not leave a dangling
	 * handle if one were ever missed.
	 */
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

static int
sq_schema_version(void *impl)
{
	struct sq_store	*s = impl;

	return s->version;
}

/*
 * Copies a text column into a fixed-size field. The store is a file anyone
 * with write access can edit, so a value that does not fit, is NULL or
 * holds a NUL is reported as corruption instead of being cut short.
 */
static int
sq_col_text(struct sq_store *s, sqlite3_stmt *stmt, int col, char *dst, size_t dstlen,
    const char *what, char *err, size_t errlen)
{
	const unsigned char	*t;
	int			 n;

	t = sqlite3_column_text(stmt, col);
	n = sqlite3_column_bytes(stmt, col);
	if (t == NULL) {
		if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
			mg_store_err(err, errlen, "sqlite store %s: %s is NULL", s->path, what);
		else
			sq_err(s, what, err, errlen);
		return -1;
	}
	if (n < 0 || (size_t)n >= dstlen || memchr(t, '\0', (size_t)n) != NULL) {
		mg_store_err(err, errlen, "sqlite store %s: a stored %s is malformed (%d bytes)",
		    s->path, what, n);
		return -1;
	}
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
	return 0;
}

/* Reads "name, hash, created, updated". */
static int
sq_row_user(struct sq_store *s, sqlite3_stmt *stmt, struct mg_user *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (sq_col_text(s, stmt, 0, u->name, sizeof(u->name), "user name", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 1, u->hash, sizeof(u->hash), "password hash", err, errlen) == -1)
		return -1;
	u->created = (time_t)sqlite3_column_int64(stmt, 2);
	u->updated = (time_t)sqlite3_column_int64(stmt, 3);
	return 0;
}

/* Reads "user, provider, login, kind, secret, updated". */
static int
sq_row_account(struct sq_store *s, sqlite3_stmt *stmt, struct mg_account *a, char *err, size_t errlen)
{
	const void	*b;
	int		 n, kind;

	memset(a, 0, sizeof(*a));
	if (sq_col_text(s, stmt, 0, a->user, sizeof(a->user), "user name", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 1, a->provider, sizeof(a->provider), "provider name", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 2, a->login, sizeof(a->login), "upstream login", err, errlen) == -1)
		return -1;
	/* An unknown kind is passed on: the caller decides what it cannot use. */
	kind = sqlite3_column_int(stmt, 3);
	a->kind = (enum mg_secret_kind)kind;
	b = sqlite3_column_blob(stmt, 4);
	n = sqlite3_column_bytes(stmt, 4);
	if (b == NULL && n > 0) {
		sq_err(s, "reading a sealed secret", err, errlen);
		return -1;
	}
	if (n <= 0 || n > MG_SEALED_MAX) {
		mg_store_err(err, errlen, "sqlite store %s: a stored sealed secret is malformed (%d bytes)",
		    s->path, n);
		return -1;
	}
	memcpy(a->sealed, b, (size_t)n);
	a->sealed_len = (size_t)n;
	a->updated = (time_t)sqlite3_column_int64(stmt, 5);
	return 0;
}

static int
sq_user_add(void *impl, const char *user, const char *hash, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	int		 rc, ret = -1;

	sq_lock(s);
	if (sq_prepare(s, "INSERT INTO users (name, hash, created, updated) VALUES (?1, ?2, ?3, ?3)",
	    &stmt, "adding a user", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)time(NULL)) != SQLITE_OK) {
		sq_err(s, "adding a user", err, errlen);
		goto fail;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else
		sq_err(s, "adding a user", err, errlen);
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

static int
sq_user_set_hash(void *impl, const char *user, const char *hash, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	int		 ret = -1;

	sq_lock(s);
	if (sq_prepare(s, "UPDATE users SET hash = ?2, updated = ?3 WHERE name = ?1",
	    &stmt, "changing a password hash", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, "changing a password hash", err, errlen);
		goto fail;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

static int
sq_user_del(void *impl, const char *user, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	int		 ret = -1;

	sq_lock(s);
	/* ON DELETE CASCADE removes the user's accounts in the same statement. */
	if (sq_prepare(s, "DELETE FROM users WHERE name = ?1", &stmt, "deleting a user", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, "deleting a user", err, errlen);
		goto fail;
	}
	/* sqlite3_changes() counts the users row only, not the cascade. */
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

static int
sq_user_get(void *impl, const char *user, struct mg_user *out, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	int		 rc, ret = -1;

	sq_lock(s);
	if (sq_prepare(s, "SELECT name, hash, created, updated FROM users WHERE name = ?1",
	    &stmt, "looking up a user", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK) {
		sq_err(s, "looking up a user", err, errlen);
		goto fail;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		sq_err(s, "looking up a user", err, errlen);
	else if (sq_row_user(s, stmt, out, err, errlen) == 0)
		ret = 1;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

/*
 * Calls cb for each user by name. The callback runs with the store locked:
 * it may call the store from the same thread, but it must not wait for
 * another thread that uses the store, and it should be quick.
 */
static int
sq_user_list(void *impl, mg_user_cb cb, void *arg, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	struct mg_user	 u;
	int		 rc, ret = -1;

	memset(&u, 0, sizeof(u));
	sq_lock(s);
	if (sq_prepare(s, "SELECT name, hash, created, updated FROM users ORDER BY name",
	    &stmt, "listing users", err, errlen) == -1)
		goto fail;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (sq_row_user(s, stmt, &u, err, errlen) == -1)
			goto fail;
		if (cb(&u, arg) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_err(s, "listing users", err, errlen);
		goto fail;
	}
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	OPENSSL_cleanse(&u, sizeof(u));
	return ret;
}

/*
 * Inserts or replaces in one statement. The caller's a->updated is ignored:
 * the store records when it made the change.
 */
static int
sq_account_set(void *impl, const struct mg_account *a, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	int		 rc, ret = -1;

	sq_lock(s);
	if (sq_prepare(s,
	    "INSERT INTO accounts (user, provider, login, kind, secret, updated)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	    " ON CONFLICT (user, provider) DO UPDATE SET login = excluded.login,"
	    " kind = excluded.kind, secret = excluded.secret, updated = excluded.updated",
	    &stmt, "storing an account", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, a->user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, a->provider, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, a->login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 4, (int)a->kind) != SQLITE_OK ||
	    sqlite3_bind_blob(stmt, 5, a->sealed, (int)a->sealed_len, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 6, (sqlite3_int64)time(NULL)) != SQLITE_OK) {
		sq_err(s, "storing an account", err, errlen);
		goto fail;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else
		sq_err(s, "storing an account", err, errlen);
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

static int
sq_account_get(void *impl, const char *user, const char *provider, struct mg_account *out,
    char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*sql;
	int		 rc, ret = -1;

	if (provider != NULL)
		sql = "SELECT user, provider, login, kind, secret, updated FROM accounts"
		    " WHERE user = ?1 AND provider = ?2";
	else
		sql = "SELECT user, provider, login, kind, secret, updated FROM accounts"
		    " WHERE user = ?1 ORDER BY provider LIMIT 1";
	sq_lock(s);
	if (sq_prepare(s, sql, &stmt, "looking up an account", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (provider != NULL &&
	    sqlite3_bind_text(stmt, 2, provider, -1, SQLITE_STATIC) != SQLITE_OK)) {
		sq_err(s, "looking up an account", err, errlen);
		goto fail;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		sq_err(s, "looking up an account", err, errlen);
	else if (sq_row_account(s, stmt, out, err, errlen) == 0)
		ret = 1;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

static int
sq_account_del(void *impl, const char *user, const char *provider, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	int		 ret = -1;

	sq_lock(s);
	if (sq_prepare(s, "DELETE FROM accounts WHERE user = ?1 AND provider = ?2",
	    &stmt, "deleting an account", err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, provider, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, "deleting an account", err, errlen);
		goto fail;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

/*
 * Calls cb for each account by user and provider, with the same locking
 * rules as sq_user_list(). The row buffer is on the heap: it is 8 KiB of
 * sealed secret and pool threads are not the place for big stack frames.
 */
static int
sq_account_list(void *impl, const char *user, mg_account_cb cb, void *arg, char *err, size_t errlen)
{
	struct sq_store		*s = impl;
	sqlite3_stmt		*stmt = NULL;
	struct mg_account	*a = NULL;
	const char		*sql;
	int			 rc, ret = -1;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		mg_store_err(err, errlen, "sqlite store %s: out of memory", s->path);
		return -1;
	}
	if (user != NULL)
		sql = "SELECT user, provider, login, kind, secret, updated FROM accounts"
		    " WHERE user = ?1 ORDER BY provider";
	else
		sql = "SELECT user, provider, login, kind, secret, updated FROM accounts"
		    " ORDER BY user, provider";
	sq_lock(s);
	if (sq_prepare(s, sql, &stmt, "listing accounts", err, errlen) == -1)
		goto fail;
	if (user != NULL && sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK) {
		sq_err(s, "listing accounts", err, errlen);
		goto fail;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (sq_row_account(s, stmt, a, err, errlen) == -1)
			goto fail;
		if (cb(a, arg) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_err(s, "listing accounts", err, errlen);
		goto fail;
	}
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
	return ret;
}
