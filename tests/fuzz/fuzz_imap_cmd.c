/*
 * fuzz_imap_cmd.c - libFuzzer driver for mg_imap_parse.
 *
 * The first input byte picks the limits, the next four seed the chunk sizes,
 * the rest is what a client sends. When the first byte says so, the stream
 * starts with a command that has filled all but the last 0 to 255 bytes of
 * argbuf with a literal (the sixth byte says how many), and the input goes
 * on with that command: inputs of libFuzzer's usual size reach the limit. The stream is parsed twice, once in one
 * piece and once in chunks of pseudo-random sizes, checking after each call
 * what must always hold (consumed <= len, progress, arguments inside argbuf
 * and NUL-terminated, tag and name NUL-terminated, limits kept). Both runs
 * must then have seen the same sequence of results, since the parser may
 * not depend on how the network cut the bytes.
 */
/* fuzz-sources: src/parse_imap.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_imap.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct mg_imap_parser	parser;

/* FNV-1a over the results, so that two runs can be compared. */
static uint64_t
fnv(uint64_t h, const void *p, size_t len)
{
	const uint8_t	*b = p;
	size_t		 i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint32_t
xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* What must hold after every call, whatever the result. */
static void
check_always(const struct mg_imap_parser *p)
{
	CHECK(memchr(p->cmd.tag, '\0', sizeof(p->cmd.tag)) != NULL);
	CHECK(memchr(p->cmd.name, '\0', sizeof(p->cmd.name)) != NULL);
	CHECK(p->cmd.nargs >= 0 && p->cmd.nargs <= MG_IMAP_ARGS_MAX);
	CHECK(p->argbuf_used <= MG_IMAP_ARGBUF);
	if (!p->fatal)
		CHECK(p->line_len <= p->line_max);
}

/* What must hold after OK: a complete, well-formed command. */
static void
check_ok(const struct mg_imap_parser *p)
{
	const struct mg_imap_arg	*a;
	const char			*s;
	int				 i;

	CHECK(p->error == NULL && !p->fatal);
	CHECK(p->cmd.tag[0] != '\0' && p->cmd.name[0] != '\0');
	CHECK(strpbrk(p->cmd.tag, " +(){%*\"\\") == NULL);
	for (s = p->cmd.name; *s != '\0'; s++)
		CHECK(!(*s >= 'a' && *s <= 'z') && *s > ' ');
	for (i = 0; i < p->cmd.nargs; i++) {
		a = &p->cmd.args[i];
		CHECK(a->type == MG_IMAP_ATOM || a->type == MG_IMAP_QUOTED ||
		    a->type == MG_IMAP_LIT);
		CHECK(a->p >= p->argbuf);
		CHECK(a->len < MG_IMAP_ARGBUF);
		CHECK(a->p + a->len < p->argbuf + MG_IMAP_ARGBUF);
		CHECK(a->p[a->len] == '\0');
		if (a->type != MG_IMAP_LIT)
			CHECK(memchr(a->p, '\0', a->len) == NULL);
		if (a->type == MG_IMAP_ATOM)
			CHECK(a->len > 0 && memchr(a->p, ' ', a->len) == NULL);
		if (a->type == MG_IMAP_LIT)
			CHECK(a->len <= p->literal_max);
		/* Arguments do not overlap and come in order. */
		if (i > 0)
			CHECK(a->p > p->cmd.args[i - 1].p +
			    p->cmd.args[i - 1].len);
	}
}

/* Mixes one result into the trace hash. */
static uint64_t
trace(uint64_t h, const struct mg_imap_parser *p, enum mg_imap_result rc,
    size_t off)
{
	int	i;

	h = fnv(h, &rc, sizeof(rc));
	h = fnv(h, &off, sizeof(off));
	h = fnv(h, &p->fatal, sizeof(p->fatal));
	if (p->error != NULL)
		h = fnv(h, p->error, strlen(p->error));
	h = fnv(h, p->cmd.tag, strlen(p->cmd.tag) + 1);
	if (rc != MG_IMAP_OK)
		return h;
	h = fnv(h, p->cmd.name, strlen(p->cmd.name) + 1);
	h = fnv(h, &p->cmd.nargs, sizeof(p->cmd.nargs));
	for (i = 0; i < p->cmd.nargs; i++) {
		h = fnv(h, &p->cmd.args[i].type, sizeof(p->cmd.args[i].type));
		h = fnv(h, &p->cmd.args[i].len, sizeof(p->cmd.args[i].len));
		h = fnv(h, p->cmd.args[i].p, p->cmd.args[i].len);
	}
	return h;
}

/*
 * Parses data as a caller would; chunked with seed != 0, else in one piece.
 * Returns the trace hash.
 */
static uint64_t
run(const uint8_t *data, size_t len, size_t line_max, size_t literal_max,
    uint32_t seed)
{
	enum mg_imap_result	rc;
	size_t			off = 0, end, used, n;
	uint64_t		h = 0xcbf29ce484222325ULL;

	mg_imap_parser_init(&parser, line_max, literal_max);
	while (off < len) {
		if (seed != 0) {
			n = xorshift(&seed);
			/* Mostly small pieces, now and then a big one. */
			n = (n & 0x100) ? 1 + (n >> 16) % 512 : 1 + (n >> 16) % 8;
			end = len - off < n ? len : off + n;
		} else
			end = len;
		while (off < end) {
			rc = mg_imap_parse(&parser, data + off, end - off,
			    &used);
			CHECK(used <= end - off);
			check_always(&parser);
			off += used;
			if (rc == MG_IMAP_AGAIN) {
				CHECK(off == end);
				break;
			}
			if (rc == MG_IMAP_INVALID && parser.fatal) {
				CHECK(parser.error != NULL);
				h = trace(h, &parser, rc, off);
				/* Dead: takes nothing more. */
				rc = mg_imap_parse(&parser, data + off,
				    len - off, &used);
				CHECK(rc == MG_IMAP_INVALID && used == 0);
				return h;
			}
			/* OK, LITERAL and INVALID each end after a byte. */
			CHECK(used > 0);
			if (rc == MG_IMAP_OK)
				check_ok(&parser);
			else if (rc == MG_IMAP_INVALID)
				CHECK(parser.error != NULL);
			else
				CHECK(rc == MG_IMAP_LITERAL &&
				    parser.error == NULL);
			/* Every result but LITERAL ends a line at its LF. */
			if (rc != MG_IMAP_LITERAL)
				CHECK(data[off - 1] == '\n');
			h = trace(h, &parser, rc, off);
		}
	}
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t	lines[] = { 16, 64, 1024, MG_IMAP_ARGBUF };
	static const size_t	lits[] = { 0, 5, 300, MG_IMAP_ARGBUF };
	static uint8_t		buf[MG_IMAP_ARGBUF + 64 + 4096];
	size_t			line_max, literal_max, n, fill;
	uint32_t		seed;
	uint64_t		whole, chunked;
	int			prefill;

	if (size < 6)
		return 0;
	line_max = lines[data[0] & 3];
	literal_max = lits[(data[0] >> 2) & 3];
	prefill = (data[0] & 0x30) == 0x30;
	memcpy(&seed, data + 1, sizeof(seed));
	seed |= 1;	/* xorshift never leaves 0 */
	fill = MG_IMAP_ARGBUF - 1 - data[5];
	data += 6;
	size -= 6;

	if (prefill) {
		/* The literal and its NUL leave data[5] bytes of argbuf. */
		literal_max = MG_IMAP_ARGBUF;
		line_max = MG_IMAP_ARGBUF;
		n = (size_t)snprintf((char *)buf, 64, "t X {%zu+}\r\n", fill);
		memset(buf + n, 'x', fill);
		n += fill;
		if (size > sizeof(buf) - n)
			size = sizeof(buf) - n;
		memcpy(buf + n, data, size);
		data = buf;
		size += n;
	}

	whole = run(data, size, line_max, literal_max, 0);
	chunked = run(data, size, line_max, literal_max, seed);
	CHECK(whole == chunked);
	return 0;
}
