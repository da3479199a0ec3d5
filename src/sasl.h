/*
 * sasl.h - base64 (RFC 4648) and the SASL PLAIN message (RFC 4616).
 * Pure functions: no I/O, no allocation, no logging.
 */
#ifndef MG_SASL_H
#define MG_SASL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Strict base64 decoding: the standard alphabet, '=' padding required,
 * no white space. Returns the decoded length, or -1 on malformed input or
 * when out (outlen bytes) is too small. An empty input decodes to 0 bytes.
 */
long mg_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen);

/* Encodes with padding and a trailing NUL. Returns the length (NUL excluded) or -1 if out is too small. */
long mg_base64_encode(const uint8_t *in, size_t inlen, char *out, size_t outlen);

/* The three parts of a PLAIN message, pointing into the decoded message. */
struct mg_sasl_plain {
	const char	*authzid;	/* may be empty */
	size_t		 authzid_len;
	const char	*authcid;	/* never empty */
	size_t		 authcid_len;
	const char	*passwd;	/* never empty */
	size_t		 passwd_len;
};

/*
 * Splits a decoded PLAIN message "authzid NUL authcid NUL passwd". Exactly
 * two NULs; authcid and passwd non-empty, each at most 255 bytes. 0 ok, -1 malformed.
 */
int mg_sasl_plain_parse(const uint8_t *msg, size_t len, struct mg_sasl_plain *out);

/*
 * Builds the base64 of "authzid NUL authcid NUL passwd" into out (NUL-terminated).
 * Returns its length or -1. The caller wipes out when done.
 */
long mg_sasl_plain_encode(const char *authzid, const char *authcid, const char *passwd, char *out, size_t outlen);

#endif
