/*
 * login.c - see login.h.
 */
#include "login.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "auth.h"
#include "ratelimit.h"
#include "log.h"
#include "sasl.h"
#include "session.h"
#include "upstream.h"

static void	login_auth_done(struct mg_session *, struct mg_auth_result *);
static void	login_fail(struct mg_session *);
static void	login_upstream_done(struct mg_session *, int, const char *);

/* The log line for the admin (reason may say more) and the audit record (reason for the device). */
static void
login_log(struct mg_session *s, const char *result, const char *log_reason, const char *audit_reason,
    const char *hash)
{
	char esc[160];

	mg_log_escape(s->user, s->user != NULL ? strlen(s->user) : 0, esc, sizeof(esc));
	mg_log_info(s->id, "%s login user=\"%s\" device=%s provider=%s client=%s result=%s hash=%s reason=\"%s\"",
	    s->ops->name, esc, s->device[0] ? s->device : "-", s->provider != NULL ? s->provider : "-", s->peer,
	    result, hash != NULL ? hash : "none", log_reason);
	mg_audit_login(s, result, audit_reason);
}

/* Back to reading commands, unless the reply closed the session. */
static void
login_resume(struct mg_session *s)
{
	if (s->closing || s->close_after_flush)
		return;
	s->state = MG_SS_PRELOGIN;
	s->provider = NULL;
	mg_conn_resume(&s->client);
}

/* A failure reply held back by the brute-force delay; owns a session reference. */
struct login_delay {
	uv_timer_t		 timer;	/* timer.data == this */
	struct mg_session	*s;
};

/*
 * The protocol's "bad credential" reply; after MG_LOGIN_MAX_FAILURES on
 * one connection the session says why, in the protocol's words, and ends.
 */
static void
login_reply_fail(struct mg_session *s)
{
	s->login->fail(s);
	if (++s->login_failures >= MG_LOGIN_MAX_FAILURES) {
		(void)mg_conn_printf(&s->client, "%sToo many authentication failures\r\n",
		    s->ops->reject_prefix);
		mg_session_close_after_flush(s, "too many authentication failures");
	}
}

static void
login_delay_close_cb(uv_handle_t *h)
{
	struct login_delay *d = h->data;

	mg_session_unref(d->s);
	free(d);
}

static void
login_delay_cb(uv_timer_t *t)
{
	struct login_delay	*d = t->data;
	struct mg_session	*s = d->s;

	if (!s->closing) {
		login_reply_fail(s);
		login_resume(s);
	}
	uv_close((uv_handle_t *)&d->timer, login_delay_close_cb);
}

/*
 * A wrong credential: counted against the address and the user, and the
 * reply waits as long as the counts say (the device stays paused meanwhile).
 */
static void
login_fail(struct mg_session *s)
{
	struct login_delay	*d;
	uint64_t		 ms;

	ms = mg_limits_login_failed(s->gw->limits, s->peer_ip, s->user != NULL ? s->user : "",
	    mg_gateway_now(s->gw));
	if (ms == 0 || (d = calloc(1, sizeof(*d))) == NULL) {
		login_reply_fail(s);
		login_resume(s);
		return;
	}
	mg_log_info(s->id, "%s login delay client=%s delay_ms=%llu", s->ops->name, s->peer,
	    (unsigned long long)ms);
	d->s = s;
	uv_timer_init(s->gw->loop, &d->timer);
	d->timer.data = d;
	mg_session_ref(s);
	uv_timer_start(&d->timer, login_delay_cb, ms, 0);
}

void
mg_login_start(struct mg_session *s, const char *user, size_t ulen, const char *pass, size_t plen,
    const struct mg_login_replies *replies)
{
	size_t n = ulen < MG_NAME_MAX - 1 ? ulen : MG_NAME_MAX - 1;

	/* Exactly as long as the name: thousands of idle sessions each keep one. */
	free(s->user);
	if ((s->user = malloc(n + 1)) != NULL) {
		memcpy(s->user, user, n);
		s->user[n] = '\0';
	}
	s->login = replies;
	mg_conn_pause(&s->client);
	s->state = MG_SS_AUTH;
	if (mg_auth_start(s, s->lcfg->proto, user, ulen, pass, plen, login_auth_done) == 0)
		return;
	if (ulen == 0 || ulen >= MG_NAME_MAX || plen == 0 || plen >= MG_NAME_MAX ||
	    memchr(user, '\0', ulen) != NULL || memchr(pass, '\0', plen) != NULL) {
		/* Not a name or password the store can hold: simply wrong. */
		login_log(s, "fail", "malformed credentials", "invalid credentials", NULL);
		login_fail(s);
		return;
	} else {
		login_log(s, "tempfail", "cannot queue the check", "cannot queue the check", NULL);
		replies->tempfail(s, "try again later");
	}
	login_resume(s);
}

