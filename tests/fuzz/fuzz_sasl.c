/*
 * fuzz_sasl.c - libFuzzer driver for sasl.c.
 *
 * The input is used three ways: as base64 text (accepted text must encode
 * back to itself, since decoding is canonical), as bytes to encode (which
 * must decode back to themselves), and as a decoded PLAIN message (which
 * must be accepted exactly when an independent check says it is well formed,
 * and then survive mg_sasl_plain_encode, decoding and parsing unchanged).
 */
/* fuzz-sources: src/sasl.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

/* libFuzzer's default -max_len is 4096; longer inputs are cut. */
#define IN_MAX		8192
#define ENC_MAX		(IN_MAX / 3 * 4 + 8)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint8_t	dec[IN_MAX];
static char	enc[ENC_MAX];
static uint8_t	back[IN_MAX];

/* Decoding, then encoding what was accepted. */
static void
check_decode(const uint8_t *data, size_t size)
{
	long	n, m;

	n = mg_base64_decode((const char *)data, size, dec, sizeof(dec));
	if (n < 0)
		return;
	CHECK((size_t)n <= sizeof(dec) && (size_t)n <= size);
	CHECK(size % 4 == 0 && (size_t)n == size / 4 * 3 -
	    (size > 0 && data[size - 1] == '=') -
	    (size > 1 && data[size - 2] == '='));
	m = mg_base64_encode(dec, (size_t)n, enc, sizeof(enc));
	CHECK(m >= 0 && (size_t)m == size);
	CHECK(memcmp(enc, data, size) == 0);
	/* Exactly the decoded length is enough, one less is not. */
	if (n > 0) {
		CHECK(mg_base64_decode((const char *)data, size, back,
		    (size_t)n) == n);
		CHECK(mg_base64_decode((const char *)data, size, back,
		    (size_t)n - 1) == -1);
	}
}

/* Encoding, then decoding. */
static void
check_encode(const uint8_t *data, size_t size)
{
	long	n, m;

	n = mg_base64_encode(data, size, enc, sizeof(enc));
	CHECK(n >= 0 && (size_t)n == (size + 2) / 3 * 4);
	CHECK(enc[n] == '\0' && strlen(enc) == (size_t)n);
	CHECK(mg_base64_encode(data, size, enc, (size_t)n) == -1);
	n = mg_base64_encode(data, size, enc, sizeof(enc));
	m = mg_base64_decode(enc, (size_t)n, back, sizeof(back));
	CHECK(m >= 0 && (size_t)m == size);
	CHECK(memcmp(back, data, size) == 0);
}

/* RFC 4616 section 2, written the slow and obvious way. */
static int
plain_valid(const uint8_t *msg, size_t len)
{
	size_t	i, nuls = 0, part[3] = { 0, 0, 0 };

	for (i = 0; i < len; i++) {
		if (msg[i] == '\0') {
			if (++nuls > 2)
				return 0;
		} else
			part[nuls]++;
	}
	return nuls == 2 && part[0] <= 255 && part[1] >= 1 &&
	    part[1] <= 255 && part[2] >= 1 && part[2] <= 255;
}

static void
check_plain(const uint8_t *data, size_t size)
{
	static char		z[256], c[256], p[256];
	struct mg_sasl_plain	pl, again;
	long			n, m;

	if (mg_sasl_plain_parse(data, size, &pl) == -1) {
		CHECK(!plain_valid(data, size));
		return;
	}
	CHECK(plain_valid(data, size));
	CHECK(pl.authzid == (const char *)data);
	CHECK(pl.authzid_len + pl.authcid_len + pl.passwd_len + 2 == size);
	CHECK(pl.authcid == pl.authzid + pl.authzid_len + 1);
	CHECK(pl.passwd == pl.authcid + pl.authcid_len + 1);
	CHECK(pl.authcid_len > 0 && pl.passwd_len > 0);

	memcpy(z, pl.authzid, pl.authzid_len);
	z[pl.authzid_len] = '\0';
	memcpy(c, pl.authcid, pl.authcid_len);
	c[pl.authcid_len] = '\0';
	memcpy(p, pl.passwd, pl.passwd_len);
	p[pl.passwd_len] = '\0';
	n = mg_sasl_plain_encode(z, c, p, enc, sizeof(enc));
	CHECK(n > 0);
	m = mg_base64_decode(enc, (size_t)n, back, sizeof(back));
	CHECK(m >= 0 && (size_t)m == size && memcmp(back, data, size) == 0);
	CHECK(mg_sasl_plain_parse(back, (size_t)m, &again) == 0);
	CHECK(again.authzid_len == pl.authzid_len &&
	    again.authcid_len == pl.authcid_len &&
	    again.passwd_len == pl.passwd_len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > IN_MAX)
		size = IN_MAX;
	check_decode(data, size);
	check_encode(data, size);
	check_plain(data, size);
	return 0;
}
