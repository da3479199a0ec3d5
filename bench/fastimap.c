/*
 * fastimap.c - a tiny, fast IMAP server and SMTP sink for the benchmark.
 *
 * Where Dovecot (or Postfix) would be the bottleneck, the benchmark puts
 * this upstream behind the proxies instead, so that what is measured is the
 * proxy. It holds one user (--user/--pass) with one message in INBOX, UID 1,
 * of --size bytes, generated while it is sent: a few header lines, then
 * 80-byte lines of letters. It speaks, on each listener given:
 *
 *   IMAP (--imaps with TLS, --imap without): CAPABILITY, NOOP, ID, LOGOUT,
 *     LOGIN (atoms, quoted strings, literals {n} and {n+}), AUTHENTICATE
 *     PLAIN (with SASL-IR or a continuation), and once logged in SELECT,
 *     EXAMINE, [UID] FETCH (BODY[], BODY.PEEK[], RFC822, RFC822.SIZE),
 *     IDLE/DONE, CLOSE, UNSELECT.
 *   SMTP (--smtps with TLS, --smtp without): EHLO, HELO, AUTH PLAIN, MAIL,
 *     RCPT, DATA (the message is read to the final dot and discarded),
 *     RSET, NOOP, QUIT.
 *
 * The plaintext listeners exist for nginx's mail proxy, which cannot speak
 * TLS to its upstream. Every response is written before the next command
 * is read (pipelined commands wait while a FETCH literal is streamed).
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "bconn.h"

#define MAXARGS		10	/* IMAP command words kept */
#define ARGCAP		256	/* bytes kept per word; longer words are cut */
#define LINECAP		2048	/* longest command line */
#define PENDCAP		(1024 * 1024)	/* pipelined input held during a FETCH */
#define STREAM_CHUNK	65536	/* plaintext queued per step of a FETCH */
#define STREAM_QUEUE	(1024 * 1024)	/* write queue we keep a FETCH below */

enum { P_IMAP, P_SMTP };
/* SMTP DATA scanner states (RFC 5321 section 4.5.2: CRLF "." CRLF ends it). */
enum { D_LINESTART, D_MID, D_CR, D_DOT, D_DOTCR };

struct listener {
	uv_tcp_t	 tcp;	/* tcp.data points here */
	int		 proto;	/* P_IMAP or P_SMTP */
	SSL_CTX		*ctx;	/* NULL for plaintext */
};

/* One client session. */
struct srv {
	struct bconn	 c;		/* the connection; owner is this struct */
	int		 proto;		/* P_IMAP or P_SMTP */
	int		 authed;	/* logged in */
	int		 selected;	/* INBOX selected */
	char		 line[LINECAP];	/* a command line being assembled */
	size_t		 linelen;	/* bytes in line */
	char		 args[MAXARGS][ARGCAP];	/* IMAP words of the command */
	size_t		 arglen[MAXARGS];	/* their lengths (cut to ARGCAP - 1) */
	int		 nargs;		/* words so far */
	uint64_t	 lit_left;	/* literal bytes still to read into args[nargs] */
	int		 auth_cont;	/* the next line is a SASL response */
	int		 idling;	/* in IDLE, waiting for DONE */
	char		 tag[ARGCAP];	/* tag of the command in progress (IDLE, AUTHENTICATE, FETCH) */
	int		 streaming;	/* a FETCH literal is being sent */
	uint64_t	 stream_off;	/* message bytes sent */
	char		*pend;		/* input that arrived during a FETCH */
	size_t		 pendlen;	/* bytes in pend */
	int		 in_data;	/* SMTP: reading a message */
	int		 dstate;	/* SMTP: D_* */
};

static uv_loop_t	*loop;
static struct listener	 listeners[4];
static int		 nlisteners;
static uv_signal_t	 sig_term, sig_int;
static const char	*user = "bench", *pass = "bench";
static uint64_t		 msg_size;	/* the message's size, header included */
static char		 msg_head[256];	/* its header */
static size_t		 msg_headlen;
static char		 pat[65520];	/* 819 body lines of 80 bytes */
static unsigned long long st_sessions, st_logins, st_badlogins, st_fetched, st_smtp_bytes,
			 st_messages;

