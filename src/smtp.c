/*
 * smtp.c - the SMTP submission front end (RFC 5321, 6409, 4954, 3207,
 * 8314) until the login is done.
 *
 * Before AUTH the gateway answers EHLO/HELO, STARTTLS, AUTH (PLAIN and
 * LOGIN), RSET, NOOP, HELP and QUIT itself, and refuses mail transactions
 * with 530 5.7.0. A wrong gateway password is 535 5.7.8; anything that is not
 * the device's fault is 454 4.7.0, a temporary failure, so the device retries
 * instead of asking its user for a new password. After "235" the session is
 * the provider's: the gateway logged in there with its own EHLO and AUTH, and
 * from then on relays bytes untouched, EHLO, MAIL, RCPT, DATA and BDAT
 * included.
 *
 * Capabilities: before AUTH the gateway cannot know which provider the
 * device will be relayed to, so it offers a fixed set that every provider it
 * is meant for supports (see the README). After AUTH an EHLO from the device
 * goes to the provider and gets the provider's own answer.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "login.h"
#include "parse_imap.h"
#include "parse_mail.h"
#include "sasl.h"
#include "session.h"
#include "upstream.h"


enum {
	SMTP_AUTH_NONE = 0,
	SMTP_AUTH_PLAIN,	/* "334 " sent: waiting for the PLAIN response */
	SMTP_AUTH_LOGIN_USER,	/* "334 VXNlcm5hbWU6" sent */
	SMTP_AUTH_LOGIN_PASS	/* "334 UGFzc3dvcmQ6" sent */
};

struct smtp_front {
	int	ehlo;			/* EHLO/HELO was given (since the last STARTTLS) */
	int	auth;			/* SMTP_AUTH_* */
	size_t	user_len;
	char	user[MG_NAME_MAX];	/* AUTH LOGIN: the decoded user name */
	char	helo[256];		/* the device's EHLO name (s->helo points here) */
};

static void	smtp_start(struct mg_session *);
static void	smtp_read(struct mg_session *);
static void	smtp_free(struct mg_session *);

const struct mg_front_ops mg_smtp_front = {
	.name = "smtp",
	.start = smtp_start,
	.on_read = smtp_read,
	.free = smtp_free,
	.timeout_msg = "421 4.4.2 Timeout; closing connection\r\n",
	.reject_prefix = "421 4.7.0 ",
};

static void
smtp_start(struct mg_session *s)
{
	if (mg_session_front_new(s, sizeof(struct smtp_front)) == NULL)
		return;
	(void)mg_conn_printf(&s->client, "220 %s ESMTP mailgate\r\n", s->gw->hostname);
}

static void
smtp_free(struct mg_session *s)
{
	s->helo = NULL;
	mg_session_front_free(s, sizeof(struct smtp_front));
}

static void
smtp_reply_fail(struct mg_session *s)
{
	(void)mg_conn_printf(&s->client, "535 5.7.8 Authentication credentials invalid\r\n");
}

static void
smtp_reply_tempfail(struct mg_session *s, const char *reason)
{
	(void)mg_conn_printf(&s->client, "454 4.7.0 %s\r\n", reason);
}

static void
smtp_reply_ok(struct mg_session *s)
{
	(void)mg_conn_printf(&s->client, "235 2.7.0 Authentication successful\r\n");
	smtp_free(s);
}

static const struct mg_login_replies smtp_replies = {
	.fail = smtp_reply_fail,
	.tempfail = smtp_reply_tempfail,
	.ok = smtp_reply_ok,
};

static void
smtp_ehlo(struct mg_session *s, struct smtp_front *f, const struct mg_mail_cmd *c, int extended)
{
	if (c->rest_len == 0) {
		(void)mg_conn_printf(&s->client, "501 5.5.4 Syntax: %s hostname\r\n", extended ? "EHLO" : "HELO");
		return;
	}
	/* The device's name is what the provider is greeted with, too. */
	if (c->arg1_len < sizeof(f->helo)) {
		memcpy(f->helo, c->arg1, c->arg1_len);
		f->helo[c->arg1_len] = '\0';
		s->helo = f->helo;
	}
	f->ehlo = 1;
	f->auth = SMTP_AUTH_NONE;
	if (!extended) {
		(void)mg_conn_printf(&s->client, "250 %s\r\n", s->gw->hostname);
		return;
	}
	if (!s->tls) {
		/* RFC 3207 §4 / RFC 8314: no AUTH offered before TLS. */
		(void)mg_conn_printf(&s->client, "250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
		    "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n", s->gw->hostname);
		return;
	}
	(void)mg_conn_printf(&s->client, "250-%s\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN\r\n", s->gw->hostname);
}

