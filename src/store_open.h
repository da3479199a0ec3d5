/*
 * store_open.h - opens the store the configuration names: SQLite
 * (store.sqlite) or PostgreSQL (store.postgres). Kept apart from store.c so
 * that the interface does not depend on the configuration.
 */
#ifndef MG_STORE_OPEN_H
#define MG_STORE_OPEN_H

#include <stddef.h>

struct mg_config;
struct mg_store;

/* NULL with err filled (it names the backend and, for SQLite, the file) on failure. */
struct mg_store *mg_store_open_config(const struct mg_config *cfg, char *err, size_t errlen);

#endif
