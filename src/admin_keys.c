/*
 * admin_keys.c - `mailgate key` (master key rotation), `mailgate audit`
 * and `mailgate import`.
 *
 * Rotation while gateways keep serving: the new key is written beside the
 * master key as MASTER.<id> before any secret is sealed under it, so a
 * gateway that meets a secret with that id reloads its keyring from disk
 * and opens it. The old key stays as MASTER.<old id> until `key prune`. Each
 * secret is replaced only if it is still the one that was read (compare and
 * swap), so an `account set` running at the same time is never undone. Only
 * then does the master key file itself become the new key (an atomic
 * rename), and `account set` seals under it from then on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin_impl.h"
#include "audit.h"
#include "config.h"
#include "crypto.h"
#include "keys.h"
#include "store.h"

struct rotate_ctx {
	struct mg_store		*st;
	struct mg_keyring	*ring;
	struct mg_master_key	*newkey;
	size_t			 done, skipped, failed;
	char			 err[MG_ERRLEN];
};

/* Re-seals one account's secret under the new key. */
static int
rotate_cb(const struct mg_account *acct, void *arg)
{
	struct rotate_ctx	*r = arg;
	uint8_t			 aad[2 * MG_NAME_MAX + 16], id[4];
	uint8_t			*pt = NULL, *sealed = NULL;
	int			 aadlen, rc;
	long			 n, m;

	if (mg_sealed_key_id(acct->sealed, acct->sealed_len, id) == 0 &&
	    memcmp(id, r->newkey->id, 4) == 0) {
		r->skipped++;
		return 0;
	}
	aadlen = mg_account_aad(acct->user, acct->provider, (int)acct->kind, aad, sizeof(aad));
	if (aadlen < 0 || (pt = malloc(MG_SEALED_MAX)) == NULL || (sealed = malloc(MG_SEALED_MAX)) == NULL)
		goto fail;
	n = mg_keyring_unseal(r->ring, aad, (size_t)aadlen, acct->sealed, acct->sealed_len, pt, MG_SEALED_MAX,
	    r->err, sizeof(r->err));
	if (n < 0) {
		fprintf(stderr, "mailgate: %s at %s: %s (left as it is)\n", acct->user, acct->provider, r->err);
		goto fail;
	}
	m = mg_seal(r->newkey, aad, (size_t)aadlen, pt, (size_t)n, sealed, MG_SEALED_MAX, r->err, sizeof(r->err));
	OPENSSL_cleanse(pt, MG_SEALED_MAX);
	if (m < 0)
		goto fail;
	rc = mg_store_account_reseal(r->st, acct->user, acct->provider, acct->sealed, acct->sealed_len, sealed,
	    (size_t)m, r->err, sizeof(r->err));
	if (rc == -1)
		goto fail;
	if (rc == 1)
		r->skipped++;	/* changed meanwhile: sealed under the current key by whoever changed it */
	else
		r->done++;
	free(pt);
	free(sealed);
	return 0;
fail:
	r->failed++;
	if (pt != NULL)
		OPENSSL_cleanse(pt, MG_SEALED_MAX);
	free(pt);
	free(sealed);
	return 0;
}

static int
key_path(char *out, size_t len, const char *master, const uint8_t id[4])
{
	char hex[9];

	mg_key_id_hex(id, hex);
	return snprintf(out, len, "%s.%s", master, hex) >= (int)len ? -1 : 0;
}

