/*
 * audit.h - the audit trail in the store: every login (user, device,
 * protocol, client address, result, reason) and every admin change (what
 * changed, never a secret). `mailgate audit` shows it.
 */
#ifndef MG_AUDIT_H
#define MG_AUDIT_H

struct mg_session;
struct mg_store;

/*
 * Records the outcome of a login of session s, from the thread pool (the
 * loop never waits for the store). reason must not hold a secret. A store
 * error is logged, not retried: the log line of the login stays the record.
 */
void mg_audit_login(struct mg_session *s, const char *result, const char *reason);

/* Records an admin change, synchronously (for the CLI). 0 ok, -1 error (printed to stderr). */
int mg_audit_admin(struct mg_store *st, const char *user, const char *detail);

#endif
