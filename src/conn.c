/*
 * conn.c - see conn.h.
 */
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/*
 * A write request owns its bytes; freed in conn_write_cb whatever the
 * status. With TLS, OpenSSL's records are gathered into c->wpend by the sink
 * and the request is submitted when the operation that wrote them is over,
 * so a 64 KiB relay write is four records in one write(2).
 */
struct mg_conn_wreq {
	uv_write_t	 req;
	struct mg_conn	*c;
	size_t		 plain;		/* plaintext bytes this request accounts for */
	size_t		 cost;		/* memory it holds while queued (counted in wq_bytes) */
	size_t		 len;
	uint8_t		 data[];
};

/* TLS record overhead allowance per record when reserving (TLS 1.2 GCM: 29 bytes). */
#define CONN_RECORD_SLACK	64

static void	conn_alloc_cb(uv_handle_t *, size_t, uv_buf_t *);
static void	conn_read_cb(uv_stream_t *, ssize_t, const uv_buf_t *);
static void	conn_write_cb(uv_write_t *, int);
static void	conn_close_cb(uv_handle_t *);
static void	conn_connect_cb(uv_connect_t *, int);
static void	conn_shutdown_cb(uv_shutdown_t *, int);
static void	conn_process(struct mg_conn *);
static void	conn_update_reading(struct mg_conn *);
static int	conn_send(struct mg_conn *, const uint8_t *, size_t, size_t);
static int	conn_flush_tls(struct mg_conn *, size_t);
static void	conn_fail(struct mg_conn *, const char *, const char *);
static int	conn_in_alloc(struct mg_conn *);
static void	conn_in_release(struct mg_conn *);
static int	conn_tls_sink(void *, const uint8_t *, size_t);
static int	conn_wpend_reserve(struct mg_conn *, size_t);

/*
 * Ciphertext is read into one buffer per thread: libuv calls alloc_cb and
 * read_cb back to back for one stream, and read_cb hands the bytes to
 * OpenSSL at once, so no two connections ever use it at the same time.
 */
static _Thread_local uint8_t conn_rx[MG_CONN_RXBUF];
static struct mg_conn_wreq *conn_wreq_new(struct mg_conn *, size_t, size_t);
static int	conn_wreq_submit(struct mg_conn *, struct mg_conn_wreq *, size_t);
static void	conn_wreq_free(struct mg_conn *, struct mg_conn_wreq *);


int
mg_conn_init(struct mg_conn *c, uv_loop_t *loop, void *owner)
{
	int	r;

	memset(c, 0, sizeof(*c));
	c->owner = owner;
	if ((r = uv_tcp_init(loop, &c->tcp)) != 0)
		return r;
	c->tcp.data = c;
	c->open = 1;
	return 0;
}

void
mg_conn_start(struct mg_conn *c)
{
	(void)uv_tcp_nodelay(&c->tcp, 1);
	c->started = 1;
	conn_update_reading(c);
}

int
mg_conn_connect(struct mg_conn *c, const struct sockaddr *addr)
{
	c->connect_req.data = c;
	return uv_tcp_connect(&c->connect_req, &c->tcp, addr, conn_connect_cb);
}

static void
conn_connect_cb(uv_connect_t *req, int status)
{
	struct mg_conn *c = req->data;

	if (c->closing)
		return;
	if (status == 0)
		mg_conn_start(c);
	c->on_connect(c, status);
}

int
mg_conn_starttls(struct mg_conn *c, SSL_CTX *ctx, int server, const char *host)
{
	mg_conn_discard_input(c);
	if (mg_tls_start(&c->tls, ctx, server, host, server ? NULL : c->resume, conn_tls_sink, c,
	    c->error, sizeof(c->error)) == -1) {
		c->failed = 1;
		return -1;
	}
	c->tls_on = 1;
	if (!server) {
		/* The ClientHello: the handshake wants to read next, which is fine. */
		if (mg_tls_handshake(&c->tls, c->error, sizeof(c->error)) == -1 ||
		    conn_flush_tls(c, 0) == -1) {
			c->failed = 1;
			return -1;
		}
	}
	conn_update_reading(c);
	return 0;
}

static void
conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mg_conn *c = h->data;

	(void)suggested;
	if (c->tls_on) {
		buf->base = (char *)conn_rx;
		buf->len = sizeof(conn_rx);
	} else if (conn_in_alloc(c) == 0) {
		/* Plaintext lands straight in the input buffer: no copy. */
		buf->base = (char *)c->in + c->in_len;
		buf->len = MG_CONN_INBUF - c->in_len;
	} else {
		buf->base = NULL;
		buf->len = 0;	/* read_cb gets UV_ENOBUFS */
	}
}

