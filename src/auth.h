/*
 * auth.h - checks a device's credential against the store, off the loop.
 *
 * The network side never verifies a password itself: it asks and gets
 * OK / FAIL / TEMPFAIL. FAIL means the gateway credential is wrong (or the
 * user unknown or disabled: these are not told apart). TEMPFAIL means
 * anything else went wrong: the store is unavailable, the user has no
 * upstream account, the sealed secret does not open. A TEMPFAIL is never
 * reported to a device as a bad password.
 *
 * A credential is a device password (looked up by its keyed digest, cheap)
 * or the user's own password (a slow crypt(3) hash). A verified credential
 * is cached for auth.cache_ttl under an HMAC of the credential with a
 * per-process key, never the password itself; a cache hit still re-reads
 * the user (and device) from the store, so any revoking change, which bumps
 * the user's auth_gen or deletes the device, invalidates it at once.
 * Identical logins arriving together share one check (a phone opening five
 * connections costs one hash).
 *
 * Store queries, hashing and unsealing run in libuv's thread pool; the
 * callback runs on the loop.
 */
#ifndef MG_AUTH_H
#define MG_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

#define MG_SECRET_MAX	4096	/* largest upstream secret (a refresh token fits) */

enum mg_auth_status {
	MG_AUTH_OK = 0,
	MG_AUTH_FAIL,
	MG_AUTH_TEMPFAIL
};

struct mg_auth_result {
	enum mg_auth_status	 status;
	char			 reason[160];		/* short, safe for the device and the audit */
	char			 log_reason[160];	/* for the admin's log: may say more (e.g. "wrong password") */
	const char		*hash;			/* how the credential was checked: "slow", "device", "cached", "shared", "none" */
	char			 user[MG_NAME_MAX];	/* the gateway user, as stored */
	char			 device[MG_LABEL_MAX];	/* the device's label, "" for the user's own password */
	int64_t			 auth_gen;		/* the user's auth_gen when checked */
	char			 provider[MG_NAME_MAX];
	char			 login[MG_NAME_MAX];	/* upstream login */
	enum mg_secret_kind	 kind;
	char			 secret[MG_SECRET_MAX];	/* plaintext upstream secret; wiped after the callback */
	size_t			 secret_len;
};

struct mg_session;
struct mg_gateway;

/* Runs on the loop with the result; r and its secret are wiped after it returns. */
typedef void (*mg_auth_cb)(struct mg_session *s, struct mg_auth_result *r);

/*
 * Sizes libuv's thread pool for this machine, before its first use: one
 * thread per CPU for password hashes plus two for the store, at least 4
 * (libuv's default). UV_THREADPOOL_SIZE set in the environment wins.
 */
void mg_auth_pool_setup(void);

/*
 * Password hashes that may run at once: one per CPU, and never the whole
 * pool (lookups for cached and device-password logins must find a free
 * thread while a crowd of failed logins is being hashed).
 */
unsigned mg_auth_hash_threads(void);

/* Sets up the cache and the in-flight table for gw. 0 ok, -1 out of memory. */
int mg_auth_init(struct mg_gateway *gw);
void mg_auth_free(struct mg_gateway *gw);

/* Forgets every cached credential (the store generation moved). */
void mg_auth_cache_clear(struct mg_gateway *gw);

/*
 * Starts a check for (user, password) on protocol proto. The password is
 * copied and the copy wiped after hashing; the caller wipes its own. Holds
 * a session reference until cb has run. 0 started, -1 could not start
 * (treat as TEMPFAIL).
 */
int mg_auth_start(struct mg_session *s, enum mg_proto proto, const char *user, size_t ulen,
    const char *password, size_t plen, mg_auth_cb cb);

#endif
