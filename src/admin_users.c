/*
 * admin_users.c - `mailgate user`, `account` and `device`: the people, the
 * provider accounts their devices are relayed to, and the devices' own
 * passwords. Every change is also written to the audit trail, never with a
 * secret in it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "admin_impl.h"
#include "audit.h"
#include "config.h"
#include "crypto.h"
#include "keys.h"
#include "store.h"

/* What each command holds open; released by admin_done(). */
struct admin_ctx {
	struct mg_config	*cfg;
	struct mg_store		*st;
	char			 err[MG_ERRLEN];
	int			 first;		/* JSON lists: no comma before the first element */
};

static int
admin_start(struct mg_args *a, struct admin_ctx *x)
{
	memset(x, 0, sizeof(*x));
	x->first = 1;
	if ((x->cfg = admin_load_config(a, 0)) == NULL)
		return MG_EXIT_USAGE;
	if ((x->st = admin_open_store(x->cfg)) == NULL)
		return MG_EXIT_FAIL;
	return MG_EXIT_OK;
}

static int
admin_done(struct admin_ctx *x, int rc)
{
	if (x->st != NULL)
		mg_store_close(x->st);
	mg_config_free(x->cfg);
	return rc;
}

/* A store error (-1) is a failure; the caller handles 1 and 2. */
static int
admin_store_failed(struct admin_ctx *x)
{
	fprintf(stderr, "mailgate: store: %s\n", x->err);
	return MG_EXIT_FAIL;
}

static void
admin_audit(struct admin_ctx *x, const char *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
admin_audit(struct admin_ctx *x, const char *user, const char *fmt, ...)
{
	char	detail[256];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	(void)mg_audit_admin(x->st, user, detail);
}

static void
json_sep(struct admin_ctx *x)
{
	if (!x->first)
		fputs(",\n", stdout);
	x->first = 0;
}

/* ---- users ---- */

static int
print_user_cb(const struct mg_user *u, void *arg)
{
	struct mg_args	*a = ((void **)arg)[0];
	struct admin_ctx *x = ((void **)arg)[1];
	char		 t[32];

	if (a->json) {
		json_sep(x);
		fputs("  {\"name\": ", stdout);
		admin_json_str(stdout, u->name);
		printf(", \"created\": \"%s\", \"disabled\": %s, \"password_login\": %s}",
		    admin_time(u->created, t, sizeof(t)), u->disabled ? "true" : "false",
		    u->password_login ? "true" : "false");
		return 0;
	}
	printf("%s\tcreated=%s%s%s\n", u->name, admin_time(u->created, t, sizeof(t)),
	    u->disabled ? "\tdisabled" : "", u->password_login ? "" : "\tpassword-login=off");
	return 0;
}

static int
parse_onoff(const char *s)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "true") == 0)
		return 1;
	if (strcmp(s, "off") == 0 || strcmp(s, "no") == 0 || strcmp(s, "false") == 0)
		return 0;
	return -1;
}

