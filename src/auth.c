/*
 * auth.c - see auth.h.
 */
#include "auth.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* What the second step of a check must hash, if anything (see auth_lookup_cb). */
enum auth_slow {
	AUTH_SLOW_NONE = 0,
	AUTH_SLOW_DUMMY,	/* an unknown user: the dummy hash, so that timing does not tell */
	AUTH_SLOW_USER		/* the user's own password against u.hash */
};

struct auth_req {
	uv_work_t		 work;		/* work.data == this; submitted once per step */
	struct mg_gateway	*gw;
	struct auth_req		*next;		/* in-flight list */
	struct auth_req		*qnext;		/* the queue of checks waiting to hash */
	enum auth_slow		 slow;		/* set by the lookup: a slow hash is still to do */
	int			 step;		/* 0: lookup; 1: slow hash and the rest */
	const char		*suffix;	/* "+provider" part of login, or NULL */
	struct mg_user		 u;		/* the user looked up in step 0, for step 1 (wiped) */
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

/*
 * Slow hashes have their own queue. The thread pool is first come, first
 * served: a crowd of failed logins (unknown users from many addresses,
 * each costing a full password hash) would otherwise queue ahead of the
 * quick lookups that cached and device-password logins need, and hold
 * them for as long as the crowd's hashes take. At most slow_max hashes
 * are in the pool at once, so the rest of its threads stay free.
 */
struct mg_auth_state {
	uint8_t			 proc_key[32];	/* per process: cache keys mean nothing elsewhere */
	struct auth_cache_slot	*cache;		/* AUTH_CACHE_SLOTS entries */
	struct auth_req		*inflight;	/* checks under way, for sharing */
	struct auth_req		*slow_head;	/* checks waiting for a hashing thread, oldest first */
	struct auth_req		*slow_tail;
	unsigned		 slow_running;	/* hashing steps in the thread pool */
	unsigned		 slow_max;
};

static void	auth_lookup_cb(uv_work_t *);
static void	auth_slow_cb(uv_work_t *);
static void	auth_after_cb(uv_work_t *, int);

/* CPUs this process may run on. */
static unsigned
auth_cpus(void)
{
	cpu_set_t	set;
	long		n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* libuv's thread pool size: UV_THREADPOOL_SIZE, or libuv's default of 4 (it caps at 1024). */
static unsigned
auth_pool_size(void)
{
	const char	*v = getenv("UV_THREADPOOL_SIZE");
	long		 n = v != NULL ? strtol(v, NULL, 10) : 0;

	if (n <= 0)
		return 4;
	return n > 1024 ? 1024 : (unsigned)n;
}

void
mg_auth_pool_setup(void)
{
	char	buf[16];
	unsigned n = auth_cpus() + 2;

	if (getenv("UV_THREADPOOL_SIZE") != NULL)
		return;
	if (n < 4)
		n = 4;
	if (n > 128)
		n = 128;
	snprintf(buf, sizeof(buf), "%u", n);
	(void)setenv("UV_THREADPOOL_SIZE", buf, 0);
}

unsigned
mg_auth_hash_threads(void)
{
	unsigned cpus = auth_cpus(), pool = auth_pool_size();

	if (pool <= 1)
		return 1;
	return cpus < pool - 1 ? cpus : pool - 1;
}

int
mg_auth_init(struct mg_gateway *gw)
{
	struct mg_auth_state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	st->slow_max = mg_auth_hash_threads();
	if ((st->cache = calloc(AUTH_CACHE_SLOTS, sizeof(*st->cache))) == NULL ||
	    mg_random(st->proc_key, sizeof(st->proc_key)) == -1) {
		free(st->cache);
		free(st);
		return -1;
	}
	gw->auth = st;
	mg_log_info(0, "auth hash_threads=%u pool_threads=%u", st->slow_max, auth_pool_size());
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
 * The end of a check whose credential was accepted (user u, found as a
 * device when dev != NULL): the account at the provider and its secret.
 */
static void
auth_finish(struct auth_req *a, const struct mg_user *u, const struct mg_device *dev)
{
	struct mg_gateway		*gw = a->gw;
	struct mg_account		*acct = NULL;
	const struct mg_provider_cfg	*pcfg;
	const char			*provider;
	char				 err[MG_ERRLEN];
	unsigned			 scopes = MG_SCOPE_ALL;
	int				 r;
	long				 n;

	OPENSSL_cleanse(a->password, sizeof(a->password));
	snprintf(a->res.user, sizeof(a->res.user), "%s", u->name);
	a->res.auth_gen = u->auth_gen;
	if (dev != NULL) {
		snprintf(a->res.device, sizeof(a->res.device), "%s", dev->label);
		scopes = dev->scopes;
		(void)mg_store_device_touch(gw->store, u->name, dev->label, time(NULL), a->client, err,
		    sizeof(err));
	}
	if ((scopes & (1u << a->proto)) == 0) {
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "device not allowed for this protocol");
		return;
	}

	if ((acct = calloc(1, sizeof(*acct))) == NULL) {
		auth_set(a, MG_AUTH_TEMPFAIL, "out of memory", NULL);
		return;
	}
	provider = a->suffix != NULL ? a->suffix :
	    dev != NULL && dev->account[0] != '\0' ? dev->account : NULL;
	r = mg_store_account_get(gw->store, u->name, provider, acct, err, sizeof(err));
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
		mg_log_warn(0, "auth unseal user=%s provider=%s error=\"%s\"", u->name, acct->provider, err);
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
	OPENSSL_cleanse(acct, sizeof(*acct));
	free(acct);
}

/*
 * Step 0, in the thread pool: look the user up. A cached verification or a
 * device password finishes the check here; a password that has to be
 * hashed (and an unknown user, who costs the same) leaves a->slow set,
 * and the loop queues step 1 for it. Touches only the request, the store
 * (safe from several threads), the keyring under its lock and read-only
 * gateway state.
 */
static void
auth_lookup_cb(uv_work_t *w)
{
	struct auth_req		*a = w->data;
	struct mg_gateway	*gw = a->gw;
	struct mg_user		*u = &a->u;
	struct mg_device	 dev;
	char			 err[MG_ERRLEN], name[MG_NAME_MAX], devhash[MG_DEVHASH_LEN + 1];
	int			 r;

	memset(&dev, 0, sizeof(dev));
	a->res.hash = "none";
	snprintf(name, sizeof(name), "%s", a->login);
	r = mg_store_user_get(gw->store, name, u, err, sizeof(err));
	if (r == 0) {
		/* "user+provider" picks one of the user's accounts. */
		char *plus = strrchr(name, '+');

		if (plus != NULL && plus != name && plus[1] != '\0') {
			*plus = '\0';
			a->suffix = a->login + (plus - name) + 1;
			r = mg_store_user_get(gw->store, name, u, err, sizeof(err));
		}
	}
	if (r == -1) {
		mg_log_warn(0, "auth store error=\"%s\"", err);
		auth_set(a, MG_AUTH_TEMPFAIL, "credential store unavailable", NULL);
		goto out;
	}
	if (r == 0) {
		a->slow = AUTH_SLOW_DUMMY;
		return;
	}
	if (u->disabled) {
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "user disabled");
		goto out;
	}

	/*
	 * A cached verification of the user's own password stands only while
	 * the user's auth_gen has not moved and password login is allowed.
	 */
	if (a->cached && strcmp(a->cached_user, u->name) == 0 && a->cached_gen == u->auth_gen &&
	    u->password_login) {
		a->res.hash = "cached";
		auth_finish(a, u, NULL);
		goto out;
	}
	if (mg_device_hash(&gw->devkey, u->name, strlen(u->name), a->password, a->plen, devhash) == -1) {
		auth_set(a, MG_AUTH_TEMPFAIL, "internal error", "device hash failed");
		goto out;
	}
	r = mg_store_device_find(gw->store, u->name, devhash, &dev, err, sizeof(err));
	if (r == -1) {
		auth_set(a, MG_AUTH_TEMPFAIL, "credential store unavailable", NULL);
		goto out;
	}
	if (r == 1) {
		a->res.hash = "device";
		auth_finish(a, u, &dev);
		goto out;
	}
	if (!u->password_login) {
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "password login disabled for the user");
		goto out;
	}
	a->slow = AUTH_SLOW_USER;
	return;
out:
	OPENSSL_cleanse(a->password, sizeof(a->password));
	OPENSSL_cleanse(u, sizeof(*u));
	OPENSSL_cleanse(&dev, sizeof(dev));
}

