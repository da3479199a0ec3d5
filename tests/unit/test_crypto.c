/*
 * test_crypto.c - the master key, sealing and password hashes.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "crypto.h"

/*
 * Known hashes, made on Debian 12 with mkpasswd(1) from the whois package
 * (libxcrypt 4.4.33), for example `printf %s 'hunter2' | mkpasswd -s -m
 * bcrypt -R 5`, and checked with Python's crypt module. The yescrypt
 * password is UTF-8 on purpose: crypt(3) must see its bytes unchanged.
 */
#define VEC_Y_PASS	"p\xc3\xa4ssw\xc3\xb6rd"
#define VEC_Y_HASH	"$y$j9T$uRKk9hQuujaHcxi/Ipkg7.$i0mpp4CcNv9o4lni4jBeMeIxNZI6.zbUx8Uga7ctlj1"
#define VEC_2B_PASS	"hunter2"
#define VEC_2B_HASH	"$2b$05$PODVNE/mJKX3BPbIyJejkOohJ0NzPzsO4psw1huDx0Lsecyu4bzfC"
#define VEC_6_PASS	"correct horse battery staple"
#define VEC_6_HASH	"$6$mOoN/4YALcI5mxNQ$K4Tdizl2VEDFuLeF4WHj2qOz3SbFk8IVei1/zS8k1x07uO5y1sO35bQsQUEYsYeC0Iq96N71Hc5HKTabF8J2R."

#define SECRET		"abcd efgh ijkl mnop"	/* an app password as providers print them */

struct fixture {
	char			dir[64];	/* a fresh mkdtemp directory */
	char			path[128];	/* dir/master.key, created by setup */
	struct mg_master_key	key;		/* loaded from path */
	uint8_t			aad[600];
	int			aadlen;		/* mg_account_aad("alice", "gmail", 1) */
};

static void
path_in(const struct fixture *f, const char *name, char *buf, size_t len)
{
	int	n;

	n = snprintf(buf, len, "%s/%s", f->dir, name);
	assert_true(n > 0 && (size_t)n < len);
}

