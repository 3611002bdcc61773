/*
 * What the TLS files share (tls-int.h): OpenSSL's one-time set-up, the error
 * and allocation helpers, reading and checking certificate and key files, and
 * tls.h's accessors for any SSL. Contexts are tls_server.c's and
 * tls_client.c's; ticket keys are tls_ticket.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls-int.h"

/* ------------------------------------------------------------ utilities */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
int tls_ctx_index = -1;		/* SSL_CTX ex_data: its struct tls_server */
int tls_slot_index = -1;	/* SSL ex_data: its struct client_slot */
/*
 * The ticket ciphers, fetched once: EVP_aes_256_cbc() and the like make
 * OpenSSL 3 look the algorithm up by name, under a lock, on every ticket
 * (two per full handshake). Kept for the life of the process.
 */
EVP_CIPHER *tls_ticket_aes256, *tls_ticket_aes128;

static void
init_openssl(void)
{
	OPENSSL_init_ssl(0, NULL);
	tls_ticket_aes256 = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	tls_ticket_aes128 = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
	if (tls_ticket_aes256 == NULL || tls_ticket_aes128 == NULL) {
		fputs("sluice: OpenSSL has no AES-CBC for session tickets\n", stderr);
		abort();
	}
	tls_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tls_slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (tls_ctx_index < 0 || tls_slot_index < 0) {
		fputs("sluice: cannot initialise OpenSSL\n", stderr);
		abort();
	}
}

void
tls_init(void)
{
	pthread_once(&init_once, init_openssl);
}

/* Contexts are built while loading a configuration, where STYLE.md allows
 * giving up on allocation failure; the data path returns NULL instead. */
void __attribute__((noreturn))
tls_oom(void)
{
	fputs("sluice: out of memory while building TLS contexts\n", stderr);
	abort();
}

void *
tls_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		tls_oom();
	return p;
}

void *
tls_xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		tls_oom();
	p = realloc(p, n * size != 0 ? n * size : 1);
	if (p == NULL)
		tls_oom();
	return p;
}

char *
tls_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(tls_xcalloc(1, n), s, n);
}

void __attribute__((format(printf, 4, 5)))
tls_set_error(struct tls_error *err, const char *directive, int cert, const char *fmt, ...)
{
	va_list ap;

	err->directive = directive;
	err->cert = cert;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* The reason of the thread's last OpenSSL error, and an emptied queue. */
const char *
tls_last_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(buf, len, "%s", r);
	else if (e != 0)
		snprintf(buf, len, "OpenSSL error %08lx", e);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

bool
tls_last_reason_is(int lib, int reason)
{
	unsigned long e = ERR_peek_last_error();

	return ERR_GET_LIB(e) == lib && ERR_GET_REASON(e) == reason;
}

/* "2027-03-01T12:00:00Z" for an ASN1 time, or "?" */
static void
format_asn1_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
}

/* ---------------------------------------------------- certificate files */

void
tls_cert_clear(struct loaded_cert *lc)
{
	X509_free(lc->leaf);
	sk_X509_pop_free(lc->chain, X509_free);
	EVP_PKEY_free(lc->key);
	for (size_t i = 0; i < lc->nnames; i++)
		free(lc->names[i]);
	free(lc->names);
	memset(lc, 0, sizeof(*lc));
}

/* Encrypted keys would make OpenSSL prompt on the terminal: refuse them. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)u = true;
	return -1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add a name of the certificate if it can be a host name or "*.domain". */
static void
add_name(struct loaded_cert *lc, const unsigned char *s, size_t len)
{
	char *name;

	if (len == 0 || len > MAX_NAME_LEN)
		return;
	for (size_t i = 0; i < len; i++)
		if (!isalnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_' &&
		    !(s[i] == '*' && i == 0 && len > 2 && s[1] == '.'))
			return;
	name = tls_xcalloc(1, len + 1);
	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower(s[i]);
	lc->names = tls_xrealloc(lc->names, lc->nnames + 1, sizeof(*lc->names));
	lc->names[lc->nnames++] = name;
}

/* The names SNI selects the certificate by: its subjectAltName DNS entries,
 * or its CN when it has none (as browsers did before SANs). */