/* Step 1, in the thread pool, at most slow_max at once: the slow hash, then the rest. */
static void
auth_slow_cb(uv_work_t *w)
{
	struct auth_req		*a = w->data;
	struct mg_gateway	*gw = a->gw;

	a->res.hash = "slow";
	if (a->slow == AUTH_SLOW_DUMMY) {
		(void)mg_password_verify(a->password, gw->dummy_hash);
		auth_set(a, MG_AUTH_FAIL, "invalid credentials", "unknown user");
	} else {
		__atomic_add_fetch(&gw->slow_hashes, 1, __ATOMIC_RELAXED);
		if (mg_password_verify(a->password, a->u.hash) == 1)
			auth_finish(a, &a->u, NULL);
		else
			auth_set(a, MG_AUTH_FAIL, "invalid credentials", "wrong password");
	}
	OPENSSL_cleanse(a->password, sizeof(a->password));
	OPENSSL_cleanse(&a->u, sizeof(a->u));
}

/* Whether anybody still waits for this check's answer. */
static int
auth_wanted(const struct auth_req *a)
{
	const struct auth_waiter *wt;

	for (wt = a->waiters; wt != NULL; wt = wt->next) {
		if (!wt->s->closing)
			return 1;
	}
	return 0;
}

static void	auth_complete(struct auth_req *);

