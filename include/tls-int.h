/*
 * Internals of the TLS module, shared by tls.c and the tls_*.c files it is
 * split into; only tls*.c include this header. tls.c owns OpenSSL's set-up,
 * the helpers and certificate files; tls_ticket.c owns the ticket key rings.
 */
#ifndef SLUICE_TLS_INT_H
#define SLUICE_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"

#define MAX_NAME_LEN	253

/* The one protocol both sides offer or accept, in ALPN's wire format. */
static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ------------------------------------------------------------------ tls.c */

/* Set by tls_init() and read-only after it, so any thread may read them. */
extern int tls_ctx_index;		/* SSL_CTX ex_data: its struct tls_server */
extern int tls_slot_index;		/* SSL ex_data: its struct client_slot */
extern EVP_CIPHER *tls_ticket_aes256, *tls_ticket_aes128;

/* Initialise OpenSSL and the indexes and ciphers above, once per process
 * whoever calls first; aborts if OpenSSL lacks them. Any thread. */
void tls_init(void);

/* Allocation while building contexts: on failure tls_oom() writes why and
 * aborts, which STYLE.md allows only in config loading, not on the data path. */
void tls_oom(void) __attribute__((noreturn));
void *tls_xcalloc(size_t n, size_t size);
void *tls_xrealloc(void *p, size_t n, size_t size);
char *tls_xstrdup(const char *s);

/* Fill err: the message from fmt, and the directive and certificate index
 * (-1: none) it is about. */
void tls_set_error(struct tls_error *err, const char *directive, int cert, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The reason of the thread's last OpenSSL error into buf, and an emptied
 * queue. Returns buf. */
const char *tls_last_reason(char *buf, size_t len);

/* Whether the thread's last OpenSSL error is reason of lib; the queue stays. */
bool tls_last_reason_is(int lib, int reason);

/* One certificate, its chain and its key, as read from PEM files. */
struct loaded_cert {
	X509 *leaf;
	STACK_OF(X509) *chain;
	EVP_PKEY *key;
	char **names;			/* DNS names, lower case, sorted, unique */
	size_t nnames;
};

/* Free what lc holds and zero it. */
void tls_cert_clear(struct loaded_cert *lc);

/*
 * Read a certificate chain and its key (key_path NULL: the chain file),
 * check that they match and collect the certificate's names; chain_dir and
 * key_dir are the directives err names, cert the certificate's index (-1:
 * none), what the owner in warnings. Returns 0 with lc filled (the caller
 * clears it), or -1 with err filled and lc cleared. Main thread.
 */
int tls_cert_load(const char *chain_path, const char *key_path, struct loaded_cert *lc,
		struct tls_error *err, const char *chain_dir, const char *key_dir, int cert,
		const char *what)
	__attribute__((warn_unused_result));

/* Make lc the certificate of ctx for its key type (ctx takes references).
 * Returns 0, or -1 with err filled about path. Main thread. */
int tls_cert_use(SSL_CTX *ctx, const struct loaded_cert *lc, const char *path,
		struct tls_error *err, const char *directive, int cert)
	__attribute__((warn_unused_result));

/* ----------------------------------------------------------- tls_ticket.c */

struct ticket_ring;			/* a listener's ticket keys, opaque here */

/* The in-memory ring of listener name, created on first use and shared by
 * reference otherwise (a new interval_s restarts its rotation). Returns a
 * reference, or NULL with err filled. Main thread. */
struct ticket_ring *tls_ticket_attach(const char *name, unsigned interval_s,
		struct tls_error *err)
	__attribute__((warn_unused_result));

/* The keys of a ticket_key_file, in a ring that never rotates; the caller
 * owns it. Returns NULL with err filled (naming the line) on error. */
struct ticket_ring *tls_ticket_from_file(const char *path, struct tls_error *err)
	__attribute__((warn_unused_result));

/* Drop the caller's reference to r (NULL is fine); a ring read from a file,
 * or the last reference to an in-memory one, is freed. Main thread. */
void tls_ticket_release(struct ticket_ring *r);

/* The ticket key callback's answer for ring r (NULL: tickets off), as
 * OpenSSL's SSL_CTX_set_tlsext_ticket_key_evp_cb wants it. Any thread. */
int tls_ticket_key(struct ticket_ring *r, unsigned char *key_name, unsigned char *iv,
		EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc);

#endif
