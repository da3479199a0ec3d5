/*
 * auth.c - see auth.h.
 */
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "keys.h"
#include "log.h"
#include "session.h"

#define AUTH_CACHE_SLOTS	4096	/* direct-mapped: a new entry replaces an old one */

/* A verified credential: who it was, not what it was. */
struct auth_cache_slot {
	uint8_t		key[32];		/* HMAC(proc key, login NUL password) */
	uint64_t	expires;		/* uv_now() milliseconds; 0 = empty */
	char		user[MG_NAME_MAX];
	int64_t		auth_gen;
};

/* A session waiting for the same check another session started. */
struct auth_waiter {
	struct mg_session	*s;	/* referenced until its callback ran */
	mg_auth_cb		 cb;
	struct auth_waiter	*next;
};

struct auth_req {
	uv_work_t		 work;		/* work.data == this */
	struct mg_gateway	*gw;
	struct auth_req		*next;		/* in-flight list */
	uint8_t			 key[32];	/* cache key */
	enum mg_proto		 proto;
	struct auth_waiter	*waiters;	/* the first one started the check */
	int			 cached;	/* cache hint below is valid */
	char			 cached_user[MG_NAME_MAX];
	int64_t			 cached_gen;
	char			 login[MG_NAME_MAX];	/* as typed: user, or user+provider */
	char			 password[MG_NAME_MAX];	/* wiped right after checking */
	size_t			 plen;
	char			 client[MG_ADDR_MAX];
	struct mg_auth_result	 res;
};

struct mg_auth_state {
	uint8_t			 proc_key[32];	/* per process: cache keys mean nothing elsewhere */
	struct auth_cache_slot	*cache;		/* AUTH_CACHE_SLOTS entries */
	struct auth_req		*inflight;	/* checks under way, for sharing */
};

static void	auth_work_cb(uv_work_t *);
static void	auth_after_cb(uv_work_t *, int);

int
mg_auth_init(struct mg_gateway *gw)
{
	struct mg_auth_state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	if ((st->cache = calloc(AUTH_CACHE_SLOTS, sizeof(*st->cache))) == NULL ||
	    mg_random(st->proc_key, sizeof(st->proc_key)) == -1) {
		free(st->cache);
		free(st);
		return -1;
	}
	gw->auth = st;
	return 0;
}

void
mg_auth_free(struct mg_gateway *gw)
{
	if (gw->auth == NULL)
		return;
	OPENSSL_cleanse(gw->auth->cache, AUTH_CACHE_SLOTS * sizeof(*gw->auth->cache));
	free(gw->auth->cache);
	OPENSSL_cleanse(gw->auth, sizeof(*gw->auth));
	free(gw->auth);
	gw->auth = NULL;
}

void
mg_auth_cache_clear(struct mg_gateway *gw)
{
	if (gw->auth != NULL)
		OPENSSL_cleanse(gw->auth->cache, AUTH_CACHE_SLOTS * sizeof(*gw->auth->cache));
}

static struct auth_cache_slot *
auth_slot(struct mg_gateway *gw, const uint8_t key[32])
{
	unsigned i = ((unsigned)key[0] << 8 | key[1]) % AUTH_CACHE_SLOTS;

	return &gw->auth->cache[i];
}

static void
auth_set(struct auth_req *a, enum mg_auth_status st, const char *reason, const char *log_reason)
{
	a->res.status = st;
	snprintf(a->res.reason, sizeof(a->res.reason), "%.159s", reason);
	snprintf(a->res.log_reason, sizeof(a->res.log_reason), "%.159s", log_reason ? log_reason : reason);
}

/*
 * Opens the account's secret with the gateway's keyring. A secret sealed
 * under a key this process has not seen (a rotation is under way) makes it
 * read the ring from disk again, once.
 */