int
mg_cmd_user(struct mg_args *a)
{
	struct admin_ctx	 x;
	char			 pw[MG_NAME_MAX], hash[MG_HASH_MAX];
	const char		*sub = a->npos > 0 ? a->pos[0] : "", *user = a->npos > 1 ? a->pos[1] : NULL;
	int			 rc, r, flag = -1;
	void			*cbarg[2];

	memset(hash, 0, sizeof(hash));
	if (!((strcmp(sub, "list") == 0 && a->npos == 1) ||
	    ((strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0 || strcmp(sub, "del") == 0 ||
	    strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) && a->npos == 2) ||
	    (strcmp(sub, "password-login") == 0 && a->npos == 3 && (flag = parse_onoff(a->pos[2])) != -1))) {
		fprintf(stderr, "%s", "mailgate user: see 'mailgate user --help'\n");
		return MG_EXIT_USAGE;
	}
	if (user != NULL && !admin_valid_name("a user name", user))
		return MG_EXIT_USAGE;
	if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
		if (admin_read_password(a, "New gateway password", 1, pw, sizeof(pw)) == -1)
			return MG_EXIT_FAIL;
		r = mg_password_hash(pw, hash, sizeof(hash), x.err, sizeof(x.err));
		OPENSSL_cleanse(pw, sizeof(pw));
		if (r == -1) {
			fprintf(stderr, "mailgate: %s\n", x.err);
			return MG_EXIT_FAIL;
		}
	}
	if ((rc = admin_start(a, &x)) != MG_EXIT_OK)
		return admin_done(&x, rc);
	if (strcmp(sub, "list") == 0) {
		cbarg[0] = a;
		cbarg[1] = &x;
		if (a->json)
			fputs("[\n", stdout);
		r = mg_store_user_list(x.st, print_user_cb, cbarg, x.err, sizeof(x.err));
		if (a->json)
			fputs(x.first ? "]\n" : "\n]\n", stdout);
		rc = r == 0 ? MG_EXIT_OK : admin_store_failed(&x);
		goto out;
	}
	if (strcmp(sub, "add") == 0)
		r = mg_store_user_add(x.st, user, hash, x.err, sizeof(x.err));
	else if (strcmp(sub, "passwd") == 0)
		r = mg_store_user_set_hash(x.st, user, hash, x.err, sizeof(x.err));
	else if (strcmp(sub, "del") == 0)
		r = mg_store_user_del(x.st, user, x.err, sizeof(x.err));
	else if (strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0)
		r = mg_store_user_set_flags(x.st, user, strcmp(sub, "disable") == 0, -1, x.err, sizeof(x.err));
	else
		r = mg_store_user_set_flags(x.st, user, -1, flag, x.err, sizeof(x.err));
	if (r == -1) {
		rc = admin_store_failed(&x);
		goto out;
	}
	if (r == 1 && strcmp(sub, "add") == 0) {
		fprintf(stderr, "mailgate: user %s already exists (use 'user passwd')\n", user);
		rc = MG_EXIT_EXISTS;
		goto out;
	}
	if (r == 1) {
		fprintf(stderr, "mailgate: no user %s\n", user);
		rc = MG_EXIT_NOTFOUND;
		goto out;
	}
	if (strcmp(sub, "password-login") == 0)
		admin_audit(&x, user, "user password-login %s", flag ? "on" : "off");
	else
		admin_audit(&x, user, "user %s", sub);
	rc = MG_EXIT_OK;
out:
	OPENSSL_cleanse(hash, sizeof(hash));
	return admin_done(&x, rc);
}

/* ---- accounts ---- */

static int
print_account_cb(const struct mg_account *acct, void *arg)
{
	struct mg_args	*a = ((void **)arg)[0];
	struct admin_ctx *x = ((void **)arg)[1];
	const char	*kind = acct->kind == MG_SECRET_PASSWORD ? "app-password" : "oauth2-refresh-token";
	char		 t[32], id[9] = "-";
	uint8_t		 kid[4];

	if (mg_sealed_key_id(acct->sealed, acct->sealed_len, kid) == 0)
		mg_key_id_hex(kid, id);
	if (a->json) {
		json_sep(x);
		fputs("  {\"user\": ", stdout);
		admin_json_str(stdout, acct->user);
		fputs(", \"provider\": ", stdout);
		admin_json_str(stdout, acct->provider);
		fputs(", \"login\": ", stdout);
		admin_json_str(stdout, acct->login);
		printf(", \"secret\": \"%s\", \"key_id\": \"%s\", \"updated\": \"%s\"}", kind, id,
		    admin_time(acct->updated, t, sizeof(t)));
		return 0;
	}
	printf("%s\t%s\tlogin=%s\tsecret=%s\tkey=%s\tupdated=%s\n", acct->user, acct->provider, acct->login,
	    kind, id, admin_time(acct->updated, t, sizeof(t)));
	return 0;
}

