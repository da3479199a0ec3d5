/*
 * up_imap.c - logging in at an IMAP provider (RFC 9051 / 3501).
 *
 * Greeting -> [CAPABILITY] -> [STARTTLS -> handshake -> CAPABILITY] ->
 * AUTHENTICATE PLAIN (SASL-IR when offered) or LOGIN -> [CAPABILITY].
 *
 * A credential is written only on a connection whose TLS handshake
 * completed with a verified certificate; up_imap_login() checks that
 * itself rather than trusting the order of states. A PREAUTH greeting is
 * refused: it would skip our own login and hand the device a session we
 * did not authenticate (and is the classic STARTTLS-stripping trick).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "parse_imap.h"
#include "sasl.h"
#include "session.h"
#include "upstream.h"

enum {
	UI_GREETING = 0,	/* waiting for "* OK" */
	UI_CAPA,		/* CAPABILITY sent */
	UI_STARTTLS,		/* STARTTLS sent */
	UI_TLS,			/* handshake after STARTTLS */
	UI_AUTH_CONT,		/* AUTHENTICATE PLAIN sent without SASL-IR: waiting for "+" */
	UI_LOGIN_CONT,		/* LOGIN with a literal: waiting for "+" */
	UI_LOGIN,		/* waiting for the tagged result of the login */
	UI_POSTCAPA,		/* CAPABILITY after login */
	UI_PARK_UNSELECT,	/* parked after LOGOUT: UNSELECT sent */
	UI_PARK_CAPA,		/* parked: CAPABILITY sent */
	UI_PARKED		/* parked, ready for the next login */
};

static void	up_imap_connected(struct mg_upstream *);
static void	up_imap_read(struct mg_upstream *);
static void	up_imap_tls_done(struct mg_upstream *);

const struct mg_upstream_proto mg_up_imap = {
	.connected = up_imap_connected,
	.on_read = up_imap_read,
	.tls_done = up_imap_tls_done,
};

/* Sends "TAG text CRLF" with a fresh tag, remembered as the one awaited. */
static int
up_imap_cmd(struct mg_upstream *u, const char *text)
{
	snprintf(u->tag, sizeof(u->tag), "M%d", ++u->tagno);
	return mg_upstream_send(u, "%s %s\r\n", u->tag, text);
}

static void
up_imap_set_caps(struct mg_upstream *u, const char *caps, size_t len)
{
	/* Skip the word CAPABILITY itself. */
	if (len >= 10 && strncasecmp(caps, "CAPABILITY", 10) == 0) {
		caps += 10;
		len -= 10;
	}
	while (len > 0 && *caps == ' ') {
		caps++;
		len--;
	}
	if (len >= sizeof(u->lg->caps) || len == 0) {
		/* Too long to repeat in a response code: the device asks itself. */
		u->lg->caps[0] = '\0';
		return;
	}
	memcpy(u->lg->caps, caps, len);
	u->lg->caps[len] = '\0';
}

static int
up_imap_has(struct mg_upstream *u, const char *cap)
{
	return mg_imap_caps_has(u->lg->caps, strlen(u->lg->caps), cap);
}

static void
up_imap_connected(struct mg_upstream *u)
{
	u->state = UI_GREETING;
	u->lg->caps[0] = '\0';
}

static void
up_imap_tls_done(struct mg_upstream *u)
{
	/* RFC 9051 §6.2.1: capabilities learned before TLS are forgotten. */
	u->lg->caps[0] = '\0';
	u->state = UI_CAPA;
	if (up_imap_cmd(u, "CAPABILITY") == -1)
		mg_upstream_fail(u, "cannot write to the provider");
}

/* Appends bytes to u->lg->out; -1 when they do not fit. */
static int
up_imap_out(struct mg_upstream *u, size_t *off, const void *p, size_t len)
{
	if (*off + len > sizeof(u->lg->out))
		return -1;
	memcpy(u->lg->out + *off, p, len);
	*off += len;
	return 0;
}

/* Appends an astring: quoted when possible, else a literal announcement; 1 if a literal follows. */
static int
up_imap_astring(struct mg_upstream *u, size_t *off, const char *v, size_t vlen, int litplus)
{
	char	q[600], hdr[32];
	int	n, r;

	n = mg_imap_quote(v, vlen, q, sizeof(q));
	if (n >= 0) {
		r = up_imap_out(u, off, q, (size_t)n);
		OPENSSL_cleanse(q, sizeof(q));
		return r;
	}
	n = snprintf(hdr, sizeof(hdr), "{%zu%s}\r\n", vlen, litplus ? "+" : "");
	return up_imap_out(u, off, hdr, (size_t)n) == -1 ? -1 : 1;
}

