/*
 * test_parse_imap.c - unit tests for the IMAP command parser, the line
 * finder, the response classifier, capabilities and quoting.
 *
 * Most command tests describe what the parser returns as a text log (one
 * line per OK, LITERAL or INVALID, with the absolute offset consumed so far)
 * and check that feeding the input at once, a byte at a time and split in
 * two at every offset all give that same log. The parser must not care how
 * the network cut the bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse_imap.h"

#define LOG_MAX		65536

/* Enough for every test here; smaller limits are given explicitly. */
#define LINE_MAX_DEF	1024
#define LIT_MAX_DEF	1024

static struct mg_imap_parser	parser;
static char			log_whole[LOG_MAX], log_bytes[LOG_MAX],
				log_split[LOG_MAX];

static void	log_add(char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	log_bytes_escaped(char *, const char *, size_t);
static void	log_event(struct mg_imap_parser *, enum mg_imap_result,
		    size_t, char *);
static void	feed(struct mg_imap_parser *, const char *, size_t,
		    const size_t *, size_t, char *);
static void	check_parse(size_t, size_t, const char *, size_t,
		    const char *);
static void	check_parse_whole(size_t, size_t, const char *, size_t,
		    const char *);

/* Appends to a log, failing the test rather than truncating it. */
static void
log_add(char *log, const char *fmt, ...)
{
	va_list	ap;
	size_t	used = strlen(log);
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(log + used, LOG_MAX - used, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < LOG_MAX - used);
}

/* Appends bytes, printable ASCII as is and anything else as \xHH. */
static void
log_bytes_escaped(char *log, const char *s, size_t len)
{
	size_t		i;
	unsigned char	c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			log_add(log, "%c", c);
		else
			log_add(log, "\\x%02x", c);
	}
}

/*
 * Records one result in the log, checking on the way what every result must
 * satisfy: arguments inside argbuf and NUL-terminated, strings NUL-terminated.
 */
static void
log_event(struct mg_imap_parser *p, enum mg_imap_result rc, size_t off,
    char *log)
{
	static const char	*types[] = { "A", "Q", "L" };
	const struct mg_imap_arg *a;
	int			 i;

	assert_true(memchr(p->cmd.tag, '\0', sizeof(p->cmd.tag)) != NULL);
	assert_true(memchr(p->cmd.name, '\0', sizeof(p->cmd.name)) != NULL);
	switch (rc) {
	case MG_IMAP_OK:
		assert_null(p->error);
		assert_int_equal(p->fatal, 0);
		assert_true(p->cmd.nargs >= 0 &&
		    p->cmd.nargs <= MG_IMAP_ARGS_MAX);
		log_add(log, "OK@%zu %s %s", off, p->cmd.tag, p->cmd.name);
		for (i = 0; i < p->cmd.nargs; i++) {
			a = &p->cmd.args[i];
			assert_true(a->p >= p->argbuf);
			assert_true(a->p + a->len < p->argbuf + MG_IMAP_ARGBUF);
			assert_int_equal(a->p[a->len], '\0');
			assert_true(a->type <= MG_IMAP_LIT);
			log_add(log, " %s:", types[a->type]);
			log_bytes_escaped(log, a->p, a->len);
		}
		log_add(log, "\n");
		break;
	case MG_IMAP_LITERAL:
		assert_null(p->error);
		log_add(log, "LITERAL@%zu\n", off);
		break;
	case MG_IMAP_INVALID:
		assert_non_null(p->error);
		log_add(log, "INVALID@%zu tag=%s fatal=%d %s\n", off,
		    p->cmd.tag, p->fatal, p->error);
		break;
	default:
		fail_msg("unexpected result %d", rc);
	}
}

/*
 * Feeds in[0..len) to p in pieces that end at the ascending offsets cuts[],
 * the way a caller does: after each result it calls again with what is left
 * of the piece, until the piece is used up or the error is fatal.
 */
static void
feed(struct mg_imap_parser *p, const char *in, size_t len, const size_t *cuts,
    size_t ncuts, char *log)
{
	enum mg_imap_result	rc;
	size_t			k, off = 0, end, used;

	log[0] = '\0';
	for (k = 0; k <= ncuts; k++) {
		end = k < ncuts ? cuts[k] : len;
		for (;;) {
			rc = mg_imap_parse(p, (const uint8_t *)in + off,
			    end - off, &used);
			assert_true(used <= end - off);
			off += used;
			if (rc == MG_IMAP_AGAIN) {
				assert_int_equal(off, end);
				break;
			}
			/* Every result but AGAIN and fatal makes progress. */
			if (!(rc == MG_IMAP_INVALID && p->fatal))
				assert_true(used > 0);
			log_event(p, rc, off, log);
			if (rc == MG_IMAP_INVALID && p->fatal) {
				/* Dead for good: nothing more is taken. */
				rc = mg_imap_parse(p, (const uint8_t *)in + off,
				    len - off, &used);
				assert_int_equal(rc, MG_IMAP_INVALID);
				assert_int_equal(used, 0);
				assert_int_equal(p->fatal, 1);
				return;
			}
		}
	}
}

/* Parses in at once and a byte at a time; both must log expected. */
static void
check_parse_whole(size_t line_max, size_t literal_max, const char *in,
    size_t len, const char *expected)
{
	size_t	*cuts, i;

	mg_imap_parser_init(&parser, line_max, literal_max);
	feed(&parser, in, len, NULL, 0, log_whole);
	assert_string_equal(log_whole, expected);

	cuts = calloc(len > 0 ? len : 1, sizeof(*cuts));
	assert_non_null(cuts);
	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	mg_imap_parser_init(&parser, line_max, literal_max);
	feed(&parser, in, len, cuts, len > 0 ? len - 1 : 0, log_bytes);
	free(cuts);
	assert_string_equal(log_bytes, expected);
}

/* As check_parse_whole, and split in two at every offset as well. */
static void
check_parse(size_t line_max, size_t literal_max, const char *in, size_t len,
    const char *expected)
{
	size_t	cut;

	check_parse_whole(line_max, literal_max, in, len, expected);
	for (cut = 0; cut <= len; cut++) {
		mg_imap_parser_init(&parser, line_max, literal_max);
		feed(&parser, in, len, &cut, 1, log_split);
		if (strcmp(log_split, expected) != 0)
			fail_msg("split at %zu:\n%s\nexpected:\n%s", cut,
			    log_split, expected);
	}
}