static int
account_set(struct mg_args *a, struct admin_ctx *x)
{
	struct mg_master_key	 key;
	struct mg_account	*acct;
	char			 pw[MG_NAME_MAX];
	uint8_t			 aad[2 * MG_NAME_MAX + 16];
	int			 aadlen, rc = MG_EXIT_FAIL, r;
	long			 n;

	if (a->login == NULL) {
		fprintf(stderr, "mailgate: account set needs --login UPSTREAM_LOGIN\n");
		return MG_EXIT_USAGE;
	}
	if (!admin_valid_name("the login", a->login))
		return MG_EXIT_USAGE;
	if (mg_config_provider(x->cfg, a->pos[2]) == NULL) {
		fprintf(stderr, "mailgate: no provider '%s' in %s\n", a->pos[2], a->config);
		return MG_EXIT_NOTFOUND;
	}
	if ((acct = calloc(1, sizeof(*acct))) == NULL)
		return MG_EXIT_FAIL;
	memset(&key, 0, sizeof(key));
	if (mg_master_key_load(x->cfg->master_key.path, &key, x->err, sizeof(x->err)) == -1) {
		fprintf(stderr, "mailgate: %s\n", x->err);
		goto out;
	}
	if (admin_read_password(a, "Provider app password", 0, pw, sizeof(pw)) == -1)
		goto out;
	snprintf(acct->user, sizeof(acct->user), "%s", a->pos[1]);
	snprintf(acct->provider, sizeof(acct->provider), "%s", a->pos[2]);
	snprintf(acct->login, sizeof(acct->login), "%s", a->login);
	acct->kind = MG_SECRET_PASSWORD;
	aadlen = mg_account_aad(acct->user, acct->provider, (int)acct->kind, aad, sizeof(aad));
	n = aadlen < 0 ? -1 : mg_seal(&key, aad, (size_t)aadlen, (const uint8_t *)pw, strlen(pw),
	    acct->sealed, sizeof(acct->sealed), x->err, sizeof(x->err));
	OPENSSL_cleanse(pw, sizeof(pw));
	if (n < 0) {
		fprintf(stderr, "mailgate: cannot encrypt the secret: %s\n", aadlen < 0 ? "names too long" : x->err);
		goto out;
	}
	acct->sealed_len = (size_t)n;
	r = mg_store_account_set(x->st, acct, x->err, sizeof(x->err));
	if (r == 1) {
		fprintf(stderr, "mailgate: no user %s (add it with 'user add')\n", a->pos[1]);
		rc = MG_EXIT_NOTFOUND;
	} else if (r == -1)
		rc = admin_store_failed(x);
	else {
		admin_audit(x, acct->user, "account set provider=%s login=%s", acct->provider, acct->login);
		rc = MG_EXIT_OK;
	}
out:
	mg_master_key_wipe(&key);
	OPENSSL_cleanse(acct, sizeof(*acct));
	free(acct);
	return rc;
}

int
mg_cmd_account(struct mg_args *a)
{
	struct admin_ctx	 x;
	const char		*sub = a->npos > 0 ? a->pos[0] : "";
	int			 rc, r;
	void			*cbarg[2];

	if (!((strcmp(sub, "set") == 0 && a->npos == 3) || (strcmp(sub, "del") == 0 && a->npos == 3) ||
	    (strcmp(sub, "list") == 0 && a->npos <= 2))) {
		fprintf(stderr, "mailgate account: see 'mailgate account --help'\n");
		return MG_EXIT_USAGE;
	}
	if (a->npos >= 2 && !admin_valid_name("a user name", a->pos[1]))
		return MG_EXIT_USAGE;
	if ((rc = admin_start(a, &x)) != MG_EXIT_OK)
		return admin_done(&x, rc);
	if (strcmp(sub, "set") == 0)
		return admin_done(&x, account_set(a, &x));
	if (strcmp(sub, "del") == 0) {
		r = mg_store_account_del(x.st, a->pos[1], a->pos[2], x.err, sizeof(x.err));
		if (r == -1)
			return admin_done(&x, admin_store_failed(&x));
		if (r == 1) {
			fprintf(stderr, "mailgate: user %s has no account at %s\n", a->pos[1], a->pos[2]);
			return admin_done(&x, MG_EXIT_NOTFOUND);
		}
		admin_audit(&x, a->pos[1], "account del provider=%s", a->pos[2]);
		return admin_done(&x, MG_EXIT_OK);
	}
	cbarg[0] = a;
	cbarg[1] = &x;
	if (a->json)
		fputs("[\n", stdout);
	r = mg_store_account_list(x.st, a->npos == 2 ? a->pos[1] : NULL, print_account_cb, cbarg, x.err,
	    sizeof(x.err));
	if (a->json)
		fputs(x.first ? "]\n" : "\n]\n", stdout);
	return admin_done(&x, r == 0 ? MG_EXIT_OK : admin_store_failed(&x));
}

