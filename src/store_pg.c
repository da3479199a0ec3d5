/*
 * store_pg.c - the PostgreSQL backend of the credential store.
 *
 * One libpq connection per store. A PGconn must never be used by two
 * threads at once, so every operation holds the store's mutex while it talks
 * to the server. The lock is released before a list callback runs: a
 * result set is complete in memory once PQexecParams() returns, so a
 * callback may call the store again, from its own thread or another one.
 *
 * Most writes are one statement, and so one transaction: "account for an
 * unknown user" is the foreign key failing, not a separate look-up that
 * could race with a concurrent delete. A revoking change (a password, the
 * flags or the deletion of a user, a device revocation) also bumps the
 * user's auth_gen and the store generation: one statement with
 * data-modifying WITH clauses does all of it, inside BEGIN ... COMMIT only
 * so that a missing generation counter can still undo the change. Other
 * gateways polling the generation thus never see the change without the
 * bump, or the bump without the change.
 *
 * A lost connection is not fatal. The operation that notices it fails (a
 * read is first retried once on a fresh connection, since it cannot have
 * changed anything), and the next operation reconnects with PQreset(). A
 * reconnection that fails is not tried again for PG_RETRY_PAUSE_MS:
 * while the server is away, the calls queued on the mutex then fail at
 * once instead of each waiting out a connect timeout in the thread pool.
 * Timeouts keep a dead server from holding a thread for long: a connect
 * timeout, TCP keepalives and a user timeout for a silent network, and a
 * statement timeout for a server that is up but stuck.
 *
 * Names, logins and addresses are text columns, which PostgreSQL requires
 * to be valid in the database encoding. The connection's client encoding is
 * UTF-8, so a name that is not valid UTF-8 cannot be stored: looking one up
 * finds nothing (instead of failing, which the gateway would report as a
 * temporary failure), storing one fails, and an audit record replaces the
 * bytes that are not UTF-8 with '?'.
 *
 * Text is ordered with COLLATE "C", byte by byte, as SQLite orders it, so
 * that "the first account by provider name" is the same for both backends
 * whatever the database's locale.
 *
 * The schema is versioned by the one row of schema_version; see
 * pg_migrations[].
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "store.h"
#include "store_impl.h"

#define PG_RETRY_PAUSE_MS	1000	/* between failed reconnection attempts */
#define PG_STATEMENT_TIMEOUT	"5000"	/* milliseconds, unless the role or conninfo sets one */
#define PG_AUDIT_PAGE		500	/* audit records fetched per query */
#define PG_MAX_PARAMS		9
#define PG_MIN_SERVER		100000	/* PostgreSQL 10, the oldest we test the SQL against */

/*
 * Serialises migrations between gateways sharing a database: the bytes of
 * "mailgate" as a big-endian integer, an advisory lock key no other
 * application is likely to pick.
 */
#define PG_MIGRATION_LOCK	"7881696737186903141"

/* A read may be repeated on a fresh connection when the old one was stale. */
#define PG_READ			0x1
/* The statement continues a transaction: the connection must not be replaced. */
#define PG_INTX			0x2

struct pg_store {
	pthread_mutex_t	 lock;		/* held for each use of conn */
	PGconn		*conn;		/* the one connection; never NULL after open */
	int		 version;	/* schema version reached at open */
	int		 broken;	/* a connection-level error was seen: reset first */
	int64_t		 retry_at;	/* CLOCK_MONOTONIC ms; no reconnection before this */
	char		 why[MG_ERRLEN];/* why the last reconnection failed, repeated until retry_at */
};

/*
 * Query parameters in text format, except binary ones (the sealed
 * secrets, which are bytea). Integers are formatted into num[].
 */
struct pg_params {
	int		 n;
	const char	*val[PG_MAX_PARAMS];
	int		 len[PG_MAX_PARAMS];	/* used for binary parameters only */
	int		 fmt[PG_MAX_PARAMS];	/* 0 text, 1 binary */
	char		 num[PG_MAX_PARAMS][24];
};

/*
 * Defaults added to the caller's connection string for the settings it
 * leaves out (see the comment at the top for why each is there).
 */
static const char *const pg_defaults[][2] = {
	{ "connect_timeout", "3" },
	{ "keepalives", "1" },
	{ "keepalives_idle", "5" },
	{ "keepalives_interval", "2" },
	{ "keepalives_count", "3" },
	{ "tcp_user_timeout", "10000" },
	{ "client_encoding", "UTF8" },
	{ "application_name", "mailgate" },
	{ "target_session_attrs", "read-write" },
};
#define PG_NDEFAULTS	(sizeof(pg_defaults) / sizeof(pg_defaults[0]))

/*
 * The schema, one step per version: step i takes a store from version i to
 * version i + 1, with the same tables and meaning as the SQLite backend's
 * step i. Steps are only ever appended, never edited. Each runs in one
 * transaction together with the schema_version update, under an advisory
 * lock, so two gateways starting together never both run a step, and a
 * step that fails leaves the store at the version before it.
 *
 * "user" is a reserved word in PostgreSQL; the user columns are user_name.
 */
static const char *const pg_migrations[] = {
	/* 1: gateway users and their upstream accounts. */
	"CREATE TABLE users ("
	"  name    TEXT PRIMARY KEY,"
	"  hash    TEXT NOT NULL,"
	"  created BIGINT,"
	"  updated BIGINT"
	");"
	"CREATE TABLE accounts ("
	"  user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	"  provider  TEXT NOT NULL,"
	"  login     TEXT NOT NULL,"
	"  kind      INT NOT NULL,"
	"  secret    BYTEA NOT NULL,"
	"  updated   BIGINT,"
	"  PRIMARY KEY (user_name, provider)"
	");",

	/* 2: user flags, device passwords, the store generation, the audit log. */
	"ALTER TABLE users"
	"  ADD COLUMN disabled INT NOT NULL DEFAULT 0,"
	"  ADD COLUMN password_login INT NOT NULL DEFAULT 1,"
	"  ADD COLUMN auth_gen BIGINT NOT NULL DEFAULT 0;"
	"CREATE TABLE devices ("
	"  user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	"  label     TEXT NOT NULL,"
	"  hash      TEXT NOT NULL,"
	"  scopes    INT NOT NULL,"
	"  account   TEXT NOT NULL DEFAULT '',"
	"  created   BIGINT NOT NULL,"
	"  last_used BIGINT NOT NULL DEFAULT 0,"
	"  last_addr TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY (user_name, label),"
	"  UNIQUE (user_name, hash)"
	");"
	"CREATE TABLE meta ("
	"  key   TEXT PRIMARY KEY,"
	"  value BIGINT NOT NULL"
	");"
	"INSERT INTO meta (key, value) VALUES ('generation', 0);"
	"CREATE TABLE audit ("
	"  id        BIGSERIAL PRIMARY KEY,"
	"  ts        BIGINT NOT NULL,"
	"  kind      TEXT NOT NULL,"
	"  user_name TEXT NOT NULL,"
	"  device    TEXT NOT NULL,"
	"  proto     TEXT NOT NULL,"
	"  client    TEXT NOT NULL,"
	"  result    TEXT NOT NULL,"
	"  detail    TEXT NOT NULL"
	");"
	"CREATE INDEX audit_user_id ON audit (user_name, id);"
	"CREATE INDEX audit_ts ON audit (ts);",
};

