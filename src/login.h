/*
 * login.h - the path every front end shares once a device has sent a
 * credential: the check in the thread pool (auth.c), the provider login
 * (upstream.c and up_*.c), then the relay (session.c).
 *
 * The front end says how to answer in its protocol; this module decides
 * which answer applies, logs it, and keeps the device paused meanwhile, so
 * that nothing it pipelined behind its login is read before the answer.
 */
#ifndef MG_LOGIN_H
#define MG_LOGIN_H

#include <stddef.h>

struct mg_session;

#define MG_LOGIN_MAX_FAILURES	3	/* failed logins on one connection before it is closed */

struct mg_login_replies {
	/* The gateway credential is wrong (or the user unknown): the protocol's "bad password". */
	void	(*fail)(struct mg_session *s);
	/* Anything else failed: the protocol's temporary failure, with a short reason. */
	void	(*tempfail)(struct mg_session *s, const char *reason);
	/* Logged in at the provider: answer the device; the relay starts right after. */
	void	(*ok)(struct mg_session *s);
};

/*
 * Starts a login for (user, password) on the session's protocol. The
 * password is copied; the caller wipes its own copy right after. Exactly one
 * of the replies runs later (unless the session closes first); after fail
 * and tempfail the device is read again.
 */
void mg_login_start(struct mg_session *s, const char *user, size_t ulen, const char *pass, size_t plen,
    const struct mg_login_replies *replies);

/* What became of a SASL PLAIN response (RFC 4616) handed to mg_login_sasl_plain(). */
enum mg_sasl_outcome {
	MG_SASL_STARTED = 0,	/* decoded; mg_login_start() was called */
	MG_SASL_CANCELLED,	/* the client sent "*" */
	MG_SASL_MALFORMED,	/* not base64, or not a PLAIN message */
	MG_SASL_AUTHZID		/* asked to act as another user: refused */
};

/*
 * Decodes a base64 PLAIN response ("=" is an empty one, RFC 4959/5034/4954)
 * and, if it holds a credential, starts the login. The decoded bytes are
 * wiped before returning.
 */
enum mg_sasl_outcome mg_login_sasl_plain(struct mg_session *s, const char *b64, size_t len,
    const struct mg_login_replies *replies);

#endif
