/*
 * imap.c - the IMAP front end (RFC 9051 / 3501) until the login is done.
 *
 * Before login the gateway speaks IMAP itself: CAPABILITY, NOOP, LOGOUT,
 * ID, STARTTLS, LOGIN and AUTHENTICATE PLAIN (RFC 4959 SASL-IR too). When
 * the device's credential is accepted and the provider login succeeded, the
 * device's LOGIN is answered with its own tag and the provider's
 * capabilities, this state is freed, and session.c relays bytes untouched.
 *
 * One command is answered before the next is read (the client is paused
 * while a login is checked), which also bounds what a pipelining client can
 * make the gateway hold.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "log.h"
#include "login.h"
#include "parse_imap.h"
#include "session.h"
#include "upstream.h"


struct imap_front {
	struct mg_imap_parser	p;
	int			sasl_wait;	/* AUTHENTICATE sent "+": the next line is the response */
	char			tag[MG_IMAP_TAG_MAX + 1];	/* the LOGIN/AUTHENTICATE being answered */
};

static void	imap_start(struct mg_session *);
static void	imap_read(struct mg_session *);
static void	imap_free(struct mg_session *);

const struct mg_front_ops mg_imap_front = {
	.name = "imap",
	.start = imap_start,
	.on_read = imap_read,
	.free = imap_free,
	.timeout_msg = "* BYE Autologout; idle for too long\r\n",
	.reject_prefix = "* BYE ",
};

/* What the gateway itself offers before login (after login the provider's list is shown). */
static const char *
imap_caps(struct mg_session *s)
{
	if (s->tls)
		return "IMAP4rev1 ID LITERAL+ SASL-IR AUTH=PLAIN";
	/* RFC 9051 §6.2.3 / §7.2.2: no login offered before TLS. */
	return "IMAP4rev1 ID LITERAL+ STARTTLS LOGINDISABLED";
}

static size_t
imap_line_max(struct mg_session *s)
{
	size_t n = s->gw->cfg->line_max[MG_PROTO_IMAP];

	return n < MG_IMAP_ARGBUF ? n : MG_IMAP_ARGBUF;
}

static void
imap_start(struct mg_session *s)
{
	struct imap_front *f;

	if ((f = mg_session_front_new(s, sizeof(*f))) == NULL)
		return;
	/* limits.imap_line and limits.literal; the parser keeps at most MG_IMAP_ARGBUF. */
	mg_imap_parser_init(&f->p, imap_line_max(s), s->gw->cfg->literal_max);
	(void)mg_conn_printf(&s->client, "* OK [CAPABILITY %s] mailgate ready\r\n", imap_caps(s));
}

static void
imap_free(struct mg_session *s)
{
	mg_session_front_free(s, sizeof(struct imap_front));
}

/* Wipes every copy of what a login command carried: parser storage and stale input bytes. */
static void
imap_wipe(struct mg_session *s, struct imap_front *f)
{
	OPENSSL_cleanse(f->p.argbuf, sizeof(f->p.argbuf));
	mg_conn_wipe_spare(&s->client);
}

static void
imap_reply_fail(struct mg_session *s)
{
	struct imap_front *f = s->front;

	(void)mg_conn_printf(&s->client, "%s NO [AUTHENTICATIONFAILED] Authentication failed\r\n", f->tag);
}

/* RFC 5530 UNAVAILABLE: the fault is not the device's password. */
static void
imap_reply_tempfail(struct mg_session *s, const char *reason)
{
	struct imap_front *f = s->front;

	(void)mg_conn_printf(&s->client, "%s NO [UNAVAILABLE] %s\r\n", f->tag, reason);
}

/* The device's own tag, and the provider's capabilities, which are what it now talks to. */
static void
imap_reply_ok(struct mg_session *s)
{
	struct imap_front	*f = s->front;
	const char		*caps = s->up->lg->caps;

	if (caps[0] != '\0')
		(void)mg_conn_printf(&s->client, "%s OK [CAPABILITY %s] Logged in\r\n", f->tag, caps);
	else
		(void)mg_conn_printf(&s->client, "%s OK Logged in\r\n", f->tag);
	/* The front end's buffers are not needed any more: idle sessions stay small. */
	imap_free(s);
}

static const struct mg_login_replies imap_replies = {
	.fail = imap_reply_fail,
	.tempfail = imap_reply_tempfail,
	.ok = imap_reply_ok,
};

static void
imap_sasl_plain(struct mg_session *s, struct imap_front *f, const char *b64, size_t len)
{
	switch (mg_login_sasl_plain(s, b64, len, &imap_replies)) {
	case MG_SASL_STARTED:
		break;
	case MG_SASL_CANCELLED:
		(void)mg_conn_printf(&s->client, "%s BAD AUTHENTICATE cancelled\r\n", f->tag);
		break;
	case MG_SASL_MALFORMED:
		(void)mg_conn_printf(&s->client, "%s BAD Malformed AUTHENTICATE PLAIN response\r\n", f->tag);
		break;
	case MG_SASL_AUTHZID:
		(void)mg_conn_printf(&s->client, "%s NO [AUTHORIZATIONFAILED] Authorization identity refused\r\n",
		    f->tag);
		break;
	}
}

static int
imap_tls_required(struct mg_session *s, struct imap_front *f)
{
	if (s->tls)
		return 0;
	(void)mg_conn_printf(&s->client, "%s NO [PRIVACYREQUIRED] Login is disabled until STARTTLS\r\n",
	    f->tag);
	return 1;
}

