/*
 * conn.h - one TCP stream (libuv) with optional TLS, as its owner sees it:
 * plaintext in a bounded input buffer, plaintext out through a counted
 * write queue.
 *
 * Ownership: a struct mg_conn is embedded in the struct that owns it (a
 * session); tcp.data points back at the conn and conn->owner at the owner.
 * Its memory must stay valid until on_close has run. A write goes straight
 * to the socket when it can; what the socket does not take becomes a write
 * request that owns its bytes and frees them in its callback, whatever the
 * status.
 *
 * Backpressure: the input buffer has a fixed size; when it is full, or the
 * owner paused the conn and more input arrived (at most one read: a pause
 * stops the socket lazily), nothing more is read from the socket (and, with
 * TLS, nothing more is decrypted), so a fast sender fills its own TCP window
 * rather than the gateway's memory. The owner pauses a conn when the other
 * side's write queue passes MG_CONN_HIGH_WATER and resumes it from on_drain,
 * which runs when that queue falls to MG_CONN_LOW_WATER.
 */
#ifndef MG_CONN_H
#define MG_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls.h"

#define MG_CONN_INBUF		65536	/* plaintext input buffer (four full TLS records) */
#define MG_CONN_RXBUF		65536	/* ciphertext read buffer, one per thread */
#define MG_CONN_HIGH_WATER	(256 * 1024)
#define MG_CONN_LOW_WATER	(64 * 1024)
#define MG_CONN_ERRLEN		128

struct mg_conn;
struct mg_conn_wreq;

/* Plaintext arrived in c->in, or c->eof / c->failed was set. */
typedef void (*mg_conn_read_cb)(struct mg_conn *c);
/* A TLS handshake finished: status 0, or -1 with c->error set. */
typedef void (*mg_conn_handshake_cb)(struct mg_conn *c, int status);
/* An outgoing TCP connection finished: status 0, or a libuv error code. */
typedef void (*mg_conn_connect_cb)(struct mg_conn *c, int status);
/* The write queue fell to MG_CONN_LOW_WATER. */
typedef void (*mg_conn_drain_cb)(struct mg_conn *c);
/* Our sending side is shut down: everything queued was written (or failed). */
typedef void (*mg_conn_shutdown_cb)(struct mg_conn *c);
/* The handle is closed: the conn's memory may now be released. */
typedef void (*mg_conn_close_cb)(struct mg_conn *c);

struct mg_conn {
	uv_tcp_t		 tcp;		/* the socket; tcp.data == this conn */
	void			*owner;		/* the session that embeds this conn */
	struct mg_tls		 tls;		/* TLS state; tls.ssl == NULL without TLS */
	SSL_SESSION		**resume;	/* client: where the session to resume is kept, or NULL */
	unsigned int			 tls_on : 1;	/* bytes on the wire are TLS records */

	uint8_t			*in;		/* plaintext received, not yet consumed: MG_CONN_INBUF
						 * bytes, malloc'd while it holds data, so an idle
						 * connection holds no buffer at all */
	size_t			 in_len;
	size_t			 in_used;	/* high-water mark of in[] since it was allocated */
	unsigned int			 wipe : 1;		/* wipe in[] before freeing it (it may hold credentials) */

	struct mg_conn_wreq	*wpend;		/* ciphertext being gathered for the next socket write */
	size_t			 wpend_cap;	/* room in wpend (bytes of data) */
	size_t			 wq_bytes;	/* memory held by queued writes (bytes + request) */
	unsigned int			 wq_high : 1;	/* wq_bytes passed the high-water mark since the last drain */

	unsigned int			 open : 1;		/* tcp was initialised: it must be closed */
	unsigned int			 closing : 1;	/* uv_close() was called */
	unsigned int			 started : 1;	/* connected or accepted: reading may start */
	unsigned int			 reading : 1;	/* uv_read_start() is in effect */
	unsigned int			 paused : 1;	/* the owner asked not to be given more input */
	unsigned int			 eof : 1;		/* the peer finished sending (FIN or close_notify) */
	unsigned int			 failed : 1;	/* a read, write or TLS error: see error */
	unsigned int			 shut : 1;		/* our sending side is being shut down */
	unsigned int			 shut_done : 1;	/* ... and the shutdown completed */
	unsigned int			 in_cb : 1;		/* inside conn_process(): do not re-enter */
	size_t			 in_seen;	/* bytes of in[] the owner was already shown */
	unsigned int			 end_shown : 1;	/* the owner was told about eof/failed */
	char			 error[MG_CONN_ERRLEN];	/* why it failed, for logs */

	uint64_t		 bytes_in;	/* plaintext bytes received */
	uint64_t		 bytes_out;	/* plaintext bytes sent */

	mg_conn_read_cb		 on_read;
	mg_conn_handshake_cb	 on_handshake;
	mg_conn_connect_cb	 on_connect;
	mg_conn_drain_cb	 on_drain;
	mg_conn_shutdown_cb	 on_shutdown;	/* optional */
	mg_conn_close_cb	 on_close;
	union {				/* never in use at the same time */
		uv_connect_t	 connect_req;	/* outgoing: until connected */
		uv_shutdown_t	 shutdown_req;	/* once started */
	};
};

/* Zeroes c and initialises its TCP handle on loop; set the callbacks after. 0 ok, or a libuv error code. */
int mg_conn_init(struct mg_conn *c, uv_loop_t *loop, void *owner);

/* Starts reading (after accept or connect). */
void mg_conn_start(struct mg_conn *c);

/* Connects to addr; on_connect reports the result. 0 or a libuv error. */
int mg_conn_connect(struct mg_conn *c, const struct sockaddr *addr);

/*
 * Starts TLS on c (implicit TLS, or after STARTTLS once the plaintext reply
 * is queued). Anything still in the plaintext input buffer is discarded: it
 * arrived before the handshake and must never be taken as protected. As a
 * client, host is the name verified. on_handshake reports the result.
 * 0 ok, -1 with c->error set.
 */
int mg_conn_starttls(struct mg_conn *c, SSL_CTX *ctx, int server, const char *host);

/* Queues plaintext for sending (encrypted when TLS is on). 0 ok, -1 failed. */
int mg_conn_write(struct mg_conn *c, const void *data, size_t len);
int mg_conn_printf(struct mg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drops n bytes from the front of the input buffer. */
void mg_conn_consume(struct mg_conn *c, size_t n);

/* Wipes and drops the whole input buffer (e.g. after secrets were parsed from it). */
void mg_conn_discard_input(struct mg_conn *c);

/* Wipes the bytes of the input buffer past in_len (what consumed commands left behind). */
void mg_conn_wipe_spare(struct mg_conn *c);

/* Stops and restarts delivery of input (backpressure). resume may call on_read at once. */
void mg_conn_pause(struct mg_conn *c);
void mg_conn_resume(struct mg_conn *c);

/* Ends our sending side after queued writes: close_notify with TLS, then FIN. */
void mg_conn_shutdown(struct mg_conn *c);

/* Closes the handle; on_close runs later. Safe to call twice, or on a conn never initialised. */
void mg_conn_close(struct mg_conn *c);

#endif
