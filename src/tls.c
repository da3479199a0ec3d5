/*
 * tls.c - see tls.h.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/*
 * Drains OpenSSL's error queue into err, prefixed by what we were doing, so
 * that a failure is one readable line and the queue is empty for the next
 * call (STYLE 6).
 */
static void
tls_err(char *err, size_t errlen, const char *what)
{
	unsigned long	 e;
	char		 buf[256];
	size_t		 off;
	int		 n;

	if (err == NULL || errlen == 0) {
		ERR_clear_error();
		return;
	}
	n = snprintf(err, errlen, "%s", what);
	off = n > 0 ? (size_t)n : 0;
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		if (off + 3 < errlen) {
			n = snprintf(err + off, errlen - off, ": %s",
			    ERR_reason_error_string(e) ? ERR_reason_error_string(e) : buf);
			off += n > 0 ? (size_t)n : 0;
		}
	}
}

static int
tls_ctx_common(SSL_CTX *ctx)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		return -1;
	/*
	 * Buffers are released while a connection is idle: thousands of IDLE
	 * sessions otherwise keep two 16 KiB records each for nothing.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
	/*
	 * TLS 1.3: AES-128-GCM first, as offered to providers and preferred
	 * with devices (OpenSSL's own order starts with AES-256-GCM-SHA384).
	 * Every suite is sound; this one hashes the handshake with SHA-256,
	 * which current CPUs do in hardware (3.4 % fewer instructions per
	 * resumed login through the gateway), and AES-128 encrypts faster.
	 * A device that lists ChaCha20 first (no AES instructions) gets it.
	 */
	if (!SSL_CTX_set_ciphersuites(ctx,
	    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"))
		return -1;
	/* Forward-secret AEAD suites only for TLS 1.2; TLS 1.3 suites are all fine. */
	if (!SSL_CTX_set_cipher_list(ctx,
	    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1"))
		return -1;
	return 0;
}

SSL_CTX *
mg_tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (tls_ctx_common(ctx) == -1) {
		tls_err(err, errlen, "TLS settings");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_err(err, errlen, cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errlen, key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errlen, "certificate and key do not match");
		goto fail;
	}
	/* Stateless tickets let a device resume without a server-side cache. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mailgate", 8);
	/*
	 * One ticket per handshake instead of OpenSSL's two: stateless
	 * tickets are not single-use (no early data here), so a device opening
	 * several connections can resume all of them with it, and each ticket
	 * costs a session encoding and an encryption on every login.
	 */
	(void)SSL_CTX_set_num_tickets(ctx, 1);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* The SSL ex_data index where a client connection's session slot is kept. */
static int tls_slot_index = -1;

/*
 * A provider sent a session (in TLS 1.3 after the handshake, as a ticket):
 * keep the newest in the connection's slot, for the next login there.
 */
static int
tls_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION **slot = SSL_get_ex_data(ssl, tls_slot_index);

	if (slot == NULL)
		return 0;
	SSL_SESSION_free(*slot);
	*slot = sess;
	return 1;	/* the reference is ours now */
}

int
mg_tls_vcache_hit(const struct mg_tls_vcache *c, const unsigned char *der, size_t len,
    const char *host, int64_t now)
{
	const struct mg_tls_verified	*e;
	size_t				 i;

	for (i = 0; i < MG_TLS_VCACHE_SLOTS; i++) {
		e = &c->e[i];
		if (e->der != NULL && e->der_len == len && memcmp(e->der, der, len) == 0 &&
		    strcmp(e->host, host) == 0 && now >= e->not_before && now <= e->not_after &&
		    now < e->until && now >= e->until - MG_TLS_VCACHE_TTL_S)
			return 1;
	}
	return 0;
}

static void
tls_verified_clear(struct mg_tls_verified *e)
{
	free(e->der);
	free(e->host);
	memset(e, 0, sizeof(*e));
}

int
mg_tls_vcache_put(struct mg_tls_vcache *c, const unsigned char *der, size_t len,
    const char *host, int64_t not_before, int64_t not_after, int64_t now)
{
	struct mg_tls_verified	*e = NULL;
	size_t			 i;

	/* The same leaf and name again (its entry expired): refresh it in place. */
	for (i = 0; i < MG_TLS_VCACHE_SLOTS && e == NULL; i++) {
		if (c->e[i].der != NULL && c->e[i].der_len == len &&
		    memcmp(c->e[i].der, der, len) == 0 && strcmp(c->e[i].host, host) == 0)
			e = &c->e[i];
	}
	for (i = 0; i < MG_TLS_VCACHE_SLOTS && e == NULL; i++) {
		if (c->e[i].der == NULL)
			e = &c->e[i];
	}
	if (e == NULL) {
		e = &c->e[c->next];
		c->next = (c->next + 1) % MG_TLS_VCACHE_SLOTS;
	}
	tls_verified_clear(e);
	if ((e->der = malloc(len > 0 ? len : 1)) == NULL || (e->host = strdup(host)) == NULL) {
		tls_verified_clear(e);
		return -1;
	}
	memcpy(e->der, der, len);
	e->der_len = len;
	e->not_before = not_before;
	e->not_after = not_after;
	e->until = now + MG_TLS_VCACHE_TTL_S;
	return 0;
}

void
mg_tls_vcache_clear(struct mg_tls_vcache *c)
{
	size_t i;

	for (i = 0; i < MG_TLS_VCACHE_SLOTS; i++)
		tls_verified_clear(&c->e[i]);
	c->next = 0;
}

/* The SSL_CTX ex_data index of a client context's verified-chain cache (freed with the context). */
static int tls_vcache_index = -1;

static void
tls_vcache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr != NULL) {
		mg_tls_vcache_clear(ptr);
		free(ptr);
	}
}

