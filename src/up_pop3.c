/*
 * up_pop3.c - logging in at a POP3 provider (RFC 1939, 2449, 2595, 5034).
 *
 * Greeting -> [STLS -> handshake] -> CAPA -> AUTH PLAIN with an initial
 * response when the provider lists SASL PLAIN, else USER and PASS.
 * Credentials go only over verified TLS (mg_upstream_may_send_secret).
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "log.h"
#include "parse_mail.h"
#include "sasl.h"
#include "session.h"
#include "upstream.h"

enum {
	UP_GREETING = 0,	/* waiting for "+OK" */
	UP_STLS,		/* STLS sent */
	UP_CAPA,		/* CAPA sent: waiting for +OK or -ERR */
	UP_CAPA_LIST,		/* reading CAPA's lines until "." */
	UP_AUTH,		/* AUTH PLAIN sent */
	UP_USER,		/* USER sent */
	UP_PASS			/* PASS sent */
};

static void	up_pop3_connected(struct mg_upstream *);
static void	up_pop3_read(struct mg_upstream *);
static void	up_pop3_tls_done(struct mg_upstream *);

const struct mg_upstream_proto mg_up_pop3 = {
	.connected = up_pop3_connected,
	.on_read = up_pop3_read,
	.tls_done = up_pop3_tls_done,
};

static void
up_pop3_connected(struct mg_upstream *u)
{
	u->state = UP_GREETING;
}

static void
up_pop3_capa(struct mg_upstream *u)
{
	u->lg->caps[0] = '\0';
	u->lg->caps_len = 0;
	u->state = UP_CAPA;
	(void)mg_upstream_send(u, "CAPA\r\n");
}

static void
up_pop3_tls_done(struct mg_upstream *u)
{
	/* RFC 2595 §4: what was learned before TLS is forgotten. */
	up_pop3_capa(u);
}

static void
up_pop3_login(struct mg_upstream *u)
{
	char	b64[1400];
	long	n;

	if (!mg_upstream_may_send_secret(u))
		return;
	if (mg_smtp_ehlo_has(u->lg->caps, "SASL", "PLAIN")) {
		n = mg_sasl_plain_encode("", u->lg->login, u->lg->secret, b64, sizeof(b64));
		mg_upstream_wipe(u);
		if (n < 0) {
			mg_upstream_fail(u, "the stored credentials are too long");
			return;
		}
		/* RFC 5034 §4: the initial response rides on the command. */
		u->state = UP_AUTH;
		(void)mg_upstream_send(u, "AUTH PLAIN %s\r\n", b64);
		OPENSSL_cleanse(b64, sizeof(b64));
		return;
	}
	u->state = UP_USER;
	(void)mg_upstream_send(u, "USER %s\r\n", u->lg->login);
}

static void
up_pop3_refused(struct mg_upstream *u, const struct mg_pop3_resp *r)
{
	char esc[160];

	mg_log_escape(r->text, r->text_len, esc, sizeof(esc));
	mg_log_warn(u->s->id, "upstream login refused host=%s login=%s reply=\"%s\"", u->ep->host,
	    u->lg->login, esc);
	mg_upstream_wipe(u);
	/* RFC 3206: [SYS/TEMP] and [IN-USE] are the provider's own trouble. */
	if (r->code != NULL && r->code_len >= 3 && (strncasecmp(r->code, "SYS", 3) == 0 ||
	    (r->code_len == 6 && strncasecmp(r->code, "IN-USE", 6) == 0)))
		mg_upstream_fail(u, "the provider is temporarily unavailable");
	else
		mg_upstream_fail(u, "the provider refused the stored credentials");
}

static void
up_pop3_line(struct mg_upstream *u, const char *line, size_t len)
{
	struct mg_pop3_resp	r;
	char			esc[160];

	if (u->state == UP_CAPA_LIST) {
		/* RFC 2449 §5: one capability a line, "." ends the list. */
		if (len == 1 && line[0] == '.') {
			up_pop3_login(u);
			return;
		}
		if (u->lg->caps_len + len + 2 < sizeof(u->lg->caps)) {
			memcpy(u->lg->caps + u->lg->caps_len, line, len);
			u->lg->caps_len += len;
			u->lg->caps[u->lg->caps_len++] = '\n';
			u->lg->caps[u->lg->caps_len] = '\0';
		}
		return;
	}
	if (mg_pop3_resp_parse(line, len, &r) == -1) {
		mg_log_escape(line, len, esc, sizeof(esc));
		mg_log_warn(u->s->id, "upstream bad reply host=%s line=\"%s\"", u->ep->host, esc);
		mg_upstream_fail(u, "the provider's reply was not understood");
		return;
	}
	switch (u->state) {
	case UP_GREETING:
		if (r.status != MG_POP3_OK) {
			mg_upstream_fail(u, "the provider refused the connection");
			return;
		}
		if (u->conn.tls_on) {
			up_pop3_capa(u);
			return;
		}
		/* Configured for STLS: never fall back to plaintext. */
		u->state = UP_STLS;
		(void)mg_upstream_send(u, "STLS\r\n");
		return;
	case UP_STLS:
		if (r.status != MG_POP3_OK) {
			mg_upstream_fail(u, "the provider refused STLS");
			return;
		}
		mg_upstream_starttls(u);
		return;
	case UP_CAPA:
		if (r.status == MG_POP3_OK)
			u->state = UP_CAPA_LIST;
		else
			up_pop3_login(u);	/* no CAPA (RFC 1939 only): USER/PASS */
		return;
	case UP_AUTH:
	case UP_PASS:
		if (r.status == MG_POP3_CONT) {
			/* A provider that wants the response separately gets none twice. */
			mg_upstream_fail(u, "the provider's reply was not understood");
			return;
		}
		if (r.status != MG_POP3_OK) {
			up_pop3_refused(u, &r);
			return;
		}
		mg_upstream_ready(u);
		return;
	case UP_USER:
		if (r.status != MG_POP3_OK) {
			up_pop3_refused(u, &r);
			return;
		}
		if (!mg_upstream_may_send_secret(u))
			return;
		u->state = UP_PASS;
		(void)mg_upstream_send(u, "PASS %.*s\r\n", (int)u->lg->secret_len, u->lg->secret);
		mg_upstream_wipe(u);
		return;
	}
	mg_upstream_fail(u, "the provider answered out of turn");
}

static void
up_pop3_read(struct mg_upstream *u)
{
	mg_upstream_read_lines(u, up_pop3_line);
}