#define CHECK(in, expected)						\
	check_parse(LINE_MAX_DEF, LIT_MAX_DEF, (in), sizeof(in) - 1, (expected))
#define CHECK_LIM(lm, xm, in, expected)					\
	check_parse((lm), (xm), (in), sizeof(in) - 1, (expected))

/* Command tests. */

static void
test_atoms(void **state)
{
	(void)state;
	CHECK("a1 LOGIN alice secret\r\n",
	    "OK@23 a1 LOGIN A:alice A:secret\n");
	CHECK("a2 NOOP\r\n", "OK@9 a2 NOOP\n");
	/* Numbers, NIL and "]" (an ASTRING-CHAR) are atoms as written. */
	CHECK("a3 SELECT foo]bar NIL 42\r\n",
	    "OK@26 a3 SELECT A:foo]bar A:NIL A:42\n");
	/* "~" is an ordinary atom char; only "~{" is literal8. */
	CHECK("a4 X ~abc\r\n", "OK@11 a4 X A:~abc\n");
}

static void
test_name_uppercased(void **state)
{
	(void)state;
	CHECK("x1 capability\r\n", "OK@15 x1 CAPABILITY\n");
	CHECK("x2 StartTLS\r\n", "OK@13 x2 STARTTLS\n");
	/* Arguments keep their case. */
	CHECK("x3 login Alice PW\r\n", "OK@19 x3 LOGIN A:Alice A:PW\n");
}

static void
test_quoted(void **state)
{
	(void)state;
	CHECK("a LOGIN \"a\\\"b\" \"c\\\\d\"\r\n",
	    "OK@23 a LOGIN Q:a\"b Q:c\\x5cd\n");
	CHECK("a LOGIN \"\" \"\"\r\n", "OK@15 a LOGIN Q: Q:\n");
	/* Spaces, brackets and braces are plain bytes inside quotes. */
	CHECK("a LOGIN \"x y\" \"({[]})\"\r\n",
	    "OK@24 a LOGIN Q:x y Q:({[]})\n");
	/* RFC 9051 allows UTF-8 in quoted strings. */
	CHECK("a LOGIN \"caf\xc3\xa9\" x\r\n",
	    "OK@19 a LOGIN Q:caf\\xc3\\xa9 A:x\n");
}

static void
test_quoted_bad(void **state)
{
	(void)state;
	/* Only \" and \\ are escapes. */
	CHECK("a LOGIN \"a\\b\" x\r\nb NOOP\r\n",
	    "INVALID@17 tag=a fatal=0 invalid quoted string\n"
	    "OK@25 b NOOP\n");
	CHECK("a LOGIN \"a\0b\" x\r\n",
	    "INVALID@17 tag=a fatal=0 invalid quoted string\n");
	CHECK("a LOGIN \"a\rb\" x\r\n",
	    "INVALID@17 tag=a fatal=0 invalid quoted string\n");
	/* An LF inside quotes ends the (bad) line there. */
	CHECK("a LOGIN \"ab\nb NOOP\r\n",
	    "INVALID@12 tag=a fatal=0 invalid quoted string\n"
	    "OK@20 b NOOP\n");
	/* Quoted strings and atoms must be separated by SP. */
	CHECK("a X \"a\"b\r\n", "INVALID@10 tag=a fatal=0 syntax error\n");
	CHECK("a X b\"a\"\r\n", "INVALID@10 tag=a fatal=0 syntax error\n");
}

static void
test_atom_bad(void **state)
{
	(void)state;
	/* 8-bit bytes are not CHAR, so not ATOM-CHAR. */
	CHECK("a X caf\xc3\xa9\r\n", "INVALID@11 tag=a fatal=0 syntax error\n");
	CHECK("a X a%b\r\n", "INVALID@9 tag=a fatal=0 syntax error\n");
	CHECK("a X \\Seen\r\n", "INVALID@11 tag=a fatal=0 syntax error\n");
	CHECK("a X ab\x01\r\n", "INVALID@9 tag=a fatal=0 syntax error\n");
}

static void
test_login_quoted_and_literal(void **state)
{
	(void)state;
	CHECK("a LOGIN \"a\\\"b\" {3}\r\nxyz\r\n",
	    "LITERAL@20\n"
	    "OK@25 a LOGIN Q:a\"b L:xyz\n");
}

static void
test_literal_sync(void **state)
{
	(void)state;
	CHECK("a LOGIN {5}\r\nalice {3}\r\nxyz\r\n",
	    "LITERAL@13\n"
	    "LITERAL@24\n"
	    "OK@29 a LOGIN L:alice L:xyz\n");
	/* Literal data is bytes: NUL, CR and LF included. */
	CHECK("a LOGIN {4}\r\na\0\r\n b\r\n",
	    "LITERAL@13\n"
	    "OK@21 a LOGIN L:a\\x00\\x0d\\x0a A:b\n");
	/* A bare LF may end the announcing line, too. */
	CHECK("a LOGIN {2}\nab\n", "LITERAL@12\nOK@15 a LOGIN L:ab\n");
	/* An empty literal is still announced. */
	CHECK("a LOGIN {0}\r\n x\r\n", "LITERAL@13\nOK@17 a LOGIN L: A:x\n");
	/* Leading zeros are digits like any other. */
	CHECK("a X {003}\r\nabc\r\n", "LITERAL@11\nOK@16 a X L:abc\n");
}

static void
test_literal_plus(void **state)
{
	(void)state;
	/* RFC 7888: no LITERAL result, the data follows at once. */
	CHECK("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
	    "OK@34 a LOGIN L:alice L:secret\n");
	CHECK("a X {0+}\r\n\r\n", "OK@12 a X L:\n");
	CHECK("a X {1+}\r\n\n\r\nb NOOP\r\n",
	    "OK@13 a X L:\\x0a\nOK@21 b NOOP\n");
}

