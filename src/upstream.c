/*
 * upstream.c - see upstream.h.
 */
#include "upstream.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "parse_imap.h"
#include "session.h"
#include "uppool.h"

/* The longest line a provider may send during the login (replies, capabilities). */
#define MG_UP_LINE_MAX	16384

static void	up_gai_cb(uv_getaddrinfo_t *, int, struct addrinfo *);
static void	up_timer_cb(uv_timer_t *);
static void	up_timer_close_cb(uv_handle_t *);
static void	up_connect_cb(struct mg_conn *, int);
static void	up_handshake_cb(struct mg_conn *, int);
static void	up_read_cb(struct mg_conn *);
static void	up_close_cb(struct mg_conn *);
static void	up_try_connect(struct mg_upstream *);
static void	up_maybe_free(struct mg_upstream *);
static void	up_login_free(struct mg_upstream *);
static void	up_parse_literal(struct mg_upstream *, char *, size_t);
static int	up_start(struct mg_session *, enum mg_proto, const struct mg_auth_result *, mg_upstream_cb,
		    int);
static void	up_attach(struct mg_upstream *, struct mg_session *, mg_upstream_cb,
		    const struct mg_auth_result *);

int
mg_upstream_start(struct mg_session *s, enum mg_proto proto, const struct mg_auth_result *r,
    mg_upstream_cb done)
{
	return up_start(s, proto, r, done, 1);
}

