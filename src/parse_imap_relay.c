/*
 * parse_imap_relay.c - the two scanners that follow a relayed IMAP session
 * (see "Relay tracking" in parse_imap.h).
 *
 * They read just enough to know when the session is between commands and
 * whether it is still as fresh as after login:
 *
 *	- a line ends at LF; a line that ends in "{n}", "{n+}" or "~{n}"
 *	  (CR optional) is followed by n bytes of literal data and then goes
 *	  on, so one command or response may span several lines;
 *	- a client command's tag, name and (for UID) subcommand are its first
 *	  words; a server response is untagged ("*"), a continuation ("+") or
 *	  tagged, and each tagged one answers one command (RFC 9051 section
 *	  2.2.2), which is all the counting needs.
 *
 * Only commands known to leave nothing behind once the next login starts
 * in the authenticated state keep the session reusable. ENABLE (RFC 5161),
 * COMPRESS (RFC 4978), NOTIFY (RFC 5465), LANGUAGE (RFC 5255),
 * UNAUTHENTICATE (RFC 8437), CONDSTORE's implicit enabling (RFC 7162
 * section 3.1: any command naming MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE or
 * CONDSTORE) and every command not in the list taint it. So does anything
 * the scanners cannot follow: a tagged response nobody waits for (a
 * synchronizing literal the server refused), a line other than DONE during
 * IDLE, a command whose first words do not fit in c_head.
 *
 * The server scanner is on the path of every relayed byte: it skips
 * literals whole and finds line ends with memchr, so a FETCH of a large
 * message costs it a few comparisons. The client scanner looks at each
 * byte of the (short) command lines, and skips literals whole too.
 */
#include <string.h>
#include <strings.h>

#include "parse_imap.h"

/* Where the end of a line is in "{digits[+]}" [CR] (client scanner). */
enum {
	ls_none = 0,	/* not in a literal announcement */
	ls_open,	/* after "{" */
	ls_digits,	/* after "{" and digits */
	ls_plus,	/* after "{digits+" */
	ls_close,	/* after "}" (and maybe CR): LF starts the literal */
};

/* Literal lengths past this are not followed (19 digits cannot overflow a uint64_t). */
#define IMTRK_LIT_DIGITS	18

/* A command name and its length (compared first: most names differ in it). */
struct imtrk_name {
	const char	*name;
	size_t		 len;
};
#define IMTRK_N(s)	{ s, sizeof(s) - 1 }

/* Commands that leave no state behind that the next login could see. */
static const struct imtrk_name imtrk_safe[] = {
	IMTRK_N("APPEND"), IMTRK_N("CAPABILITY"), IMTRK_N("CHECK"), IMTRK_N("COPY"),
	IMTRK_N("CREATE"), IMTRK_N("DELETE"), IMTRK_N("ESEARCH"), IMTRK_N("EXPUNGE"),
	IMTRK_N("FETCH"), IMTRK_N("GETACL"), IMTRK_N("GETMETADATA"), IMTRK_N("GETQUOTA"),
	IMTRK_N("GETQUOTAROOT"), IMTRK_N("ID"), IMTRK_N("LIST"), IMTRK_N("LISTRIGHTS"),
	IMTRK_N("LSUB"), IMTRK_N("MOVE"), IMTRK_N("MYRIGHTS"), IMTRK_N("NAMESPACE"),
	IMTRK_N("NOOP"), IMTRK_N("RENAME"), IMTRK_N("SEARCH"), IMTRK_N("SETMETADATA"),
	IMTRK_N("SORT"), IMTRK_N("STATUS"), IMTRK_N("STORE"), IMTRK_N("SUBSCRIBE"),
	IMTRK_N("THREAD"), IMTRK_N("UNSUBSCRIBE"), IMTRK_N("XLIST"), { NULL, 0 }
};

/* UID's subcommands (RFC 9051 section 6.4.9, RFC 6851, RFC 5256). */
static const struct imtrk_name imtrk_uid_safe[] = {
	IMTRK_N("COPY"), IMTRK_N("EXPUNGE"), IMTRK_N("FETCH"), IMTRK_N("MOVE"),
	IMTRK_N("SEARCH"), IMTRK_N("SORT"), IMTRK_N("STORE"), IMTRK_N("THREAD"), { NULL, 0 }
};

