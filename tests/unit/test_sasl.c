/*
 * test_sasl.c - unit tests for base64 (RFC 4648) and SASL PLAIN (RFC 4616).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sasl.h"

/* RFC 4648 section 10. */
static const struct {
	const char	*plain;
	const char	*b64;
} rfc4648_vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

#define NVECTORS	(sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]))

static void
test_b64_rfc4648_decode(void **state)
{
	uint8_t	out[16];
	size_t	i, n;
	long	r;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		n = strlen(rfc4648_vectors[i].plain);
		memset(out, 0xaa, sizeof(out));
		r = mg_base64_decode(rfc4648_vectors[i].b64,
		    strlen(rfc4648_vectors[i].b64), out, sizeof(out));
		assert_int_equal(r, (long)n);
		assert_memory_equal(out, rfc4648_vectors[i].plain, n);
		/* Nothing is written past the decoded bytes. */
		assert_int_equal(out[n], 0xaa);
	}
}

static void
test_b64_rfc4648_encode(void **state)
{
	char	out[16];
	size_t	i;
	long	r;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		r = mg_base64_encode((const uint8_t *)rfc4648_vectors[i].plain,
		    strlen(rfc4648_vectors[i].plain), out, sizeof(out));
		assert_int_equal(r, (long)strlen(rfc4648_vectors[i].b64));
		assert_string_equal(out, rfc4648_vectors[i].b64);
	}
}

static void
test_b64_alphabet(void **state)
{
	static const char	b64[] = "+/+/AAEQ";
	uint8_t			out[8], all[256], back[256];
	char			enc[400];
	long			r;
	int			i;

	(void)state;
	/* The two characters beyond letters and digits: 62 and 63. */
	r = mg_base64_decode(b64, sizeof(b64) - 1, out, sizeof(out));
	assert_int_equal(r, 6);
	assert_memory_equal(out, "\xfb\xff\xbf\x00\x01\x10", 6);

	/* Every byte value survives a round trip. */
	for (i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	r = mg_base64_encode(all, sizeof(all), enc, sizeof(enc));
	assert_int_equal(r, 344);
	assert_int_equal(enc[r], '\0');
	assert_int_equal(mg_base64_decode(enc, (size_t)r, back, sizeof(back)),
	    256);
	assert_memory_equal(back, all, 256);
}

/* A string literal and its length, NULs included. */
#define S(x)	{ (x), sizeof(x) - 1 }

static void
test_b64_decode_malformed(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} bad[] = {
		S("Zg="),		/* not a multiple of 4 */
		S("Zg"),		/* padding is required */
		S("Zm9vY"),
		S("Z==="),		/* at most two pad characters */
		S("===="),
		S("=Zm9"),		/* padding only at the end */
		S("Zg==Zg=="),
		S("Zm=v"),
		S("Zm9v===="),
		S("Zm 9v"),		/* no white space ... */
		S("Zm9v\n"),
		S("Zm9v\r\nZm9v"),
		S("Zm9\tv"),
		S("Zm9-"),		/* ... and not the URL alphabet */
		S("Zm9_"),
		S("Zm9\x80"),
		S("Zm9\0"),
		S("Zh=="),		/* non-zero pad bits (RFC 4648 3.5) */
		S("Zm9="),
		S("Zg=a"),
	};
	uint8_t	out[16];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mg_base64_decode(bad[i].s, bad[i].len, out,
		    sizeof(out)) != -1)
			fail_msg("accepted bad input %zu", i);
	/* The valid neighbours of the pad-bit cases. */
	assert_int_equal(mg_base64_decode("Zg==", 4, out, sizeof(out)), 1);
	assert_int_equal(mg_base64_decode("Zm8=", 4, out, sizeof(out)), 2);
}

static void
test_b64_sizes(void **state)
{
	uint8_t	out[8];
	char	enc[16];

	(void)state;
	/* Decoding needs exactly the decoded length. */
	assert_int_equal(mg_base64_decode("Zm9v", 4, out, 3), 3);
	assert_int_equal(mg_base64_decode("Zm9v", 4, out, 2), -1);
	assert_int_equal(mg_base64_decode("Zm8=", 4, out, 2), 2);
	assert_int_equal(mg_base64_decode("Zm8=", 4, out, 1), -1);
	assert_int_equal(mg_base64_decode("", 0, NULL, 0), 0);
	assert_int_equal(mg_base64_decode(NULL, 0, NULL, 0), 0);
	assert_int_equal(mg_base64_encode(NULL, 0, enc, 1), 0);
	assert_string_equal(enc, "");

	/* Encoding needs the encoded length and its NUL. */
	assert_int_equal(mg_base64_encode((const uint8_t *)"foo", 3, enc, 5),
	    4);
	assert_string_equal(enc, "Zm9v");
	assert_int_equal(mg_base64_encode((const uint8_t *)"foo", 3, enc, 4),
	    -1);
	assert_int_equal(mg_base64_encode((const uint8_t *)"f", 1, enc, 5), 4);
	assert_int_equal(mg_base64_encode((const uint8_t *)"f", 1, enc, 4), -1);
	assert_int_equal(mg_base64_encode((const uint8_t *)"", 0, enc, 1), 0);
	assert_string_equal(enc, "");
	assert_int_equal(mg_base64_encode((const uint8_t *)"", 0, enc, 0), -1);
}