static int
up_start(struct mg_session *s, enum mg_proto proto, const struct mg_auth_result *r, mg_upstream_cb done,
    int pool)
{
	const struct mg_provider_cfg	*pcfg;
	struct mg_upstream		*u;
	struct addrinfo			 hints;
	char				 port[8];
	SSL_CTX				*ctx;
	SSL_SESSION			**slot;
	struct mg_resolved		**addrs;

	if ((ctx = mg_gateway_client_ctx(s->gw, r->provider, proto, &pcfg, &slot, &addrs)) == NULL ||
	    !pcfg->ep[proto].present)
		return -1;
	if (r->secret_len >= MG_SECRET_MAX)
		return -1;
	if (proto == MG_PROTO_IMAP && s->gw->cfg->timeout_reuse > 0) {
		uint8_t key[32];

		mg_upool_key(s->gw, r, key);
		if (pool && (u = mg_upool_take(s->gw, key)) != NULL) {
			up_attach(u, s, done, r);
			return 0;
		}
		if ((u = calloc(1, sizeof(*u))) == NULL)
			return -1;
		memcpy(u->key, key, sizeof(key));
	} else if ((u = calloc(1, sizeof(*u))) == NULL)
		return -1;
	if ((u->lg = calloc(1, sizeof(*u->lg))) == NULL) {
		free(u);
		return -1;
	}
	u->s = s;
	u->gw = s->gw;
	u->ep = &pcfg->ep[proto];
	u->ctx = ctx;
	u->resume = slot;
	u->addrs = addrs;
	u->done = done;
	u->proto = proto == MG_PROTO_POP3 ? &mg_up_pop3 : proto == MG_PROTO_SMTP ? &mg_up_smtp : &mg_up_imap;
	snprintf(u->lg->login, sizeof(u->lg->login), "%s", r->login);
	memcpy(u->lg->secret, r->secret, r->secret_len);
	u->lg->secret_len = r->secret_len;

	if (uv_timer_init(s->gw->loop, &u->timer) != 0)
		goto fail;
	u->timer.data = u;
	u->handles++;
	mg_session_ref(s);
	s->up = u;
	uv_timer_start(&u->timer, up_timer_cb, (uint64_t)s->gw->cfg->timeout_connect * 1000, 0);

	/* Addresses known and fresh: no lookup, no thread-pool round trip. */
	if (*addrs == NULL)
		up_parse_literal(u, port, sizeof(port));
	if (*addrs != NULL && (*addrs)->expires > uv_now(s->gw->loop)) {
		u->res = *addrs;
		u->res->refs++;
		u->ai_next = u->res->ai;
		u->phase = MG_UP_CONNECT;
		up_try_connect(u);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%u", u->ep->port);
	u->phase = MG_UP_RESOLVE;
	/* Allocated only for a lookup, which the address cache makes rare. */
	if ((u->gai = malloc(sizeof(*u->gai))) == NULL) {
		mg_upstream_fail(u, "out of memory");
		return 0;
	}
	u->gai->data = u;
	if (uv_getaddrinfo(s->gw->loop, u->gai, up_gai_cb, u->ep->host, port, &hints) != 0) {
		free(u->gai);
		u->gai = NULL;
		mg_upstream_fail(u, "cannot resolve the provider's host name");
		return 0;
	}
	u->handles++;
	u->gai_pending = 1;
	return 0;
fail:
	up_login_free(u);
	free(u);
	return -1;
}

/*
 * A kept connection (uppool.h), logged in and back in the authenticated
 * state, serves session s. When it is ready the login ends at once, with
 * the capabilities the provider gave when it was kept. When it is still
 * settling the login waits for it, with what a new connection would need
 * in case it fails (wiped once it is ready).
 */
static void
up_attach(struct mg_upstream *u, struct mg_session *s, mg_upstream_cb done, const struct mg_auth_result *r)
{
	u->s = s;
	u->done = done;
	mg_session_ref(s);
	s->up = u;
	if (u->parked == 3) {
		mg_log_info(s->id, "upstream waiting for kept host=%s from=%08x", u->ep->host, u->sid);
		snprintf(u->lg->login, sizeof(u->lg->login), "%s", r->login);
		memcpy(u->lg->secret, r->secret, r->secret_len);
		u->lg->secret_len = r->secret_len;
		return;
	}
	mg_upstream_kept_ready(u);
}

void
mg_upstream_kept_ready(struct mg_upstream *u)
{
	struct mg_session *s = u->s;

	mg_log_info(s->id, "upstream reused host=%s addr=%s kept_ms=%llu uses=%u from=%08x", u->ep->host,
	    u->addr, (unsigned long long)(uv_now(s->gw->loop) - u->parked_at), u->uses + 1, u->sid);
	u->parked = 0;
	u->conn.on_read = up_read_cb;
	u->conn.on_drain = NULL;
	u->phase = MG_UP_LOGIN;
	mg_upstream_ready(u);
}

void
mg_upstream_kept_failed(struct mg_upstream *u)
{
	struct mg_session	*s = u->s;
	struct mg_auth_result	*r;
	mg_upstream_cb		 done = u->done;

	u->parked = 0;
	s->up = NULL;
	u->s = NULL;
	mg_upstream_close(u);		/* its lg (the secret copy) is wiped when it is freed */
	if ((r = calloc(1, sizeof(*r))) == NULL || s->auth_user == NULL || s->provider == NULL) {
		free(r);
		done(s, -1, "out of memory");
	} else {
		r->status = MG_AUTH_OK;
		snprintf(r->user, sizeof(r->user), "%s", s->auth_user);
		r->auth_gen = s->auth_gen;
		snprintf(r->provider, sizeof(r->provider), "%s", s->provider);
		snprintf(r->login, sizeof(r->login), "%s", u->lg->login);
		memcpy(r->secret, u->lg->secret, u->lg->secret_len);
		r->secret_len = u->lg->secret_len;
		mg_upstream_wipe(u);
		if (up_start(s, MG_PROTO_IMAP, r, done, 0) == -1)
			done(s, -1, "cannot reach the provider");
		OPENSSL_cleanse(r, sizeof(*r));
		free(r);
	}
	mg_session_unref(s);		/* the kept connection's reference */
}

void
mg_resolved_unref(struct mg_resolved *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	freeaddrinfo(r->ai);
	free(r);
}

/* Puts res (its reference given) in the endpoint's slot, in place of what was there. */
static struct mg_resolved *
up_resolved_new(struct mg_upstream *u, struct addrinfo *ai, uint64_t expires)
{
	struct mg_resolved *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->refs = 1;		/* the slot's */
	r->expires = expires;
	r->ai = ai;
	mg_resolved_unref(*u->addrs);
	*u->addrs = r;
	return r;
}

/*
 * A host that is an address literal needs no lookup: parsed here once (no
 * I/O with AI_NUMERICHOST), it stays in the slot for good.
 */
static void
up_parse_literal(struct mg_upstream *u, char *port, size_t portlen)
{
	struct addrinfo	 hints, *res = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, portlen, "%u", u->ep->port);
	if (getaddrinfo(u->ep->host, port, &hints, &res) != 0)
		return;		/* a name: looked up by the caller */
	if (up_resolved_new(u, res, UINT64_MAX) == NULL)
		freeaddrinfo(res);
}