static void
test_literal_too_large(void **state)
{
	char	in[128];

	(void)state;
	/* The limit itself is fine. */
	CHECK_LIM(LINE_MAX_DEF, 10, "a LOGIN {10}\r\n0123456789\r\n",
	    "LITERAL@14\nOK@26 a LOGIN L:0123456789\n");
	/* One more is refused with the line, and the next command parses. */
	CHECK_LIM(LINE_MAX_DEF, 10, "a LOGIN {11}\r\nb NOOP\r\n",
	    "INVALID@14 tag=a fatal=0 literal too large\n"
	    "OK@22 b NOOP\n");
	/* A number far beyond any integer type is refused, not wrapped. */
	snprintf(in, sizeof(in), "a LOGIN {%s}\r\nb NOOP\r\n",
	    "999999999999999999999999999999");
	check_parse(LINE_MAX_DEF, 10, in, strlen(in),
	    "INVALID@42 tag=a fatal=0 literal too large\n"
	    "OK@50 b NOOP\n");
	snprintf(in, sizeof(in), "a LOGIN {%s}\r\n",
	    "18446744073709551617");
	check_parse(LINE_MAX_DEF, LIT_MAX_DEF, in, strlen(in),
	    "INVALID@32 tag=a fatal=0 literal too large\n");
	/* A non-synchronizing one cannot be refused without closing. */
	CHECK_LIM(LINE_MAX_DEF, 10, "a LOGIN {11+}\r\nhello world\r\n",
	    "INVALID@12 tag=a fatal=1 literal too large\n");
	CHECK_LIM(LINE_MAX_DEF, 10, "a LOGIN {10+}\r\n0123456789\r\n",
	    "OK@27 a LOGIN L:0123456789\n");
	/* literal_max 0 still allows empty literals. */
	CHECK_LIM(LINE_MAX_DEF, 0, "a X {0}\r\n\r\na X {1}\r\n",
	    "LITERAL@9\nOK@11 a X L:\n"
	    "INVALID@20 tag=a fatal=0 literal too large\n");
}

static void
test_literal_argbuf_full(void **state)
{
	static char	in[MG_IMAP_ARGBUF + 64];
	char		expect[256];
	size_t		n;

	(void)state;
	/* 8000 bytes of literal leave 191 of argbuf: 190 and a NUL. */
	n = (size_t)snprintf(in, sizeof(in), "a X {8000+}\r\n");
	memset(in + n, 'x', 8000);
	n += 8000;
	memcpy(in + n, " {191}\r\n", 8);
	n += 8;
	check_parse_whole(MG_IMAP_ARGBUF, MG_IMAP_ARGBUF, in, n,
	    "INVALID@8021 tag=a fatal=0 arguments too long\n");

	memcpy(in + n - 8, " {190}\r\n", 8);
	mg_imap_parser_init(&parser, MG_IMAP_ARGBUF, MG_IMAP_ARGBUF);
	feed(&parser, in, n, NULL, 0, log_whole);
	assert_string_equal(log_whole, "LITERAL@8021\n");
	assert_int_equal(parser.argbuf_used, 8001);

	/* Non-synchronizing: its bytes would follow, so it is fatal. */
	memcpy(in + n - 8, " {191+}\r\n", 9);
	check_parse_whole(MG_IMAP_ARGBUF, MG_IMAP_ARGBUF, in, n + 1,
	    "INVALID@8019 tag=a fatal=1 arguments too long\n");

	/* Atoms run into the same wall. */
	n = 13 + 8000;
	in[n++] = ' ';
	memset(in + n, 'y', 200);
	n += 200;
	memcpy(in + n, "\r\n", 2);
	n += 2;
	snprintf(expect, sizeof(expect),
	    "INVALID@%zu tag=a fatal=0 arguments too long\n", n);
	check_parse_whole(MG_IMAP_ARGBUF, MG_IMAP_ARGBUF, in, n, expect);

	/* Exactly: 190 atom bytes and the NUL fill argbuf; 191 do not. */
	n = 13 + 8000 + 1 + 190;
	memcpy(in + n, "\r\n", 2);
	n += 2;
	mg_imap_parser_init(&parser, MG_IMAP_ARGBUF, MG_IMAP_ARGBUF);
	feed(&parser, in, n, NULL, 0, log_whole);
	assert_int_equal(parser.argbuf_used, MG_IMAP_ARGBUF);
	assert_int_equal(parser.cmd.nargs, 2);
	assert_int_equal(parser.cmd.args[1].len, 190);
	assert_true(strncmp(log_whole, "OK@8206 a X ", 12) == 0);
	n = 13 + 8000 + 1 + 191;
	memset(in + n - 1, 'y', 1);
	memcpy(in + n, "\r\n", 2);
	n += 2;
	check_parse_whole(MG_IMAP_ARGBUF, MG_IMAP_ARGBUF, in, n,
	    "INVALID@8207 tag=a fatal=0 arguments too long\n");

	/* So do quoted strings, escaped bytes included. */
	n = 13 + 8000 + 1;
	in[n++] = '"';
	memset(in + n, 'y', 190);
	n += 190;
	memcpy(in + n, "\\\"\"\r\n", 5);
	n += 5;
	check_parse_whole(MG_IMAP_ARGBUF, MG_IMAP_ARGBUF, in, n,
	    "INVALID@8210 tag=a fatal=0 arguments too long\n");
	memcpy(in + n - 5, "\"\r\n", 3);
	n -= 2;
	mg_imap_parser_init(&parser, MG_IMAP_ARGBUF, MG_IMAP_ARGBUF);
	feed(&parser, in, n, NULL, 0, log_whole);
	assert_true(strncmp(log_whole, "OK@8208 a X ", 12) == 0);
	assert_int_equal(parser.cmd.args[1].type, MG_IMAP_QUOTED);
	assert_int_equal(parser.cmd.args[1].len, 190);
}

static void
test_literal_bad_syntax(void **state)
{
	(void)state;
	CHECK("a X {}\r\n", "INVALID@8 tag=a fatal=0 invalid literal\n");
	CHECK("a X {3x}\r\n", "INVALID@10 tag=a fatal=0 invalid literal\n");
	CHECK("a X {3\r\n", "INVALID@8 tag=a fatal=0 invalid literal\n");
	CHECK("a X {+3}\r\n", "INVALID@10 tag=a fatal=0 invalid literal\n");
	CHECK("a X {3+x\r\n", "INVALID@10 tag=a fatal=0 invalid literal\n");
	/* "}" must be followed by the line end. */
	CHECK("a X {3}x\r\n", "INVALID@10 tag=a fatal=0 invalid literal\n");
	CHECK("a X {3}\rx\n", "INVALID@10 tag=a fatal=0 invalid literal\n");
	/* After the data, SP or the line end. */
	CHECK("a X {1}\r\nab\r\n",
	    "LITERAL@9\nINVALID@13 tag=a fatal=0 syntax error\n");
}

