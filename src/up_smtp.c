/*
 * up_smtp.c - logging in at an SMTP submission provider (RFC 5321, 6409,
 * 4954, 3207, 8314).
 *
 * 220 -> EHLO -> [STARTTLS -> 220 -> handshake -> EHLO] -> AUTH PLAIN with
 * an initial response (else AUTH LOGIN) -> 235. Credentials go only over
 * verified TLS. A 4xx from the provider is reported as its temporary
 * trouble, a 5xx to AUTH as refused credentials: in both cases the device
 * gets 454 4.7.0, never 535.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "parse_mail.h"
#include "sasl.h"
#include "session.h"
#include "upstream.h"

enum {
	US_GREETING = 0,	/* waiting for 220 */
	US_EHLO,		/* EHLO sent (before or after TLS) */
	US_STARTTLS,		/* STARTTLS sent */
	US_AUTH_PLAIN,		/* AUTH PLAIN <ir> sent */
	US_AUTH_LOGIN,		/* AUTH LOGIN sent: waiting for 334 (user name) */
	US_AUTH_LOGIN_USER,	/* user name sent: waiting for 334 (password) */
	US_AUTH_LOGIN_PASS	/* password sent */
};

static void	up_smtp_connected(struct mg_upstream *);
static void	up_smtp_read(struct mg_upstream *);
static void	up_smtp_tls_done(struct mg_upstream *);

const struct mg_upstream_proto mg_up_smtp = {
	.connected = up_smtp_connected,
	.on_read = up_smtp_read,
	.tls_done = up_smtp_tls_done,
};

static void
up_smtp_connected(struct mg_upstream *u)
{
	u->state = US_GREETING;
}

static void
up_smtp_ehlo(struct mg_upstream *u)
{
	struct mg_session *s = u->s;

	u->lg->caps[0] = '\0';
	u->lg->caps_len = 0;
	u->state = US_EHLO;
	u->lg->ehlo_first = 1;
	(void)mg_upstream_send(u, "EHLO %s\r\n",
	    s->helo != NULL && s->helo[0] != '\0' ? s->helo : s->gw->hostname);
}

static void
up_smtp_tls_done(struct mg_upstream *u)
{
	/* RFC 3207 §4.2: start over with EHLO; nothing learned before counts. */
	up_smtp_ehlo(u);
}

/* Sends one base64 SASL line built from `data`. */
static void
up_smtp_b64(struct mg_upstream *u, const char *data, size_t len)
{
	char b64[1400];

	if (mg_base64_encode((const uint8_t *)data, len, b64, sizeof(b64)) < 0) {
		mg_upstream_fail(u, "the stored credentials are too long");
		return;
	}
	(void)mg_upstream_send(u, "%s\r\n", b64);
	OPENSSL_cleanse(b64, sizeof(b64));
}

static void
up_smtp_login(struct mg_upstream *u)
{
	char	b64[1400];
	long	n;

	if (!mg_upstream_may_send_secret(u))
		return;
	if (mg_smtp_ehlo_has(u->lg->caps, "AUTH", "PLAIN")) {
		n = mg_sasl_plain_encode("", u->lg->login, u->lg->secret, b64, sizeof(b64));
		mg_upstream_wipe(u);
		if (n < 0) {
			mg_upstream_fail(u, "the stored credentials are too long");
			return;
		}
		u->state = US_AUTH_PLAIN;
		(void)mg_upstream_send(u, "AUTH PLAIN %s\r\n", n == 0 ? "=" : b64);
		OPENSSL_cleanse(b64, sizeof(b64));
	} else if (mg_smtp_ehlo_has(u->lg->caps, "AUTH", "LOGIN")) {
		u->state = US_AUTH_LOGIN;
		(void)mg_upstream_send(u, "AUTH LOGIN\r\n");
	} else
		mg_upstream_fail(u, "the provider offers no usable AUTH mechanism");
}

