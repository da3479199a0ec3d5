/*
 * store.c - the public store interface: argument checks, then dispatch to
 * the backend's ops table (see store_impl.h).
 *
 * The checks live here rather than in each backend so that every backend
 * enforces the same limits, and so that a value the gateway could not read
 * back into its fixed-size structs can never be written in the first place.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_impl.h"

static int	store_ok(struct mg_store *, char *, size_t);
static int	store_name_ok(const char *, const char *, char *, size_t);
static int	store_hash_ok(const char *, char *, size_t);
static int	store_account_ok(const struct mg_account *, char *, size_t);
static int	store_sealed_ok(const uint8_t *, size_t, const char *, char *, size_t);
static int	store_flag_ok(int, const char *, char *, size_t);
static int	store_label_ok(const char *, char *, size_t);
static int	store_devhash_ok(const char *, char *, size_t);
static int	store_text_ok(const char *, size_t, int, const char *, char *, size_t);
static int	store_device_ok(const struct mg_device *, char *, size_t);
static int	store_audit_ok(const struct mg_audit *, char *, size_t);

void
mg_store_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct mg_store *
mg_store_new(const struct mg_store_ops *ops, void *impl, char *err, size_t errlen)
{
	struct mg_store	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		mg_store_err(err, errlen, "%s store: out of memory", ops->name);
		ops->close(impl);
		return NULL;
	}
	st->ops = ops;
	st->impl = impl;
	return st;
}

void
mg_store_close(struct mg_store *st)
{
	if (st == NULL)
		return;
	st->ops->close(st->impl);
	free(st);
}

int
mg_store_schema_version(struct mg_store *st)
{
	if (st == NULL)
		return -1;
	return st->ops->schema_version(st->impl);
}

/* A store handle must exist; the public functions all start here. */
static int
store_ok(struct mg_store *st, char *err, size_t errlen)
{
	if (st == NULL) {
		mg_store_err(err, errlen, "store: not open");
		return 0;
	}
	return 1;
}

/*
 * Names must fit the MG_NAME_MAX arrays of struct mg_user and mg_account,
 * NUL included. strnlen() also stops an unterminated array in a caller's
 * struct from being read past its end.
 */
static int
store_name_ok(const char *s, const char *what, char *err, size_t errlen)
{
	if (s == NULL || *s == '\0') {
		mg_store_err(err, errlen, "%s is empty", what);
		return 0;
	}
	if (strnlen(s, MG_NAME_MAX) >= MG_NAME_MAX) {
		mg_store_err(err, errlen, "%s is too long (at most %d bytes)", what, MG_NAME_MAX - 1);
		return 0;
	}
	return 1;
}

/* A hash may be empty or "*" (a locked user): only its length is checked. */
static int
store_hash_ok(const char *hash, char *err, size_t errlen)
{
	if (hash == NULL) {
		mg_store_err(err, errlen, "password hash is missing");
		return 0;
	}
	if (strnlen(hash, MG_HASH_MAX) >= MG_HASH_MAX) {
		mg_store_err(err, errlen, "password hash is too long (at most %d bytes)", MG_HASH_MAX - 1);
		return 0;
	}
	return 1;
}

static int
store_account_ok(const struct mg_account *a, char *err, size_t errlen)
{
	if (a == NULL) {
		mg_store_err(err, errlen, "account is missing");
		return 0;
	}
	if (!store_name_ok(a->user, "user name", err, errlen) ||
	    !store_name_ok(a->provider, "provider name", err, errlen) ||
	    !store_name_ok(a->login, "upstream login", err, errlen))
		return 0;
	if (a->kind != MG_SECRET_PASSWORD && a->kind != MG_SECRET_OAUTH2_REFRESH) {
		mg_store_err(err, errlen, "unknown secret kind %d", (int)a->kind);
		return 0;
	}
	return store_sealed_ok(a->sealed, a->sealed_len, "sealed secret", err, errlen);
}

/* A sealed secret: 1 to MG_SEALED_MAX bytes, which fits struct mg_account. */
static int
store_sealed_ok(const uint8_t *sealed, size_t len, const char *what, char *err, size_t errlen)
{
	if (sealed == NULL) {
		mg_store_err(err, errlen, "%s is missing", what);
		return 0;
	}
	if (len == 0 || len > MG_SEALED_MAX) {
		mg_store_err(err, errlen, "%s has %zu bytes (1 to %d allowed)", what, len, MG_SEALED_MAX);
		return 0;
	}
	return 1;
}