static void
conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct mg_conn *c = s->data;

	(void)buf;
	if (c->closing)
		return;
	if (nread == 0 || nread == UV_ENOBUFS) {
		if (!c->in_cb && c->in_len == 0)
			conn_in_release(c);
		conn_update_reading(c);
		return;
	}
	if (nread == UV_EOF) {
		c->eof = 1;
	} else if (nread < 0) {
		conn_fail(c, "read", uv_strerror((int)nread));
	} else if (c->tls_on) {
		/*
		 * OpenSSL reads its records straight out of the thread's read
		 * buffer; what it does not take now (paused, input full) is
		 * copied aside before the buffer is reused.
		 */
		mg_tls_lend(&c->tls, (const uint8_t *)buf->base, (size_t)nread);
		conn_process(c);
		if (mg_tls_keep(&c->tls) == -1) {
			conn_fail(c, "TLS", "out of memory");
			conn_process(c);
		}
		return;
	} else {
		c->in_len += (size_t)nread;
		if (c->in_len > c->in_used)
			c->in_used = c->in_len;
		c->bytes_in += (uint64_t)nread;
	}
	conn_process(c);
}

static void
conn_fail(struct mg_conn *c, const char *what, const char *why)
{
	if (!c->failed) {
		c->failed = 1;
		snprintf(c->error, sizeof(c->error), "%s: %s", what, why);
	}
}

/*
 * Moves input along: finishes a TLS handshake, decrypts what fits, and
 * shows the owner what is new. It loops because the owner may consume input
 * (making room for more plaintext already received) or start TLS from its
 * callback; it never re-enters itself.
 */
static void
conn_process(struct mg_conn *c)
{
	int	r;

	if (c->in_cb)
		return;
	c->in_cb = 1;
	while (!c->closing) {
		if (c->tls_on && !c->failed) {
			if (!c->tls.done) {
				r = mg_tls_handshake(&c->tls, c->error, sizeof(c->error));
				if (r != -1 && conn_flush_tls(c, 0) == -1)
					r = -1;
				if (r == -1) {
					c->failed = 1;
					c->on_handshake(c, -1);
					break;
				}
				if (r == 1) {
					c->on_handshake(c, 0);
					continue;
				}
			}
			while (c->tls.done && !c->paused && !c->eof && c->in_len < MG_CONN_INBUF &&
			    mg_tls_has_input(&c->tls)) {
				if (conn_in_alloc(c) == -1) {
					c->failed = 1;
					break;
				}
				r = mg_tls_read(&c->tls, c->in + c->in_len, MG_CONN_INBUF - c->in_len,
				    c->error, sizeof(c->error));
				if (r > 0) {
					c->in_len += (size_t)r;
					if (c->in_len > c->in_used)
						c->in_used = c->in_len;
					c->bytes_in += (uint64_t)r;
				} else if (r == MG_TLS_CLOSED) {
					c->eof = 1;
				} else if (r == MG_TLS_ERROR) {
					c->failed = 1;
					break;
				} else
					break;
			}
			/* Reading can produce records to send (session tickets, alerts). */
			if (c->tls_on && conn_flush_tls(c, 0) == -1)
				c->failed = 1;
		}
		if (c->paused)
			break;
		if (c->in_len > c->in_seen || ((c->eof || c->failed) && !c->end_shown)) {
			if (c->eof || c->failed)
				c->end_shown = 1;
			c->on_read(c);
			c->in_seen = c->in_len;
			continue;
		}
		break;
	}
	c->in_cb = 0;
	if (c->in_len == 0)
		conn_in_release(c);
	conn_update_reading(c);
}

/* Makes sure the input buffer exists. 0 ok, -1 out of memory (c fails). */
static int
conn_in_alloc(struct mg_conn *c)
{
	if (c->in != NULL)
		return 0;
	if ((c->in = malloc(MG_CONN_INBUF)) == NULL) {
		conn_fail(c, "read", "out of memory");
		return -1;
	}
	c->in_used = 0;
	return 0;
}

/* Frees the empty input buffer: idle connections hold none. */
static void
conn_in_release(struct mg_conn *c)
{
	if (c->in == NULL || c->in_len != 0)
		return;
	if (c->wipe)
		OPENSSL_cleanse(c->in, c->in_used);
	free(c->in);
	c->in = NULL;
	c->in_used = 0;
}