static void
test_b64_decode_failure_wipes(void **state)
{
	/* Three good groups, then a bad one. */
	static const char	in[] = "c2VjcmV0c2VjcmV0!!!!";
	uint8_t			out[32];
	size_t			i;

	(void)state;
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(mg_base64_decode(in, sizeof(in) - 1, out,
	    sizeof(out)), -1);
	/* What was decoded before the error is gone again. */
	for (i = 0; i < 12; i++)
		assert_int_equal(out[i], 0);
	assert_int_equal(out[12], 0xaa);
}

/* PLAIN */

#define PLAIN(s, o)	mg_sasl_plain_parse((const uint8_t *)(s), sizeof(s) - 1, (o))

static void
test_plain_parse(void **state)
{
	static const char	m1[] = "\0alice\0secret";
	static const char	m2[] = "admin\0alice\0s3cr\xc3\xa9t";
	struct mg_sasl_plain	p;

	(void)state;
	assert_int_equal(PLAIN(m1, &p), 0);
	assert_ptr_equal(p.authzid, m1);
	assert_int_equal(p.authzid_len, 0);
	assert_ptr_equal(p.authcid, m1 + 1);
	assert_int_equal(p.authcid_len, 5);
	assert_memory_equal(p.authcid, "alice", 5);
	assert_ptr_equal(p.passwd, m1 + 7);
	assert_int_equal(p.passwd_len, 6);
	assert_memory_equal(p.passwd, "secret", 6);

	assert_int_equal(PLAIN(m2, &p), 0);
	assert_int_equal(p.authzid_len, 5);
	assert_memory_equal(p.authzid, "admin", 5);
	assert_int_equal(p.authcid_len, 5);
	assert_int_equal(p.passwd_len, 7);
	assert_memory_equal(p.passwd, "s3cr\xc3\xa9t", 7);

	/* Single-byte parts. */
	assert_int_equal(PLAIN("\0a\0b", &p), 0);
	assert_int_equal(p.authcid_len, 1);
	assert_int_equal(p.passwd_len, 1);
}

static void
test_plain_parse_malformed(void **state)
{
	struct mg_sasl_plain	p;

	(void)state;
	assert_int_equal(mg_sasl_plain_parse((const uint8_t *)"", 0, &p), -1);
	assert_int_equal(mg_sasl_plain_parse(NULL, 0, &p), -1);
	assert_int_equal(PLAIN("alicesecret", &p), -1);	/* no NUL */
	assert_int_equal(PLAIN("alice\0secret", &p), -1);	/* one NUL */
	assert_int_equal(PLAIN("\0alice\0sec\0ret", &p), -1);	/* three */
	assert_int_equal(PLAIN("\0alice\0secret\0", &p), -1);
	assert_int_equal(PLAIN("\0\0secret", &p), -1);	/* empty authcid */
	assert_int_equal(PLAIN("\0alice\0", &p), -1);	/* empty passwd */
	assert_int_equal(PLAIN("\0\0", &p), -1);
	assert_int_equal(PLAIN("\0", &p), -1);
	/* Nothing useful is left in out. */
	assert_null(p.authcid);
	assert_null(p.passwd);
}

