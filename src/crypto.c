/*
 * crypto.c - the master key, sealing of upstream secrets, password hashes.
 *
 * Everything here is a library: nothing logs, every failure fills the
 * caller's error buffer and returns -1. Each temporary that holds key
 * material, a plaintext secret or a password is wiped with OPENSSL_cleanse
 * before it goes out of scope, on the error paths as well.
 */
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "crypto.h"

#define CRYPTO_VERSION		1	/* the sealed format's first byte */
#define CRYPTO_ID_LEN		4
#define CRYPTO_NONCE_LEN	12
#define CRYPTO_TAG_LEN		16
#define CRYPTO_OFF_ID		1
#define CRYPTO_OFF_NONCE	(CRYPTO_OFF_ID + CRYPTO_ID_LEN)
#define CRYPTO_OFF_CT		(CRYPTO_OFF_NONCE + CRYPTO_NONCE_LEN)

/* The prefix of the hash method mg_password_hash() uses (yescrypt). */
#define CRYPTO_HASH_PREFIX	"$y$"

static void	crypto_err(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	crypto_ossl_err(char *, size_t, const char *);
static void	crypto_key_id(const uint8_t *, uint8_t *);
static int	crypto_fsync_dir(const char *);

/* Formats a message into the caller's error buffer, which may be absent. */
static void
crypto_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Reports a failed OpenSSL call together with the reason at the top of
 * OpenSSL's error queue, and empties the queue so that a later, unrelated
 * failure does not pick up a stale reason.
 */
static void
crypto_ossl_err(char *err, size_t errlen, const char *what)
{
	unsigned long	e;
	char		reason[160];

	e = ERR_peek_last_error();
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "no reason given");
	ERR_clear_error();
	crypto_err(err, errlen, "%s: %s", what, reason);
}

/*
 * The key id is the first bytes of SHA-256(key). It lets mg_unseal() tell
 * "sealed under another master key" apart from "tampered with", which is what
 * an operator needs to know after restoring the wrong key file.
 */
static void
crypto_key_id(const uint8_t *key, uint8_t *id)
{
	uint8_t	md[SHA256_DIGEST_LENGTH];

	SHA256(key, MG_KEY_LEN, md);
	memcpy(id, md, CRYPTO_ID_LEN);
	OPENSSL_cleanse(md, sizeof(md));
}

/*
 * Flushes the directory that holds `path`, so that a freshly created key
 * file survives a crash: fsync() of the file alone does not persist its
 * directory entry. 0 ok, -1 error with errno set.
 */
static int
crypto_fsync_dir(const char *path)
{
	char	*dir = NULL, *slash;
	int	 fd = -1, ret = -1, saved;

	if ((dir = strdup(path)) == NULL)
		goto fail;
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	if (fsync(fd) == -1)
		goto fail;
	ret = 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	free(dir);
	errno = saved;
	return ret;
}