static void
conn_update_reading(struct mg_conn *c)
{
	int want;

	if (!c->open || c->closing)
		return;
	/*
	 * Never more ciphertext while some is kept aside: that bounds the
	 * backlog. A pause stops reading lazily: only once input arrived that
	 * the owner has not been shown (plaintext in in[], or ciphertext kept
	 * aside). Most pauses (a login waiting for its check, a relay waiting
	 * for the other side to drain) end before the peer sends anything, and
	 * then cost no stop and restart of the socket's polling.
	 */
	want = !c->eof && !c->failed && c->in_len < MG_CONN_INBUF && c->started &&
	    (!c->tls_on || mg_tls_backlog(&c->tls) == 0) &&
	    !(c->paused && c->in_len > c->in_seen);
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) == 0)
			c->reading = 1;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

/* A write request with room for len bytes; NULL (and c failed) when out of memory. */
static struct mg_conn_wreq *
conn_wreq_new(struct mg_conn *c, size_t len, size_t plain)
{
	struct mg_conn_wreq *w;

	if ((w = malloc(sizeof(*w) + len)) == NULL) {
		conn_fail(c, "write", "out of memory");
		return NULL;
	}
	w->c = c;
	w->plain = plain;
	w->len = len;
	return w;
}

/* Frees a write request whose bytes are gone (written, or never to be). */
static void
conn_wreq_free(struct mg_conn *c, struct mg_conn_wreq *w)
{
	/* Plaintext requests may hold protocol secrets (upstream login lines). */
	if (c->wipe && !c->tls_on)
		OPENSSL_cleanse(w->data, w->len);
	free(w);
}

/*
 * Sends w: first straight to the socket (uv_try_write), which is where
 * nearly every write ends; only what the socket does not take goes through
 * a queued uv_write(). A write done at once costs no request, no deferred
 * callback and no re-arming of the poll set. On failure frees w and fails c.
 */
static int
conn_wreq_submit(struct mg_conn *c, struct mg_conn_wreq *w, size_t cap)
{
	struct mg_conn_wreq	*nw;
	uv_buf_t		 b = uv_buf_init((char *)w->data, (unsigned int)w->len);
	size_t			 off = 0;
	int			 r;

	/* libuv refuses (UV_EAGAIN) while earlier writes are queued, which keeps the order. */
	r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (r == (int)w->len) {
		c->bytes_out += w->plain;
		conn_wreq_free(c, w);
		return 0;
	}
	if (r > 0)
		off = (size_t)r;
	/* Queued: keep no more room than the bytes need (a peer that does not read
	 * must not make many small replies hold a big buffer each). */
	if (cap > w->len + 256 && (nw = realloc(w, sizeof(*w) + w->len)) != NULL)
		w = nw;
	w->cost = sizeof(*w) + w->len;
	b = uv_buf_init((char *)w->data + off, (unsigned int)(w->len - off));
	/* Errors other than "would block" are reported by uv_write, as before. */
	if ((r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb)) != 0) {
		conn_wreq_free(c, w);
		conn_fail(c, "write", uv_strerror(r));
		return -1;
	}
	/* Memory, not plaintext, is what the high-water mark bounds. */
	c->wq_bytes += w->cost;
	if (c->wq_bytes > MG_CONN_HIGH_WATER)
		c->wq_high = 1;
	return 0;
}

static int
conn_send(struct mg_conn *c, const uint8_t *data, size_t len, size_t plain)
{
	struct mg_conn_wreq *w;

	if ((w = conn_wreq_new(c, len, plain)) == NULL)
		return -1;
	memcpy(w->data, data, len);
	return conn_wreq_submit(c, w, len);
}

/* Makes room for len more bytes of ciphertext in c->wpend. 0 ok, -1 out of memory. */
static int
conn_wpend_reserve(struct mg_conn *c, size_t len)
{
	struct mg_conn_wreq	*w = c->wpend, *nw;
	size_t			 have = w != NULL ? w->len : 0, cap;

	if (w != NULL && have + len <= c->wpend_cap)
		return 0;
	cap = c->wpend_cap * 2;
	if (cap < have + len)
		cap = have + len;
	if ((nw = realloc(w, sizeof(*nw) + cap)) == NULL)
		return -1;
	if (w == NULL) {
		nw->c = c;
		nw->plain = 0;
		nw->len = 0;
	}
	c->wpend = nw;
	c->wpend_cap = cap;
	return 0;
}

/* OpenSSL's sink: appends a record (or part of one) to the next socket write. */
static int
conn_tls_sink(void *arg, const uint8_t *data, size_t len)
{
	struct mg_conn *c = arg;

	/* Unannounced output (a handshake flight) comes in several small pieces. */
	if (conn_wpend_reserve(c, c->wpend == NULL && len < 1024 ? 1024 : len) == -1) {
		conn_fail(c, "write", "out of memory");
		return -1;
	}
	memcpy(c->wpend->data + c->wpend->len, data, len);
	c->wpend->len += len;
	return 0;
}