static void
login_auth_done(struct mg_session *s, struct mg_auth_result *r)
{
	s->hash = r->hash;
	snprintf(s->device, sizeof(s->device), "%s", r->device);
	switch (r->status) {
	case MG_AUTH_FAIL:
		login_log(s, "fail", r->log_reason, r->reason, r->hash);
		s->device[0] = '\0';
		login_fail(s);
		return;
	case MG_AUTH_TEMPFAIL:
		s->provider = r->provider[0] != '\0' ? r->provider : NULL;	/* for the log line only */
		login_log(s, "tempfail", r->log_reason, r->reason, r->hash);
		s->provider = NULL;
		s->device[0] = '\0';
		s->login->tempfail(s, r->reason);
		login_resume(s);
		return;
	case MG_AUTH_OK:
		break;
	}
	mg_limits_login_ok(s->gw->limits, r->user);
	/* Revocation follows the session by this name: no name, no session. */
	free(s->auth_user);
	if ((s->auth_user = strdup(r->user)) == NULL) {
		login_log(s, "tempfail", "out of memory", "out of memory", r->hash);
		s->device[0] = '\0';
		s->login->tempfail(s, "try again later");
		login_resume(s);
		return;
	}
	if (mg_limits_user_open(s->gw->limits, r->user) == -1) {
		free(s->auth_user);
		s->auth_user = NULL;
		login_log(s, "tempfail", "too many sessions for the user", "too many sessions for the user", r->hash);
		s->device[0] = '\0';
		s->login->tempfail(s, "too many sessions for this user; close some and retry");
		login_resume(s);
		return;
	}
	s->user_counted = 1;
	s->auth_gen = r->auth_gen;
	s->provider = mg_gateway_provider_name(s->gw, r->provider);
	s->state = MG_SS_UPSTREAM;
	if (mg_upstream_start(s, s->lcfg->proto, r, login_upstream_done) == -1)
		login_upstream_done(s, -1, "cannot reach the provider");
}

static void
login_upstream_done(struct mg_session *s, int status, const char *reason)
{
	if (s->closing)
		return;
	if (status != 0) {
		login_log(s, "tempfail", reason, reason, s->hash);
		if (s->user_counted)
			mg_limits_user_close(s->gw->limits, s->auth_user);
		s->user_counted = 0;
		free(s->auth_user);
		s->auth_user = NULL;
		s->device[0] = '\0';
		s->login->tempfail(s, reason);
		login_resume(s);
		return;
	}
	login_log(s, "ok", "ok", "ok", s->hash);
	s->login->ok(s);
	if (!s->closing)
		mg_session_relay(s);
}

enum mg_sasl_outcome
mg_login_sasl_plain(struct mg_session *s, const char *b64, size_t len,
    const struct mg_login_replies *replies)
{
	uint8_t			dec[1024];
	struct mg_sasl_plain	pl;
	long			n;
	enum mg_sasl_outcome	out = MG_SASL_MALFORMED;

	if (len == 1 && b64[0] == '*')
		return MG_SASL_CANCELLED;
	if (len == 1 && b64[0] == '=')
		len = 0;
	n = mg_base64_decode(b64, len, dec, sizeof(dec));
	if (n < 0 || mg_sasl_plain_parse(dec, (size_t)n, &pl) == -1)
		goto out;
	if (pl.authzid_len > 0 &&
	    (pl.authzid_len != pl.authcid_len || memcmp(pl.authzid, pl.authcid, pl.authcid_len) != 0)) {
		/* Acting as another user is not something the gateway offers. */
		out = MG_SASL_AUTHZID;
		goto out;
	}
	mg_login_start(s, pl.authcid, pl.authcid_len, pl.passwd, pl.passwd_len, replies);
	out = MG_SASL_STARTED;
out:
	OPENSSL_cleanse(dec, sizeof(dec));
	return out;
}
