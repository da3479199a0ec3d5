/*
 * tls.h - TLS as a pump between ciphertext and plaintext.
 *
 * This file knows OpenSSL and nothing about sockets or libuv. Each
 * connection's SSL object reads ciphertext from one memory BIO and writes
 * ciphertext to another; conn.c moves bytes between those BIOs and the
 * socket. The same adapter serves both sides: the gateway as a server to
 * devices and as a client to providers, for implicit TLS and STARTTLS.
 *
 * Client connections always verify the chain and the host name (or IP
 * address) before the handshake counts as done: a credential is only ever
 * written after mg_tls_handshake() returned 1.
 */
#ifndef MG_TLS_H
#define MG_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

struct mg_tls {
	SSL	*ssl;		/* owned; NULL when not in use */
	BIO	*rbio;		/* ciphertext from the peer (owned by ssl) */
	BIO	*wbio;		/* ciphertext to the peer (owned by ssl) */
	int	 done;		/* handshake completed (and verified, as a client) */
};

/* Results of mg_tls_read(). */
#define MG_TLS_AGAIN	0	/* needs more ciphertext */
#define MG_TLS_ERROR	-1	/* fatal; err says why */
#define MG_TLS_CLOSED	-2	/* the peer sent close_notify */

/* A server context presenting cert (PEM chain) and key; TLS 1.2 minimum. NULL + err on failure. */
SSL_CTX *mg_tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);

/*
 * A client context that verifies peers against ca_file, or the system store
 * when ca_file is NULL; TLS 1.2 minimum; session caching on.
 */
SSL_CTX *mg_tls_client_ctx(const char *ca_file, char *err, size_t errlen);

/*
 * Prepares t for one connection. As a client (server == 0), host is the
 * name to verify and to send as SNI; an IP literal is verified against the
 * certificate's IP addresses and sent without SNI. slot (clients, may be
 * NULL) holds the session to resume and receives the server's new ones; it
 * must outlive every connection that uses it. 0 ok, -1 error.
 */
int mg_tls_start(struct mg_tls *t, SSL_CTX *ctx, int server, const char *host, SSL_SESSION **slot,
    char *err, size_t errlen);

/* Whether the handshake resumed a session. */
int mg_tls_resumed(const struct mg_tls *t);
void mg_tls_free(struct mg_tls *t);

/* Hands ciphertext received from the peer to OpenSSL. 0 ok, -1 out of memory. */
int mg_tls_feed(struct mg_tls *t, const uint8_t *data, size_t len);

/* Drives the handshake: 1 done (and verified), 0 needs more ciphertext, -1 failed (err says why). */
int mg_tls_handshake(struct mg_tls *t, char *err, size_t errlen);

/* Decrypts into buf: bytes (> 0), MG_TLS_AGAIN, MG_TLS_CLOSED or MG_TLS_ERROR. */
int mg_tls_read(struct mg_tls *t, uint8_t *buf, size_t len, char *err, size_t errlen);

/* Encrypts all of data into the outgoing BIO. 0 ok, -1 error. */
int mg_tls_write(struct mg_tls *t, const uint8_t *data, size_t len, char *err, size_t errlen);

/* Queues a close_notify alert. */
void mg_tls_close_notify(struct mg_tls *t);

/* Ciphertext waiting to be sent, and taking it: returns bytes copied into buf. */
size_t mg_tls_pending(const struct mg_tls *t);
size_t mg_tls_take(struct mg_tls *t, uint8_t *buf, size_t len);

/* Whether ciphertext received is still waiting to be decrypted. */
int mg_tls_has_input(const struct mg_tls *t);

/* The negotiated protocol version and cipher, for logs ("TLSv1.3", "TLS_AES_256_GCM_SHA384"). */
const char *mg_tls_version(const struct mg_tls *t);
const char *mg_tls_cipher(const struct mg_tls *t);

#endif