static void
test_plain_parse_lengths(void **state)
{
	uint8_t			msg[1024];
	struct mg_sasl_plain	p;

	(void)state;
	/* passwd: 255 bytes pass, 256 do not. */
	memcpy(msg, "\0alice\0", 7);
	memset(msg + 7, 'p', 256);
	assert_int_equal(mg_sasl_plain_parse(msg, 7 + 255, &p), 0);
	assert_int_equal(p.passwd_len, 255);
	assert_int_equal(mg_sasl_plain_parse(msg, 7 + 256, &p), -1);

	/* authcid likewise. */
	msg[0] = '\0';
	memset(msg + 1, 'u', 256);
	memcpy(msg + 256, "\0pw", 3);
	assert_int_equal(mg_sasl_plain_parse(msg, 259, &p), 0);
	assert_int_equal(p.authcid_len, 255);
	memset(msg + 1, 'u', 256);
	memcpy(msg + 257, "\0pw", 3);
	assert_int_equal(mg_sasl_plain_parse(msg, 260, &p), -1);

	/* And authzid. */
	memset(msg, 'z', 255);
	memcpy(msg + 255, "\0a\0b", 4);
	assert_int_equal(mg_sasl_plain_parse(msg, 259, &p), 0);
	assert_int_equal(p.authzid_len, 255);
	memset(msg, 'z', 256);
	memcpy(msg + 256, "\0a\0b", 4);
	assert_int_equal(mg_sasl_plain_parse(msg, 260, &p), -1);
}

static void
test_plain_encode(void **state)
{
	char	out[64];

	(void)state;
	assert_int_equal(mg_sasl_plain_encode("", "alice", "secret", out,
	    sizeof(out)), 20);
	assert_string_equal(out, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(mg_sasl_plain_encode(NULL, "alice", "secret", out,
	    sizeof(out)), 20);
	assert_string_equal(out, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(mg_sasl_plain_encode("admin", "alice", "secret", out,
	    sizeof(out)), 24);
	assert_string_equal(out, "YWRtaW4AYWxpY2UAc2VjcmV0");
	/* Exactly room for the 20 characters and the NUL. */
	assert_int_equal(mg_sasl_plain_encode("", "alice", "secret", out, 21),
	    20);
	assert_int_equal(mg_sasl_plain_encode("", "alice", "secret", out, 20),
	    -1);
}

static void
test_plain_encode_refuses(void **state)
{
	char	out[1200], big[300];

	(void)state;
	assert_int_equal(mg_sasl_plain_encode("", "", "secret", out,
	    sizeof(out)), -1);
	assert_int_equal(mg_sasl_plain_encode("", "alice", "", out,
	    sizeof(out)), -1);
	assert_int_equal(mg_sasl_plain_encode("", NULL, "x", out,
	    sizeof(out)), -1);
	assert_int_equal(mg_sasl_plain_encode("", "alice", NULL, out,
	    sizeof(out)), -1);

	memset(big, 'x', 255);
	big[255] = '\0';
	assert_true(mg_sasl_plain_encode(big, big, big, out, sizeof(out)) > 0);
	big[255] = 'x';
	big[256] = '\0';
	assert_int_equal(mg_sasl_plain_encode("", "alice", big, out,
	    sizeof(out)), -1);
	assert_int_equal(mg_sasl_plain_encode("", big, "pw", out,
	    sizeof(out)), -1);
	assert_int_equal(mg_sasl_plain_encode(big, "alice", "pw", out,
	    sizeof(out)), -1);
}

/* Encoding, decoding and splitting agree with each other. */
static void
test_plain_roundtrip(void **state)
{
	static const char	*ids[] = { "", "a", "ad", "adm", "admin" };
	char			 enc[64];
	uint8_t			 msg[64];
	struct mg_sasl_plain	 p;
	size_t			 i;
	long			 n, m;

	(void)state;
	/* Different authzid lengths put the NULs in every group position. */
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		n = mg_sasl_plain_encode(ids[i], "bob", "pw", enc, sizeof(enc));
		assert_true(n > 0);
		m = mg_base64_decode(enc, (size_t)n, msg, sizeof(msg));
		assert_int_equal(m, (long)strlen(ids[i]) + 7);
		assert_int_equal(mg_sasl_plain_parse(msg, (size_t)m, &p), 0);
		assert_int_equal(p.authzid_len, strlen(ids[i]));
		assert_memory_equal(p.authzid, ids[i], p.authzid_len);
		assert_int_equal(p.authcid_len, 3);
		assert_memory_equal(p.authcid, "bob", 3);
		assert_int_equal(p.passwd_len, 2);
		assert_memory_equal(p.passwd, "pw", 2);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_rfc4648_decode),
		cmocka_unit_test(test_b64_rfc4648_encode),
		cmocka_unit_test(test_b64_alphabet),
		cmocka_unit_test(test_b64_decode_malformed),
		cmocka_unit_test(test_b64_sizes),
		cmocka_unit_test(test_b64_decode_failure_wipes),
		cmocka_unit_test(test_plain_parse),
		cmocka_unit_test(test_plain_parse_malformed),
		cmocka_unit_test(test_plain_parse_lengths),
		cmocka_unit_test(test_plain_encode),
		cmocka_unit_test(test_plain_encode_refuses),
		cmocka_unit_test(test_plain_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