/* A flag of mg_store_user_set_flags(): 0, 1, or -1 for "leave it as it is". */
static int
store_flag_ok(int v, const char *what, char *err, size_t errlen)
{
	if (v < -1 || v > 1) {
		mg_store_err(err, errlen, "%s flag is %d (0, 1 or -1 allowed)", what, v);
		return 0;
	}
	return 1;
}

/*
 * Device labels are [A-Za-z0-9_.-]{1,63}. They appear in logs, audit
 * records and admin commands, so they are kept to characters that need no
 * quoting anywhere. The ranges are spelled out rather than left to
 * isalnum(), whose answer depends on the locale.
 */
static int
store_label_ok(const char *label, char *err, size_t errlen)
{
	const char	*p;
	size_t		 len;

	if (label == NULL || *label == '\0') {
		mg_store_err(err, errlen, "device label is empty");
		return 0;
	}
	if ((len = strnlen(label, MG_LABEL_MAX)) >= MG_LABEL_MAX) {
		mg_store_err(err, errlen, "device label is too long (at most %d bytes)",
		    MG_LABEL_MAX - 1);
		return 0;
	}
	for (p = label; p < label + len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-')
			continue;
		mg_store_err(err, errlen, "device label has a character other than A-Z a-z 0-9 _ . -");
		return 0;
	}
	return 1;
}

/*
 * A device password hash is exactly MG_DEVHASH_LEN lower-case hex digits.
 * One spelling only, because the store finds a device by comparing hashes
 * as strings: an upper-case copy of a valid hash would never match.
 */
static int
store_devhash_ok(const char *hash, char *err, size_t errlen)
{
	size_t	i;

	if (hash == NULL) {
		mg_store_err(err, errlen, "device password hash is missing");
		return 0;
	}
	if (strnlen(hash, MG_DEVHASH_LEN + 1) != MG_DEVHASH_LEN) {
		mg_store_err(err, errlen, "device password hash is not %d hex digits", MG_DEVHASH_LEN);
		return 0;
	}
	for (i = 0; i < MG_DEVHASH_LEN; i++) {
		if ((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f'))
			continue;
		mg_store_err(err, errlen, "device password hash is not %d lower-case hex digits",
		    MG_DEVHASH_LEN);
		return 0;
	}
	return 1;
}

/*
 * A free-text field (audit records, client addresses) must end within its
 * fixed-size array in the struct it is read back into, and hold no control
 * bytes: these fields are printed by the admin command and fed to logs, and
 * a newline or an escape sequence there would forge lines or drive the
 * terminal. Too long is an error, never a silent cut: a cut audit record
 * says something other than what happened.
 */
static int
store_text_ok(const char *s, size_t size, int empty_ok, const char *what, char *err, size_t errlen)
{
	const unsigned char	*p;
	size_t			 len;

	if (s == NULL) {
		mg_store_err(err, errlen, "%s is missing", what);
		return 0;
	}
	if ((len = strnlen(s, size)) >= size) {
		mg_store_err(err, errlen, "%s is too long (at most %zu bytes)", what, size - 1);
		return 0;
	}
	if (len == 0 && !empty_ok) {
		mg_store_err(err, errlen, "%s is empty", what);
		return 0;
	}
	for (p = (const unsigned char *)s; p < (const unsigned char *)s + len; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			mg_store_err(err, errlen, "%s has a control byte (0x%02x)", what, *p);
			return 0;
		}
	}
	return 1;
}

/*
 * Only the fields a caller chooses are checked: created, last_used and
 * last_addr of a new device are set by the store (now, 0 and "").
 */
static int
store_device_ok(const struct mg_device *d, char *err, size_t errlen)
{
	if (d == NULL) {
		mg_store_err(err, errlen, "device is missing");
		return 0;
	}
	if (!store_name_ok(d->user, "user name", err, errlen) ||
	    !store_label_ok(d->label, err, errlen) || !store_devhash_ok(d->hash, err, errlen))
		return 0;
	if (d->scopes == 0 || (d->scopes & ~MG_SCOPE_ALL) != 0) {
		mg_store_err(err, errlen,
		    "device scopes 0x%x are not a non-empty set of imap, pop3, smtp", d->scopes);
		return 0;
	}
	/* "" binds the device to the user's default account. */
	if (strnlen(d->account, MG_NAME_MAX) != 0 &&
	    !store_name_ok(d->account, "device account", err, errlen))
		return 0;
	return 1;
}

static int
store_audit_ok(const struct mg_audit *a, char *err, size_t errlen)
{
	if (a == NULL) {
		mg_store_err(err, errlen, "audit record is missing");
		return 0;
	}
	if (a->ts < 0) {
		mg_store_err(err, errlen, "audit record time is negative");
		return 0;
	}
	return store_text_ok(a->kind, sizeof(a->kind), 0, "audit kind", err, errlen) &&
	    store_text_ok(a->user, sizeof(a->user), 1, "audit user", err, errlen) &&
	    store_text_ok(a->device, sizeof(a->device), 1, "audit device", err, errlen) &&
	    store_text_ok(a->proto, sizeof(a->proto), 1, "audit protocol", err, errlen) &&
	    store_text_ok(a->client, sizeof(a->client), 1, "audit client", err, errlen) &&
	    store_text_ok(a->result, sizeof(a->result), 0, "audit result", err, errlen) &&
	    store_text_ok(a->detail, sizeof(a->detail), 1, "audit detail", err, errlen);
}

int
mg_store_user_add(struct mg_store *st, const char *user, const char *hash, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_hash_ok(hash, err, errlen))
		return -1;
	return st->ops->user_add(st->impl, user, hash, err, errlen);
}

