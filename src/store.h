/*
 * store.h - the credential store: gateway users and their upstream accounts.
 *
 * One small interface, one file per backend (store_sqlite.c now, a
 * PostgreSQL backend later). Calls are synchronous and may block: the
 * gateway only calls them from libuv's thread pool, never on the event loop.
 * A store handle may be used from several threads at once.
 *
 * The store never logs. Functions that can fail fill `err` (at least
 * MG_ERRLEN bytes) and return -1. Lookups return 1 (found), 0 (not found)
 * or -1 (error). The store keeps secrets only as the caller hands them in:
 * password hashes and sealed (encrypted) upstream secrets; it never sees a
 * plaintext password.
 */
#ifndef MG_STORE_H
#define MG_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MG_ERRLEN	256
#define MG_NAME_MAX	256	/* user names, logins, provider names (bytes incl. NUL) */
#define MG_HASH_MAX	256	/* crypt(3) hash strings (bytes incl. NUL) */
#define MG_SEALED_MAX	8192	/* a sealed upstream secret (bytes) */

/* What an upstream secret is; it decides how the gateway logs in upstream. */
enum mg_secret_kind {
	MG_SECRET_PASSWORD = 1,		/* an app password: LOGIN / AUTH PLAIN */
	MG_SECRET_OAUTH2_REFRESH = 2	/* an OAuth2 refresh token: XOAUTH2 / OAUTHBEARER (later) */
};

struct mg_account {
	char			user[MG_NAME_MAX];	/* gateway user */
	char			provider[MG_NAME_MAX];	/* provider name from the config */
	char			login[MG_NAME_MAX];	/* login name at the provider */
	enum mg_secret_kind	kind;
	uint8_t			sealed[MG_SEALED_MAX];	/* mg_seal() output, AAD = mg_account_aad() */
	size_t			sealed_len;
	time_t			updated;		/* last change (seconds since the epoch) */
};

struct mg_user {
	char	name[MG_NAME_MAX];
	char	hash[MG_HASH_MAX];	/* crypt(3) string: $y$, $2b$, $6$ ... */
	time_t	created;
	time_t	updated;
};

struct mg_store;

typedef int (*mg_user_cb)(const struct mg_user *u, void *arg);		/* non-zero stops the walk */
typedef int (*mg_account_cb)(const struct mg_account *a, void *arg);

/*
 * Opens (creating if needed) the SQLite store at `path` and brings its schema
 * up to the current version. Returns NULL with err filled on failure.
 */
struct mg_store *mg_store_open_sqlite(const char *path, char *err, size_t errlen);
void mg_store_close(struct mg_store *st);

/* The schema version the store is at after opening. */
int mg_store_schema_version(struct mg_store *st);

/* Users. add: 0 ok, 1 already exists, -1 error. set_hash/del: 0 ok, 1 no such user, -1 error. */
int mg_store_user_add(struct mg_store *st, const char *user, const char *hash, char *err, size_t errlen);
int mg_store_user_set_hash(struct mg_store *st, const char *user, const char *hash, char *err, size_t errlen);
int mg_store_user_del(struct mg_store *st, const char *user, char *err, size_t errlen);	/* also deletes the user's accounts */
int mg_store_user_get(struct mg_store *st, const char *user, struct mg_user *out, char *err, size_t errlen);
int mg_store_user_list(struct mg_store *st, mg_user_cb cb, void *arg, char *err, size_t errlen);

/*
 * Accounts, keyed by (user, provider). set: insert or replace, 0 ok,
 * 1 no such user, -1 error. get with provider NULL returns the user's only
 * (or first by provider name) account. del: 0 ok, 1 no such account.
 */
int mg_store_account_set(struct mg_store *st, const struct mg_account *a, char *err, size_t errlen);
int mg_store_account_get(struct mg_store *st, const char *user, const char *provider,
    struct mg_account *out, char *err, size_t errlen);
int mg_store_account_del(struct mg_store *st, const char *user, const char *provider, char *err, size_t errlen);
int mg_store_account_list(struct mg_store *st, const char *user /* NULL: all */, mg_account_cb cb, void *arg,
    char *err, size_t errlen);

#endif