static void
test_unsupported(void **state)
{
	(void)state;
	CHECK("a ID (\"name\" \"x\")\r\n",
	    "INVALID@19 tag=a fatal=0 unsupported syntax\n");
	CHECK("a ID NIL\r\n", "OK@10 a ID A:NIL\n");
	/*
	 * literal8 is refused with its line; the client waits for "+", so
	 * the next bytes are a new command.
	 */
	CHECK("a X ~{3}\r\nb NOOP\r\n",
	    "INVALID@10 tag=a fatal=0 unsupported syntax\n"
	    "OK@18 b NOOP\n");
	/* A literal announced on a bad line is ignored. */
	CHECK("a X ( {3}\r\nb NOOP\r\n",
	    "INVALID@11 tag=a fatal=0 unsupported syntax\n"
	    "OK@19 b NOOP\n");
}

static void
test_line_too_long(void **state)
{
	(void)state;
	/* line_max counts CR LF: 20 bytes pass, 21 are fatal. */
	CHECK_LIM(20, 10, "a LOGIN aaaaaaaaaa\r\n",
	    "OK@20 a LOGIN A:aaaaaaaaaa\n");
	CHECK_LIM(20, 10, "a LOGIN aaaaaaaaaaa\r\nb NOOP\r\n",
	    "INVALID@21 tag=a fatal=1 line too long\n");
	/* In the middle of a tag: the tag was not read. */
	CHECK_LIM(10, 10, "aaaaaaaaaaaa NOOP\r\n",
	    "INVALID@11 tag= fatal=1 line too long\n");
	/* Each command starts counting afresh. */
	CHECK_LIM(20, 10, "a LOGIN aaaaaaaaaa\r\nb LOGIN bbbbbbbbbb\r\n",
	    "OK@20 a LOGIN A:aaaaaaaaaa\nOK@40 b LOGIN A:bbbbbbbbbb\n");
}

static void
test_line_max_excludes_literals(void **state)
{
	static const char x30[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	char		in[128];

	(void)state;
	/* 15 + 2 line bytes around 30 literal bytes fit in 20. */
	snprintf(in, sizeof(in), "a LOGIN {30+}\r\n%s\r\n", x30);
	check_parse(20, 64, in, strlen(in),
	    "OK@47 a LOGIN L:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
	/* The line after the literal counts towards the same total. */
	snprintf(in, sizeof(in), "a LOGIN {30+}\r\n%s xy\r\n", x30);
	check_parse(20, 64, in, strlen(in),
	    "OK@50 a LOGIN L:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx A:xy\n");
	snprintf(in, sizeof(in), "a LOGIN {30+}\r\n%s xyz\r\n", x30);
	check_parse(20, 64, in, strlen(in),
	    "INVALID@51 tag=a fatal=1 line too long\n");
}

static void
test_skip_unbounded(void **state)
{
	static char	in[100000 + 32];
	size_t		n;

	(void)state;
	/* Bytes skipped after an error are discarded, not counted. */
	n = (size_t)snprintf(in, sizeof(in), "a X (");
	memset(in + n, 'x', 100000);
	n += 100000;
	memcpy(in + n, "\r\nb NOOP\r\n", 10);
	n += 10;
	check_parse_whole(64, 64, in, n,
	    "INVALID@100007 tag=a fatal=0 unsupported syntax\n"
	    "OK@100015 b NOOP\n");
}

static void
test_empty_line(void **state)
{
	(void)state;
	CHECK("\r\n", "INVALID@2 tag= fatal=0 empty command\n");
	CHECK("\n", "INVALID@1 tag= fatal=0 empty command\n");
	CHECK("\r\n\r\na NOOP\r\n",
	    "INVALID@2 tag= fatal=0 empty command\n"
	    "INVALID@4 tag= fatal=0 empty command\n"
	    "OK@12 a NOOP\n");
}

static void
test_missing_command(void **state)
{
	(void)state;
	CHECK("a\r\n", "INVALID@3 tag=a fatal=0 missing command\n");
	CHECK("abc \r\n", "INVALID@6 tag=abc fatal=0 missing command\n");
	CHECK("a\n", "INVALID@2 tag=a fatal=0 missing command\n");
}

static void
test_args_max(void **state)
{
	(void)state;
	CHECK("a X 1 2 3 4 5 6 7 8\r\n",
	    "OK@21 a X A:1 A:2 A:3 A:4 A:5 A:6 A:7 A:8\n");
	CHECK("a X 1 2 3 4 5 6 7 8 9\r\nb NOOP\r\n",
	    "INVALID@23 tag=a fatal=0 too many arguments\n"
	    "OK@31 b NOOP\n");
}

static void
test_tags(void **state)
{
	char	in[160], expect[160];

	(void)state;
	CHECK("a] NOOP\r\n", "OK@9 a] NOOP\n");
	CHECK("A.001 NOOP\r\n", "OK@12 A.001 NOOP\n");
	/* "+" and "*" start responses, not commands. */
	CHECK("+ NOOP\r\n", "INVALID@8 tag= fatal=0 invalid tag\n");
	CHECK("* NOOP\r\n", "INVALID@8 tag= fatal=0 invalid tag\n");
	CHECK("a+b NOOP\r\n", "INVALID@10 tag= fatal=0 invalid tag\n");
	CHECK("a(b NOOP\r\n", "INVALID@10 tag= fatal=0 invalid tag\n");
	CHECK(" a NOOP\r\n", "INVALID@9 tag= fatal=0 invalid tag\n");
	CHECK("\x80 NOOP\r\n", "INVALID@8 tag= fatal=0 invalid tag\n");

	/* MG_IMAP_TAG_MAX bytes are fine, one more is not. */
	memset(in, 't', MG_IMAP_TAG_MAX);
	snprintf(in + MG_IMAP_TAG_MAX, sizeof(in) - MG_IMAP_TAG_MAX,
	    " NOOP\r\n");
	snprintf(expect, sizeof(expect), "OK@%d %.*s NOOP\n",
	    MG_IMAP_TAG_MAX + 7, MG_IMAP_TAG_MAX, in);
	check_parse(LINE_MAX_DEF, LIT_MAX_DEF, in, strlen(in), expect);
	memset(in, 't', MG_IMAP_TAG_MAX + 1);
	snprintf(in + MG_IMAP_TAG_MAX + 1, sizeof(in) - MG_IMAP_TAG_MAX - 1,
	    " NOOP\r\n");
	snprintf(expect, sizeof(expect),
	    "INVALID@%d tag= fatal=0 tag too long\n", MG_IMAP_TAG_MAX + 8);
	check_parse(LINE_MAX_DEF, LIT_MAX_DEF, in, strlen(in), expect);
}

static void
test_command_names(void **state)
{
	char	in[128], expect[256];

	(void)state;
	memset(in, 'N', MG_IMAP_NAME_MAX);
	in[MG_IMAP_NAME_MAX] = '\0';
	snprintf(expect, sizeof(expect), "OK@%d a %s\n",
	    MG_IMAP_NAME_MAX + 4, in);
	memmove(in + 2, in, MG_IMAP_NAME_MAX + 1);
	memcpy(in, "a ", 2);
	strcat(in, "\r\n");
	check_parse(LINE_MAX_DEF, LIT_MAX_DEF, in, strlen(in), expect);

	memset(in + 2, 'N', MG_IMAP_NAME_MAX + 1);
	snprintf(in + 3 + MG_IMAP_NAME_MAX, sizeof(in) - 3 - MG_IMAP_NAME_MAX,
	    "\r\n");
	snprintf(expect, sizeof(expect),
	    "INVALID@%d tag=a fatal=0 command name too long\n",
	    MG_IMAP_NAME_MAX + 5);
	check_parse(LINE_MAX_DEF, LIT_MAX_DEF, in, strlen(in), expect);

	CHECK("a \"NOOP\"\r\n", "INVALID@10 tag=a fatal=0 invalid command name\n");
	CHECK("a NOOP(\r\n", "INVALID@9 tag=a fatal=0 syntax error\n");
}

static void
test_spaces(void **state)
{
	(void)state;
	/* RFC 9051 section 9 has exactly one SP between elements. */
	CHECK("a LOGIN  x y\r\n", "INVALID@14 tag=a fatal=0 syntax error\n");
	CHECK("a NOOP \r\n", "INVALID@9 tag=a fatal=0 syntax error\n");
	CHECK("a  NOOP\r\n", "INVALID@9 tag=a fatal=0 invalid command name\n");
	CHECK("a\tNOOP\r\n", "INVALID@8 tag= fatal=0 invalid tag\n");
}

static void
test_line_ends(void **state)
{
	(void)state;
	CHECK("a NOOP\nb LOGIN x y\n", "OK@7 a NOOP\nOK@19 b LOGIN A:x A:y\n");
	/* A CR that is not followed by LF is an error, not a line end. */
	CHECK("a NOOP\rX\r\nb NOOP\r\n",
	    "INVALID@10 tag=a fatal=0 syntax error\nOK@18 b NOOP\n");
	CHECK("a LOGIN x\r\r\n", "INVALID@12 tag=a fatal=0 syntax error\n");
}

static void
test_crlf_split(void **state)
{
	size_t	used;

	(void)state;
	mg_imap_parser_init(&parser, LINE_MAX_DEF, LIT_MAX_DEF);
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)"a NOOP\r", 7,
	    &used), MG_IMAP_AGAIN);
	assert_int_equal(used, 7);
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)"\n", 1,
	    &used), MG_IMAP_OK);
	assert_int_equal(used, 1);
	assert_string_equal(parser.cmd.tag, "a");
	assert_string_equal(parser.cmd.name, "NOOP");
}

