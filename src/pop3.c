/*
 * pop3.c - the POP3 front end (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH,
 * 3206 response codes) until the login is done.
 *
 * In the AUTHORIZATION state the gateway answers CAPA, STLS, USER, PASS,
 * AUTH PLAIN and QUIT itself. A wrong gateway password is "-ERR [AUTH]";
 * anything that is not the device's fault is "-ERR [SYS/TEMP]" (RFC 3206),
 * so that a client retries instead of asking for a new password. After the
 * provider login, the session relays bytes untouched.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "login.h"
#include "parse_imap.h"
#include "parse_mail.h"
#include "session.h"
#include "upstream.h"


struct pop3_front {
	int	sasl_wait;		/* AUTH PLAIN sent "+ ": the next line is the response */
	size_t	user_len;
	char	user[MG_NAME_MAX];	/* from USER, waiting for PASS */
};

static void	pop3_start(struct mg_session *);
static void	pop3_read(struct mg_session *);
static void	pop3_free(struct mg_session *);

const struct mg_front_ops mg_pop3_front = {
	.name = "pop3",
	.start = pop3_start,
	.on_read = pop3_read,
	.free = pop3_free,
	.timeout_msg = "-ERR Autologout; idle for too long\r\n",
	.reject_prefix = "-ERR [SYS/TEMP] ",
};

static void
pop3_start(struct mg_session *s)
{
	if (mg_session_front_new(s, sizeof(struct pop3_front)) == NULL)
		return;
	(void)mg_conn_printf(&s->client, "+OK mailgate ready\r\n");
}

static void
pop3_free(struct mg_session *s)
{
	mg_session_front_free(s, sizeof(struct pop3_front));
}

static void
pop3_reply_fail(struct mg_session *s)
{
	(void)mg_conn_printf(&s->client, "-ERR [AUTH] Authentication failed\r\n");
}

static void
pop3_reply_tempfail(struct mg_session *s, const char *reason)
{
	(void)mg_conn_printf(&s->client, "-ERR [SYS/TEMP] %s\r\n", reason);
}

static void
pop3_reply_ok(struct mg_session *s)
{
	(void)mg_conn_printf(&s->client, "+OK Logged in\r\n");
	pop3_free(s);
}

static const struct mg_login_replies pop3_replies = {
	.fail = pop3_reply_fail,
	.tempfail = pop3_reply_tempfail,
	.ok = pop3_reply_ok,
};

static void
pop3_sasl(struct mg_session *s, const char *b64, size_t len)
{
	switch (mg_login_sasl_plain(s, b64, len, &pop3_replies)) {
	case MG_SASL_STARTED:
		break;
	case MG_SASL_CANCELLED:
		(void)mg_conn_printf(&s->client, "-ERR AUTH cancelled\r\n");
		break;
	case MG_SASL_MALFORMED:
		(void)mg_conn_printf(&s->client, "-ERR Malformed AUTH PLAIN response\r\n");
		break;
	case MG_SASL_AUTHZID:
		(void)mg_conn_printf(&s->client, "-ERR [AUTH] Authorization identity refused\r\n");
		break;
	}
}

/* RFC 2595 §4: no credential before TLS on an STLS listener. */
static int
pop3_tls_required(struct mg_session *s)
{
	if (s->tls)
		return 0;
	(void)mg_conn_printf(&s->client,
	    "-ERR [AUTH] Plaintext authentication is disabled; use STLS first\r\n");
	return 1;
}