/* ---- devices ---- */

/* "imap,smtp" -> MG_SCOPE_* bits; 0 when malformed (printed). */
static unsigned
parse_scopes(const char *s)
{
	unsigned	 bits = 0;
	const char	*p = s, *e;
	size_t		 n;

	while (*p != '\0') {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == 4 && strncasecmp(p, "imap", 4) == 0)
			bits |= MG_SCOPE_IMAP;
		else if (n == 4 && strncasecmp(p, "pop3", 4) == 0)
			bits |= MG_SCOPE_POP3;
		else if (n == 4 && strncasecmp(p, "smtp", 4) == 0)
			bits |= MG_SCOPE_SMTP;
		else {
			fprintf(stderr, "mailgate: unknown scope '%.*s' (imap, pop3, smtp)\n", (int)n, p);
			return 0;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (bits == 0)
		fprintf(stderr, "mailgate: --scopes needs at least one of imap, pop3, smtp\n");
	return bits;
}

static const char *
scopes_str(unsigned bits, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", bits & MG_SCOPE_IMAP ? "imap" : "",
	    (bits & MG_SCOPE_IMAP) && (bits & (MG_SCOPE_POP3 | MG_SCOPE_SMTP)) ? "," : "",
	    bits & MG_SCOPE_POP3 ? "pop3" : "", (bits & MG_SCOPE_POP3) && (bits & MG_SCOPE_SMTP) ? "," : "",
	    bits & MG_SCOPE_SMTP ? "smtp" : "");
	return buf;
}

static int
valid_label(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= MG_LABEL_MAX)
		goto bad;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			goto bad;
	return 1;
bad:
	fprintf(stderr, "mailgate: a device label is 1 to %d of A-Z a-z 0-9 _ . -\n", MG_LABEL_MAX - 1);
	return 0;
}

static int
print_device_cb(const struct mg_device *d, void *arg)
{
	struct mg_args	*a = ((void **)arg)[0];
	struct admin_ctx *x = ((void **)arg)[1];
	char		 t1[32], t2[32], sc[20];

	scopes_str(d->scopes, sc, sizeof(sc));
	if (a->json) {
		json_sep(x);
		fputs("  {\"user\": ", stdout);
		admin_json_str(stdout, d->user);
		fputs(", \"label\": ", stdout);
		admin_json_str(stdout, d->label);
		printf(", \"scopes\": \"%s\", \"account\": ", sc);
		admin_json_str(stdout, d->account);
		printf(", \"created\": \"%s\", \"last_used\": \"%s\", \"last_address\": ",
		    admin_time(d->created, t1, sizeof(t1)), admin_time(d->last_used, t2, sizeof(t2)));
		admin_json_str(stdout, d->last_addr);
		fputs("}", stdout);
		return 0;
	}
	printf("%s\t%s\tscopes=%s\taccount=%s\tcreated=%s\tlast_used=%s\tlast_address=%s\n", d->user, d->label,
	    sc, d->account[0] ? d->account : "-", admin_time(d->created, t1, sizeof(t1)),
	    admin_time(d->last_used, t2, sizeof(t2)), d->last_addr[0] ? d->last_addr : "-");
	return 0;
}