static const char imap_caps[] = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
    "AUTH=PLAIN";
static const char imap_caps_authed[] = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
    "LITERAL+ UIDPLUS UNSELECT";

static void	srv_ready(struct bconn *);
static void	srv_data(struct bconn *, const char *, size_t);
static void	srv_drain(struct bconn *);
static void	srv_closed(struct bconn *);
static void	srv_process(struct srv *, const char *, size_t);

static const struct bconn_ops srv_ops = { srv_ready, srv_data, srv_drain, srv_closed };

static void
reply(struct srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct srv *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		bconn_close(&s->c, "reply too long");
		return;
	}
	(void)bconn_send(&s->c, buf, (size_t)n);
}

/* Decodes base64 (RFC 4648) into out; the decoded length, or -1. */
static int
b64decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	int n, pad = 0;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
		return -1;
	if (in[len - 1] == '=')
		pad++;
	if (in[len - 2] == '=')
		pad++;
	if ((n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len)) < 0)
		return -1;
	return n - pad;
}

/* Checks a SASL PLAIN message (RFC 4616): authzid NUL authcid NUL passwd. */
static int
plain_ok(const char *b64, size_t len)
{
	unsigned char buf[1024];
	const unsigned char *authcid, *pw, *end;
	int n;

	if ((n = b64decode(b64, len, buf, sizeof(buf))) < 0)
		return 0;
	end = buf + n;
	if ((authcid = memchr(buf, '\0', (size_t)n)) == NULL)
		return 0;
	authcid++;
	if ((pw = memchr(authcid, '\0', (size_t)(end - authcid))) == NULL)
		return 0;
	pw++;
	return (size_t)(pw - 1 - authcid) == strlen(user) &&
	    memcmp(authcid, user, strlen(user)) == 0 &&
	    (size_t)(end - pw) == strlen(pass) && memcmp(pw, pass, strlen(pass)) == 0;
}

/* Copies message bytes [off, off + n) into dst. */
static void
msg_bytes(uint64_t off, char *dst, size_t n)
{
	size_t k;
	uint64_t b;

	while (n > 0) {
		if (off < msg_headlen) {
			k = msg_headlen - (size_t)off;
			if (k > n)
				k = n;
			memcpy(dst, msg_head + off, k);
		} else {
			b = (off - msg_headlen) % sizeof(pat);
			k = sizeof(pat) - (size_t)b;
			if (k > n)
				k = n;
			memcpy(dst, pat + b, k);
		}
		dst += k;
		off += k;
		n -= k;
	}
}

/* Does an IMAP sequence set (RFC 9051 section 9, sequence-set) hold 1? */
static int
set_has_one(const char *set)
{
	const char *p = set;
	unsigned long a, b;
	char *end;

	while (*p != '\0') {
		if (*p == '*')
			return 1;
		a = strtoul(p, &end, 10);
		b = a;
		if (*end == ':') {
			if (end[1] == '*')
				return 1;
			b = strtoul(end + 1, &end, 10);
		}
		if ((a <= 1 && b >= 1) || (b <= 1 && a >= 1))
			return 1;
		if (*end != ',')
			return 0;
		p = end + 1;
	}
	return 0;
}

/* Resumes reading, first handling what arrived while a FETCH was sent. */
static void
srv_unstash(struct srv *s)
{
	char *p = s->pend;
	size_t n = s->pendlen;

	s->pend = NULL;
	s->pendlen = 0;
	if (p != NULL) {
		srv_process(s, p, n);
		free(p);
	}
	if (!s->streaming && !s->c.closing)
		bconn_pause(&s->c, 0);
}

/* Queues the FETCH literal while the write queue is short. */
static void
stream_pump(struct srv *s)
{
	static char chunk[STREAM_CHUNK];
	size_t n;

	while (s->stream_off < msg_size) {
		if (bconn_queued(&s->c) >= STREAM_QUEUE) {
			s->c.want_drain = 1;
			return;
		}
		n = msg_size - s->stream_off > sizeof(chunk) ? sizeof(chunk) :
		    (size_t)(msg_size - s->stream_off);
		msg_bytes(s->stream_off, chunk, n);
		if (bconn_send(&s->c, chunk, n) == -1)
			return;
		s->stream_off += n;
		st_fetched += n;
	}
	s->streaming = 0;
	reply(s, ")\r\n%s OK Fetch completed.\r\n", s->tag);
	srv_unstash(s);
}