#define PG_VERSION	((int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])))

/*
 * The end of a revoking statement (see pg_revoking()): the WITH clause
 * that bumps the store generation when the clause named "u" before it
 * changed a row, and the two counts pg_revoking() checks.
 */
#define PG_BUMP_GENERATION \
	" g AS (UPDATE meta SET value = value + 1" \
	"   WHERE key = 'generation' AND EXISTS (SELECT 1 FROM u) RETURNING value)" \
	" SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM g)"

#define PG_USER_COLS	"name, hash, created, updated, disabled, password_login, auth_gen"
#define PG_ACCOUNT_COLS	"user_name, provider, login, kind, secret, updated"
#define PG_DEVICE_COLS	"user_name, label, hash, scopes, account, created, last_used, last_addr"
#define PG_AUDIT_COLS	"id, ts, kind, user_name, device, proto, client, result, detail"

static void	pg_lock(struct pg_store *);
static void	pg_unlock(struct pg_store *);
static int64_t	pg_now_ms(void);
static void	pg_notice_cb(void *, const char *);
static void	pg_clean(const char *, char *, size_t);
static void	pg_err(struct pg_store *, const char *, const PGresult *, char *, size_t);
static int	pg_lost(struct pg_store *, const char *);
static int	pg_session(struct pg_store *, char *, size_t);
static int	pg_ready(struct pg_store *, int, int *, char *, size_t);
static void	pg_rollback(struct pg_store *);
static void	pg_p_text(struct pg_params *, const char *);
static void	pg_p_int(struct pg_params *, int64_t);
static void	pg_p_bin(struct pg_params *, const void *, size_t);
static PGresult	*pg_query(struct pg_store *, const char *, const struct pg_params *, int, const char *,
		    char *, char *, size_t);
static int	pg_simple(struct pg_store *, const char *, const char *, char *, size_t);
static int	pg_affected(PGresult *);
static int	pg_utf8_ok(const char *);
static void	pg_utf8_fix(const char *, char *, size_t);
static int	pg_field_ok(const char *, size_t, const char *, char *, size_t);
static int	pg_col_text(const PGresult *, int, int, char *, size_t, const char *, char *, size_t);
static int	pg_col_int(const PGresult *, int, int, int64_t *, const char *, char *, size_t);
static int	pg_row_user(const PGresult *, int, struct mg_user *, char *, size_t);
static int	pg_row_account(const PGresult *, int, struct mg_account *, char *, size_t);
static int	pg_row_device(const PGresult *, int, struct mg_device *, char *, size_t);
static int	pg_row_audit(const PGresult *, int, struct mg_audit *, char *, size_t);
static int	pg_read_version(struct pg_store *, int *, char *, size_t);
static int	pg_migrate(struct pg_store *, char *, size_t);
static int	pg_revoking(struct pg_store *, const char *, const struct pg_params *, const char *,
		    char *, size_t);
static int	pg_device_one(struct pg_store *, const char *, const char *, const char *,
		    struct mg_device *, const char *, char *, size_t);

static void	pg_close(void *);
static int	pg_schema_version(void *);
static int	pg_user_add(void *, const char *, const char *, char *, size_t);
static int	pg_user_set_hash(void *, const char *, const char *, char *, size_t);
static int	pg_user_del(void *, const char *, char *, size_t);
static int	pg_user_get(void *, const char *, struct mg_user *, char *, size_t);
static int	pg_user_list(void *, mg_user_cb, void *, char *, size_t);
static int	pg_user_set_flags(void *, const char *, int, int, char *, size_t);
static int	pg_account_set(void *, const struct mg_account *, char *, size_t);
static int	pg_account_get(void *, const char *, const char *, struct mg_account *, char *, size_t);
static int	pg_account_del(void *, const char *, const char *, char *, size_t);
static int	pg_account_list(void *, const char *, mg_account_cb, void *, char *, size_t);
static int	pg_account_reseal(void *, const char *, const char *, const uint8_t *, size_t,
		    const uint8_t *, size_t, char *, size_t);
static int	pg_device_add(void *, const struct mg_device *, char *, size_t);
static int	pg_device_find(void *, const char *, const char *, struct mg_device *, char *, size_t);
static int	pg_device_get(void *, const char *, const char *, struct mg_device *, char *, size_t);
static int	pg_device_revoke(void *, const char *, const char *, char *, size_t);
static int	pg_device_touch(void *, const char *, const char *, time_t, const char *, char *, size_t);
static int	pg_device_list(void *, const char *, mg_device_cb, void *, char *, size_t);
static int	pg_generation(void *, int64_t *, char *, size_t);
static int	pg_audit_add(void *, const struct mg_audit *, char *, size_t);
static int	pg_audit_list(void *, const char *, time_t, mg_audit_cb, void *, char *, size_t);

static const struct mg_store_ops pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.schema_version = pg_schema_version,
	.user_add = pg_user_add,
	.user_set_hash = pg_user_set_hash,
	.user_del = pg_user_del,
	.user_get = pg_user_get,
	.user_list = pg_user_list,
	.account_set = pg_account_set,
	.account_get = pg_account_get,
	.account_del = pg_account_del,
	.account_list = pg_account_list,
	.account_reseal = pg_account_reseal,
	.user_set_flags = pg_user_set_flags,
	.device_add = pg_device_add,
	.device_find = pg_device_find,
	.device_get = pg_device_get,
	.device_revoke = pg_device_revoke,
	.device_touch = pg_device_touch,
	.device_list = pg_device_list,
	.generation = pg_generation,
	.audit_add = pg_audit_add,
	.audit_list = pg_audit_list,
};

/*
 * Connection handling
 */

static void
pg_lock(struct pg_store *s)
{
	pthread_mutex_lock(&s->lock);
}

static void
pg_unlock(struct pg_store *s)
{
	pthread_mutex_unlock(&s->lock);
}

