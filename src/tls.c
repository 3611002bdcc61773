/*
 * TLS contexts (tls.h): loading and checking certificates and keys, the
 * listener side (SNI selection, ALPN, session cache, ticket key rings kept
 * per listener name across reloads and rotated by tls_tick) and the client
 * side of pools (verification, client certificate, per-server session
 * reuse). It builds SSL objects and never touches a socket.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

#define TICKET_NAME_LEN	16
#define TICKET_IV_LEN	16		/* AES-CBC */
#define RING_KEYS	3		/* the current key and two older ones */
#define MAX_FILE_KEYS	64
#define MAX_NAME_LEN	253
#define MAX_KEY_TYPES	4		/* RSA, ECDSA, and room for Ed25519 and the like */

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ------------------------------------------------------------ utilities */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int ctx_index = -1;		/* SSL_CTX ex_data: its struct tls_server */
static int slot_index = -1;		/* SSL ex_data: its struct client_slot */
/*
 * The ticket ciphers, fetched once: EVP_aes_256_cbc() and the like make
 * OpenSSL 3 look the algorithm up by name, under a lock, on every ticket
 * (two per full handshake). Kept for the life of the process.
 */
static EVP_CIPHER *ticket_aes256, *ticket_aes128;

static void
init_openssl(void)
{
	OPENSSL_init_ssl(0, NULL);
	ticket_aes256 = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	ticket_aes128 = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
	if (ticket_aes256 == NULL || ticket_aes128 == NULL) {
		fputs("sluice: OpenSSL has no AES-CBC for session tickets\n", stderr);
		abort();
	}
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (ctx_index < 0 || slot_index < 0) {
		fputs("sluice: cannot initialise OpenSSL\n", stderr);
		abort();
	}
}

static void
tls_init(void)
{
	pthread_once(&init_once, init_openssl);
}

/* Contexts are built while loading a configuration, where STYLE.md allows
 * giving up on allocation failure; the data path returns NULL instead. */
static void __attribute__((noreturn))
oom(void)
{
	fputs("sluice: out of memory while building TLS contexts\n", stderr);
	abort();
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

static void *
xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom();
	p = realloc(p, n * size != 0 ? n * size : 1);
	if (p == NULL)
		oom();
	return p;
}

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xcalloc(1, n), s, n);
}

static void __attribute__((format(printf, 4, 5)))
set_error(struct tls_error *err, const char *directive, int cert, const char *fmt, ...)
{
	va_list ap;

	err->directive = directive;
	err->cert = cert;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* The reason of the thread's last OpenSSL error, and an emptied queue. */
static const char *
last_reason(char *buf, size_t len)
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

static bool
last_reason_is(int lib, int reason)
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

/* One certificate, its chain and its key, as read from PEM files. */
struct loaded_cert {
	X509 *leaf;
	STACK_OF(X509) *chain;
	EVP_PKEY *key;
	char **names;			/* DNS names, lower case, sorted, unique */
	size_t nnames;
};

static void
loaded_cert_clear(struct loaded_cert *lc)
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
	name = xcalloc(1, len + 1);
	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower(s[i]);
	lc->names = xrealloc(lc->names, lc->nnames + 1, sizeof(*lc->names));
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
		set_error(err, directive, cert, "cannot open certificate %s: %s", path, strerror(errno));
		return -1;
	}
	ERR_clear_error();
	lc->leaf = PEM_read_X509(fp, NULL, NULL, NULL);
	if (lc->leaf == NULL) {
		if (last_reason_is(ERR_LIB_PEM, PEM_R_NO_START_LINE))
			set_error(err, directive, cert, "no PEM certificate in %s", path);
		else
			set_error(err, directive, cert, "bad PEM certificate in %s: %s", path,
				last_reason(why, sizeof(why)));
		ERR_clear_error();
		fclose(fp);
		return -1;
	}
	lc->chain = sk_X509_new_null();
	if (lc->chain == NULL)
		oom();
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(lc->chain, x))
			oom();
	/* The end of the file reads as "no start line"; anything else is a
	 * broken block after the first certificate. */
	if (!last_reason_is(ERR_LIB_PEM, PEM_R_NO_START_LINE) && ERR_peek_last_error() != 0) {
		set_error(err, directive, cert, "bad PEM certificate in %s after the first one: %s",
			path, last_reason(why, sizeof(why)));
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
	buf = xcalloc(1, MAX_KEY_FILE + 1);
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
		set_error(err, directive, cert, "cannot open key %s: %s", path, strerror(errno));
		return -1;
	}
	/* OpenSSL's decoders say "unsupported" for a file without any key;
	 * look for the PEM line ourselves to say so plainly. */
	if (strstr(text, "PRIVATE KEY-----") == NULL) {
		set_error(err, directive, cert, "no PEM private key in %s", path);
		OPENSSL_cleanse(text, len);
		free(text);
		return -1;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(text, (int)len);
	if (bio == NULL)
		oom();
	lc->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	OPENSSL_cleanse(text, len);
	free(text);
	if (lc->key == NULL) {
		if (asked)
			set_error(err, directive, cert,
				"key %s is encrypted; sluice needs an unencrypted key", path);
		else
			set_error(err, directive, cert, "bad PEM private key in %s: %s", path,
				last_reason(why, sizeof(why)));
		ERR_clear_error();
		return -1;
	}
	if (X509_check_private_key(lc->leaf, lc->key) != 1) {
		ERR_clear_error();
		set_error(err, directive, cert, "key %s does not match certificate %s", path, chain_path);
		return -1;
	}
	return 0;
}

