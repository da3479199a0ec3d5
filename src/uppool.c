/*
 * uppool.c - see uppool.h.
 *
 * A kept connection goes through two states. Settling: the device's
 * LOGOUT was answered, and the provider is asked to UNSELECT (if needed)
 * and for its CAPABILITY; a login cannot take it yet. Ready: it waits, with
 * u->timer counting down timeouts.upstream_reuse, for the account's next
 * login. In both states any end of input, error, BYE, unexpected tagged
 * reply or literal closes it.
 */
#include "uppool.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "log.h"
#include "parse_imap.h"
#include "session.h"
#include "upstream.h"

/* The longest line a kept connection may send (a CAPABILITY list, an alert). */
#define UPOOL_LINE_MAX	16384

struct mg_upool {
	struct mg_upstream	*head;		/* kept connections, newest first */
	size_t			 n;		/* in the list */
	EVP_MAC_CTX		*mac;		/* HMAC-SHA256 under a key drawn at start (the template) */
};

static void	upool_unlink(struct mg_upool *, struct mg_upstream *);
static void	upool_drop(struct mg_gateway *, struct mg_upstream *, const char *);
static void	upool_read_cb(struct mg_conn *);
static void	upool_drain_cb(struct mg_conn *);
static void	upool_timer_cb(uv_timer_t *);