/*
 * Words that turn CONDSTORE on for the rest of the session wherever they
 * appear: MODSEQ, CHANGEDSINCE (and so UNCHANGEDSINCE), CONDSTORE. The
 * client scanner keeps the last 16 bytes of a command, upper-cased, in two
 * 64-bit words (c_w1 the last 8, c_w2 the 8 before), so that each byte costs
 * a few shifts and compares; these are the words as they look there.
 */
#define IMTRK_B(c, n)	((uint64_t)(unsigned char)(c) << (8 * (n)))
#define IMTRK_MODSEQ	(IMTRK_B('M', 5) | IMTRK_B('O', 4) | IMTRK_B('D', 3) | IMTRK_B('S', 2) | \
			 IMTRK_B('E', 1) | IMTRK_B('Q', 0))
#define IMTRK_GEDSINCE	(IMTRK_B('G', 7) | IMTRK_B('E', 6) | IMTRK_B('D', 5) | IMTRK_B('S', 4) | \
			 IMTRK_B('I', 3) | IMTRK_B('N', 2) | IMTRK_B('C', 1) | IMTRK_B('E', 0))
#define IMTRK_CHAN	(IMTRK_B('C', 3) | IMTRK_B('H', 2) | IMTRK_B('A', 1) | IMTRK_B('N', 0))
#define IMTRK_ONDSTORE	(IMTRK_B('O', 7) | IMTRK_B('N', 6) | IMTRK_B('D', 5) | IMTRK_B('S', 4) | \
			 IMTRK_B('T', 3) | IMTRK_B('O', 2) | IMTRK_B('R', 1) | IMTRK_B('E', 0))

static int	imtrk_in(const struct imtrk_name *, const char *, size_t);
static void	imtrk_taint(struct mg_imap_track *, const char *);
static size_t	imtrk_skip(uint64_t *, size_t);
static void	imtrk_sel_sent(struct mg_imap_track *, uint8_t, const char *, size_t);
static int	imtrk_word(const char *, size_t, size_t *, const char **, size_t *);
static int	imtrk_tag_ok(const char *, size_t);
static enum mg_imtrk_result imtrk_client_line(struct mg_imap_track *, size_t, size_t *);
static void	imtrk_client_byte(struct mg_imap_track *, uint8_t);
static int	imtrk_server_literal(const struct mg_imap_track *, uint64_t *);
static void	imtrk_server_line(struct mg_imap_track *);

/* Skips what is left of a literal within avail bytes; returns the bytes skipped. */
static size_t
imtrk_skip(uint64_t *lit, size_t avail)
{
	size_t k = avail < *lit ? avail : (size_t)*lit;

	*lit -= k;
	return k;
}

void
mg_imap_track_init(struct mg_imap_track *t)
{
	memset(t, 0, sizeof(*t));
	t->c_start = -1;
}

static void
imtrk_taint(struct mg_imap_track *t, const char *why)
{
	if (!t->tainted) {
		t->tainted = 1;
		t->why = why;
	}
}

static int
imtrk_in(const struct imtrk_name *list, const char *w, size_t len)
{
	for (; list->name != NULL; list++)
		if (list->len == len && strncasecmp(list->name, w, len) == 0)
			return 1;
	return 0;
}

/*
 * Whether a tag is one the gateway may answer with: RFC 9051 section 9,
 * tag = 1*<any ASTRING-CHAR except "+">; anything else the provider
 * answers with an untagged BAD, so it goes there.
 */
static int
imtrk_tag_ok(const char *tag, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)tag[i];

		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\+", ch) != NULL)
			return 0;
	}
	return 1;
}

/* The next space-separated word of s[0..len) from *off: 1 found, 0 none. */
static int
imtrk_word(const char *s, size_t len, size_t *off, const char **w, size_t *wlen)
{
	size_t i = *off, b;

	while (i < len && s[i] == ' ')
		i++;
	b = i;
	while (i < len && s[i] != ' ')
		i++;
	*off = i;
	*w = s + b;
	*wlen = i - b;
	return i > b;
}

