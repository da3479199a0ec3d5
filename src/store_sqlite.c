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
 * Most writes are a single statement and therefore atomic on its own:
 * "account for an unknown user" is the foreign key failing, not a separate
 * look-up that could race with a concurrent delete. The revoking writes
 * (a new password hash, new flags, deleting a user, revoking a device) also
 * bump the user's auth_gen and the store generation, and do all of it in
 * one BEGIN IMMEDIATE transaction: a gateway that reads the new generation
 * must find the change that caused it, and a change must never be visible
 * without its bump, or a session it should end would live on. IMMEDIATE
 * takes the write lock at BEGIN, where the busy timeout applies, instead of
 * failing part way when another process wrote in between.
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

/*
 * The statements of the login path (user, account and device lookups, the
 * generation, device logins, audit records) are prepared once and kept:
 * compiling SQL costs more than running these one-row queries. Keyed by the
 * address of their constant SQL text; a statement in use (a callback
 * re-entering the store) is not handed out twice.
 */
#define SQ_CACHE_SIZE	8

struct sq_cached {
	const char	*sql;		/* a string literal */
	sqlite3_stmt	*stmt;
	int		 busy;
};

struct sq_store {
	sqlite3			*db;		/* the one connection, serialized mode */
	char			*path;		/* the database file, for error messages */
	int			 version;	/* schema version reached at open */
	struct sq_cached	 cache[SQ_CACHE_SIZE];	/* guarded by the connection's mutex */
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

	/*
	 * 2: user flags, device passwords, the store generation and the
	 * audit log. The new user columns have defaults, so users of a
	 * version 1 store keep logging in as before: enabled, by password.
	 */
	"ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE users ADD COLUMN password_login INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE users ADD COLUMN auth_gen INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE devices ("
	"  user      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	"  label     TEXT NOT NULL,"
	"  hash      TEXT NOT NULL,"
	"  scopes    INTEGER NOT NULL,"
	"  account   TEXT NOT NULL DEFAULT '',"
	"  created   INTEGER NOT NULL,"
	"  last_used INTEGER NOT NULL DEFAULT 0,"
	"  last_addr TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY (user, label),"
	"  UNIQUE (user, hash)"
	");"
	"CREATE TABLE meta ("
	"  key   TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL"
	");"
	"INSERT INTO meta (key, value) VALUES ('generation', 0);"
	"CREATE TABLE audit ("
	"  id     INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  ts     INTEGER NOT NULL,"
	"  kind   TEXT NOT NULL,"
	"  user   TEXT NOT NULL,"
	"  device TEXT NOT NULL,"
	"  proto  TEXT NOT NULL,"
	"  client TEXT NOT NULL,"
	"  result TEXT NOT NULL,"
	"  detail TEXT NOT NULL"
	");"
	"CREATE INDEX audit_user_ts ON audit (user, ts);"
	"CREATE INDEX audit_ts ON audit (ts);",
};

#define SQ_VERSION	((int)(sizeof(sq_migrations) / sizeof(sq_migrations[0])))

static void	sq_lock(struct sq_store *);
static void	sq_unlock(struct sq_store *);
static void	sq_err(struct sq_store *, const char *, char *, size_t);
static int	sq_exec(struct sq_store *, const char *, const char *, char *, size_t);
static int	sq_prepare(struct sq_store *, const char *, sqlite3_stmt **, const char *, char *, size_t);
static int	sq_prepare_cached(struct sq_store *, const char *, sqlite3_stmt **, const char *, char *,
		    size_t);