static int64_t
pg_now_ms(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq prints notices on stderr unless told otherwise; the store never logs. */
static void
pg_notice_cb(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/*
 * Makes a libpq or server message fit on one line: leading "ERROR:  " or
 * "FATAL:  " dropped, line breaks and tabs turned into single spaces,
 * trailing blanks removed.
 */
static void
pg_clean(const char *m, char *buf, size_t buflen)
{
	size_t	o = 0;
	int	space = 0;

	if (strncmp(m, "ERROR:  ", 8) == 0 || strncmp(m, "FATAL:  ", 8) == 0)
		m += 8;
	for (; *m != '\0' && o + 1 < buflen; m++) {
		if ((unsigned char)*m < 0x20 || *m == ' ' || *m == 0x7f) {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < buflen)
			buf[o++] = ' ';
		space = 0;
		buf[o++] = *m;
	}
	buf[o] = '\0';
}

/*
 * Fills err with what failed and why. Only the primary message is used:
 * the DETAIL of a constraint violation quotes the row's values, and those
 * may be password hashes.
 */
static void
pg_err(struct pg_store *s, const char *what, const PGresult *res, char *err, size_t errlen)
{
	const char	*m = NULL;
	char		 buf[MG_ERRLEN];

	if (res != NULL && (m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) == NULL)
		m = PQresultErrorMessage(res);
	if (m == NULL || *m == '\0')
		m = PQerrorMessage(s->conn);
	if (m == NULL || *m == '\0')
		m = "unknown error";
	pg_clean(m, buf, sizeof(buf));
	mg_store_err(err, errlen, "postgresql: %s: %s", what, buf);
}

/*
 * Is the connection gone after a failed query? Then the next use resets
 * it. Besides a closed socket, the server's own "connection exception"
 * class 08 and the shutdown codes 57P01-57P03 say so.
 */
static int
pg_lost(struct pg_store *s, const char *state)
{
	if (PQstatus(s->conn) == CONNECTION_BAD ||
	    (state != NULL && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)))
		s->broken = 1;
	return s->broken;
}

/*
 * Sets up a new connection: no notices on stderr, a server recent enough,
 * an encoding that can hold UTF-8, and a statement timeout unless the
 * role, the database or the connection string already set one. Runs after
 * every (re)connection, since a reset starts a new server session.
 */
static int
pg_session(struct pg_store *s, char *err, size_t errlen)
{
	PGresult	*res;
	const char	*enc;
	int		 ret = -1;

	PQsetNoticeProcessor(s->conn, pg_notice_cb, NULL);
	if (PQserverVersion(s->conn) < PG_MIN_SERVER) {
		mg_store_err(err, errlen, "postgresql: the server is version %d; mailgate needs 10 or newer",
		    PQserverVersion(s->conn));
		return -1;
	}
	res = PQexec(s->conn, "SELECT current_setting('server_encoding'),"
	    " CASE WHEN current_setting('statement_timeout') = '0'"
	    " THEN set_config('statement_timeout', '" PG_STATEMENT_TIMEOUT "', false) END");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pg_err(s, "setting up the session", res, err, errlen);
		goto fail;
	}
	enc = PQgetvalue(res, 0, 0);
	if (strcmp(enc, "UTF8") != 0 && strcmp(enc, "SQL_ASCII") != 0) {
		mg_store_err(err, errlen, "postgresql: the database encoding is %s; mailgate needs UTF8 "
		    "(CREATE DATABASE ... ENCODING 'UTF8')", enc);
		goto fail;
	}
	ret = 0;
fail:
	PQclear(res);
	return ret;
}

/*
 * Makes sure the connection is usable, reconnecting when it is not, except
 * with PG_INTX: a new connection would not have the caller's transaction.
 * Sets *fresh when it reconnected. Call with the lock held.
 */
static int
pg_ready(struct pg_store *s, int flags, int *fresh, char *err, size_t errlen)
{
	char	 buf[MG_ERRLEN];

	*fresh = 0;
	if (flags & PG_INTX) {
		if (!s->broken && PQstatus(s->conn) == CONNECTION_OK &&
		    PQtransactionStatus(s->conn) == PQTRANS_INTRANS)
			return 0;
		mg_store_err(err, errlen, "postgresql: the connection was lost in a transaction");
		return -1;
	}
	/* A transaction left open would be a bug; a new session ends it. */
	if (!s->broken && PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) == PQTRANS_IDLE)
		return 0;
	if (pg_now_ms() < s->retry_at) {
		mg_store_err(err, errlen, "%s", s->why);
		return -1;
	}
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		pg_clean(PQerrorMessage(s->conn), buf, sizeof(buf));
		mg_store_err(s->why, sizeof(s->why), "postgresql: reconnecting: %s", buf);
		goto fail;
	}
	if (pg_session(s, s->why, sizeof(s->why)) == -1)
		goto fail;
	s->broken = 0;
	s->retry_at = 0;
	*fresh = 1;
	return 0;
fail:
	s->broken = 1;
	s->retry_at = pg_now_ms() + PG_RETRY_PAUSE_MS;
	mg_store_err(err, errlen, "%s", s->why);
	return -1;
}

/* A text parameter; NULL is SQL NULL. */
static void
pg_p_text(struct pg_params *p, const char *v)
{
	p->val[p->n] = v;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void
pg_p_int(struct pg_params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
	pg_p_text(p, p->num[p->n]);
}

/* A binary parameter: the bytes as they are, no escaping. */
static void
pg_p_bin(struct pg_params *p, const void *v, size_t len)
{
	p->val[p->n] = v;
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->n++;
}

/*
 * Runs one statement with parameters; results come back in text format.
 * Returns the result (the caller PQclear()s it) or NULL with err filled and
 * the SQLSTATE in state[6] ("" when there is none, as for a lost
 * connection). With PG_READ, a statement that fails because a connection
 * from before this call turned out dead is run once more on a new one.
 * Call with the lock held.
 */
static PGresult *
pg_query(struct pg_store *s, const char *sql, const struct pg_params *p, int flags, const char *what,
    char *state, char *err, size_t errlen)
{
	PGresult	*res;
	const char	*code;
	int		 fresh, attempt, lost;

	for (attempt = 0;; attempt++) {
		state[0] = '\0';
		if (pg_ready(s, flags, &fresh, err, errlen) == -1)
			return NULL;
		res = PQexecParams(s->conn, sql, p != NULL ? p->n : 0, NULL, p != NULL ? p->val : NULL,
		    p != NULL ? p->len : NULL, p != NULL ? p->fmt : NULL, 0);
		if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
		    PQresultStatus(res) == PGRES_COMMAND_OK))
			return res;
		code = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (code != NULL)
			snprintf(state, 6, "%s", code);
		pg_err(s, what, res, err, errlen);
		lost = pg_lost(s, code);
		PQclear(res);
		if (!lost || !(flags & PG_READ) || fresh || attempt > 0)
			return NULL;
	}
}