static int
key_rotate(struct mg_config *cfg, struct mg_store *st)
{
	struct mg_keyring	*ring;
	struct mg_master_key	 newkey;
	struct rotate_ctx	 r;
	const char		*master = cfg->master_key.path;
	char			 tmp[4096], newpath[4096], oldpath[4096], err[MG_ERRLEN], oh[9], nh[9];
	int			 rc = MG_EXIT_FAIL;

	memset(&newkey, 0, sizeof(newkey));
	if ((ring = calloc(1, sizeof(*ring))) == NULL)
		return MG_EXIT_FAIL;
	if (mg_keyring_load(master, ring, err, sizeof(err)) == -1) {
		fprintf(stderr, "mailgate: %s\n", err);
		goto out;
	}
	/* 1. Keep the current key under its id: it stays usable after the switch. */
	if (key_path(oldpath, sizeof(oldpath), master, ring->keys[0].id) == -1)
		goto out;
	if (link(master, oldpath) == -1 && errno != EEXIST) {
		fprintf(stderr, "mailgate: cannot keep the old key as %s: %s\n", oldpath, strerror(errno));
		goto out;
	}
	/* 2. A new key, published under its id before anything is sealed with it. */
	snprintf(tmp, sizeof(tmp), "%s.new", master);
	(void)unlink(tmp);
	if (mg_master_key_create(tmp, err, sizeof(err)) == -1 ||
	    mg_master_key_load(tmp, &newkey, err, sizeof(err)) == -1) {
		fprintf(stderr, "mailgate: %s\n", err);
		goto out;
	}
	if (key_path(newpath, sizeof(newpath), master, newkey.id) == -1 || rename(tmp, newpath) == -1) {
		fprintf(stderr, "mailgate: cannot publish the new key: %s\n", strerror(errno));
		goto out;
	}
	/* 3. Every secret under the new key. */
	memset(&r, 0, sizeof(r));
	r.st = st;
	r.ring = ring;
	r.newkey = &newkey;
	if (mg_store_account_list(st, NULL, rotate_cb, &r, r.err, sizeof(r.err)) == -1) {
		fprintf(stderr, "mailgate: store: %s\n", r.err);
		goto out;
	}
	if (r.failed > 0) {
		fprintf(stderr, "mailgate: %zu secrets could not be re-encrypted; the master key is unchanged "
		    "(run 'key rotate' again once fixed)\n", r.failed);
		goto out;
	}
	/* 4. The master key file becomes the new key, atomically. */
	snprintf(tmp, sizeof(tmp), "%s.switch", master);
	(void)unlink(tmp);
	if (link(newpath, tmp) == -1 || rename(tmp, master) == -1) {
		fprintf(stderr, "mailgate: cannot install the new master key: %s\n", strerror(errno));
		goto out;
	}
	mg_key_id_hex(ring->keys[0].id, oh);
	mg_key_id_hex(newkey.id, nh);
	printf("rotated %zu secrets from key %s to key %s (%zu already current); old key kept as %s\n",
	    r.done, oh, nh, r.skipped, oldpath);
	{
		char detail[128];

		snprintf(detail, sizeof(detail), "key rotate from=%s to=%s secrets=%zu", oh, nh, r.done);
		(void)mg_audit_admin(st, "", detail);
	}
	rc = MG_EXIT_OK;
out:
	mg_master_key_wipe(&newkey);
	mg_keyring_wipe(ring);
	free(ring);
	return rc;
}

struct key_use {
	uint8_t	id[MG_KEYRING_MAX][4];
	size_t	count[MG_KEYRING_MAX];
	int	n;
	size_t	unknown;
};

static int
key_use_cb(const struct mg_account *acct, void *arg)
{
	struct key_use	*u = arg;
	uint8_t		 id[4];
	int		 i;

	if (mg_sealed_key_id(acct->sealed, acct->sealed_len, id) == -1) {
		u->unknown++;
		return 0;
	}
	for (i = 0; i < u->n; i++) {
		if (memcmp(u->id[i], id, 4) == 0) {
			u->count[i]++;
			return 0;
		}
	}
	u->unknown++;
	return 0;
}

static int
key_list_prune(struct mg_args *a, struct mg_config *cfg, struct mg_store *st, int prune)
{
	struct mg_keyring	*ring;
	struct key_use		 use;
	char			 err[MG_ERRLEN], path[4096], hex[9];
	int			 i, rc = MG_EXIT_FAIL, removed = 0;

	if ((ring = calloc(1, sizeof(*ring))) == NULL)
		return MG_EXIT_FAIL;
	if (mg_keyring_load(cfg->master_key.path, ring, err, sizeof(err)) == -1) {
		fprintf(stderr, "mailgate: %s\n", err);
		goto out;
	}
	memset(&use, 0, sizeof(use));
	for (i = 0; i < ring->n; i++)
		memcpy(use.id[i], ring->keys[i].id, 4);
	use.n = ring->n;
	if (mg_store_account_list(st, NULL, key_use_cb, &use, err, sizeof(err)) == -1) {
		fprintf(stderr, "mailgate: store: %s\n", err);
		goto out;
	}
	if (a->json && !prune)
		fputs("[\n", stdout);
	for (i = 0; i < ring->n; i++) {
		mg_key_id_hex(ring->keys[i].id, hex);
		if (prune) {
			if (i == 0 || use.count[i] > 0)
				continue;
			if (key_path(path, sizeof(path), cfg->master_key.path, ring->keys[i].id) == -1 ||
			    unlink(path) == -1) {
				fprintf(stderr, "mailgate: cannot remove %s: %s\n", path, strerror(errno));
				goto out;
			}
			printf("removed key %s (%s)\n", hex, path);
			removed++;
			continue;
		}
		if (a->json)
			printf("%s  {\"id\": \"%s\", \"current\": %s, \"secrets\": %zu}", i > 0 ? ",\n" : "", hex,
			    i == 0 ? "true" : "false", use.count[i]);
		else
			printf("%s\t%s\tsecrets=%zu\n", hex, i == 0 ? "current" : "retired", use.count[i]);
	}
	if (a->json && !prune)
		fputs("\n]\n", stdout);
	if (use.unknown > 0)
		fprintf(stderr, "mailgate: %zu secrets are sealed under keys not in the keyring\n", use.unknown);
	if (prune && removed > 0) {
		snprintf(err, sizeof(err), "key prune removed=%d", removed);
		(void)mg_audit_admin(st, "", err);
	}
	rc = MG_EXIT_OK;
out:
	mg_keyring_wipe(ring);
	free(ring);
	return rc;
}

