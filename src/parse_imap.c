/*
 * parse_imap.c - pure IMAP parsers: the client command state machine the
 * front end feeds, a bounded line finder, and the server response classifier
 * the upstream login uses. See parse_imap.h for the interface.
 *
 * The command parser reads the grammar of RFC 9051 section 9 (and RFC 3501
 * section 9) only as far as a gateway needs before login:
 *
 *	command  = tag SP name *(SP argument) CRLF
 *	argument = atom / quoted / literal / literal+
 *
 * Parenthesised lists and literal8 (RFC 3516) are refused as unsupported
 * syntax; after login the gateway relays bytes and parses nothing. The
 * machine looks at one byte at a time, keeps all of its state in the parser
 * and can stop after any byte, so a command split over many reads parses
 * exactly as the same command read at once.
 *
 * Limits. Every byte of a command except literal data counts against
 * line_max, CR LF included and summed over the lines a literal splits the
 * command into; going past it is fatal, because a client that sends such
 * lines is not a mail client. Literals are bounded by literal_max and by the
 * room left in argbuf. The bytes of a line that is being skipped after a
 * syntax error are not stored and not counted: discarding costs nothing,
 * and the front end's idle timeout bounds a client that never sends LF.
 */
#include <limits.h>
#include <string.h>

#include "parse_imap.h"

/* The states of the command parser, kept in p->state between calls. */
enum {
	sw_start = 0,		/* before the first byte of a command */
	sw_tag,			/* in the tag */
	sw_name_start,		/* after the tag's SP: the command name */
	sw_name,		/* in the command name */
	sw_arg_start,		/* after an SP: an argument must follow */
	sw_atom,		/* in an atom */
	sw_quoted,		/* in a quoted string */
	sw_quoted_bs,		/* after a backslash in a quoted string */
	sw_lit_first,		/* after "{": the first digit */
	sw_lit_num,		/* in the digits of a literal's length */
	sw_lit_big,		/* in digits already past literal_max */
	sw_lit_plus,		/* after "{n+": the "}" */
	sw_lit_end,		/* after "{n}": CR or LF */
	sw_lit_lf,		/* after "{n}" CR: LF */
	sw_lit_plus_end,	/* after "{n+}": CR or LF */
	sw_lit_plus_lf,		/* after "{n+}" CR: LF */
	sw_literal,		/* in literal data, p->literal_left bytes to go */
	sw_after_arg,		/* after the name or an argument: SP, CR or LF */
	sw_almost_done,		/* after CR: LF */
	sw_skip,		/* after a syntax error: discarding up to LF */
	sw_dead			/* after a fatal error: nothing more is parsed */
};

static int	imap_is_atom_char(unsigned int);
static int	imap_is_astring_char(unsigned int);
static int	imap_is_tag_char(unsigned int);
static int	imap_word_eq(const char *, size_t, const char *);
static void	imap_cmd_reset(struct mg_imap_parser *);
static enum mg_imap_result imap_cmd_done(struct mg_imap_parser *);
static struct mg_imap_arg *imap_arg_begin(struct mg_imap_parser *,
		    enum mg_imap_argtype);
static int	imap_arg_putc(struct mg_imap_parser *, uint8_t);
static void	imap_arg_end(struct mg_imap_parser *);
static int	imap_literal_fits(const struct mg_imap_parser *, size_t);

/*
 * ATOM-CHAR (RFC 9051 section 9): any CHAR except atom-specials, which are
 * "(" ")" "{" SP CTL list-wildcards ("%" "*") quoted-specials ('"' "\") and
 * resp-specials ("]"). CHAR is 7-bit, so 8-bit bytes are not atom chars.
 */
static int
imap_is_atom_char(unsigned int c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '%':
	case '*':
	case '"':
	case '\\':
	case ']':
		return 0;
	}
	return 1;
}

/* ASTRING-CHAR = ATOM-CHAR / resp-specials (RFC 9051 section 9). */
static int
imap_is_astring_char(unsigned int c)
{
	return c == ']' || imap_is_atom_char(c);
}

/* tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 section 9). */
static int
imap_is_tag_char(unsigned int c)
{
	return c != '+' && imap_is_astring_char(c);
}

/* Compares s (n bytes) with the NUL-terminated word w, ignoring ASCII case. */
static int
imap_word_eq(const char *s, size_t n, const char *w)
{
	size_t		i;
	unsigned char	a, b;

	for (i = 0; i < n; i++) {
		a = (unsigned char)s[i];
		b = (unsigned char)w[i];
		if (b == '\0')
			return 0;
		if (a >= 'a' && a <= 'z')
			a -= 'a' - 'A';
		if (b >= 'a' && b <= 'z')
			b -= 'a' - 'A';
		if (a != b)
			return 0;
	}
	return w[n] == '\0';
}

/*
 * Forgets the previous command. This runs on the first byte of the next
 * command rather than when OK is returned, so that the caller can still read
 * p->cmd (and the argbuf it points into) after OK.
 */
static void
imap_cmd_reset(struct mg_imap_parser *p)
{
	p->cmd.tag[0] = '\0';
	p->cmd.name[0] = '\0';
	p->cmd.nargs = 0;
	p->argbuf_used = 0;
	p->line_len = 0;
	p->literal_left = 0;
	p->error = NULL;
	p->fatal = 0;
}

/* Decides what a command whose final LF was just read amounts to. */
static enum mg_imap_result
imap_cmd_done(struct mg_imap_parser *p)
{
	if (p->error != NULL)
		return MG_IMAP_INVALID;
	if (p->cmd.tag[0] == '\0') {
		p->error = "empty command";
		return MG_IMAP_INVALID;
	}
	if (p->cmd.name[0] == '\0') {
		p->error = "missing command";
		return MG_IMAP_INVALID;
	}
	return MG_IMAP_OK;
}

/*
 * Starts a new argument at the end of argbuf. The caller has checked that an
 * argument slot is free and that argbuf has room for at least the NUL.
 */
static struct mg_imap_arg *
imap_arg_begin(struct mg_imap_parser *p, enum mg_imap_argtype type)
{
	struct mg_imap_arg	*arg;

	arg = &p->cmd.args[p->cmd.nargs++];
	arg->type = type;
	arg->p = p->argbuf + p->argbuf_used;
	arg->len = 0;
	return arg;
}

/*
 * Appends a byte to the current argument, always keeping one byte of argbuf
 * free for the argument's NUL. Returns -1 when argbuf is full.
 */
static int
imap_arg_putc(struct mg_imap_parser *p, uint8_t c)
{
	if (p->argbuf_used + 1 >= sizeof(p->argbuf))
		return -1;
	p->argbuf[p->argbuf_used++] = (char)c;
	p->cmd.args[p->cmd.nargs - 1].len++;
	return 0;
}

/* NUL-terminates the current argument; imap_arg_putc kept room for it. */
static void
imap_arg_end(struct mg_imap_parser *p)
{
	p->argbuf[p->argbuf_used++] = '\0';
}

/* Whether n literal bytes and their NUL fit in what is left of argbuf. */
static int
imap_literal_fits(const struct mg_imap_parser *p, size_t n)
{
	return n < sizeof(p->argbuf) - p->argbuf_used;
}

void
mg_imap_parser_init(struct mg_imap_parser *p, size_t line_max,
    size_t literal_max)
{
	/*
	 * A line cannot usefully be longer than the arguments it may carry,
	 * and a literal needs one byte of argbuf for its NUL.
	 */
	if (line_max > MG_IMAP_ARGBUF)
		line_max = MG_IMAP_ARGBUF;
	if (literal_max > MG_IMAP_ARGBUF - 1)
		literal_max = MG_IMAP_ARGBUF - 1;
	p->line_max = line_max;
	p->literal_max = literal_max;
	mg_imap_parser_reset(p);
}