/*
 * One byte of a client command outside literal data and line ends: kept
 * in the head while there is room, pushed through the word window, and
 * followed through a literal announcement at the end of the line.
 */
static void
imtrk_client_byte(struct mg_imap_track *t, uint8_t b)
{
	uint8_t	 u = b >= 'a' && b <= 'z' ? (uint8_t)(b - 32) : b, prev = (uint8_t)t->c_w1;

	t->c_inline = 1;
	if (t->c_head_len < sizeof(t->c_head))
		t->c_head[t->c_head_len++] = (char)b;
	t->c_w2 = t->c_w2 << 8 | t->c_w1 >> 56;
	t->c_w1 = t->c_w1 << 8 | u;
	if ((t->c_w1 & 0xffffffffffffULL) == IMTRK_MODSEQ ||
	    (t->c_w1 == IMTRK_GEDSINCE && (t->c_w2 & 0xffffffffULL) == IMTRK_CHAN) ||
	    (t->c_w1 == IMTRK_ONDSTORE && (t->c_w2 & 0xff) == 'C'))
		imtrk_taint(t, "CONDSTORE enabled");
	switch (b) {
	case '{':
		/* A literal is an argument of its own: after SP, "(" or "~" (RFC 3516 literal8). */
		t->c_litst = prev == ' ' || prev == '(' || prev == '~' ? ls_open : ls_none;
		t->c_num = 0;
		return;
	case '+':
		t->c_litst = t->c_litst == ls_digits ? ls_plus : ls_none;
		return;
	case '}':
		t->c_litst = t->c_litst == ls_digits || t->c_litst == ls_plus ? ls_close : ls_none;
		return;
	case '\r':
		if (t->c_litst != ls_close)
			t->c_litst = ls_none;
		return;
	}
	if (b >= '0' && b <= '9' && (t->c_litst == ls_open || t->c_litst == ls_digits)) {
		if (t->c_num > UINT64_MAX / 100) {
			/* More digits than any literal a scanner can follow. */
			imtrk_taint(t, "literal too large to follow");
			t->c_litst = ls_none;
			return;
		}
		t->c_num = t->c_num * 10 + (uint64_t)(b - '0');
		t->c_litst = ls_digits;
		return;
	}
	t->c_litst = ls_none;
}

/*
 * A whole client command (or, during IDLE, its DONE) ended with the LF at
 * offset end of this buffer. Counts it, or reports a LOGOUT the gateway
 * may answer itself.
 */