/* Ends a failed transaction, unless the lost connection already ended it. */
static void
pg_rollback(struct pg_store *s)
{
	if (PQstatus(s->conn) == CONNECTION_OK && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Runs constant SQL without parameters or rows. 0 ok, -1 error. */
static int
pg_simple(struct pg_store *s, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult	*res;
	int		 ret = 0;

	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		pg_err(s, what, res, err, errlen);
		(void)pg_lost(s, PQresultErrorField(res, PG_DIAG_SQLSTATE));
		ret = -1;
	}
	PQclear(res);
	return ret;
}

/* The number of rows a command changed (0 when libpq does not say). */
static int
pg_affected(PGresult *res)
{
	return atoi(PQcmdTuples(res));
}

/*
 * Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), which is what PostgreSQL accepts.
 */
static int
pg_utf8_ok(const char *str)
{
	const unsigned char	*s = (const unsigned char *)str;
	unsigned		 c, min;
	int			 n, i;

	while (*s != '\0') {
		c = *s;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			c &= 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			c &= 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			c &= 0x07;
			min = 0x10000;
		} else
			return 0;
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

/*
 * Copies in to out (outlen bytes), replacing each byte that does not
 * start a valid UTF-8 sequence with '?'; for audit records, which keep
 * whatever name a client tried.
 */
static void
pg_utf8_fix(const char *in, char *out, size_t outlen)
{
	char	 one[5];
	size_t	 o = 0, n;
	int	 len;

	while (*in != '\0' && o + 1 < outlen) {
		/* The longest valid sequence starting here, 1 to 4 bytes. */
		for (len = 4; len >= 1; len--) {
			if (strnlen(in, (size_t)len) < (size_t)len)
				continue;
			memcpy(one, in, (size_t)len);
			one[len] = '\0';
			if (pg_utf8_ok(one))
				break;
		}
		n = len >= 1 ? (size_t)len : 1;
		if (o + n >= outlen)
			break;
		if (len >= 1)
			memcpy(out + o, in, n);
		else
			out[o] = '?';
		o += n;
		in += n;
	}
	out[o] = '\0';
}

/*
 * A string field of a caller's struct must end inside its array: store.c
 * checks names, but the device and audit fields are read here first.
 */
static int
pg_field_ok(const char *f, size_t size, const char *what, char *err, size_t errlen)
{
	if (strnlen(f, size) >= size) {
		mg_store_err(err, errlen, "postgresql: %s is too long (at most %zu bytes)", what, size - 1);
		return 0;
	}
	return 1;
}

/*
 * Copies a text column into a fixed-size field. A value that is NULL or
 * does not fit is reported as a malformed store rather than cut short.
 */
static int
pg_col_text(const PGresult *res, int row, int col, char *dst, size_t dstlen, const char *what,
    char *err, size_t errlen)
{
	int	n;

	if (PQgetisnull(res, row, col)) {
		mg_store_err(err, errlen, "postgresql: a stored %s is NULL", what);
		return -1;
	}
	n = PQgetlength(res, row, col);
	if (n < 0 || (size_t)n >= dstlen) {
		mg_store_err(err, errlen, "postgresql: a stored %s is malformed (%d bytes)", what, n);
		return -1;
	}
	memcpy(dst, PQgetvalue(res, row, col), (size_t)n);
	dst[n] = '\0';
	return 0;
}

/* Reads an integer column; NULL reads as 0, as SQLite's column_int64 has it. */
static int
pg_col_int(const PGresult *res, int row, int col, int64_t *out, const char *what, char *err,
    size_t errlen)
{
	const char	*v;
	char		*end;
	long long	 n;

	*out = 0;
	if (PQgetisnull(res, row, col))
		return 0;
	v = PQgetvalue(res, row, col);
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0') {
		mg_store_err(err, errlen, "postgresql: a stored %s is not a number", what);
		return -1;
	}
	*out = (int64_t)n;
	return 0;
}

/* Reads PG_USER_COLS. */
static int
pg_row_user(const PGresult *res, int row, struct mg_user *u, char *err, size_t errlen)
{
	int64_t	created, updated, disabled, pwlogin, gen;

	memset(u, 0, sizeof(*u));
	if (pg_col_text(res, row, 0, u->name, sizeof(u->name), "user name", err, errlen) == -1 ||
	    pg_col_text(res, row, 1, u->hash, sizeof(u->hash), "password hash", err, errlen) == -1 ||
	    pg_col_int(res, row, 2, &created, "creation time", err, errlen) == -1 ||
	    pg_col_int(res, row, 3, &updated, "change time", err, errlen) == -1 ||
	    pg_col_int(res, row, 4, &disabled, "disabled flag", err, errlen) == -1 ||
	    pg_col_int(res, row, 5, &pwlogin, "password_login flag", err, errlen) == -1 ||
	    pg_col_int(res, row, 6, &gen, "auth_gen", err, errlen) == -1)
		return -1;
	/* Guessing wrong about "disabled" would let a user in: report, do not guess. */
	if ((disabled != 0 && disabled != 1) || (pwlogin != 0 && pwlogin != 1)) {
		mg_store_err(err, errlen, "postgresql: the stored flags of user %s are malformed", u->name);
		return -1;
	}
	u->created = (time_t)created;
	u->updated = (time_t)updated;
	u->disabled = (int)disabled;
	u->password_login = (int)pwlogin;
	u->auth_gen = gen;
	return 0;
}

/* Reads PG_ACCOUNT_COLS; the secret arrives hex-encoded (text format). */
static int
pg_row_account(const PGresult *res, int row, struct mg_account *a, char *err, size_t errlen)
{
	unsigned char	*b;
	size_t		 n = 0;
	int64_t		 kind, updated;

	memset(a, 0, sizeof(*a));
	if (pg_col_text(res, row, 0, a->user, sizeof(a->user), "user name", err, errlen) == -1 ||
	    pg_col_text(res, row, 1, a->provider, sizeof(a->provider), "provider name", err, errlen) == -1 ||
	    pg_col_text(res, row, 2, a->login, sizeof(a->login), "upstream login", err, errlen) == -1 ||
	    pg_col_int(res, row, 3, &kind, "secret kind", err, errlen) == -1 ||
	    pg_col_int(res, row, 5, &updated, "change time", err, errlen) == -1)
		return -1;
	/* An unknown kind is passed on: the caller decides what it cannot use. */
	a->kind = (enum mg_secret_kind)kind;
	a->updated = (time_t)updated;
	if (PQgetisnull(res, row, 4) ||
	    (b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 4), &n)) == NULL) {
		mg_store_err(err, errlen, "postgresql: a stored sealed secret cannot be read");
		return -1;
	}
	if (n == 0 || n > MG_SEALED_MAX) {
		mg_store_err(err, errlen, "postgresql: a stored sealed secret is malformed (%zu bytes)", n);
		OPENSSL_cleanse(b, n);
		PQfreemem(b);
		return -1;
	}
	memcpy(a->sealed, b, n);
	a->sealed_len = n;
	OPENSSL_cleanse(b, n);
	PQfreemem(b);
	return 0;
}

/* Reads PG_DEVICE_COLS. */
static int
pg_row_device(const PGresult *res, int row, struct mg_device *d, char *err, size_t errlen)
{
	int64_t	scopes, created, used;

	memset(d, 0, sizeof(*d));
	if (pg_col_text(res, row, 0, d->user, sizeof(d->user), "user name", err, errlen) == -1 ||
	    pg_col_text(res, row, 1, d->label, sizeof(d->label), "device label", err, errlen) == -1 ||
	    pg_col_text(res, row, 2, d->hash, sizeof(d->hash), "device hash", err, errlen) == -1 ||
	    pg_col_int(res, row, 3, &scopes, "device scopes", err, errlen) == -1 ||
	    pg_col_text(res, row, 4, d->account, sizeof(d->account), "device account", err, errlen) == -1 ||
	    pg_col_int(res, row, 5, &created, "creation time", err, errlen) == -1 ||
	    pg_col_int(res, row, 6, &used, "last use time", err, errlen) == -1 ||
	    pg_col_text(res, row, 7, d->last_addr, sizeof(d->last_addr), "last address", err, errlen) == -1)
		return -1;
	if (scopes <= 0 || (scopes & ~(int64_t)MG_SCOPE_ALL) != 0) {
		mg_store_err(err, errlen, "postgresql: the stored scopes of device %s/%s are malformed",
		    d->user, d->label);
		return -1;
	}
	d->scopes = (unsigned)scopes;
	d->created = (time_t)created;
	d->last_used = (time_t)used;
	return 0;
}