int
mg_store_user_set_hash(struct mg_store *st, const char *user, const char *hash, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_hash_ok(hash, err, errlen))
		return -1;
	return st->ops->user_set_hash(st->impl, user, hash, err, errlen);
}

int
mg_store_user_del(struct mg_store *st, const char *user, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen))
		return -1;
	return st->ops->user_del(st->impl, user, err, errlen);
}

int
mg_store_user_get(struct mg_store *st, const char *user, struct mg_user *out, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen))
		return -1;
	if (out == NULL) {
		mg_store_err(err, errlen, "user_get: no output given");
		return -1;
	}
	return st->ops->user_get(st->impl, user, out, err, errlen);
}

int
mg_store_user_list(struct mg_store *st, mg_user_cb cb, void *arg, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen))
		return -1;
	if (cb == NULL) {
		mg_store_err(err, errlen, "user_list: no callback given");
		return -1;
	}
	return st->ops->user_list(st->impl, cb, arg, err, errlen);
}

int
mg_store_account_set(struct mg_store *st, const struct mg_account *a, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_account_ok(a, err, errlen))
		return -1;
	return st->ops->account_set(st->impl, a, err, errlen);
}

int
mg_store_account_get(struct mg_store *st, const char *user, const char *provider,
    struct mg_account *out, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    (provider != NULL && !store_name_ok(provider, "provider name", err, errlen)))
		return -1;
	if (out == NULL) {
		mg_store_err(err, errlen, "account_get: no output given");
		return -1;
	}
	return st->ops->account_get(st->impl, user, provider, out, err, errlen);
}

int
mg_store_account_del(struct mg_store *st, const char *user, const char *provider, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_name_ok(provider, "provider name", err, errlen))
		return -1;
	return st->ops->account_del(st->impl, user, provider, err, errlen);
}

int
mg_store_account_list(struct mg_store *st, const char *user, mg_account_cb cb, void *arg,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) ||
	    (user != NULL && !store_name_ok(user, "user name", err, errlen)))
		return -1;
	if (cb == NULL) {
		mg_store_err(err, errlen, "account_list: no callback given");
		return -1;
	}
	return st->ops->account_list(st->impl, user, cb, arg, err, errlen);
}

int
mg_store_account_reseal(struct mg_store *st, const char *user, const char *provider,
    const uint8_t *old, size_t oldlen, const uint8_t *sealed, size_t sealedlen, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_name_ok(provider, "provider name", err, errlen) ||
	    !store_sealed_ok(old, oldlen, "old sealed secret", err, errlen) ||
	    !store_sealed_ok(sealed, sealedlen, "new sealed secret", err, errlen))
		return -1;
	return st->ops->account_reseal(st->impl, user, provider, old, oldlen, sealed, sealedlen,
	    err, errlen);
}