static enum mg_imtrk_result
imtrk_client_line(struct mg_imap_track *t, size_t end, size_t *consumed)
{
	const char	*w, *tag;
	size_t		 len = t->c_head_len, off = 0, wl, tl;
	int		 full = t->c_head_len < sizeof(t->c_head);

	while (len > 0 && t->c_head[len - 1] == '\r')
		len--;
	if (t->c_idle) {
		/* RFC 2177: the only thing a client sends during IDLE is DONE. */
		if (len == 4 && strncasecmp(t->c_head, "DONE", 4) == 0)
			t->c_idle = 0;
		else
			imtrk_taint(t, "unexpected input during IDLE");
		return MG_IMTRK_AGAIN;
	}
	if (len == 0)
		return MG_IMTRK_AGAIN;	/* an empty line: the server may complain, untagged */
	(void)imtrk_word(t->c_head, len, &off, &tag, &tl);
	if (!imtrk_word(t->c_head, len, &off, &w, &wl) || (!full && off >= len)) {
		/* No command name, or one that may have been cut: answered, but how is unknown. */
		t->pending++;
		if (!full)
			imtrk_taint(t, "command too long to follow");
		return MG_IMTRK_AGAIN;
	}
	/*
	 * The caller answers with the tag c_head[0 .. tl): it must begin the
	 * line, and the head must hold the whole command but its LF (no
	 * literal, whose LF the head leaves out), so that it is what was sent.
	 */
	if (wl == 6 && strncasecmp(w, "LOGOUT", 6) == 0 && off == len && t->pending == 0 &&
	    t->s_head_len == 0 && t->s_tail_len == 0 && t->s_lit == 0 &&
	    !t->tainted && t->c_start >= 0 && tag == t->c_head && imtrk_tag_ok(tag, tl) &&
	    (size_t)t->c_head_len == end - (size_t)t->c_start && tl <= UINT8_MAX) {
		*consumed = (size_t)t->c_start;
		t->logout_tag_len = (uint8_t)tl;
		t->logout_len = end + 1 - (size_t)t->c_start;
		return MG_IMTRK_LOGOUT;
	}
	if (t->pending == UINT32_MAX) {
		imtrk_taint(t, "too many commands in flight");
		return MG_IMTRK_AGAIN;
	}
	t->pending++;
	/*
	 * The selected state follows the answer to the last of SELECT,
	 * EXAMINE, CLOSE and UNSELECT: a mailbox may be selected from the
	 * moment a SELECT is sent (a refused one may leave the old one
	 * selected), and none is only once a CLOSE or UNSELECT was answered
	 * OK (a refused one, or one with arguments, changes nothing).
	 */
	if ((wl == 6 && strncasecmp(w, "SELECT", 6) == 0) || (wl == 7 && strncasecmp(w, "EXAMINE", 7) == 0)) {
		t->selected = 1;
		imtrk_sel_sent(t, 1, tag, tl);
	} else if ((wl == 5 && strncasecmp(w, "CLOSE", 5) == 0) ||
	    (wl == 8 && strncasecmp(w, "UNSELECT", 8) == 0))
		imtrk_sel_sent(t, 0, tag, tl);
	else if (wl == 4 && strncasecmp(w, "IDLE", 4) == 0)
		t->c_idle = 1;
	else if (wl == 6 && strncasecmp(w, "LOGOUT", 6) == 0)
		imtrk_taint(t, "LOGOUT relayed");
	else if (wl == 3 && strncasecmp(w, "UID", 3) == 0) {
		if (!imtrk_word(t->c_head, len, &off, &w, &wl) || (!full && off >= len) ||
		    !imtrk_in(imtrk_uid_safe, w, wl))
			imtrk_taint(t, "a UID command that may change the session");
	} else if (!imtrk_in(imtrk_safe, w, wl))
		imtrk_taint(t, "a command that may change the session");
	return MG_IMTRK_AGAIN;
}

enum mg_imtrk_result
mg_imap_track_client(struct mg_imap_track *t, const uint8_t *p, size_t n, size_t *consumed)
{
	size_t	i = 0;

	t->c_start = t->c_inline || t->c_lit > 0 ? -1 : 0;
	while (i < n && !t->tainted) {
		if (t->c_lit > 0) {
			i += imtrk_skip(&t->c_lit, n - i);
			continue;
		}
		if (!t->c_inline)
			t->c_start = (int64_t)i;
		if (p[i] != '\n') {
			imtrk_client_byte(t, p[i]);
			i++;
			continue;
		}
		t->c_inline = 1;
		if (t->c_litst == ls_close) {
			/* The command goes on after n bytes of literal data. */
			t->c_lit = t->c_num;
			t->c_litst = ls_none;
			i++;
			continue;
		}
		t->c_litst = ls_none;
		if (imtrk_client_line(t, i, consumed) == MG_IMTRK_LOGOUT)
			return MG_IMTRK_LOGOUT;
		t->c_inline = 0;
		t->c_head_len = 0;
		t->c_w1 = t->c_w2 = 0;
		i++;
	}
	*consumed = n;
	return MG_IMTRK_AGAIN;
}