static void
srv_drain(struct bconn *c)
{
	struct srv *s = c->owner;

	if (s->streaming)
		stream_pump(s);
}

static int
word_is(struct srv *s, int i, const char *w)
{
	return i < s->nargs && strcasecmp(s->args[i], w) == 0;
}

static void
imap_fetch(struct srv *s, int uid)
{
	char items[MAXARGS * ARGCAP];
	const char *tag = s->args[0], *set = s->args[uid ? 3 : 2];
	int i, first = uid ? 4 : 3;

	items[0] = '\0';
	for (i = first; i < s->nargs; i++) {
		strcat(items, s->args[i]);
		strcat(items, " ");
	}
	if (s->nargs <= first) {
		reply(s, "%s BAD Missing arguments.\r\n", tag);
		return;
	}
	if (!set_has_one(set)) {
		reply(s, "%s OK Fetch completed (no messages).\r\n", tag);
		return;
	}
	if (strcasestr(items, "BODY[]") || strcasestr(items, "BODY.PEEK[]") ||
	    (strcasestr(items, "RFC822") && !strcasestr(items, "RFC822."))) {
		snprintf(s->tag, sizeof(s->tag), "%s", tag);
		reply(s, "* 1 FETCH (UID 1 BODY[] {%llu}\r\n", (unsigned long long)msg_size);
		s->streaming = 1;
		s->stream_off = 0;
		stream_pump(s);
		return;
	}
	if (strcasestr(items, "RFC822.SIZE"))
		reply(s, "* 1 FETCH (UID 1 RFC822.SIZE %llu)\r\n", (unsigned long long)msg_size);
	else
		reply(s, "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n");
	reply(s, "%s OK Fetch completed.\r\n", tag);
}