static void
collect_names(struct loaded_cert *lc)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(lc->leaf, NID_subject_alt_name, NULL, NULL);
	X509_NAME *subj;
	size_t j = 0;
	int idx = -1;

	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS)
			add_name(lc, ASN1_STRING_get0_data(g->d.dNSName),
				(size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	subj = X509_get_subject_name(lc->leaf);
	while (lc->nnames == 0 && subj != NULL &&
	       (idx = X509_NAME_get_index_by_NID(subj, NID_commonName, idx)) >= 0) {
		unsigned char *utf8 = NULL;
		int len = ASN1_STRING_to_UTF8(&utf8,
			X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));

		if (len > 0)
			add_name(lc, utf8, (size_t)len);
		OPENSSL_free(utf8);
	}
	ERR_clear_error();
	if (lc->nnames > 1)
		qsort(lc->names, lc->nnames, sizeof(*lc->names), cmp_str);
	for (size_t i = 0; i < lc->nnames; i++) {
		if (j > 0 && strcmp(lc->names[j - 1], lc->names[i]) == 0)
			free(lc->names[i]);
		else
			lc->names[j++] = lc->names[i];
	}
	lc->nnames = j;
}

/* An expired or not yet valid certificate loads, with a warning: refusing
 * it would turn a forgotten renewal into a proxy that does not start. */
static void
warn_validity(const struct loaded_cert *lc, const char *what, const char *path)
{
	char date[64];

	if (X509_cmp_current_time(X509_get0_notAfter(lc->leaf)) < 0) {
		format_asn1_time(X509_get0_notAfter(lc->leaf), date, sizeof(date));
		log_warn("%s: %s expired on %s (notAfter); loaded anyway", what, path, date);
	} else if (X509_cmp_current_time(X509_get0_notBefore(lc->leaf)) > 0) {
		format_asn1_time(X509_get0_notBefore(lc->leaf), date, sizeof(date));
		log_warn("%s: %s is not valid before %s (notBefore); loaded anyway",
			what, path, date);
	}
}

static int
read_chain(const char *path, struct loaded_cert *lc, struct tls_error *err,
		const char *directive, int cert)
{
	char why[160];
	FILE *fp = fopen(path, "r");
	X509 *x;

	if (fp == NULL) {
		tls_set_error(err, directive, cert, "cannot open certificate %s: %s", path,
			strerror(errno));
		return -1;
	}
	ERR_clear_error();
	lc->leaf = PEM_read_X509(fp, NULL, NULL, NULL);
	if (lc->leaf == NULL) {
		if (tls_last_reason_is(ERR_LIB_PEM, PEM_R_NO_START_LINE))
			tls_set_error(err, directive, cert, "no PEM certificate in %s", path);
		else
			tls_set_error(err, directive, cert, "bad PEM certificate in %s: %s", path,
				tls_last_reason(why, sizeof(why)));
		ERR_clear_error();
		fclose(fp);
		return -1;
	}
	lc->chain = sk_X509_new_null();
	if (lc->chain == NULL)
		tls_oom();
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(lc->chain, x))
			tls_oom();
	/* The end of the file reads as "no start line"; anything else is a
	 * broken block after the first certificate. */
	if (!tls_last_reason_is(ERR_LIB_PEM, PEM_R_NO_START_LINE) && ERR_peek_last_error() != 0) {
		tls_set_error(err, directive, cert, "bad PEM certificate in %s after the first one: %s",
			path, tls_last_reason(why, sizeof(why)));
		fclose(fp);
		return -1;
	}
	ERR_clear_error();
	fclose(fp);
	return 0;
}

/* The whole of a small file (a key), NUL-terminated; NULL with errno set. */
static char *
slurp(const char *path, size_t *len)
{
	enum { MAX_KEY_FILE = 1 << 20 };
	FILE *fp = fopen(path, "r");
	char *buf;

	if (fp == NULL)
		return NULL;
	buf = tls_xcalloc(1, MAX_KEY_FILE + 1);
	*len = fread(buf, 1, MAX_KEY_FILE, fp);
	if (ferror(fp)) {
		int e = errno;

		fclose(fp);
		free(buf);
		errno = e;
		return NULL;
	}
	fclose(fp);
	return buf;
}

