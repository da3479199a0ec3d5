/*
 * fuzz_imap_track.c - libFuzzer driver for the relay tracking scanners,
 * mg_imap_track_client and mg_imap_track_server.
 *
 * The first four input bytes seed the chunk sizes; the rest is a list of
 * records, each a header byte and its bytes: the header's top bit says
 * which way they go (set: provider -> device), its low seven bits how many
 * follow (0: all the rest). So the input is one relayed session, both
 * directions interleaved as the relay would feed them.
 *
 * The session is fed twice: each record in one call, and each record cut
 * into calls of pseudo-random sizes. After every call the driver checks
 * what must always hold (consumed <= n, a reported LOGOUT lies inside the
 * call, begins with its tag and ends in "LOGOUT" CR* LF, a taint never goes
 * away, limits kept). Both runs must end in the same state: the scanners may
 * not depend on how the network cut the bytes. The one allowed difference
 * is a LOGOUT: the cut run sees fewer whole commands in one call, so it may
 * relay a LOGOUT the whole run reported (and be tainted "LOGOUT relayed"),
 * never the other way round. The client bytes alone and the server bytes
 * alone are also fed at once and in pieces, and must end alike.
 */
/* fuzz-sources: src/parse_imap_relay.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse_imap.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

/* How a run ended: where a LOGOUT was reported, if one was. */
struct fz_end {
	long	logout_at;	/* offset in the client stream, or -1 */
	size_t	logout_len;
	uint8_t	logout_tag_len;
};

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct mg_imap_track	whole, cut;
static uint8_t			cbuf[1 << 16], sbuf[1 << 16];

static uint32_t
xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* The size of the next call: mostly small, now and then a big one. */
static size_t
piece(uint32_t *seed, size_t left)
{
	uint32_t	n = xorshift(seed);
	size_t		k;

	k = (n & 0x100) ? 1 + (n >> 16) % 512 : 1 + (n >> 16) % 8;
	return k < left ? k : left;
}

/* What must hold after every call, whatever it was. */
static void
check_always(const struct mg_imap_track *t)
{
	CHECK(t->c_head_len <= sizeof(t->c_head));
	CHECK(t->s_head_len <= sizeof(t->s_head));
	CHECK(t->s_tail_len <= sizeof(t->s_tail));
	CHECK(t->tainted == 0 || t->tainted == 1);
	CHECK((t->why != NULL) == (t->tainted != 0));
	CHECK(t->selected == 0 || t->selected == 1);
	CHECK(t->c_idle == 0 || t->c_idle == 1);
}

/*
 * A taint never goes away, keeps its reason, and once tainted the
 * scanners change nothing that a caller reads.
 */
static void
check_sticky(const struct mg_imap_track *before,
    const struct mg_imap_track *after)
{
	if (!before->tainted)
		return;
	CHECK(after->tainted);
	CHECK(after->why == before->why);
	CHECK(after->pending == before->pending);
	CHECK(after->selected == before->selected);
}

/* Whether the line ends in " LOGOUT" CR* LF (any case). */
static int
ends_in_logout(const uint8_t *p, size_t len)
{
	size_t	e = len;

	if (e == 0 || p[e - 1] != '\n')
		return 0;
	e--;
	while (e > 0 && p[e - 1] == '\r')
		e--;
	return e >= 7 && p[e - 7] == ' ' && strncasecmp((const char *)p + e - 6,
	    "LOGOUT", 6) == 0;
}

/*
 * Feeds one call of client bytes; returns 1 when a LOGOUT was reported
 * (recorded in end at the client-stream offset base + consumed).
 */
static int
client_call(struct mg_imap_track *t, const uint8_t *p, size_t n, size_t base,
    struct fz_end *end)
{
	struct mg_imap_track	before = *t;
	enum mg_imtrk_result	rc;
	size_t			used = (size_t)-1;

	rc = mg_imap_track_client(t, p, n, &used);
	check_always(t);
	check_sticky(&before, t);
	CHECK(used <= n);
	if (rc == MG_IMTRK_AGAIN) {
		CHECK(used == n);
		return 0;
	}
	CHECK(rc == MG_IMTRK_LOGOUT);
	CHECK(!before.tainted && !t->tainted);
	CHECK(t->pending == 0 && !t->c_idle);
	CHECK(used < n);
	CHECK(t->logout_len > 0 && t->logout_len <= n - used);
	CHECK(t->logout_tag_len > 0 && t->logout_tag_len <= t->c_head_len);
	CHECK(t->logout_tag_len < t->logout_len);
	CHECK(memcmp(p + used, t->c_head, t->logout_tag_len) == 0);
	CHECK(ends_in_logout(p + used, t->logout_len));
	/* Nothing before it in this call is left in the middle of a command. */
	CHECK(used == 0 || p[used - 1] == '\n');
	end->logout_at = (long)(base + used);
	end->logout_len = t->logout_len;
	end->logout_tag_len = t->logout_tag_len;
	return 1;
}

static void
server_call(struct mg_imap_track *t, const uint8_t *p, size_t n)
{
	struct mg_imap_track	before = *t;

	mg_imap_track_server(t, p, n);
	check_always(t);
	check_sticky(&before, t);
}