static void
up_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct mg_upstream	*u = req->data;
	struct addrinfo		*ai;
	int			 n;

	u->handles--;
	u->gai_pending = 0;
	free(u->gai);
	u->gai = NULL;
	if (u->phase != MG_UP_RESOLVE) {
		/* Cancelled or failed meanwhile. */
		if (res != NULL)
			uv_freeaddrinfo(res);
		up_maybe_free(u);
		return;
	}
	if (status != 0) {
		mg_log_warn(u->s->id, "upstream resolve host=%s error=\"%s\"", u->ep->host,
		    uv_strerror(status));
		mg_upstream_fail(u, "cannot resolve the provider's host name");
		return;
	}
	for (n = 0, ai = res; ai != NULL; ai = ai->ai_next)
		n++;
	mg_log_info(u->s->id, "upstream resolved host=%s addresses=%d cached_s=%d", u->ep->host, n,
	    MG_RESOLVE_TTL_MS / 1000);
	/* Kept in the endpoint's slot for the next logins too. */
	if ((u->res = up_resolved_new(u, res, uv_now(u->s->gw->loop) + MG_RESOLVE_TTL_MS)) == NULL) {
		uv_freeaddrinfo(res);
		mg_upstream_fail(u, "out of memory");
		return;
	}
	u->res->refs++;
	u->ai_next = u->res->ai;
	u->phase = MG_UP_CONNECT;
	up_try_connect(u);
}

/* Tries the next resolved address; fails the login when none is left. */
static void
up_try_connect(struct mg_upstream *u)
{
	struct addrinfo	*ai;
	int		 r;

	while ((ai = u->ai_next) != NULL) {
		u->ai_next = ai->ai_next;
		if (ai->ai_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)ai->ai_addr, u->addr, sizeof(u->addr));
		else if (ai->ai_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, u->addr, sizeof(u->addr));
		else
			continue;
		if ((r = mg_conn_init(&u->conn, u->s->gw->loop, u)) != 0)
			break;
		u->handles++;
		u->conn.on_connect = up_connect_cb;
		u->conn.on_handshake = up_handshake_cb;
		u->conn.on_read = up_read_cb;
		u->conn.on_close = up_close_cb;
		u->conn.resume = u->resume;
		u->conn.wipe = 1;	/* login lines with the secret pass through it */
		if ((r = mg_conn_connect(&u->conn, ai->ai_addr)) == 0)
			return;
		mg_log_info(u->s->id, "upstream connect addr=%s port=%u error=\"%s\"", u->addr,
		    u->ep->port, uv_strerror(r));
		u->retrying = 1;
		mg_conn_close(&u->conn);
		return;
	}
	/* None of them took the connection: look the name up again next time. */
	if (u->res != NULL && *u->addrs == u->res && u->res->expires != UINT64_MAX) {
		mg_resolved_unref(*u->addrs);
		*u->addrs = NULL;
	}
	mg_upstream_fail(u, "cannot connect to the provider");
}

