/*
 * uppool.h - IMAP provider connections kept logged in between one device
 * session and the next of the same account.
 *
 * Why: mail clients open and close IMAP connections all day (a phone
 * checking mail in the background, a laptop's five folders), and each
 * would cost the gateway a TLS handshake and a login at the provider, and
 * cost the provider a login it may rate-limit. When a device says LOGOUT
 * and its session left nothing behind (parse_imap_relay.c decides), the
 * gateway answers the LOGOUT itself and keeps the provider connection,
 * brought back to the authenticated state, for timeouts.upstream_reuse
 * seconds. The account's next login that passes the gateway's own
 * credential check is handed that connection instead of a new one.
 *
 * The key of a kept connection is an HMAC, under a key drawn at start, of
 * everything the login used: the gateway user, the user's auth_gen, the
 * provider, the login at the provider and the secret. A new password or
 * token, another account, a revoked credential (auth_gen moves): no match.
 * The gateway's credential check runs in full for every login; only the
 * provider's is skipped.
 *
 * Ownership: a parked struct mg_upstream belongs to the pool (no session);
 * the pool closes it on expiry, on any input it does not expect, on an
 * error, and when the gateway stops.
 */
#ifndef MG_UPPOOL_H
#define MG_UPPOOL_H

#include <stdint.h>

#include "auth.h"

#define MG_UPOOL_PER_KEY	4	/* kept connections per account: providers limit concurrent ones */
#define MG_UPOOL_MAX		1024	/* kept connections per gateway */

struct mg_gateway;
struct mg_session;
struct mg_upstream;

/* Sets up the pool (its HMAC key). 0 ok, -1 failed. */
int mg_upool_init(struct mg_gateway *gw);

/* Closes every kept connection (the gateway is stopping). */
void mg_upool_close_all(struct mg_gateway *gw, const char *why);

/* Wipes and frees the pool; every kept connection must be closed already. */
void mg_upool_free(struct mg_gateway *gw);

/* The key of the connections r's login may share. */
void mg_upool_key(struct mg_gateway *gw, const struct mg_auth_result *r, uint8_t key[32]);

/* Removes and returns a kept connection ready for key, or NULL. */
struct mg_upstream *mg_upool_take(struct mg_gateway *gw, const uint8_t key[32]);

/*
 * The device of IMAP session s said LOGOUT with nothing in flight:
 * detaches s->up from s and keeps it (selected: a mailbox is selected).
 * 0 kept (s->up is NULL now), -1 not (nothing changed; relay the LOGOUT).
 */
int mg_upool_park(struct mg_session *s, int selected);

#endif