int
mg_master_key_create(const char *path, char *err, size_t errlen)
{
	uint8_t	 key[MG_KEY_LEN];
	size_t	 off = 0;
	ssize_t	 n;
	int	 fd = -1, created = 0;

	if (path == NULL || *path == '\0') {
		crypto_err(err, errlen, "master key: no path given");
		goto fail;
	}
	if (mg_random(key, sizeof(key)) == -1) {
		crypto_err(err, errlen, "master key %s: no random bytes available", path);
		goto fail;
	}
	/*
	 * O_EXCL refuses an existing file (and, with O_NOFOLLOW, any symbolic
	 * link), so a second "key create" can never destroy the key that the
	 * stored secrets are sealed under.
	 */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno == EEXIST)
			crypto_err(err, errlen, "master key %s already exists; refusing to overwrite it", path);
		else
			crypto_err(err, errlen, "master key %s: %s", path, strerror(errno));
		goto fail;
	}
	created = 1;
	/* The umask may have taken bits away from 0600; the owner needs both. */
	if (fchmod(fd, 0600) == -1) {
		crypto_err(err, errlen, "master key %s: chmod: %s", path, strerror(errno));
		goto fail;
	}
	while (off < sizeof(key)) {
		n = write(fd, key + off, sizeof(key) - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			crypto_err(err, errlen, "master key %s: write: %s", path,
			    n == 0 ? "no progress" : strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		crypto_err(err, errlen, "master key %s: fsync: %s", path, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		crypto_err(err, errlen, "master key %s: close: %s", path, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (crypto_fsync_dir(path) == -1) {
		crypto_err(err, errlen, "master key %s: fsync of its directory: %s", path, strerror(errno));
		goto fail;
	}
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
fail:
	OPENSSL_cleanse(key, sizeof(key));
	if (fd != -1)
		close(fd);
	/* A half-written key file is worse than none: it would block a retry. */
	if (created)
		unlink(path);
	return -1;
}

int
mg_master_key_load(const char *path, struct mg_master_key *k, char *err, size_t errlen)
{
	struct stat	 st;
	size_t		 off = 0;
	ssize_t		 n;
	uint8_t		 extra;
	int		 fd = -1;

	if (k == NULL || path == NULL || *path == '\0') {
		crypto_err(err, errlen, "master key: no path given");
		goto fail;
	}
	/*
	 * O_NONBLOCK keeps a FIFO planted at the path from hanging the
	 * gateway in open(); fstat() then refuses it as not a regular file.
	 */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ELOOP)
			crypto_err(err, errlen, "master key %s is a symbolic link; refusing it", path);
		else
			crypto_err(err, errlen, "master key %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) == -1) {
		crypto_err(err, errlen, "master key %s: fstat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		crypto_err(err, errlen, "master key %s is not a regular file", path);
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		crypto_err(err, errlen, "master key %s is accessible by group or others (mode %04o); chmod 600 it",
		    path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size != MG_KEY_LEN) {
		crypto_err(err, errlen, "master key %s has %lld bytes, not %d", path,
		    (long long)st.st_size, MG_KEY_LEN);
		goto fail;
	}
	while (off < MG_KEY_LEN) {
		n = read(fd, k->key + off, MG_KEY_LEN - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			crypto_err(err, errlen, "master key %s: read: %s", path,
			    n == 0 ? "file shrank while being read" : strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	/* The size was checked above, but the file may have grown since. */
	do {
		n = read(fd, &extra, 1);
	} while (n == -1 && errno == EINTR);
	if (n != 0) {
		crypto_err(err, errlen, "master key %s: %s", path,
		    n > 0 ? "file grew while being read" : strerror(errno));
		goto fail;
	}
	close(fd);
	crypto_key_id(k->key, k->id);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	mg_master_key_wipe(k);
	return -1;
}

void
mg_master_key_wipe(struct mg_master_key *k)
{
	if (k != NULL)
		OPENSSL_cleanse(k, sizeof(*k));
}

int
mg_account_aad(const char *user, const char *provider, int kind, uint8_t *out, size_t outlen)
{
	char	num[16];
	size_t	ulen, plen, nlen, need;
	int	r;

	if (user == NULL || provider == NULL || out == NULL)
		return -1;
	r = snprintf(num, sizeof(num), "%d", kind);
	if (r < 0 || (size_t)r >= sizeof(num))
		return -1;
	ulen = strlen(user);
	plen = strlen(provider);
	nlen = (size_t)r;
	/* Each term is bounded by memory, but their sum must still not wrap. */
	if (ulen > INT_MAX / 4 || plen > INT_MAX / 4)
		return -1;
	need = ulen + 1 + plen + 1 + nlen;
	if (need > outlen)
		return -1;
	/* The NULs make the encoding unambiguous: C strings cannot hold one. */
	memcpy(out, user, ulen + 1);
	memcpy(out + ulen + 1, provider, plen + 1);
	memcpy(out + ulen + 1 + plen + 1, num, nlen);
	return (int)need;
}

long
mg_seal(const struct mg_master_key *k, const uint8_t *aad, size_t aadlen,
    const uint8_t *pt, size_t ptlen, uint8_t *out, size_t outlen, char *err, size_t errlen)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	int		 n, wrote = 0;

	if (k == NULL || out == NULL || (aad == NULL && aadlen > 0) || (pt == NULL && ptlen > 0)) {
		crypto_err(err, errlen, "seal: missing argument");
		goto fail;
	}
	/* EVP counts in int; the result is returned as a long. */
	if (ptlen > INT_MAX - MG_SEAL_OVERHEAD || aadlen > INT_MAX) {
		crypto_err(err, errlen, "seal: input too large");
		goto fail;
	}
	if (outlen < ptlen + MG_SEAL_OVERHEAD) {
		crypto_err(err, errlen, "seal: output buffer too small (%zu bytes, need %zu)",
		    outlen, ptlen + MG_SEAL_OVERHEAD);
		goto fail;
	}
	ERR_clear_error();
	wrote = 1;
	out[0] = CRYPTO_VERSION;
	memcpy(out + CRYPTO_OFF_ID, k->id, CRYPTO_ID_LEN);
	/*
	 * Random 96-bit nonces: a master key seals one secret per account
	 * change, far below the 2^32 messages after which random GCM nonces
	 * would risk a collision.
	 */
	if (RAND_bytes(out + CRYPTO_OFF_NONCE, CRYPTO_NONCE_LEN) != 1) {
		crypto_ossl_err(err, errlen, "seal: RAND_bytes");
		goto fail;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		crypto_ossl_err(err, errlen, "seal: EVP_CIPHER_CTX_new");
		goto fail;
	}
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, k->key, out + CRYPTO_OFF_NONCE) != 1) {
		crypto_ossl_err(err, errlen, "seal: cipher setup");
		goto fail;
	}
	if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) {
		crypto_ossl_err(err, errlen, "seal: associated data");
		goto fail;
	}
	if (ptlen > 0 && (EVP_EncryptUpdate(ctx, out + CRYPTO_OFF_CT, &n, pt, (int)ptlen) != 1 ||
	    (size_t)n != ptlen)) {
		crypto_ossl_err(err, errlen, "seal: encrypt");
		goto fail;
	}
	/* GCM is a stream mode: Final produces no further bytes. */
	if (EVP_EncryptFinal_ex(ctx, out + CRYPTO_OFF_CT + ptlen, &n) != 1 || n != 0) {
		crypto_ossl_err(err, errlen, "seal: encrypt final");
		goto fail;
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN,
	    out + CRYPTO_OFF_CT + ptlen) != 1) {
		crypto_ossl_err(err, errlen, "seal: get tag");
		goto fail;
	}
	/* Freeing the context also cleanses its copy of the key schedule. */
	EVP_CIPHER_CTX_free(ctx);
	return (long)(ptlen + MG_SEAL_OVERHEAD);
fail:
	EVP_CIPHER_CTX_free(ctx);
	/* Leave no half-built output that could pass for a sealed secret. */
	if (wrote)
		OPENSSL_cleanse(out, ptlen + MG_SEAL_OVERHEAD);
	return -1;
}

long
mg_unseal(const struct mg_master_key *k, const uint8_t *aad, size_t aadlen,
    const uint8_t *sealed, size_t sealedlen, uint8_t *out, size_t outlen, char *err, size_t errlen)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	uint8_t		 tag[CRYPTO_TAG_LEN];
	size_t		 ctlen = 0;
	int		 n;

	if (k == NULL || out == NULL || sealed == NULL || (aad == NULL && aadlen > 0)) {
		crypto_err(err, errlen, "unseal: missing argument");
		goto fail;
	}
	if (sealedlen < MG_SEAL_OVERHEAD) {
		crypto_err(err, errlen, "unseal: sealed secret too short (%zu bytes)", sealedlen);
		goto fail;
	}
	if (sealedlen > INT_MAX || aadlen > INT_MAX) {
		crypto_err(err, errlen, "unseal: input too large");
		goto fail;
	}
	ctlen = sealedlen - MG_SEAL_OVERHEAD;
	if (outlen < ctlen + 1) {
		crypto_err(err, errlen, "unseal: output buffer too small (%zu bytes, need %zu)",
		    outlen, ctlen + 1);
		ctlen = 0;
		goto fail;
	}
	if (sealed[0] != CRYPTO_VERSION) {
		crypto_err(err, errlen, "unseal: unknown format version %u", (unsigned)sealed[0]);
		goto fail;
	}
	if (memcmp(sealed + CRYPTO_OFF_ID, k->id, CRYPTO_ID_LEN) != 0) {
		crypto_err(err, errlen, "unseal: sealed under another master key");
		goto fail;
	}
	ERR_clear_error();
	/* The ctrl call takes a non-const pointer, so hand it a copy. */
	memcpy(tag, sealed + sealedlen - CRYPTO_TAG_LEN, CRYPTO_TAG_LEN);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		crypto_ossl_err(err, errlen, "unseal: EVP_CIPHER_CTX_new");
		goto fail;
	}
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, sealed + CRYPTO_OFF_NONCE) != 1) {
		crypto_ossl_err(err, errlen, "unseal: cipher setup");
		goto fail;
	}
	if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) {
		crypto_ossl_err(err, errlen, "unseal: associated data");
		goto fail;
	}
	if (ctlen > 0 && (EVP_DecryptUpdate(ctx, out, &n, sealed + CRYPTO_OFF_CT, (int)ctlen) != 1 ||
	    (size_t)n != ctlen)) {
		crypto_ossl_err(err, errlen, "unseal: decrypt");
		goto fail;
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, tag) != 1) {
		crypto_ossl_err(err, errlen, "unseal: set tag");
		goto fail;
	}
	/*
	 * The tag is checked only here, after the plaintext has been written
	 * to out; on a mismatch the fail path wipes those unauthenticated
	 * bytes so the caller can never use them.
	 */
	if (EVP_DecryptFinal_ex(ctx, out + ctlen, &n) != 1) {
		ERR_clear_error();
		crypto_err(err, errlen, "unseal: authentication failed (wrong row, wrong key or tampered)");
		goto fail;
	}
	EVP_CIPHER_CTX_free(ctx);
	out[ctlen] = '\0';
	return (long)ctlen;