/*
 * Starts queued hashing steps while fewer than slow_max run. A check whose
 * sessions have all gone meanwhile ends without hashing.
 */
static void
auth_slow_pump(struct mg_gateway *gw)
{
	struct mg_auth_state	*st = gw->auth;
	struct auth_req		*a;

	while (st->slow_head != NULL && st->slow_running < st->slow_max) {
		a = st->slow_head;
		if ((st->slow_head = a->qnext) == NULL)
			st->slow_tail = NULL;
		a->qnext = NULL;
		if (!auth_wanted(a)) {
			auth_set(a, MG_AUTH_TEMPFAIL, "credential check cancelled", NULL);
			auth_complete(a);
			continue;
		}
		if (uv_queue_work(gw->loop, &a->work, auth_slow_cb, auth_after_cb) != 0) {
			auth_set(a, MG_AUTH_TEMPFAIL, "internal error", "cannot queue the password hash");
			auth_complete(a);
			continue;
		}
		st->slow_running++;
	}
}

static void
auth_after_cb(uv_work_t *w, int status)
{
	struct auth_req		*a = w->data;
	struct mg_gateway	*gw = a->gw;
	struct mg_auth_state	*st = gw->auth;

	if (a->step == 1)
		st->slow_running--;
	if (status == 0 && a->step == 0 && a->slow != AUTH_SLOW_NONE) {
		/* Queue the hashing step; the check stays in flight for sharing. */
		a->step = 1;
		if (st->slow_tail != NULL)
			st->slow_tail->qnext = a;
		else
			st->slow_head = a;
		st->slow_tail = a;
	} else {
		if (status != 0)
			auth_set(a, MG_AUTH_TEMPFAIL, "credential check cancelled", NULL);
		auth_complete(a);
	}
	auth_slow_pump(gw);
}

/* Answers every session waiting for check a, and frees it. */
static void
auth_complete(struct auth_req *a)
{
	struct mg_gateway	*gw = a->gw;
	struct auth_req		**pp;
	struct auth_waiter	*wt, *next;
	struct auth_cache_slot	*slot;
	const char		*hash = a->res.hash;

	for (pp = &gw->auth->inflight; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
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
	if (uv_queue_work(gw->loop, &a->work, auth_lookup_cb, auth_after_cb) != 0) {
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
