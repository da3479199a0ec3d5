/*
 * bconn.c - a libuv TCP stream with optional TLS, for the benchmark tools.
 *
 * TLS runs between two memory BIOs: ciphertext read from the socket goes
 * into rbio, SSL_read() gives plaintext, and whatever OpenSSL writes into
 * wbio is handed to uv_write() in one piece. The read buffers are static:
 * libuv calls the read callback right after the allocation callback, and
 * the callback consumes everything before returning, so one buffer serves
 * every connection of the (single-threaded) process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include "bconn.h"

/* Set to 0 by a tool that wants Nagle's algorithm left on. */
int	bconn_nodelay = 1;

/* How many connection failures have been printed (then we go quiet). */
static int	bconn_errors_printed;

static char	bconn_rbuf[BCONN_READ_SIZE];	/* ciphertext (or plaintext) from the socket */
static char	bconn_pbuf[BCONN_READ_SIZE];	/* plaintext out of SSL_read */

struct bconn_wreq {
	uv_write_t	 req;	/* req.data points to the connection */
	size_t		 len;	/* bytes in data */
	char		 data[];	/* owned by this request until its callback */
};

static void	bconn_alloc_cb(uv_handle_t *, size_t, uv_buf_t *);
static void	bconn_read_cb(uv_stream_t *, ssize_t, const uv_buf_t *);
static void	bconn_write_cb(uv_write_t *, int);
static void	bconn_close_cb(uv_handle_t *);
static void	bconn_connect_cb(uv_connect_t *, int);
static void	bconn_tls_pump(struct bconn *);
static int	bconn_flush(struct bconn *);
static int	bconn_write_raw(struct bconn *, const void *, size_t);

uint64_t
bconn_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints the OpenSSL error queue on one line, a few times per process. */
static void
bconn_report(struct bconn *c, const char *what)
{
	char buf[256];
	unsigned long e;
	long vr;

	if (bconn_errors_printed >= 5) {
		ERR_clear_error();
		return;
	}
	bconn_errors_printed++;
	fprintf(stderr, "bconn: %s", what);
	if (c->ssl != NULL && (vr = SSL_get_verify_result(c->ssl)) != X509_V_OK)
		fprintf(stderr, " verify=\"%s\"", X509_verify_cert_error_string(vr));
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, " %s", buf);
	}
	fprintf(stderr, "\n");
}

int
bconn_init(struct bconn *c, uv_loop_t *loop, SSL_CTX *ctx, const struct bconn_ops *ops,
    void *owner)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->owner = owner;
	if (uv_tcp_init(loop, &c->tcp) != 0)
		return -1;
	c->tcp.data = c;
	if (ctx != NULL) {
		if ((c->ssl = SSL_new(ctx)) == NULL ||
		    (c->rbio = BIO_new(BIO_s_mem())) == NULL ||
		    (c->wbio = BIO_new(BIO_s_mem())) == NULL) {
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			SSL_free(c->ssl);
			c->ssl = NULL;
			/* The handle is initialised: the caller must still close it. */
			return -1;
		}
		/* An empty memory BIO means "try again later", not end of file. */
		BIO_set_mem_eof_return(c->rbio, -1);
		BIO_set_mem_eof_return(c->wbio, -1);
		SSL_set_bio(c->ssl, c->rbio, c->wbio);
	}
	return 0;
}

int
bconn_connect(struct bconn *c, const struct sockaddr *to, const struct sockaddr *from,
    const char *sni, SSL_SESSION *sess)
{
	if (from != NULL && uv_tcp_bind(&c->tcp, from, 0) != 0)
		return -1;
	if (c->ssl != NULL) {
		SSL_set_connect_state(c->ssl);
		if (sni != NULL && SSL_set_tlsext_host_name(c->ssl, sni) != 1)
			return -1;
		if (sess != NULL && SSL_set_session(c->ssl, sess) != 1)
			return -1;
	}
	c->creq.data = c;
	return uv_tcp_connect(&c->creq, &c->tcp, to, bconn_connect_cb) == 0 ? 0 : -1;
}

static void
bconn_connect_cb(uv_connect_t *req, int status)
{
	struct bconn *c = req->data;

	if (c->closing)
		return;
	if (status != 0) {
		if (bconn_errors_printed++ < 5)
			fprintf(stderr, "bconn: connect: %s\n", uv_strerror(status));
		bconn_close(c, "connect");
		return;
	}
	if (bconn_nodelay)
		(void)uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, bconn_alloc_cb, bconn_read_cb) != 0) {
		bconn_close(c, "read start");
		return;
	}
	if (c->ssl == NULL) {
		c->ready = 1;
		c->ops->ready(c);
		return;
	}
	/* The ClientHello. */
	bconn_tls_pump(c);
}

int
bconn_accept(struct bconn *c, uv_stream_t *listener)
{
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0)
		return -1;
	(void)uv_tcp_nodelay(&c->tcp, 1);
	if (c->ssl != NULL)
		SSL_set_accept_state(c->ssl);
	if (uv_read_start((uv_stream_t *)&c->tcp, bconn_alloc_cb, bconn_read_cb) != 0)
		return -1;
	if (c->ssl == NULL) {
		c->ready = 1;
		c->ops->ready(c);
	}
	return 0;
}

static void
bconn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = bconn_rbuf;
	buf->len = sizeof(bconn_rbuf);
}

static void
bconn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct bconn *c = s->data;

	(void)buf;
	if (c->closing || nread == 0)
		return;
	if (nread < 0) {
		bconn_close(c, nread == UV_EOF ? "eof" : "read");
		return;
	}
	if (c->ssl == NULL) {
		c->bytes_in += (uint64_t)nread;
		c->ops->data(c, bconn_rbuf, (size_t)nread);
		return;
	}
	if (BIO_write(c->rbio, bconn_rbuf, (int)nread) != (int)nread) {
		bconn_close(c, "bio");
		return;
	}
	bconn_tls_pump(c);
}