/* Writes `len` bytes to a new file and gives it `mode`. */
static void
write_file(const char *path, size_t len, mode_t mode)
{
	uint8_t	buf[64];
	int	fd;

	assert_true(len <= sizeof(buf));
	memset(buf, 'k', sizeof(buf));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static int
setup(void **state)
{
	struct fixture	*f;
	char		 err[256];

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_crypto.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path_in(f, "master.key", f->path, sizeof(f->path));
	assert_int_equal(mg_master_key_create(f->path, err, sizeof(err)), 0);
	assert_int_equal(mg_master_key_load(f->path, &f->key, err, sizeof(err)), 0);
	f->aadlen = mg_account_aad("alice", "gmail", 1, f->aad, sizeof(f->aad));
	assert_true(f->aadlen > 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 cmd[128];

	mg_master_key_wipe(&f->key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Seals SECRET for alice/gmail/password. */
static long
seal_secret(struct fixture *f, uint8_t *out, size_t outlen)
{
	char	err[256];
	long	n;

	n = mg_seal(&f->key, f->aad, (size_t)f->aadlen, (const uint8_t *)SECRET, strlen(SECRET),
	    out, outlen, err, sizeof(err));
	assert_int_equal(n, (long)(strlen(SECRET) + MG_SEAL_OVERHEAD));
	return n;
}

static void
test_aad_format(void **state)
{
	uint8_t	buf[32];

	(void)state;
	assert_int_equal(mg_account_aad("alice", "gmail", 1, buf, sizeof(buf)), 13);
	assert_memory_equal(buf, "alice\0gmail\0" "1", 13);
	assert_int_equal(mg_account_aad("", "", 12, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "\0\0" "12", 4);
	/* Exactly enough room works; one byte less does not. */
	assert_int_equal(mg_account_aad("alice", "gmail", 1, buf, 13), 13);
	assert_int_equal(mg_account_aad("alice", "gmail", 1, buf, 12), -1);
	assert_int_equal(mg_account_aad(NULL, "gmail", 1, buf, sizeof(buf)), -1);
}

static void
test_seal_roundtrip(void **state)
{
	struct fixture	*f = *state;
	uint8_t		 sealed[128], sealed2[128], out[128];
	char		 err[256];
	long		 n, m;

	n = seal_secret(f, sealed, sizeof(sealed));
	assert_int_equal(sealed[0], 1);
	assert_memory_equal(sealed + 1, f->key.id, 4);
	/* The secret must not appear in the clear. */
	assert_null(memmem(sealed, (size_t)n, SECRET, strlen(SECRET)));

	memset(out, 'x', sizeof(out));
	m = mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n, out, sizeof(out),
	    err, sizeof(err));
	assert_int_equal(m, (long)strlen(SECRET));
	assert_string_equal((char *)out, SECRET);

	/* A fresh nonce each time: the same secret never seals the same. */
	seal_secret(f, sealed2, sizeof(sealed2));
	assert_memory_not_equal(sealed + 5, sealed2 + 5, 12);
	assert_memory_not_equal(sealed, sealed2, (size_t)n);

	/* An empty secret and an empty AAD are legal too. */
	n = mg_seal(&f->key, NULL, 0, NULL, 0, sealed, sizeof(sealed), err, sizeof(err));
	assert_int_equal(n, MG_SEAL_OVERHEAD);
	out[0] = 'x';
	assert_int_equal(mg_unseal(&f->key, NULL, 0, sealed, (size_t)n, out, 1, err, sizeof(err)), 0);
	assert_int_equal(out[0], '\0');
}

static void
test_seal_tamper(void **state)
{
	struct fixture	*f = *state;
	uint8_t		 sealed[128], out[128];
	char		 err[256];
	long		 n;
	size_t		 i;
	int		 bit;

	n = seal_secret(f, sealed, sizeof(sealed));
	/*
	 * Flipping any bit of any region (version 0, key id 1-4, nonce 5-16,
	 * ciphertext, tag) must make the secret unopenable.
	 */
	for (i = 0; i < (size_t)n; i++) {
		for (bit = 0; bit < 8; bit += 7) {
			sealed[i] ^= (uint8_t)(1 << bit);
			memset(out, 'x', sizeof(out));
			err[0] = '\0';
			assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n,
			    out, sizeof(out), err, sizeof(err)), -1);
			assert_true(err[0] != '\0');
			/* No byte of the secret may be left behind in out. */
			assert_null(memmem(out, sizeof(out), "abcd", 4));
			sealed[i] ^= (uint8_t)(1 << bit);
		}
	}
	/* Truncated, or extended by a byte. */
	assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n - 1,
	    out, sizeof(out), err, sizeof(err)), -1);
	sealed[n] = 0;
	assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n + 1,
	    out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, MG_SEAL_OVERHEAD - 1,
	    out, sizeof(out), err, sizeof(err)), -1);
	/* Untouched, it still opens. */
	assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n,
	    out, sizeof(out), err, sizeof(err)), (long)strlen(SECRET));
}

static void
test_seal_aad_mismatch(void **state)
{
	struct fixture	*f = *state;
	uint8_t		 sealed[128], out[128], aad[600];
	char		 err[256];
	long		 n;
	int		 alen;

	n = seal_secret(f, sealed, sizeof(sealed));
	alen = mg_account_aad("mallory", "gmail", 1, aad, sizeof(aad));
	assert_int_equal(mg_unseal(&f->key, aad, (size_t)alen, sealed, (size_t)n, out, sizeof(out),
	    err, sizeof(err)), -1);
	alen = mg_account_aad("alice", "fastmail", 1, aad, sizeof(aad));
	assert_int_equal(mg_unseal(&f->key, aad, (size_t)alen, sealed, (size_t)n, out, sizeof(out),
	    err, sizeof(err)), -1);
	alen = mg_account_aad("alice", "gmail", 2, aad, sizeof(aad));
	assert_int_equal(mg_unseal(&f->key, aad, (size_t)alen, sealed, (size_t)n, out, sizeof(out),
	    err, sizeof(err)), -1);
	/* The NUL separators matter: "alic" + "egmail" is another row. */
	alen = mg_account_aad("alic", "egmail", 1, aad, sizeof(aad));
	assert_int_equal(mg_unseal(&f->key, aad, (size_t)alen, sealed, (size_t)n, out, sizeof(out),
	    err, sizeof(err)), -1);
	assert_int_equal(mg_unseal(&f->key, NULL, 0, sealed, (size_t)n, out, sizeof(out),
	    err, sizeof(err)), -1);
}