static long
auth_unseal(struct auth_req *a, const struct mg_account *acct, char *err, size_t errlen)
{
	struct mg_gateway	*gw = a->gw;
	struct mg_keyring	*ring;
	uint8_t			 aad[2 * MG_NAME_MAX + 16], id[4];
	int			 aadlen, reloaded = 0;
	long			 n;

	aadlen = mg_account_aad(acct->user, acct->provider, (int)acct->kind, aad, sizeof(aad));
	if (aadlen < 0 || mg_sealed_key_id(acct->sealed, acct->sealed_len, id) == -1) {
		snprintf(err, errlen, "malformed sealed secret");
		return -1;
	}
	if ((ring = malloc(sizeof(*ring))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&gw->ring_lock);
	if (mg_keyring_find(&gw->ring, id) == NULL) {
		if (mg_keyring_load(gw->cfg->master_key.path, ring, err, errlen) == 0) {
			mg_keyring_wipe(&gw->ring);
			gw->ring = *ring;
			reloaded = 1;
		}
	}
	*ring = gw->ring;
	pthread_mutex_unlock(&gw->ring_lock);
	if (reloaded)
		mg_log_info(0, "keyring reloaded keys=%d", ring->n);
	n = mg_keyring_unseal(ring, aad, (size_t)aadlen, acct->sealed, acct->sealed_len,
	    (uint8_t *)a->res.secret, sizeof(a->res.secret), err, errlen);
	mg_keyring_wipe(ring);
	free(ring);
	return n;
}

/*
 * Runs in the thread pool. Touches only the request, the store (safe from
 * several threads), the keyring under its lock and read-only gateway state.
 */
static void
auth_work_cb(uv_work_t *w)
{
	struct auth_req			*a = w->data;
	struct mg_gateway		*gw = a->gw;
	struct mg_user			 u;
	struct mg_device		 dev;
	struct mg_account		*acct = NULL;
	const struct mg_provider_cfg	*pcfg;
	const char			*suffix = NULL, *provider;
	char				 err[MG_ERRLEN], name[MG_NAME_MAX], devhash[MG_DEVHASH_LEN + 1];
	unsigned			 scopes = MG_SCOPE_ALL;
	int				 r, ok = 0, is_device = 0;
	long				 n;

	memset(&u, 0, sizeof(u));
	memset(&dev, 0, sizeof(dev));
	a->res.hash = "none";
	snprintf(name, sizeof(name), "%s", a->login);
	r = mg_store_user_get(gw->store, name, &u, err, sizeof(err));
	if (r == 0) {
		/* "user+provider" picks one of the user's accounts. */
		char *plus = strrchr(name, '+');

		if (plus != NULL && plus != name && plus[1] != '\0') {
			*plus = '\0';
			suffix = a->login + (plus - name) + 1;
			r = mg_store_user_get(gw->store, name, &u, err, sizeof(err));
		}
	}
	if (r == -1) {
		mg_log_warn(0, "auth store error=\"%s\"", err);
		auth_set(a, MG_AUTH_TEMPFAIL, "credential store unavailable", NULL);
		goto out;
	}
	if (r == 0) {
		/* An unknown user costs the slow hash a known one does. */
		(void)mg_password_verify(a->password, gw->dummy_hash);
		a->res.hash = "slow";
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "unknown user");
		goto out;
	}
	if (u.disabled) {
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "user disabled");
		goto out;
	}

	/*
	 * A cached verification of the user's own password stands only while
	 * the user's auth_gen has not moved and password login is allowed.
	 */
	if (a->cached && strcmp(a->cached_user, u.name) == 0 && a->cached_gen == u.auth_gen &&
	    u.password_login) {
		ok = 1;
		a->res.hash = "cached";
	}
	if (!ok) {
		if (mg_device_hash(&gw->devkey, u.name, strlen(u.name), a->password, a->plen, devhash) == -1) {
			auth_set(a, MG_AUTH_TEMPFAIL, "internal error", "device hash failed");
			goto out;
		}
		r = mg_store_device_find(gw->store, u.name, devhash, &dev, err, sizeof(err));
		if (r == -1) {
			auth_set(a, MG_AUTH_TEMPFAIL, "credential store unavailable", NULL);
			goto out;
		}
		if (r == 1) {
			ok = is_device = 1;
			a->res.hash = "device";
		} else if (!u.password_login) {
			auth_set(a, MG_AUTH_FAIL, "invalid credentials", "password login disabled for the user");
			goto out;
		} else {
			ok = mg_password_verify(a->password, u.hash) == 1;
			a->res.hash = "slow";
			__atomic_add_fetch(&gw->slow_hashes, 1, __ATOMIC_RELAXED);
			if (!ok) {
				auth_set(a, MG_AUTH_FAIL, "invalid credentials", "wrong password");
				goto out;
			}
		}
	}
	OPENSSL_cleanse(a->password, sizeof(a->password));
	snprintf(a->res.user, sizeof(a->res.user), "%s", u.name);
	a->res.auth_gen = u.auth_gen;
	if (is_device) {
		snprintf(a->res.device, sizeof(a->res.device), "%s", dev.label);
		scopes = dev.scopes;
		(void)mg_store_device_touch(gw->store, u.name, dev.label, time(NULL), a->client, err,
		    sizeof(err));
	}
	if ((scopes & (1u << a->proto)) == 0) {
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "device not allowed for this protocol");
		goto out;
	}

	if ((acct = calloc(1, sizeof(*acct))) == NULL) {
		auth_set(a, MG_AUTH_TEMPFAIL, "out of memory", NULL);
		goto out;
	}
	provider = suffix != NULL ? suffix : dev.account[0] != '\0' ? dev.account : NULL;
	r = mg_store_account_get(gw->store, u.name, provider, acct, err, sizeof(err));
	if (r == -1) {
		mg_log_warn(0, "auth store error=\"%s\"", err);
		auth_set(a, MG_AUTH_TEMPFAIL, "credential store unavailable", NULL);
		goto out;
	}
	if (r == 0) {
		auth_set(a, MG_AUTH_TEMPFAIL, provider != NULL ? "no such provider account is set up for this user" :
		    "no provider account is set up for this user", NULL);
		goto out;
	}
	snprintf(a->res.provider, sizeof(a->res.provider), "%s", acct->provider);
	snprintf(a->res.login, sizeof(a->res.login), "%s", acct->login);
	pcfg = mg_config_provider(gw->cfg, acct->provider);
	if (pcfg == NULL) {
		auth_set(a, MG_AUTH_TEMPFAIL, "the account's provider is not configured on this gateway", NULL);
		goto out;
	}
	if (!pcfg->ep[a->proto].present) {
		auth_set(a, MG_AUTH_TEMPFAIL, "the provider has no endpoint for this protocol", NULL);
		goto out;
	}
	if (acct->kind != MG_SECRET_PASSWORD) {
		auth_set(a, MG_AUTH_TEMPFAIL, "OAuth2 accounts are not supported yet", NULL);
		goto out;
	}
	n = auth_unseal(a, acct, err, sizeof(err));
	if (n < 0) {
		mg_log_warn(0, "auth unseal user=%s provider=%s error=\"%s\"", u.name, acct->provider, err);
		auth_set(a, MG_AUTH_TEMPFAIL, "stored secret cannot be opened (master key?)", err);
		goto out;
	}
	a->res.secret_len = (size_t)n;
	/* A secret goes into protocol lines upstream: it may never end one early. */
	if (memchr(a->res.secret, '\r', (size_t)n) != NULL || memchr(a->res.secret, '\n', (size_t)n) != NULL ||
	    memchr(a->res.secret, '\0', (size_t)n) != NULL) {
		OPENSSL_cleanse(a->res.secret, sizeof(a->res.secret));
		a->res.secret_len = 0;
		auth_set(a, MG_AUTH_TEMPFAIL, "the stored secret is unusable", NULL);
		goto out;
	}
	a->res.kind = acct->kind;
	auth_set(a, MG_AUTH_OK, "ok", NULL);
