/*
 * session.c - listeners, the session life cycle, timeouts, and the relay.
 */
#include "session.h"

#include <arpa/inet.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "auth.h"
#include "ratelimit.h"
#include "log.h"
#include "parse_imap.h"
#include "revoke.h"
#include "store_open.h"
#include "upstream.h"
#include "uppool.h"

static void	gw_accept_cb(uv_stream_t *, int);
static void	gw_signal_cb(uv_signal_t *, int);
static void	session_client_handshake_cb(struct mg_conn *, int);
static void	session_client_read_cb(struct mg_conn *);
static void	session_client_close_cb(struct mg_conn *);
static void	session_client_drain_cb(struct mg_conn *);
static void	session_timer_cb(uv_timer_t *);
static void	session_timer_close_cb(uv_handle_t *);
static void	session_shutdown_cb(struct mg_conn *);
static void	relay_client_read_cb(struct mg_conn *);
static void	relay_up_read_cb(struct mg_conn *);
static void	relay_client_drain_cb(struct mg_conn *);
static void	relay_up_drain_cb(struct mg_conn *);
static void	relay_track_end(struct mg_session *);
static int	relay_logout(struct mg_session *, size_t);
static void	session_free(struct mg_session *);
static void	session_reject(struct mg_session *);
static void	gw_finish(struct mg_gateway *);

void
mg_session_ref(struct mg_session *s)
{
	s->refs++;
}

void
mg_session_unref(struct mg_session *s)
{
	if (--s->refs == 0)
		session_free(s);
}

static void
session_free(struct mg_session *s)
{
	struct mg_gateway	*gw = s->gw;
	uint64_t		 ms = uv_now(gw->loop) - s->started;

	mg_log_info(s->id, "%s closed user=%s reason=\"%s\" client_in=%llu client_out=%llu "
	    "upstream_in=%llu upstream_out=%llu duration_ms=%llu", s->ops->name,
	    s->user != NULL && s->user[0] ? s->user : "-", s->close_reason ? s->close_reason : "closed",
	    (unsigned long long)s->client.bytes_in, (unsigned long long)s->client.bytes_out,
	    (unsigned long long)s->up_bytes_in, (unsigned long long)s->up_bytes_out,
	    (unsigned long long)ms);
	if (s->ops->free != NULL)
		s->ops->free(s);
	if (s->conn_counted)
		mg_limits_conn_close(gw->limits, s->peer_ip);
	if (s->user_counted)
		mg_limits_user_close(gw->limits, s->auth_user);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		gw->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	gw->nsessions--;
	free(s->user);
	free(s->auth_user);
	free(s->trk);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	/*
	 * glibc keeps freed session memory for reuse; after a crowd has gone
	 * (half of the peak, or all), hand it back to the system.
	 */
	if (gw->nsessions == 0 || gw->nsessions <= gw->trim_peak / 2) {
		if (gw->trim_peak >= 64) {
			malloc_trim(0);
			gw->trim_logins = gw->trim_seen = 0;
		}
		gw->trim_peak = gw->nsessions;
	}
	if (gw->stopping && gw->nsessions == 0)
		gw_finish(gw);
}

void
mg_session_close(struct mg_session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = 1;
	if (s->close_reason == NULL)
		s->close_reason = reason;
	if (s->up != NULL)
		mg_upstream_close(s->up);
	mg_conn_close(&s->client);
	if (!uv_is_closing((uv_handle_t *)&s->timer))
		uv_close((uv_handle_t *)&s->timer, session_timer_close_cb);
}

/*
 * Shuts the device's side down after everything queued is written, then
 * closes: uv_close() alone would cancel a pending "BYE".
 */
void
mg_session_close_after_flush(struct mg_session *s, const char *reason)
{
	if (s->closing)
		return;
	if (s->close_reason == NULL)
		s->close_reason = reason;
	if (s->client.failed || s->client.shut_done || !s->client.open) {
		mg_session_close(s, reason);
		return;
	}
	s->close_after_flush = 1;
	mg_conn_pause(&s->client);
	mg_conn_shutdown(&s->client);
}

