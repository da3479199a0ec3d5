/*
 * upstream.h - the provider side of a session: resolve, connect, TLS, then
 * a protocol's login state machine (up_imap.c), then the relay.
 *
 * Ownership: struct mg_upstream is malloc'd by mg_upstream_start() and owns
 * its socket, its timer, its name lookup and a copy of the upstream secret.
 * The secret is wiped as soon as the login line holding it is written (and
 * in any case when the upstream is freed). The upstream holds a session
 * reference until its last handle is closed.
 */
#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H

#include <stddef.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "conn.h"

struct mg_session;
struct mg_upstream;
struct mg_up_login;

/*
 * Reports the end of the login: status 0 means logged in and ready to
 * relay (for IMAP, caps holds the post-login capabilities); -1 means it
 * failed and reason says why in a short sentence for the device.
 */
typedef void (*mg_upstream_cb)(struct mg_session *s, int status, const char *reason);

/* The protocol's part: called when the connection (and implicit TLS) is up and on each input. */
struct mg_upstream_proto {
	void	(*connected)(struct mg_upstream *u);
	void	(*on_read)(struct mg_upstream *u);
	void	(*tls_done)(struct mg_upstream *u);	/* after STARTTLS's handshake */
};

enum mg_up_phase {
	MG_UP_RESOLVE = 0,
	MG_UP_CONNECT,
	MG_UP_TLS,		/* implicit TLS handshake */
	MG_UP_LOGIN,		/* the protocol's state machine runs */
	MG_UP_READY,		/* logged in; the session relays */
	MG_UP_FAILED
};

/*
 * The addresses of one provider endpoint, shared by the logins that connect
 * there: a name is looked up again after MG_RESOLVE_TTL_MS, or at once when
 * none of its addresses took a connection; an address literal is parsed
 * once. Reference-counted, loop thread only.
 */
#define MG_RESOLVE_TTL_MS	60000

struct mg_resolved {
	unsigned		 refs;
	uint64_t		 expires;	/* uv_now() milliseconds; UINT64_MAX: never */
	struct addrinfo		*ai;		/* owned (getaddrinfo's list) */
};

void mg_resolved_unref(struct mg_resolved *r);

struct mg_upstream {
	struct mg_conn			 conn;		/* to the provider */
	struct mg_gateway		*gw;
	struct mg_session		*s;		/* the session it serves; NULL while kept (uppool.h) */
	const struct mg_upstream_proto	*proto;
	const struct mg_endpoint_cfg	*ep;
	SSL_CTX				*ctx;
	SSL_SESSION			**resume;	/* the provider's session slot (the gateway owns it) */
	mg_upstream_cb			 done;
	uv_getaddrinfo_t		*gai;		/* a name lookup under way (malloc'd), or NULL */
	uv_timer_t			 timer;		/* connect + TLS + login deadline */
	struct mg_resolved		**addrs;	/* the endpoint's address cache slot (the gateway owns it) */
	struct mg_resolved		*res;		/* addresses being tried (a reference, dropped once connected) */
	struct addrinfo			*ai_next;	/* the next address to try */
	int				 handles;	/* open handles + pending lookups */
	enum mg_up_phase		 phase;
	int				 state;		/* the protocol's own state */
	int				 gai_pending;	/* the name lookup has not called back */
	int				 retrying;
	int				 tls_wait;	/* a STARTTLS handshake is under way */	/* the conn is closing to try the next address */
	char				 addr[64];	/* the address connected to, for logs */
	int				 tagno;		/* IMAP: next tag number */
	char				 tag[16];	/* IMAP: the tag awaited */
	struct mg_up_login		*lg;		/* login state, freed once logged in (idle sessions stay small);
							 * while parked: the capabilities for the next login */
	/* Keeping the logged-in connection for the account's next login (uppool.h). */
	uint8_t				 key[32];	/* the account's key; all zero: never kept */
	struct mg_upstream		*pnext, *pprev;	/* the gateway's parked list */
	uint64_t			 parked_at;	/* uv_now() when the device logged out */
	uint32_t			 sid;		/* the session that logged in, for logs while parked */
	unsigned			 uses;		/* device sessions served, the current one included */
	int				 parked;	/* 0 in a session; kept: 1 settling after LOGOUT, 2 ready,
							 * 3 settling with a login waiting for it (in s) */
};