static void
imap_logged_in(struct srv *s, const char *tag, int ok)
{
	if (ok) {
		s->authed = 1;
		st_logins++;
		reply(s, "%s OK [CAPABILITY %s] Logged in\r\n", tag, imap_caps_authed);
	} else {
		st_badlogins++;
		reply(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", tag);
	}
}

/* Runs one complete IMAP command held in s->args. */
static void
imap_exec(struct srv *s)
{
	const char *tag = s->args[0], *cmd = s->args[1];

	if (s->nargs < 2) {
		reply(s, "%s BAD Error in IMAP command.\r\n", s->nargs ? tag : "*");
		return;
	}
	if (strcasecmp(cmd, "CAPABILITY") == 0) {
		reply(s, "* CAPABILITY %s\r\n%s OK Capability completed.\r\n",
		    s->authed ? imap_caps_authed : imap_caps, tag);
	} else if (strcasecmp(cmd, "NOOP") == 0) {
		reply(s, "%s OK NOOP completed.\r\n", tag);
	} else if (strcasecmp(cmd, "LOGOUT") == 0) {
		reply(s, "* BYE Logging out\r\n%s OK Logout completed.\r\n", tag);
		bconn_close_flush(&s->c);
	} else if (strcasecmp(cmd, "ID") == 0) {
		reply(s, "* ID NIL\r\n%s OK ID completed.\r\n", tag);
	} else if (s->authed) {
		if (strcasecmp(cmd, "SELECT") == 0 || strcasecmp(cmd, "EXAMINE") == 0) {
			s->selected = 1;
			reply(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
			    "* 1 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n"
			    "* OK [UIDNEXT 2] Predicted next UID\r\n"
			    "%s OK [READ-%s] Select completed.\r\n", tag,
			    strcasecmp(cmd, "SELECT") == 0 ? "WRITE" : "ONLY");
		} else if (strcasecmp(cmd, "IDLE") == 0) {
			snprintf(s->tag, sizeof(s->tag), "%s", tag);
			s->idling = 1;
			reply(s, "+ idling\r\n");
		} else if (strcasecmp(cmd, "CLOSE") == 0 || strcasecmp(cmd, "UNSELECT") == 0) {
			s->selected = 0;
			reply(s, "%s OK %s completed.\r\n", tag, cmd);
		} else if (!s->selected && (strcasecmp(cmd, "FETCH") == 0 ||
		    strcasecmp(cmd, "UID") == 0)) {
			reply(s, "%s BAD No mailbox selected.\r\n", tag);
		} else if (strcasecmp(cmd, "FETCH") == 0) {
			imap_fetch(s, 0);
		} else if (word_is(s, 1, "UID") && word_is(s, 2, "FETCH")) {
			imap_fetch(s, 1);
		} else if (strcasecmp(cmd, "LOGIN") == 0 || strcasecmp(cmd, "AUTHENTICATE") == 0) {
			reply(s, "%s BAD Already logged in.\r\n", tag);
		} else {
			reply(s, "%s BAD Error in IMAP command %s: Unknown command.\r\n", tag, cmd);
		}
	} else if (strcasecmp(cmd, "LOGIN") == 0) {
		if (s->nargs != 4) {
			reply(s, "%s BAD Error in IMAP command LOGIN.\r\n", tag);
			return;
		}
		imap_logged_in(s, tag, strcmp(s->args[2], user) == 0 &&
		    strcmp(s->args[3], pass) == 0);
	} else if (strcasecmp(cmd, "AUTHENTICATE") == 0) {
		if (!word_is(s, 2, "PLAIN")) {
			reply(s, "%s NO [CANNOT] Unsupported authentication mechanism.\r\n", tag);
		} else if (s->nargs == 4) {
			imap_logged_in(s, tag, plain_ok(s->args[3], s->arglen[3]));
		} else {
			snprintf(s->tag, sizeof(s->tag), "%s", tag);
			s->auth_cont = 1;
			reply(s, "+ \r\n");
		}
	} else {
		reply(s, "%s NO Not logged in.\r\n", tag);
	}
}

/* Is the word a literal announcement, {n} or {n+}?  Its size in *n. */
static int
literal_word(const char *w, size_t len, uint64_t *n, int *plus)
{
	size_t i, end;
	uint64_t v = 0;

	if (len < 3 || w[0] != '{' || w[len - 1] != '}')
		return 0;
	end = len - 1;
	*plus = w[end - 1] == '+';
	if (*plus)
		end--;
	if (end <= 1)
		return 0;
	for (i = 1; i < end; i++) {
		if (w[i] < '0' || w[i] > '9' || v > 100000000)
			return 0;
		v = v * 10 + (uint64_t)(w[i] - '0');
	}
	*n = v;
	return 1;
}

/* Splits one line of an IMAP command into words (atoms, quoted strings). */
static void
imap_line(struct srv *s, const char *line, size_t len)
{
	size_t i = 0, o;
	uint64_t n;
	int quoted, plus;

	if (s->auth_cont) {
		s->auth_cont = 0;
		if (len == 1 && line[0] == '*')
			reply(s, "%s BAD Authentication aborted by client.\r\n", s->tag);
		else
			imap_logged_in(s, s->tag, plain_ok(line, len));
		return;
	}
	if (s->idling) {
		s->idling = 0;
		if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
			reply(s, "%s OK Idle completed.\r\n", s->tag);
		else
			reply(s, "%s BAD Expected DONE.\r\n", s->tag);
		return;
	}
	while (i < len) {
		if (line[i] == ' ') {
			i++;
			continue;
		}
		if (s->nargs == MAXARGS) {
			reply(s, "* BAD Too many arguments.\r\n");
			s->nargs = 0;
			return;
		}
		quoted = line[i] == '"';
		o = 0;
		if (quoted) {
			for (i++; i < len && line[i] != '"'; i++) {
				if (line[i] == '\\' && i + 1 < len)
					i++;
				if (o < ARGCAP - 1)
					s->args[s->nargs][o++] = line[i];
			}
			i++;
		} else {
			for (; i < len && line[i] != ' '; i++)
				if (o < ARGCAP - 1)
					s->args[s->nargs][o++] = line[i];
		}
		s->args[s->nargs][o] = '\0';
		s->arglen[s->nargs] = o;
		if (!quoted && i >= len && literal_word(s->args[s->nargs], o, &n, &plus)) {
			/* The literal's bytes become this word (RFC 9051 section 4.3). */
			s->lit_left = n;
			s->arglen[s->nargs] = 0;
			s->args[s->nargs][0] = '\0';
			if (!plus)
				reply(s, "+ OK\r\n");
			if (n == 0)
				s->nargs++;
			return;
		}
		s->nargs++;
	}
	imap_exec(s);
	s->nargs = 0;
}

static void
smtp_line(struct srv *s, const char *line, size_t len)
{
	char verb[16];
	size_t i;
	const char *arg;

	if (s->auth_cont) {
		s->auth_cont = 0;
		if (len == 1 && line[0] == '*')
			reply(s, "501 5.7.0 Authentication aborted\r\n");
		else if (plain_ok(line, len)) {
			s->authed = 1;
			st_logins++;
			reply(s, "235 2.7.0 Authentication successful\r\n");
		} else {
			st_badlogins++;
			reply(s, "535 5.7.8 Authentication failed\r\n");
		}
		return;
	}
	for (i = 0; i < len && i < sizeof(verb) - 1 && line[i] != ' '; i++)
		verb[i] = line[i];
	verb[i] = '\0';
	arg = i < len ? line + i + 1 : "";
	if (strcasecmp(verb, "EHLO") == 0) {
		reply(s, "250-fastimap\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
		    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 AUTH PLAIN\r\n");
	} else if (strcasecmp(verb, "HELO") == 0) {
		reply(s, "250 fastimap\r\n");
	} else if (strcasecmp(verb, "AUTH") == 0) {
		if (strncasecmp(arg, "PLAIN", 5) != 0) {
			reply(s, "504 5.5.4 Unsupported mechanism\r\n");
		} else if (arg[5] == ' ') {
			s->auth_cont = 1;
			smtp_line(s, arg + 6, strlen(arg + 6));
		} else {
			s->auth_cont = 1;
			reply(s, "334 \r\n");
		}
	} else if (strcasecmp(verb, "MAIL") == 0) {
		reply(s, "250 2.1.0 Ok\r\n");
	} else if (strcasecmp(verb, "RCPT") == 0) {
		reply(s, "250 2.1.5 Ok\r\n");
	} else if (strcasecmp(verb, "DATA") == 0) {
		s->in_data = 1;
		s->dstate = D_LINESTART;
		reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
	} else if (strcasecmp(verb, "RSET") == 0 || strcasecmp(verb, "NOOP") == 0) {
		reply(s, "250 2.0.0 Ok\r\n");
	} else if (strcasecmp(verb, "QUIT") == 0) {
		reply(s, "221 2.0.0 Bye\r\n");
		bconn_close_flush(&s->c);
	} else {
		reply(s, "502 5.5.2 Error: command not recognized\r\n");
	}
}

/* Reads message bytes up to the final dot; returns the bytes consumed. */
static size_t
smtp_data(struct srv *s, const char *p, size_t n)
{
	size_t i = 0;
	const char *q;

	while (i < n) {
		switch (s->dstate) {
		case D_MID:
			if ((q = memchr(p + i, '\r', n - i)) == NULL) {
				i = n;
				continue;
			}
			i = (size_t)(q - p) + 1;
			s->dstate = D_CR;
			continue;
		case D_LINESTART:
			s->dstate = p[i] == '.' ? D_DOT : p[i] == '\r' ? D_CR : D_MID;
			break;
		case D_CR:
			s->dstate = p[i] == '\n' ? D_LINESTART : p[i] == '\r' ? D_CR : D_MID;
			break;
		case D_DOT:
			s->dstate = p[i] == '\r' ? D_DOTCR : D_MID;
			break;
		case D_DOTCR:
			if (p[i] == '\n') {
				st_smtp_bytes += i + 1;
				st_messages++;
				s->in_data = 0;
				reply(s, "250 2.0.0 Ok: queued as BENCH\r\n");
				return i + 1;
			}
			s->dstate = p[i] == '\r' ? D_CR : D_MID;
			break;
		}
		i++;
	}
	st_smtp_bytes += n;
	return n;
}

/* Consumes input: message data, literal bytes, or lines. */
static void
srv_process(struct srv *s, const char *p, size_t n)
{
	const char *nl;
	size_t k;
	char *np;

	while (n > 0 && !s->c.closing) {
		if (s->streaming) {
			/* Held until the literal is out ("reply before reading"). */
			if (s->pendlen + n > PENDCAP) {
				bconn_close(&s->c, "pipelined too much");
				return;
			}
			if ((np = realloc(s->pend, s->pendlen + n)) == NULL) {
				bconn_close(&s->c, "memory");
				return;
			}
			memcpy(np + s->pendlen, p, n);
			s->pend = np;
			s->pendlen += n;
			bconn_pause(&s->c, 1);
			return;
		}
		if (s->in_data) {
			k = smtp_data(s, p, n);
			p += k;
			n -= k;
			continue;
		}
		if (s->lit_left > 0) {
			k = n < s->lit_left ? n : (size_t)s->lit_left;
			if (s->arglen[s->nargs] + k < ARGCAP) {
				memcpy(s->args[s->nargs] + s->arglen[s->nargs], p, k);
				s->arglen[s->nargs] += k;
				s->args[s->nargs][s->arglen[s->nargs]] = '\0';
			}
			s->lit_left -= k;
			p += k;
			n -= k;
			if (s->lit_left == 0)
				s->nargs++;
			continue;
		}
		nl = memchr(p, '\n', n);
		k = nl != NULL ? (size_t)(nl - p) + 1 : n;
		if (s->linelen + k > sizeof(s->line)) {
			reply(s, s->proto == P_IMAP ? "* BYE Line too long.\r\n" :
			    "500 5.5.0 Line too long\r\n");
			bconn_close_flush(&s->c);
			return;
		}
		memcpy(s->line + s->linelen, p, k);
		s->linelen += k;
		p += k;
		n -= k;
		if (nl == NULL)
			return;
		k = s->linelen;
		s->linelen = 0;
		while (k > 0 && (s->line[k - 1] == '\n' || s->line[k - 1] == '\r'))
			k--;
		s->line[k] = '\0';
		if (s->proto == P_IMAP)
			imap_line(s, s->line, k);
		else
			smtp_line(s, s->line, k);
	}
}

static void
srv_data(struct bconn *c, const char *p, size_t n)
{
	srv_process(c->owner, p, n);
}

static void
srv_ready(struct bconn *c)
{
	struct srv *s = c->owner;

	if (s->proto == P_IMAP)
		reply(s, "* OK [CAPABILITY %s] fastimap ready.\r\n", imap_caps);
	else
		reply(s, "220 fastimap ESMTP ready\r\n");
}

static void
srv_closed(struct bconn *c)
{
	struct srv *s = c->owner;

	free(s->pend);
	free(s);
}

static void
accept_cb(uv_stream_t *ls, int status)
{
	struct listener *l = ls->data;
	struct srv *s;

	if (status != 0)
		return;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return;
	s->proto = l->proto;
	if (bconn_init(&s->c, loop, l->ctx, &srv_ops, s) == -1) {
		bconn_close(&s->c, "setup");
		return;
	}
	st_sessions++;
	if (bconn_accept(&s->c, ls) == -1)
		bconn_close(&s->c, "accept");
}

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	struct listener *l;
	int i;

	(void)arg;
	if (uv_is_closing(h))
		return;
	for (i = 0; i < nlisteners; i++) {
		l = &listeners[i];
		if (h == (uv_handle_t *)&l->tcp) {
			uv_close(h, NULL);
			return;
		}
	}
	if (h->type == UV_TCP)
		bconn_close(h->data, "shutdown");
	else
		uv_close(h, NULL);
}

static void
signal_cb(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	uv_walk(loop, close_walk_cb, NULL);
}

static SSL_CTX *
server_ctx(const char *cert, const char *key)
{
	SSL_CTX *c;

	if ((c = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	return c;
}

static int
add_listener(const char *addr, int port, int proto, SSL_CTX *c)
{
	struct listener *l = &listeners[nlisteners];
	struct sockaddr_in sa;
	int r;

	if (uv_ip4_addr(addr, port, &sa) != 0)
		return -1;
	uv_tcp_init(loop, &l->tcp);
	l->tcp.data = l;
	l->proto = proto;
	l->ctx = c;
	nlisteners++;
	if ((r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&sa, 0)) != 0 ||
	    (r = uv_listen((uv_stream_t *)&l->tcp, 4096, accept_cb)) != 0) {
		fprintf(stderr, "fastimap: listen %s:%d: %s\n", addr, port, uv_strerror(r));
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "imaps", required_argument, NULL, 'I' },
		{ "imap", required_argument, NULL, 'i' },
		{ "smtps", required_argument, NULL, 'S' },
		{ "smtp", required_argument, NULL, 's' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "user", required_argument, NULL, 'u' },
		{ "pass", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 'z' },
		{ NULL, 0, NULL, 0 }
	};
	const char *addr = "127.0.0.2", *cert = NULL, *key = NULL;
	int ports[4] = { 0, 0, 0, 0 };	/* imaps imap smtps smtp */
	SSL_CTX *c = NULL;
	int ch, i, j;
	uint64_t size = 1000000;

	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'I': ports[0] = atoi(optarg); break;
		case 'i': ports[1] = atoi(optarg); break;
		case 'S': ports[2] = atoi(optarg); break;
		case 's': ports[3] = atoi(optarg); break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'u': user = optarg; break;
		case 'p': pass = optarg; break;
		case 'z': size = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: fastimap --addr IP [--imaps P] [--imap P] [--smtps P] "
			    "[--smtp P] --cert F --key F --user U --pass P --size BYTES\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if ((ports[0] || ports[2]) && (cert == NULL || key == NULL ||
	    (c = server_ctx(cert, key)) == NULL)) {
		fprintf(stderr, "fastimap: cannot load the certificate and key\n");
		ERR_print_errors_fp(stderr);
		return 2;
	}
	msg_headlen = (size_t)snprintf(msg_head, sizeof(msg_head),
	    "From: Bench <bench@example.test>\r\nTo: Bench <bench@example.test>\r\n"
	    "Subject: benchmark message\r\nMessage-ID: <1@fastimap.bench>\r\n"
	    "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n");
	/* Whole 80-byte lines: the message ends with CRLF. */
	msg_size = size < msg_headlen ? msg_headlen : msg_headlen + (size - msg_headlen) / 80 * 80;
	for (i = 0; i < (int)(sizeof(pat) / 80); i++) {
		for (j = 0; j < 78; j++)
			pat[i * 80 + j] = (char)('a' + (i + j) % 26);
		pat[i * 80 + 78] = '\r';
		pat[i * 80 + 79] = '\n';
	}

	loop = uv_default_loop();
	for (i = 0; i < 4; i++)
		if (ports[i] && add_listener(addr, ports[i], i < 2 ? P_IMAP : P_SMTP,
		    (i == 0 || i == 2) ? c : NULL) == -1)
			return 1;
	if (nlisteners == 0) {
		fprintf(stderr, "fastimap: no listener given\n");
		return 2;
	}
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, signal_cb, SIGTERM);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, signal_cb, SIGINT);
	fprintf(stderr, "fastimap: listening on %s message_size=%llu\n", addr,
	    (unsigned long long)msg_size);
	uv_run(loop, UV_RUN_DEFAULT);
	fprintf(stderr, "fastimap: sessions=%llu logins=%llu failed_logins=%llu fetched_bytes=%llu "
	    "smtp_messages=%llu smtp_bytes=%llu\n", st_sessions, st_logins, st_badlogins,
	    st_fetched, st_messages, st_smtp_bytes);
	if (uv_loop_close(loop) != 0)
		fprintf(stderr, "fastimap: handles left open\n");
	SSL_CTX_free(c);
	return 0;
}