/*
 * Drives the handshake, then hands out every complete record's plaintext,
 * then writes whatever OpenSSL produced (handshake flights, alerts).
 */
static void
bconn_tls_pump(struct bconn *c)
{
	int n, e;

	if (!c->ready) {
		ERR_clear_error();
		n = SSL_do_handshake(c->ssl);
		if (bconn_flush(c) == -1)
			return;
		if (n != 1) {
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return;
			bconn_report(c, "tls handshake failed");
			bconn_close(c, "tls handshake");
			return;
		}
		c->ready = 1;
		c->ops->ready(c);
		if (c->closing)
			return;
	}
	for (;;) {
		ERR_clear_error();
		n = SSL_read(c->ssl, bconn_pbuf, sizeof(bconn_pbuf));
		if (n > 0) {
			c->bytes_in += (uint64_t)n;
			c->ops->data(c, bconn_pbuf, (size_t)n);
			if (c->closing)
				return;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			bconn_close(c, "eof");
			return;
		}
		bconn_report(c, "tls read failed");
		bconn_close(c, "tls read");
		return;
	}
	(void)bconn_flush(c);
}

/* Queues the bytes as one write request that owns a copy of them. */
static int
bconn_write_raw(struct bconn *c, const void *p, size_t len)
{
	struct bconn_wreq *w;
	uv_buf_t b;

	if ((w = malloc(sizeof(*w) + len)) == NULL) {
		bconn_close(c, "memory");
		return -1;
	}
	memcpy(w->data, p, len);
	w->len = len;
	w->req.data = c;
	b = uv_buf_init(w->data, (unsigned int)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, bconn_write_cb) != 0) {
		free(w);
		bconn_close(c, "write");
		return -1;
	}
	return 0;
}

/* Moves everything OpenSSL wrote into wbio to the socket, in one request. */
static int
bconn_flush(struct bconn *c)
{
	struct bconn_wreq *w;
	size_t n;
	uv_buf_t b;

	while ((n = BIO_ctrl_pending(c->wbio)) > 0) {
		if ((w = malloc(sizeof(*w) + n)) == NULL) {
			bconn_close(c, "memory");
			return -1;
		}
		if (BIO_read(c->wbio, w->data, (int)n) != (int)n) {
			free(w);
			bconn_close(c, "bio");
			return -1;
		}
		w->len = n;
		w->req.data = c;
		b = uv_buf_init(w->data, (unsigned int)n);
		if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, bconn_write_cb) != 0) {
			free(w);
			bconn_close(c, "write");
			return -1;
		}
	}
	return 0;
}

static void
bconn_write_cb(uv_write_t *req, int status)
{
	struct bconn_wreq *w = (struct bconn_wreq *)req;
	struct bconn *c = req->data;

	free(w);
	/* With UV_ECANCELED when the handle is closing: c is still valid. */
	if (c->closing)
		return;
	if (status != 0) {
		bconn_close(c, "write");
		return;
	}
	if (c->close_after_flush) {
		if (bconn_queued(c) == 0)
			bconn_close(c, NULL);
		return;
	}
	if (c->want_drain && bconn_queued(c) < BCONN_LOW_WATER) {
		c->want_drain = 0;
		c->ops->drain(c);
	}
}

int
bconn_send(struct bconn *c, const void *data, size_t len)
{
	const char *p = data;
	int n;

	if (c->closing)
		return -1;
	c->bytes_out += len;
	if (c->ssl == NULL)
		return bconn_write_raw(c, data, len);
	while (len > 0) {
		n = len > BCONN_RECORD ? BCONN_RECORD : (int)len;
		ERR_clear_error();
		if (SSL_write(c->ssl, p, n) != n) {
			bconn_report(c, "tls write failed");
			bconn_close(c, "tls write");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return bconn_flush(c);
}

size_t
bconn_queued(struct bconn *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

void
bconn_pause(struct bconn *c, int pause)
{
	if (c->closing || c->paused == pause)
		return;
	c->paused = pause;
	if (pause)
		(void)uv_read_stop((uv_stream_t *)&c->tcp);
	else if (uv_read_start((uv_stream_t *)&c->tcp, bconn_alloc_cb, bconn_read_cb) != 0)
		bconn_close(c, "read start");
}

void
bconn_close(struct bconn *c, const char *error)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (error != NULL && c->error == NULL)
		c->error = error;
	uv_close((uv_handle_t *)&c->tcp, bconn_close_cb);
}

void
bconn_close_flush(struct bconn *c)
{
	if (c->closing)
		return;
	if (c->ssl != NULL && c->ready) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
		if (bconn_flush(c) == -1)
			return;
	}
	if (bconn_queued(c) == 0) {
		bconn_close(c, NULL);
		return;
	}
	c->close_after_flush = 1;
	(void)uv_read_stop((uv_stream_t *)&c->tcp);
}

static void
bconn_close_cb(uv_handle_t *h)
{
	struct bconn *c = h->data;

	/*
	 * A connection that ended cleanly keeps its session resumable: OpenSSL
	 * marks the session of an SSL freed without a shutdown as bad, and
	 * with TLS 1.3 that is the session of the last ticket received.
	 */
	if (c->ssl != NULL && (c->error == NULL || strcmp(c->error, "eof") == 0))
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	/* SSL_free frees both BIOs, which SSL_set_bio gave it. */
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->ops->closed(c);
}
