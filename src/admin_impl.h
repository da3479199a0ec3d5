/*
 * admin_impl.h - helpers shared by the admin command files (admin*.c).
 */
#ifndef MG_ADMIN_IMPL_H
#define MG_ADMIN_IMPL_H

#include <stdio.h>
#include <time.h>

#include "admin.h"

struct mg_config;
struct mg_store;

/* Loads the configuration (and checks its files when check_files); prints problems. NULL on failure. */
struct mg_config *admin_load_config(struct mg_args *a, int check_files);

/* Opens the configured store; prints the problem. NULL on failure. */
struct mg_store *admin_open_store(struct mg_config *cfg);

/* Reads a password from stdin (--password-stdin) or the terminal. 0 ok, -1 (printed). */
int admin_read_password(struct mg_args *a, const char *prompt, int confirm, char *buf, size_t len);

/* Whether s is a valid user name or login (printed when not). */
int admin_valid_name(const char *what, const char *s);

/* Writes s as a JSON string (with quotes). */
void admin_json_str(FILE *f, const char *s);

/* "2026-11-22T10:00:00Z" for t (0: "never"); buf at least 32 bytes. */
const char *admin_time(time_t t, char *buf, size_t len);


#endif