void
mg_imap_parser_reset(struct mg_imap_parser *p)
{
	size_t	line_max = p->line_max, literal_max = p->literal_max;

	/* argbuf goes too: it may hold a password from a LOGIN. */
	memset(p, 0, sizeof(*p));
	p->state = sw_start;
	p->line_max = line_max;
	p->literal_max = literal_max;
}

/*
 * Records a non-fatal syntax error and goes on in sw_skip with the same byte,
 * which may be the LF that ends the line. Arguments read so far are dropped
 * so that nobody reads a half-built one; the tag and name stay for the BAD.
 */
#define IMAP_ERROR(msg) do {						\
	p->error = (msg);						\
	p->cmd.nargs = 0;						\
	state = sw_skip;						\
	goto again;							\
} while (0)

/* Records a fatal error: the parser stops here for good. */
#define IMAP_FATAL(msg) do {						\
	p->error = (msg);						\
	p->fatal = 1;							\
	p->cmd.nargs = 0;						\
	state = sw_dead;						\
	rc = MG_IMAP_INVALID;						\
	goto done;							\
} while (0)

enum mg_imap_result
mg_imap_parse(struct mg_imap_parser *p, const uint8_t *data, size_t len,
    size_t *consumed)
{
	const uint8_t		*pos, *last;
	enum mg_imap_result	 rc = MG_IMAP_AGAIN;
	struct mg_imap_arg	*arg;
	size_t			 n;
	int			 state = p->state, sync;
	unsigned int		 c, d;

	*consumed = 0;
	if (state == sw_dead)
		return MG_IMAP_INVALID;
	/* data may be NULL when len is 0, and NULL + 0 is undefined. */
	if (len == 0)
		return MG_IMAP_AGAIN;
	pos = data;
	last = data + len;

	while (pos < last) {
		/* Literal data is copied in bulk and not counted as line. */
		if (state == sw_literal) {
			n = (size_t)(last - pos);
			if (n > p->literal_left)
				n = p->literal_left;
			memcpy(p->argbuf + p->argbuf_used, pos, n);
			p->argbuf_used += n;
			p->literal_left -= n;
			pos += n;
			if (p->literal_left == 0) {
				imap_arg_end(p);
				state = sw_after_arg;
			}
			continue;
		}

		c = *pos++;
		if (state == sw_start)
			imap_cmd_reset(p);
		if (state != sw_skip && ++p->line_len > p->line_max) {
			/* An unterminated tag was not read in full. */
			if (state == sw_start || state == sw_tag)
				p->cmd.tag[0] = '\0';
			IMAP_FATAL("line too long");
		}

again:
		switch (state) {
		case sw_start:
			if (c == '\r') {
				state = sw_almost_done;
				break;
			}
			if (c == '\n') {
				rc = imap_cmd_done(p);
				state = sw_start;
				goto done;
			}
			state = sw_tag;
			/* FALLTHROUGH */

		case sw_tag:
			n = strlen(p->cmd.tag);
			if (imap_is_tag_char(c)) {
				if (n == MG_IMAP_TAG_MAX) {
					p->cmd.tag[0] = '\0';
					IMAP_ERROR("tag too long");
				}
				p->cmd.tag[n] = (char)c;
				p->cmd.tag[n + 1] = '\0';
				break;
			}
			if (n > 0 && c == ' ') {
				state = sw_name_start;
				break;
			}
			if (n > 0 && (c == '\r' || c == '\n')) {
				/* A tag alone: "missing command" at LF. */
				state = sw_after_arg;
				goto again;
			}
			p->cmd.tag[0] = '\0';
			IMAP_ERROR("invalid tag");

		case sw_name_start:
			if (c == '\r' || c == '\n') {
				state = sw_after_arg;
				goto again;
			}
			if (!imap_is_atom_char(c))
				IMAP_ERROR("invalid command name");
			state = sw_name;
			/* FALLTHROUGH */

		case sw_name:
			if (!imap_is_atom_char(c)) {
				state = sw_after_arg;
				goto again;
			}
			n = strlen(p->cmd.name);
			if (n == MG_IMAP_NAME_MAX)
				IMAP_ERROR("command name too long");
			if (c >= 'a' && c <= 'z')
				c -= 'a' - 'A';
			p->cmd.name[n] = (char)c;
			p->cmd.name[n + 1] = '\0';
			break;

		case sw_arg_start:
			if (p->cmd.nargs == MG_IMAP_ARGS_MAX)
				IMAP_ERROR("too many arguments");
			if (p->argbuf_used >= sizeof(p->argbuf))
				IMAP_ERROR("arguments too long");
			if (c == '"') {
				imap_arg_begin(p, MG_IMAP_QUOTED);
				state = sw_quoted;
				break;
			}
			if (c == '{') {
				imap_arg_begin(p, MG_IMAP_LIT);
				state = sw_lit_first;
				break;
			}
			/* Lists are not needed before login (see the top). */
			if (c == '(')
				IMAP_ERROR("unsupported syntax");
			if (!imap_is_astring_char(c))
				IMAP_ERROR("syntax error");
			imap_arg_begin(p, MG_IMAP_ATOM);
			state = sw_atom;
			/* FALLTHROUGH */

		case sw_atom:
			arg = &p->cmd.args[p->cmd.nargs - 1];
			if (imap_is_astring_char(c)) {
				if (imap_arg_putc(p, (uint8_t)c) == -1)
					IMAP_ERROR("arguments too long");
				break;
			}
			/* "~{n}" is literal8 (RFC 3516 section 4.2). */
			if (c == '{' && arg->len == 1 && arg->p[0] == '~')
				IMAP_ERROR("unsupported syntax");
			imap_arg_end(p);
			state = sw_after_arg;
			goto again;

		case sw_quoted:
			/*
			 * quoted = DQUOTE *QUOTED-CHAR DQUOTE: any byte but CR
			 * and LF, with '"' and '\' escaped (RFC 9051 section
			 * 9). RFC 9051 allows UTF-8 here, so 8-bit bytes pass
			 * (unchecked); NUL never does (RFC 9051 section 4.3).
			 */
			if (c == '"') {
				imap_arg_end(p);
				state = sw_after_arg;
				break;
			}
			if (c == '\\') {
				state = sw_quoted_bs;
				break;
			}
			if (c == '\0' || c == '\r' || c == '\n')
				IMAP_ERROR("invalid quoted string");
			if (imap_arg_putc(p, (uint8_t)c) == -1)
				IMAP_ERROR("arguments too long");
			break;

		case sw_quoted_bs:
			/* Only quoted-specials may be escaped. */
			if (c != '"' && c != '\\')
				IMAP_ERROR("invalid quoted string");
			if (imap_arg_putc(p, (uint8_t)c) == -1)
				IMAP_ERROR("arguments too long");
			state = sw_quoted;
			break;

		case sw_lit_first:
			if (c < '0' || c > '9')
				IMAP_ERROR("invalid literal");
			p->literal_left = 0;
			state = sw_lit_num;
			/* FALLTHROUGH */

		case sw_lit_num:
			if (c >= '0' && c <= '9') {
				/*
				 * literal_left <= literal_max < MG_IMAP_ARGBUF
				 * here, so the product cannot overflow; stop
				 * accumulating as soon as the limit is passed.
				 */
				d = c - '0';
				p->literal_left = p->literal_left * 10 + d;
				if (p->literal_left > p->literal_max)
					state = sw_lit_big;
				break;
			}
			if (c == '+') {
				/*
				 * A non-synchronizing literal follows at once
				 * (RFC 7888 section 4): if it cannot be taken,
				 * its bytes cannot be told from commands.
				 */
				if (!imap_literal_fits(p, p->literal_left))
					IMAP_FATAL("arguments too long");
				state = sw_lit_plus;
				break;
			}
			if (c == '}') {
				/*
				 * The client waits for "+" before it sends a
				 * synchronizing literal (RFC 9051 section
				 * 7.5), so a tagged BAD refuses it safely.
				 */
				if (!imap_literal_fits(p, p->literal_left))
					IMAP_ERROR("arguments too long");
				state = sw_lit_end;
				break;
			}
			IMAP_ERROR("invalid literal");

		case sw_lit_big:
			if (c >= '0' && c <= '9')
				break;
			if (c == '+')
				IMAP_FATAL("literal too large");
			if (c == '}')
				IMAP_ERROR("literal too large");
			IMAP_ERROR("invalid literal");

		case sw_lit_plus:
			if (c != '}')
				IMAP_ERROR("invalid literal");
			state = sw_lit_plus_end;
			break;

		case sw_lit_end:
		case sw_lit_plus_end:
			if (c == '\r') {
				state = state == sw_lit_end ? sw_lit_lf :
				    sw_lit_plus_lf;
				break;
			}
			/* FALLTHROUGH */

		case sw_lit_lf:
		case sw_lit_plus_lf:
			if (c != '\n')
				IMAP_ERROR("invalid literal");
			sync = state == sw_lit_end || state == sw_lit_lf;
			arg = &p->cmd.args[p->cmd.nargs - 1];
			arg->len = p->literal_left;
			if (p->literal_left == 0) {
				imap_arg_end(p);
				state = sw_after_arg;
			} else
				state = sw_literal;
			/* The caller sends "+ ..." now (RFC 9051 section 7.5). */
			if (sync) {
				rc = MG_IMAP_LITERAL;
				goto done;
			}
			break;

		case sw_after_arg:
			if (c == ' ') {
				state = sw_arg_start;
				break;
			}
			if (c == '\r') {
				state = sw_almost_done;
				break;
			}
			if (c == '\n') {
				rc = imap_cmd_done(p);
				state = sw_start;
				goto done;
			}
			IMAP_ERROR("syntax error");

		case sw_almost_done:
			if (c != '\n')
				IMAP_ERROR("syntax error");
			rc = imap_cmd_done(p);
			state = sw_start;
			goto done;

		case sw_skip:
			if (c == '\n') {
				rc = imap_cmd_done(p);
				state = sw_start;
				goto done;
			}
			break;

		default:
			/* sw_literal and sw_dead never get here. */
			IMAP_FATAL("internal error");
		}
	}

done:
	p->state = state;
	*consumed = (size_t)(pos - data);
	return rc;
}