static void
session_shutdown_cb(struct mg_conn *c)
{
	struct mg_session *s = c->owner;

	if (s->close_after_flush)
		mg_session_close(s, s->close_reason);
}

void *
mg_session_front_new(struct mg_session *s, size_t size)
{
	if ((s->front = calloc(1, size)) == NULL)
		mg_session_close(s, "out of memory");
	return s->front;
}

void
mg_session_front_free(struct mg_session *s, size_t size)
{
	if (s->front != NULL) {
		OPENSSL_cleanse(s->front, size);
		free(s->front);
		s->front = NULL;
	}
}

void
mg_session_touch(struct mg_session *s)
{
	s->last_active = uv_now(s->gw->loop);
}

void
mg_session_set_timeout(struct mg_session *s, uint64_t ms)
{
	if (s->closing)
		return;
	s->timeout_ms = ms;
	mg_session_touch(s);
	uv_timer_start(&s->timer, session_timer_cb, ms, 0);
}

/*
 * The timer is not restarted on every read: activity only records a time,
 * and when the timer fires it sleeps again for what is left.
 */
static void
session_timer_cb(uv_timer_t *t)
{
	struct mg_session	*s = t->data;
	uint64_t		 now = uv_now(s->gw->loop), idle = now - s->last_active;

	if (s->closing)
		return;
	if (idle < s->timeout_ms) {
		uv_timer_start(&s->timer, session_timer_cb, s->timeout_ms - idle, 0);
		return;
	}
	if (s->state == MG_SS_RELAY) {
		mg_session_close(s, "idle timeout");
		return;
	}
	if (s->state == MG_SS_PRELOGIN && s->ops->timeout_msg != NULL)
		(void)mg_conn_write(&s->client, s->ops->timeout_msg, strlen(s->ops->timeout_msg));
	mg_session_close_after_flush(s, "login timeout");
}

static void
session_timer_close_cb(uv_handle_t *h)
{
	mg_session_unref(h->data);
}

static void
session_client_close_cb(struct mg_conn *c)
{
	mg_session_unref(c->owner);
}