int
mg_store_user_set_flags(struct mg_store *st, const char *user, int disabled, int password_login,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_flag_ok(disabled, "disabled", err, errlen) ||
	    !store_flag_ok(password_login, "password_login", err, errlen))
		return -1;
	return st->ops->user_set_flags(st->impl, user, disabled, password_login, err, errlen);
}

int
mg_store_device_add(struct mg_store *st, const struct mg_device *d, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_device_ok(d, err, errlen))
		return -1;
	return st->ops->device_add(st->impl, d, err, errlen);
}

int
mg_store_device_find(struct mg_store *st, const char *user, const char *hash, struct mg_device *out,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_devhash_ok(hash, err, errlen))
		return -1;
	if (out == NULL) {
		mg_store_err(err, errlen, "device_find: no output given");
		return -1;
	}
	return st->ops->device_find(st->impl, user, hash, out, err, errlen);
}

int
mg_store_device_get(struct mg_store *st, const char *user, const char *label, struct mg_device *out,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_label_ok(label, err, errlen))
		return -1;
	if (out == NULL) {
		mg_store_err(err, errlen, "device_get: no output given");
		return -1;
	}
	return st->ops->device_get(st->impl, user, label, out, err, errlen);
}

int
mg_store_device_revoke(struct mg_store *st, const char *user, const char *label,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_label_ok(label, err, errlen))
		return -1;
	return st->ops->device_revoke(st->impl, user, label, err, errlen);
}

/* `when` must be a real time: last_used 0 means "never used". */
int
mg_store_device_touch(struct mg_store *st, const char *user, const char *label, time_t when,
    const char *addr, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_name_ok(user, "user name", err, errlen) ||
	    !store_label_ok(label, err, errlen) ||
	    !store_text_ok(addr, MG_ADDR_MAX, 1, "client address", err, errlen))
		return -1;
	if (when <= 0) {
		mg_store_err(err, errlen, "device_touch: time %lld is not after the epoch",
		    (long long)when);
		return -1;
	}
	return st->ops->device_touch(st->impl, user, label, when, addr, err, errlen);
}

int
mg_store_device_list(struct mg_store *st, const char *user, mg_device_cb cb, void *arg,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) ||
	    (user != NULL && !store_name_ok(user, "user name", err, errlen)))
		return -1;
	if (cb == NULL) {
		mg_store_err(err, errlen, "device_list: no callback given");
		return -1;
	}
	return st->ops->device_list(st->impl, user, cb, arg, err, errlen);
}

int
mg_store_generation(struct mg_store *st, int64_t *gen, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen))
		return -1;
	if (gen == NULL) {
		mg_store_err(err, errlen, "generation: no output given");
		return -1;
	}
	return st->ops->generation(st->impl, gen, err, errlen);
}

int
mg_store_audit_add(struct mg_store *st, const struct mg_audit *a, char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) || !store_audit_ok(a, err, errlen))
		return -1;
	return st->ops->audit_add(st->impl, a, err, errlen);
}

int
mg_store_audit_add_many(struct mg_store *st, const struct mg_audit *a, size_t n, char *err, size_t errlen)
{
	size_t	i;

	if (!store_ok(st, err, errlen))
		return -1;
	for (i = 0; i < n; i++)
		if (!store_audit_ok(&a[i], err, errlen))
			return -1;
	if (st->ops->audit_add_many != NULL)
		return st->ops->audit_add_many(st->impl, a, n, err, errlen);
	for (i = 0; i < n; i++)
		if (st->ops->audit_add(st->impl, &a[i], err, errlen) == -1)
			return -1;
	return 0;
}

int
mg_store_audit_list(struct mg_store *st, const char *user, time_t since, mg_audit_cb cb, void *arg,
    char *err, size_t errlen)
{
	if (!store_ok(st, err, errlen) ||
	    (user != NULL && !store_name_ok(user, "user name", err, errlen)))
		return -1;
	if (since < 0) {
		mg_store_err(err, errlen, "audit_list: since is negative");
		return -1;
	}
	if (cb == NULL) {
		mg_store_err(err, errlen, "audit_list: no callback given");
		return -1;
	}
	return st->ops->audit_list(st->impl, user, since, cb, arg, err, errlen);
}