int
mg_cmd_key(struct mg_args *a)
{
	struct mg_config	*cfg;
	struct mg_store		*st;
	const char		*sub = a->npos > 0 ? a->pos[0] : "";
	int			 rc;

	if (a->npos != 1 || (strcmp(sub, "rotate") != 0 && strcmp(sub, "prune") != 0 && strcmp(sub, "list") != 0)) {
		fprintf(stderr, "mailgate key: see 'mailgate key --help'\n");
		return MG_EXIT_USAGE;
	}
	if ((cfg = admin_load_config(a, 0)) == NULL)
		return MG_EXIT_USAGE;
	if ((st = admin_open_store(cfg)) == NULL) {
		mg_config_free(cfg);
		return MG_EXIT_FAIL;
	}
	if (strcmp(sub, "rotate") == 0)
		rc = key_rotate(cfg, st);
	else
		rc = key_list_prune(a, cfg, st, strcmp(sub, "prune") == 0);
	mg_store_close(st);
	mg_config_free(cfg);
	return rc;
}

/* ---- audit ---- */

/* Seconds since the epoch, a date, a UTC time, or an age ("30m"); -1 when malformed. */
static time_t
parse_since(const char *s)
{
	struct tm	 tm;
	char		*end;
	long long	 v;
	const char	*p;

	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) != NULL && *p == '\0')
		return timegm(&tm);
	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%d", &tm)) != NULL && *p == '\0')
		return timegm(&tm);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		return -1;
	if (*end == '\0')
		return (time_t)v;
	if (end[1] != '\0' || v > 100L * 365 * 86400)
		return -1;
	switch (*end) {
	case 's': return time(NULL) - (time_t)v;
	case 'm': return time(NULL) - (time_t)v * 60;
	case 'h': return time(NULL) - (time_t)v * 3600;
	case 'd': return time(NULL) - (time_t)v * 86400;
	}
	return -1;
}

struct audit_print {
	struct mg_args	*a;
	int		 first;
};

static int
print_audit_cb(const struct mg_audit *r, void *arg)
{
	struct audit_print	*p = arg;
	char			 t[32];

	if (p->a->json) {
		printf("%s  {\"id\": %lld, \"time\": \"%s\", \"kind\": ", p->first ? "" : ",\n", (long long)r->id,
		    admin_time(r->ts, t, sizeof(t)));
		admin_json_str(stdout, r->kind);
		fputs(", \"user\": ", stdout);
		admin_json_str(stdout, r->user);
		fputs(", \"device\": ", stdout);
		admin_json_str(stdout, r->device);
		fputs(", \"protocol\": ", stdout);
		admin_json_str(stdout, r->proto);
		fputs(", \"client\": ", stdout);
		admin_json_str(stdout, r->client);
		fputs(", \"result\": ", stdout);
		admin_json_str(stdout, r->result);
		fputs(", \"detail\": ", stdout);
		admin_json_str(stdout, r->detail);
		fputs("}", stdout);
	} else
		printf("%s\t%s\tuser=%s\tdevice=%s\tprotocol=%s\tclient=%s\tresult=%s\t%s\n",
		    admin_time(r->ts, t, sizeof(t)), r->kind, r->user[0] ? r->user : "-",
		    r->device[0] ? r->device : "-", r->proto[0] ? r->proto : "-", r->client, r->result, r->detail);
	p->first = 0;
	return 0;
}