static void
gw_accept_cb(uv_stream_t *server, int status)
{
	struct mg_listener	*l = server->data;
	struct mg_gateway	*gw = l->gw;
	struct mg_session	*s;
	struct sockaddr_storage	 ss;
	int			 sslen = sizeof(ss);
	char			 ip[INET6_ADDRSTRLEN];
	uint16_t		 port = 0;

	if (status != 0) {
		mg_log_warn(0, "accept address=%s error=\"%s\"", l->cfg->address, uv_strerror(status));
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return;
	s->gw = gw;
	s->lcfg = l->cfg;
	s->ops = l->cfg->proto == MG_PROTO_POP3 ? &mg_pop3_front :
	    l->cfg->proto == MG_PROTO_SMTP ? &mg_smtp_front : &mg_imap_front;
	(void)mg_random(&s->id, sizeof(s->id));
	if (s->id == 0)
		s->id = 1;
	s->started = uv_now(gw->loop);
	if (mg_conn_init(&s->client, gw->loop, s) != 0) {
		free(s);
		return;
	}
	s->refs = 1;	/* the client handle */
	s->client.on_read = session_client_read_cb;
	s->client.on_handshake = session_client_handshake_cb;
	s->client.on_close = session_client_close_cb;
	s->client.on_shutdown = session_shutdown_cb;
	s->client.on_drain = session_client_drain_cb;
	s->client.wipe = 1;	/* credentials pass through it until the relay starts */
	s->next = gw->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	gw->sessions = s;
	gw->nsessions++;
	gw->trim_logins++;
	if (gw->nsessions > gw->trim_peak)
		gw->trim_peak = gw->nsessions;
	if (uv_accept(server, (uv_stream_t *)&s->client.tcp) != 0) {
		mg_session_close(s, "accept failed");
		return;
	}
	uv_timer_init(gw->loop, &s->timer);
	s->timer.data = s;
	s->refs++;	/* the timer */
	if (uv_tcp_getpeername(&s->client.tcp, (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			snprintf(s->peer, sizeof(s->peer), "%s:%u", ip, port);
			snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", ip);
		} else if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
			snprintf(s->peer, sizeof(s->peer), "[%s]:%u", ip, port);
			snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", ip);
		}
	}
	switch (mg_limits_conn_open(gw->limits, s->peer_ip, mg_gateway_now(gw))) {
	case MG_CONN_OK:
		s->conn_counted = 1;
		break;
	case MG_CONN_TOO_MANY:
		s->reject = "Too many connections; try again later";
		break;
	case MG_CONN_TOO_MANY_IP:
		s->reject = "Too many connections from your address; try again later";
		break;
	case MG_CONN_BLOCKED:
		s->reject = "Too many failed logins from your address; try again later";
		break;
	}
	mg_log_info(s->id, "%s connect client=%s listener=%s tls=%s%s%s%s", s->ops->name, s->peer,
	    l->cfg->address, l->cfg->tls == MG_TLS_IMPLICIT ? "implicit" : "starttls",
	    s->reject ? " refused=\"" : "", s->reject ? s->reject : "", s->reject ? "\"" : "");
	mg_session_set_timeout(s, (uint64_t)gw->cfg->timeout_login * 1000);
	if (l->cfg->tls == MG_TLS_IMPLICIT) {
		s->state = MG_SS_HANDSHAKE;
		if (mg_conn_starttls(&s->client, gw->server_ctx, 1, NULL) == -1) {
			mg_session_close(s, "TLS setup failed");
			return;
		}
		mg_conn_start(&s->client);
		return;
	}
	s->state = MG_SS_PRELOGIN;
	mg_conn_start(&s->client);
	if (s->reject != NULL)
		session_reject(s);
	else
		s->ops->start(s);
}

/* Says why at the greeting, in the protocol's words, and closes. */
static void
session_reject(struct mg_session *s)
{
	(void)mg_conn_printf(&s->client, "%s%s\r\n", s->ops->reject_prefix, s->reject);
	mg_session_close_after_flush(s, s->reject);
}

/* The device's TLS handshake ended: implicit TLS at connect, or after STARTTLS. */
static void
session_client_handshake_cb(struct mg_conn *c, int status)
{
	struct mg_session *s = c->owner;

	if (s->closing)
		return;
	if (status != 0) {
		mg_log_info(s->id, "%s tls client=%s error=\"%s\"", s->ops->name, s->peer, c->error);
		mg_session_close(s, "TLS handshake failed");
		return;
	}
	s->tls = 1;
	mg_log_debug(s->id, "%s tls client=%s version=%s cipher=%s", s->ops->name, s->peer,
	    mg_tls_version(&c->tls), mg_tls_cipher(&c->tls));
	if (s->state == MG_SS_HANDSHAKE) {
		s->state = MG_SS_PRELOGIN;
		if (s->reject != NULL)
			session_reject(s);
		else
			s->ops->start(s);
	}
}

/* Before the relay: the replies went out, read the next commands. */
static void
session_client_drain_cb(struct mg_conn *c)
{
	struct mg_session *s = c->owner;

	if (!s->closing && !s->close_after_flush && s->state == MG_SS_PRELOGIN)
		mg_conn_resume(c);
}

static void
session_client_read_cb(struct mg_conn *c)
{
	struct mg_session *s = c->owner;

	if (s->closing)
		return;
	mg_session_touch(s);
	if (s->state == MG_SS_HANDSHAKE) {
		if (c->eof || c->failed)
			mg_session_close(s, c->failed ? "client error" : "client closed");
		return;
	}
	s->ops->on_read(s);
}

/*
 * The relay: from here on bytes flow both ways untouched. Each side's input
 * is written to the other side as it arrives; when the other side's write
 * queue passes the high-water mark this side is paused, and it is resumed
 * from the other side's drain callback. An end of input on one side is
 * passed on as a shutdown of the other (half-close); the session ends when
 * both sides have finished, or on any error.
 */
static void
relay_pass(struct mg_session *s, struct mg_conn *from, struct mg_conn *to, int *eof_flag,
    const char *what)
{
	if (from->in_len > 0) {
		if (mg_conn_write(to, from->in, from->in_len) == -1) {
			mg_session_close(s, to == &s->client ? "client write failed" : "upstream write failed");
			return;
		}
		mg_conn_consume(from, from->in_len);
		if (to->wq_high)
			mg_conn_pause(from);
	}
	if (from->failed) {
		mg_log_info(s->id, "%s %s error=\"%s\"", s->ops->name, what, from->error);
		mg_session_close(s, from == &s->client ? "client error" : "upstream error");
		return;
	}
	if (from->eof && !*eof_flag) {
		*eof_flag = 1;
		if (s->client_eof && s->up_eof) {
			mg_session_close_after_flush(s, from == &s->client ? "client closed" : "upstream closed");
			return;
		}
		mg_conn_shutdown(to);
	}
}

/*
 * IMAP: the session may no longer hand its provider connection on (see
 * uppool.h); the scanners stop, so the relay costs what it did without them.
 */
static void
relay_track_end(struct mg_session *s)
{
	if (s->trk == NULL)
		return;
	mg_log_debug(s->id, "imap upstream not kept reason=\"%s\"",
	    s->trk->why != NULL ? s->trk->why : "none");
	free(s->trk);
	s->trk = NULL;
}

/*
 * IMAP: the device said LOGOUT at offset off of its input, with nothing in
 * flight. If the pool keeps the provider connection, the gateway answers
 * the LOGOUT itself (RFC 9051 section 6.1.3: BYE, then the tagged OK) and
 * the session ends: 1. Otherwise 0, and the LOGOUT is relayed as usual.
 */
static int
relay_logout(struct mg_session *s, size_t off)
{
	struct mg_conn	*c = &s->client;
	char		 tag[MG_IMTRK_HEAD];
	size_t		 tl = s->trk->logout_tag_len;

	if (off > 0) {
		/* Blank lines before it: the provider sees what the device sent. */
		if (mg_conn_write(&s->up->conn, c->in, off) == -1) {
			mg_session_close(s, "upstream write failed");
			return 1;
		}
		mg_conn_consume(c, off);
	}
	memcpy(tag, s->trk->c_head, tl);
	if (mg_upool_park(s, s->trk->selected) == -1) {
		s->trk->why = "the pool did not take it";
		relay_track_end(s);
		return 0;
	}
	free(s->trk);
	s->trk = NULL;
	/* Nothing may follow LOGOUT: what did is dropped with the session. */
	mg_conn_discard_input(c);
	(void)mg_conn_printf(c, "* BYE Logging out\r\n%.*s OK Logout completed\r\n", (int)tl, tag);
	mg_session_close_after_flush(s, "client logout");
	return 1;
}

static void
relay_client_read_cb(struct mg_conn *c)
{
	struct mg_session	*s = c->owner;
	size_t			 off;

	if (s->closing || s->up == NULL)
		return;
	mg_session_touch(s);
	if (s->trk != NULL && c->in_len > 0) {
		if (mg_imap_track_client(s->trk, c->in, c->in_len, &off) == MG_IMTRK_LOGOUT &&
		    relay_logout(s, off))
			return;
		if (s->trk != NULL && s->trk->tainted)
			relay_track_end(s);
	}
	relay_pass(s, c, &s->up->conn, &s->client_eof, "client");
}

static void
relay_up_read_cb(struct mg_conn *c)
{
	struct mg_upstream	*u = c->owner;
	struct mg_session	*s = u->s;

	if (s->closing)
		return;
	mg_session_touch(s);
	if (s->trk != NULL && c->in_len > 0) {
		mg_imap_track_server(s->trk, c->in, c->in_len);
		if (s->trk->tainted)
			relay_track_end(s);
	}
	relay_pass(s, c, &s->client, &s->up_eof, "upstream");
}

static void
relay_client_drain_cb(struct mg_conn *c)
{
	struct mg_session *s = c->owner;

	if (!s->closing && s->up != NULL)
		mg_conn_resume(&s->up->conn);
}

static void
relay_up_drain_cb(struct mg_conn *c)
{
	struct mg_upstream *u = c->owner;

	if (!u->s->closing)
		mg_conn_resume(&u->s->client);
}

void
mg_session_relay(struct mg_session *s)
{
	struct mg_conn *up = &s->up->conn;

	s->state = MG_SS_RELAY;
	mg_session_set_timeout(s, (uint64_t)s->gw->cfg->timeout_idle * 1000);
	/* IMAP: follow the session to keep the provider connection after LOGOUT (uppool.h). */
	if (s->lcfg->proto == MG_PROTO_IMAP && s->gw->cfg->timeout_reuse > 0 && s->gw->upool != NULL &&
	    (s->trk = malloc(sizeof(*s->trk))) != NULL)
		mg_imap_track_init(s->trk);
	/* From here on the bytes are mail, not the gateway's secrets. */
	s->client.wipe = 0;
	up->wipe = 0;
	s->client.on_read = relay_client_read_cb;
	s->client.on_drain = relay_client_drain_cb;
	up->on_read = relay_up_read_cb;
	up->on_drain = relay_up_drain_cb;
	/* Anything either side sent early is passed on now, in order. */
	if (up->in_len > 0 || up->eof || up->failed)
		relay_up_read_cb(up);
	if (!s->closing && (s->client.in_len > 0 || s->client.eof || s->client.failed))
		relay_client_read_cb(&s->client);
	if (!s->closing && !s->close_after_flush && s->up != NULL) {
		mg_conn_resume(&s->client);
		mg_conn_resume(up);
	}
}

const char *
mg_gateway_provider_name(struct mg_gateway *gw, const char *name)
{
	const struct mg_provider_cfg *p = mg_config_provider(gw->cfg, name);

	return p != NULL ? p->name : NULL;
}

SSL_CTX *
mg_gateway_client_ctx(struct mg_gateway *gw, const char *provider, enum mg_proto proto,
    const struct mg_provider_cfg **pcfg, SSL_SESSION ***slot, struct mg_resolved ***addrs)
{
	size_t i;

	for (i = 0; i < gw->cfg->nproviders; i++) {
		if (strcmp(gw->cfg->providers[i].name, provider) == 0) {
			*pcfg = &gw->cfg->providers[i];
			*slot = &gw->up_sessions[i * MG_PROTO_COUNT + proto];
			*addrs = &gw->up_addrs[i * MG_PROTO_COUNT + proto];
			return gw->client_ctx[i];
		}
	}
	return NULL;
}

static void
gw_close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Closes what keeps the loop alive once no session is left: uv_run then returns. */
static void
gw_finish(struct mg_gateway *gw)
{
	if (gw->finished)
		return;
	gw->finished = 1;
	mg_upool_close_all(gw, "gateway stopping");
	uv_close((uv_handle_t *)&gw->sig_int, NULL);
	uv_close((uv_handle_t *)&gw->sig_term, NULL);
	uv_close((uv_handle_t *)&gw->sig_hup, NULL);
	uv_close((uv_handle_t *)&gw->grace, NULL);
	uv_close((uv_handle_t *)&gw->trim_timer, NULL);
	mg_revoke_stop(gw);
}

/*
 * Every TLS handshake borrows tens of KiB for its buffers; a burst of
 * logins leaves that memory free but scattered between the sessions that
 * stay. Once a burst of at least MG_TRIM_LOGINS sessions is over (a tick of
 * the timer without a new session), the free pages are handed back, so
 * that what idle sessions cost is what they hold.
 */
#define MG_TRIM_LOGINS		256
#define MG_TRIM_TICK_MS		1000

static void
gw_trim_cb(uv_timer_t *t)
{
	struct mg_gateway *gw = t->data;

	if (gw->trim_logins >= MG_TRIM_LOGINS && gw->trim_logins == gw->trim_seen) {
		malloc_trim(0);
		gw->trim_logins = 0;
	}
	gw->trim_seen = gw->trim_logins;
}

static void
gw_close_sessions(struct mg_gateway *gw, const char *why)
{
	struct mg_session *s, *next;

	for (s = gw->sessions; s != NULL; s = next) {
		next = s->next;
		mg_session_close(s, why);
	}
}

static void
gw_grace_cb(uv_timer_t *t)
{
	struct mg_gateway *gw = t->data;

	mg_log_info(0, "stopping grace period over sessions=%llu", (unsigned long long)gw->nsessions);
	gw_close_sessions(gw, "gateway stopping");
}

/*
 * SIGTERM or SIGINT: refuse new connections at once (the listeners close),
 * let the live sessions finish for timeouts.shutdown_grace, then close what
 * is left. A second signal closes everything at once.
 */
static void
gw_signal_cb(uv_signal_t *sig, int signum)
{
	struct mg_gateway	*gw = sig->data;
	size_t			 i;

	if (gw->stopping) {
		mg_log_info(0, "stopping now signal=%d sessions=%llu", signum, (unsigned long long)gw->nsessions);
		gw_close_sessions(gw, "gateway stopping");
		return;
	}
	mg_log_info(0, "stopping signal=%d sessions=%llu grace_s=%u", signum,
	    (unsigned long long)gw->nsessions, gw->cfg->timeout_shutdown);
	gw->stopping = 1;
	mg_upool_close_all(gw, "gateway stopping");
	for (i = 0; i < gw->nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&gw->listeners[i].tcp))
			uv_close((uv_handle_t *)&gw->listeners[i].tcp, NULL);
	if (gw->nsessions == 0) {
		gw_finish(gw);
		return;
	}
	uv_timer_start(&gw->grace, gw_grace_cb, (uint64_t)gw->cfg->timeout_shutdown * 1000, 0);
}