static int
device_add(struct mg_args *a, struct admin_ctx *x)
{
	struct mg_master_key	dk;
	struct mg_device	d;
	char			pw[MG_DEVICE_PW_LEN + 1], sc[20];
	int			r, rc = MG_EXIT_FAIL;

	memset(&d, 0, sizeof(d));
	memset(&dk, 0, sizeof(dk));
	snprintf(d.user, sizeof(d.user), "%s", a->pos[1]);
	snprintf(d.label, sizeof(d.label), "%s", a->pos[2]);
	d.scopes = a->scopes != NULL ? parse_scopes(a->scopes) : MG_SCOPE_ALL;
	if (d.scopes == 0)
		return MG_EXIT_USAGE;
	if (a->account != NULL) {
		if (mg_config_provider(x->cfg, a->account) == NULL) {
			fprintf(stderr, "mailgate: no provider '%s' in %s\n", a->account, a->config);
			return MG_EXIT_NOTFOUND;
		}
		snprintf(d.account, sizeof(d.account), "%s", a->account);
	}
	if (mg_master_key_load(x->cfg->device_key.path, &dk, x->err, sizeof(x->err)) == -1) {
		fprintf(stderr, "mailgate: device key: %s\n", x->err);
		return MG_EXIT_FAIL;
	}
	if (mg_device_password(pw, sizeof(pw)) == -1 ||
	    mg_device_hash(&dk, d.user, strlen(d.user), pw, strlen(pw), d.hash) == -1) {
		fprintf(stderr, "mailgate: cannot make a device password\n");
		goto out;
	}
	r = mg_store_device_add(x->st, &d, x->err, sizeof(x->err));
	if (r == -1) {
		rc = admin_store_failed(x);
		goto out;
	}
	if (r == 1) {
		fprintf(stderr, "mailgate: no user %s\n", d.user);
		rc = MG_EXIT_NOTFOUND;
		goto out;
	}
	if (r == 2) {
		fprintf(stderr, "mailgate: user %s has a device %s already (revoke it first)\n", d.user, d.label);
		rc = MG_EXIT_EXISTS;
		goto out;
	}
	admin_audit(x, d.user, "device add label=%s scopes=%s%s%s", d.label, scopes_str(d.scopes, sc, sizeof(sc)),
	    d.account[0] ? " account=" : "", d.account);
	/* Shown once: only the keyed hash is stored. */
	if (a->json) {
		fputs("{\"user\": ", stdout);
		admin_json_str(stdout, d.user);
		fputs(", \"label\": ", stdout);
		admin_json_str(stdout, d.label);
		printf(", \"scopes\": \"%s\", \"password\": \"%s\"}\n", sc, pw);
	} else {
		printf("%s\n", pw);
		fprintf(stderr, "device %s of %s added (scopes %s); the password above is shown only once\n",
		    d.label, d.user, sc);
	}
	fflush(stdout);
	rc = MG_EXIT_OK;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	mg_master_key_wipe(&dk);
	return rc;
}

int
mg_cmd_device(struct mg_args *a)
{
	struct admin_ctx	 x;
	const char		*sub = a->npos > 0 ? a->pos[0] : "";
	int			 rc, r;
	void			*cbarg[2];

	if (!((strcmp(sub, "add") == 0 && a->npos == 3) || (strcmp(sub, "revoke") == 0 && a->npos == 3) ||
	    (strcmp(sub, "list") == 0 && a->npos <= 2))) {
		fprintf(stderr, "mailgate device: see 'mailgate device --help'\n");
		return MG_EXIT_USAGE;
	}
	if (a->npos >= 2 && !admin_valid_name("a user name", a->pos[1]))
		return MG_EXIT_USAGE;
	if (a->npos == 3 && !valid_label(a->pos[2]))
		return MG_EXIT_USAGE;
	if ((rc = admin_start(a, &x)) != MG_EXIT_OK)
		return admin_done(&x, rc);
	if (strcmp(sub, "add") == 0)
		return admin_done(&x, device_add(a, &x));
	if (strcmp(sub, "revoke") == 0) {
		r = mg_store_device_revoke(x.st, a->pos[1], a->pos[2], x.err, sizeof(x.err));
		if (r == -1)
			return admin_done(&x, admin_store_failed(&x));
		if (r == 1) {
			fprintf(stderr, "mailgate: user %s has no device %s\n", a->pos[1], a->pos[2]);
			return admin_done(&x, MG_EXIT_NOTFOUND);
		}
		admin_audit(&x, a->pos[1], "device revoke label=%s", a->pos[2]);
		return admin_done(&x, MG_EXIT_OK);
	}
	cbarg[0] = a;
	cbarg[1] = &x;
	if (a->json)
		fputs("[\n", stdout);
	r = mg_store_device_list(x.st, a->npos == 2 ? a->pos[1] : NULL, print_device_cb, cbarg, x.err,
	    sizeof(x.err));
	if (a->json)
		fputs(x.first ? "]\n" : "\n]\n", stdout);
	return admin_done(&x, r == 0 ? MG_EXIT_OK : admin_store_failed(&x));
}
