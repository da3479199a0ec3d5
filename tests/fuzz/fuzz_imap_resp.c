/*
 * fuzz_imap_resp.c - libFuzzer driver for the response side of
 * parse_imap.c: mg_line_find, mg_imap_resp_parse, mg_imap_caps_has and
 * mg_imap_quote.
 *
 * The first input byte picks the line limit; the rest is what a server
 * sends. Each line found is classified and the result checked against the
 * line; its words are looked up as capabilities; and the line is quoted and
 * read back through mg_imap_parse, which must return exactly the line.
 */
/* fuzz-sources: src/parse_imap.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse_imap.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

/* Longer than the longest line mg_line_find may return here. */
#define LINE_BUF	(4 * 1024 + 16)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct mg_imap_parser	parser;

/* Whether [p, p + n) lies within [line, line + len]. */
static int
inside(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && p <= line + len && n <= (size_t)(line + len - p);
}

static void
check_resp(const char *line, size_t len)
{
	struct mg_imap_resp	r;
	size_t			i;

	if (mg_imap_resp_parse(line, len, &r) == -1)
		return;
	CHECK(len > 0);
	CHECK(memchr(line, '\0', len) == NULL);
	CHECK(memchr(r.tag, '\0', sizeof(r.tag)) != NULL);
	switch (r.type) {
	case MG_IMAP_RESP_CONTINUE:
		CHECK(line[0] == '+' && r.status == MG_IMAP_ST_NONE);
		CHECK(r.tag[0] == '\0' && r.code == NULL && r.data == NULL);
		break;
	case MG_IMAP_RESP_UNTAGGED:
		CHECK(line[0] == '*' && r.tag[0] == '\0');
		break;
	case MG_IMAP_RESP_TAGGED:
		CHECK(r.status != MG_IMAP_ST_NONE);
		i = strlen(r.tag);
		CHECK(i > 0 && i <= MG_IMAP_TAG_MAX && i < len);
		CHECK(memcmp(r.tag, line, i) == 0 && line[i] == ' ');
		break;
	default:
		abort();
	}
	if (r.status == MG_IMAP_ST_NONE && r.type == MG_IMAP_RESP_UNTAGGED) {
		CHECK(r.data != NULL && r.data_len > 0);
		CHECK(inside(r.data, r.data_len, line, len));
		CHECK(r.data + r.data_len == line + len);
		CHECK(r.text == NULL && r.code == NULL);
	} else {
		CHECK(r.data == NULL);
		CHECK(r.text != NULL && inside(r.text, r.text_len, line, len));
		CHECK(r.text + r.text_len == line + len);
	}
	if (r.code != NULL) {
		CHECK(r.code_len > 0 && inside(r.code, r.code_len, line, len));
		CHECK(r.code[-1] == '[' && r.code[r.code_len] == ']');
		CHECK(memchr(r.code, ']', r.code_len) == NULL);
		CHECK(r.code + r.code_len < r.text);
		/* Looking up capabilities in a code never crashes. */
		(void)mg_imap_caps_has(r.code, r.code_len, "IMAP4rev1");
		(void)mg_imap_caps_has(r.code, r.code_len, "CAPABILITY");
	}
}

/* Whether s holds w as a whole word: the slow and obvious way. */
static int
has_word(const char *s, size_t len, const char *w)
{
	size_t	i, n = strlen(w);

	for (i = 0; i + n <= len; i++)
		if ((i == 0 || s[i - 1] == ' ') &&
		    (i + n == len || s[i + n] == ' ') &&
		    strncasecmp(s + i, w, n) == 0)
			return 1;
	return 0;
}

/*
 * Every word of the line but a leading "CAPABILITY" must be found as a
 * capability, in either case; "CAPABILITY" itself only when it is not first.
 */
static void
check_caps(const char *line, size_t len)
{
	char	word[LINE_BUF];
	size_t	i = 0, start, n, k;
	int	first = 1;

	while (i < len) {
		while (i < len && line[i] == ' ')
			i++;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		n = i - start;
		if (n == 0 || memchr(line + start, '\0', n) != NULL) {
			first = 0;
			continue;
		}
		memcpy(word, line + start, n);
		word[n] = '\0';
		if (first && strcasecmp(word, "CAPABILITY") == 0) {
			CHECK(mg_imap_caps_has(line, len, word) ==
			    has_word(line + i, len - i, "CAPABILITY"));
		} else {
			CHECK(mg_imap_caps_has(line, len, word) == 1);
			for (k = 0; k < n; k++)
				if (word[k] >= 'a' && word[k] <= 'z')
					word[k] -= 'a' - 'A';
			CHECK(mg_imap_caps_has(line, len, word) == 1);
		}
		first = 0;
	}
	(void)mg_imap_caps_has(line, len, "SASL-IR");
}

/* Quoting either refuses the line or makes something that parses back. */
static void
check_quote(const char *line, size_t len)
{
	static char	q[2 * LINE_BUF + 8], cmd[2 * LINE_BUF + 32];
	size_t		i, used;
	int		n, quotable = 1;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
			quotable = 0;
	}
	n = mg_imap_quote(line, len, q, sizeof(q));
	CHECK((n >= 0) == quotable);
	if (n < 0)
		return;
	CHECK((size_t)n >= len + 2 && (size_t)n <= 2 * len + 2);
	CHECK(q[0] == '"' && q[n - 1] == '"' && q[n] == '\0');
	/* One byte too few for the output and its NUL fails cleanly. */
	CHECK(mg_imap_quote(line, len, cmd, (size_t)n) == -1);

	memcpy(cmd, "t LOGIN ", 8);
	memcpy(cmd + 8, q, (size_t)n);
	memcpy(cmd + 8 + n, "\r\n", 2);
	mg_imap_parser_init(&parser, MG_IMAP_ARGBUF, 0);
	if ((size_t)n + 10 > MG_IMAP_ARGBUF)
		return;
	CHECK(mg_imap_parse(&parser, (const uint8_t *)cmd, (size_t)n + 10,
	    &used) == MG_IMAP_OK);
	CHECK(used == (size_t)n + 10);
	CHECK(parser.cmd.nargs == 1);
	CHECK(parser.cmd.args[0].type == MG_IMAP_QUOTED);
	CHECK(parser.cmd.args[0].len == len);
	CHECK(memcmp(parser.cmd.args[0].p, line, len) == 0);
}

static void
check_line(const uint8_t *data, size_t len)
{
	const char	*line = (const char *)data;

	check_resp(line, len);
	check_caps(line, len);
	check_quote(line, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	max, linelen, used;
	int	r;

	if (size < 1)
		return 0;
	max = 1 + data[0] * 16;
	data++;
	size--;

	while (size > 0) {
		r = mg_line_find(data, size, max, &linelen, &used);
		if (r == 1) {
			CHECK(used >= 1 && used <= size && used <= max);
			CHECK(data[used - 1] == '\n');
			CHECK(memchr(data, '\n', used - 1) == NULL);
			CHECK(linelen == used - 1 || (linelen == used - 2 &&
			    data[used - 2] == '\r'));
			CHECK(linelen == used - 1 ? used < 2 ||
			    data[used - 2] != '\r' : 1);
			check_line(data, linelen);
		} else if (r == 0) {
			CHECK(size < max);
			CHECK(memchr(data, '\n', size) == NULL);
			check_line(data, size);
			break;
		} else {
			CHECK(r == -1 && size >= max);
			CHECK(memchr(data, '\n', max) == NULL);
			used = max;
			check_line(data, used);
		}
		data += used;
		size -= used;
	}
	return 0;
}