/*
 * Everything two runs over the same bytes must agree on (c_start is
 * per-call and the LOGOUT fields are only meaningful right after one).
 */
static void
check_same(const struct mg_imap_track *a, const struct mg_imap_track *b)
{
	CHECK(a->pending == b->pending);
	CHECK(a->selected == b->selected);
	CHECK(a->tainted == b->tainted);
	CHECK(a->why == b->why);
	CHECK(a->c_lit == b->c_lit);
	CHECK(a->c_litst == b->c_litst);
	CHECK(a->c_inline == b->c_inline);
	CHECK(a->c_idle == b->c_idle);
	CHECK(a->c_head_len == b->c_head_len);
	CHECK(memcmp(a->c_head, b->c_head, a->c_head_len) == 0);
	CHECK(a->c_w1 == b->c_w1 && a->c_w2 == b->c_w2);
	CHECK(a->s_lit == b->s_lit);
	CHECK(a->s_head_len == b->s_head_len);
	CHECK(memcmp(a->s_head, b->s_head, a->s_head_len) == 0);
	CHECK(a->s_tail_len == b->s_tail_len);
	CHECK(memcmp(a->s_tail, b->s_tail, a->s_tail_len) == 0);
	CHECK(a->c_num == b->c_num);
}

/*
 * The cut run must end as the whole run did, but for a LOGOUT the whole
 * run reported and the cut one relayed.
 */
static void
check_ends(const struct mg_imap_track *a, const struct fz_end *ea,
    const struct mg_imap_track *b, const struct fz_end *eb)
{
	if (eb->logout_at >= 0) {
		CHECK(ea->logout_at == eb->logout_at);
		CHECK(ea->logout_len == eb->logout_len);
		CHECK(ea->logout_tag_len == eb->logout_tag_len);
		CHECK(memcmp(a->c_head, b->c_head, ea->logout_tag_len) == 0);
		CHECK(a->pending == b->pending && !b->tainted);
		return;
	}
	if (ea->logout_at >= 0) {
		CHECK(b->tainted);
		CHECK(strcmp(b->why, "LOGOUT relayed") == 0);
		return;
	}
	check_same(a, b);
}

/*
 * Feeds the records to t: each in one call (seed 0) or in pieces. Stops at
 * a reported LOGOUT, as the gateway does.
 */
static void
run(struct mg_imap_track *t, const uint8_t *data, size_t size, uint32_t seed,
    struct fz_end *end)
{
	size_t	off = 0, len, k, i, base = 0;
	int	to_server;

	mg_imap_track_init(t);
	end->logout_at = -1;
	while (off < size) {
		to_server = data[off] & 0x80;
		len = data[off] & 0x7f;
		off++;
		if (len == 0 || len > size - off)
			len = size - off;
		for (i = 0; i < len; i += k) {
			k = seed != 0 ? piece(&seed, len - i) : len - i;
			if (to_server)
				server_call(t, data + off + i, k);
			else if (client_call(t, data + off + i, k, base + i,
			    end))
				return;
		}
		if (!to_server)
			base += len;
		off += len;
	}
}

/* Collects one direction's bytes in buf; returns how many. */
static size_t
gather(const uint8_t *data, size_t size, int server, uint8_t *buf,
    size_t max)
{
	size_t	off = 0, len, n = 0;

	while (off < size) {
		int	to_server = (data[off] & 0x80) != 0;

		len = data[off] & 0x7f;
		off++;
		if (len == 0 || len > size - off)
			len = size - off;
		if (to_server == server && len <= max - n) {
			memcpy(buf + n, data + off, len);
			n += len;
		}
		off += len;
	}
	return n;
}

/* The bytes of one direction, at once and in pieces. */
static void
run_one_way(const uint8_t *p, size_t n, int server, uint32_t seed)
{
	struct fz_end	ea = { -1, 0, 0 }, eb = { -1, 0, 0 };
	size_t		i, k;

	mg_imap_track_init(&whole);
	if (server)
		server_call(&whole, p, n);
	else
		(void)client_call(&whole, p, n, 0, &ea);
	mg_imap_track_init(&cut);
	for (i = 0; i < n; i += k) {
		k = piece(&seed, n - i);
		if (server)
			server_call(&cut, p + i, k);
		else if (client_call(&cut, p + i, k, i, &eb))
			break;
	}
	check_ends(&whole, &ea, &cut, &eb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_end	ea, eb;
	uint32_t	seed;
	size_t		n;

	if (size < 4)
		return 0;
	memcpy(&seed, data, sizeof(seed));
	seed |= 1;	/* xorshift never leaves 0 */
	data += 4;
	size -= 4;

	run(&whole, data, size, 0, &ea);
	run(&cut, data, size, seed, &eb);
	check_ends(&whole, &ea, &cut, &eb);

	n = gather(data, size, 0, cbuf, sizeof(cbuf));
	run_one_way(cbuf, n, 0, seed);
	n = gather(data, size, 1, sbuf, sizeof(sbuf));
	run_one_way(sbuf, n, 1, seed);
	return 0;
}