static void
test_seal_wrong_key(void **state)
{
	struct fixture		*f = *state;
	struct mg_master_key	 other;
	uint8_t			 sealed[128], out[128];
	char			 err[256], path[128];
	long			 n;

	n = seal_secret(f, sealed, sizeof(sealed));
	path_in(f, "other.key", path, sizeof(path));
	assert_int_equal(mg_master_key_create(path, err, sizeof(err)), 0);
	assert_int_equal(mg_master_key_load(path, &other, err, sizeof(err)), 0);
	assert_memory_not_equal(other.key, f->key.key, MG_KEY_LEN);
	assert_int_equal(mg_unseal(&other, f->aad, (size_t)f->aadlen, sealed, (size_t)n, out,
	    sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "another master key"));

	/* Same key id but another key (a forged id) still fails on the tag. */
	memcpy(other.id, f->key.id, sizeof(other.id));
	assert_int_equal(mg_unseal(&other, f->aad, (size_t)f->aadlen, sealed, (size_t)n, out,
	    sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "authentication failed"));
	mg_master_key_wipe(&other);
}

static void
test_seal_outlen(void **state)
{
	struct fixture	*f = *state;
	uint8_t		 sealed[128], out[128];
	char		 err[256];
	size_t		 plen = strlen(SECRET);
	long		 n;

	assert_int_equal(mg_seal(&f->key, f->aad, (size_t)f->aadlen, (const uint8_t *)SECRET, plen,
	    sealed, plen + MG_SEAL_OVERHEAD - 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too small"));
	n = seal_secret(f, sealed, plen + MG_SEAL_OVERHEAD);
	/* Unseal needs room for the NUL as well. */
	assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n, out, plen,
	    err, sizeof(err)), -1);
	assert_int_equal(mg_unseal(&f->key, f->aad, (size_t)f->aadlen, sealed, (size_t)n, out, plen + 1,
	    err, sizeof(err)), (long)plen);
}