static void	sq_finish(struct sq_store *, sqlite3_stmt *);
static int	sq_query_int(struct sq_store *, const char *, int *, char *, size_t);
static int	sq_query_text(struct sq_store *, const char *, char *, size_t, char *, size_t);
static int	sq_create_file(const char *, char *, size_t);
static int	sq_configure(struct sq_store *, int, char *, size_t);
static int	sq_migrate(struct sq_store *, char *, size_t);
static void	sq_rollback(struct sq_store *);
static int	sq_begin(struct sq_store *, const char *, char *, size_t);
static int	sq_commit(struct sq_store *, const char *, char *, size_t);
static int	sq_bump_generation(struct sq_store *, const char *, char *, size_t);
static int	sq_col_text(struct sq_store *, sqlite3_stmt *, int, char *, size_t, const char *,
		    char *, size_t);
static int	sq_row_user(struct sq_store *, sqlite3_stmt *, struct mg_user *, char *, size_t);
static int	sq_row_account(struct sq_store *, sqlite3_stmt *, struct mg_account *, char *, size_t);
static int	sq_row_device(struct sq_store *, sqlite3_stmt *, struct mg_device *, char *, size_t);
static int	sq_row_audit(struct sq_store *, sqlite3_stmt *, struct mg_audit *, char *, size_t);
static int	sq_device_lookup(struct sq_store *, const char *, const char *, const char *,
		    struct mg_device *, const char *, char *, size_t);

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
static int	sq_account_reseal(void *, const char *, const char *, const uint8_t *, size_t,
		    const uint8_t *, size_t, char *, size_t);
static int	sq_user_set_flags(void *, const char *, int, int, char *, size_t);
static int	sq_device_add(void *, const struct mg_device *, char *, size_t);
static int	sq_device_find(void *, const char *, const char *, struct mg_device *, char *, size_t);
static int	sq_device_get(void *, const char *, const char *, struct mg_device *, char *, size_t);
static int	sq_device_revoke(void *, const char *, const char *, char *, size_t);
static int	sq_device_touch(void *, const char *, const char *, time_t, const char *, char *, size_t);
static int	sq_device_list(void *, const char *, mg_device_cb, void *, char *, size_t);
static int	sq_generation(void *, int64_t *, char *, size_t);
static int	sq_audit_add(void *, const struct mg_audit *, char *, size_t);
static int	sq_audit_add_many(void *, const struct mg_audit *, size_t, char *, size_t);
static int	sq_audit_list(void *, const char *, time_t, mg_audit_cb, void *, char *, size_t);

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
	.account_reseal = sq_account_reseal,
	.user_set_flags = sq_user_set_flags,
	.device_add = sq_device_add,
	.device_find = sq_device_find,
	.device_get = sq_device_get,
	.device_revoke = sq_device_revoke,
	.device_touch = sq_device_touch,
	.device_list = sq_device_list,
	.generation = sq_generation,
	.audit_add = sq_audit_add,
	.audit_add_many = sq_audit_add_many,
	.audit_list = sq_audit_list,
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

/* sq_prepare() for constant SQL on a hot path: the statement comes from, and goes back to, the cache. */
static int
sq_prepare_cached(struct sq_store *s, const char *sql, sqlite3_stmt **stmt, const char *what,
    char *err, size_t errlen)
{
	struct sq_cached	*c, *free_slot = NULL;
	size_t			 i;

	for (i = 0; i < SQ_CACHE_SIZE; i++) {
		c = &s->cache[i];
		if (c->sql == sql && !c->busy) {
			c->busy = 1;
			*stmt = c->stmt;
			return 0;
		}
		if (c->sql == NULL && free_slot == NULL)
			free_slot = c;
	}
	if (free_slot == NULL)
		return sq_prepare(s, sql, stmt, what, err, errlen);
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL) != SQLITE_OK) {
		*stmt = NULL;
		sq_err(s, what, err, errlen);
		return -1;
	}
	free_slot->sql = sql;
	free_slot->stmt = *stmt;
	free_slot->busy = 1;
	return 0;
}

