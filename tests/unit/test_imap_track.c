/*
 * test_imap_track.c - unit tests for the relay tracking scanners of
 * parse_imap_relay.c (mg_imap_track_client and mg_imap_track_server).
 *
 * A session is written as a list of steps, each a run of bytes from the
 * device (client) or from the provider (server). Most tests check the
 * outcome (pending, selected, tainted and why) of feeding the steps each at
 * once, and then check that feeding them a byte at a time, or with any one
 * step split in two at any offset, ends the same: the scanners must not
 * care how the network cut the bytes. The one thing that does depend on
 * the cuts is a LOGOUT: it is reported only when the whole command arrives
 * in one call (the bytes of an earlier call have already gone to the
 * provider), and otherwise it is relayed and taints the session with
 * "LOGOUT relayed". check_splits() allows exactly that difference.
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

/* One run of bytes in one direction. */
struct step {
	char		 dir;	/* 'C' device -> provider, 'S' provider -> device */
	const char	*s;	/* the bytes (may contain NUL: len says) */
	size_t		 len;
};

/* What a run of steps ended with. */
struct outcome {
	uint32_t	 pending;
	int		 selected;
	int		 tainted;
	int		 idle;
	const char	*why;		/* NULL when not tainted */
	long		 logout_at;	/* client-stream offset of a reported LOGOUT, or -1 */
	size_t		 logout_len;
	char		 logout_tag[MG_IMTRK_HEAD + 1];
};

/* A step from a string literal (the length excludes the NUL). */
#define C(str)	{ 'C', (str), sizeof(str) - 1 }
#define S(str)	{ 'S', (str), sizeof(str) - 1 }
#define NSTEPS(a)	(sizeof(a) / sizeof((a)[0]))

/* How run() cuts the steps: whole, a byte at a time, or one step in two. */
enum cut_mode {
	CUT_NONE = 0,
	CUT_BYTES,
	CUT_ONE
};

static struct mg_imap_track	trk;

static void	feed_client(struct mg_imap_track *, const char *, size_t,
		    size_t, struct outcome *);
static void	run(const struct step *, size_t, enum cut_mode, size_t, size_t,
		    struct outcome *);
static void	outcome_equal(const struct outcome *, const struct outcome *,
		    const char *, size_t, size_t);
static void	check_splits(const struct step *, size_t, struct outcome *);
static enum mg_imtrk_result client(const char *, size_t *);
static void	server(const char *);

/*
 * Feeds one call's worth of client bytes, recording a LOGOUT (with its
 * offset base + consumed in the client stream) and checking what the
 * header promises about it.
 */
static void
feed_client(struct mg_imap_track *t, const char *s, size_t len, size_t base,
    struct outcome *o)
{
	enum mg_imtrk_result	rc;
	size_t			used = (size_t)-1;

	rc = mg_imap_track_client(t, (const uint8_t *)s, len, &used);
	if (rc == MG_IMTRK_AGAIN) {
		assert_int_equal(used, len);
		return;
	}
	assert_int_equal(rc, MG_IMTRK_LOGOUT);
	assert_true(used < len);
	assert_true(t->logout_len > 0 && t->logout_len <= len - used);
	assert_int_equal(s[used + t->logout_len - 1], '\n');
	assert_true(t->logout_tag_len > 0);
	assert_memory_equal(s + used, t->c_head, t->logout_tag_len);
	assert_int_equal(t->pending, 0);
	assert_int_equal(t->tainted, 0);
	o->logout_at = (long)(base + used);
	o->logout_len = t->logout_len;
	memcpy(o->logout_tag, t->c_head, t->logout_tag_len);
	o->logout_tag[t->logout_tag_len] = '\0';
}

/*
 * Feeds steps to a fresh tracker and fills o. With CUT_BYTES every step
 * goes a byte at a time; with CUT_ONE step number which is cut at offset
 * at (0 and len make an empty call). A reported LOGOUT ends the session,
 * as it does for the gateway.
 */
static void
run(const struct step *steps, size_t n, enum cut_mode mode, size_t which,
    size_t at, struct outcome *o)
{
	const struct step	*st;
	size_t			 i, k, base = 0;

	memset(o, 0, sizeof(*o));
	o->logout_at = -1;
	mg_imap_track_init(&trk);
	for (i = 0; i < n && o->logout_at < 0; i++) {
		st = &steps[i];
		if (st->dir == 'S') {
			if (mode == CUT_BYTES) {
				for (k = 0; k < st->len; k++)
					mg_imap_track_server(&trk,
					    (const uint8_t *)st->s + k, 1);
			} else if (mode == CUT_ONE && which == i) {
				mg_imap_track_server(&trk,
				    (const uint8_t *)st->s, at);
				mg_imap_track_server(&trk,
				    (const uint8_t *)st->s + at, st->len - at);
			} else
				mg_imap_track_server(&trk,
				    (const uint8_t *)st->s, st->len);
			continue;
		}
		if (mode == CUT_BYTES) {
			for (k = 0; k < st->len && o->logout_at < 0; k++)
				feed_client(&trk, st->s + k, 1, base + k, o);
		} else if (mode == CUT_ONE && which == i) {
			feed_client(&trk, st->s, at, base, o);
			if (o->logout_at < 0)
				feed_client(&trk, st->s + at, st->len - at,
				    base + at, o);
		} else
			feed_client(&trk, st->s, st->len, base, o);
		base += st->len;
	}
	o->pending = trk.pending;
	o->selected = trk.selected;
	o->tainted = trk.tainted;
	o->idle = trk.c_idle;
	o->why = trk.tainted ? trk.why : NULL;
	if (trk.tainted)
		assert_non_null(trk.why);
}