static void
up_smtp_refused(struct mg_upstream *u, const struct mg_smtp_reply_line *r)
{
	char esc[160];

	mg_log_escape(r->text, r->text_len, esc, sizeof(esc));
	mg_log_warn(u->s->id, "upstream login refused host=%s login=%s code=%d reply=\"%s\"", u->ep->host,
	    u->lg->login, r->code, esc);
	mg_upstream_wipe(u);
	if (r->code >= 400 && r->code < 500)
		mg_upstream_fail(u, "the provider is temporarily unavailable");
	else
		mg_upstream_fail(u, "the provider refused the stored credentials");
}

/* The provider accepted what we asked for: warn when it lacks what devices were promised. */
static void
up_smtp_check_caps(struct mg_upstream *u)
{
	static const char *const promised[] = { "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
	    "SIZE" };
	size_t i;

	for (i = 0; i < sizeof(promised) / sizeof(promised[0]); i++)
		if (!mg_smtp_ehlo_has(u->lg->caps, promised[i], NULL))
			mg_log_warn(u->s->id, "upstream capability missing host=%s capability=%s", u->ep->host,
			    promised[i]);
}

static void
up_smtp_line(struct mg_upstream *u, const char *line, size_t len)
{
	struct mg_smtp_reply_line	r;
	char				esc[160];

	if (mg_smtp_reply_parse(line, len, &r) == -1) {
		mg_log_escape(line, len, esc, sizeof(esc));
		mg_log_warn(u->s->id, "upstream bad reply host=%s line=\"%s\"", u->ep->host, esc);
		mg_upstream_fail(u, "the provider's reply was not understood");
		return;
	}
	if (u->state == US_EHLO && r.code == 250) {
		/* Collect the keywords; the first line is the provider's name. */
		if (!u->lg->ehlo_first && u->lg->caps_len + r.text_len + 2 < sizeof(u->lg->caps)) {
			memcpy(u->lg->caps + u->lg->caps_len, r.text, r.text_len);
			u->lg->caps_len += r.text_len;
			u->lg->caps[u->lg->caps_len++] = '\n';
			u->lg->caps[u->lg->caps_len] = '\0';
		}
		u->lg->ehlo_first = 0;
	}
	if (!r.last)
		return;
	switch (u->state) {
	case US_GREETING:
		if (r.code != 220) {
			mg_upstream_fail(u, "the provider refused the connection");
			return;
		}
		up_smtp_ehlo(u);
		return;
	case US_EHLO:
		if (r.code != 250) {
			mg_upstream_fail(u, "the provider refused EHLO");
			return;
		}
		if (u->conn.tls_on) {
			up_smtp_login(u);
			return;
		}
		/* Configured for STARTTLS: never fall back to plaintext. */
		if (!mg_smtp_ehlo_has(u->lg->caps, "STARTTLS", NULL)) {
			mg_upstream_fail(u, "the provider does not offer STARTTLS");
			return;
		}
		u->state = US_STARTTLS;
		(void)mg_upstream_send(u, "STARTTLS\r\n");
		return;
	case US_STARTTLS:
		if (r.code != 220) {
			mg_upstream_fail(u, "the provider refused STARTTLS");
			return;
		}
		mg_upstream_starttls(u);
		return;
	case US_AUTH_LOGIN:
	case US_AUTH_LOGIN_USER:
		if (r.code != 334) {
			up_smtp_refused(u, &r);
			return;
		}
		if (!mg_upstream_may_send_secret(u))
			return;
		if (u->state == US_AUTH_LOGIN) {
			u->state = US_AUTH_LOGIN_USER;
			up_smtp_b64(u, u->lg->login, strlen(u->lg->login));
		} else {
			u->state = US_AUTH_LOGIN_PASS;
			up_smtp_b64(u, u->lg->secret, u->lg->secret_len);
			mg_upstream_wipe(u);
		}
		return;
	case US_AUTH_PLAIN:
	case US_AUTH_LOGIN_PASS:
		if (r.code != 235) {
			up_smtp_refused(u, &r);
			return;
		}
		up_smtp_check_caps(u);
		mg_upstream_ready(u);
		return;
	}
	mg_upstream_fail(u, "the provider answered out of turn");
}

static void
up_smtp_read(struct mg_upstream *u)
{
	mg_upstream_read_lines(u, up_smtp_line);
}