/* Reads PG_AUDIT_COLS. */
static int
pg_row_audit(const PGresult *res, int row, struct mg_audit *a, char *err, size_t errlen)
{
	int64_t	ts;

	memset(a, 0, sizeof(*a));
	if (pg_col_int(res, row, 0, &a->id, "audit id", err, errlen) == -1 ||
	    pg_col_int(res, row, 1, &ts, "audit time", err, errlen) == -1 ||
	    pg_col_text(res, row, 2, a->kind, sizeof(a->kind), "audit kind", err, errlen) == -1 ||
	    pg_col_text(res, row, 3, a->user, sizeof(a->user), "audit user", err, errlen) == -1 ||
	    pg_col_text(res, row, 4, a->device, sizeof(a->device), "audit device", err, errlen) == -1 ||
	    pg_col_text(res, row, 5, a->proto, sizeof(a->proto), "audit protocol", err, errlen) == -1 ||
	    pg_col_text(res, row, 6, a->client, sizeof(a->client), "audit client", err, errlen) == -1 ||
	    pg_col_text(res, row, 7, a->result, sizeof(a->result), "audit result", err, errlen) == -1 ||
	    pg_col_text(res, row, 8, a->detail, sizeof(a->detail), "audit detail", err, errlen) == -1)
		return -1;
	a->ts = (time_t)ts;
	return 0;
}

/*
 * Schema migrations
 */

/*
 * The version in schema_version; 0 when the table does not exist yet.
 * Whether it exists is read from pg_class with the statement's snapshot,
 * not with to_regclass(): that one trusts the session's catalog cache,
 * which inside a transaction is not refreshed by waiting for the advisory
 * lock, and would still say "no such table" after another gateway, which
 * held the lock, created it.
 */
static int
pg_read_version(struct pg_store *s, int *v, char *err, size_t errlen)
{
	PGresult	*res;
	int64_t		 n;
	int		 ret = -1;

	*v = 0;
	res = PQexec(s->conn, "SELECT count(*) FROM pg_catalog.pg_class c"
	    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    " WHERE c.relname = 'schema_version'"
	    " AND n.nspname = ANY (pg_catalog.current_schemas(false))");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pg_err(s, "reading the schema version", res, err, errlen);
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
		ret = 0;
		goto fail;
	}
	PQclear(res);
	res = PQexec(s->conn, "SELECT version FROM schema_version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pg_err(s, "reading the schema version", res, err, errlen);
		goto fail;
	}
	if (PQntuples(res) > 1) {
		mg_store_err(err, errlen, "postgresql: schema_version has %d rows instead of one",
		    PQntuples(res));
		goto fail;
	}
	if (PQntuples(res) == 1) {
		if (pg_col_int(res, 0, 0, &n, "schema version", err, errlen) == -1)
			goto fail;
		if (n < 0 || n > 1000000) {
			mg_store_err(err, errlen, "postgresql: the schema version %" PRId64 " is not valid", n);
			goto fail;
		}
		*v = (int)n;
	}
	ret = 0;
fail:
	PQclear(res);
	return ret;
}

/*
 * Brings the schema up to PG_VERSION, one step per transaction. When the
 * store is already there (every start but the first after an upgrade) it
 * only reads the version: no lock, no DDL, nothing a role without CREATE
 * rights could not do. Otherwise each step takes the advisory lock and
 * reads the version again under it, because another gateway may have run
 * the step meanwhile. A store newer than this code is refused rather than
 * used, since its tables may mean something this code does not know.
 */
static int
pg_migrate(struct pg_store *s, char *err, size_t errlen)
{
	char	sql[128];
	int	v;

	if (pg_read_version(s, &v, err, errlen) == -1)
		return -1;
	while (v < PG_VERSION) {
		if (pg_simple(s, "BEGIN", "starting a migration", err, errlen) == -1)
			return -1;
		if (pg_simple(s, "SELECT pg_advisory_xact_lock(" PG_MIGRATION_LOCK ")",
		    "waiting for another migration", err, errlen) == -1 ||
		    pg_read_version(s, &v, err, errlen) == -1)
			goto fail;
		if (v >= PG_VERSION) {
			if (pg_simple(s, "COMMIT", "ending a migration", err, errlen) == -1)
				goto fail;
			break;
		}
		snprintf(sql, sizeof(sql), "DELETE FROM schema_version;"
		    " INSERT INTO schema_version (version) VALUES (%d)", v + 1);
		if ((v == 0 && pg_simple(s,
		    "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)",
		    "creating the version table", err, errlen) == -1) ||
		    pg_simple(s, pg_migrations[v], "migrating the schema", err, errlen) == -1 ||
		    pg_simple(s, sql, "recording the schema version", err, errlen) == -1 ||
		    pg_simple(s, "COMMIT", "committing a migration", err, errlen) == -1)
			goto fail;
		v++;
	}
	if (v != PG_VERSION) {
		mg_store_err(err, errlen, "postgresql: the store is at schema version %d, but this mailgate "
		    "knows versions up to %d; use a newer mailgate", v, PG_VERSION);
		return -1;
	}
	s->version = v;
	return 0;
fail:
	pg_rollback(s);
	return -1;
}

/*
 * Opening and closing
 */

struct mg_store *
mg_store_open_postgres(const char *conninfo, char *err, size_t errlen)
{
	struct pg_store		*s = NULL;
	PQconninfoOption	*opts = NULL, *o;
	const char		**kw = NULL, **val = NULL;
	char			*msg = NULL, buf[MG_ERRLEN];
	size_t			 n = 0, i;

	if (conninfo == NULL) {
		mg_store_err(err, errlen, "postgresql: no connection string given");
		return NULL;
	}
	/*
	 * libpq's parse errors may quote the string, password included, so
	 * none of their text goes into err.
	 */
	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL) {
		mg_store_err(err, errlen, "postgresql: the connection string is not valid "
		    "(libpq key=value pairs or a postgresql:// URI)");
		if (msg != NULL) {
			OPENSSL_cleanse(msg, strlen(msg));
			PQfreemem(msg);
		}
		return NULL;
	}
	for (o = opts; o->keyword != NULL; o++)
		n++;
	kw = calloc(n + PG_NDEFAULTS + 1, sizeof(*kw));
	val = calloc(n + PG_NDEFAULTS + 1, sizeof(*val));
	if (kw == NULL || val == NULL || (s = calloc(1, sizeof(*s))) == NULL) {
		mg_store_err(err, errlen, "postgresql: out of memory");
		goto fail;
	}
	n = 0;
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		kw[n] = o->keyword;
		val[n++] = o->val;
	}
	for (i = 0; i < PG_NDEFAULTS; i++) {
		for (o = opts; o->keyword != NULL; o++)
			if (strcmp(o->keyword, pg_defaults[i][0]) == 0)
				break;
		if (o->keyword != NULL && o->val != NULL)
			continue;
		kw[n] = pg_defaults[i][0];
		val[n++] = pg_defaults[i][1];
	}
	kw[n] = val[n] = NULL;

	if ((s->conn = PQconnectdbParams(kw, val, 0)) == NULL) {
		mg_store_err(err, errlen, "postgresql: out of memory");
		goto fail;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		pg_clean(PQerrorMessage(s->conn), buf, sizeof(buf));
		mg_store_err(err, errlen, "postgresql: connecting: %s", buf);
		goto fail;
	}
	if (pg_session(s, err, errlen) == -1 || pg_migrate(s, err, errlen) == -1)
		goto fail;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		mg_store_err(err, errlen, "postgresql: cannot create a mutex");
		goto fail;
	}
	free(kw);
	free(val);
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			OPENSSL_cleanse(o->val, strlen(o->val));
	PQconninfoFree(opts);
	return mg_store_new(&pg_ops, s, err, errlen);
fail:
	free(kw);
	free(val);
	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			OPENSSL_cleanse(o->val, strlen(o->val));
	PQconninfoFree(opts);
	if (s != NULL) {
		PQfinish(s->conn);
		free(s);
	}
	return NULL;
}