/* Ends the use of a statement: a cached one is reset for the next call, another finalized. */
static void
sq_finish(struct sq_store *s, sqlite3_stmt *stmt)
{
	size_t i;

	if (stmt == NULL)
		return;
	for (i = 0; i < SQ_CACHE_SIZE; i++) {
		if (s->cache[i].stmt == stmt) {
			(void)sqlite3_reset(stmt);
			(void)sqlite3_clear_bindings(stmt);
			s->cache[i].busy = 0;
			return;
		}
	}
	sqlite3_finalize(stmt);
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
	/*
	 * In WAL mode NORMAL syncs at checkpoints, not at every commit: a
	 * crash of the gateway loses nothing, a power cut at most the last
	 * commits (audit records, last-used times). Every login writes one
	 * audit record, and an fsync each would dominate a login's cost.
	 */
	if (sq_exec(s, "PRAGMA synchronous=NORMAL", "setting synchronous", err, errlen) == -1)
		return -1;
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
 * Starts a write transaction, taking the write lock now (see the top of
 * the file). Call with the lock held; end with sq_commit() or sq_rollback().
 */
static int
sq_begin(struct sq_store *s, const char *what, char *err, size_t errlen)
{
	char	msg[128];

	snprintf(msg, sizeof(msg), "%s: starting a transaction", what);
	return sq_exec(s, "BEGIN IMMEDIATE", msg, err, errlen);
}

static int
sq_commit(struct sq_store *s, const char *what, char *err, size_t errlen)
{
	char	msg[128];

	snprintf(msg, sizeof(msg), "%s: committing", what);
	return sq_exec(s, "COMMIT", msg, err, errlen);
}

/*
 * Adds one to the store generation, inside the caller's transaction. The
 * row is made by migration 2; a store without it has been edited by hand,
 * and that is reported rather than papered over, because gateways compare
 * the counter with the value they saw last.
 */
static int
sq_bump_generation(struct sq_store *s, const char *what, char *err, size_t errlen)
{
	if (sq_exec(s, "UPDATE meta SET value = value + 1 WHERE key = 'generation'", what,
	    err, errlen) == -1)
		return -1;
	if (sqlite3_changes(s->db) != 1) {
		mg_store_err(err, errlen, "sqlite store %s: %s: the generation counter is missing",
		    s->path, what);
		return -1;
	}
	return 0;
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
	size_t		 i;

	if (s == NULL)
		return;
	/*
	 * Every statement but the cached ones is finalized by the call that
	 * prepared it, so this closes at once; the _v2 form would still not
	 * leave a dangling handle if one were ever missed.
	 */
	for (i = 0; i < SQ_CACHE_SIZE; i++)
		sqlite3_finalize(s->cache[i].stmt);
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

#define SQ_USER_COLS	"name, hash, created, updated, disabled, password_login, auth_gen"

/*
 * Reads SQ_USER_COLS. A flag other than 0 or 1 was not written by the
 * store; it is reported instead of guessed at, since guessing wrong about
 * "disabled" would let a user in.
 */
static int
sq_row_user(struct sq_store *s, sqlite3_stmt *stmt, struct mg_user *u, char *err, size_t errlen)
{
	sqlite3_int64	disabled, password_login;

	memset(u, 0, sizeof(*u));
	if (sq_col_text(s, stmt, 0, u->name, sizeof(u->name), "user name", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 1, u->hash, sizeof(u->hash), "password hash", err, errlen) == -1)
		return -1;
	u->created = (time_t)sqlite3_column_int64(stmt, 2);
	u->updated = (time_t)sqlite3_column_int64(stmt, 3);
	disabled = sqlite3_column_int64(stmt, 4);
	password_login = sqlite3_column_int64(stmt, 5);
	if ((disabled != 0 && disabled != 1) || (password_login != 0 && password_login != 1)) {
		mg_store_err(err, errlen, "sqlite store %s: the stored flags of user %s are malformed",
		    s->path, u->name);
		return -1;
	}
	u->disabled = (int)disabled;
	u->password_login = (int)password_login;
	u->auth_gen = (int64_t)sqlite3_column_int64(stmt, 6);
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

#define SQ_DEVICE_COLS	"user, label, hash, scopes, account, created, last_used, last_addr"

/* Reads SQ_DEVICE_COLS. Scopes the store cannot have written are corruption. */
static int
sq_row_device(struct sq_store *s, sqlite3_stmt *stmt, struct mg_device *d, char *err, size_t errlen)
{
	sqlite3_int64	scopes;

	memset(d, 0, sizeof(*d));
	if (sq_col_text(s, stmt, 0, d->user, sizeof(d->user), "user name", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 1, d->label, sizeof(d->label), "device label", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 2, d->hash, sizeof(d->hash), "device password hash",
	    err, errlen) == -1 ||
	    sq_col_text(s, stmt, 4, d->account, sizeof(d->account), "device account",
	    err, errlen) == -1 ||
	    sq_col_text(s, stmt, 7, d->last_addr, sizeof(d->last_addr), "device address",
	    err, errlen) == -1)
		return -1;
	scopes = sqlite3_column_int64(stmt, 3);
	if (scopes <= 0 || (scopes & ~(sqlite3_int64)MG_SCOPE_ALL) != 0) {
		mg_store_err(err, errlen,
		    "sqlite store %s: the stored scopes of device %s/%s are malformed",
		    s->path, d->user, d->label);
		return -1;
	}
	d->scopes = (unsigned)scopes;
	d->created = (time_t)sqlite3_column_int64(stmt, 5);
	d->last_used = (time_t)sqlite3_column_int64(stmt, 6);
	return 0;
}

#define SQ_AUDIT_COLS	"id, ts, kind, user, device, proto, client, result, detail"

/* Reads SQ_AUDIT_COLS. */
static int
sq_row_audit(struct sq_store *s, sqlite3_stmt *stmt, struct mg_audit *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	a->id = (int64_t)sqlite3_column_int64(stmt, 0);
	a->ts = (time_t)sqlite3_column_int64(stmt, 1);
	if (sq_col_text(s, stmt, 2, a->kind, sizeof(a->kind), "audit kind", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 3, a->user, sizeof(a->user), "audit user", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 4, a->device, sizeof(a->device), "audit device", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 5, a->proto, sizeof(a->proto), "audit protocol", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 6, a->client, sizeof(a->client), "audit client", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 7, a->result, sizeof(a->result), "audit result", err, errlen) == -1 ||
	    sq_col_text(s, stmt, 8, a->detail, sizeof(a->detail), "audit detail", err, errlen) == -1)
		return -1;
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

/*
 * A new password ends the sessions the old one opened: the hash, auth_gen
 * and the store generation change in one transaction. For an unknown user
 * nothing changed, and the transaction is rolled back without a bump.
 */
static int
sq_user_set_hash(void *impl, const char *user, const char *hash, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "changing a password hash";
	int		 ret = -1;

	sq_lock(s);
	if (sq_begin(s, what, err, errlen) == -1)
		goto fail;
	if (sq_prepare(s, "UPDATE users SET hash = ?2, updated = ?3, auth_gen = auth_gen + 1"
	    " WHERE name = ?1", &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	if (sqlite3_changes(s->db) == 0) {
		ret = 1;
		goto fail;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (sq_bump_generation(s, what, err, errlen) == -1 || sq_commit(s, what, err, errlen) == -1)
		goto fail;
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	if (ret != 0)
		sq_rollback(s);
	sq_unlock(s);
	return ret;
}

/* Deleting a user is revoking: the generation bump shares its transaction. */
static int
sq_user_del(void *impl, const char *user, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "deleting a user";
	int		 ret = -1;

	sq_lock(s);
	if (sq_begin(s, what, err, errlen) == -1)
		goto fail;
	/* ON DELETE CASCADE removes the user's accounts and devices in the same statement. */
	if (sq_prepare(s, "DELETE FROM users WHERE name = ?1", &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	/* sqlite3_changes() counts the users row only, not the cascade. */
	if (sqlite3_changes(s->db) == 0) {
		ret = 1;
		goto fail;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (sq_bump_generation(s, what, err, errlen) == -1 || sq_commit(s, what, err, errlen) == -1)
		goto fail;
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	if (ret != 0)
		sq_rollback(s);
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
	if (sq_prepare_cached(s, "SELECT " SQ_USER_COLS " FROM users WHERE name = ?1",
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
	sq_finish(s, stmt);
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
	if (sq_prepare(s, "SELECT " SQ_USER_COLS " FROM users ORDER BY name",
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
	if (sq_prepare_cached(s, sql, &stmt, "looking up an account", err, errlen) == -1)
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
	sq_finish(s, stmt);
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

/*
 * A compare-and-swap on the sealed secret: the UPDATE matches only while
 * the stored blob is still `old`, byte for byte, so a key rotation racing
 * with an admin's "account set" loses instead of overwriting the new
 * secret. `updated` is left alone: the secret is the same, only the key
 * sealing it changed.
 */
static int
sq_account_reseal(void *impl, const char *user, const char *provider, const uint8_t *old,
    size_t oldlen, const uint8_t *sealed, size_t sealedlen, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "resealing an account secret";
	int		 ret = -1;

	sq_lock(s);
	if (sq_prepare(s, "UPDATE accounts SET secret = ?4"
	    " WHERE user = ?1 AND provider = ?2 AND secret = ?3", &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, provider, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(stmt, 3, old, (int)oldlen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(stmt, 4, sealed, (int)sealedlen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

/*
 * A flag of -1 keeps the stored value (the CASE), so one statement serves
 * every combination. Any call bumps the generation, even one that changes
 * nothing: the caller asked for the user's sessions to be checked again, and
 * a spurious re-check costs little. auth_gen stays: the flags themselves say
 * which sessions end (all when disabled, password sessions when password
 * login is off).
 */
static int
sq_user_set_flags(void *impl, const char *user, int disabled, int password_login,
    char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "changing a user's flags";
	int		 ret = -1;

	sq_lock(s);
	if (sq_begin(s, what, err, errlen) == -1)
		goto fail;
	if (sq_prepare(s, "UPDATE users SET"
	    " disabled = CASE WHEN ?2 < 0 THEN disabled ELSE ?2 END,"
	    " password_login = CASE WHEN ?3 < 0 THEN password_login ELSE ?3 END,"
	    " updated = ?4 WHERE name = ?1", &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 2, disabled) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 3, password_login) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	if (sqlite3_changes(s->db) == 0) {
		ret = 1;
		goto fail;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (sq_bump_generation(s, what, err, errlen) == -1 || sq_commit(s, what, err, errlen) == -1)
		goto fail;
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	if (ret != 0)
		sq_rollback(s);
	sq_unlock(s);
	return ret;
}

/*
 * One INSERT, so the constraints answer the questions: the foreign key
 * "no such user", the primary key "label taken", UNIQUE (user, hash) "hash
 * taken". The store records the creation time; a new device is unused.
 */
static int
sq_device_add(void *impl, const struct mg_device *d, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "adding a device";
	int		 rc, ret = -1;

	sq_lock(s);
	if (sq_prepare(s, "INSERT INTO devices (user, label, hash, scopes, account, created, last_used,"
	    " last_addr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, '')", &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, d->user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, d->label, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, d->hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)d->scopes) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 5, d->account, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 6, (sqlite3_int64)time(NULL)) != SQLITE_OK) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		ret = 1;
	else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		ret = 2;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else
		sq_err(s, what, err, errlen);
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}

/* One device by (user, key), where sql names the key column as ?2. */
static int
sq_device_lookup(struct sq_store *s, const char *sql, const char *user, const char *key,
    struct mg_device *out, const char *what, char *err, size_t errlen)
{
	sqlite3_stmt	*stmt = NULL;
	int		 rc, ret = -1;

	sq_lock(s);
	if (sq_prepare_cached(s, sql, &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC) != SQLITE_OK) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		sq_err(s, what, err, errlen);
	else if (sq_row_device(s, stmt, out, err, errlen) == 0)
		ret = 1;
fail:
	sq_finish(s, stmt);
	sq_unlock(s);
	return ret;
}

/* The device login path: one probe of the UNIQUE (user, hash) index. */
static int
sq_device_find(void *impl, const char *user, const char *hash, struct mg_device *out,
    char *err, size_t errlen)
{
	return sq_device_lookup(impl,
	    "SELECT " SQ_DEVICE_COLS " FROM devices WHERE user = ?1 AND hash = ?2",
	    user, hash, out, "looking up a device password", err, errlen);
}

static int
sq_device_get(void *impl, const char *user, const char *label, struct mg_device *out,
    char *err, size_t errlen)
{
	return sq_device_lookup(impl,
	    "SELECT " SQ_DEVICE_COLS " FROM devices WHERE user = ?1 AND label = ?2",
	    user, label, out, "looking up a device", err, errlen);
}

/*
 * Deletes the device and bumps the generation in one transaction, so that
 * every gateway re-checks its sessions and ends the ones this device opened.
 * The user's auth_gen stays: the other devices and the password go on.
 */
static int
sq_device_revoke(void *impl, const char *user, const char *label, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "revoking a device";
	int		 ret = -1;

	sq_lock(s);
	if (sq_begin(s, what, err, errlen) == -1)
		goto fail;
	if (sq_prepare(s, "DELETE FROM devices WHERE user = ?1 AND label = ?2", &stmt, what,
	    err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, label, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	if (sqlite3_changes(s->db) == 0) {
		ret = 1;
		goto fail;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (sq_bump_generation(s, what, err, errlen) == -1 || sq_commit(s, what, err, errlen) == -1)
		goto fail;
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	if (ret != 0)
		sq_rollback(s);
	sq_unlock(s);
	return ret;
}

static int
sq_device_touch(void *impl, const char *user, const char *label, time_t when, const char *addr,
    char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "recording a device login";
	int		 ret = -1;

	sq_lock(s);
	if (sq_prepare_cached(s, "UPDATE devices SET last_used = ?3, last_addr = ?4"
	    " WHERE user = ?1 AND label = ?2", &stmt, what, err, errlen) == -1)
		goto fail;
	if (sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, label, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)when) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 4, addr, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
fail:
	sq_finish(s, stmt);
	sq_unlock(s);
	return ret;
}

/* Calls cb for each device by user and label, with sq_user_list()'s locking rules. */
static int
sq_device_list(void *impl, const char *user, mg_device_cb cb, void *arg, char *err, size_t errlen)
{
	struct sq_store		*s = impl;
	sqlite3_stmt		*stmt = NULL;
	struct mg_device	 d;
	const char		*sql;
	int			 rc, ret = -1;

	if (user != NULL)
		sql = "SELECT " SQ_DEVICE_COLS " FROM devices WHERE user = ?1 ORDER BY label";
	else
		sql = "SELECT " SQ_DEVICE_COLS " FROM devices ORDER BY user, label";
	memset(&d, 0, sizeof(d));
	sq_lock(s);
	if (sq_prepare(s, sql, &stmt, "listing devices", err, errlen) == -1)
		goto fail;
	if (user != NULL && sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK) {
		sq_err(s, "listing devices", err, errlen);
		goto fail;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (sq_row_device(s, stmt, &d, err, errlen) == -1)
			goto fail;
		if (cb(&d, arg) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_err(s, "listing devices", err, errlen);
		goto fail;
	}
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	OPENSSL_cleanse(&d, sizeof(d));
	return ret;
}

static int
sq_generation(void *impl, int64_t *gen, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "reading the store generation";
	int		 rc, ret = -1;

	sq_lock(s);
	if (sq_prepare_cached(s, "SELECT value FROM meta WHERE key = 'generation'", &stmt, what,
	    err, errlen) == -1)
		goto fail;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		mg_store_err(err, errlen, "sqlite store %s: %s: the generation counter is missing",
		    s->path, what);
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		sq_err(s, what, err, errlen);
		goto fail;
	}
	*gen = (int64_t)sqlite3_column_int64(stmt, 0);
	ret = 0;
fail:
	sq_finish(s, stmt);
	sq_unlock(s);
	return ret;
}

/* Binds and runs the audit INSERT for one record; the statement is reset after. 0 ok, -1 error. */
static int
sq_audit_insert(sqlite3_stmt *stmt, const struct mg_audit *a, time_t now)
{
	int rc;

	if (sqlite3_bind_int64(stmt, 1, (sqlite3_int64)(a->ts != 0 ? a->ts : now)) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, a->kind, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, a->user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 4, a->device, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 5, a->proto, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 6, a->client, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 7, a->result, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 8, a->detail, -1, SQLITE_STATIC) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(stmt);
	(void)sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

#define SQ_AUDIT_INSERT	"INSERT INTO audit (ts, kind, user, device, proto, client, result, detail)" \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"

/* The store assigns the id; a ts of 0 means "now". */
static int
sq_audit_add(void *impl, const struct mg_audit *a, char *err, size_t errlen)
{
	return sq_audit_add_many(impl, a, 1, err, errlen);
}

/*
 * n records in one transaction: the gateway writes the logins of a busy
 * moment together, one commit (one WAL append) for all of them.
 */
static int
sq_audit_add_many(void *impl, const struct mg_audit *a, size_t n, char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	const char	*what = "adding an audit record";
	time_t		 now = time(NULL);
	size_t		 i;
	int		 ret = -1, txn = n > 1;

	sq_lock(s);
	if (sq_prepare_cached(s, SQ_AUDIT_INSERT, &stmt, what, err, errlen) == -1)
		goto fail;
	if (txn && sq_begin(s, what, err, errlen) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		if (sq_audit_insert(stmt, &a[i], now) == -1) {
			sq_err(s, what, err, errlen);
			if (txn)
				sq_rollback(s);
			goto fail;
		}
	}
	if (txn && sq_commit(s, what, err, errlen) == -1) {
		sq_rollback(s);
		goto fail;
	}
	ret = 0;
fail:
	sq_finish(s, stmt);
	sq_unlock(s);
	return ret;
}

/*
 * Calls cb for each record with ts >= since, in id order (the order they
 * were written), with sq_user_list()'s locking rules. since 0 takes all.
 */
static int
sq_audit_list(void *impl, const char *user, time_t since, mg_audit_cb cb, void *arg,
    char *err, size_t errlen)
{
	struct sq_store	*s = impl;
	sqlite3_stmt	*stmt = NULL;
	struct mg_audit	 a;
	const char	*sql;
	int		 rc, ret = -1;

	if (user != NULL)
		sql = "SELECT " SQ_AUDIT_COLS " FROM audit WHERE user = ?1 AND ts >= ?2 ORDER BY id";
	else
		sql = "SELECT " SQ_AUDIT_COLS " FROM audit WHERE ts >= ?2 ORDER BY id";
	sq_lock(s);
	if (sq_prepare(s, sql, &stmt, "listing audit records", err, errlen) == -1)
		goto fail;
	if ((user != NULL && sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC) != SQLITE_OK) ||
	    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)since) != SQLITE_OK) {
		sq_err(s, "listing audit records", err, errlen);
		goto fail;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (sq_row_audit(s, stmt, &a, err, errlen) == -1)
			goto fail;
		if (cb(&a, arg) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_err(s, "listing audit records", err, errlen);
		goto fail;
	}
	ret = 0;
fail:
	sqlite3_finalize(stmt);
	sq_unlock(s);
	return ret;
}
