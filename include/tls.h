/*
 * TLS contexts: a listener's server contexts (certificates chosen by SNI,
 * ALPN, session cache, ticket keys that rotate and survive reloads) and a
 * pool's client context (verification, client certificate, per-server
 * session reuse). It builds SSL objects; moving bytes through them is the
 * transport's job (conn.c). Only tls*.c and this header include OpenSSL.
 *
 * For the transport: contexts set SSL_MODE_RELEASE_BUFFERS and nothing
 * else (add SSL_MODE_ENABLE_PARTIAL_WRITE etc. per SSL as the transport
 * needs). End a clean connection with one SSL_shutdown() before SSL_free():
 * OpenSSL marks the session of an SSL freed without it as not resumable,
 * which is right after an error but wastes the session otherwise.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config-t.h"

struct tls_server;
struct tls_client;

/*
 * Why building a context failed: msg names the file and what is wrong
 * ("key /etc/x.key does not match certificate /etc/x.pem"); directive is the
 * option the message is about ("chain", "key", "ciphers", "ticket_key_file",
 * "tls_ca", ...), so that config_build.c can point at its line; cert is the
 * index of the certificate section concerned, or -1.
 */
struct tls_error {
	char msg[512];
	const char *directive;
	int cert;
};

/* --------------------------------------------------------------- servers */

/*
 * Build the contexts of listener l from l->tls_conf: load and check every
 * certificate (an expired or not yet valid one loads with a log_warn),
 * index their DNS names (subjectAltName, else the CN) for SNI, and attach
 * the ticket keys: from ticket_key_file, or the in-memory ring kept for
 * l->name in a process-wide registry, so that a reload (a new tls_server
 * for the same listener name, built while the old one lives) keeps
 * accepting the tickets issued before it. Returns an owned object, or NULL
 * with err filled. Main thread (config loading).
 */
struct tls_server *tls_server_new(const struct config_listener *l, struct tls_error *err)
	__attribute__((warn_unused_result));

/* Free ts (NULL is fine). SSL objects made from it keep its contexts alive,
 * but not ts itself: free it only when no handshake can start on it, which
 * the generation's reference count ensures. */
void tls_server_free(struct tls_server *ts);

/*
 * A server-side SSL for one accepted connection, in accept state, on the
 * default certificate's context; during the handshake the SNI callback
 * switches it to the context of the certificate that matches the name
 * (exact name, then "*.domain" for one label, then the default), and ALPN
 * selects "http/1.1" when the client offers it (a client offering only
 * other protocols gets no ALPN, not a failure). The caller owns the SSL
 * (SSL_free) and attaches its BIO or fd. Returns NULL when out of memory.
 * Any thread.
 */
SSL *tls_server_session_new(struct tls_server *ts);

/* Strict-Transport-Security max-age in seconds; 0: send no header. */
unsigned tls_server_hsts(const struct tls_server *ts);

/*
 * Rotate the in-memory ticket keys of every listener whose ticket_rotate
 * interval has passed: a new key encrypts, the two before it still decrypt
 * (a ticket decrypted with an older key is renewed). now is seconds on a
 * clock that never goes back (CLOCK_MONOTONIC); the first call starts each
 * listener's interval. Call it from the main thread about once a second;
 * handshakes in the workers may run meanwhile. Returns how many listeners
 * got a new key.
 */
unsigned tls_tick(uint64_t now);

/* --------------------------------------------------------------- clients */

/*
 * The client context of pool p (p->tls_on): protocol TLS 1.2 to 1.3, ALPN
 * "http/1.1", verification against p->tls_ca (else the system store) when
 * p->tls_verify, and the client certificate p->tls_cert/tls_key if set.
 * Returns an owned object, or NULL with err filled. Main thread.
 */
struct tls_client *tls_client_new(const struct config_pool *p, struct tls_error *err)
	__attribute__((warn_unused_result));

/* Free tc and its saved sessions (NULL is fine). */
void tls_client_free(struct tls_client *tc);

/*
 * A client-side SSL to srv (a server of tc's pool), in connect state: SNI
 * and the name to verify are srv's tls_server_name, else the pool's; with
 * neither, no SNI is sent and the certificate must hold srv's IP address.
 * The last session saved for srv is offered for resumption; sessions the
 * server sends are saved by tc itself, so a later connection to srv
 * resumes without the caller doing anything. Returns NULL when out of
 * memory. Any thread.
 */
SSL *tls_client_session_new(struct tls_client *tc, const struct config_server *srv);

/* Drop the session saved for srv, e.g. after a handshake that failed. */
void tls_client_session_forget(struct tls_client *tc, const struct config_server *srv);

/* ---------------------------------------------------------- both sides */

/* "TLSv1.3", "TLSv1.2"; "-" before a handshake. */
const char *tls_version_name(const SSL *ssl);

/* The negotiated cipher, "TLS_AES_256_GCM_SHA384"; "-" before a handshake. */
const char *tls_cipher_name(const SSL *ssl);

/* The name the client sent as SNI (server side), or NULL. */
const char *tls_sni(const SSL *ssl);

/*
 * Why a handshake or I/O on ssl failed, for the error log, into buf:
 * "certificate verify failed: certificate has expired",
 * "certificate verify failed: hostname mismatch", "unsupported protocol"...
 * ssl_error is what SSL_get_error() returned. Reads and clears the calling
 * thread's OpenSSL error queue. Returns buf.
 */
const char *tls_error_reason(const SSL *ssl, int ssl_error, char *buf, size_t len);

#endif
