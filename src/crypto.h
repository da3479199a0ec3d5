/*
 * crypto.h - the master key, sealing of upstream secrets, password hashes.
 *
 * Upstream secrets are sealed with AES-256-GCM under the master key. The
 * associated data binds a ciphertext to its row (user, provider, kind), so a
 * sealed secret copied to another row does not open. The sealed format is
 *
 *   byte 0      format version (1)
 *   bytes 1-4   key id: the first 4 bytes of SHA-256(master key)
 *   bytes 5-16  96-bit random nonce
 *   ...         ciphertext (as long as the plaintext)
 *   last 16     GCM tag
 *
 * Nothing here logs; errors fill `err` and return -1.
 */
#ifndef MG_CRYPTO_H
#define MG_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define MG_KEY_LEN	32
#define MG_SEAL_OVERHEAD (1 + 4 + 12 + 16)

struct mg_master_key {
	uint8_t	key[MG_KEY_LEN];
	uint8_t	id[4];		/* first 4 bytes of SHA-256(key) */
};

/*
 * Creates a new master key file with 32 random bytes, mode 0600, refusing to
 * overwrite an existing file. 0 ok, -1 error.
 */
int mg_master_key_create(const char *path, char *err, size_t errlen);

/*
 * Reads a master key file. Refuses a file that is not exactly 32 bytes or is
 * readable or writable by group or others. 0 ok, -1 error.
 */
int mg_master_key_load(const char *path, struct mg_master_key *k, char *err, size_t errlen);

/* Wipes the key (OPENSSL_cleanse). */
void mg_master_key_wipe(struct mg_master_key *k);

/* The associated data for an account row: "user\0provider\0<kind as decimal>". Returns its length, or -1 if it does not fit. */
int mg_account_aad(const char *user, const char *provider, int kind, uint8_t *out, size_t outlen);

/*
 * Seals `pt` into `out` (outlen must be at least ptlen + MG_SEAL_OVERHEAD).
 * Returns the sealed length, or -1.
 */
long mg_seal(const struct mg_master_key *k, const uint8_t *aad, size_t aadlen,
    const uint8_t *pt, size_t ptlen, uint8_t *out, size_t outlen, char *err, size_t errlen);

/*
 * Opens a sealed secret into `out` (outlen at least sealedlen - MG_SEAL_OVERHEAD,
 * plus one: the result is NUL-terminated for convenience). Returns the
 * plaintext length, or -1 if the format, key id, AAD or tag does not match.
 * The caller wipes `out` when done.
 */
long mg_unseal(const struct mg_master_key *k, const uint8_t *aad, size_t aadlen,
    const uint8_t *sealed, size_t sealedlen, uint8_t *out, size_t outlen, char *err, size_t errlen);

/* Hashes a password with yescrypt (libxcrypt). 0 ok, -1 error. out at least MG_HASH_MAX. */
int mg_password_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen);

/*
 * Verifies a password against a crypt(3) hash ($y$, $2b$, $6$, ...).
 * 1 match, 0 mismatch, -1 unusable hash. Compares in constant time.
 */
int mg_password_verify(const char *password, const char *hash);

/* Fills buf with cryptographically random bytes. 0 ok, -1 error. */
int mg_random(void *buf, size_t len);

#endif
