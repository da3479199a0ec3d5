/*
 * bconn.h - a libuv TCP stream with optional TLS, for the benchmark tools.
 *
 * The load generator (loadgen.c) and the fast upstream (fastimap.c) share
 * this: a connection reads 16 KiB at a time from the socket, runs TLS as a
 * pump between memory BIOs (no OpenSSL socket BIO), and hands plaintext to
 * its owner through callbacks. Writes own their bytes until the write
 * callback. It is benchmark code: small, strict, and it never retries.
 */
#ifndef BCONN_H
#define BCONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

/* Bytes read from the socket per read (and plaintext per SSL_read). */
#define BCONN_READ_SIZE		16384
/* Plaintext per SSL_write: one full TLS record. */
#define BCONN_RECORD		16384
/* on_drain fires when the write queue falls below this many bytes. */
#define BCONN_LOW_WATER		(256 * 1024)

struct bconn;

struct bconn_ops {
	/* TCP connected (plaintext) or the TLS handshake completed. */
	void	(*ready)(struct bconn *);
	/* Plaintext arrived. The owner may close the connection inside. */
	void	(*data)(struct bconn *, const char *, size_t);
	/* The write queue drained below BCONN_LOW_WATER (when want_drain). */
	void	(*drain)(struct bconn *);
	/* The handle is closed: the owner may free the struct now. */
	void	(*closed)(struct bconn *);
};

struct bconn {
	uv_tcp_t	 tcp;		/* the socket; tcp.data points here */
	uv_connect_t	 creq;		/* the connect request (clients) */
	SSL		*ssl;		/* NULL for plaintext */
	BIO		*rbio;		/* ciphertext from the network into OpenSSL */
	BIO		*wbio;		/* ciphertext from OpenSSL to the network */
	const struct bconn_ops *ops;	/* the owner's callbacks */
	void		*owner;		/* the owner's session */
	int		 ready;		/* handshake done (or plaintext and connected) */
	int		 closing;	/* bconn_close() called; no callback but closed follows */
	int		 want_drain;	/* call ops->drain when the queue is low */
	int		 close_after_flush; /* close once everything queued is written */
	int		 paused;	/* reading stopped by bconn_pause() */
	const char	*error;		/* why it closed, when it was not a clean end; static text */
	uint64_t	 bytes_in;	/* plaintext bytes delivered */
	uint64_t	 bytes_out;	/* plaintext bytes sent */
};

/* Initialises c on loop; ctx NULL means plaintext. 0 or -1. */
int	bconn_init(struct bconn *, uv_loop_t *, SSL_CTX *, const struct bconn_ops *, void *);
/* Starts a client connection to addr:port (optionally from bind_addr). */
int	bconn_connect(struct bconn *, const struct sockaddr *, const struct sockaddr *,
	    const char *sni, SSL_SESSION *);
/* Completes a server-side accept from listener into c (already initialised). */
int	bconn_accept(struct bconn *, uv_stream_t *);
/* Sends plaintext; the bytes are copied. 0 or -1 (then the connection closes). */
int	bconn_send(struct bconn *, const void *, size_t);
/* Bytes waiting in the kernel-bound write queue. */
size_t	bconn_queued(struct bconn *);
/* Closes (once); error NULL for a clean end, else static text. */
void	bconn_close(struct bconn *, const char *);
/* Sends TLS close_notify if any, then closes once the queue is written. */
void	bconn_close_flush(struct bconn *);
/* Stops or restarts reading from the socket. */
void	bconn_pause(struct bconn *, int);

/* Monotonic time in nanoseconds. */
uint64_t bconn_now_ns(void);

#endif