/*
 * Read a certificate chain and its key (key_path NULL: the chain file),
 * check that they match and collect the certificate's names. what names
 * the owner in warnings. Returns 0, or -1 with err filled and lc cleared.
 */
static int
load_cert(const char *chain_path, const char *key_path, struct loaded_cert *lc,
		struct tls_error *err, const char *chain_dir, const char *key_dir, int cert,
		const char *what)
{
	memset(lc, 0, sizeof(*lc));
	if (read_chain(chain_path, lc, err, chain_dir, cert) < 0 ||
	    read_key(key_path != NULL ? key_path : chain_path, chain_path, lc, err,
		    key_path != NULL ? key_dir : chain_dir, cert) < 0) {
		loaded_cert_clear(lc);
		return -1;
	}
	collect_names(lc);
	warn_validity(lc, what, chain_path);
	return 0;
}

/* Make lc the certificate of ctx for its key type. */
static int
use_cert(SSL_CTX *ctx, const struct loaded_cert *lc, const char *path,
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
	set_error(err, directive, cert, "certificate %s cannot be used: %s", path,
		last_reason(why, sizeof(why)));
	return -1;
}

/* --------------------------------------------------------- ticket keys */

/*
 * A session ticket key in the layout nginx uses for its key files: 16
 * bytes of name, then the HMAC secret, then the AES key (32 and 32, or 16
 * and 16 for AES-128).
 */
struct ticket_key {
	unsigned char name[TICKET_NAME_LEN];
	unsigned char hmac[32];
	unsigned char aes[32];
	size_t secret_len;		/* 32 or 16 */
};

/*
 * The keys a listener's tickets are encrypted with; keys[0] encrypts and
 * all decrypt. Handshakes in the workers read it under the read lock;
 * tls_tick() rotates in-memory rings under the write lock. An in-memory
 * ring belongs to the registry, shared by the tls_servers of its listener
 * name in every live generation (refcnt, under registry_lock); a ring read
 * from a file belongs to its one tls_server and never changes.
 */