/* What only the login needs: malloc'd with the upstream, freed after done() ran. */
struct mg_up_login {
	char				 login[MG_NAME_MAX];	/* the account's login at the provider */
	char				 secret[MG_SECRET_MAX];	/* wiped after use */
	size_t				 secret_len;
	char				 caps[1024];	/* capabilities as last announced (SMTP: one EHLO line each) */
	size_t				 caps_len;	/* POP3/SMTP: bytes collected in caps */
	int				 ehlo_first;	/* SMTP: the next 250 line is the greeting line of EHLO */
	char				 out[1400];	/* login bytes still to send after "+" (secret: wiped) */
	size_t				 seg[4];	/* segment i is out[seg[i] .. seg[i + 1]) */
	int				 nseg;		/* number of segments */
	int				 iseg;		/* the next segment to send */
};

/*
 * Starts the provider side for session s using the auth result r (the
 * secret is copied). 0 started (done will be called exactly once, unless
 * the session closes first), -1 could not start.
 */
int mg_upstream_start(struct mg_session *s, enum mg_proto proto, const struct mg_auth_result *r,
    mg_upstream_cb done);

/* Ends the upstream login with a failure; reason is for the device. */
void mg_upstream_fail(struct mg_upstream *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Ends the upstream login with success: done() runs (for IMAP, with
 * u->lg->caps still there to answer the device), then the login state is
 * wiped and freed and the session relays.
 */
void mg_upstream_ready(struct mg_upstream *u);

/* Starts a TLS handshake on the upstream (after STARTTLS's OK); tls_done follows. */
void mg_upstream_starttls(struct mg_upstream *u);

/* Handles one line (without CRLF) from the provider during the login. */
typedef void (*mg_upstream_line_cb)(struct mg_upstream *u, const char *line, size_t len);

/*
 * Feeds each complete line of input to cb, consuming it first (so that
 * whatever follows the final login reply stays for the device), until the
 * login ends or a STARTTLS handshake begins. Fails the login on an overlong
 * line, and on end of input or an error.
 */
void mg_upstream_read_lines(struct mg_upstream *u, mg_upstream_line_cb cb);

/* Formats and sends one command line; the formatted copy is wiped. 0 ok, -1 (login failed). */
int mg_upstream_send(struct mg_upstream *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Whether a credential may be written now: only on a TLS connection whose
 * handshake completed with a verified certificate. Fails the login if not.
 */
int mg_upstream_may_send_secret(struct mg_upstream *u);

/* Closes the upstream's handles; it frees itself afterwards. Safe to call twice. */
void mg_upstream_close(struct mg_upstream *u);

/* Wipes the secret copy. */
void mg_upstream_wipe(struct mg_upstream *u);

/* A kept connection a login waits for is ready: that login ends at once. */
void mg_upstream_kept_ready(struct mg_upstream *u);

/*
 * A kept connection a login waits for failed: it is closed, and the login
 * goes on with a new connection (the login and secret it kept for that).
 */
void mg_upstream_kept_failed(struct mg_upstream *u);

/*
 * IMAP: after the device's LOGOUT, brings the provider connection back to
 * the state right after login: UNSELECT when a mailbox is selected, then
 * CAPABILITY for the next device's login reply. 0 sent, -1 not.
 */
int mg_up_imap_park(struct mg_upstream *u, int selected);

/*
 * One line (without CRLF) from a parked IMAP provider connection: 0 more
 * to come, 1 ready for the next login, -1 drop it (*why says why).
 */
int mg_up_imap_parked_line(struct mg_upstream *u, const char *line, size_t len, const char **why);

extern const struct mg_upstream_proto mg_up_imap;
extern const struct mg_upstream_proto mg_up_pop3;
extern const struct mg_upstream_proto mg_up_smtp;

#endif