static void
pg_close(void *impl)
{
	struct pg_store	*s = impl;

	if (s == NULL)
		return;
	PQfinish(s->conn);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int
pg_schema_version(void *impl)
{
	struct pg_store	*s = impl;

	return s->version;
}

/*
 * Users
 */

static int
pg_user_add(void *impl, const char *user, const char *hash, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];

	if (!pg_utf8_ok(user)) {
		mg_store_err(err, errlen, "postgresql: the user name is not valid UTF-8");
		return -1;
	}
	pg_p_text(&p, user);
	pg_p_text(&p, hash);
	pg_p_int(&p, (int64_t)time(NULL));
	pg_lock(s);
	res = pg_query(s, "INSERT INTO users (name, hash, created, updated) VALUES ($1, $2, $3, $3)",
	    &p, 0, "adding a user", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return strcmp(state, "23505") == 0 ? 1 : -1;
	PQclear(res);
	return 0;
}

/*
 * Runs a revoking change: `sql` is one statement whose WITH clause "u"
 * returns the rows it changed, followed by PG_BUMP_GENERATION. It runs in
 * a transaction so that the change can be undone when the generation
 * counter is missing (only a hand-edited store lacks it): gateways compare
 * the counter with the value they saw last, so it is reported rather than
 * recreated. 0 when the change was made, 1 when there was nothing to
 * change, -1 on error.
 */
static int
pg_revoking(struct pg_store *s, const char *sql, const struct pg_params *p, const char *what,
    char *err, size_t errlen)
{
	PGresult	*res = NULL;
	char		 state[6];
	int64_t		 nu, ng;
	int		 ret = -1;

	pg_lock(s);
	if ((res = pg_query(s, "BEGIN", NULL, 0, what, state, err, errlen)) == NULL)
		goto fail;
	PQclear(res);
	if ((res = pg_query(s, sql, p, PG_INTX, what, state, err, errlen)) == NULL)
		goto fail;
	if (PQntuples(res) != 1 || PQnfields(res) != 2) {
		mg_store_err(err, errlen, "postgresql: %s: no result", what);
		goto fail;
	}
	if (pg_col_int(res, 0, 0, &nu, "count", err, errlen) == -1 ||
	    pg_col_int(res, 0, 1, &ng, "count", err, errlen) == -1)
		goto fail;
	PQclear(res);
	res = NULL;
	if (nu == 0) {
		ret = 1;
		goto fail;
	}
	if (ng != 1) {
		mg_store_err(err, errlen, "postgresql: %s: the generation counter is missing", what);
		goto fail;
	}
	if ((res = pg_query(s, "COMMIT", NULL, PG_INTX, what, state, err, errlen)) == NULL)
		goto fail;
	ret = 0;
fail:
	PQclear(res);
	if (ret != 0)
		pg_rollback(s);
	pg_unlock(s);
	return ret;
}

static int
pg_user_set_hash(void *impl, const char *user, const char *hash, char *err, size_t errlen)
{
	struct pg_params	p = { 0 };

	if (!pg_utf8_ok(user))
		return 1;
	pg_p_text(&p, user);
	pg_p_text(&p, hash);
	pg_p_int(&p, (int64_t)time(NULL));
	return pg_revoking(impl,
	    "WITH u AS (UPDATE users SET hash = $2, updated = $3, auth_gen = auth_gen + 1"
	    "   WHERE name = $1 RETURNING name),"
	    PG_BUMP_GENERATION,
	    &p, "changing a password hash", err, errlen);
}

/* ON DELETE CASCADE removes the user's accounts and devices in the same statement. */
static int
pg_user_del(void *impl, const char *user, char *err, size_t errlen)
{
	struct pg_params	p = { 0 };

	if (!pg_utf8_ok(user))
		return 1;
	pg_p_text(&p, user);
	return pg_revoking(impl,
	    "WITH u AS (DELETE FROM users WHERE name = $1 RETURNING name),"
	    PG_BUMP_GENERATION,
	    &p, "deleting a user", err, errlen);
}

/* -1 leaves a flag as it is: it is passed as NULL, which COALESCE skips. */
static int
pg_user_set_flags(void *impl, const char *user, int disabled, int password_login, char *err,
    size_t errlen)
{
	struct pg_params	p = { 0 };

	if (!pg_utf8_ok(user))
		return 1;
	pg_p_text(&p, user);
	if (disabled < 0)
		pg_p_text(&p, NULL);
	else
		pg_p_int(&p, disabled);
	if (password_login < 0)
		pg_p_text(&p, NULL);
	else
		pg_p_int(&p, password_login);
	pg_p_int(&p, (int64_t)time(NULL));
	return pg_revoking(impl,
	    "WITH u AS (UPDATE users SET disabled = COALESCE($2::int, disabled),"
	    "   password_login = COALESCE($3::int, password_login), updated = $4"
	    "   WHERE name = $1 RETURNING name),"
	    PG_BUMP_GENERATION,
	    &p, "changing a user's flags", err, errlen);
}

static int
pg_user_get(void *impl, const char *user, struct mg_user *out, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];
	int			 ret = -1;

	if (!pg_utf8_ok(user))
		return 0;
	pg_p_text(&p, user);
	pg_lock(s);
	res = pg_query(s, "SELECT " PG_USER_COLS " FROM users WHERE name = $1",
	    &p, PG_READ, "looking up a user", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		ret = 0;
	else if (pg_row_user(res, 0, out, err, errlen) == 0)
		ret = 1;
	PQclear(res);
	return ret;
}

/*
 * Calls cb for each user, by name. The callback runs without the store's
 * lock, on a result already read in full, so it may call the store.
 */
static int
pg_user_list(void *impl, mg_user_cb cb, void *arg, char *err, size_t errlen)
{
	struct pg_store	*s = impl;
	PGresult	*res;
	struct mg_user	 u;
	char		 state[6];
	int		 i, ret = 0;

	pg_lock(s);
	res = pg_query(s, "SELECT " PG_USER_COLS " FROM users ORDER BY name COLLATE \"C\"",
	    NULL, PG_READ, "listing users", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		if (pg_row_user(res, i, &u, err, errlen) == -1) {
			ret = -1;
			break;
		}
		if (cb(&u, arg) != 0)
			break;
	}
	PQclear(res);
	OPENSSL_cleanse(&u, sizeof(u));
	return ret;
}

/*
 * Accounts
 */

/*
 * Inserts or replaces in one statement; an unknown user is the foreign key
 * failing, not a separate look-up that could race with a delete. The
 * caller's a->updated is ignored: the store records when it made the change.
 */
static int
pg_account_set(void *impl, const struct mg_account *a, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];

	if (!pg_utf8_ok(a->user))
		return 1;
	if (!pg_utf8_ok(a->provider) || !pg_utf8_ok(a->login)) {
		mg_store_err(err, errlen, "postgresql: the provider name or login is not valid UTF-8");
		return -1;
	}
	pg_p_text(&p, a->user);
	pg_p_text(&p, a->provider);
	pg_p_text(&p, a->login);
	pg_p_int(&p, (int64_t)a->kind);
	pg_p_bin(&p, a->sealed, a->sealed_len);
	pg_p_int(&p, (int64_t)time(NULL));
	pg_lock(s);
	res = pg_query(s,
	    "INSERT INTO accounts (user_name, provider, login, kind, secret, updated)"
	    " VALUES ($1, $2, $3, $4, $5, $6)"
	    " ON CONFLICT (user_name, provider) DO UPDATE SET login = EXCLUDED.login,"
	    " kind = EXCLUDED.kind, secret = EXCLUDED.secret, updated = EXCLUDED.updated",
	    &p, 0, "storing an account", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return strcmp(state, "23503") == 0 ? 1 : -1;
	PQclear(res);
	return 0;
}

static int
pg_account_get(void *impl, const char *user, const char *provider, struct mg_account *out,
    char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	const char		*sql;
	char			 state[6];
	int			 ret = -1;

	if (!pg_utf8_ok(user) || (provider != NULL && !pg_utf8_ok(provider)))
		return 0;
	pg_p_text(&p, user);
	if (provider != NULL) {
		pg_p_text(&p, provider);
		sql = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE user_name = $1 AND provider = $2";
	} else
		sql = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE user_name = $1"
		    " ORDER BY provider COLLATE \"C\" LIMIT 1";
	pg_lock(s);
	res = pg_query(s, sql, &p, PG_READ, "looking up an account", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		ret = 0;
	else if (pg_row_account(res, 0, out, err, errlen) == 0)
		ret = 1;
	PQclear(res);
	return ret;
}

static int
pg_account_del(void *impl, const char *user, const char *provider, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];
	int			 ret;

	if (!pg_utf8_ok(user) || !pg_utf8_ok(provider))
		return 1;
	pg_p_text(&p, user);
	pg_p_text(&p, provider);
	pg_lock(s);
	res = pg_query(s, "DELETE FROM accounts WHERE user_name = $1 AND provider = $2",
	    &p, 0, "deleting an account", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	ret = pg_affected(res) == 0 ? 1 : 0;
	PQclear(res);
	return ret;
}

/*
 * Calls cb for each account by user and provider, with the same rules as
 * pg_user_list(). The row buffer is on the heap: it is 8 KiB of sealed
 * secret and pool threads are not the place for big stack frames.
 */
static int
pg_account_list(void *impl, const char *user, mg_account_cb cb, void *arg, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	struct mg_account	*a;
	PGresult		*res;
	const char		*sql;
	char			 state[6];
	int			 i, ret = 0;

	if (user != NULL && !pg_utf8_ok(user))
		return 0;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		mg_store_err(err, errlen, "postgresql: out of memory");
		return -1;
	}
	if (user != NULL) {
		pg_p_text(&p, user);
		sql = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE user_name = $1"
		    " ORDER BY provider COLLATE \"C\"";
	} else
		sql = "SELECT " PG_ACCOUNT_COLS " FROM accounts"
		    " ORDER BY user_name COLLATE \"C\", provider COLLATE \"C\"";
	pg_lock(s);
	res = pg_query(s, sql, &p, PG_READ, "listing accounts", state, err, errlen);
	pg_unlock(s);
	if (res == NULL) {
		free(a);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++) {
		if (pg_row_account(res, i, a, err, errlen) == -1) {
			ret = -1;
			break;
		}
		if (cb(a, arg) != 0)
			break;
	}
	PQclear(res);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
	return ret;
}

/*
 * Compare and swap on the sealed secret: the row is changed only while it
 * still holds `old`, in the one UPDATE, so a secret an admin set between
 * the caller's read and this write is never overwritten.
 */
static int
pg_account_reseal(void *impl, const char *user, const char *provider, const uint8_t *old, size_t oldlen,
    const uint8_t *sealed, size_t sealedlen, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];
	int			 ret;

	if (!pg_utf8_ok(user) || !pg_utf8_ok(provider))
		return 1;
	pg_p_text(&p, user);
	pg_p_text(&p, provider);
	pg_p_bin(&p, old, oldlen);
	pg_p_bin(&p, sealed, sealedlen);
	pg_lock(s);
	res = pg_query(s, "UPDATE accounts SET secret = $4"
	    " WHERE user_name = $1 AND provider = $2 AND secret = $3",
	    &p, 0, "resealing an account's secret", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	ret = pg_affected(res) == 0 ? 1 : 0;
	PQclear(res);
	return ret;
}

/*
 * Devices
 */

/*
 * One INSERT, so the constraints answer the questions: the foreign key
 * "no such user" (1), the primary key "label taken" and UNIQUE (user_name,
 * hash) "hash taken" (2). The store records the creation time; a new
 * device is unused (last_used 0, last_addr "").
 */
static int
pg_device_add(void *impl, const struct mg_device *d, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];

	if (!pg_field_ok(d->label, sizeof(d->label), "device label", err, errlen) ||
	    !pg_field_ok(d->hash, sizeof(d->hash), "device hash", err, errlen) ||
	    !pg_field_ok(d->account, sizeof(d->account), "device account", err, errlen))
		return -1;
	if (!pg_utf8_ok(d->user))
		return 1;
	if (!pg_utf8_ok(d->label) || !pg_utf8_ok(d->hash) || !pg_utf8_ok(d->account)) {
		mg_store_err(err, errlen, "postgresql: a device field is not valid UTF-8");
		return -1;
	}
	pg_p_text(&p, d->user);
	pg_p_text(&p, d->label);
	pg_p_text(&p, d->hash);
	pg_p_int(&p, (int64_t)d->scopes);
	pg_p_text(&p, d->account);
	pg_p_int(&p, (int64_t)time(NULL));
	pg_lock(s);
	res = pg_query(s, "INSERT INTO devices (" PG_DEVICE_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, 0, '')",
	    &p, 0, "adding a device", state, err, errlen);
	pg_unlock(s);
	if (res != NULL) {
		PQclear(res);
		return 0;
	}
	if (strcmp(state, "23503") == 0)
		return 1;
	if (strcmp(state, "23505") == 0)
		return 2;
	return -1;
}