/*
 * Builds "TAG LOGIN user password" into u->lg->out. A value that cannot be
 * quoted goes as a literal: with LITERAL+ (RFC 7888) all at once, else each
 * literal's bytes form a new segment sent after the server's "+".
 */
static int
up_imap_login_cmd(struct mg_upstream *u)
{
	const char	*vals[2] = { u->lg->login, u->lg->secret };
	size_t		 lens[2] = { strlen(u->lg->login), u->lg->secret_len };
	size_t		 off = 0;
	int		 i, lit, litplus = up_imap_has(u, "LITERAL+");
	char		 head[32];

	snprintf(u->tag, sizeof(u->tag), "M%d", ++u->tagno);
	snprintf(head, sizeof(head), "%s LOGIN", u->tag);
	u->lg->nseg = 0;
	u->lg->seg[0] = 0;
	if (up_imap_out(u, &off, head, strlen(head)) == -1)
		return -1;
	for (i = 0; i < 2; i++) {
		if (up_imap_out(u, &off, " ", 1) == -1)
			return -1;
		if ((lit = up_imap_astring(u, &off, vals[i], lens[i], litplus)) == -1)
			return -1;
		if (lit) {
			if (!litplus)
				u->lg->seg[++u->lg->nseg] = off;	/* wait for "+" here */
			if (up_imap_out(u, &off, vals[i], lens[i]) == -1)
				return -1;
		}
	}
	if (up_imap_out(u, &off, "\r\n", 2) == -1)
		return -1;
	u->lg->seg[++u->lg->nseg] = off;
	u->lg->iseg = 1;
	u->state = u->lg->nseg > 1 ? UI_LOGIN_CONT : UI_LOGIN;
	return mg_conn_write(&u->conn, u->lg->out, u->lg->seg[1]);
}

static void
up_imap_login(struct mg_upstream *u)
{
	char	b64[1400], line[1500];
	long	n;
	int	r;

	/* Never a credential over a connection that is not verified TLS. */
	if (!mg_upstream_may_send_secret(u))
		return;
	if (up_imap_has(u, "AUTH=PLAIN")) {
		n = mg_sasl_plain_encode("", u->lg->login, u->lg->secret, b64, sizeof(b64));
		if (n < 0) {
			mg_upstream_fail(u, "the stored credentials are too long");
			return;
		}
		snprintf(u->tag, sizeof(u->tag), "M%d", ++u->tagno);
		if (up_imap_has(u, "SASL-IR")) {
			/* RFC 4959: the initial response rides on the command. */
			snprintf(line, sizeof(line), "%s AUTHENTICATE PLAIN %s\r\n", u->tag, b64);
			r = mg_conn_write(&u->conn, line, strlen(line));
			u->state = UI_LOGIN;
		} else {
			/* One segment, sent after the server's "+". */
			memcpy(u->lg->out, b64, (size_t)n);
			memcpy(u->lg->out + n, "\r\n", 2);
			u->lg->seg[0] = 0;
			u->lg->seg[1] = (size_t)n + 2;
			u->lg->nseg = 1;
			u->lg->iseg = 0;
			snprintf(line, sizeof(line), "%s AUTHENTICATE PLAIN\r\n", u->tag);
			r = mg_conn_write(&u->conn, line, strlen(line));
			u->state = UI_AUTH_CONT;
		}
		OPENSSL_cleanse(b64, sizeof(b64));
		OPENSSL_cleanse(line, sizeof(line));
	} else if (up_imap_has(u, "LOGINDISABLED")) {
		mg_upstream_fail(u, "the provider does not allow this login");
		return;
	} else
		r = up_imap_login_cmd(u);
	/* What is still to be sent lives in u->lg->out; the secret itself is done with. */
	OPENSSL_cleanse(u->lg->secret, sizeof(u->lg->secret));
	u->lg->secret_len = 0;
	if (r == -1)
		mg_upstream_fail(u, "cannot write to the provider");
}