/*
 * A cut run must end as the whole run did, except that a LOGOUT the whole
 * run reported may instead have been relayed (pending one more, tainted
 * with "LOGOUT relayed") when the cut fell inside it.
 */
static void
outcome_equal(const struct outcome *whole, const struct outcome *cut,
    const char *how, size_t which, size_t at)
{
	if (whole->logout_at >= 0 && cut->logout_at < 0) {
		if (!cut->tainted || strcmp(cut->why, "LOGOUT relayed") != 0)
			fail_msg("%s (step %zu at %zu): LOGOUT neither "
			    "reported nor relayed (why=%s)", how, which, at,
			    cut->why != NULL ? cut->why : "-");
		return;
	}
	if (whole->logout_at != cut->logout_at ||
	    whole->logout_len != cut->logout_len ||
	    strcmp(whole->logout_tag, cut->logout_tag) != 0)
		fail_msg("%s (step %zu at %zu): LOGOUT at %ld len %zu, "
		    "whole at %ld len %zu", how, which, at, cut->logout_at,
		    cut->logout_len, whole->logout_at, whole->logout_len);
	if (whole->pending != cut->pending ||
	    whole->selected != cut->selected ||
	    whole->tainted != cut->tainted || whole->idle != cut->idle ||
	    (whole->tainted && strcmp(whole->why, cut->why) != 0))
		fail_msg("%s (step %zu at %zu): pending %u selected %d "
		    "tainted %d (%s) idle %d; whole: pending %u selected %d "
		    "tainted %d (%s) idle %d", how, which, at, cut->pending,
		    cut->selected, cut->tainted, cut->why ? cut->why : "-",
		    cut->idle, whole->pending, whole->selected, whole->tainted,
		    whole->why ? whole->why : "-", whole->idle);
}

/*
 * Runs the steps whole (the outcome is returned in o), a byte at a time,
 * and with each step cut at each offset, and checks all end alike.
 */
static void
check_splits(const struct step *steps, size_t n, struct outcome *o)
{
	struct outcome	cut;
	size_t		i, at;

	run(steps, n, CUT_NONE, 0, 0, o);
	run(steps, n, CUT_BYTES, 0, 0, &cut);
	outcome_equal(o, &cut, "bytes", 0, 0);
	for (i = 0; i < n; i++)
		for (at = 0; at <= steps[i].len; at++) {
			run(steps, n, CUT_ONE, i, at, &cut);
			outcome_equal(o, &cut, "split", i, at);
		}
}

/* Checks the outcome of steps (whole and cut) against what is expected. */
#define EXPECT(steps, pend, sel, why_)	do {				\
	struct outcome	o_;						\
	const char	*w_ = (why_);					\
									\
	check_splits((steps), NSTEPS(steps), &o_);			\
	assert_int_equal(o_.logout_at, -1);				\
	assert_int_equal(o_.pending, (pend));				\
	assert_int_equal(o_.selected, (sel));				\
	if (w_ == NULL)							\
		assert_int_equal(o_.tainted, 0);			\
	else {								\
		assert_int_equal(o_.tainted, 1);			\
		assert_string_equal(o_.why, w_);			\
	}								\
} while (0)

/* Feeds a string of client bytes to trk at once. */
static enum mg_imtrk_result
client(const char *s, size_t *used)
{
	*used = (size_t)-1;
	return mg_imap_track_client(&trk, (const uint8_t *)s, strlen(s), used);
}

/* Feeds a string of server bytes to trk at once. */
static void
server(const char *s)
{
	mg_imap_track_server(&trk, (const uint8_t *)s, strlen(s));
}

#define TAINT_CMD	"a command that may change the session"
#define TAINT_UID	"a UID command that may change the session"
#define TAINT_CONDSTORE	"CONDSTORE enabled"
#define TAINT_LOGOUT	"LOGOUT relayed"
#define TAINT_TAGGED	"a tagged response no command waits for"
#define TAINT_IDLE	"unexpected input during IDLE"
#define TAINT_LONG	"command too long to follow"
#define TAINT_LITERAL	"literal too large to follow"

static void
test_init(void **state)
{
	(void)state;
	memset(&trk, 0x5a, sizeof(trk));
	mg_imap_track_init(&trk);
	assert_int_equal(trk.pending, 0);
	assert_int_equal(trk.selected, 0);
	assert_int_equal(trk.tainted, 0);
	assert_null(trk.why);
	assert_int_equal(trk.c_lit, 0);
	assert_int_equal(trk.s_lit, 0);
	assert_int_equal(trk.c_inline, 0);
	assert_int_equal(trk.c_idle, 0);
}

/* The example of the brief, call by call. */
static void
test_simple_session(void **state)
{
	size_t	used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a1 SELECT INBOX\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 17);
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.selected, 1);
	server("* 3 EXISTS\r\na1 OK done\r\n");
	assert_int_equal(trk.pending, 0);
	assert_int_equal(trk.tainted, 0);
	assert_int_equal(client("a2 LOGOUT\r\n", &used), MG_IMTRK_LOGOUT);
	assert_int_equal(used, 0);
	assert_int_equal(trk.logout_len, 11);
	assert_int_equal(trk.logout_tag_len, 2);
	assert_memory_equal(trk.c_head, "a2", 2);
	assert_int_equal(trk.tainted, 0);
	assert_int_equal(trk.selected, 1);
}