static void
pop3_command(struct mg_session *s, struct pop3_front *f, const struct mg_mail_cmd *c)
{
	const char *v = c->verb;

	if (strcmp(v, "CAPA") == 0) {
		/* RFC 2449: after login the provider's own list is what counts. */
		if (s->tls)
			(void)mg_conn_printf(&s->client, "+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\n"
			    "RESP-CODES\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION mailgate\r\n.\r\n");
		else
			(void)mg_conn_printf(&s->client, "+OK Capability list follows\r\nSTLS\r\n"
			    "RESP-CODES\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION mailgate\r\n.\r\n");
	} else if (strcmp(v, "STLS") == 0) {
		if (s->tls || s->lcfg->tls == MG_TLS_IMPLICIT) {
			(void)mg_conn_printf(&s->client, "-ERR TLS is already active\r\n");
			return;
		}
		(void)mg_conn_printf(&s->client, "+OK Begin TLS negotiation\r\n");
		/* Anything pipelined after STLS is discarded with the input buffer. */
		f->user_len = 0;
		if (mg_conn_starttls(&s->client, s->gw->server_ctx, 1, NULL) == -1)
			mg_session_close(s, "TLS setup failed");
	} else if (strcmp(v, "USER") == 0) {
		if (pop3_tls_required(s))
			return;
		if (c->rest_len == 0 || c->rest_len >= sizeof(f->user)) {
			(void)mg_conn_printf(&s->client, "-ERR USER needs a name\r\n");
			return;
		}
		memcpy(f->user, c->rest, c->rest_len);
		f->user_len = c->rest_len;
		(void)mg_conn_printf(&s->client, "+OK\r\n");
	} else if (strcmp(v, "PASS") == 0) {
		if (pop3_tls_required(s))
			return;
		if (f->user_len == 0) {
			(void)mg_conn_printf(&s->client, "-ERR USER first\r\n");
			return;
		}
		/* RFC 1939 §7: the password is the whole rest of the line. */
		mg_login_start(s, f->user, f->user_len, c->rest, c->rest_len, &pop3_replies);
		f->user_len = 0;
	} else if (strcmp(v, "AUTH") == 0) {
		if (c->rest_len == 0) {
			(void)mg_conn_printf(&s->client, "+OK\r\nPLAIN\r\n.\r\n");
			return;
		}
		if (pop3_tls_required(s))
			return;
		if (c->arg1_len != 5 || strncasecmp(c->arg1, "PLAIN", 5) != 0) {
			(void)mg_conn_printf(&s->client, "-ERR Unsupported authentication mechanism\r\n");
			return;
		}
		if (c->arg2 != NULL) {
			pop3_sasl(s, c->arg2, c->arg2_len);
			return;
		}
		f->sasl_wait = 1;
		(void)mg_conn_printf(&s->client, "+ \r\n");
	} else if (strcmp(v, "QUIT") == 0) {
		(void)mg_conn_printf(&s->client, "+OK Bye\r\n");
		mg_session_close_after_flush(s, "quit");
	} else {
		(void)mg_conn_printf(&s->client, "-ERR Command not valid before login\r\n");
	}
}

static void
pop3_read(struct mg_session *s)
{
	struct pop3_front	*f = s->front;
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
		r = mg_line_find(c->in, c->in_len, s->gw->cfg->line_max[MG_PROTO_POP3], &ll, &cons);
		if (r == 0)
			break;
		if (r == -1) {
			(void)mg_conn_printf(c, "-ERR Line too long\r\n");
			mg_session_close_after_flush(s, "line too long");
			return;
		}
		if (f->sasl_wait) {
			f->sasl_wait = 0;
			pop3_sasl(s, (const char *)c->in, ll);
		} else if (mg_mail_cmd_parse((const char *)c->in, ll, &cmd) == -1)
			(void)mg_conn_printf(c, "-ERR Malformed command\r\n");
		else
			pop3_command(s, f, &cmd);
		/* The line may have held a password: wipe what it leaves behind. */
		mg_conn_consume(c, cons);
		mg_conn_wipe_spare(c);
		if (s->front == NULL)
			return;
	}
	if (!s->closing && s->state == MG_SS_PRELOGIN && (c->eof || c->failed))
		mg_session_close(s, c->failed ? "client error" : "client closed");
}