static void
smtp_sasl_plain(struct mg_session *s, const char *b64, size_t len)
{
	switch (mg_login_sasl_plain(s, b64, len, &smtp_replies)) {
	case MG_SASL_STARTED:
		break;
	case MG_SASL_CANCELLED:
		(void)mg_conn_printf(&s->client, "501 5.7.0 Authentication cancelled\r\n");
		break;
	case MG_SASL_MALFORMED:
		(void)mg_conn_printf(&s->client, "501 5.5.2 Malformed AUTH PLAIN response\r\n");
		break;
	case MG_SASL_AUTHZID:
		(void)mg_conn_printf(&s->client, "535 5.7.8 Authorization identity refused\r\n");
		break;
	}
}

/* AUTH LOGIN: one base64 line for the user name, one for the password. */
static void
smtp_sasl_login(struct mg_session *s, struct smtp_front *f, const char *b64, size_t len)
{
	uint8_t	dec[MG_NAME_MAX];
	long	n;

	if (len == 1 && b64[0] == '*') {
		f->auth = SMTP_AUTH_NONE;
		f->user_len = 0;
		(void)mg_conn_printf(&s->client, "501 5.7.0 Authentication cancelled\r\n");
		return;
	}
	n = mg_base64_decode(b64, len, dec, sizeof(dec) - 1);
	if (n <= 0) {
		/* RFC 4954 §4: a broken exchange ends it; the next line is a command again. */
		f->auth = SMTP_AUTH_NONE;
		f->user_len = 0;
		(void)mg_conn_printf(&s->client, "501 5.5.2 Invalid base64 in AUTH LOGIN response\r\n");
		return;
	}
	if (f->auth == SMTP_AUTH_LOGIN_USER) {
		memcpy(f->user, dec, (size_t)n);
		f->user_len = (size_t)n;
		f->auth = SMTP_AUTH_LOGIN_PASS;
		(void)mg_conn_printf(&s->client, "334 UGFzc3dvcmQ6\r\n");
		return;
	}
	f->auth = SMTP_AUTH_NONE;
	mg_login_start(s, f->user, f->user_len, (const char *)dec, (size_t)n, &smtp_replies);
	OPENSSL_cleanse(dec, sizeof(dec));
	f->user_len = 0;
}

static void
smtp_auth(struct mg_session *s, struct smtp_front *f, const struct mg_mail_cmd *c)
{
	if (!s->tls) {
		(void)mg_conn_printf(&s->client, "530 5.7.0 Must issue a STARTTLS command first\r\n");
		return;
	}
	if (!f->ehlo) {
		(void)mg_conn_printf(&s->client, "503 5.5.1 Send EHLO first\r\n");
		return;
	}
	if (c->arg1_len == 5 && strncasecmp(c->arg1, "PLAIN", 5) == 0) {
		if (c->arg2 != NULL) {
			smtp_sasl_plain(s, c->arg2, c->arg2_len);
			return;
		}
		f->auth = SMTP_AUTH_PLAIN;
		(void)mg_conn_printf(&s->client, "334 \r\n");
	} else if (c->arg1_len == 5 && strncasecmp(c->arg1, "LOGIN", 5) == 0) {
		f->auth = SMTP_AUTH_LOGIN_USER;
		if (c->arg2 != NULL) {
			/* RFC 4954 §4: the initial response is the user name. */
			smtp_sasl_login(s, f, c->arg2, c->arg2_len);
			return;
		}
		(void)mg_conn_printf(&s->client, "334 VXNlcm5hbWU6\r\n");
	} else
		(void)mg_conn_printf(&s->client, "504 5.5.4 Unrecognized authentication type\r\n");
}