static void
test_pipelining(void **state)
{
	static const char in[] =
	    "a NOOP\r\nb CAPABILITY\r\nc LOGOUT\r\n";
	size_t	used, off = 0;

	(void)state;
	CHECK(in, "OK@8 a NOOP\nOK@22 b CAPABILITY\nOK@32 c LOGOUT\n");

	/* Each OK stops right after its LF and leaves the rest. */
	mg_imap_parser_init(&parser, LINE_MAX_DEF, LIT_MAX_DEF);
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)in,
	    sizeof(in) - 1, &used), MG_IMAP_OK);
	assert_int_equal(used, 8);
	assert_string_equal(parser.cmd.tag, "a");
	off += used;
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)in + off,
	    sizeof(in) - 1 - off, &used), MG_IMAP_OK);
	assert_int_equal(used, 14);
	assert_string_equal(parser.cmd.name, "CAPABILITY");
}

static void
test_cmd_kept_after_ok(void **state)
{
	static const char in[] = "a LOGIN bob pw\r\nb NOOP\r\n";
	size_t	used;

	(void)state;
	mg_imap_parser_init(&parser, LINE_MAX_DEF, LIT_MAX_DEF);
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)in,
	    sizeof(in) - 1, &used), MG_IMAP_OK);
	assert_int_equal(used, 16);
	/* An empty feed changes nothing. */
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)in, 0,
	    &used), MG_IMAP_AGAIN);
	assert_int_equal(used, 0);
	assert_string_equal(parser.cmd.tag, "a");
	assert_string_equal(parser.cmd.name, "LOGIN");
	assert_int_equal(parser.cmd.nargs, 2);
	assert_string_equal(parser.cmd.args[0].p, "bob");
	assert_string_equal(parser.cmd.args[1].p, "pw");
	/* The first byte of the next command starts afresh. */
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)in + 16, 1,
	    &used), MG_IMAP_AGAIN);
	assert_string_equal(parser.cmd.tag, "b");
	assert_string_equal(parser.cmd.name, "");
	assert_int_equal(parser.cmd.nargs, 0);
}

static void
test_authenticate_plain(void **state)
{
	(void)state;
	CHECK("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
	    "OK@43 a AUTHENTICATE A:PLAIN A:AGFsaWNlAHNlY3JldA==\n");
	/* RFC 4959 section 3: "=" is an empty initial response. */
	CHECK("a AUTHENTICATE PLAIN =\r\n",
	    "OK@24 a AUTHENTICATE A:PLAIN A:=\n");
	CHECK("a authenticate plain\r\n", "OK@22 a AUTHENTICATE A:plain\n");
}