/* After the greeting or a CAPABILITY: on to STARTTLS, or to the login. */
static void
up_imap_proceed(struct mg_upstream *u)
{
	if (u->lg->caps[0] == '\0') {
		u->state = UI_CAPA;
		if (up_imap_cmd(u, "CAPABILITY") == -1)
			mg_upstream_fail(u, "cannot write to the provider");
		return;
	}
	if (!u->conn.tls_on) {
		/* Configured for STARTTLS: never fall back to plaintext. */
		if (!up_imap_has(u, "STARTTLS")) {
			mg_upstream_fail(u, "the provider does not offer STARTTLS");
			return;
		}
		u->state = UI_STARTTLS;
		if (up_imap_cmd(u, "STARTTLS") == -1)
			mg_upstream_fail(u, "cannot write to the provider");
		return;
	}
	up_imap_login(u);
}

static void
up_imap_tagged(struct mg_upstream *u, const struct mg_imap_resp *r)
{
	char	esc[160];

	if (strcmp(r->tag, u->tag) != 0) {
		mg_upstream_fail(u, "the provider answered out of turn");
		return;
	}
	switch (u->state) {
	case UI_CAPA:
		if (r->status != MG_IMAP_ST_OK) {
			mg_upstream_fail(u, "the provider refused CAPABILITY");
			return;
		}
		if (u->lg->caps[0] == '\0') {
			/* An empty list would loop; assume the basics. */
			snprintf(u->lg->caps, sizeof(u->lg->caps), "IMAP4rev1");
		}
		up_imap_proceed(u);
		return;
	case UI_STARTTLS:
		if (r->status != MG_IMAP_ST_OK) {
			mg_upstream_fail(u, "the provider refused STARTTLS");
			return;
		}
		/*
		 * Whatever followed the OK arrived in plaintext; the handshake
		 * discards it (mg_conn_starttls empties the input).
		 */
		u->state = UI_TLS;
		mg_upstream_starttls(u);
		return;
	case UI_LOGIN:
	case UI_AUTH_CONT:
	case UI_LOGIN_CONT:
		mg_upstream_wipe(u);
		if (r->status != MG_IMAP_ST_OK) {
			mg_log_escape(r->text, r->text_len, esc, sizeof(esc));
			mg_log_warn(u->s->id, "upstream login refused host=%s login=%s reply=\"%s\"",
			    u->ep->host, u->lg->login, esc);
			mg_upstream_fail(u, "the provider refused the stored credentials");
			return;
		}
		if (r->code != NULL && r->code_len > 11 && strncasecmp(r->code, "CAPABILITY ", 11) == 0) {
			up_imap_set_caps(u, r->code, r->code_len);
			mg_upstream_ready(u);
			return;
		}
		u->lg->caps[0] = '\0';
		u->state = UI_POSTCAPA;
		if (up_imap_cmd(u, "CAPABILITY") == -1)
			mg_upstream_fail(u, "cannot write to the provider");
		return;
	case UI_POSTCAPA:
		mg_upstream_ready(u);
		return;
	default:
		mg_upstream_fail(u, "the provider answered out of turn");
	}
}

static void
up_imap_line(struct mg_upstream *u, const char *line, size_t len)
{
	struct mg_imap_resp	r;
	char			esc[160];

	if (mg_imap_resp_parse(line, len, &r) == -1) {
		mg_log_escape(line, len, esc, sizeof(esc));
		mg_log_warn(u->s->id, "upstream bad reply host=%s line=\"%s\"", u->ep->host, esc);
		mg_upstream_fail(u, "the provider's reply was not understood");
		return;
	}
	switch (r.type) {
	case MG_IMAP_RESP_TAGGED:
		up_imap_tagged(u, &r);
		return;
	case MG_IMAP_RESP_CONTINUE:
		if ((u->state == UI_AUTH_CONT || u->state == UI_LOGIN_CONT) && u->lg->iseg < u->lg->nseg) {
			if (mg_conn_write(&u->conn, u->lg->out + u->lg->seg[u->lg->iseg],
			    u->lg->seg[u->lg->iseg + 1] - u->lg->seg[u->lg->iseg]) == -1) {
				mg_upstream_fail(u, "cannot write to the provider");
				return;
			}
			if (++u->lg->iseg >= u->lg->nseg) {
				u->state = UI_LOGIN;
				mg_upstream_wipe(u);
			}
			return;
		}
		mg_upstream_fail(u, "the provider answered out of turn");
		return;
	case MG_IMAP_RESP_UNTAGGED:
		break;
	}
	if (r.status == MG_IMAP_ST_PREAUTH) {
		mg_log_warn(u->s->id, "upstream preauth host=%s", u->ep->host);
		mg_upstream_fail(u, "the provider sent PREAUTH, which the gateway refuses");
		return;
	}
	if (u->state == UI_GREETING) {
		if (r.status != MG_IMAP_ST_OK) {
			mg_log_escape(line, len, esc, sizeof(esc));
			mg_log_warn(u->s->id, "upstream greeting host=%s line=\"%s\"", u->ep->host, esc);
			mg_upstream_fail(u, "the provider refused the connection");
			return;
		}
		if (r.code != NULL && r.code_len > 11 && strncasecmp(r.code, "CAPABILITY ", 11) == 0)
			up_imap_set_caps(u, r.code, r.code_len);
		up_imap_proceed(u);
		return;
	}
	if (r.status == MG_IMAP_ST_NONE && r.data_len >= 10 && strncasecmp(r.data, "CAPABILITY", 10) == 0)
		up_imap_set_caps(u, r.data, r.data_len);
	/* Other untagged data during login is of no interest. */
}

