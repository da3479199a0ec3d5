/*
 * store_open.c - see store_open.h.
 */
#include "store_open.h"

#include <stdio.h>

#include "config.h"
#include "store.h"

struct mg_store *
mg_store_open_config(const struct mg_config *cfg, char *err, size_t errlen)
{
	struct mg_store	*st;
	char		 e[MG_ERRLEN];

	if (cfg->store_postgres.path != NULL) {
		if ((st = mg_store_open_postgres(cfg->store_postgres.path, e, sizeof(e))) == NULL)
			snprintf(err, errlen, "postgres store: %s", e);
		return st;
	}
	if ((st = mg_store_open_sqlite(cfg->store_sqlite.path, e, sizeof(e))) == NULL)
		snprintf(err, errlen, "store %s: %s", cfg->store_sqlite.path, e);
	return st;
}
