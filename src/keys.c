/*
 * keys.c - see keys.h.
 */
#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static int
keyring_add(struct mg_keyring *kr, const char *path, char *err, size_t errlen)
{
	struct mg_master_key	k;
	int			i;

	if (mg_master_key_load(path, &k, err, errlen) == -1)
		return -1;
	for (i = 0; i < kr->n; i++) {
		if (memcmp(kr->keys[i].id, k.id, sizeof(k.id)) == 0) {
			/* The same key under two names (the current key's own copy). */
			mg_master_key_wipe(&k);
			return 0;
		}
	}
	if (kr->n >= MG_KEYRING_MAX) {
		mg_master_key_wipe(&k);
		snprintf(err, errlen, "more than %d master keys beside the master key; prune retired ones",
		    MG_KEYRING_MAX);
		return -1;
	}
	kr->keys[kr->n++] = k;
	mg_master_key_wipe(&k);
	return 0;
}

/* Whether name is "<base>.<8 hex digits>". */
static int
keyring_is_member(const char *name, const char *base)
{
	size_t	bl = strlen(base), i;

	if (strncmp(name, base, bl) != 0 || name[bl] != '.' || strlen(name + bl + 1) != 8)
		return 0;
	for (i = bl + 1; name[i] != '\0'; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return 1;
}

int
mg_keyring_load(const char *master_path, struct mg_keyring *kr, char *err, size_t errlen)
{
	char		*dcopy = NULL, *bcopy = NULL, *dir, *base, path[4096];
	DIR		*d = NULL;
	struct dirent	*e;
	int		 rc = -1;

	memset(kr, 0, sizeof(*kr));
	if (keyring_add(kr, master_path, err, errlen) == -1)
		goto out;
	if ((dcopy = strdup(master_path)) == NULL || (bcopy = strdup(master_path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	dir = dirname(dcopy);
	base = basename(bcopy);
	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "master key directory %s: %s", dir, strerror(errno));
		goto out;
	}
	while ((e = readdir(d)) != NULL) {
		if (!keyring_is_member(e->d_name, base))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		if (keyring_add(kr, path, err, errlen) == -1)
			goto out;
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	free(dcopy);
	free(bcopy);
	if (rc == -1)
		mg_keyring_wipe(kr);
	return rc;
}

void
mg_keyring_wipe(struct mg_keyring *kr)
{
	OPENSSL_cleanse(kr, sizeof(*kr));
}

const struct mg_master_key *
mg_keyring_find(const struct mg_keyring *kr, const uint8_t id[4])
{
	int i;

	for (i = 0; i < kr->n; i++)
		if (memcmp(kr->keys[i].id, id, 4) == 0)
			return &kr->keys[i];
	return NULL;
}

int
mg_sealed_key_id(const uint8_t *sealed, size_t len, uint8_t id[4])
{
	if (len < MG_SEAL_OVERHEAD || sealed[0] != 1)
		return -1;
	memcpy(id, sealed + 1, 4);
	return 0;
}

void
mg_key_id_hex(const uint8_t id[4], char *out)
{
	snprintf(out, 9, "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
}

long
mg_keyring_unseal(const struct mg_keyring *kr, const uint8_t *aad, size_t aadlen,
    const uint8_t *sealed, size_t sealedlen, uint8_t *out, size_t outlen, char *err, size_t errlen)
{
	const struct mg_master_key	*k;
	uint8_t				 id[4];
	char				 hex[9];

	if (mg_sealed_key_id(sealed, sealedlen, id) == -1) {
		snprintf(err, errlen, "not a sealed secret");
		return -1;
	}
	if ((k = mg_keyring_find(kr, id)) == NULL) {
		mg_key_id_hex(id, hex);
		snprintf(err, errlen, "sealed under key %s, which is not in the keyring", hex);
		return -1;
	}
	return mg_unseal(k, aad, aadlen, sealed, sealedlen, out, outlen, err, errlen);
}

int
mg_keyed_digest(const uint8_t *key, const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
	EVP_MAC		*mac;
	EVP_MAC_CTX	*ctx = NULL;
	OSSL_PARAM	 params[2];
	size_t		 outl = 0;
	int		 rc = -1;
	static const uint8_t nul = 0;

	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(ctx, key, MG_KEY_LEN, params) != 1 ||
	    EVP_MAC_update(ctx, a, alen) != 1 || EVP_MAC_update(ctx, &nul, 1) != 1 ||
	    EVP_MAC_update(ctx, b, blen) != 1 || EVP_MAC_final(ctx, out, &outl, 32) != 1 || outl != 32)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

int
mg_device_hash(const struct mg_master_key *dk, const char *user, size_t ulen,
    const char *password, size_t plen, char *out)
{
	uint8_t	d[32];
	int	i;

	if (mg_keyed_digest(dk->key, user, ulen, password, plen, d) == -1)
		return -1;
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	OPENSSL_cleanse(d, sizeof(d));
	return 0;
}

int
mg_device_password(char *out, size_t outlen)
{
	/* RFC 4648 base32 without the look-alikes' trouble: lower case, read aloud easily. */
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint8_t	rnd[20];
	size_t	i, o = 0, bit;

	if (outlen < MG_DEVICE_PW_LEN + 1 || mg_random(rnd, sizeof(rnd)) == -1)
		return -1;
	for (i = 0; i < 32; i++) {
		unsigned v = 0, j;

		bit = i * 5;
		for (j = 0; j < 5; j++)
			v = (v << 1) | ((rnd[(bit + j) / 8] >> (7 - (bit + j) % 8)) & 1u);
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = alphabet[v];
	}
	out[o] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}