int
mg_cmd_audit(struct mg_args *a)
{
	struct mg_config	*cfg;
	struct mg_store		*st;
	struct audit_print	 p = { a, 1 };
	char			 err[MG_ERRLEN];
	time_t			 since = 0;
	int			 r;

	if (a->npos != 0) {
		fprintf(stderr, "mailgate audit: see 'mailgate audit --help'\n");
		return MG_EXIT_USAGE;
	}
	if (a->since != NULL && (since = parse_since(a->since)) == -1) {
		fprintf(stderr, "mailgate: --since: cannot read '%s' (see 'mailgate audit --help')\n", a->since);
		return MG_EXIT_USAGE;
	}
	if ((cfg = admin_load_config(a, 0)) == NULL)
		return MG_EXIT_USAGE;
	if ((st = admin_open_store(cfg)) == NULL) {
		mg_config_free(cfg);
		return MG_EXIT_FAIL;
	}
	if (a->json)
		fputs("[\n", stdout);
	r = mg_store_audit_list(st, a->user, since, print_audit_cb, &p, err, sizeof(err));
	if (a->json)
		fputs(p.first ? "]\n" : "\n]\n", stdout);
	if (r == -1)
		fprintf(stderr, "mailgate: store: %s\n", err);
	mg_store_close(st);
	mg_config_free(cfg);
	return r == 0 ? MG_EXIT_OK : MG_EXIT_FAIL;
}

/* ---- import ---- */

/*
 * One passwd-file line "user:{SCHEME}hash[:uid:gid:...]" to a crypt(3)
 * string. Returns 1 and fills hash, 0 for a line to skip quietly (blank,
 * comment), -1 with why for one that cannot be imported.
 */
static int
import_line(char *line, char **user, char *hash, size_t hlen, const char **why)
{
	char *colon, *pw, *end;

	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0' || line[0] == '#')
		return 0;
	if ((colon = strchr(line, ':')) == NULL || colon == line) {
		*why = "no user:password";
		return -1;
	}
	*colon = '\0';
	*user = line;
	pw = colon + 1;
	if ((end = strchr(pw, ':')) != NULL)
		*end = '\0';
	if (strncmp(pw, "{SHA512-CRYPT}", 14) == 0)
		pw += 14;
	else if (strncmp(pw, "{BLF-CRYPT}", 11) == 0)
		pw += 11;
	else if (strncmp(pw, "{CRYPT}", 7) == 0)
		pw += 7;
	else if (pw[0] == '{') {
		*why = "unsupported password scheme (only crypt(3) hashes can be kept)";
		return -1;
	}
	if (pw[0] == '\0' || strlen(pw) >= hlen) {
		*why = "empty or overlong hash";
		return -1;
	}
	/* Only what libxcrypt can verify: a probe with a wrong password must not error. */
	if (mg_password_verify("\x01probe", pw) == -1) {
		*why = "not a hash libxcrypt can verify";
		return -1;
	}
	snprintf(hash, hlen, "%s", pw);
	return 1;
}

int
mg_cmd_import(struct mg_args *a)
{
	struct mg_config	*cfg;
	struct mg_store		*st;
	FILE			*f;
	char			 line[2048], hash[MG_HASH_MAX], err[MG_ERRLEN], *user;
	const char		*why;
	int			 r, lineno = 0, added = 0, existed = 0, bad = 0, rc = MG_EXIT_OK;

	if (a->npos != 2 || strcmp(a->pos[0], "dovecot-passwd") != 0) {
		fprintf(stderr, "mailgate import: see 'mailgate import --help'\n");
		return MG_EXIT_USAGE;
	}
	if ((f = fopen(a->pos[1], "r")) == NULL) {
		fprintf(stderr, "mailgate: %s: %s\n", a->pos[1], strerror(errno));
		return MG_EXIT_NOTFOUND;
	}
	if ((cfg = admin_load_config(a, 0)) == NULL) {
		fclose(f);
		return MG_EXIT_USAGE;
	}
	if ((st = admin_open_store(cfg)) == NULL) {
		fclose(f);
		mg_config_free(cfg);
		return MG_EXIT_FAIL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		r = import_line(line, &user, hash, sizeof(hash), &why);
		if (r == 0)
			continue;
		if (r == 1 && !admin_valid_name("a user name", user)) {
			r = -1;
			why = "invalid user name";
		}
		if (r == -1) {
			fprintf(stderr, "%s:%d: skipped: %s\n", a->pos[1], lineno, why);
			bad++;
			continue;
		}
		r = mg_store_user_add(st, user, hash, err, sizeof(err));
		OPENSSL_cleanse(hash, sizeof(hash));
		if (r == -1) {
			fprintf(stderr, "mailgate: store: %s\n", err);
			rc = MG_EXIT_FAIL;
			break;
		}
		if (r == 1) {
			fprintf(stderr, "%s:%d: skipped: user %s exists already\n", a->pos[1], lineno, user);
			existed++;
			continue;
		}
		added++;
		snprintf(err, sizeof(err), "user import from=dovecot-passwd");
		(void)mg_audit_admin(st, user, err);
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	printf("imported %d users (%d existed, %d lines skipped)\n", added, existed, bad);
	mg_store_close(st);
	mg_config_free(cfg);
	return rc;
}