/* Sends whatever ciphertext OpenSSL produced, accounting `plain` bytes to it. */
static int
conn_flush_tls(struct mg_conn *c, size_t plain)
{
	struct mg_conn_wreq	*w = c->wpend;
	size_t			 cap = c->wpend_cap;

	if (w == NULL)
		return 0;
	c->wpend = NULL;
	c->wpend_cap = 0;
	if (w->len == 0) {
		free(w);
		return 0;
	}
	w->plain = plain;
	return conn_wreq_submit(c, w, cap);
}

static void
conn_write_cb(uv_write_t *req, int status)
{
	struct mg_conn_wreq	*w = (struct mg_conn_wreq *)req;
	struct mg_conn		*c = w->c;

	c->wq_bytes -= w->cost;
	c->bytes_out += w->plain;
	conn_wreq_free(c, w);
	if (c->closing)
		return;
	if (status < 0) {
		conn_fail(c, "write", uv_strerror(status));
		conn_process(c);
		return;
	}
	if (c->wq_high && c->wq_bytes <= MG_CONN_LOW_WATER) {
		c->wq_high = 0;
		if (c->on_drain != NULL)
			c->on_drain(c);
	}
}

int
mg_conn_write(struct mg_conn *c, const void *data, size_t len)
{
	if (c->closing || c->failed || c->shut)
		return -1;
	if (len == 0)
		return 0;
	if (!c->tls_on)
		return conn_send(c, data, len, len);
	/* Room for all the records at once: one buffer, no regrowth. */
	if (conn_wpend_reserve(c, len + ((len >> 14) + 1) * CONN_RECORD_SLACK) == -1) {
		conn_fail(c, "write", "out of memory");
		return -1;
	}
	if (mg_tls_write(&c->tls, data, len, c->error, sizeof(c->error)) == -1) {
		c->failed = 1;
		return -1;
	}
	return conn_flush_tls(c, len);
}

int
mg_conn_printf(struct mg_conn *c, const char *fmt, ...)
{
	char	buf[2048];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return mg_conn_write(c, buf, (size_t)n);
}

void
mg_conn_consume(struct mg_conn *c, size_t n)
{
	if (n >= c->in_len) {
		c->in_len = 0;
		c->in_seen = 0;
	} else {
		memmove(c->in, c->in + n, c->in_len - n);
		c->in_len -= n;
		c->in_seen = c->in_seen > n ? c->in_seen - n : 0;
	}
	conn_update_reading(c);
}

void
mg_conn_discard_input(struct mg_conn *c)
{
	if (c->in != NULL)
		OPENSSL_cleanse(c->in, c->in_used);
	c->in_len = 0;
	c->in_seen = 0;
	if (!c->in_cb)
		conn_in_release(c);
	conn_update_reading(c);
}

void
mg_conn_wipe_spare(struct mg_conn *c)
{
	if (c->in != NULL && c->in_used > c->in_len)
		OPENSSL_cleanse(c->in + c->in_len, c->in_used - c->in_len);
}

void
mg_conn_pause(struct mg_conn *c)
{
	c->paused = 1;
	conn_update_reading(c);
}

void
mg_conn_resume(struct mg_conn *c)
{
	if (!c->paused)
		return;
	c->paused = 0;
	conn_process(c);
}

void
mg_conn_shutdown(struct mg_conn *c)
{
	/* Only a started conn shuts down (the request shares memory with connect's). */
	if (!c->open || c->closing || c->shut || !c->started)
		return;
	c->shut = 1;
	if (c->tls_on && c->tls.done) {
		mg_tls_close_notify(&c->tls);
		(void)conn_flush_tls(c, 0);
	}
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) != 0)
		conn_shutdown_cb(&c->shutdown_req, UV_ENOTCONN);
}

static void
conn_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct mg_conn *c = req->data;

	(void)status;
	c->shut_done = 1;
	if (!c->closing && c->on_shutdown != NULL)
		c->on_shutdown(c);
}

void
mg_conn_close(struct mg_conn *c)
{
	if (!c->open || c->closing)
		return;
	c->closing = 1;
	if (c->reading)
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = 0;
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void
conn_close_cb(uv_handle_t *h)
{
	struct mg_conn *c = h->data;

	mg_tls_free(&c->tls);
	free(c->wpend);
	c->wpend = NULL;
	c->in_len = 0;
	conn_in_release(c);
	c->open = 0;
	if (c->on_close != NULL)
		c->on_close(c);
}