static void
up_connect_cb(struct mg_conn *c, int status)
{
	struct mg_upstream *u = c->owner;

	if (u->phase != MG_UP_CONNECT)
		return;
	if (status != 0) {
		mg_log_info(u->s->id, "upstream connect addr=%s port=%u error=\"%s\"", u->addr,
		    u->ep->port, uv_strerror(status));
		u->retrying = 1;
		mg_conn_close(&u->conn);
		return;
	}
	mg_resolved_unref(u->res);
	u->res = NULL;
	u->ai_next = NULL;
	if (u->ep->tls == MG_TLS_IMPLICIT) {
		u->phase = MG_UP_TLS;
		if (mg_conn_starttls(&u->conn, u->ctx, 0, u->ep->host) == -1)
			mg_upstream_fail(u, "TLS with the provider failed");
		return;
	}
	u->phase = MG_UP_LOGIN;
	u->proto->connected(u);
}

void
mg_upstream_starttls(struct mg_upstream *u)
{
	u->tls_wait = 1;
	if (mg_conn_starttls(&u->conn, u->ctx, 0, u->ep->host) == -1) {
		mg_log_warn(u->s->id, "upstream tls addr=%s error=\"%s\"", u->addr, u->conn.error);
		mg_upstream_fail(u, "TLS with the provider failed");
	}
}

static void
up_handshake_cb(struct mg_conn *c, int status)
{
	struct mg_upstream *u = c->owner;

	if (u->phase != MG_UP_TLS && u->phase != MG_UP_LOGIN)
		return;
	if (status != 0) {
		mg_log_warn(u->s->id, "upstream tls host=%s addr=%s error=\"%s\"", u->ep->host,
		    u->addr, c->error);
		mg_upstream_fail(u, "the provider's TLS certificate was not accepted");
		return;
	}
	mg_log_info(u->s->id, "upstream connected host=%s addr=%s port=%u tls=%s cipher=%s resumed=%s "
	    "chain=%s", u->ep->host, u->addr, u->ep->port, mg_tls_version(&c->tls),
	    mg_tls_cipher(&c->tls), mg_tls_resumed(&c->tls) ? "yes" : "no", mg_tls_chain_name(&c->tls));
	if (u->phase == MG_UP_TLS) {
		u->phase = MG_UP_LOGIN;
		u->proto->connected(u);
	} else {
		u->tls_wait = 0;
		u->proto->tls_done(u);
	}
}

static void
up_read_cb(struct mg_conn *c)
{
	struct mg_upstream *u = c->owner;

	if (u->phase != MG_UP_LOGIN)
		return;
	u->proto->on_read(u);
}

static void
up_timer_cb(uv_timer_t *t)
{
	struct mg_upstream *u = t->data;

	mg_upstream_fail(u, "the provider did not answer in time");
}

void
mg_upstream_fail(struct mg_upstream *u, const char *fmt, ...)
{
	struct mg_session	*s = u->s;
	va_list			 ap;
	char			 reason[160];

	if (u->phase == MG_UP_READY || u->phase == MG_UP_FAILED)
		return;
	u->phase = MG_UP_FAILED;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	mg_upstream_wipe(u);
	mg_upstream_close(u);
	s->up = NULL;
	u->done(s, -1, reason);
	up_login_free(u);
}

void
mg_upstream_ready(struct mg_upstream *u)
{
	if (u->phase != MG_UP_LOGIN)
		return;
	u->phase = MG_UP_READY;
	u->uses++;
	mg_upstream_wipe(u);
	uv_timer_stop(&u->timer);
	u->done(u->s, 0, NULL);
	up_login_free(u);
}

void
mg_upstream_wipe(struct mg_upstream *u)
{
	if (u->lg == NULL)
		return;
	OPENSSL_cleanse(u->lg->secret, sizeof(u->lg->secret));
	OPENSSL_cleanse(u->lg->out, sizeof(u->lg->out));
	u->lg->nseg = u->lg->iseg = 0;
	u->lg->secret_len = 0;
}