static void
imap_command(struct mg_session *s, struct imap_front *f)
{
	struct mg_imap_cmd	*cmd = &f->p.cmd;
	const char		*name = cmd->name;
	const char		*tag = cmd->tag;

	snprintf(f->tag, sizeof(f->tag), "%s", tag);
	if (strcmp(name, "CAPABILITY") == 0) {
		(void)mg_conn_printf(&s->client, "* CAPABILITY %s\r\n%s OK CAPABILITY completed\r\n",
		    imap_caps(s), tag);
	} else if (strcmp(name, "NOOP") == 0) {
		(void)mg_conn_printf(&s->client, "%s OK NOOP completed\r\n", tag);
	} else if (strcmp(name, "LOGOUT") == 0) {
		(void)mg_conn_printf(&s->client, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", tag);
		mg_session_close_after_flush(s, "logout");
	} else if (strcmp(name, "ID") == 0) {
		/* RFC 2971: the gateway names itself; the provider is asked after login. */
		(void)mg_conn_printf(&s->client, "* ID (\"name\" \"mailgate\")\r\n%s OK ID completed\r\n", tag);
	} else if (strcmp(name, "STARTTLS") == 0) {
		if (s->tls || s->lcfg->tls == MG_TLS_IMPLICIT) {
			(void)mg_conn_printf(&s->client, "%s BAD TLS is already active\r\n", tag);
			return;
		}
		if (cmd->nargs != 0) {
			(void)mg_conn_printf(&s->client, "%s BAD STARTTLS takes no arguments\r\n", tag);
			return;
		}
		(void)mg_conn_printf(&s->client, "%s OK Begin TLS negotiation now\r\n", tag);
		/*
		 * Whatever the client sent after STARTTLS came in plaintext and
		 * is thrown away, never run after the handshake (CVE-2011-0411).
		 * mg_conn_starttls() empties the input buffer; the parser starts
		 * over.
		 */
		mg_imap_parser_reset(&f->p);
		if (mg_conn_starttls(&s->client, s->gw->server_ctx, 1, NULL) == -1)
			mg_session_close(s, "TLS setup failed");
	} else if (strcmp(name, "LOGIN") == 0) {
		if (imap_tls_required(s, f))
			return;
		if (cmd->nargs != 2) {
			(void)mg_conn_printf(&s->client, "%s BAD LOGIN takes a user name and a password\r\n", tag);
			return;
		}
		mg_login_start(s, cmd->args[0].p, cmd->args[0].len, cmd->args[1].p, cmd->args[1].len,
		    &imap_replies);
	} else if (strcmp(name, "AUTHENTICATE") == 0) {
		if (imap_tls_required(s, f))
			return;
		if (cmd->nargs < 1 || cmd->nargs > 2) {
			(void)mg_conn_printf(&s->client, "%s BAD AUTHENTICATE takes a mechanism\r\n", tag);
			return;
		}
		if (strcasecmp(cmd->args[0].p, "PLAIN") != 0) {
			(void)mg_conn_printf(&s->client, "%s NO Unsupported authentication mechanism\r\n", tag);
			return;
		}
		if (cmd->nargs == 2) {
			imap_sasl_plain(s, f, cmd->args[1].p, cmd->args[1].len);
			return;
		}
		f->sasl_wait = 1;
		(void)mg_conn_printf(&s->client, "+ \r\n");
	} else {
		(void)mg_conn_printf(&s->client, "%s BAD Command not valid before login\r\n", tag);
	}
}

static void
imap_read(struct mg_session *s)
{
	struct imap_front	*f = s->front;
	struct mg_conn		*c = &s->client;
	enum mg_imap_result	 r;
	size_t			 cons, ll;
	int			 lr;

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
		if (f->sasl_wait) {
			lr = mg_line_find(c->in, c->in_len, imap_line_max(s), &ll, &cons);
			if (lr == 0)
				break;
			f->sasl_wait = 0;
			if (lr == -1) {
				(void)mg_conn_printf(c, "* BYE Line too long\r\n");
				mg_session_close_after_flush(s, "line too long");
				return;
			}
			imap_sasl_plain(s, f, (const char *)c->in, ll);
			mg_conn_consume(c, cons);
			imap_wipe(s, f);
			continue;
		}
		r = mg_imap_parse(&f->p, c->in, c->in_len, &cons);
		mg_conn_consume(c, cons);
		switch (r) {
		case MG_IMAP_AGAIN:
			break;
		case MG_IMAP_LITERAL:
			(void)mg_conn_printf(c, "+ Ready for literal data\r\n");
			continue;
		case MG_IMAP_INVALID:
			if (f->p.fatal) {
				(void)mg_conn_printf(c, "* BYE %s\r\n", f->p.error);
				mg_session_close_after_flush(s, f->p.error);
				return;
			}
			if (f->p.cmd.tag[0] != '\0' && strcmp(f->p.cmd.name, "ID") == 0) {
				/*
				 * RFC 2971 ID takes a parenthesised list, which the
				 * pre-login parser does not keep; the answer does not
				 * depend on it.
				 */
				snprintf(f->tag, sizeof(f->tag), "%s", f->p.cmd.tag);
				(void)mg_conn_printf(c, "* ID (\"name\" \"mailgate\")\r\n%s OK ID completed\r\n",
				    f->tag);
			} else if (f->p.cmd.tag[0] != '\0')
				(void)mg_conn_printf(c, "%s BAD %s\r\n", f->p.cmd.tag, f->p.error);
			else
				(void)mg_conn_printf(c, "* BAD %s\r\n", f->p.error);
			continue;
		case MG_IMAP_OK:
			imap_command(s, f);
			if (!s->closing && s->front != NULL)
				imap_wipe(s, f);
			continue;
		}
		break;
	}
	if (!s->closing && s->state == MG_SS_PRELOGIN && (c->eof || c->failed))
		mg_session_close(s, c->failed ? "client error" : "client closed");
}