/* SIGHUP: a new certificate and key for new connections; live ones keep theirs. */
static void
gw_hup_cb(uv_signal_t *sig, int signum)
{
	struct mg_gateway	*gw = sig->data;
	SSL_CTX			*ctx;
	char			 err[MG_ERRLEN];

	(void)signum;
	ctx = mg_tls_server_ctx(gw->cfg->tls_cert.path, gw->cfg->tls_key.path, err, sizeof(err));
	if (ctx == NULL) {
		mg_log_err(0, "tls reload failed error=\"%s\"; keeping the old certificate", err);
		return;
	}
	/* Connections hold their own reference: freeing ours is safe. */
	SSL_CTX_free(gw->server_ctx);
	gw->server_ctx = ctx;
	mg_log_info(0, "tls reloaded certificate=%s", gw->cfg->tls_cert.path);
}

/* Drops root for the configured user and group, after binding and opening files. */
static int
gw_drop_privileges(struct mg_gateway *gw)
{
	const struct mg_config	*cfg = gw->cfg;
	struct passwd		*pw;
	struct group		*gr;
	gid_t			 gid;

	if (cfg->run_user == NULL) {
		if (geteuid() == 0)
			mg_log_warn(0, "running as root: set user: in the configuration to drop privileges");
		return 0;
	}
	if ((pw = getpwnam(cfg->run_user)) == NULL) {
		mg_log_err(0, "startup user=%s error=\"no such user\"", cfg->run_user);
		return -1;
	}
	gid = pw->pw_gid;
	if (cfg->run_group != NULL) {
		if ((gr = getgrnam(cfg->run_group)) == NULL) {
			mg_log_err(0, "startup group=%s error=\"no such group\"", cfg->run_group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return 0;
		mg_log_err(0, "startup user=%s error=\"only root can switch users\"", cfg->run_user);
		return -1;
	}
	if (setgroups(1, &gid) == -1 || setgid(gid) == -1 || setuid(pw->pw_uid) == -1 ||
	    setuid(0) != -1) {
		mg_log_err(0, "startup user=%s error=\"cannot drop privileges\"", cfg->run_user);
		return -1;
	}
	/* Secrets stay out of core files and away from debuggers of the same user. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	mg_log_info(0, "running as user=%s uid=%u gid=%u", cfg->run_user, (unsigned)pw->pw_uid,
	    (unsigned)gid);
	return 0;
}

/* Everything run needs before the loop starts; errors go to the log and fail startup. */
static int
gw_setup(struct mg_gateway *gw)
{
	struct mg_config	*cfg = gw->cfg;
	char			 err[MG_ERRLEN];
	size_t			 i;
	int			 r;

	if (gethostname(gw->hostname, sizeof(gw->hostname) - 1) == -1 || gw->hostname[0] == '\0')
		snprintf(gw->hostname, sizeof(gw->hostname), "mailgate");
	if (mg_keyring_load(cfg->master_key.path, &gw->ring, err, sizeof(err)) == -1) {
		mg_log_err(0, "startup master_key=%s error=\"%s\"", cfg->master_key.path, err);
		return -1;
	}
	if (mg_master_key_load(cfg->device_key.path, &gw->devkey, err, sizeof(err)) == -1) {
		mg_log_err(0, "startup device_key=%s error=\"%s\"", cfg->device_key.path, err);
		return -1;
	}
	if ((gw->store = mg_store_open_config(cfg, err, sizeof(err))) == NULL) {
		mg_log_err(0, "startup store error=\"%s\"", err);
		return -1;
	}
	if ((gw->limits = mg_limits_new(cfg)) == NULL ||
	    (gw->up_sessions = calloc(cfg->nproviders * MG_PROTO_COUNT + 1, sizeof(*gw->up_sessions))) == NULL ||
	    (gw->up_addrs = calloc(cfg->nproviders * MG_PROTO_COUNT + 1, sizeof(*gw->up_addrs))) == NULL ||
	    mg_auth_init(gw) == -1 || mg_audit_init(gw) == -1 || mg_revoke_start(gw) == -1 ||
	    mg_upool_init(gw) == -1) {
		mg_log_err(0, "startup error=\"out of memory\"");
		return -1;
	}
	/* A real hash of a random password: unknown users cost what known ones do. */
	{
		uint8_t rnd[16];
		char pw[33];

		if (mg_random(rnd, sizeof(rnd)) == -1)
			return -1;
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
		r = mg_password_hash(pw, gw->dummy_hash, sizeof(gw->dummy_hash), err, sizeof(err));
		OPENSSL_cleanse(pw, sizeof(pw));
		if (r == -1) {
			mg_log_err(0, "startup hash error=\"%s\"", err);
			return -1;
		}
	}
	if ((gw->server_ctx = mg_tls_server_ctx(cfg->tls_cert.path, cfg->tls_key.path, err,
	    sizeof(err))) == NULL) {
		mg_log_err(0, "startup tls error=\"%s\"", err);
		return -1;
	}
	if ((gw->client_ctx = calloc(cfg->nproviders + 1, sizeof(*gw->client_ctx))) == NULL)
		return -1;
	for (i = 0; i < cfg->nproviders; i++) {
		const struct mg_provider_cfg *p = &cfg->providers[i];

		gw->client_ctx[i] = mg_tls_client_ctx(p->ca_file.path, err, sizeof(err));
		if (gw->client_ctx[i] == NULL) {
			mg_log_err(0, "startup provider=%s error=\"%s\"", p->name, err);
			return -1;
		}
	}
	if ((gw->listeners = calloc(cfg->nlisten, sizeof(*gw->listeners))) == NULL)
		return -1;
	for (i = 0; i < cfg->nlisten; i++) {
		struct mg_listener *l = &gw->listeners[i];

		l->gw = gw;
		l->cfg = &cfg->listen[i];
		uv_tcp_init(gw->loop, &l->tcp);
		l->tcp.data = l;
		gw->nlisteners++;
		if ((r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&l->cfg->addr, 0)) != 0 ||
		    (r = uv_listen((uv_stream_t *)&l->tcp, 511, gw_accept_cb)) != 0) {
			mg_log_err(0, "startup listen address=%s error=\"%s\"", l->cfg->address,
			    uv_strerror(r));
			return -1;
		}
		mg_log_info(0, "listening protocol=%s address=%s tls=%s", mg_proto_name(l->cfg->proto),
		    l->cfg->address, l->cfg->tls == MG_TLS_IMPLICIT ? "implicit" : "starttls");
	}
	return 0;
}

int
mg_gateway_run(struct mg_config *cfg)
{
	struct mg_gateway	 gw;
	struct rlimit		 rl = { 0, 0 }, nofile;
	size_t			 i;
	int			 rc = 1;

	memset(&gw, 0, sizeof(gw));
	gw.cfg = cfg;
	pthread_mutex_init(&gw.ring_lock, NULL);
	gw.loop = uv_default_loop();
	/* Secrets live in this process: no core files. */
	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Every connection is two descriptors: take all the kernel allows. */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}
	signal(SIGPIPE, SIG_IGN);
	/*
	 * The relay allocates and frees 64 KiB write buffers all the time:
	 * keep them in the heap (not mmap) and do not give the top of the heap
	 * back to the system after each one (brk + page faults per write
	 * otherwise). malloc_trim() after a crowd leaves still returns memory.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	(void)mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);

	uv_signal_init(gw.loop, &gw.sig_int);
	uv_signal_init(gw.loop, &gw.sig_term);
	uv_signal_init(gw.loop, &gw.sig_hup);
	uv_timer_init(gw.loop, &gw.grace);
	uv_timer_init(gw.loop, &gw.trim_timer);
	gw.trim_timer.data = &gw;
	uv_timer_start(&gw.trim_timer, gw_trim_cb, MG_TRIM_TICK_MS, MG_TRIM_TICK_MS);
	uv_unref((uv_handle_t *)&gw.trim_timer);
	gw.sig_int.data = gw.sig_term.data = gw.sig_hup.data = gw.grace.data = &gw;
	if (gw_setup(&gw) == -1 || gw_drop_privileges(&gw) == -1) {
		gw.stopping = 1;
		gw_close_sessions(&gw, "startup failed");
		if (gw.revoke.timer.data != NULL)
			mg_revoke_stop(&gw);
		uv_walk(gw.loop, gw_close_walk_cb, NULL);
		uv_run(gw.loop, UV_RUN_DEFAULT);
		goto out;
	}
	uv_signal_start(&gw.sig_int, gw_signal_cb, SIGINT);
	uv_signal_start(&gw.sig_term, gw_signal_cb, SIGTERM);
	uv_signal_start(&gw.sig_hup, gw_hup_cb, SIGHUP);
	mg_log_info(0, "ready listeners=%zu providers=%zu", gw.nlisteners, cfg->nproviders);
	uv_run(gw.loop, UV_RUN_DEFAULT);
	rc = 0;
	mg_log_info(0, "stopped");
out:
	if (uv_loop_close(gw.loop) != 0) {
		mg_log_warn(0, "loop still had open handles at exit");
		rc = 1;
	}
	if (gw.store != NULL)
		mg_store_close(gw.store);
	if (gw.server_ctx != NULL)
		SSL_CTX_free(gw.server_ctx);
	if (gw.client_ctx != NULL) {
		for (i = 0; i < cfg->nproviders; i++)
			if (gw.client_ctx[i] != NULL)
				SSL_CTX_free(gw.client_ctx[i]);
		free(gw.client_ctx);
	}
	free(gw.listeners);
	if (gw.up_sessions != NULL) {
		for (i = 0; i < cfg->nproviders * MG_PROTO_COUNT; i++)
			SSL_SESSION_free(gw.up_sessions[i]);
		free(gw.up_sessions);
	}
	if (gw.up_addrs != NULL) {
		for (i = 0; i < cfg->nproviders * MG_PROTO_COUNT; i++)
			mg_resolved_unref(gw.up_addrs[i]);
		free(gw.up_addrs);
	}
	mg_limits_free(gw.limits);
	mg_upool_free(&gw);
	mg_auth_free(&gw);
	mg_audit_free(&gw);
	mg_keyring_wipe(&gw.ring);
	mg_master_key_wipe(&gw.devkey);
	pthread_mutex_destroy(&gw.ring_lock);
	return rc;
}