static int
read_key(const char *path, const char *chain_path, struct loaded_cert *lc,
		struct tls_error *err, const char *directive, int cert)
{
	char why[160];
	bool asked = false;
	size_t len = 0;
	char *text = slurp(path, &len);
	BIO *bio;

	if (text == NULL) {
		tls_set_error(err, directive, cert, "cannot open key %s: %s", path, strerror(errno));
		return -1;
	}
	/* OpenSSL's decoders say "unsupported" for a file without any key;
	 * look for the PEM line ourselves to say so plainly. */
	if (strstr(text, "PRIVATE KEY-----") == NULL) {
		tls_set_error(err, directive, cert, "no PEM private key in %s", path);
		OPENSSL_cleanse(text, len);
		free(text);
		return -1;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(text, (int)len);
	if (bio == NULL)
		tls_oom();
	lc->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	OPENSSL_cleanse(text, len);
	free(text);
	if (lc->key == NULL) {
		if (asked)
			tls_set_error(err, directive, cert,
				"key %s is encrypted; sluice needs an unencrypted key", path);
		else
			tls_set_error(err, directive, cert, "bad PEM private key in %s: %s", path,
				tls_last_reason(why, sizeof(why)));
		ERR_clear_error();
		return -1;
	}
	if (X509_check_private_key(lc->leaf, lc->key) != 1) {
		ERR_clear_error();
		tls_set_error(err, directive, cert, "key %s does not match certificate %s", path,
			chain_path);
		return -1;
	}
	return 0;
}

/*
 * Read a certificate chain and its key (key_path NULL: the chain file),
 * check that they match and collect the certificate's names. what names
 * the owner in warnings. Returns 0, or -1 with err filled and lc cleared.
 */
int
tls_cert_load(const char *chain_path, const char *key_path, struct loaded_cert *lc,
		struct tls_error *err, const char *chain_dir, const char *key_dir, int cert,
		const char *what)
{
	memset(lc, 0, sizeof(*lc));
	if (read_chain(chain_path, lc, err, chain_dir, cert) < 0 ||
	    read_key(key_path != NULL ? key_path : chain_path, chain_path, lc, err,
		    key_path != NULL ? key_dir : chain_dir, cert) < 0) {
		tls_cert_clear(lc);
		return -1;
	}
	collect_names(lc);
	warn_validity(lc, what, chain_path);
	return 0;
}

/* Make lc the certificate of ctx for its key type. */
int
tls_cert_use(SSL_CTX *ctx, const struct loaded_cert *lc, const char *path,
		struct tls_error *err, const char *directive, int cert)
{
	char why[160];

	ERR_clear_error();
	if (SSL_CTX_use_certificate(ctx, lc->leaf) != 1)
		goto fail;
	for (int i = 0; i < sk_X509_num(lc->chain); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(lc->chain, i)) != 1)
			goto fail;
	if (SSL_CTX_use_PrivateKey(ctx, lc->key) != 1)
		goto fail;
	return 0;
fail:
	/* The security level refuses weak keys ("ee key too small"). */
	tls_set_error(err, directive, cert, "certificate %s cannot be used: %s", path,
		tls_last_reason(why, sizeof(why)));
	return -1;
}

/* ------------------------------------------------------------ accessors */

const char *
tls_version_name(const SSL *ssl)
{
	return SSL_is_init_finished(ssl) ? SSL_get_version(ssl) : "-";
}

const char *
tls_cipher_name(const SSL *ssl)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);

	return c != NULL ? SSL_CIPHER_get_name(c) : "-";
}

const char *
tls_sni(const SSL *ssl)
{
	return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
}

const char *
tls_error_reason(const SSL *ssl, int ssl_error, char *buf, size_t len)
{
	int saved_errno = errno;
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e = ERR_peek_last_error();

	if (verify != X509_V_OK)
		snprintf(buf, len, "certificate verify failed: %s",
			X509_verify_cert_error_string(verify));
	else if (e != 0)
		tls_last_reason(buf, len);
	else if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0)
		snprintf(buf, len, "%s", strerror(saved_errno));
	else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, len, "connection closed by the peer");
	else
		snprintf(buf, len, "TLS error %d", ssl_error);
	ERR_clear_error();
	return buf;
}