static void
test_fatal_is_sticky(void **state)
{
	size_t	used;

	(void)state;
	mg_imap_parser_init(&parser, 8, 8);
	assert_int_equal(mg_imap_parse(&parser,
	    (const uint8_t *)"a LOGIN x y\r\n", 13, &used), MG_IMAP_INVALID);
	assert_int_equal(parser.fatal, 1);
	assert_string_equal(parser.error, "line too long");
	assert_int_equal(used, 9);
	assert_int_equal(mg_imap_parse(&parser,
	    (const uint8_t *)"b NOOP\r\n", 8, &used), MG_IMAP_INVALID);
	assert_int_equal(used, 0);
	assert_int_equal(parser.fatal, 1);

	/* reset brings it back, with the same limits. */
	mg_imap_parser_reset(&parser);
	assert_int_equal(parser.line_max, 8);
	assert_int_equal(parser.literal_max, 8);
	assert_int_equal(parser.fatal, 0);
	assert_int_equal(mg_imap_parse(&parser,
	    (const uint8_t *)"b NOOP\r\n", 8, &used), MG_IMAP_OK);
	assert_int_equal(used, 8);
}

static void
test_init_reset(void **state)
{
	size_t	used;

	(void)state;
	mg_imap_parser_init(&parser, 1000000, 1000000);
	assert_int_equal(parser.line_max, MG_IMAP_ARGBUF);
	assert_int_equal(parser.literal_max, MG_IMAP_ARGBUF - 1);
	assert_null(parser.error);

	/* reset in the middle of a command forgets it (e.g. STARTTLS). */
	mg_imap_parser_init(&parser, 100, 10);
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)"a LOG", 5,
	    &used), MG_IMAP_AGAIN);
	mg_imap_parser_reset(&parser);
	assert_int_equal(parser.line_max, 100);
	assert_int_equal(parser.literal_max, 10);
	assert_string_equal(parser.cmd.tag, "");
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)"b NOOP\r\n",
	    8, &used), MG_IMAP_OK);
	assert_string_equal(parser.cmd.tag, "b");
	assert_string_equal(parser.cmd.name, "NOOP");
}

/* Empty input may come as NULL; nothing may do arithmetic on it. */
static void
test_null_empty(void **state)
{
	struct mg_imap_resp	r;
	size_t			used = 99, ll;
	char			out[4];

	(void)state;
	mg_imap_parser_init(&parser, LINE_MAX_DEF, LIT_MAX_DEF);
	assert_int_equal(mg_imap_parse(&parser, NULL, 0, &used),
	    MG_IMAP_AGAIN);
	assert_int_equal(used, 0);
	assert_int_equal(mg_line_find(NULL, 0, 10, &ll, &used), 0);
	assert_int_equal(mg_imap_resp_parse(NULL, 0, &r), -1);
	assert_int_equal(mg_imap_caps_has(NULL, 0, "IMAP4rev1"), 0);
	assert_int_equal(mg_imap_quote(NULL, 0, out, sizeof(out)), 2);
	assert_string_equal(out, "\"\"");
}

/* mg_line_find */

static void
test_line_find(void **state)
{
	size_t	ll = 99, used = 99;

	(void)state;
	assert_int_equal(mg_line_find((const uint8_t *)"abc\r\nx", 6, 100,
	    &ll, &used), 1);
	assert_int_equal(ll, 3);
	assert_int_equal(used, 5);
	assert_int_equal(mg_line_find((const uint8_t *)"abc\nx", 5, 100,
	    &ll, &used), 1);
	assert_int_equal(ll, 3);
	assert_int_equal(used, 4);
	assert_int_equal(mg_line_find((const uint8_t *)"\r\n", 2, 100,
	    &ll, &used), 1);
	assert_int_equal(ll, 0);
	assert_int_equal(used, 2);
	assert_int_equal(mg_line_find((const uint8_t *)"\n", 1, 100,
	    &ll, &used), 1);
	assert_int_equal(ll, 0);
	assert_int_equal(used, 1);
	/* Only the CR right before LF is part of the line end. */
	assert_int_equal(mg_line_find((const uint8_t *)"a\rb\n", 4, 100,
	    &ll, &used), 1);
	assert_int_equal(ll, 3);
	assert_int_equal(used, 4);

	/* Not yet: more may come. */
	ll = used = 99;
	assert_int_equal(mg_line_find((const uint8_t *)"abc\r", 4, 100,
	    &ll, &used), 0);
	assert_int_equal(mg_line_find((const uint8_t *)"", 0, 100,
	    &ll, &used), 0);
	assert_int_equal(ll, 99);
	assert_int_equal(used, 99);

	/* The LF must come within max bytes, itself included. */
	assert_int_equal(mg_line_find((const uint8_t *)"abc\n", 4, 4,
	    &ll, &used), 1);
	assert_int_equal(used, 4);
	assert_int_equal(mg_line_find((const uint8_t *)"abcd\n", 5, 4,
	    &ll, &used), -1);
	assert_int_equal(mg_line_find((const uint8_t *)"abcd", 4, 4,
	    &ll, &used), -1);
	assert_int_equal(mg_line_find((const uint8_t *)"abc", 3, 4,
	    &ll, &used), 0);
}

/* mg_imap_resp_parse */

#define RESP(s, r)	mg_imap_resp_parse((s), sizeof(s) - 1, (r))