struct ticket_ring {
	pthread_rwlock_t lock;
	struct ticket_key *keys;
	size_t nkeys;
	size_t cap;			/* keys[] allocated */
	bool in_registry;
	char *listener;
	unsigned refcnt;
	unsigned interval_s;
	uint64_t next_s;		/* next rotation; 0: at the next tick */
	struct ticket_ring *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ticket_ring *registry;

static int
new_key(struct ticket_key *k)
{
	k->secret_len = 32;
	return RAND_bytes(k->name, sizeof(k->name)) == 1 &&
		RAND_bytes(k->hmac, sizeof(k->hmac)) == 1 &&
		RAND_bytes(k->aes, sizeof(k->aes)) == 1 ? 0 : -1;
}

static struct ticket_ring *
ring_new(size_t cap)
{
	struct ticket_ring *r = xcalloc(1, sizeof(*r));

	if (pthread_rwlock_init(&r->lock, NULL) != 0)
		oom();
	r->keys = xcalloc(cap, sizeof(*r->keys));
	r->cap = cap;
	return r;
}

static void
ring_destroy(struct ticket_ring *r)
{
	OPENSSL_cleanse(r->keys, r->cap * sizeof(*r->keys));
	free(r->keys);
	free(r->listener);
	pthread_rwlock_destroy(&r->lock);
	free(r);
}

/* The in-memory ring of listener name, created on first use. */
static struct ticket_ring *
ring_attach(const char *name, unsigned interval_s, struct tls_error *err)
{
	struct ticket_ring *r;

	pthread_mutex_lock(&registry_lock);
	for (r = registry; r != NULL; r = r->next)
		if (strcmp(r->listener, name) == 0)
			break;
	if (r != NULL) {
		r->refcnt++;
		/* A reload that changes the interval starts it afresh. */
		if (r->interval_s != interval_s) {
			r->interval_s = interval_s;
			r->next_s = 0;
		}
		pthread_mutex_unlock(&registry_lock);
		return r;
	}
	r = ring_new(RING_KEYS);
	if (new_key(&r->keys[0]) < 0) {
		pthread_mutex_unlock(&registry_lock);
		ring_destroy(r);
		set_error(err, "tickets", -1, "cannot draw a random ticket key");
		return NULL;
	}
	r->nkeys = 1;
	r->in_registry = true;
	r->listener = xstrdup(name);
	r->refcnt = 1;
	r->interval_s = interval_s;
	r->next = registry;
	registry = r;
	pthread_mutex_unlock(&registry_lock);
	return r;
}

static void
ring_release(struct ticket_ring *r)
{
	struct ticket_ring **pp;

	if (r == NULL)
		return;
	if (!r->in_registry) {
		ring_destroy(r);
		return;
	}
	pthread_mutex_lock(&registry_lock);
	if (--r->refcnt > 0) {
		pthread_mutex_unlock(&registry_lock);
		return;
	}
	for (pp = &registry; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	pthread_mutex_unlock(&registry_lock);
	ring_destroy(r);
}

static void
ring_rotate(struct ticket_ring *r)
{
	struct ticket_key k;

	if (new_key(&k) < 0) {
		log_error("listener \"%s\": cannot draw a random ticket key; keeping the current one",
			r->listener);
		return;
	}
	pthread_rwlock_wrlock(&r->lock);
	if (r->nkeys < RING_KEYS)
		r->nkeys++;
	memmove(&r->keys[1], &r->keys[0], (r->nkeys - 1) * sizeof(r->keys[0]));
	r->keys[0] = k;
	pthread_rwlock_unlock(&r->lock);
	OPENSSL_cleanse(&k, sizeof(k));
}

unsigned
tls_tick(uint64_t now)
{
	unsigned rotated = 0;

	pthread_mutex_lock(&registry_lock);
	for (struct ticket_ring *r = registry; r != NULL; r = r->next) {
		if (r->next_s == 0) {
			r->next_s = now + r->interval_s;
		} else if (now >= r->next_s) {
			ring_rotate(r);
			r->next_s = now + r->interval_s;
			rotated++;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return rotated;
}

static int
base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (RFC 4648, padded) of s[0..len) into out[0..cap). */
static int
base64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
	size_t n = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		unsigned v = 0, pad = 0;

		for (size_t j = 0; j < 4; j++) {
			int d = base64_value(s[i + j]);

			/* '=' only ends the last quantum: "xx==" or "xxx=". */
			if (s[i + j] == '=' && last && (j == 3 || (j == 2 && s[i + 3] == '='))) {
				pad++;
				d = 0;
			} else if (d < 0 || pad > 0) {
				return -1;
			}
			v = v << 6 | (unsigned)d;
		}
		if (n + 3 - pad > cap)
			return -1;
		out[n++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)v;
	}
	*outlen = n;
	return 0;
}

/*
 * Read a ticket_key_file: one base64 key a line (80 bytes decoded, or 48
 * for AES-128), '#' comments and blank lines ignored; the first key
 * encrypts. Errors name the file and its line.
 */
static struct ticket_ring *
ring_from_file(const char *path, struct tls_error *err)
{
	struct ticket_ring *r = ring_new(MAX_FILE_KEYS);
	unsigned char raw[128];
	char *line = NULL;
	size_t cap = 0, got;
	ssize_t n;
	int lineno = 0;
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		set_error(err, "ticket_key_file", -1, "cannot open ticket_key_file %s: %s",
			path, strerror(errno));
		goto fail;
	}
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char *s = line;
		struct ticket_key *k;
		size_t len = (size_t)n;

		lineno++;
		while (len > 0 && isspace((unsigned char)s[len - 1]))
			len--;
		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		if (len == 0 || *s == '#')
			continue;
		if (base64_decode(s, len, raw, sizeof(raw), &got) < 0) {
			set_error(err, "ticket_key_file", -1, "ticket_key_file %s:%d: invalid base64",
				path, lineno);
			goto fail;
		}
		if (got != 80 && got != 48) {
			set_error(err, "ticket_key_file", -1, "ticket_key_file %s:%d: a key is 80 bytes "
				"(or 48 for AES-128) once decoded, not %zu; one key a line, as "
				"`openssl rand 80 | openssl base64 -A` writes it", path, lineno, got);
			goto fail;
		}
		if (r->nkeys == MAX_FILE_KEYS) {
			set_error(err, "ticket_key_file", -1, "ticket_key_file %s:%d: more than %d keys",
				path, lineno, MAX_FILE_KEYS);
			goto fail;
		}
		k = &r->keys[r->nkeys++];
		k->secret_len = (got - TICKET_NAME_LEN) / 2;
		memcpy(k->name, raw, TICKET_NAME_LEN);
		memcpy(k->hmac, raw + TICKET_NAME_LEN, k->secret_len);
		memcpy(k->aes, raw + TICKET_NAME_LEN + k->secret_len, k->secret_len);
	}
	if (ferror(fp)) {
		set_error(err, "ticket_key_file", -1, "cannot read ticket_key_file %s: %s",
			path, strerror(errno));
		goto fail;
	}
	if (r->nkeys == 0) {
		set_error(err, "ticket_key_file", -1, "ticket_key_file %s holds no key", path);
		goto fail;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	if (line != NULL)
		OPENSSL_cleanse(line, cap);
	free(line);
	fclose(fp);
	return r;
fail:
	OPENSSL_cleanse(raw, sizeof(raw));
	if (line != NULL)
		OPENSSL_cleanse(line, cap);
	free(line);
	if (fp != NULL)
		fclose(fp);
	ring_destroy(r);
	return NULL;
}

/* ------------------------------------------------------------- servers */

/* Certificates with the same names share a context, one per key type, so
 * that OpenSSL can pick RSA or ECDSA from the client's signature algorithms. */
struct ctx_group {
	SSL_CTX *ctx;
	char **names;			/* those of the first certificate; owned */
	size_t nnames;
	int key_types[MAX_KEY_TYPES];
	size_t ntypes;
};

struct sni_entry {
	const char *name;		/* points into a group's names */
	size_t group;
};

/* Owned by its config_listener (config_load builds, config_destroy frees). */
struct tls_server {
	char *name;
	struct ctx_group *groups;	/* groups[0] holds the default certificate */
	size_t ngroups;
	struct sni_entry *sni;		/* sorted by name; "*.domain" entries are literal */
	size_t nsni;
	struct ticket_ring *ring;	/* NULL: tickets off */
	unsigned hsts_s;
};

static const struct sni_entry *
sni_find(const struct tls_server *ts, const char *name)
{
	size_t lo = 0, hi = ts->nsni;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, ts->sni[mid].name);