fail:
	EVP_CIPHER_CTX_free(ctx);
	if (out != NULL && ctlen > 0)
		OPENSSL_cleanse(out, ctlen);
	return -1;
}

int
mg_password_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen)
{
	struct crypt_data	*cd = NULL;
	char			 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char		*h;
	size_t			 len;
	int			 ret = -1;

	if (password == NULL || out == NULL || outlen == 0) {
		crypto_err(err, errlen, "password hash: missing argument");
		goto fail;
	}
	/*
	 * A count of 0 asks libxcrypt for its default cost, and NULL random
	 * bytes let it draw the salt from the kernel itself.
	 */
	if (crypt_gensalt_rn(CRYPTO_HASH_PREFIX, 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		crypto_err(err, errlen, "password hash: crypt_gensalt: %s", strerror(errno));
		goto fail;
	}
	/* struct crypt_data is tens of kilobytes: too big for a pool thread's stack. */
	if ((cd = calloc(1, sizeof(*cd))) == NULL) {
		crypto_err(err, errlen, "password hash: out of memory");
		goto fail;
	}
	h = crypt_rn(password, setting, cd, sizeof(*cd));
	if (h == NULL || h[0] == '*') {
		crypto_err(err, errlen, "password hash: crypt: %s", strerror(errno));
		goto fail;
	}
	len = strlen(h);
	if (len >= outlen) {
		crypto_err(err, errlen, "password hash: output buffer too small (%zu bytes, need %zu)",
		    outlen, len + 1);
		goto fail;
	}
	memcpy(out, h, len + 1);
	ret = 0;
fail:
	if (cd != NULL) {
		OPENSSL_cleanse(cd, sizeof(*cd));
		free(cd);
	}
	return ret;
}

int
mg_password_verify(const char *password, const char *hash)
{
	struct crypt_data	*cd = NULL;
	const char		*h;
	size_t			 len;
	int			 ret = -1;

	/*
	 * An empty hash would match the empty password under some methods,
	 * and '*' or '!' is how a hash is written to lock an account: none
	 * of them can ever be a match.
	 */
	if (hash == NULL || hash[0] == '\0' || hash[0] == '*' || hash[0] == '!')
		return -1;
	if (password == NULL)
		return 0;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		goto fail;
	/* crypt_rn() returns NULL (never a "*0" token) for a hash it cannot use. */
	h = crypt_rn(password, hash, cd, sizeof(*cd));
	if (h == NULL || h[0] == '*')
		goto fail;
	/*
	 * The length of a crypt(3) string follows from its method alone, so
	 * comparing lengths first reveals nothing about the password.
	 */
	len = strlen(hash);
	ret = strlen(h) == len && CRYPTO_memcmp(h, hash, len) == 0;
fail:
	if (cd != NULL) {
		OPENSSL_cleanse(cd, sizeof(*cd));
		free(cd);
	}
	return ret;
}

int
mg_random(void *buf, size_t len)
{
	unsigned char	*p = buf;
	size_t		 n;

	if (buf == NULL && len > 0)
		return -1;
	/* RAND_bytes counts in int; larger requests go in pieces. */
	while (len > 0) {
		n = len > INT_MAX ? INT_MAX : len;
		if (RAND_bytes(p, (int)n) != 1) {
			ERR_clear_error();
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}
