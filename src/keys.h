/*
 * keys.h - the gateway's keys beyond a single master key: the keyring that
 * lets a master key be rotated while gateways keep serving, the device key
 * that device passwords are hashed under, and the keyed digests built on
 * them.
 *
 * The keyring is the master key file (the current key: new secrets are
 * sealed under it) plus every "<master key file>.<key id in hex>" beside it
 * (retired keys, and the next key while a rotation runs). A sealed secret
 * names its key id, so it opens under whichever key of the ring sealed it.
 * Nothing here logs; errors fill err.
 */
#ifndef MG_KEYS_H
#define MG_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define MG_KEYRING_MAX		16
#define MG_DEVICE_PW_LEN	39	/* "xxxx-xxxx-...": 32 base32 characters (160 bits) in groups of 4 */

struct mg_keyring {
	struct mg_master_key	keys[MG_KEYRING_MAX];	/* keys[0] is the current key */
	int			n;
};

/* Loads the ring for master_path. 0 ok, -1 error (a key file that is unsafe or unreadable). */
int mg_keyring_load(const char *master_path, struct mg_keyring *kr, char *err, size_t errlen);
void mg_keyring_wipe(struct mg_keyring *kr);

/* The key with this id, or NULL. */
const struct mg_master_key *mg_keyring_find(const struct mg_keyring *kr, const uint8_t id[4]);

/* The key id a sealed secret names. 0 ok, -1 not a sealed secret. */
int mg_sealed_key_id(const uint8_t *sealed, size_t len, uint8_t id[4]);

/* Opens a sealed secret with the ring's key of the right id (mg_unseal's contract otherwise). */
long mg_keyring_unseal(const struct mg_keyring *kr, const uint8_t *aad, size_t aadlen,
    const uint8_t *sealed, size_t sealedlen, uint8_t *out, size_t outlen, char *err, size_t errlen);

/* "1a2b3c4d": a key id in hex (out at least 9 bytes). */
void mg_key_id_hex(const uint8_t id[4], char *out);

/*
 * The digest a device password is stored as: lower-case hex HMAC-SHA-256
 * under the device key of "user NUL password". out: 65 bytes. 0 ok, -1 error.
 */
int mg_device_hash(const struct mg_master_key *dk, const char *user, size_t ulen,
    const char *password, size_t plen, char *out);

/* A new device password (MG_DEVICE_PW_LEN characters and a NUL). 0 ok, -1 error. */
int mg_device_password(char *out, size_t outlen);

/* HMAC-SHA-256 of "a NUL b" under key (32 bytes): the auth cache's key for a credential. */
int mg_keyed_digest(const uint8_t *key, const void *a, size_t alen, const void *b, size_t blen,
    uint8_t out[32]);

#endif