/* An ASN1_TIME as Unix time; -1 if it cannot be read. */
static int
tls_asn1_time(const ASN1_TIME *a, int64_t *out)
{
	struct tm tm;

	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* The window in which every certificate of a verified chain is valid; -1 if unknown. */
static int
tls_chain_window(STACK_OF(X509) *chain, int64_t *not_before, int64_t *not_after)
{
	int64_t	nb, na;
	int	i, n = chain != NULL ? sk_X509_num(chain) : 0;

	if (n <= 0)
		return -1;
	*not_before = INT64_MIN;
	*not_after = INT64_MAX;
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);

		if (tls_asn1_time(X509_get0_notBefore(x), &nb) == -1 ||
		    tls_asn1_time(X509_get0_notAfter(x), &na) == -1)
			return -1;
		if (nb > *not_before)
			*not_before = nb;
		if (na < *not_after)
			*not_after = na;
	}
	return 0;
}

/*
 * Replaces X509_verify_cert() for client contexts: a leaf verified for the
 * same name within MG_TLS_VCACHE_TTL_S, and still inside its chain's
 * validity, is accepted as it was then; anything else is verified in full
 * (and remembered when it passes). Returns 1 (verified) or 0 (not), never
 * -1, which libssl would take as "ask again later".
 */
static int
tls_verify_cb(X509_STORE_CTX *xs, void *arg)
{
	struct mg_tls_vcache	*c = arg;
	X509_VERIFY_PARAM	*vp = X509_STORE_CTX_get0_param(xs);
	X509			*leaf = X509_STORE_CTX_get0_cert(xs);
	SSL			*ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct mg_tls		*t = ssl != NULL ? BIO_get_data(SSL_get_rbio(ssl)) : NULL;
	unsigned char		*der = NULL;
	const char		*host;
	char			*ip = NULL;
	int64_t			 now = (int64_t)time(NULL), nb, na;
	int			 len = -1, r;

	if ((host = X509_VERIFY_PARAM_get0_host(vp, 0)) == NULL)
		host = ip = X509_VERIFY_PARAM_get1_ip_asc(vp);
	if (c != NULL && leaf != NULL && host != NULL)
		len = i2d_X509(leaf, &der);
	if (len > 0 && mg_tls_vcache_hit(c, der, (size_t)len, host, now)) {
		X509_STORE_CTX_set_error(xs, X509_V_OK);
		if (t != NULL)
			t->chain = MG_TLS_CHAIN_CACHED;
		r = 1;
	} else {
		r = X509_verify_cert(xs);
		if (r == 1 && X509_STORE_CTX_get_error(xs) == X509_V_OK) {
			if (len > 0 && tls_chain_window(X509_STORE_CTX_get0_chain(xs), &nb, &na) == 0)
				(void)mg_tls_vcache_put(c, der, (size_t)len, host, nb, na, now);
		} else {
			r = 0;
			if (X509_STORE_CTX_get_error(xs) == X509_V_OK)
				X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
		}
		if (t != NULL)
			t->chain = MG_TLS_CHAIN_FULL;
	}
	OPENSSL_free(der);
	OPENSSL_free(ip);
	return r;
}

