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
	if (a->sealed_len == 0 || a->sealed_len > MG_SEALED_MAX) {
		mg_store_err(err, errlen, "sealed secret has %zu bytes (1 to %d allowed)",
		    a->sealed_len, MG_SEALED_MAX);
		return 0;
	}
	return 1;
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
