/*
 * store_impl.h - what a store backend implements. Private to store*.c.
 *
 * store.c owns the public mg_store_* functions: it checks their arguments
 * once for every backend and then calls through the backend's ops table.
 * A backend (store_sqlite.c, store_pg.c) therefore receives only
 * validated input: non-NULL, NUL-terminated names shorter than MG_NAME_MAX,
 * hashes shorter than MG_HASH_MAX, 1 to MG_SEALED_MAX sealed bytes and a
 * known secret kind. It fills `err` and returns the codes store.h
 * documents, and it must be safe to call from several threads at once.
 */
#ifndef MG_STORE_IMPL_H
#define MG_STORE_IMPL_H

#include "store.h"

struct mg_store_ops {
	const char	*name;		/* "sqlite", "postgresql": for messages */

	/* Releases the backend's handle; impl is not used again. */
	void	(*close)(void *impl);
	/* The schema version reached when the store was opened. */
	int	(*schema_version)(void *impl);

	int	(*user_add)(void *impl, const char *user, const char *hash, char *err, size_t errlen);
	int	(*user_set_hash)(void *impl, const char *user, const char *hash, char *err, size_t errlen);
	int	(*user_del)(void *impl, const char *user, char *err, size_t errlen);
	int	(*user_get)(void *impl, const char *user, struct mg_user *out, char *err, size_t errlen);
	int	(*user_list)(void *impl, mg_user_cb cb, void *arg, char *err, size_t errlen);

	int	(*account_set)(void *impl, const struct mg_account *a, char *err, size_t errlen);
	/* provider is NULL for "the first account by provider name". */
	int	(*account_get)(void *impl, const char *user, const char *provider,
		    struct mg_account *out, char *err, size_t errlen);
	int	(*account_del)(void *impl, const char *user, const char *provider, char *err, size_t errlen);
	/* user is NULL for every user's accounts. */
	int	(*account_list)(void *impl, const char *user, mg_account_cb cb, void *arg,
		    char *err, size_t errlen);
	int	(*account_reseal)(void *impl, const char *user, const char *provider, const uint8_t *old,
		    size_t oldlen, const uint8_t *sealed, size_t sealedlen, char *err, size_t errlen);

	int	(*user_set_flags)(void *impl, const char *user, int disabled, int password_login,
		    char *err, size_t errlen);

	int	(*device_add)(void *impl, const struct mg_device *d, char *err, size_t errlen);
	int	(*device_find)(void *impl, const char *user, const char *hash, struct mg_device *out,
		    char *err, size_t errlen);
	int	(*device_get)(void *impl, const char *user, const char *label, struct mg_device *out,
		    char *err, size_t errlen);
	int	(*device_revoke)(void *impl, const char *user, const char *label, char *err, size_t errlen);
	int	(*device_touch)(void *impl, const char *user, const char *label, time_t when, const char *addr,
		    char *err, size_t errlen);
	/* user is NULL for every user's devices. */
	int	(*device_list)(void *impl, const char *user, mg_device_cb cb, void *arg, char *err, size_t errlen);

	int	(*generation)(void *impl, int64_t *gen, char *err, size_t errlen);

	int	(*audit_add)(void *impl, const struct mg_audit *a, char *err, size_t errlen);
	/* Optional: n records in one transaction; without it, audit_add n times. */
	int	(*audit_add_many)(void *impl, const struct mg_audit *a, size_t n, char *err, size_t errlen);
	int	(*audit_list)(void *impl, const char *user, time_t since, mg_audit_cb cb, void *arg,
		    char *err, size_t errlen);
};

struct mg_store {
	const struct mg_store_ops	*ops;	/* the backend's functions (static storage) */
	void				*impl;	/* the backend's handle, owned by this store */
};

/*
 * Wraps an opened backend handle in a store. On failure (out of memory) it
 * closes impl through ops->close, fills err and returns NULL, so a backend's
 * open function can simply return what this returns.
 */
struct mg_store *mg_store_new(const struct mg_store_ops *ops, void *impl, char *err, size_t errlen);

/* Fills err like snprintf, doing nothing when err is NULL or errlen is 0. */
void mg_store_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