SSL_CTX *
mg_tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
	struct mg_tls_vcache	*vc;
	SSL_CTX	*ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (tls_ctx_common(ctx) == -1) {
		tls_err(err, errlen, "TLS settings");
		goto fail;
	}
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			tls_err(err, errlen, ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_err(err, errlen, "system CA store");
		goto fail;
	}
	/* The handshake itself fails on an unverified chain or name. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (tls_slot_index == -1)
		tls_slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session_cb);
	if (tls_vcache_index == -1)
		tls_vcache_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_vcache_free);
	if (tls_vcache_index == -1 || (vc = calloc(1, sizeof(*vc))) == NULL) {
		tls_err(err, errlen, "out of memory");
		goto fail;
	}
	if (SSL_CTX_set_ex_data(ctx, tls_vcache_index, vc) != 1) {
		free(vc);
		tls_err(err, errlen, "SSL_CTX_set_ex_data");
		goto fail;
	}
	SSL_CTX_set_cert_verify_callback(ctx, tls_verify_cb, vc);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * Our BIO: reads come from the lent bytes (after the backlog, which is
 * older), writes go to the sink. One BIO serves as both rbio and wbio.
 */
static BIO_METHOD	*tls_bio_method;
static pthread_once_t	 tls_bio_once = PTHREAD_ONCE_INIT;

static int
tls_bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct mg_tls	*t = BIO_get_data(b);
	size_t		 n;

	BIO_clear_retry_flags(b);
	if (t->backlog != NULL) {
		n = t->backlog_len - t->backlog_off;
		if (n > len)
			n = len;
		memcpy(buf, t->backlog + t->backlog_off, n);
		t->backlog_off += n;
		if (t->backlog_off == t->backlog_len) {
			free(t->backlog);
			t->backlog = NULL;
			t->backlog_off = t->backlog_len = 0;
		}
	} else if (t->lent_len > 0) {
		n = t->lent_len < len ? t->lent_len : len;
		memcpy(buf, t->lent, n);
		t->lent += n;
		t->lent_len -= n;
	} else {
		/* Nothing yet: "try again later", never end of file. */
		BIO_set_retry_read(b);
		*got = 0;
		return 0;
	}
	*got = n;
	return 1;
}

static int
tls_bio_write(BIO *b, const char *buf, size_t len, size_t *put)
{
	struct mg_tls *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (t->sink(t->sink_arg, (const uint8_t *)buf, len) == -1) {
		*put = 0;
		return 0;
	}
	*put = len;
	return 1;
}

static long
tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct mg_tls *t = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:		/* records go to the sink as they are written */
		return 1;
	case BIO_CTRL_PENDING:
		return t != NULL ? (long)(t->lent_len + t->backlog_len - t->backlog_off) : 0;
	case BIO_CTRL_WPENDING:
		return 0;
	default:
		return 0;
	}
}