/* Whether the line in s_tail ends in a literal announcement; its length in *n. */
static int
imtrk_server_literal(const struct mg_imap_track *t, uint64_t *n)
{
	size_t		 e = t->s_tail_len, d;
	uint64_t	 v = 0;

	if (e > 0 && t->s_tail[e - 1] == '\r')
		e--;
	if (e < 3 || t->s_tail[e - 1] != '}')
		return 0;
	e--;
	for (d = e; d > 0 && t->s_tail[d - 1] >= '0' && t->s_tail[d - 1] <= '9'; d--)
		;
	if (d == e || (d > 0 && t->s_tail[d - 1] != '{'))
		return 0;
	/* A literal is an argument of its own: after SP, "(" or "~" (RFC 3516 literal8). */
	if (d >= 2 && t->s_tail[d - 2] != ' ' && t->s_tail[d - 2] != '(' && t->s_tail[d - 2] != '~')
		return 0;
	if (d == 0 && t->s_tail_len < sizeof(t->s_tail))
		return 0;	/* the digits begin the line (or follow a literal): no "{" */
	/* Too many digits, or so many that the "{" is further back than the tail. */
	if (d == 0 || e - d > IMTRK_LIT_DIGITS)
		return -1;
	for (; d < e; d++)
		v = v * 10 + (uint64_t)(t->s_tail[d] - '0');
	*n = v;
	return 1;
}

/* The last SELECT/EXAMINE (kind 1) or CLOSE/UNSELECT (kind 0) was sent with this tag. */
static void
imtrk_sel_sent(struct mg_imap_track *t, uint8_t kind, const char *tag, size_t tl)
{
	t->sel_kind = kind;
	t->sel_tag_len = 0;
	if (tl > 0 && tl <= sizeof(t->sel_tag)) {
		memcpy(t->sel_tag, tag, tl);
		t->sel_tag_len = (uint8_t)tl;
	}
}

/* A whole server response ended. */
static void
imtrk_server_line(struct mg_imap_track *t)
{
	size_t n = t->s_head_len, tl;

	if (n == 0 || t->s_head[0] == '*' || t->s_head[0] == '+' || t->s_head[0] == '\r')
		return;		/* untagged data, a continuation, or an empty line */
	if (t->pending == 0) {
		imtrk_taint(t, "a tagged response no command waits for");
		return;
	}
	t->pending--;
	/* The answer to the last CLOSE or UNSELECT: "tag OK" and none is selected. */
	tl = t->sel_tag_len;
	if (tl > 0 && n > tl + 3 && memcmp(t->s_head, t->sel_tag, tl) == 0 && t->s_head[tl] == ' ') {
		if (t->sel_kind == 0 && strncasecmp(t->s_head + tl + 1, "OK", 2) == 0 &&
		    (t->s_head[tl + 3] == ' ' || t->s_head[tl + 3] == '\r'))
			t->selected = 0;
		t->sel_tag_len = 0;
	}
}

void
mg_imap_track_server(struct mg_imap_track *t, const uint8_t *p, size_t n)
{
	const uint8_t	*q;
	size_t		 i = 0, seg, k, keep;
	uint64_t	 lit;
	int		 r;

	while (i < n && !t->tainted) {
		if (t->s_lit > 0) {
			i += imtrk_skip(&t->s_lit, n - i);
			continue;
		}
		q = memchr(p + i, '\n', n - i);
		seg = (q != NULL ? (size_t)(q - p) : n) - i;
		for (k = 0; k < seg && t->s_head_len < sizeof(t->s_head); k++)
			t->s_head[t->s_head_len++] = (char)p[i + k];
		/* The tail keeps the last bytes of the line: enough for "{" 18 digits "}" CR. */
		if (seg >= sizeof(t->s_tail)) {
			memcpy(t->s_tail, p + i + seg - sizeof(t->s_tail), sizeof(t->s_tail));
			t->s_tail_len = sizeof(t->s_tail);
		} else {
			keep = sizeof(t->s_tail) - seg;
			if (t->s_tail_len > keep) {
				memmove(t->s_tail, t->s_tail + t->s_tail_len - keep, keep);
				t->s_tail_len = (uint8_t)keep;
			}
			memcpy(t->s_tail + t->s_tail_len, p + i, seg);
			t->s_tail_len = (uint8_t)(t->s_tail_len + seg);
		}
		i += seg;
		if (q == NULL)
			break;
		i++;	/* the LF */
		if ((r = imtrk_server_literal(t, &lit)) == -1) {
			imtrk_taint(t, "literal too large to follow");
			break;
		}
		t->s_tail_len = 0;
		if (r == 1) {
			t->s_lit = lit;		/* the response goes on after the literal */
			continue;
		}
		imtrk_server_line(t);
		t->s_head_len = 0;
	}
}
