/*
 * session.h - the gateway, its listeners, and one client session with both
 * of its sides.
 *
 * Data flows one way: listener -> session -> front end (imap.c) -> auth
 * (auth.c, thread pool) -> upstream login (up_imap.c) -> relay (session.c).
 *
 * Lifetime: a session counts its references: each open libuv handle it
 * owns (client socket, timer), its upstream while that exists, and each
 * piece of work in the thread pool. mg_session_close() is the only way out
 * and is safe to call twice; the memory is freed when the count reaches
 * zero, so a late callback never touches freed memory. Every callback that
 * can run after close begins with `if (s->closing)`.
 */
#ifndef MG_SESSION_H
#define MG_SESSION_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "conn.h"
#include "crypto.h"
#include "keys.h"
#include "revoke.h"
#include "store.h"

struct mg_session;
struct mg_upstream;
struct mg_login_replies;
struct mg_auth_state;
struct mg_limits;

struct mg_listener {
	uv_tcp_t			 tcp;	/* the listening socket; tcp.data == this */
	struct mg_gateway		*gw;
	const struct mg_listen_cfg	*cfg;
};

struct mg_resolved;
struct mg_upool;
struct mg_imap_track;

struct mg_gateway {
	uv_loop_t		*loop;
	struct mg_config	*cfg;		/* owned */
	struct mg_store		*store;		/* owned; used only from the thread pool */
	struct mg_keyring	 ring;		/* master keys; guarded by ring_lock (the thread pool reads it) */
	pthread_mutex_t		 ring_lock;
	struct mg_master_key	 devkey;	/* device passwords are hashed under it; read-only after start */
	struct mg_auth_state	*auth;		/* auth cache and in-flight checks (auth.c), loop only */
	struct mg_audit_queue	*audit;		/* login records waiting to be written (audit.c) */
	uint64_t		 slow_hashes;	/* slow password hashes computed (atomic) */
	struct mg_revoke_state	 revoke;	/* live revocation (revoke.c) */
	SSL_CTX			*server_ctx;	/* the certificate shown to devices */
	SSL_CTX			**client_ctx;	/* one per provider, same order as cfg->providers */
	struct mg_listener	*listeners;
	size_t			 nlisteners;
	uv_signal_t		 sig_int;
	uv_signal_t		 sig_term;
	uv_signal_t		 sig_hup;	/* reloads the certificate and key */
	uv_timer_t		 grace;		/* after SIGTERM: how long live sessions may finish */
	int			 finished;	/* every gateway handle was closed */
	struct mg_limits	*limits;	/* connection, session and brute-force counters */
	SSL_SESSION		**up_sessions;	/* upstream TLS sessions to resume: [provider * MG_PROTO_COUNT + proto] */
	struct mg_resolved	**up_addrs;	/* upstream addresses, same index (upstream.h) */
	struct mg_upool		*upool;		/* IMAP provider connections kept between logins (uppool.h) */
	struct mg_session	*sessions;	/* all live sessions, for shutdown */
	uint64_t		 nsessions;	/* live sessions */
	uint64_t		 trim_peak;	/* most sessions since memory was last handed back */
	uint64_t		 trim_logins;	/* sessions started since memory was last handed back */
	uint64_t		 trim_seen;	/* trim_logins at the previous tick of trim_timer */
	uv_timer_t		 trim_timer;	/* hands memory back after a burst of logins */
	int			 stopping;
	char			 hostname[256];	/* for SMTP greetings */
	char			 dummy_hash[MG_HASH_MAX];	/* verified for unknown users, so timing does not tell */
};

/* What a front end does; one table per protocol. */
struct mg_front_ops {
	const char	*name;
	void		(*start)(struct mg_session *s);		/* the client is connected (and TLS done if implicit) */
	void		(*on_read)(struct mg_session *s);	/* client input before relay */
	void		(*free)(struct mg_session *s);		/* release front-end state */
	const char	*timeout_msg;				/* sent when the login timeout expires */
	const char	*reject_prefix;				/* refusal at the greeting: this, then why */
};

enum mg_session_state {
	MG_SS_HANDSHAKE = 0,	/* implicit TLS: waiting for the device's handshake */
	MG_SS_PRELOGIN,		/* reading commands */
	MG_SS_AUTH,		/* a credential check is in the thread pool */
	MG_SS_UPSTREAM,		/* logging in at the provider */
	MG_SS_RELAY		/* bytes flow both ways untouched */
};