/* The login state is not needed once done() ran: wiped and freed. */
static void
up_login_free(struct mg_upstream *u)
{
	if (u->lg == NULL)
		return;
	OPENSSL_cleanse(u->lg, sizeof(*u->lg));
	free(u->lg);
	u->lg = NULL;
}

void
mg_upstream_close(struct mg_upstream *u)
{
	u->parked = 0;		/* a kept one: uppool.c took it off its list first */
	if (u->phase != MG_UP_READY)
		u->phase = MG_UP_FAILED;
	u->retrying = 0;
	if (u->gai_pending) {
		/* A pending lookup is cancelled; its callback still runs. */
		(void)uv_cancel((uv_req_t *)u->gai);
	}
	if (!uv_is_closing((uv_handle_t *)&u->timer))
		uv_close((uv_handle_t *)&u->timer, up_timer_close_cb);
	mg_conn_close(&u->conn);
}

static void
up_timer_close_cb(uv_handle_t *h)
{
	struct mg_upstream *u = h->data;

	u->handles--;
	up_maybe_free(u);
}

static void
up_close_cb(struct mg_conn *c)
{
	struct mg_upstream *u = c->owner;

	u->handles--;
	if (u->retrying && u->phase == MG_UP_CONNECT) {
		u->retrying = 0;
		up_try_connect(u);
		return;
	}
	up_maybe_free(u);
}

static void
up_maybe_free(struct mg_upstream *u)
{
	struct mg_session *s = u->s;

	if (u->handles > 0)
		return;
	/* A kept connection has no session: its last one let go of it when it was kept. */
	if (s != NULL) {
		s->up_bytes_in += u->conn.bytes_in;
		s->up_bytes_out += u->conn.bytes_out;
		if (s->up == u)
			s->up = NULL;
	}
	mg_resolved_unref(u->res);
	up_login_free(u);
	OPENSSL_cleanse(u, sizeof(*u));
	free(u);
	if (s != NULL)
		mg_session_unref(s);
}

void
mg_upstream_read_lines(struct mg_upstream *u, mg_upstream_line_cb cb)
{
	struct mg_conn	*c = &u->conn;
	char		 line[MG_UP_LINE_MAX + 1];
	size_t		 ll, cons;
	int		 r;

	while (u->phase == MG_UP_LOGIN && !u->tls_wait) {
		r = mg_line_find(c->in, c->in_len, MG_UP_LINE_MAX, &ll, &cons);
		if (r == 0)
			break;
		if (r == -1) {
			mg_upstream_fail(u, "the provider sent an overlong line");
			return;
		}
		memcpy(line, c->in, ll);
		line[ll] = '\0';
		mg_conn_consume(c, cons);
		cb(u, line, ll);
	}
	if (u->phase == MG_UP_LOGIN && (c->eof || c->failed)) {
		mg_log_warn(u->s->id, "upstream closed host=%s during=login error=\"%s\"", u->ep->host,
		    c->failed ? c->error : "eof");
		mg_upstream_fail(u, "the provider closed the connection");
	}
}

int
mg_upstream_send(struct mg_upstream *u, const char *fmt, ...)
{
	char	line[2048];
	va_list	ap;
	int	n, r = -1;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(line))
		r = mg_conn_write(&u->conn, line, (size_t)n);
	OPENSSL_cleanse(line, sizeof(line));
	if (r == -1)
		mg_upstream_fail(u, "cannot write to the provider");
	return r;
}

int
mg_upstream_may_send_secret(struct mg_upstream *u)
{
	if (u->conn.tls_on && u->conn.tls.done && !u->tls_wait)
		return 1;
	mg_upstream_fail(u, "the provider connection is not protected by TLS");
	return 0;
}