static int
tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
tls_bio_init_method(void)
{
	BIO_METHOD *m;

	if ((m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailgate")) == NULL)
		return;
	if (!BIO_meth_set_read_ex(m, tls_bio_read) || !BIO_meth_set_write_ex(m, tls_bio_write) ||
	    !BIO_meth_set_ctrl(m, tls_bio_ctrl) || !BIO_meth_set_create(m, tls_bio_create)) {
		BIO_meth_free(m);
		return;
	}
	tls_bio_method = m;
}

int
mg_tls_start(struct mg_tls *t, SSL_CTX *ctx, int server, const char *host, SSL_SESSION **slot,
    mg_tls_sink sink, void *sink_arg, char *err, size_t errlen)
{
	unsigned char	 ip[16];
	int		 is_ip;
	BIO		*bio;

	memset(t, 0, sizeof(*t));
	t->sink = sink;
	t->sink_arg = sink_arg;
	ERR_clear_error();
	if (pthread_once(&tls_bio_once, tls_bio_init_method) != 0 || tls_bio_method == NULL)
		goto fail;
	if ((t->ssl = SSL_new(ctx)) == NULL)
		goto fail;
	if ((bio = BIO_new(tls_bio_method)) == NULL)
		goto fail;
	BIO_set_data(bio, t);
	SSL_set_bio(t->ssl, bio, bio);	/* one reference, for both directions */
	if (server) {
		SSL_set_accept_state(t->ssl);
		return 0;
	}
	if (host == NULL || *host == '\0') {
		snprintf(err, errlen, "no host name to verify");
		goto fail_quiet;
	}
	is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	if (is_ip) {
		/* RFC 6066 §3: literal addresses are not sent as SNI. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
			goto fail;
	} else {
		if (SSL_set_tlsext_host_name(t->ssl, host) != 1)
			goto fail;
		SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(t->ssl, host) != 1)
			goto fail;
	}
	if (slot != NULL) {
		/*
		 * A session that cannot be resumed any more is simply not
		 * offered. The connection gets a copy: OpenSSL 3.0 marks the
		 * session a TLS 1.3 client resumed with as used up once its
		 * handshake ends, and the slot's must stay resumable for the
		 * logins that start before the provider's next ticket arrives.
		 */
		if (*slot != NULL && SSL_SESSION_is_resumable(*slot)) {
			SSL_SESSION *copy = SSL_SESSION_dup(*slot);

			if (copy != NULL) {
				(void)SSL_set_session(t->ssl, copy);
				SSL_SESSION_free(copy);	/* the SSL holds its own reference */
			}
		}
		SSL_set_ex_data(t->ssl, tls_slot_index, slot);
	}
	SSL_set_connect_state(t->ssl);
	return 0;
fail:
	tls_err(err, errlen, "TLS setup");
fail_quiet:
	mg_tls_free(t);
	return -1;
}

void
mg_tls_free(struct mg_tls *t)
{
	if (t->ssl != NULL) {
		/*
		 * OpenSSL marks a client's session unresumable when the SSL is
		 * freed without a close_notify sent, and in TLS 1.3 that
		 * session is the very ticket kept in the provider's slot: every
		 * provider that closes first after LOGOUT would cost the next
		 * login a full handshake and chain verification. Only a
		 * connection that ended on a TLS error keeps that penalty.
		 */
		if (t->done && !t->fatal)
			SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(t->ssl);	/* frees the BIO */
	}
	free(t->backlog);
	memset(t, 0, sizeof(*t));
}

void
mg_tls_lend(struct mg_tls *t, const uint8_t *data, size_t len)
{
	t->lent = data;
	t->lent_len = len;
}

int
mg_tls_keep(struct mg_tls *t)
{
	uint8_t	*nb;
	size_t	 have, n = t->lent_len;

	t->lent_len = 0;
	if (n == 0)
		return 0;
	have = t->backlog_len - t->backlog_off;
	if ((nb = malloc(have + n)) == NULL) {
		t->lent = NULL;
		return -1;
	}
	if (have > 0)
		memcpy(nb, t->backlog + t->backlog_off, have);
	memcpy(nb + have, t->lent, n);
	free(t->backlog);
	t->backlog = nb;
	t->backlog_off = 0;
	t->backlog_len = have + n;
	t->lent = NULL;
	return 0;
}

size_t
mg_tls_backlog(const struct mg_tls *t)
{
	return t->backlog_len - t->backlog_off;
}

int
mg_tls_handshake(struct mg_tls *t, char *err, size_t errlen)
{
	int	r, e;
	long	vr;

	if (t->done)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		/*
		 * SSL_VERIFY_PEER already failed the handshake on a bad chain
		 * or name; check again so that a context set up without it
		 * can never let a client connection through unverified.
		 */
		if (!SSL_is_server(t->ssl)) {
			vr = SSL_get_verify_result(t->ssl);
			if (vr != X509_V_OK || SSL_get0_peer_certificate(t->ssl) == NULL) {
				t->fatal = 1;
				snprintf(err, errlen, "certificate verify failed: %s",
				    X509_verify_cert_error_string(vr));
				return -1;
			}
		}
		t->done = 1;
		return 1;
	}
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	t->fatal = 1;
	vr = SSL_get_verify_result(t->ssl);
	if (!SSL_is_server(t->ssl) && vr != X509_V_OK) {
		ERR_clear_error();
		snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
	} else
		tls_err(err, errlen, "TLS handshake");
	return -1;
}

int
mg_tls_read(struct mg_tls *t, uint8_t *buf, size_t len, char *err, size_t errlen)
{
	int	r, e;

	if (len > INT32_MAX)
		len = INT32_MAX;
	ERR_clear_error();
	r = SSL_read(t->ssl, buf, (int)len);
	if (r > 0)
		return r;
	e = SSL_get_error(t->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return MG_TLS_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return MG_TLS_CLOSED;
	default:
		t->fatal = 1;
		tls_err(err, errlen, "TLS read");
		return MG_TLS_ERROR;
	}
}

int
mg_tls_write(struct mg_tls *t, const uint8_t *data, size_t len, char *err, size_t errlen)
{
	size_t	off = 0;
	int	r;

	ERR_clear_error();
	while (off < len) {
		size_t n = len - off > 1 << 20 ? 1 << 20 : len - off;

		/* The sink takes everything, so SSL_write never wants to wait here. */
		r = SSL_write(t->ssl, data + off, (int)n);
		if (r <= 0) {
			t->fatal = 1;
			tls_err(err, errlen, "TLS write");
			return -1;
		}
		off += (size_t)r;
	}
	return 0;
}

void
mg_tls_close_notify(struct mg_tls *t)
{
	ERR_clear_error();
	if (t->ssl != NULL && t->done)
		(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

int
mg_tls_has_input(const struct mg_tls *t)
{
	return t->ssl != NULL && (t->lent_len > 0 || t->backlog != NULL || SSL_has_pending(t->ssl));
}

const char *
mg_tls_version(const struct mg_tls *t)
{
	return t->ssl != NULL ? SSL_get_version(t->ssl) : "none";
}

const char *
mg_tls_cipher(const struct mg_tls *t)
{
	const char *c = t->ssl != NULL ? SSL_get_cipher_name(t->ssl) : NULL;

	return c != NULL ? c : "none";
}

int
mg_tls_resumed(const struct mg_tls *t)
{
	return t->ssl != NULL && SSL_session_reused(t->ssl);
}

const char *
mg_tls_chain_name(const struct mg_tls *t)
{
	switch (t->chain) {
	case MG_TLS_CHAIN_FULL:
		return "full";
	case MG_TLS_CHAIN_CACHED:
		return "cached";
	default:
		return mg_tls_resumed(t) ? "resumed" : "none";
	}
}
