/*
 * sasl.c - base64 (RFC 4648) and the SASL PLAIN message (RFC 4616).
 *
 * Pure functions: no I/O, no allocation, no logging. What passes through
 * here is usually a password, so nothing is copied to a temporary buffer,
 * and output written before a failure is found is wiped before returning.
 *
 * Decoding is strict in the sense of RFC 4648 section 3: the standard
 * alphabet of section 4, the length a multiple of four, "=" padding only at
 * the end, no white space or line breaks (section 3.1 and 3.3), and the pad
 * bits of the last group must be zero (section 3.5 allows refusing them).
 * With that last rule every input has at most one decoding and every byte
 * string exactly one encoding, so decode(encode(x)) == x and, for accepted
 * input, encode(decode(s)) == s; tests/fuzz/fuzz_sasl.c checks both.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "sasl.h"

/* RFC 4616 section 2: each part "MUST accept up to 255 octets". */
#define SASL_PLAIN_PART_MAX	255

static const char sasl_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int	sasl_b64_value(unsigned char);
static void	sasl_b64_group(const uint8_t *, size_t, char *);

/* The value of a base64 digit (RFC 4648 section 4, table 1), or -1. */
static int
sasl_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Encodes one group of n (1 to 3) bytes into four characters, padding with
 * "=" when n is short (RFC 4648 section 4, cases 1 to 3).
 */
static void
sasl_b64_group(const uint8_t *b, size_t n, char *o)
{
	uint8_t	b1 = n > 1 ? b[1] : 0, b2 = n > 2 ? b[2] : 0;

	o[0] = sasl_b64_alphabet[b[0] >> 2];
	o[1] = sasl_b64_alphabet[((b[0] & 0x03) << 4) | (b1 >> 4)];
	o[2] = n > 1 ? sasl_b64_alphabet[((b1 & 0x0f) << 2) | (b2 >> 6)] : '=';
	o[3] = n > 2 ? sasl_b64_alphabet[b2 & 0x3f] : '=';
}

long
mg_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
	size_t	i, k, o = 0, pad = 0, need;
	int	v[4];
	int	last;

	if (inlen == 0)
		return 0;
	if (inlen % 4 != 0)
		goto fail;
	if (in[inlen - 1] == '=') {
		pad++;
		if (in[inlen - 2] == '=')
			pad++;
	}
	need = inlen / 4 * 3 - pad;
	if (need > outlen || need > LONG_MAX)
		goto fail;

	for (i = 0; i < inlen; i += 4) {
		last = i + 4 == inlen;
		for (k = 0; k < 4; k++) {
			/* The pad characters were checked above. */
			if (last && k >= 4 - pad) {
				v[k] = 0;
				continue;
			}
			/* This also refuses "=" anywhere else. */
			if ((v[k] = sasl_b64_value((unsigned char)in[i + k])) < 0)
				goto fail;
		}
		out[o++] = (uint8_t)((v[0] << 2) | (v[1] >> 4));
		if (last && pad == 2) {
			if ((v[1] & 0x0f) != 0)
				goto fail;
			break;
		}
		out[o++] = (uint8_t)(((v[1] & 0x0f) << 4) | (v[2] >> 2));
		if (last && pad == 1) {
			if ((v[2] & 0x03) != 0)
				goto fail;
			break;
		}
		out[o++] = (uint8_t)(((v[2] & 0x03) << 6) | v[3]);
	}
	return (long)o;

fail:
	if (o > 0)
		memset(out, 0, o);
	return -1;
}

long
mg_base64_encode(const uint8_t *in, size_t inlen, char *out, size_t outlen)
{
	size_t	groups, need, i, o = 0;

	groups = inlen / 3 + (inlen % 3 != 0);
	if (groups > (SIZE_MAX - 1) / 4)
		return -1;
	need = groups * 4;
	if (need >= outlen || need > LONG_MAX)
		return -1;
	for (i = 0; i < inlen; i += 3, o += 4)
		sasl_b64_group(in + i, inlen - i < 3 ? inlen - i : 3, out + o);
	out[o] = '\0';
	return (long)o;
}

/*
 * message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 section 2).
 * The parts are not checked for UTF-8: whether a password matches is the
 * verifier's business, not the parser's.
 */
int
mg_sasl_plain_parse(const uint8_t *msg, size_t len, struct mg_sasl_plain *out)
{
	const uint8_t	*nul1, *nul2, *end;
	size_t		 zlen, clen, plen;

	memset(out, 0, sizeof(*out));
	if (len == 0 || (nul1 = memchr(msg, '\0', len)) == NULL)
		return -1;
	end = msg + len;
	nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
	if (nul2 == NULL ||
	    memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) != NULL)
		return -1;
	zlen = (size_t)(nul1 - msg);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = (size_t)(end - nul2 - 1);
	if (zlen > SASL_PLAIN_PART_MAX || clen == 0 ||
	    clen > SASL_PLAIN_PART_MAX || plen == 0 ||
	    plen > SASL_PLAIN_PART_MAX)
		return -1;
	out->authzid = (const char *)msg;
	out->authzid_len = zlen;
	out->authcid = (const char *)nul1 + 1;
	out->authcid_len = clen;
	out->passwd = (const char *)nul2 + 1;
	out->passwd_len = plen;
	return 0;
}

/*
 * The message is encoded straight from the caller's strings, three bytes at
 * a time, so the password is never assembled in a buffer of ours. The parts
 * obey the limits mg_sasl_plain_parse enforces: we send a server nothing we
 * would refuse ourselves. authzid may be NULL for none.
 */
long
mg_sasl_plain_encode(const char *authzid, const char *authcid,
    const char *passwd, char *out, size_t outlen)
{
	static const char	 nul = '\0';
	const char		*part[5];
	size_t			 plen[5], total, need, i, j, n = 0, o = 0;
	uint8_t			 g[3];

	if (authzid == NULL)
		authzid = "";
	if (authcid == NULL || passwd == NULL)
		return -1;
	part[0] = authzid;
	part[1] = &nul;
	part[2] = authcid;
	part[3] = &nul;
	part[4] = passwd;
	plen[0] = strnlen(authzid, SASL_PLAIN_PART_MAX + 1);
	plen[1] = 1;
	plen[2] = strnlen(authcid, SASL_PLAIN_PART_MAX + 1);
	plen[3] = 1;
	plen[4] = strnlen(passwd, SASL_PLAIN_PART_MAX + 1);
	if (plen[0] > SASL_PLAIN_PART_MAX || plen[2] == 0 ||
	    plen[2] > SASL_PLAIN_PART_MAX || plen[4] == 0 ||
	    plen[4] > SASL_PLAIN_PART_MAX)
		return -1;

	total = plen[0] + plen[2] + plen[4] + 2;
	need = (total + 2) / 3 * 4;
	if (need >= outlen)
		return -1;
	for (i = 0; i < 5; i++) {
		for (j = 0; j < plen[i]; j++) {
			g[n++] = (uint8_t)part[i][j];
			if (n == 3) {
				sasl_b64_group(g, 3, out + o);
				o += 4;
				n = 0;
			}
		}
	}
	if (n > 0) {
		sasl_b64_group(g, n, out + o);
		o += 4;
	}
	out[o] = '\0';
	explicit_bzero(g, sizeof(g));
	return (long)o;
}