static void
test_key_create(void **state)
{
	struct fixture	*f = *state;
	struct stat	 st;
	uint8_t		 before[MG_KEY_LEN], md[SHA256_DIGEST_LENGTH];
	char		 err[256], path[128], link[128];
	mode_t		 old;
	int		 fd;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, MG_KEY_LEN);

	/* The key id is the first 4 bytes of SHA-256(key). */
	SHA256(f->key.key, MG_KEY_LEN, md);
	assert_memory_equal(f->key.id, md, 4);

	/* Never overwritten: the file keeps its bytes. */
	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, before, sizeof(before)), MG_KEY_LEN);
	close(fd);
	assert_memory_equal(before, f->key.key, MG_KEY_LEN);
	err[0] = '\0';
	assert_int_equal(mg_master_key_create(f->path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	assert_non_null(strstr(err, f->path));
	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, before, sizeof(before)), MG_KEY_LEN);
	close(fd);
	assert_memory_equal(before, f->key.key, MG_KEY_LEN);

	/* A permissive umask does not widen the mode; a strict one does not break it. */
	old = umask(0);
	path_in(f, "k0", path, sizeof(path));
	assert_int_equal(mg_master_key_create(path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	umask(0277);
	path_in(f, "k1", path, sizeof(path));
	assert_int_equal(mg_master_key_create(path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	umask(old);

	/* A symbolic link, even a dangling one, is not followed. */
	path_in(f, "link.key", link, sizeof(link));
	path_in(f, "target.key", path, sizeof(path));
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(mg_master_key_create(link, err, sizeof(err)), -1);
	assert_int_equal(access(path, F_OK), -1);

	/* A directory that does not exist is reported, not created. */
	path_in(f, "nodir/master.key", path, sizeof(path));
	assert_int_equal(mg_master_key_create(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

static void
test_key_load_refuses(void **state)
{
	struct fixture		*f = *state;
	struct mg_master_key	 k;
	static const uint8_t	 zero[sizeof(struct mg_master_key)];
	char			 err[256], path[128], link[128];

	path_in(f, "bad.key", path, sizeof(path));

	/* Readable by group. */
	write_file(path, MG_KEY_LEN, 0640);
	memset(&k, 0xaa, sizeof(k));
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "0640"));
	assert_non_null(strstr(err, "chmod 600"));
	/* A refused key leaves nothing behind in the caller's struct. */
	assert_memory_equal(&k, zero, sizeof(k));

	/* Writable by others, or merely executable by group. */
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0602"));
	assert_int_equal(chmod(path, 0610), 0);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);

	/* Mode 0400 is fine. */
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), 0);
	assert_int_equal(unlink(path), 0);

	/* One byte short, one byte long, empty. */
	write_file(path, MG_KEY_LEN - 1, 0600);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "31 bytes"));
	assert_int_equal(unlink(path), 0);
	write_file(path, MG_KEY_LEN + 1, 0600);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_int_equal(unlink(path), 0);
	write_file(path, 0, 0600);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_int_equal(unlink(path), 0);

	/* A symbolic link to a good key, a directory, a FIFO, nothing. */
	path_in(f, "link.key", link, sizeof(link));
	assert_int_equal(symlink(f->path, link), 0);
	assert_int_equal(mg_master_key_load(link, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(mg_master_key_load(f->dir, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	path_in(f, "fifo", path, sizeof(path));
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	path_in(f, "missing.key", path, sizeof(path));
	assert_int_equal(mg_master_key_load(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

static void
test_password_hash(void **state)
{
	char	h1[256], h2[256], err[256];

	(void)state;
	assert_int_equal(mg_password_hash("s3cret pass", h1, sizeof(h1), err, sizeof(err)), 0);
	assert_true(strncmp(h1, "$y$", 3) == 0);
	assert_int_equal(mg_password_verify("s3cret pass", h1), 1);
	assert_int_equal(mg_password_verify("s3cret pasS", h1), 0);
	assert_int_equal(mg_password_verify("s3cret pass ", h1), 0);
	assert_int_equal(mg_password_verify("", h1), 0);
	/* A fresh salt each time. */
	assert_int_equal(mg_password_hash("s3cret pass", h2, sizeof(h2), err, sizeof(err)), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(mg_password_verify("s3cret pass", h2), 1);
	/* The output buffer must hold the whole string. */
	assert_int_equal(mg_password_hash("s3cret pass", h2, strlen(h1), err, sizeof(err)), -1);
	assert_int_equal(mg_password_hash("s3cret pass", h2, strlen(h1) + 1, err, sizeof(err)), 0);
}

static void
test_password_vectors(void **state)
{
	(void)state;
	assert_int_equal(mg_password_verify(VEC_Y_PASS, VEC_Y_HASH), 1);
	assert_int_equal(mg_password_verify(VEC_2B_PASS, VEC_2B_HASH), 1);
	assert_int_equal(mg_password_verify(VEC_6_PASS, VEC_6_HASH), 1);

	assert_int_equal(mg_password_verify("passwort", VEC_Y_HASH), 0);
	assert_int_equal(mg_password_verify("Hunter2", VEC_2B_HASH), 0);
	assert_int_equal(mg_password_verify("correct horse battery stapl", VEC_6_HASH), 0);
	/*
	 * A truncated hash still names a valid salt, so crypt(3) computes the
	 * full hash from it; only the whole string may count as a match.
	 */
	assert_int_equal(mg_password_verify(VEC_6_PASS, "$6$mOoN/4YALcI5mxNQ$K4Tdiz"), 0);
	assert_int_equal(mg_password_verify(VEC_6_PASS, "$6$mOoN/4YALcI5mxNQ$"), 0);
	assert_int_equal(mg_password_verify(VEC_6_PASS, VEC_6_HASH "x"), 0);
	/* Another vector's password against each hash. */
	assert_int_equal(mg_password_verify(VEC_6_PASS, VEC_Y_HASH), 0);
	assert_int_equal(mg_password_verify(VEC_Y_PASS, VEC_2B_HASH), 0);
	assert_int_equal(mg_password_verify(VEC_2B_PASS, VEC_6_HASH), 0);
}

static void
test_password_unusable(void **state)
{
	(void)state;
	assert_int_equal(mg_password_verify("", ""), -1);
	assert_int_equal(mg_password_verify("x", ""), -1);
	assert_int_equal(mg_password_verify("x", "*"), -1);
	assert_int_equal(mg_password_verify("x", "!"), -1);
	assert_int_equal(mg_password_verify("*", "*"), -1);
	assert_int_equal(mg_password_verify("x", "*LK*"), -1);
	/* A locked account: the old hash with '!' in front. */
	assert_int_equal(mg_password_verify(VEC_6_PASS, "!" VEC_6_HASH), -1);
	assert_int_equal(mg_password_verify(VEC_6_PASS, NULL), -1);
	/* Garbage that names no method libxcrypt knows. */
	assert_int_equal(mg_password_verify("x", "$zz$abc$def"), -1);
	assert_int_equal(mg_password_verify("x", "$y$"), -1);
}

static void
test_random(void **state)
{
	uint8_t	a[32], b[32];

	(void)state;
	assert_int_equal(mg_random(a, sizeof(a)), 0);
	assert_int_equal(mg_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(mg_random(a, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aad_format),
		cmocka_unit_test_setup_teardown(test_seal_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_aad_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_outlen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_load_refuses, setup, teardown),
		cmocka_unit_test(test_password_hash),
		cmocka_unit_test(test_password_vectors),
		cmocka_unit_test(test_password_unusable),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