static void
smtp_command(struct mg_session *s, struct smtp_front *f, const struct mg_mail_cmd *c)
{
	const char *v = c->verb;

	if (strcmp(v, "EHLO") == 0)
		smtp_ehlo(s, f, c, 1);
	else if (strcmp(v, "HELO") == 0)
		smtp_ehlo(s, f, c, 0);
	else if (strcmp(v, "STARTTLS") == 0) {
		if (s->tls || s->lcfg->tls == MG_TLS_IMPLICIT) {
			(void)mg_conn_printf(&s->client, "503 5.5.1 TLS already active\r\n");
			return;
		}
		if (c->rest_len != 0) {
			(void)mg_conn_printf(&s->client, "501 5.5.4 STARTTLS takes no arguments\r\n");
			return;
		}
		(void)mg_conn_printf(&s->client, "220 2.0.0 Ready to start TLS\r\n");
		/*
		 * RFC 3207 §4.2: forget everything learned before TLS; what was
		 * pipelined after STARTTLS is thrown away with the input buffer.
		 */
		f->ehlo = 0;
		f->auth = SMTP_AUTH_NONE;
		if (mg_conn_starttls(&s->client, s->gw->server_ctx, 1, NULL) == -1)
			mg_session_close(s, "TLS setup failed");
	} else if (strcmp(v, "AUTH") == 0)
		smtp_auth(s, f, c);
	else if (strcmp(v, "MAIL") == 0 || strcmp(v, "RCPT") == 0 || strcmp(v, "DATA") == 0 ||
	    strcmp(v, "BDAT") == 0)
		(void)mg_conn_printf(&s->client, "530 5.7.0 Authentication required\r\n");
	else if (strcmp(v, "RSET") == 0 || strcmp(v, "NOOP") == 0)
		(void)mg_conn_printf(&s->client, "250 2.0.0 OK\r\n");
	else if (strcmp(v, "HELP") == 0)
		(void)mg_conn_printf(&s->client, "214 2.0.0 mailgate: EHLO, STARTTLS, AUTH, then send\r\n");
	else if (strcmp(v, "VRFY") == 0)
		(void)mg_conn_printf(&s->client, "252 2.5.2 Cannot VRFY user\r\n");
	else if (strcmp(v, "QUIT") == 0) {
		(void)mg_conn_printf(&s->client, "221 2.0.0 Bye\r\n");
		mg_session_close_after_flush(s, "quit");
	} else
		(void)mg_conn_printf(&s->client, "500 5.5.2 Command not recognized\r\n");
}

static void
smtp_read(struct mg_session *s)
{
	struct smtp_front	*f = s->front;
	struct mg_conn		*c = &s->client;
	struct mg_mail_cmd	 cmd;
	size_t			 ll, cons;
	int			 r;

	while (!s->closing && !s->close_after_flush && s->state == MG_SS_PRELOGIN && !c->paused &&
	    c->in_len > 0) {
		/*
		 * Answer a command only once the answers before it have mostly
		 * gone out: a client that pipelines and never reads fills its own
		 * socket, not the gateway's memory (resumed from on_drain).
		 */
		if (c->wq_high) {
			mg_conn_pause(c);
			break;
		}
		r = mg_line_find(c->in, c->in_len, s->gw->cfg->line_max[MG_PROTO_SMTP], &ll, &cons);
		if (r == 0)
			break;
		if (r == -1) {
			(void)mg_conn_printf(c, "500 5.5.6 Line too long\r\n421 4.7.0 Closing connection\r\n");
			mg_session_close_after_flush(s, "line too long");
			return;
		}
		if (f->auth == SMTP_AUTH_PLAIN) {
			f->auth = SMTP_AUTH_NONE;
			smtp_sasl_plain(s, (const char *)c->in, ll);
		} else if (f->auth != SMTP_AUTH_NONE)
			smtp_sasl_login(s, f, (const char *)c->in, ll);
		else if (mg_mail_cmd_parse((const char *)c->in, ll, &cmd) == -1)
			(void)mg_conn_printf(c, "500 5.5.2 Syntax error\r\n");
		else
			smtp_command(s, f, &cmd);
		/* The line may have held a password: wipe what it leaves behind. */
		mg_conn_consume(c, cons);
		mg_conn_wipe_spare(c);
		if (s->front == NULL)
			return;
	}
	if (!s->closing && s->state == MG_SS_PRELOGIN && (c->eof || c->failed))
		mg_session_close(s, c->failed ? "client error" : "client closed");
}