struct mg_session {
	uint32_t			 id;		/* random, for logs */
	struct mg_gateway		*gw;
	const struct mg_listen_cfg	*lcfg;		/* the listener it came in on */
	const struct mg_front_ops	*ops;
	void				*front;		/* front-end state, owned via ops->free */
	const struct mg_login_replies	*login;		/* how the front end answers a login (login.c) */
	struct mg_session		*next, *prev;	/* gw->sessions list */

	struct mg_conn			 client;	/* the device */
	struct mg_upstream		*up;		/* the provider side, or NULL */
	uv_timer_t			 timer;		/* pre-login and idle timeouts */
	uint64_t			 last_active;	/* uv_now() of the last client or relay activity */
	uint64_t			 timeout_ms;	/* current timeout: login or idle */
	uint64_t			 started;	/* uv_now() at accept */

	enum mg_session_state		 state;
	int				 refs;		/* see the file comment */
	int				 closing;
	int				 tls;		/* the device connection is encrypted */
	int				 close_after_flush;	/* close once the device's shutdown completes */
	int				 client_eof;	/* relay: the device finished sending */
	int				 up_eof;	/* relay: the provider finished sending */
	char				 peer[64];	/* device address "ip:port" */
	char				 peer_ip[48];	/* device address alone, for the limits */
	const char			*reject;	/* refuse at the greeting with this reason (static) */
	int				 conn_counted;	/* counted in the connection limits */
	int				 user_counted;	/* counted in auth_user's sessions */
	int				 login_failures;	/* failed logins on this connection (login.c) */
	char				*user;		/* the gateway user as typed at the last login (malloc'd), or NULL */
	const char			*helo;		/* SMTP: the device's EHLO name, used upstream too
							 * (in the front end's state: login only), or NULL */
	char				*auth_user;	/* the user whose credential was accepted (malloc'd), or NULL */
	char				 device[MG_LABEL_MAX];	/* the device label that logged in ("" for the user's password) */
	int64_t				 auth_gen;	/* the user's auth_gen at login, for revocation */
	const char			*hash;		/* how the last credential was checked (static string, for logs) */
	const char			*provider;	/* provider name once authenticated (the configuration's), or NULL */
	const char			*close_reason;	/* static text for the close log line */
	struct mg_imap_track		*trk;		/* IMAP relay: whether the provider connection may be kept
							 * after LOGOUT (malloc'd; NULL when it may not) */
	uint64_t			 up_bytes_in;	/* bytes from the provider (kept after the upstream is gone) */
	uint64_t			 up_bytes_out;
};

/* Starts listening on every configured address and runs the loop until SIGINT/SIGTERM. */
int mg_gateway_run(struct mg_config *cfg);

/* The only way to end a session; safe to call twice. reason is a static string for the log. */
void mg_session_close(struct mg_session *s, const char *reason);

/* Ends the session once everything queued to the device is sent. */
void mg_session_close_after_flush(struct mg_session *s, const char *reason);

/*
 * Allocates the front end's zeroed state of `size` bytes as s->front, or
 * closes the session and returns NULL. front_free wipes and frees it (it may
 * hold a user name or a half-read credential); safe when there is none.
 */
void *mg_session_front_new(struct mg_session *s, size_t size);
void mg_session_front_free(struct mg_session *s, size_t size);

/* Reference counting for work that outlives a callback (thread pool, upstream). */
void mg_session_ref(struct mg_session *s);
void mg_session_unref(struct mg_session *s);

/* Switches to relaying bytes both ways; input already buffered on either side is forwarded. */
void mg_session_relay(struct mg_session *s);

/* Marks client activity (resets the idle timer). */
void mg_session_touch(struct mg_session *s);

/* Switches the session timeout (milliseconds) and restarts it. */
void mg_session_set_timeout(struct mg_session *s, uint64_t ms);

/*
 * The SSL_CTX used for a provider (by name), or NULL; *slot is where the
 * provider's TLS session for proto is kept for resumption.
 */
/* The configuration's copy of a provider's name (lives as long as the gateway), or NULL. */
const char *mg_gateway_provider_name(struct mg_gateway *gw, const char *name);

SSL_CTX *mg_gateway_client_ctx(struct mg_gateway *gw, const char *provider, enum mg_proto proto,
    const struct mg_provider_cfg **pcfg, SSL_SESSION ***slot, struct mg_resolved ***addrs);

/* Monotonic seconds (never 0), for the limits' clocks. */
static inline uint64_t
mg_gateway_now(struct mg_gateway *gw)
{
	return uv_now(gw->loop) / 1000 + 1;
}

extern const struct mg_front_ops mg_imap_front;
extern const struct mg_front_ops mg_pop3_front;
extern const struct mg_front_ops mg_smtp_front;

#endif
