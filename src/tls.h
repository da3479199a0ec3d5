/*
 * tls.h - TLS as a pump between ciphertext and plaintext.
 *
 * This file knows OpenSSL and nothing about sockets or libuv. Each
 * connection's SSL object talks to one BIO of our own (not OpenSSL's memory
 * BIOs, which copy every byte once more and keep their largest buffer for
 * the life of the connection):
 *
 *  - ciphertext in: the caller lends the bytes it just read from the socket
 *    (mg_tls_lend), OpenSSL reads its records straight out of them, and
 *    whatever it did not take is copied aside (mg_tls_keep) into a backlog
 *    that exists only while it holds bytes;
 *  - ciphertext out: every record OpenSSL writes goes straight to the
 *    caller's sink callback, which appends it to the next socket write.
 *
 * An idle connection therefore holds no ciphertext buffer at all, and a
 * relayed byte is copied once on each side (socket buffer -> OpenSSL's
 * record buffer, record buffer -> socket write) besides the AEAD itself.
 * The same adapter serves both sides: the gateway as a server to devices and
 * as a client to providers, for implicit TLS and STARTTLS.
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

/* Receives ciphertext to send, in order. 0 ok, -1 out of memory (the TLS operation fails). */
typedef int (*mg_tls_sink)(void *arg, const uint8_t *data, size_t len);

/* How a client connection's certificate chain was checked (for the logs). */
enum mg_tls_chain {
	MG_TLS_CHAIN_NONE = 0,	/* not (yet), or a resumed session: checked when it was new */
	MG_TLS_CHAIN_FULL,	/* built and verified */
	MG_TLS_CHAIN_CACHED	/* the same leaf, verified for the same name moments ago */
};

struct mg_tls {
	SSL		*ssl;		/* owned; NULL when not in use */
	int		 done;		/* handshake completed (and verified, as a client) */
	int		 fatal;		/* a TLS error or alert ended the connection */
	enum mg_tls_chain chain;	/* clients: how the chain was checked */
	mg_tls_sink	 sink;		/* where ciphertext to send goes */
	void		*sink_arg;
	const uint8_t	*lent;		/* ciphertext lent by the caller, not yet read */
	size_t		 lent_len;
	uint8_t		*backlog;	/* ciphertext kept aside (owned; NULL when empty) */
	size_t		 backlog_off, backlog_len;
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
 * Prepares t for one connection; t must not move until mg_tls_free(). As a
 * client (server == 0), host is the name to verify and to send as SNI; an IP
 * literal is verified against the certificate's IP addresses and sent
 * without SNI. slot (clients, may be NULL) holds the session to resume and
 * receives the server's new ones; it must outlive every connection that uses
 * it. Ciphertext to send goes to sink(sink_arg, ...). 0 ok, -1 error.
 */
int mg_tls_start(struct mg_tls *t, SSL_CTX *ctx, int server, const char *host, SSL_SESSION **slot,
    mg_tls_sink sink, void *sink_arg, char *err, size_t errlen);

/* Whether the handshake resumed a session. */
int mg_tls_resumed(const struct mg_tls *t);

/* "full", "cached" or "resumed": how a client connection's chain was checked. */
const char *mg_tls_chain_name(const struct mg_tls *t);

void mg_tls_free(struct mg_tls *t);

/*
 * Lends ciphertext received from the peer: OpenSSL reads from it during the
 * calls that follow. Before the bytes become invalid the caller must call
 * mg_tls_keep(), which copies what is left of them into the backlog.
 * 0 ok, -1 out of memory.
 */
void mg_tls_lend(struct mg_tls *t, const uint8_t *data, size_t len);
int mg_tls_keep(struct mg_tls *t);

/* Drives the handshake: 1 done (and verified), 0 needs more ciphertext, -1 failed (err says why). */
int mg_tls_handshake(struct mg_tls *t, char *err, size_t errlen);

/* Decrypts into buf: bytes (> 0), MG_TLS_AGAIN, MG_TLS_CLOSED or MG_TLS_ERROR. */
int mg_tls_read(struct mg_tls *t, uint8_t *buf, size_t len, char *err, size_t errlen);

/* Encrypts all of data, handing the records to the sink. 0 ok, -1 error. */
int mg_tls_write(struct mg_tls *t, const uint8_t *data, size_t len, char *err, size_t errlen);

/* Queues a close_notify alert. */
void mg_tls_close_notify(struct mg_tls *t);

/* Whether ciphertext received is still waiting to be decrypted. */
int mg_tls_has_input(const struct mg_tls *t);

/* Bytes of received ciphertext kept aside in the backlog. */
size_t mg_tls_backlog(const struct mg_tls *t);

/* The negotiated protocol version and cipher, for logs ("TLSv1.3", "TLS_AES_256_GCM_SHA384"). */
const char *mg_tls_version(const struct mg_tls *t);
const char *mg_tls_cipher(const struct mg_tls *t);

/*
 * Chains verified recently, one cache per client context. A provider that
 * does not resume sessions (Dovecot with several login processes, each
 * with its own ticket key) shows the same certificate at every login, and
 * building and checking its chain again (about 1.07 M instructions with
 * OpenSSL 3.0 for a leaf signed by its root, more for longer chains)
 * proves nothing new. An entry holds the leaf exactly as sent (DER), the
 * name or address it was verified for, the window in which every
 * certificate of the verified chain is valid, and a deadline after which
 * the chain is verified in full again. A hit still has the server prove,
 * by its handshake signature, that it holds that leaf's key. The trust
 * store is the context's, loaded once, so the cache lives and dies with it.
 */
#define MG_TLS_VCACHE_SLOTS	4
#define MG_TLS_VCACHE_TTL_S	600

struct mg_tls_verified {
	unsigned char	*der;		/* owned; NULL: a free slot */
	size_t		 der_len;
	char		*host;		/* owned */
	int64_t		 not_before;	/* Unix time: every certificate of the chain valid from ... */
	int64_t		 not_after;	/* ... until */
	int64_t		 until;		/* Unix time: verify in full again from then on */
};

struct mg_tls_vcache {
	struct mg_tls_verified	e[MG_TLS_VCACHE_SLOTS];
	unsigned		next;	/* the slot replaced next when none is free */
};

/* Whether der (the leaf as sent) was verified for host and still counts at time now. */
int mg_tls_vcache_hit(const struct mg_tls_vcache *c, const unsigned char *der, size_t len,
    const char *host, int64_t now);

/* Remembers a chain verified at time now; 0, or -1 (out of memory: nothing is remembered). */
int mg_tls_vcache_put(struct mg_tls_vcache *c, const unsigned char *der, size_t len,
    const char *host, int64_t not_before, int64_t not_after, int64_t now);

/* Forgets every entry. */
void mg_tls_vcache_clear(struct mg_tls_vcache *c);

#endif