/* One device by user and (key, value): "hash" for find, "label" for get. */
static int
pg_device_one(struct pg_store *s, const char *sql, const char *user, const char *key,
    struct mg_device *out, const char *what, char *err, size_t errlen)
{
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 state[6];
	int			 ret = -1;

	if (!pg_utf8_ok(user) || !pg_utf8_ok(key))
		return 0;
	pg_p_text(&p, user);
	pg_p_text(&p, key);
	pg_lock(s);
	res = pg_query(s, sql, &p, PG_READ, what, state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		ret = 0;
	else if (pg_row_device(res, 0, out, err, errlen) == 0)
		ret = 1;
	PQclear(res);
	return ret;
}

static int
pg_device_find(void *impl, const char *user, const char *hash, struct mg_device *out,
    char *err, size_t errlen)
{
	return pg_device_one(impl,
	    "SELECT " PG_DEVICE_COLS " FROM devices WHERE user_name = $1 AND hash = $2",
	    user, hash, out, "looking up a device password", err, errlen);
}

static int
pg_device_get(void *impl, const char *user, const char *label, struct mg_device *out,
    char *err, size_t errlen)
{
	return pg_device_one(impl,
	    "SELECT " PG_DEVICE_COLS " FROM devices WHERE user_name = $1 AND label = $2",
	    user, label, out, "looking up a device", err, errlen);
}

/*
 * Deletes the device and bumps the store generation, so that every gateway
 * re-checks its sessions and ends the ones this device opened. The user's
 * auth_gen stays: the user's other devices and own password go on.
 */
static int
pg_device_revoke(void *impl, const char *user, const char *label, char *err, size_t errlen)
{
	struct pg_params	p = { 0 };

	if (!pg_utf8_ok(user) || !pg_utf8_ok(label))
		return 1;
	pg_p_text(&p, user);
	pg_p_text(&p, label);
	return pg_revoking(impl,
	    "WITH u AS (DELETE FROM devices WHERE user_name = $1 AND label = $2 RETURNING user_name),"
	    PG_BUMP_GENERATION,
	    &p, "revoking a device", err, errlen);
}

static int
pg_device_touch(void *impl, const char *user, const char *label, time_t when, const char *addr,
    char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	PGresult		*res;
	char			 fixed[MG_ADDR_MAX];
	char			 state[6];
	int			 ret;

	if (!pg_utf8_ok(user) || !pg_utf8_ok(label))
		return 1;
	pg_utf8_fix(addr != NULL ? addr : "", fixed, sizeof(fixed));
	pg_p_text(&p, user);
	pg_p_text(&p, label);
	pg_p_int(&p, (int64_t)when);
	pg_p_text(&p, fixed);
	pg_lock(s);
	res = pg_query(s, "UPDATE devices SET last_used = $3, last_addr = $4"
	    " WHERE user_name = $1 AND label = $2",
	    &p, 0, "recording a device login", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	ret = pg_affected(res) == 0 ? 1 : 0;
	PQclear(res);
	return ret;
}

/* Calls cb for each device by user and label, with the rules of pg_user_list(). */
static int
pg_device_list(void *impl, const char *user, mg_device_cb cb, void *arg, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	struct mg_device	 d;
	PGresult		*res;
	const char		*sql;
	char			 state[6];
	int			 i, ret = 0;

	if (user != NULL && !pg_utf8_ok(user))
		return 0;
	if (user != NULL) {
		pg_p_text(&p, user);
		sql = "SELECT " PG_DEVICE_COLS " FROM devices WHERE user_name = $1"
		    " ORDER BY label COLLATE \"C\"";
	} else
		sql = "SELECT " PG_DEVICE_COLS " FROM devices"
		    " ORDER BY user_name COLLATE \"C\", label COLLATE \"C\"";
	pg_lock(s);
	res = pg_query(s, sql, &p, PG_READ, "listing devices", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		if (pg_row_device(res, i, &d, err, errlen) == -1) {
			ret = -1;
			break;
		}
		if (cb(&d, arg) != 0)
			break;
	}
	PQclear(res);
	return ret;
}

/*
 * The generation and the audit log
 */

static int
pg_generation(void *impl, int64_t *gen, char *err, size_t errlen)
{
	struct pg_store	*s = impl;
	PGresult	*res;
	char		 state[6];
	int		 ret = -1;

	pg_lock(s);
	res = pg_query(s, "SELECT value FROM meta WHERE key = 'generation'",
	    NULL, PG_READ, "reading the store generation", state, err, errlen);
	pg_unlock(s);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1)
		mg_store_err(err, errlen, "postgresql: the store generation is missing");
	else if (pg_col_int(res, 0, 0, gen, "store generation", err, errlen) == 0)
		ret = 0;
	PQclear(res);
	return ret;
}

/*
 * Adds a record; the id comes from the sequence and ts from the clock when
 * the caller left it 0. Bytes that are not UTF-8 become '?' (see the top).
 */
static int
pg_audit_add(void *impl, const struct mg_audit *a, char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p = { 0 };
	struct mg_audit		*f;
	PGresult		*res;
	char			 state[6];

	if (!pg_field_ok(a->kind, sizeof(a->kind), "audit kind", err, errlen) ||
	    !pg_field_ok(a->user, sizeof(a->user), "audit user", err, errlen) ||
	    !pg_field_ok(a->device, sizeof(a->device), "audit device", err, errlen) ||
	    !pg_field_ok(a->proto, sizeof(a->proto), "audit protocol", err, errlen) ||
	    !pg_field_ok(a->client, sizeof(a->client), "audit client", err, errlen) ||
	    !pg_field_ok(a->result, sizeof(a->result), "audit result", err, errlen) ||
	    !pg_field_ok(a->detail, sizeof(a->detail), "audit detail", err, errlen))
		return -1;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		mg_store_err(err, errlen, "postgresql: out of memory");
		return -1;
	}
	pg_utf8_fix(a->kind, f->kind, sizeof(f->kind));
	pg_utf8_fix(a->user, f->user, sizeof(f->user));
	pg_utf8_fix(a->device, f->device, sizeof(f->device));
	pg_utf8_fix(a->proto, f->proto, sizeof(f->proto));
	pg_utf8_fix(a->client, f->client, sizeof(f->client));
	pg_utf8_fix(a->result, f->result, sizeof(f->result));
	pg_utf8_fix(a->detail, f->detail, sizeof(f->detail));
	pg_p_int(&p, (int64_t)(a->ts != 0 ? a->ts : time(NULL)));
	pg_p_text(&p, f->kind);
	pg_p_text(&p, f->user);
	pg_p_text(&p, f->device);
	pg_p_text(&p, f->proto);
	pg_p_text(&p, f->client);
	pg_p_text(&p, f->result);
	pg_p_text(&p, f->detail);
	pg_lock(s);
	res = pg_query(s, "INSERT INTO audit (ts, kind, user_name, device, proto, client, result, detail)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	    &p, 0, "adding an audit record", state, err, errlen);
	pg_unlock(s);
	free(f);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/*
 * Calls cb for each record since `since` (0: all), oldest first, with the
 * rules of pg_user_list(). The log can be long, so it is read in pages of
 * PG_AUDIT_PAGE records by id, never whole into memory, and the lock is
 * free between pages. Records added during the walk may show up at its end.
 */
static int
pg_audit_list(void *impl, const char *user, time_t since, mg_audit_cb cb, void *arg,
    char *err, size_t errlen)
{
	struct pg_store		*s = impl;
	struct pg_params	 p;
	struct mg_audit		*a;
	PGresult		*res;
	char			 state[6];
	int64_t			 last = 0;
	int			 i, rows, ret = 0, stop = 0;

	if (user != NULL && !pg_utf8_ok(user))
		return 0;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		mg_store_err(err, errlen, "postgresql: out of memory");
		return -1;
	}
	do {
		memset(&p, 0, sizeof(p));
		pg_p_int(&p, last);
		pg_p_text(&p, user);
		pg_p_int(&p, (int64_t)since);
		pg_p_int(&p, PG_AUDIT_PAGE);
		pg_lock(s);
		res = pg_query(s, "SELECT " PG_AUDIT_COLS " FROM audit"
		    " WHERE id > $1 AND ($2::text IS NULL OR user_name = $2) AND ts >= $3"
		    " ORDER BY id LIMIT $4",
		    &p, PG_READ, "listing audit records", state, err, errlen);
		pg_unlock(s);
		if (res == NULL) {
			ret = -1;
			break;
		}
		rows = PQntuples(res);
		for (i = 0; i < rows && !stop; i++) {
			if (pg_row_audit(res, i, a, err, errlen) == -1) {
				ret = -1;
				stop = 1;
				break;
			}
			last = a->id;
			stop = cb(a, arg) != 0;
		}
		PQclear(res);
	} while (!stop && rows == PG_AUDIT_PAGE);
	free(a);
	return ret;
}