		if (c == 0)
			return &ts->sni[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
on_sni(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *ts = arg;
	const char *sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct sni_entry *e;
	char name[MAX_NAME_LEN + 2];
	size_t len;
	char *dot;

	(void)alert;
	if (sent == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	len = strlen(sent);
	if (len > 0 && sent[len - 1] == '.')
		len--;
	if (len == 0 || len > MAX_NAME_LEN)
		return SSL_TLSEXT_ERR_OK;	/* the default certificate */
	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower((unsigned char)sent[i]);
	name[len] = '\0';
	e = sni_find(ts, name);
	/* A wildcard covers one label: "*.example.com" for "a.example.com". */
	if (e == NULL && (dot = strchr(name, '.')) != NULL && dot > name) {
		*--dot = '*';
		e = sni_find(ts, dot);
	}
	if (e != NULL && ts->groups[e->group].ctx != SSL_get_SSL_CTX(ssl))
		SSL_set_SSL_CTX(ssl, ts->groups[e->group].ctx);
	return SSL_TLSEXT_ERR_OK;
}

/* http/1.1 when offered; otherwise no ALPN at all, as nginx does, rather
 * than a no_application_protocol alert. */
static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		const unsigned char *in, unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
		if (i + 1u + in[i] > inlen)
			break;
		if (in[i] == alpn_http11[0] && memcmp(in + i + 1, alpn_http11 + 1, in[i]) == 0) {
			*out = in + i + 1;
			*outlen = in[i];
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static int
set_ticket_mac(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
	static char sha256[] = "SHA256";
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
		(void *)k->hmac, k->secret_len);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket key callback. Encrypting: the ring's first key. Decrypting:
 * the key the ticket names; 2 asks OpenSSL to issue a fresh ticket when that
 * key is no longer the current one, 0 means unknown (full handshake).
 */
static int
on_ticket_key(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
		EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_server *ts = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	struct ticket_ring *r = ts != NULL ? ts->ring : NULL;
	const struct ticket_key *k = NULL;
	int rc = -1;
	size_t i;

	if (r == NULL)
		return enc ? -1 : 0;
	pthread_rwlock_rdlock(&r->lock);
	if (enc) {
		k = &r->keys[0];
		memcpy(key_name, k->name, TICKET_NAME_LEN);
		if (RAND_bytes(iv, TICKET_IV_LEN) == 1 &&
		    EVP_EncryptInit_ex2(ectx, k->secret_len == 32 ? ticket_aes256 : ticket_aes128,
			    k->aes, iv, NULL) == 1 &&
		    set_ticket_mac(hctx, k) == 0)
			rc = 1;
	} else {
		for (i = 0; i < r->nkeys; i++)
			if (CRYPTO_memcmp(r->keys[i].name, key_name, TICKET_NAME_LEN) == 0)
				break;
		if (i == r->nkeys) {
			rc = 0;
		} else {
			k = &r->keys[i];
			if (EVP_DecryptInit_ex2(ectx, k->secret_len == 32 ? ticket_aes256 :
				    ticket_aes128, k->aes, iv, NULL) == 1 &&
			    set_ticket_mac(hctx, k) == 0)
				rc = i == 0 ? 1 : 2;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	return rc;
}

/* Count the ciphers ctx enables for TLS 1.3 and for TLS 1.2. */
static void
count_ciphers(SSL_CTX *ctx, int *n13, int *n12)
{
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);

	*n13 = *n12 = 0;
	for (int i = 0; sk != NULL && i < sk_SSL_CIPHER_num(sk); i++) {
		if (strcmp(SSL_CIPHER_get_version(sk_SSL_CIPHER_value(sk, i)), "TLSv1.3") == 0)
			(*n13)++;
		else
			(*n12)++;
	}
}

static SSL_CTX *
server_ctx_new(struct tls_server *ts, const struct config_listener_tls *conf,
		struct tls_error *err)
{
	unsigned char sid[EVP_MAX_MD_SIZE];
	unsigned sidlen = 0;
	int n13, n12;
	char why[160];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		oom();
	SSL_CTX_set_ex_data(ctx, ctx_index, ts);
	if (SSL_CTX_set_min_proto_version(ctx, (int)conf->min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, (int)conf->max_version) != 1) {
		set_error(err, "min_version", -1, "cannot set the protocol versions: %s",
			last_reason(why, sizeof(why)));
		goto fail;
	}
	/* Client-initiated renegotiation only costs the server CPU. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
		SSL_OP_NO_COMPRESSION | (conf->tickets ? 0 : SSL_OP_NO_TICKET));
	/* Idle keep-alive and WebSocket connections then hold no TLS buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, conf->ciphers) != 1) {
		ERR_clear_error();
		set_error(err, "ciphers", -1, "ciphers \"%s\": no cipher that OpenSSL knows",
			conf->ciphers);
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) != 1) {
		ERR_clear_error();
		set_error(err, "ciphersuites", -1, "ciphersuites \"%s\": not a list of TLS 1.3 "
			"cipher suites", conf->ciphersuites);
		goto fail;
	}
	count_ciphers(ctx, &n13, &n12);
	if (conf->max_version >= CONFIG_TLS_1_3 && n13 == 0) {
		set_error(err, "ciphersuites", -1, "ciphersuites \"%s\": no TLS 1.3 cipher suite "
			"that OpenSSL knows", conf->ciphersuites);
		goto fail;
	}
	if (conf->min_version <= CONFIG_TLS_1_2 && n12 == 0) {
		set_error(err, "ciphers", -1, "ciphers \"%s\": no TLS 1.2 cipher that OpenSSL knows",
			conf->ciphers);
		goto fail;
	}
	/* Sessions resume only on the listener that made them, in this
	 * generation or a later one: the context id is its name. */
	if (EVP_Digest(ts->name, strlen(ts->name), sid, &sidlen, EVP_sha256(), NULL) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, sid,
		    sidlen > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH : sidlen) != 1)
		oom();
	if (conf->session_cache > 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, (long)conf->session_cache);
	} else {
		/* A size of 0 would mean "unlimited" to OpenSSL. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		if (!conf->tickets)
			SSL_CTX_set_num_tickets(ctx, 0);
	}
	SSL_CTX_set_timeout(ctx, (long)conf->session_timeout_s);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_sni);
	SSL_CTX_set_tlsext_servername_arg(ctx, ts);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	if (conf->tickets)
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static bool
same_names(const struct ctx_group *g, const struct loaded_cert *lc)
{
	if (g->nnames != lc->nnames || g->nnames == 0)
		return false;
	for (size_t i = 0; i < g->nnames; i++)
		if (strcmp(g->names[i], lc->names[i]) != 0)
			return false;
	return true;
}

/* Put certificate i into the context for its names and key type. */
static int
add_cert(struct tls_server *ts, const struct config_listener_tls *conf, struct loaded_cert *lc,
		int i, struct tls_error *err)
{
	int type = EVP_PKEY_get_base_id(lc->key);
	struct ctx_group *g = NULL;
	size_t gi, added = 0;

	for (gi = 0; gi < ts->ngroups && g == NULL; gi++) {
		struct ctx_group *c = &ts->groups[gi];
		bool taken = false;

		for (size_t t = 0; t < c->ntypes; t++)
			taken |= c->key_types[t] == type;
		if (!taken && c->ntypes < MAX_KEY_TYPES && same_names(c, lc))
			g = c;
	}
	if (g == NULL) {
		SSL_CTX *ctx = server_ctx_new(ts, conf, err);

		if (ctx == NULL)
			return -1;
		ts->groups = xrealloc(ts->groups, ts->ngroups + 1, sizeof(*ts->groups));
		gi = ts->ngroups++;
		g = &ts->groups[gi];
		memset(g, 0, sizeof(*g));
		g->ctx = ctx;
		/* The group takes the names; the entries point into them. */
		g->names = lc->names;
		g->nnames = lc->nnames;
		lc->names = NULL;
		lc->nnames = 0;
		for (size_t n = 0; n < g->nnames; n++) {
			bool known = false;

			for (size_t s = 0; s < ts->nsni && !known; s++)
				known = strcmp(ts->sni[s].name, g->names[n]) == 0;
			if (known)
				continue;	/* an earlier certificate has it */
			ts->sni = xrealloc(ts->sni, ts->nsni + 1, sizeof(*ts->sni));
			ts->sni[ts->nsni++] = (struct sni_entry){ .name = g->names[n], .group = gi };
			added++;
		}
		/* Not an error: the file may list certificates for later. */
		if (gi > 0 && added == 0)
			log_warn("listener \"%s\": certificate \"%s\" (%s) is never chosen: %s",
				ts->name, conf->certs[i].name, conf->certs[i].chain, g->nnames == 0 ?
				"it has no DNS name and is not the first" :
				"an earlier certificate has each of its names");
	} else {
		gi = (size_t)(g - ts->groups);
	}
	if (use_cert(g->ctx, lc, conf->certs[i].chain, err, "chain", i) < 0)
		return -1;
	g->key_types[g->ntypes++] = type;
	return 0;
}

static int
cmp_sni(const void *a, const void *b)
{
	return strcmp(((const struct sni_entry *)a)->name, ((const struct sni_entry *)b)->name);
}

struct tls_server *
tls_server_new(const struct config_listener *l, struct tls_error *err)
{
	const struct config_listener_tls *conf = &l->tls_conf;
	struct tls_server *ts;
	char what[160];

	tls_init();
	set_error(err, NULL, -1, "%s", "");
	ts = xcalloc(1, sizeof(*ts));
	ts->name = xstrdup(l->name);
	ts->hsts_s = conf->hsts_s;
	if (conf->ncerts == 0) {
		set_error(err, "certificate", -1, "no certificate");
		goto fail;
	}
	for (size_t i = 0; i < conf->ncerts; i++) {
		const struct config_tls_cert *c = &conf->certs[i];
		struct loaded_cert lc;
		int rc;

		snprintf(what, sizeof(what), "listener \"%s\": certificate \"%s\"", l->name, c->name);
		if (load_cert(c->chain, c->key, &lc, err, "chain", "key", (int)i, what) < 0)
			goto fail;
		rc = add_cert(ts, conf, &lc, (int)i, err);
		loaded_cert_clear(&lc);
		if (rc < 0)
			goto fail;
	}
	if (ts->nsni > 1)
		qsort(ts->sni, ts->nsni, sizeof(*ts->sni), cmp_sni);
	if (conf->tickets) {
		ts->ring = conf->ticket_key_file != NULL ? ring_from_file(conf->ticket_key_file, err) :
			ring_attach(l->name, conf->ticket_rotate_s, err);
		if (ts->ring == NULL)
			goto fail;
	}
	return ts;
fail:
	tls_server_free(ts);
	return NULL;
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	for (size_t i = 0; i < ts->ngroups; i++) {
		SSL_CTX_free(ts->groups[i].ctx);
		for (size_t n = 0; n < ts->groups[i].nnames; n++)
			free(ts->groups[i].names[n]);
		free(ts->groups[i].names);
	}
	free(ts->groups);
	free(ts->sni);
	ring_release(ts->ring);
	free(ts->name);
	free(ts);
}

SSL *
tls_server_session_new(struct tls_server *ts)
{
	SSL *ssl = SSL_new(ts->groups[0].ctx);

	if (ssl != NULL)
		SSL_set_accept_state(ssl);
	return ssl;
}

unsigned
tls_server_hsts(const struct tls_server *ts)
{
	return ts->hsts_s;
}

/* ------------------------------------------------------------- clients */

/* The session saved for one server of the pool. */
struct client_slot {
	struct tls_client *tc;
	SSL_SESSION *session;		/* under tc->lock; NULL: none yet */
};

/* Owned by its config_pool (config_load builds, config_destroy frees). */
struct tls_client {
	SSL_CTX *ctx;
	bool verify;
	char *server_name;		/* the pool's tls_server_name, or NULL */
	pthread_mutex_t lock;
	struct client_slot *slots;	/* by config_server.index */
	size_t nslots;
};

/* A session (TLS 1.2: after the handshake; 1.3: with each ticket) to keep
 * for the next connection to the same server. Worker thread. */
static int
on_client_session(SSL *ssl, SSL_SESSION *sess)
{
	struct client_slot *slot = SSL_get_ex_data(ssl, slot_index);
	SSL_SESSION *old;

	if (slot == NULL)
		return 0;
	pthread_mutex_lock(&slot->tc->lock);
	old = slot->session;
	slot->session = sess;
	pthread_mutex_unlock(&slot->tc->lock);
	SSL_SESSION_free(old);
	return 1;			/* the slot keeps the reference */
}

static int
load_ca(SSL_CTX *ctx, const char *path, struct tls_error *err)
{
	struct stat st;
	char why[160];
	FILE *fp;

	if (stat(path, &st) < 0) {
		set_error(err, "tls_ca", -1, "cannot open tls_ca %s: %s", path, strerror(errno));
		return -1;
	}
	ERR_clear_error();
	if (S_ISDIR(st.st_mode)) {
		if (SSL_CTX_load_verify_dir(ctx, path) != 1) {
			set_error(err, "tls_ca", -1, "tls_ca %s: %s", path, last_reason(why, sizeof(why)));
			return -1;
		}
		return 0;
	}
	/* Open it first, for errno's word on why it cannot be read. */
	if ((fp = fopen(path, "r")) == NULL) {
		set_error(err, "tls_ca", -1, "cannot open tls_ca %s: %s", path, strerror(errno));
		return -1;
	}
	fclose(fp);
	if (SSL_CTX_load_verify_file(ctx, path) != 1) {
		if (last_reason_is(ERR_LIB_X509, X509_R_NO_CERTIFICATE_OR_CRL_FOUND) ||
		    last_reason_is(ERR_LIB_PEM, PEM_R_NO_START_LINE))
			set_error(err, "tls_ca", -1, "no PEM certificate in tls_ca %s", path);
		else
			set_error(err, "tls_ca", -1, "bad PEM certificate in tls_ca %s: %s", path,
				last_reason(why, sizeof(why)));
		ERR_clear_error();
		return -1;
	}
	return 0;
}

struct tls_client *
tls_client_new(const struct config_pool *p, struct tls_error *err)
{
	struct tls_client *tc;
	struct loaded_cert lc;
	char why[160], what[160];

	tls_init();
	set_error(err, NULL, -1, "%s", "");
	tc = xcalloc(1, sizeof(*tc));
	if (pthread_mutex_init(&tc->lock, NULL) != 0)
		oom();
	tc->verify = p->tls_verify;
	tc->server_name = p->tls_server_name != NULL ? xstrdup(p->tls_server_name) : NULL;
	tc->nslots = p->nservers;
	tc->slots = xcalloc(p->nservers, sizeof(*tc->slots));
	for (size_t i = 0; i < p->nservers; i++)
		tc->slots[i].tc = tc;
	tc->ctx = SSL_CTX_new(TLS_client_method());
	if (tc->ctx == NULL)
		oom();
	SSL_CTX_set_min_proto_version(tc->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(tc->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(tc->ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_alpn_protos(tc->ctx, alpn_http11, sizeof(alpn_http11) - 1) != 0)
		oom();
	/* Sessions go to the per-server slots, not to OpenSSL's cache. */
	SSL_CTX_set_session_cache_mode(tc->ctx,
		SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(tc->ctx, on_client_session);
	if (p->tls_ca != NULL) {
		if (load_ca(tc->ctx, p->tls_ca, err) < 0)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(tc->ctx) != 1) {
		set_error(err, "tls_verify", -1, "cannot load the system's CA store: %s",
			last_reason(why, sizeof(why)));
		goto fail;
	}
	SSL_CTX_set_verify(tc->ctx, p->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (p->tls_cert != NULL) {
		snprintf(what, sizeof(what), "pool \"%s\": client certificate", p->name);
		if (load_cert(p->tls_cert, p->tls_key, &lc, err, "tls_cert", "tls_key", -1, what) < 0)
			goto fail;
		if (use_cert(tc->ctx, &lc, p->tls_cert, err, "tls_cert", -1) < 0) {
			loaded_cert_clear(&lc);
			goto fail;
		}
		loaded_cert_clear(&lc);
	}
	return tc;
fail:
	tls_client_free(tc);
	return NULL;
}

void
tls_client_free(struct tls_client *tc)
{
	if (tc == NULL)
		return;
	for (size_t i = 0; i < tc->nslots; i++)
		SSL_SESSION_free(tc->slots[i].session);
	free(tc->slots);
	SSL_CTX_free(tc->ctx);
	pthread_mutex_destroy(&tc->lock);
	free(tc->server_name);
	free(tc);
}

SSL *
tls_client_session_new(struct tls_client *tc, const struct config_server *srv)
{
	const char *name = srv->tls_server_name != NULL ? srv->tls_server_name : tc->server_name;
	struct client_slot *slot = srv->index < tc->nslots ? &tc->slots[srv->index] : NULL;
	char ip[INET6_ADDRSTRLEN];
	SSL *ssl = SSL_new(tc->ctx);

	if (ssl == NULL)
		return NULL;
	if (slot != NULL && SSL_set_ex_data(ssl, slot_index, slot) != 1)
		goto fail;
	if (name != NULL) {
		if (SSL_set_tlsext_host_name(ssl, name) != 1)
			goto fail;
		if (tc->verify) {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(ssl, name) != 1)
				goto fail;
		}
	} else if (tc->verify) {
		/* No name to check: the certificate must hold the address we
		 * connect to, as an IP subjectAltName. */
		const void *a = srv->addr.ss_family == AF_INET6 ?
			(const void *)&((const struct sockaddr_in6 *)&srv->addr)->sin6_addr :
			(const void *)&((const struct sockaddr_in *)&srv->addr)->sin_addr;

		if (inet_ntop(srv->addr.ss_family, a, ip, sizeof(ip)) == NULL ||
		    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1)
			goto fail;
	}
	if (slot != NULL) {
		pthread_mutex_lock(&tc->lock);
		if (slot->session != NULL && SSL_SESSION_is_resumable(slot->session))
			SSL_set_session(ssl, slot->session);
		pthread_mutex_unlock(&tc->lock);
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

void
tls_client_session_forget(struct tls_client *tc, const struct config_server *srv)
{
	SSL_SESSION *old = NULL;

	if (srv->index >= tc->nslots)
		return;
	pthread_mutex_lock(&tc->lock);
	old = tc->slots[srv->index].session;
	tc->slots[srv->index].session = NULL;
	pthread_mutex_unlock(&tc->lock);
	SSL_SESSION_free(old);
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
		last_reason(buf, len);
	else if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0)
		snprintf(buf, len, "%s", strerror(saved_errno));
	else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, len, "connection closed by the peer");
	else
		snprintf(buf, len, "TLS error %d", ssl_error);
	ERR_clear_error();
	return buf;
}