int
mg_upool_init(struct mg_gateway *gw)
{
	struct mg_upool	*p;
	EVP_MAC		*mac = NULL;
	uint8_t		 key[32];
	OSSL_PARAM	 params[2];
	int		 rc = -1;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (mg_random(key, sizeof(key)) == 0 && (mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL &&
	    (p->mac = EVP_MAC_CTX_new(mac)) != NULL && EVP_MAC_init(p->mac, key, sizeof(key), params) == 1)
		rc = 0;
	OPENSSL_cleanse(key, sizeof(key));
	EVP_MAC_free(mac);
	if (rc == -1) {
		EVP_MAC_CTX_free(p->mac);
		free(p);
		return -1;
	}
	gw->upool = p;
	return 0;
}

void
mg_upool_free(struct mg_gateway *gw)
{
	if (gw->upool == NULL)
		return;
	EVP_MAC_CTX_free(gw->upool->mac);
	free(gw->upool);
	gw->upool = NULL;
}

void
mg_upool_close_all(struct mg_gateway *gw, const char *why)
{
	while (gw->upool != NULL && gw->upool->head != NULL)
		upool_drop(gw, gw->upool->head, why);
}

/* One field of the key, its length first so that no two field lists give the same bytes. */
static void
upool_mac_field(EVP_MAC_CTX *m, const void *p, size_t len)
{
	uint64_t n = len;

	(void)EVP_MAC_update(m, (const unsigned char *)&n, sizeof(n));
	(void)EVP_MAC_update(m, p, len);
}

void
mg_upool_key(struct mg_gateway *gw, const struct mg_auth_result *r, uint8_t key[32])
{
	EVP_MAC_CTX	*m;
	size_t		 out = 0;

	memset(key, 0, 32);
	if (gw->upool == NULL || (m = EVP_MAC_CTX_dup(gw->upool->mac)) == NULL)
		return;		/* all zero: never kept */
	upool_mac_field(m, r->user, strlen(r->user));
	upool_mac_field(m, &r->auth_gen, sizeof(r->auth_gen));
	upool_mac_field(m, r->provider, strlen(r->provider));
	upool_mac_field(m, r->login, strlen(r->login));
	upool_mac_field(m, r->secret, r->secret_len);
	if (EVP_MAC_final(m, key, &out, 32) != 1 || out != 32)
		memset(key, 0, 32);
	EVP_MAC_CTX_free(m);
}

static int
upool_key_set(const uint8_t key[32])
{
	static const uint8_t zero[32];

	return memcmp(key, zero, 32) != 0;
}

static void
upool_unlink(struct mg_upool *p, struct mg_upstream *u)
{
	if (u->pprev != NULL)
		u->pprev->pnext = u->pnext;
	else
		p->head = u->pnext;
	if (u->pnext != NULL)
		u->pnext->pprev = u->pprev;
	u->pnext = u->pprev = NULL;
	p->n--;
}

/*
 * Closes a kept connection; it frees itself once its handles are closed.
 * One a login was waiting for hands that login on to a new connection.
 */
static void
upool_drop(struct mg_gateway *gw, struct mg_upstream *u, const char *why)
{
	mg_log_info(u->sid, "upstream kept closed host=%s reason=\"%s\" kept_ms=%llu uses=%u", u->ep->host,
	    why, (unsigned long long)(uv_now(gw->loop) - u->parked_at), u->uses);
	if (u->parked == 3) {
		mg_upstream_kept_failed(u);
		return;
	}
	upool_unlink(gw->upool, u);
	u->parked = 0;
	mg_upstream_close(u);
}

struct mg_upstream *
mg_upool_take(struct mg_gateway *gw, const uint8_t key[32])
{
	struct mg_upstream *u, *settling = NULL;

	if (gw->upool == NULL || !upool_key_set(key))
		return NULL;
	for (u = gw->upool->head; u != NULL; u = u->pnext) {
		if (CRYPTO_memcmp(u->key, key, 32) != 0)
			continue;
		if (u->parked == 2) {
			upool_unlink(gw->upool, u);
			u->parked = 0;
			uv_timer_stop(&u->timer);
			return u;
		}
		settling = u;
	}
	if ((u = settling) != NULL) {
		/* Its UNSELECT or CAPABILITY is under way: one round trip, less than a new login. */
		upool_unlink(gw->upool, u);
		u->parked = 3;
	}
	return u;
}

int
mg_upool_park(struct mg_session *s, int selected)
{
	struct mg_gateway	*gw = s->gw;
	struct mg_upstream	*u = s->up, *it;
	struct mg_conn		*c;
	unsigned		 same = 0;

	/*
	 * u->lg set: the login is still ending (a LOGOUT pipelined behind the
	 * device's LOGIN reaches here from inside mg_upstream_ready(), which
	 * frees lg afterwards). That LOGOUT goes to the provider.
	 */
	if (u == NULL || gw->upool == NULL || gw->stopping || gw->cfg->timeout_reuse == 0 ||
	    !upool_key_set(u->key) || u->phase != MG_UP_READY || u->lg != NULL ||
	    gw->upool->n >= MG_UPOOL_MAX)
		return -1;
	c = &u->conn;
	if (c->eof || c->failed || c->shut || c->closing || c->wq_high)
		return -1;
	for (it = gw->upool->head; it != NULL; it = it->pnext)
		if (memcmp(it->key, u->key, 32) == 0)
			same++;
	if (same >= MG_UPOOL_PER_KEY)
		return -1;
	if ((u->lg = calloc(1, sizeof(*u->lg))) == NULL)
		return -1;
	if (mg_up_imap_park(u, selected) == -1) {
		free(u->lg);
		u->lg = NULL;
		return -1;
	}
	/* From here on the upstream is the pool's: the session only counts its bytes. */
	s->up_bytes_in += c->bytes_in;
	s->up_bytes_out += c->bytes_out;
	c->bytes_in = c->bytes_out = 0;
	s->up = NULL;
	u->s = NULL;
	u->sid = s->id;
	u->parked = 1;
	u->parked_at = uv_now(gw->loop);
	c->on_read = upool_read_cb;
	c->on_drain = upool_drain_cb;
	u->pprev = NULL;
	u->pnext = gw->upool->head;
	if (u->pnext != NULL)
		u->pnext->pprev = u;
	gw->upool->head = u;
	gw->upool->n++;
	/* UNSELECT and CAPABILITY get as long as a login would. */
	uv_timer_start(&u->timer, upool_timer_cb, (uint64_t)gw->cfg->timeout_connect * 1000, 0);
	mg_session_unref(s);		/* the upstream's reference */
	mg_conn_resume(c);
	return 0;
}

static void
upool_read_cb(struct mg_conn *c)
{
	struct mg_upstream	*u = c->owner;
	struct mg_gateway	*gw;
	char			 line[UPOOL_LINE_MAX + 1];
	const char		*why = NULL;
	size_t			 ll, cons;
	int			 r;

	if (u->parked == 0)
		return;		/* being closed */
	gw = u->gw;
	for (;;) {
		r = mg_line_find(c->in, c->in_len, UPOOL_LINE_MAX, &ll, &cons);
		if (r == 0)
			break;
		if (r == -1) {
			upool_drop(gw, u, "overlong line");
			return;
		}
		memcpy(line, c->in, ll);
		line[ll] = '\0';
		mg_conn_consume(c, cons);
		r = mg_up_imap_parked_line(u, line, ll, &why);
		if (r == -1) {
			upool_drop(gw, u, why);
			return;
		}
		if (r == 1 && u->parked == 3) {
			mg_upstream_kept_ready(u);
			return;
		}
		if (r == 1) {
			u->parked = 2;
			uv_timer_start(&u->timer, upool_timer_cb, (uint64_t)gw->cfg->timeout_reuse * 1000, 0);
			mg_log_info(u->sid, "upstream kept host=%s for_s=%u uses=%u", u->ep->host,
			    gw->cfg->timeout_reuse, u->uses);
		}
	}
	if (c->eof || c->failed)
		upool_drop(gw, u, c->failed ? c->error : "provider closed");
}

static void
upool_drain_cb(struct mg_conn *c)
{
	(void)c;
}

static void
upool_timer_cb(uv_timer_t *t)
{
	struct mg_upstream *u = t->data;

	if (u->parked == 0)
		return;
	upool_drop(u->gw, u, u->parked == 2 ? "not used in time" : "provider did not answer in time");
}