out:
	OPENSSL_cleanse(a->password, sizeof(a->password));
	OPENSSL_cleanse(&u, sizeof(u));
	if (acct != NULL) {
		OPENSSL_cleanse(acct, sizeof(*acct));
		free(acct);
	}
}

static void
auth_after_cb(uv_work_t *w, int status)
{
	struct auth_req		*a = w->data, **pp;
	struct mg_gateway	*gw = a->gw;
	struct auth_waiter	*wt, *next;
	struct auth_cache_slot	*slot;
	const char		*hash = a->res.hash;

	for (pp = &gw->auth->inflight; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	if (status != 0)
		auth_set(a, MG_AUTH_TEMPFAIL, "credential check cancelled", NULL);
	/*
	 * Remember who a verified password belongs to, for the next logins,
	 * for cache_ttl from this verification (a hit does not extend it). A
	 * device password is not cached: its check is one indexed lookup
	 * already, what a cache hit costs too.
	 */
	if (a->res.user[0] != '\0' && a->res.device[0] == '\0' && gw->cfg->auth_cache_ttl > 0 &&
	    strcmp(hash, "slow") == 0 &&
	    (a->res.status == MG_AUTH_OK || a->res.status == MG_AUTH_TEMPFAIL)) {
		slot = auth_slot(gw, a->key);
		memcpy(slot->key, a->key, sizeof(slot->key));
		slot->expires = uv_now(gw->loop) + (uint64_t)gw->cfg->auth_cache_ttl * 1000;
		snprintf(slot->user, sizeof(slot->user), "%s", a->res.user);
		slot->auth_gen = a->res.auth_gen;
	}
	for (wt = a->waiters; wt != NULL; wt = next) {
		next = wt->next;
		a->res.hash = wt == a->waiters ? hash : "shared";
		if (!wt->s->closing)
			wt->cb(wt->s, &a->res);
		mg_session_unref(wt->s);
		free(wt);
	}
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

int
mg_auth_start(struct mg_session *s, enum mg_proto proto, const char *user, size_t ulen,
    const char *password, size_t plen, mg_auth_cb cb)
{
	struct mg_gateway	*gw = s->gw;
	struct auth_req		*a, *x;
	struct auth_waiter	*wt;
	struct auth_cache_slot	*slot;
	uint8_t			 key[32];

	if (ulen == 0 || ulen >= MG_NAME_MAX || plen == 0 || plen >= MG_NAME_MAX ||
	    memchr(user, '\0', ulen) != NULL || memchr(password, '\0', plen) != NULL)
		return -1;
	if (mg_keyed_digest(gw->auth->proc_key, user, ulen, password, plen, key) == -1)
		return -1;
	if ((wt = calloc(1, sizeof(*wt))) == NULL)
		return -1;
	wt->s = s;
	wt->cb = cb;
	/* The same credential is being checked already: wait for that answer. */
	for (x = gw->auth->inflight; x != NULL; x = x->next) {
		if (x->proto == proto && CRYPTO_memcmp(x->key, key, sizeof(key)) == 0) {
			wt->next = x->waiters->next;
			x->waiters->next = wt;
			mg_session_ref(s);
			OPENSSL_cleanse(key, sizeof(key));
			return 0;
		}
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		free(wt);
		return -1;
	}
	a->work.data = a;
	a->gw = gw;
	a->proto = proto;
	a->waiters = wt;
	memcpy(a->key, key, sizeof(key));
	memcpy(a->login, user, ulen);
	memcpy(a->password, password, plen);
	a->plen = plen;
	snprintf(a->client, sizeof(a->client), "%s", s->peer);
	slot = auth_slot(gw, key);
	if (slot->expires > uv_now(gw->loop) && CRYPTO_memcmp(slot->key, key, sizeof(key)) == 0) {
		a->cached = 1;
		snprintf(a->cached_user, sizeof(a->cached_user), "%s", slot->user);
		a->cached_gen = slot->auth_gen;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (uv_queue_work(gw->loop, &a->work, auth_work_cb, auth_after_cb) != 0) {
		OPENSSL_cleanse(a, sizeof(*a));
		free(a);
		free(wt);
		return -1;
	}
	a->next = gw->auth->inflight;
	gw->auth->inflight = a;
	mg_session_ref(s);
	return 0;
}