/* The same session through check_splits. */
static void
test_simple_session_splits(void **state)
{
	static const struct step	steps[] = {
		C("a1 SELECT INBOX\r\n"),
		S("* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] x\r\n"
		    "a1 OK [READ-WRITE] done\r\n"),
		C("a2 FETCH 1:* (FLAGS)\r\na3 NOOP\r\n"),
		S("* 1 FETCH (FLAGS (\\Seen))\r\na2 OK done\r\na3 OK done\r\n"),
		C("a4 LOGOUT\r\n"),
	};
	struct outcome			o;

	(void)state;
	check_splits(steps, NSTEPS(steps), &o);
	assert_int_equal(o.logout_at, 17 + 31);
	assert_int_equal(o.logout_len, 11);
	assert_string_equal(o.logout_tag, "a4");
	assert_int_equal(o.pending, 0);
	assert_int_equal(o.selected, 1);
	assert_int_equal(o.tainted, 0);
}

/* A LOGOUT while another command is unanswered is relayed, and taints. */
static void
test_logout_while_pending(void **state)
{
	static const struct step	steps[] = {
		C("a1 NOOP\r\n"),
		C("a2 LOGOUT\r\n"),
	};
	size_t				used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a1 NOOP\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(client("a2 LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 11);
	assert_int_equal(trk.pending, 2);
	assert_int_equal(trk.tainted, 1);
	assert_string_equal(trk.why, TAINT_LOGOUT);
	/*
	 * Once tainted, the scanners stop (the caller may stop feeding
	 * them): pending is no longer followed and nothing is reported.
	 */
	server("a1 OK\r\n");
	assert_int_equal(trk.pending, 2);
	assert_int_equal(client("a3 LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 11);

	EXPECT(steps, 2, 0, TAINT_LOGOUT);
}

/* A LOGOUT after another command in the same call is not reported. */
static void
test_logout_same_buffer(void **state)
{
	static const struct step	steps[] = {
		C("a NOOP\r\nb LOGOUT\r\n"),
	};
	/* Once "a" is answered, the LOGOUT may follow other bytes. */
	static const struct step	after[] = {
		C("a NOOP\r\n"),
		S("a OK\r\n"),
		C("\r\nb LOGOUT\r\n"),
	};
	struct outcome			o;
	size_t				used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a NOOP\r\nb LOGOUT\r\n", &used),
	    MG_IMTRK_AGAIN);
	assert_int_equal(used, 18);
	assert_int_equal(trk.pending, 2);
	assert_string_equal(trk.why, TAINT_LOGOUT);
	EXPECT(steps, 2, 0, TAINT_LOGOUT);

	check_splits(after, NSTEPS(after), &o);
	assert_int_equal(o.logout_at, 8 + 2);
	assert_int_equal(o.logout_len, 10);
	assert_string_equal(o.logout_tag, "b");
}

/* A LOGOUT cut across two calls is relayed: its start already went on. */
static void
test_logout_split(void **state)
{
	size_t	used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("b LOG", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 5);
	assert_int_equal(trk.tainted, 0);
	assert_int_equal(client("OUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 5);
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.tainted, 1);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	/* Cut between CR and LF: the same. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("b LOGOUT\r", &used), MG_IMTRK_AGAIN);
	assert_int_equal(client("\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	/* Cut right before it: reported at offset 0 of the second call. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 0);
	assert_int_equal(client("b LOGOUT\r\n", &used), MG_IMTRK_LOGOUT);
	assert_int_equal(used, 0);
	assert_int_equal(trk.logout_len, 10);
}

/*
 * Observed behaviour: fed a byte at a time, a LOGOUT is never reported (no
 * single call holds the whole command), so it is relayed and the session
 * ends tainted with "LOGOUT relayed", one command pending.
 */
static void
test_logout_bytewise(void **state)
{
	static const char	in[] = "a2 LOGOUT\r\n";
	size_t			i, used;

	(void)state;
	mg_imap_track_init(&trk);
	for (i = 0; i < sizeof(in) - 1; i++) {
		assert_int_equal(mg_imap_track_client(&trk,
		    (const uint8_t *)in + i, 1, &used), MG_IMTRK_AGAIN);
		assert_int_equal(used, 1);
	}
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.tainted, 1);
	assert_string_equal(trk.why, TAINT_LOGOUT);
}

/* What counts as a LOGOUT the gateway may answer, and what does not. */
static void
test_logout_forms(void **state)
{
	size_t	used;

	(void)state;
	/* Any case; a bare LF; the tag as written. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("Tag.7 logout\r\n", &used), MG_IMTRK_LOGOUT);
	assert_int_equal(used, 0);
	assert_int_equal(trk.logout_len, 14);
	assert_int_equal(trk.logout_tag_len, 5);
	assert_memory_equal(trk.c_head, "Tag.7", 5);

	mg_imap_track_init(&trk);
	assert_int_equal(client("x LoGoUt\n", &used), MG_IMTRK_LOGOUT);
	assert_int_equal(trk.logout_len, 9);

	/* Bytes after the LOGOUT in the same call are not part of it. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("z LOGOUT\r\nextra", &used), MG_IMTRK_LOGOUT);
	assert_int_equal(used, 0);
	assert_int_equal(trk.logout_len, 10);

	/* Arguments: not a LOGOUT the gateway knows how to answer. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a LOGOUT now\r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);
	mg_imap_track_init(&trk);
	assert_int_equal(client("a LOGOUT \r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	/* A leading space: the tag would not be at c_head[0]. */
	mg_imap_track_init(&trk);
	assert_int_equal(client(" a LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 1);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	/*
	 * "{n}" glued to a word is no literal (a literal is an argument of its
	 * own): two lines, neither of them a LOGOUT with a tag.
	 */
	mg_imap_track_init(&trk);
	assert_int_equal(client("x{0}\r\n LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 2);
	assert_int_equal(trk.tainted, 0);
	/*
	 * A literal inside the LOGOUT line: the head leaves out the literal's
	 * LF, so its "tag" is not what was sent; relayed, not answered.
	 */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a {3+}\r\nxyz LOGOUT\r\n", &used),
	    MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 1);
	/* A tag of characters IMAP does not allow in one: relayed, the provider answers BAD. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a\"b LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);
	mg_imap_track_init(&trk);
	assert_int_equal(client("a+ LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	/* No tag: "LOGOUT" is the tag, with no command name. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.tainted, 0);

	/* During IDLE, a LOGOUT is unexpected input. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a IDLE\r\n", &used), MG_IMTRK_AGAIN);
	server("+ idling\r\n");
	assert_int_equal(client("b LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_IDLE);

	/* After a literal that ended in an earlier call, at offset 0. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a APPEND INBOX {3}\r\n", &used),
	    MG_IMTRK_AGAIN);
	server("+ go\r\n");
	assert_int_equal(client("ab", &used), MG_IMTRK_AGAIN);
	assert_int_equal(client("c\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 1);
	server("a OK [APPENDUID 1 2] done\r\n");
	assert_int_equal(client("b LOGOUT\r\n", &used), MG_IMTRK_LOGOUT);
	assert_int_equal(used, 0);
	assert_int_equal(trk.logout_len, 10);
}

/* Client bytes and server bytes, cut anywhere, end alike. */
static void
test_splits_mixed(void **state)
{
	static const struct step	s1[] = {
		C("a1 LIST \"\" *\r\na2 STATUS INBOX (MESSAGES)\r\n"),
		S("* LIST () \"/\" INBOX\r\n* LIST () \"/\" {5}\r\nfoo\r\n"
		    " a1 OK\r\n* STATUS INBOX (MESSAGES 2)\r\n"),
		S("a1 OK LIST done\r\na2 OK STATUS done\r\n"),
		C("a3 EXAMINE {5}\r\n"),
		S("+ go on\r\n"),
		C("INBOX\r\na4 UNSELECT\r\n"),
		S("a3 OK\r\n"),
		C("a5 IDLE\r\n"),
		S("+ idling\r\n* 4 EXISTS\r\n"),
		C("DONE\r\n"),
		S("a4 OK\r\na5 OK\r\n"),
	};
	static const struct step	s2[] = {
		C("t1 APPEND INBOX (\\Seen) {10+}\r\nt2 LOGOUT\r\n"
		    "t3 NOOP\r\n"),
		S("t1 OK\r\n* 2 FETCH (BODY[] {20}\r\nt3 OK\r\nt3 OK\r\nxxxxxx)\r\n"),
		S("t3 OK\r\n"),
	};
	struct outcome			o;

	(void)state;
	check_splits(s1, NSTEPS(s1), &o);
	assert_int_equal(o.logout_at, -1);
	assert_int_equal(o.pending, 0);
	/* a4 UNSELECT was answered OK. */
	assert_int_equal(o.selected, 0);
	assert_int_equal(o.tainted, 0);
	assert_int_equal(o.idle, 0);

	check_splits(s2, NSTEPS(s2), &o);
	assert_int_equal(o.pending, 0);
	assert_int_equal(o.tainted, 0);
}

/* A literal whose content looks like a LOGOUT is skipped. */
static void
test_client_literal_logout_inside(void **state)
{
	static const struct step	steps[] = {
		C("a APPEND INBOX {11}\r\nb LOGOUT\r\n\r\n"),
	};
	static const struct step	answered[] = {
		C("a APPEND INBOX {11}\r\n"),
		S("+ Ready for literal data\r\n"),
		C("b LOGOUT\r\n\r\n"),
		S("a OK APPEND completed\r\n"),
	};
	size_t				used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a APPEND INBOX {11}\r\nb LOGOUT\r\n\r\n",
	    &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.tainted, 0);
	assert_int_equal(trk.c_lit, 0);
	EXPECT(steps, 1, 0, NULL);
	EXPECT(answered, 0, 0, NULL);
}

/* {n+}, ~{n}, ~{n+}, {0}, several literals in one command. */
static void
test_client_literal_forms(void **state)
{
	static const struct step	plus[] = {
		C("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"),
	};
	static const struct step	binary[] = {
		C("a APPEND INBOX ~{4}\r\n"),
		S("+ ok\r\n"),
		C("\0\r\n\n\r\n"),
		C("b APPEND INBOX ~{3+}\r\nb L\r\n"),
		S("a OK\r\nb OK\r\n"),
	};
	static const struct step	zero[] = {
		C("a APPEND INBOX {0}\r\n"),
		S("+ ok\r\n"),
		C("\r\nb NOOP\r\n"),
	};
	static const struct step	cat[] = {
		C("a APPEND INBOX CATENATE (URL \"/INBOX;UID=1\" TEXT {4}\r\n"),
		S("+ ok\r\n"),
		C("x\r\n\r TEXT {3+}\r\na\nb)\r\n"),
		S("a OK\r\n"),
	};
	static const struct step	notlit[] = {
		/* Not announcements: the line ends there. */
		C("a NOOP {}\r\nb NOOP {x}\r\nc NOOP {5} \r\nd NOOP {+5}\r\n"
		    "e NOOP {5}x\r\nf NOOP {5++}\r\n"),
	};

	(void)state;
	EXPECT(plus, 1, 0, TAINT_CMD);		/* LOGIN is not a safe command */
	EXPECT(binary, 0, 0, NULL);
	EXPECT(zero, 2, 0, NULL);
	EXPECT(cat, 0, 0, NULL);
	EXPECT(notlit, 6, 0, NULL);
}

/* A literal and its announcement cut across calls. */
static void
test_client_literal_split(void **state)
{
	size_t	used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a APPEND INBOX {1", &used), MG_IMTRK_AGAIN);
	assert_int_equal(client("2}", &used), MG_IMTRK_AGAIN);
	assert_int_equal(client("\r", &used), MG_IMTRK_AGAIN);
	assert_int_equal(client("\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.c_lit, 12);
	assert_int_equal(client("b LOGOUT\r", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.c_lit, 3);
	assert_int_equal(client("\nc", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.c_lit, 1);
	assert_int_equal(trk.pending, 0);
	assert_int_equal(client("d\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(used, 3);
	assert_int_equal(trk.c_lit, 0);
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.tainted, 0);

	/* A literal longer than many calls. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a APPEND INBOX {100000+}\r\n", &used),
	    MG_IMTRK_AGAIN);
	{
		static char	chunk[4096];
		size_t		left = 100000, k;

		memset(chunk, '\n', sizeof(chunk));
		memcpy(chunk, "z LOGOUT\r\n", 10);
		while (left > 0) {
			k = left < sizeof(chunk) ? left : sizeof(chunk);
			assert_int_equal(mg_imap_track_client(&trk,
			    (const uint8_t *)chunk, k, &used), MG_IMTRK_AGAIN);
			assert_int_equal(used, k);
			left -= k;
		}
	}
	assert_int_equal(trk.c_lit, 0);
	assert_int_equal(trk.pending, 0);
	assert_int_equal(client(")\r\n", &used), MG_IMTRK_AGAIN);
	assert_int_equal(trk.pending, 1);
	assert_int_equal(trk.tainted, 0);
}

/* A literal in a server response is skipped, whatever it holds. */
static void
test_server_literal(void **state)
{
	static const struct step	fake[] = {
		C("a1 FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {12}\r\na9 OK fake\r\n)\r\n"),
	};
	static const struct step	fake_done[] = {
		C("a1 FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {12}\r\na9 OK fake\r\n)\r\na1 OK\r\n"),
	};
	static const struct step	lf[] = {
		/* A literal announced with a bare LF, and a binary one. */
		C("a1 FETCH 1 (BODY[] BINARY[1])\r\n"),
		S("* 1 FETCH (BODY[] {3}\na\nb BINARY[1] ~{4}\r\n\r\n\r\n)\r\n"
		    "a1 OK\r\n"),
	};
	static const struct step	zero[] = {
		C("a1 FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {0}\r\n)\r\na1 OK\r\n"),
	};
	static const struct step	notlit[] = {
		/* "{5}" not at the line's end, "{}", "{5}x": no literal. */
		C("a NOOP\r\nb NOOP\r\nc NOOP\r\n"),
		S("* OK {5} here\r\na OK {}\r\nb OK {5}x\r\nc OK\r\n"),
	};

	(void)state;
	EXPECT(fake, 1, 0, NULL);
	EXPECT(fake_done, 0, 0, NULL);
	EXPECT(lf, 0, 0, NULL);
	EXPECT(zero, 0, 0, NULL);
	EXPECT(notlit, 0, 0, NULL);
}

/* Announcement digits cut across calls; a literal longer than a call. */
static void
test_server_literal_split(void **state)
{
	static char	big[10000];
	size_t		used, i;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a1 FETCH 1 BODY[]\r\n", &used),
	    MG_IMTRK_AGAIN);
	server("* 1 FETCH (BODY[] {1");
	server("2");
	server("}\r");
	assert_int_equal(trk.s_lit, 0);
	server("\n");
	assert_int_equal(trk.s_lit, 12);
	server("a9 OK fake\r");
	server("\n)\r\n");
	assert_int_equal(trk.s_lit, 0);
	assert_int_equal(trk.pending, 1);
	server("a1 OK\r\n");
	assert_int_equal(trk.pending, 0);
	assert_int_equal(trk.tainted, 0);

	/* 10000 bytes of tagged-looking lines, in pieces of every size. */
	for (i = 0; i + 7 <= sizeof(big); i += 7)
		memcpy(big + i, "a1 OK\r\n", 7);
	memset(big + i, '\n', sizeof(big) - i);
	mg_imap_track_init(&trk);
	assert_int_equal(client("a1 FETCH 1 BODY[]\r\n", &used),
	    MG_IMTRK_AGAIN);
	server("* 1 FETCH (BODY[] {10000}\r\n");
	for (i = 0; i < sizeof(big); i += used) {
		used = 1 + i % 997;
		if (used > sizeof(big) - i)
			used = sizeof(big) - i;
		mg_imap_track_server(&trk, (const uint8_t *)big + i, used);
	}
	assert_int_equal(trk.s_lit, 0);
	assert_int_equal(trk.pending, 1);
	server(" UID 5)\r\na1 OK\r\n");
	assert_int_equal(trk.pending, 0);
	assert_int_equal(trk.tainted, 0);

	/* A long line before the announcement: only its tail matters. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a1 FETCH 1 BODY[]\r\n", &used),
	    MG_IMTRK_AGAIN);
	memset(big, 'x', 300);
	memcpy(big, "* 1 FETCH (X ", 13);
	mg_imap_track_server(&trk, (const uint8_t *)big, 300);
	server(" BODY[] {7}\r\n");
	server("a1 OK");
	server("\r\n)\r\n");
	assert_int_equal(trk.pending, 1);
	server("a1 OK\r\n");
	assert_int_equal(trk.pending, 0);
	assert_int_equal(trk.tainted, 0);
}

/* Each tainting command, on its own. */
static void
test_taint_commands(void **state)
{
	static const struct {
		const char	*cmd;
		const char	*why;
	} cases[] = {
		{ "a ENABLE QRESYNC\r\n", TAINT_CMD },
		{ "a COMPRESS DEFLATE\r\n", TAINT_CMD },
		{ "a NOTIFY SET (selected MessageNew)\r\n", TAINT_CMD },
		{ "a UNAUTHENTICATE\r\n", TAINT_CMD },
		{ "a LANGUAGE DE\r\n", TAINT_CMD },
		{ "a STARTTLS\r\n", TAINT_CMD },
		{ "a LOGIN u p\r\n", TAINT_CMD },
		{ "a XFOO\r\n", TAINT_CMD },
		{ "a UID XYZ 1\r\n", TAINT_UID },
		{ "a UID\r\n", TAINT_UID },
		{ "a SELECT INBOX (CONDSTORE)\r\n", TAINT_CONDSTORE },
		{ "a FETCH 1 (MODSEQ)\r\n", TAINT_CONDSTORE },
		{ "a fetch 1:* (FLAGS) (changedsince 5)\r\n", TAINT_CONDSTORE },
		{ "a STORE 1 (UNCHANGEDSINCE 3) +FLAGS (x)\r\n",
		    TAINT_CONDSTORE },
		{ "a STATUS INBOX (HIGHESTMODSEQ)\r\n", TAINT_CONDSTORE },
		{ "a SEARCH MODSEQ 5\r\n", TAINT_CONDSTORE },
	};
	struct step	st[1];
	size_t		i, used;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mg_imap_track_init(&trk);
		assert_int_equal(client(cases[i].cmd, &used), MG_IMTRK_AGAIN);
		assert_int_equal(used, strlen(cases[i].cmd));
		if (!trk.tainted || strcmp(trk.why, cases[i].why) != 0)
			fail_msg("%s: tainted %d why %s", cases[i].cmd,
			    trk.tainted, trk.why ? trk.why : "-");
		st[0].dir = 'C';
		st[0].s = cases[i].cmd;
		st[0].len = strlen(cases[i].cmd);
		{
			struct outcome	o;

			check_splits(st, 1, &o);
			assert_int_equal(o.tainted, 1);
			assert_string_equal(o.why, cases[i].why);
		}
		/* Sticky: nothing more changes. */
		assert_int_equal(client("b NOOP\r\n", &used), MG_IMTRK_AGAIN);
		server("a OK\r\nb OK\r\nc OK\r\n");
		assert_int_equal(trk.tainted, 1);
		assert_string_equal(trk.why, cases[i].why);
		assert_int_equal(client("d LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	}
}

/* The commands that keep the session reusable, in any case. */
static void
test_safe_commands(void **state)
{
	static const struct step	steps[] = {
		C("a1 CAPABILITY\r\na2 noop\r\na3 Check\r\na4 ID NIL\r\n"
		    "a5 UID EXPUNGE 1\r\na6 uid fetch 1:* (FLAGS)\r\n"
		    "a7 UID STORE 1 +FLAGS (\\Seen)\r\na8 UID COPY 1 Trash\r\n"
		    "a9 UID MOVE 1 Trash\r\na10 UID SEARCH ALL\r\n"
		    "a11 UID SORT (DATE) UTF-8 ALL\r\n"
		    "a12 UID THREAD REFERENCES UTF-8 ALL\r\n"
		    "a13 NAMESPACE\r\na14 GETQUOTAROOT INBOX\r\n"
		    "a15 CREATE x\r\na16 RENAME x y\r\na17 DELETE y\r\n"
		    "a18 SUBSCRIBE y\r\na19 UNSUBSCRIBE y\r\na20 LSUB \"\" *\r\n"
		    "a21 XLIST \"\" *\r\na22 EXPUNGE\r\na23 MYRIGHTS INBOX\r\n"),
		S("a1 OK\r\na2 OK\r\na3 OK\r\na4 OK\r\na5 OK\r\na6 OK\r\n"
		    "a7 OK\r\na8 OK\r\na9 OK\r\na10 OK\r\na11 OK\r\na12 OK\r\n"
		    "a13 OK\r\na14 OK\r\na15 OK\r\na16 OK\r\na17 OK\r\n"
		    "a18 OK\r\na19 OK\r\na20 OK\r\na21 OK\r\na22 OK\r\n"),
	};

	(void)state;
	EXPECT(steps, 1, 0, NULL);
}

/* Server responses that nobody waits for, and what IDLE allows. */
static void
test_taint_server_and_idle(void **state)
{
	static const struct step	stray[] = {
		S("* OK still here\r\n+ go\r\n\r\n"),
		S("a1 OK\r\n"),
	};
	static const struct step	extra[] = {
		C("a NOOP\r\n"),
		S("a OK\r\na OK\r\n"),
	};
	static const struct step	idle_ok[] = {
		C("a IDLE\r\n"),
		S("+ idling\r\n* 1 EXISTS\r\n"),
		C("done\r\n"),
		S("a OK IDLE terminated\r\n"),
	};
	static const struct step	idle_bad[] = {
		C("a IDLE\r\n"),
		S("+ idling\r\n"),
		C("b NOOP\r\n"),
	};
	static const struct step	idle_empty[] = {
		C("a IDLE\r\n"),
		C("\r\n"),
	};
	static const struct step	idle_more[] = {
		C("a IDLE\r\n"),
		C("DONE now\r\n"),
	};

	(void)state;
	EXPECT(stray, 0, 0, TAINT_TAGGED);
	EXPECT(extra, 0, 0, TAINT_TAGGED);
	EXPECT(idle_ok, 0, 0, NULL);
	EXPECT(idle_bad, 1, 0, TAINT_IDLE);
	EXPECT(idle_empty, 1, 0, TAINT_IDLE);
	EXPECT(idle_more, 1, 0, TAINT_IDLE);

	/* IDLE, DONE and the tagged OK; then a LOGOUT is reported. */
	{
		size_t	used;

		mg_imap_track_init(&trk);
		assert_int_equal(client("a IDLE\r\n", &used), MG_IMTRK_AGAIN);
		assert_int_equal(trk.c_idle, 1);
		server("+ idling\r\n");
		assert_int_equal(client("DONE\r\n", &used), MG_IMTRK_AGAIN);
		assert_int_equal(trk.c_idle, 0);
		assert_int_equal(trk.pending, 1);
		assert_int_equal(client("b LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
		assert_string_equal(trk.why, TAINT_LOGOUT);

		mg_imap_track_init(&trk);
		assert_int_equal(client("a IDLE\r\n", &used), MG_IMTRK_AGAIN);
		server("+ idling\r\n");
		assert_int_equal(client("DONE\r\n", &used), MG_IMTRK_AGAIN);
		server("a OK\r\n");
		assert_int_equal(trk.pending, 0);
		assert_int_equal(client("b LOGOUT\r\n", &used),
		    MG_IMTRK_LOGOUT);
	}
}

/* The head holds the first MG_IMTRK_HEAD bytes of a command. */
static void
test_head_limit(void **state)
{
	char		cmd[256];
	struct step	st[1] = { { 'C', cmd, 0 } };
	struct outcome	o;
	size_t		n;

	(void)state;
	/* A command name longer than the head: cannot be followed. */
	n = (size_t)snprintf(cmd, sizeof(cmd), "a %0*d\r\n", MG_IMTRK_HEAD, 0);
	st[0].len = n;
	check_splits(st, 1, &o);
	assert_int_equal(o.pending, 1);
	assert_int_equal(o.tainted, 1);
	assert_string_equal(o.why, TAINT_LONG);

	/* A tag filling the head. */
	memset(cmd, 't', MG_IMTRK_HEAD + 10);
	memcpy(cmd + MG_IMTRK_HEAD + 10, " NOOP\r\n", 7);
	st[0].len = MG_IMTRK_HEAD + 17;
	check_splits(st, 1, &o);
	assert_int_equal(o.tainted, 1);
	assert_string_equal(o.why, TAINT_LONG);

	/* A head of exactly MG_IMTRK_HEAD bytes ending in the name: taints. */
	memset(cmd, 't', MG_IMTRK_HEAD - 6);
	memcpy(cmd + MG_IMTRK_HEAD - 6, " NOOP\r\n", 7);
	st[0].len = MG_IMTRK_HEAD + 1;
	check_splits(st, 1, &o);
	assert_string_equal(o.why, TAINT_LONG);

	/* One byte shorter: it fits, and NOOP is safe. */
	st[0].s = cmd + 1;
	st[0].len = MG_IMTRK_HEAD;
	check_splits(st, 1, &o);
	assert_int_equal(o.pending, 1);
	assert_int_equal(o.tainted, 0);

	/* Long arguments after a short name are fine. */
	n = (size_t)snprintf(cmd, sizeof(cmd), "a FETCH 1:* (FLAGS %0*d)\r\n",
	    200, 0);
	st[0].s = cmd;
	st[0].len = n;
	check_splits(st, 1, &o);
	assert_int_equal(o.pending, 1);
	assert_int_equal(o.tainted, 0);

	/* UID's subcommand cut by the head's end. */
	memset(cmd, 't', MG_IMTRK_HEAD - 10);
	memcpy(cmd + MG_IMTRK_HEAD - 10, " UID FETCH 1 x\r\n", 16);
	st[0].s = cmd;
	st[0].len = MG_IMTRK_HEAD + 6;
	check_splits(st, 1, &o);
	assert_string_equal(o.why, TAINT_UID);
}

/*
 * SELECT/EXAMINE set selected when sent; CLOSE/UNSELECT clear it only when
 * the last of them is answered OK.
 */
static void
test_selected(void **state)
{
	static const struct step	s1[] = {
		/* CLOSE not answered yet: still selected. */
		C("a SELECT INBOX\r\nb CLOSE\r\n"),
	};
	static const struct step	s1ok[] = {
		C("a SELECT INBOX\r\nb CLOSE\r\n"),
		S("a OK\r\nb OK done\r\n"),
	};
	static const struct step	s2[] = {
		C("a examine INBOX\r\n"),
		S("a OK\r\n"),
	};
	static const struct step	s3[] = {
		C("a EXAMINE INBOX\r\n"),
		S("a OK\r\n"),
		C("b unselect\r\n"),
		S("b ok\r\n"),
	};
	static const struct step	s3bad[] = {
		/* A server without UNSELECT: still selected. */
		C("a EXAMINE INBOX\r\n"),
		S("a OK\r\n"),
		C("b UNSELECT\r\n"),
		S("b BAD unknown command\r\n"),
	};
	static const struct step	s3args[] = {
		/* CLOSE with an argument is refused and changes nothing. */
		C("a SELECT INBOX\r\n"),
		S("a OK\r\n"),
		C("b CLOSE x\r\n"),
		S("b BAD no arguments\r\n"),
	};
	static const struct step	s4[] = {
		/* Only the answer to the last of them counts. */
		C("a SELECT INBOX\r\nb UNSELECT\r\nc EXAMINE Trash\r\n"),
		S("a OK\r\nb OK\r\n"),
	};
	static const struct step	s5[] = {
		/* A refused SELECT may leave the old mailbox selected. */
		C("a SELECT Nope\r\n"),
		S("a NO no such mailbox\r\n"),
	};
	static const struct step	s6[] = {
		/* "bb OK" is not the answer to "b". */
		C("a SELECT INBOX\r\nbb NOOP\r\nb CLOSE\r\n"),
		S("a OK\r\nbb OK\r\n"),
	};

	(void)state;
	EXPECT(s1, 2, 1, NULL);
	EXPECT(s1ok, 0, 0, NULL);
	EXPECT(s2, 0, 1, NULL);
	EXPECT(s3, 0, 0, NULL);
	EXPECT(s3bad, 0, 1, NULL);
	EXPECT(s3args, 0, 1, NULL);
	EXPECT(s4, 1, 1, NULL);
	EXPECT(s5, 0, 1, NULL);
	EXPECT(s6, 1, 1, NULL);
}

/*
 * A LOGOUT while the provider is inside a response (a line or a literal)
 * is relayed: what is still coming belongs to this device.
 */
static void
test_logout_mid_response(void **state)
{
	size_t used;

	(void)state;
	mg_imap_track_init(&trk);
	assert_int_equal(client("a NOOP\r\n", &used), MG_IMTRK_AGAIN);
	server("a OK done\r\n* 5 EXI");
	assert_int_equal(trk.pending, 0);
	assert_int_equal(client("c LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	mg_imap_track_init(&trk);
	assert_int_equal(client("a NOOP\r\n", &used), MG_IMTRK_AGAIN);
	server("a OK\r\n* 1 FETCH (BODY[] {10}\r\nabc");
	assert_int_equal(client("c LOGOUT\r\n", &used), MG_IMTRK_AGAIN);
	assert_string_equal(trk.why, TAINT_LOGOUT);

	/* Between two responses: reported. */
	mg_imap_track_init(&trk);
	assert_int_equal(client("a NOOP\r\n", &used), MG_IMTRK_AGAIN);
	server("* 5 EXISTS\r\na OK done\r\n");
	assert_int_equal(client("c LOGOUT\r\n", &used), MG_IMTRK_LOGOUT);
}

/* Literal lengths past what can be followed taint, in both directions. */
static void
test_literal_too_large(void **state)
{
	static const struct step	c20[] = {
		C("a APPEND INBOX {99999999999999999999}\r\n"),
	};
	static const struct step	c20p[] = {
		C("a APPEND INBOX {99999999999999999999+}\r\nb LOGOUT\r\n"),
	};
	static const struct step	c0s[] = {
		/* Leading zeros are not digits too many. */
		C("a APPEND INBOX {000000000000000000000000000003}\r\n"),
		C("abc\r\n"),
	};
	static const struct step	s20[] = {
		C("a FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {99999999999999999999}\r\na OK\r\n"),
	};
	static const struct step	s19[] = {
		C("a FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {9999999999999999999}\r\n"),
	};
	static const struct step	s18[] = {
		C("a FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {999999999999999999}\r\na OK\r\n"),
	};
	static const struct step	s25[] = {
		/* The "{" is further back than the tail the scanner keeps. */
		C("a FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {0000000000000000000000005}\r\n"
		    "a OK\r\n)\r\n"),
	};
	static const struct step	s25lf[] = {
		C("a FETCH 1 BODY[]\r\n"),
		S("* 1 FETCH (BODY[] {0000000000000000000000005}\n"
		    "a OK\r\n)\r\n"),
	};
	static const struct step	snot[] = {
		/* Digits and "}" at the start of a line (or after a literal) are not one. */
		C("a NOOP\r\nb NOOP\r\n"),
		S("* 1 FETCH (BODY[] {3}\r\nabc12}\r\na OK\r\n12345}\r\n"),
	};
	static const struct step	sfull[] = {
		/* 22 digits and "}" fill the tail: no telling, so tainted. */
		C("a NOOP\r\n"),
		S("* OK 1234567890123456789012}\r\na OK\r\n"),
	};
	struct outcome			o;

	(void)state;
	EXPECT(c20, 0, 0, TAINT_LITERAL);
	EXPECT(c20p, 0, 0, TAINT_LITERAL);
	EXPECT(c0s, 1, 0, NULL);
	EXPECT(s20, 1, 0, TAINT_LITERAL);
	EXPECT(s19, 1, 0, TAINT_LITERAL);
	run(s18, NSTEPS(s18), CUT_NONE, 0, 0, &o);
	assert_int_equal(o.tainted, 0);
	assert_int_equal(trk.s_lit, 999999999999999999ULL - 6);
	assert_int_equal(o.pending, 1);
	EXPECT(s25, 1, 0, TAINT_LITERAL);
	EXPECT(s25lf, 1, 0, TAINT_LITERAL);
	EXPECT(snot, 0, 0, NULL);
	EXPECT(sfull, 1, 0, TAINT_LITERAL);
}

/* NUL and 8-bit bytes are only bytes. */
static void
test_odd_bytes(void **state)
{
	static const struct step	steps[] = {
		C("a\0 NOOP\r\n\xff\xfe NOOP x\0y\r\n"),
		S("\0 OK\r\n\xff OK\r\n"),
	};

	(void)state;
	EXPECT(steps, 0, 0, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_simple_session),
		cmocka_unit_test(test_simple_session_splits),
		cmocka_unit_test(test_logout_while_pending),
		cmocka_unit_test(test_logout_same_buffer),
		cmocka_unit_test(test_logout_split),
		cmocka_unit_test(test_logout_bytewise),
		cmocka_unit_test(test_logout_forms),
		cmocka_unit_test(test_splits_mixed),
		cmocka_unit_test(test_client_literal_logout_inside),
		cmocka_unit_test(test_client_literal_forms),
		cmocka_unit_test(test_client_literal_split),
		cmocka_unit_test(test_server_literal),
		cmocka_unit_test(test_server_literal_split),
		cmocka_unit_test(test_taint_commands),
		cmocka_unit_test(test_safe_commands),
		cmocka_unit_test(test_taint_server_and_idle),
		cmocka_unit_test(test_head_limit),
		cmocka_unit_test(test_selected),
		cmocka_unit_test(test_logout_mid_response),
		cmocka_unit_test(test_literal_too_large),
		cmocka_unit_test(test_odd_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