static void
up_imap_read(struct mg_upstream *u)
{
	mg_upstream_read_lines(u, up_imap_line);
}

/*
 * Parking. The device said LOGOUT with nothing else in flight and nothing
 * done that outlives its session (parse_imap_relay.c decided that). What
 * is left is the selected mailbox: UNSELECT (RFC 3691, part of IMAP4rev2)
 * leaves it without expunging, as the device's LOGOUT would have. CLOSE
 * would expunge, so a provider without UNSELECT does not get its
 * connection kept. CAPABILITY then gives the next device's login reply
 * what this server offers in the authenticated state.
 *
 * Nothing here may call mg_upstream_fail(): a parked upstream has no
 * session to report to. Errors are returned and uppool.c closes it.
 */
static int
up_imap_park_cmd(struct mg_upstream *u, const char *cmd, int state)
{
	char	line[64];
	int	n;

	snprintf(u->tag, sizeof(u->tag), "M%d", ++u->tagno);
	n = snprintf(line, sizeof(line), "%s %s\r\n", u->tag, cmd);
	u->state = state;
	return mg_conn_write(&u->conn, line, (size_t)n);
}

int
mg_up_imap_park(struct mg_upstream *u, int selected)
{
	u->lg->caps[0] = '\0';
	if (selected)
		return up_imap_park_cmd(u, "UNSELECT", UI_PARK_UNSELECT);
	return up_imap_park_cmd(u, "CAPABILITY", UI_PARK_CAPA);
}

int
mg_up_imap_parked_line(struct mg_upstream *u, const char *line, size_t len, const char **why)
{
	struct mg_imap_resp	r;

	/*
	 * Nothing the provider sends now is for anyone: untagged data is
	 * dropped. A literal would make the next line data, not a response:
	 * rather than follow it, the connection is not kept.
	 */
	if (len > 0 && line[len - 1] == '}' && memchr(line, '{', len) != NULL) {
		*why = "literal while parked";
		return -1;
	}
	if (mg_imap_resp_parse(line, len, &r) == -1) {
		*why = "reply not understood";
		return -1;
	}
	if (r.type == MG_IMAP_RESP_UNTAGGED) {
		if (r.status == MG_IMAP_ST_BYE) {
			*why = "provider said BYE";
			return -1;
		}
		if (u->state == UI_PARK_CAPA && r.status == MG_IMAP_ST_NONE && r.data_len >= 10 &&
		    strncasecmp(r.data, "CAPABILITY", 10) == 0)
			up_imap_set_caps(u, r.data, r.data_len);
		return 0;
	}
	if (r.type == MG_IMAP_RESP_CONTINUE || u->state == UI_PARKED || strcmp(r.tag, u->tag) != 0) {
		*why = "provider answered out of turn";
		return -1;
	}
	if (r.status != MG_IMAP_ST_OK) {
		*why = u->state == UI_PARK_UNSELECT ? "UNSELECT refused" : "CAPABILITY refused";
		return -1;
	}
	if (u->state == UI_PARK_UNSELECT) {
		if (up_imap_park_cmd(u, "CAPABILITY", UI_PARK_CAPA) == -1) {
			*why = "cannot write to the provider";
			return -1;
		}
		return 0;
	}
	u->state = UI_PARKED;
	return 1;
}
