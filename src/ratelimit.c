/*
 * ratelimit.c - see ratelimit.h.
 *
 * Each table is an open-addressing hash of fixed size keyed by a short
 * string. Entries whose counts are zero and whose failures are older than
 * the window are free to reuse; when a probe finds no free slot, the
 * stalest entry in its probe run is reused, so a flood of new addresses
 * cannot grow memory, only forget old failures sooner.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define LIM_SLOTS	16384	/* per table, a power of two */
#define LIM_PROBE	16	/* slots looked at per lookup */
#define LIM_KEY		256	/* addresses and user names (bytes incl. NUL) */

struct lim_entry {
	char		key[LIM_KEY];
	uint32_t	conns;		/* open connections (addresses) or sessions (users) */
	uint32_t	failures;	/* failed logins within the window */
	uint64_t	last_fail;	/* seconds */
	uint64_t	blocked_until;	/* seconds; addresses only */
	int		used;
};

struct mg_limits {
	pthread_mutex_t		 mu;
	const struct mg_config	*cfg;
	uint64_t		 conns;		/* all open connections */
	struct lim_entry	*addrs;		/* LIM_SLOTS */
	struct lim_entry	*users;		/* LIM_SLOTS */
};

struct mg_limits *
mg_limits_new(const struct mg_config *cfg)
{
	struct mg_limits *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->addrs = calloc(LIM_SLOTS, sizeof(*l->addrs));
	l->users = calloc(LIM_SLOTS, sizeof(*l->users));
	if (l->addrs == NULL || l->users == NULL) {
		mg_limits_free(l);
		return NULL;
	}
	pthread_mutex_init(&l->mu, NULL);
	l->cfg = cfg;
	return l;
}

void
mg_limits_free(struct mg_limits *l)
{
	if (l == NULL)
		return;
	if (l->addrs != NULL && l->users != NULL)
		pthread_mutex_destroy(&l->mu);
	free(l->addrs);
	free(l->users);
	free(l);
}

static uint32_t
lim_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*s != '\0')
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

/* An entry forgets its failures once the window has passed since the last one. */
static void
lim_expire(const struct mg_config *cfg, struct lim_entry *e, uint64_t now)
{
	if (e->failures > 0 && now >= e->last_fail + cfg->bf_window && now >= e->blocked_until) {
		e->failures = 0;
		e->blocked_until = 0;
	}
}

static int
lim_idle(const struct mg_config *cfg, struct lim_entry *e, uint64_t now)
{
	lim_expire(cfg, e, now);
	return e->conns == 0 && e->failures == 0;
}

/*
 * Finds key's entry; with create, makes one (reusing a free or the stalest
 * slot of the probe run). NULL when absent and not created.
 */
static struct lim_entry *
lim_find(struct mg_limits *l, struct lim_entry *tab, const char *key, int create, uint64_t now)
{
	struct lim_entry	*e, *free_slot = NULL, *stalest = NULL;
	uint32_t		 h = lim_hash(key);
	int			 i;

	for (i = 0; i < LIM_PROBE; i++) {
		e = &tab[(h + (uint32_t)i) & (LIM_SLOTS - 1)];
		if (e->used && strcmp(e->key, key) == 0)
			return e;
		if (free_slot == NULL && (!e->used || lim_idle(l->cfg, e, now)))
			free_slot = e;
		else if (e->conns == 0 && (stalest == NULL || e->last_fail < stalest->last_fail))
			stalest = e;
	}
	if (!create)
		return NULL;
	/* Never an entry that counts open connections: its count would be lost. */
	e = free_slot != NULL ? free_slot : stalest != NULL ? stalest : &tab[h & (LIM_SLOTS - 1)];
	memset(e, 0, sizeof(*e));
	strncpy(e->key, key, sizeof(e->key) - 1);
	e->used = 1;
	return e;
}

enum mg_conn_verdict
mg_limits_conn_open(struct mg_limits *l, const char *addr, uint64_t now)
{
	struct lim_entry	*e;
	enum mg_conn_verdict	 v = MG_CONN_OK;

	pthread_mutex_lock(&l->mu);
	e = lim_find(l, l->addrs, addr, 1, now);
	lim_expire(l->cfg, e, now);
	if (e->blocked_until > now)
		v = MG_CONN_BLOCKED;
	else if (l->conns >= l->cfg->max_connections)
		v = MG_CONN_TOO_MANY;
	else if (e->conns >= l->cfg->max_connections_per_ip)
		v = MG_CONN_TOO_MANY_IP;
	else {
		e->conns++;
		l->conns++;
	}
	pthread_mutex_unlock(&l->mu);
	return v;
}

void
mg_limits_conn_close(struct mg_limits *l, const char *addr)
{
	struct lim_entry *e;

	pthread_mutex_lock(&l->mu);
	if ((e = lim_find(l, l->addrs, addr, 0, 0)) != NULL && e->conns > 0)
		e->conns--;
	if (l->conns > 0)
		l->conns--;
	pthread_mutex_unlock(&l->mu);
}

/* 1 s after delay_after failures, doubling with each further one, up to max_delay. */
static uint64_t
lim_delay(const struct mg_config *cfg, uint32_t failures)
{
	uint64_t	ms = 1000;
	uint32_t	i;

	if (failures < cfg->bf_delay_after || cfg->bf_max_delay == 0)
		return 0;
	for (i = cfg->bf_delay_after; i < failures && ms < (uint64_t)cfg->bf_max_delay * 1000; i++)
		ms *= 2;
	if (ms > (uint64_t)cfg->bf_max_delay * 1000)
		ms = (uint64_t)cfg->bf_max_delay * 1000;
	return ms;
}

uint64_t
mg_limits_login_failed(struct mg_limits *l, const char *addr, const char *user, uint64_t now)
{
	struct lim_entry	*e;
	uint64_t		 d1 = 0, d2 = 0;

	pthread_mutex_lock(&l->mu);
	if ((e = lim_find(l, l->addrs, addr, 1, now)) != NULL) {
		lim_expire(l->cfg, e, now);
		e->failures++;
		e->last_fail = now;
		if (e->failures >= l->cfg->bf_block_after && e->blocked_until <= now)
			e->blocked_until = now + l->cfg->bf_block_time;
		d1 = lim_delay(l->cfg, e->failures);
	}
	if (user != NULL && user[0] != '\0' && (e = lim_find(l, l->users, user, 1, now)) != NULL) {
		lim_expire(l->cfg, e, now);
		e->failures++;
		e->last_fail = now;
		d2 = lim_delay(l->cfg, e->failures);
	}
	pthread_mutex_unlock(&l->mu);
	return d1 > d2 ? d1 : d2;
}

void
mg_limits_login_ok(struct mg_limits *l, const char *user)
{
	struct lim_entry *e;

	pthread_mutex_lock(&l->mu);
	if ((e = lim_find(l, l->users, user, 0, 0)) != NULL)
		e->failures = 0;
	pthread_mutex_unlock(&l->mu);
}

int
mg_limits_user_open(struct mg_limits *l, const char *user)
{
	struct lim_entry	*e;
	int			 rc = 0;

	pthread_mutex_lock(&l->mu);
	e = lim_find(l, l->users, user, 1, 0);
	if (e->conns >= l->cfg->max_sessions_per_user)
		rc = -1;
	else
		e->conns++;
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void
mg_limits_user_close(struct mg_limits *l, const char *user)
{
	struct lim_entry *e;

	pthread_mutex_lock(&l->mu);
	if ((e = lim_find(l, l->users, user, 0, 0)) != NULL && e->conns > 0)
		e->conns--;
	pthread_mutex_unlock(&l->mu);
}