static void
test_resp_untagged_status(void **state)
{
	static const char	 l1[] =
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready";
	struct mg_imap_resp	 r;

	(void)state;
	assert_int_equal(RESP(l1, &r), 0);
	assert_int_equal(r.type, MG_IMAP_RESP_UNTAGGED);
	assert_int_equal(r.status, MG_IMAP_ST_OK);
	assert_string_equal(r.tag, "");
	assert_ptr_equal(r.code, l1 + 6);
	assert_int_equal(r.code_len, 39);
	assert_memory_equal(r.code, "CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN",
	    39);
	assert_int_equal(r.text_len, 5);
	assert_memory_equal(r.text, "ready", 5);
	assert_null(r.data);

	assert_int_equal(RESP("* PREAUTH", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_PREAUTH);
	assert_null(r.code);
	assert_int_equal(r.text_len, 0);

	assert_int_equal(RESP("* preauth [ALERT] hi", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_PREAUTH);
	assert_int_equal(r.code_len, 5);
	assert_memory_equal(r.code, "ALERT", 5);
	assert_int_equal(r.text_len, 2);

	assert_int_equal(RESP("* BYE shutting down", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_BYE);
	assert_null(r.code);
	assert_int_equal(r.text_len, 13);
	assert_memory_equal(r.text, "shutting down", 13);

	assert_int_equal(RESP("* NO [UNAVAILABLE] try later", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_NO);
	assert_int_equal(RESP("* BAD junk", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_BAD);
	/* No SP after "]": tolerated, the text starts right there. */
	assert_int_equal(RESP("* OK [READ-WRITE]done", &r), 0);
	assert_int_equal(r.code_len, 10);
	assert_int_equal(r.text_len, 4);
	assert_memory_equal(r.text, "done", 4);
	/* A code with nothing after it. */
	assert_int_equal(RESP("* OK [ALERT]", &r), 0);
	assert_int_equal(r.code_len, 5);
	assert_int_equal(r.text_len, 0);
	/* A "[" later in the text is text. */
	assert_int_equal(RESP("* OK hello [x", &r), 0);
	assert_null(r.code);
	assert_int_equal(r.text_len, 8);
}

static void
test_resp_untagged_data(void **state)
{
	static const char	 l1[] = "* CAPABILITY IMAP4rev1 STARTTLS";
	struct mg_imap_resp	 r;

	(void)state;
	assert_int_equal(RESP(l1, &r), 0);
	assert_int_equal(r.type, MG_IMAP_RESP_UNTAGGED);
	assert_int_equal(r.status, MG_IMAP_ST_NONE);
	assert_ptr_equal(r.data, l1 + 2);
	assert_int_equal(r.data_len, sizeof(l1) - 3);
	assert_null(r.code);

	assert_int_equal(RESP("* 3 EXISTS", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_NONE);
	assert_int_equal(r.data_len, 8);
	assert_memory_equal(r.data, "3 EXISTS", 8);
	/* A status word must be a whole word. */
	assert_int_equal(RESP("* OKAY then", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_NONE);
}

static void
test_resp_tagged(void **state)
{
	static const char	 l1[] =
	    "a1 OK [CAPABILITY IMAP4rev1 ID] Logged in";
	struct mg_imap_resp	 r;
	char			 line[MG_IMAP_TAG_MAX + 8];

	(void)state;
	assert_int_equal(RESP(l1, &r), 0);
	assert_int_equal(r.type, MG_IMAP_RESP_TAGGED);
	assert_int_equal(r.status, MG_IMAP_ST_OK);
	assert_string_equal(r.tag, "a1");
	assert_int_equal(r.code_len, 23);
	assert_memory_equal(r.code, "CAPABILITY IMAP4rev1 ID", 23);
	assert_int_equal(r.text_len, 9);
	assert_memory_equal(r.text, "Logged in", 9);

	assert_int_equal(RESP("A0002 no [AUTHENTICATIONFAILED] nope", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_NO);
	assert_string_equal(r.tag, "A0002");
	assert_int_equal(RESP("x BAD", &r), 0);
	assert_int_equal(r.status, MG_IMAP_ST_BAD);
	assert_int_equal(r.text_len, 0);

	/* Tagged responses always carry a status. */
	assert_int_equal(RESP("a1 CAPABILITY IMAP4rev1", &r), -1);
	assert_int_equal(RESP("a1 ", &r), -1);
	assert_int_equal(RESP("a1", &r), -1);
	/* Tag chars only, and not too many. */
	assert_int_equal(RESP("a{1 OK", &r), -1);
	assert_int_equal(RESP("a+1 OK", &r), -1);
	assert_int_equal(RESP(" a1 OK", &r), -1);
	memset(line, 't', MG_IMAP_TAG_MAX);
	memcpy(line + MG_IMAP_TAG_MAX, " OK", 3);
	assert_int_equal(mg_imap_resp_parse(line, MG_IMAP_TAG_MAX + 3, &r), 0);
	assert_int_equal(strlen(r.tag), MG_IMAP_TAG_MAX);
	memset(line, 't', MG_IMAP_TAG_MAX + 1);
	memcpy(line + MG_IMAP_TAG_MAX + 1, " OK", 3);
	assert_int_equal(mg_imap_resp_parse(line, MG_IMAP_TAG_MAX + 4, &r), -1);
}

static void
test_resp_continue(void **state)
{
	struct mg_imap_resp	r;

	(void)state;
	assert_int_equal(RESP("+ ", &r), 0);
	assert_int_equal(r.type, MG_IMAP_RESP_CONTINUE);
	assert_int_equal(r.status, MG_IMAP_ST_NONE);
	assert_int_equal(r.text_len, 0);
	assert_int_equal(RESP("+", &r), 0);
	assert_int_equal(r.type, MG_IMAP_RESP_CONTINUE);
	assert_int_equal(r.text_len, 0);
	assert_int_equal(RESP("+ Ready for literal data", &r), 0);
	assert_int_equal(r.text_len, 22);
	assert_memory_equal(r.text, "Ready for literal data", 22);
	assert_int_equal(RESP("+ dGVzdA==", &r), 0);
	assert_int_equal(r.text_len, 8);
	assert_int_equal(RESP("+x", &r), -1);
}

static void
test_resp_malformed(void **state)
{
	struct mg_imap_resp	r;

	(void)state;
	assert_int_equal(mg_imap_resp_parse("", 0, &r), -1);
	assert_int_equal(RESP("*", &r), -1);
	assert_int_equal(RESP("*OK", &r), -1);
	assert_int_equal(RESP("* ", &r), -1);
	/* Unbalanced and empty brackets. */
	assert_int_equal(RESP("* OK [CAPABILITY IMAP4rev1 ready", &r), -1);
	assert_int_equal(RESP("a1 OK [ALERT", &r), -1);
	assert_int_equal(RESP("* OK [] x", &r), -1);
	/* No NUL, CR or LF inside a line. */
	assert_int_equal(RESP("* OK a\0b", &r), -1);
	assert_int_equal(RESP("* OK a\rb", &r), -1);
	assert_int_equal(RESP("* OK ab\r\n", &r), -1);
}

/* mg_imap_caps_has */

#define CAPS(s, c)	mg_imap_caps_has((s), sizeof(s) - 1, (c))

static void
test_caps(void **state)
{
	(void)state;
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAIN", "SASL-IR"), 1);
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAIN", "auth=plain"), 1);
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAIN", "IMAP4REV1"), 1);
	/* Whole words only. */
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAIN", "AUTH"), 0);
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAIN", "AUTH=PLAI"), 0);
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAIN", "SASL"), 0);
	assert_int_equal(CAPS("IMAP4rev1 SASL-IR AUTH=PLAINX", "AUTH=PLAIN"),
	    0);
	assert_int_equal(CAPS("IMAP4rev1 LOGINDISABLED", "LOGIN"), 0);
	/* The CAPABILITY word of a response code is skipped. */
	assert_int_equal(CAPS("CAPABILITY IMAP4rev1 STARTTLS", "STARTTLS"), 1);
	assert_int_equal(CAPS("CAPABILITY IMAP4rev1 STARTTLS", "CAPABILITY"),
	    0);
	assert_int_equal(CAPS("capability IMAP4rev1", "capability"), 0);
	/* Extra spaces separate, nothing more. */
	assert_int_equal(CAPS("  IMAP4rev1   STARTTLS ", "STARTTLS"), 1);
	assert_int_equal(CAPS("", "IMAP4rev1"), 0);
	assert_int_equal(CAPS("IMAP4rev1", ""), 0);
	assert_int_equal(CAPS("IMAP4rev1 STARTTLS", "IMAP4rev1 STARTTLS"), 0);
	/* len bounds the search. */
	assert_int_equal(mg_imap_caps_has("IMAP4rev1 STARTTLS", 9,
	    "STARTTLS"), 0);
	assert_int_equal(mg_imap_caps_has("IMAP4rev1 STARTTLS", 18,
	    "STARTTLS"), 1);
}

/* mg_imap_quote */

static void
test_quote(void **state)
{
	char	out[64];

	(void)state;
	assert_int_equal(mg_imap_quote("alice", 5, out, sizeof(out)), 7);
	assert_string_equal(out, "\"alice\"");
	assert_int_equal(mg_imap_quote("a\"b\\c", 5, out, sizeof(out)), 9);
	assert_string_equal(out, "\"a\\\"b\\\\c\"");
	assert_int_equal(mg_imap_quote("", 0, out, sizeof(out)), 2);
	assert_string_equal(out, "\"\"");
	assert_int_equal(mg_imap_quote("a b\t(c)", 7, out, sizeof(out)), 9);

	/* What needs a literal instead. */
	assert_int_equal(mg_imap_quote("a\rb", 3, out, sizeof(out)), -1);
	assert_int_equal(mg_imap_quote("a\nb", 3, out, sizeof(out)), -1);
	assert_int_equal(mg_imap_quote("a\0b", 3, out, sizeof(out)), -1);
	assert_int_equal(mg_imap_quote("caf\xc3\xa9", 5, out, sizeof(out)),
	    -1);

	/* Room for the quotes, the escapes and the NUL, exactly. */
	assert_int_equal(mg_imap_quote("abc", 3, out, 6), 5);
	assert_int_equal(mg_imap_quote("abc", 3, out, 5), -1);
	assert_int_equal(mg_imap_quote("a\"", 2, out, 6), 5);
	assert_string_equal(out, "\"a\\\"\"");
	assert_int_equal(mg_imap_quote("a\"", 2, out, 5), -1);
	assert_int_equal(mg_imap_quote("", 0, out, 3), 2);
	assert_int_equal(mg_imap_quote("", 0, out, 2), -1);

	/* A failed quote leaves no password behind. */
	memset(out, 'z', sizeof(out));
	assert_int_equal(mg_imap_quote("secret\n", 7, out, sizeof(out)), -1);
	assert_null(memchr(out, 's', sizeof(out)));
}

/* What mg_imap_quote writes, mg_imap_parse reads back. */
static void
test_quote_parse_roundtrip(void **state)
{
	char	s[128], q[300], line[400];
	size_t	used, i, n;
	int	qlen;

	(void)state;
	/* Every byte that may be quoted, with the specials among them. */
	for (i = 0, n = 0; i < 128; i++)
		if (i != 0 && i != '\r' && i != '\n')
			s[n++] = (char)i;
	qlen = mg_imap_quote(s, n, q, sizeof(q));
	assert_true(qlen > 0);
	snprintf(line, sizeof(line), "a LOGIN %s x\r\n", q);
	mg_imap_parser_init(&parser, sizeof(line), 16);
	assert_int_equal(mg_imap_parse(&parser, (const uint8_t *)line,
	    strlen(line), &used), MG_IMAP_OK);
	assert_int_equal(used, strlen(line));
	assert_int_equal(parser.cmd.nargs, 2);
	assert_int_equal(parser.cmd.args[0].type, MG_IMAP_QUOTED);
	assert_int_equal(parser.cmd.args[0].len, n);
	assert_memory_equal(parser.cmd.args[0].p, s, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_atoms),
		cmocka_unit_test(test_name_uppercased),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_quoted_bad),
		cmocka_unit_test(test_atom_bad),
		cmocka_unit_test(test_login_quoted_and_literal),
		cmocka_unit_test(test_literal_sync),
		cmocka_unit_test(test_literal_plus),
		cmocka_unit_test(test_literal_too_large),
		cmocka_unit_test(test_literal_argbuf_full),
		cmocka_unit_test(test_literal_bad_syntax),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_line_max_excludes_literals),
		cmocka_unit_test(test_skip_unbounded),
		cmocka_unit_test(test_empty_line),
		cmocka_unit_test(test_missing_command),
		cmocka_unit_test(test_args_max),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_command_names),
		cmocka_unit_test(test_spaces),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_crlf_split),
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_cmd_kept_after_ok),
		cmocka_unit_test(test_authenticate_plain),
		cmocka_unit_test(test_fatal_is_sticky),
		cmocka_unit_test(test_init_reset),
		cmocka_unit_test(test_null_empty),
		cmocka_unit_test(test_line_find),
		cmocka_unit_test(test_resp_untagged_status),
		cmocka_unit_test(test_resp_untagged_data),
		cmocka_unit_test(test_resp_tagged),
		cmocka_unit_test(test_resp_continue),
		cmocka_unit_test(test_resp_malformed),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_quote_parse_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