int
mg_line_find(const uint8_t *data, size_t len, size_t max, size_t *linelen,
    size_t *consumed)
{
	const uint8_t	*lf;
	size_t		 n, i;

	n = len < max ? len : max;
	lf = n > 0 ? memchr(data, '\n', n) : NULL;
	if (lf == NULL)
		return len >= max ? -1 : 0;
	i = (size_t)(lf - data);
	*consumed = i + 1;
	*linelen = i > 0 && data[i - 1] == '\r' ? i - 1 : i;
	return 1;
}

/*
 * response = continue-req / response-data / response-tagged / response-fatal
 * (RFC 9051 section 7 and 9). A line is classified, not fully parsed: the
 * caller looks at the status, the response code and the capability list.
 */
int
mg_imap_resp_parse(const char *line, size_t len, struct mg_imap_resp *r)
{
	static const struct {
		const char		*word;
		enum mg_imap_resp_status status;
	} words[] = {
		{ "OK", MG_IMAP_ST_OK },
		{ "NO", MG_IMAP_ST_NO },
		{ "BAD", MG_IMAP_ST_BAD },
		{ "BYE", MG_IMAP_ST_BYE },
		{ "PREAUTH", MG_IMAP_ST_PREAUTH },
	};
	const char	*s, *end, *close;
	size_t		 i, n;

	memset(r, 0, sizeof(*r));
	/* A line has no line ends in it, and IMAP text never has NUL. */
	if (len == 0 || memchr(line, '\0', len) != NULL ||
	    memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
		return -1;
	end = line + len;

	/* continue-req = "+" SP (resp-text / base64); "+" alone is common. */
	if (line[0] == '+') {
		r->type = MG_IMAP_RESP_CONTINUE;
		if (len == 1) {
			r->text = end;
			return 0;
		}
		if (line[1] != ' ')
			return -1;
		r->text = line + 2;
		r->text_len = len - 2;
		return 0;
	}

	if (line[0] == '*') {
		r->type = MG_IMAP_RESP_UNTAGGED;
		s = line + 1;
	} else {
		for (i = 0; i < len && imap_is_tag_char((unsigned char)line[i]);
		    i++)
			;
		if (i == 0 || i > MG_IMAP_TAG_MAX)
			return -1;
		memcpy(r->tag, line, i);
		r->tag[i] = '\0';
		r->type = MG_IMAP_RESP_TAGGED;
		s = line + i;
	}
	if (s == end || *s != ' ')
		return -1;
	s++;

	for (n = 0; s + n < end && s[n] != ' '; n++)
		;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (imap_word_eq(s, n, words[i].word))
			break;
	if (i == sizeof(words) / sizeof(words[0])) {
		/* response-tagged always carries a status. */
		if (r->type == MG_IMAP_RESP_TAGGED || n == 0)
			return -1;
		r->data = s;
		r->data_len = (size_t)(end - s);
		return 0;
	}
	r->status = words[i].status;
	s += n;

	/*
	 * resp-text = ["[" resp-text-code "]" SP] [text]. Servers that send
	 * nothing after the status, or no SP after "]", are let through.
	 */
	if (s < end)
		s++;
	if (s < end && *s == '[') {
		close = memchr(s + 1, ']', (size_t)(end - s - 1));
		if (close == NULL || close == s + 1)
			return -1;
		r->code = s + 1;
		r->code_len = (size_t)(close - s - 1);
		s = close + 1;
		if (s < end && *s == ' ')
			s++;
	}
	r->text = s;
	r->text_len = (size_t)(end - s);
	return 0;
}

int
mg_imap_caps_has(const char *caps, size_t len, const char *cap)
{
	size_t	i = 0, start, n, caplen = strlen(cap);
	int	first = 1;

	if (caplen == 0)
		return 0;
	while (i < len) {
		while (i < len && caps[i] == ' ')
			i++;
		start = i;
		while (i < len && caps[i] != ' ')
			i++;
		n = i - start;
		if (n == 0)
			break;
		/* resp-text-code "CAPABILITY" SP capability-data. */
		if (first && imap_word_eq(caps + start, n, "CAPABILITY")) {
			first = 0;
			continue;
		}
		first = 0;
		if (n == caplen && imap_word_eq(caps + start, n, cap))
			return 1;
	}
	return 0;
}

/*
 * The output is NUL-terminated, so out needs room for the quoted string and
 * one more byte. On failure out is wiped up to where it was written, since s
 * is usually a password.
 */
int
mg_imap_quote(const char *s, size_t slen, char *out, size_t outlen)
{
	size_t		i, o = 0, need;
	unsigned char	c;

	if (outlen < 3)
		goto fail;
	out[o++] = '"';
	for (i = 0; i < slen; i++) {
		c = (unsigned char)s[i];
		/* TEXT-CHAR excludes CR and LF; CHAR excludes NUL, 8-bit. */
		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
			goto fail;
		/* Room for this byte, its backslash, the '"' and the NUL. */
		need = c == '"' || c == '\\' ? 2 : 1;
		if (outlen - o < need + 2 || o > INT_MAX - 4)
			goto fail;
		if (need == 2)
			out[o++] = '\\';
		out[o++] = (char)c;
	}
	out[o++] = '"';
	out[o] = '\0';
	return (int)o;

fail:
	if (o > 0)
		memset(out, 0, o);
	return -1;
}
