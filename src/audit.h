/*
 * audit.h - the audit trail in the store: every login (user, device,
 * protocol, client address, result, reason) and every admin change (what
 * changed, never a secret). `mailgate audit` shows it.
 */
#ifndef MG_AUDIT_H
#define MG_AUDIT_H

struct mg_gateway;
struct mg_session;
struct mg_store;

/* The gateway's queue of login records (gw->audit). init: 0 ok, -1 out of memory. */
int mg_audit_init(struct mg_gateway *gw);
/* After the loop has ended. */
void mg_audit_free(struct mg_gateway *gw);

/*
 * Records the outcome of a login of session s: queued, and written from the
 * thread pool together with the other logins of the moment (the loop never
 * waits for the store). reason must not hold a secret. A store error is
 * logged, not retried: the log line of the login stays the record.
 */
void mg_audit_login(struct mg_session *s, const char *result, const char *reason);

/* Records an admin change, synchronously (for the CLI). 0 ok, -1 error (printed to stderr). */
int mg_audit_admin(struct mg_store *st, const char *user, const char *detail);

#endif
