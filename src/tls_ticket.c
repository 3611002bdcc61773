/*
 * Session ticket keys (tls-int.h): the in-memory rings kept per listener
 * name across reloads and rotated by tls_tick, the rings read from a
 * ticket_key_file, and the key lookup behind the ticket callback.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "tls-int.h"

#define TICKET_NAME_LEN	16
#define TICKET_IV_LEN	16		/* AES-CBC */
#define RING_KEYS	3		/* the current key and two older ones */
#define MAX_FILE_KEYS	64

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
	struct ticket_ring *r = tls_xcalloc(1, sizeof(*r));

	if (pthread_rwlock_init(&r->lock, NULL) != 0)
		tls_oom();
	r->keys = tls_xcalloc(cap, sizeof(*r->keys));
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
struct ticket_ring *
tls_ticket_attach(const char *name, unsigned interval_s, struct tls_error *err)
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
		tls_set_error(err, "tickets", -1, "cannot draw a random ticket key");
		return NULL;
	}
	r->nkeys = 1;
	r->in_registry = true;
	r->listener = tls_xstrdup(name);
	r->refcnt = 1;
	r->interval_s = interval_s;
	r->next = registry;
	registry = r;
	pthread_mutex_unlock(&registry_lock);
	return r;
}

void
tls_ticket_release(struct ticket_ring *r)
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
struct ticket_ring *
tls_ticket_from_file(const char *path, struct tls_error *err)
{
	struct ticket_ring *r = ring_new(MAX_FILE_KEYS);
	unsigned char raw[128];
	char *line = NULL;
	size_t cap = 0, got;
	ssize_t n;
	int lineno = 0;
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		tls_set_error(err, "ticket_key_file", -1, "cannot open ticket_key_file %s: %s",
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
			tls_set_error(err, "ticket_key_file", -1,
				"ticket_key_file %s:%d: invalid base64", path, lineno);
			goto fail;
		}
		if (got != 80 && got != 48) {
			tls_set_error(err, "ticket_key_file", -1,
				"ticket_key_file %s:%d: a key is 80 bytes "
				"(or 48 for AES-128) once decoded, not %zu; one key a line, as "
				"`openssl rand 80 | openssl base64 -A` writes it", path, lineno, got);
			goto fail;
		}
		if (r->nkeys == MAX_FILE_KEYS) {
			tls_set_error(err, "ticket_key_file", -1,
				"ticket_key_file %s:%d: more than %d keys", path, lineno, MAX_FILE_KEYS);
			goto fail;
		}
		k = &r->keys[r->nkeys++];
		k->secret_len = (got - TICKET_NAME_LEN) / 2;
		memcpy(k->name, raw, TICKET_NAME_LEN);
		memcpy(k->hmac, raw + TICKET_NAME_LEN, k->secret_len);
		memcpy(k->aes, raw + TICKET_NAME_LEN + k->secret_len, k->secret_len);
	}
	if (ferror(fp)) {
		tls_set_error(err, "ticket_key_file", -1, "cannot read ticket_key_file %s: %s",
			path, strerror(errno));
		goto fail;
	}
	if (r->nkeys == 0) {
		tls_set_error(err, "ticket_key_file", -1, "ticket_key_file %s holds no key", path);
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

/* ------------------------------------------------ ticket key callback */

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
 * The work of the server contexts' ticket key callback (tls_server.c) on
 * ring r, NULL when tickets are off. Encrypting: the ring's first key.
 * Decrypting: the key the ticket names; 2 asks OpenSSL to issue a fresh
 * ticket when that key is no longer the current one, 0 means unknown (full
 * handshake).
 */
int
tls_ticket_key(struct ticket_ring *r, unsigned char *key_name, unsigned char *iv,
		EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
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
		    EVP_EncryptInit_ex2(ectx, k->secret_len == 32 ? tls_ticket_aes256 :
			    tls_ticket_aes128, k->aes, iv, NULL) == 1 &&
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
			if (EVP_DecryptInit_ex2(ectx, k->secret_len == 32 ? tls_ticket_aes256 :
				    tls_ticket_aes128, k->aes, iv, NULL) == 1 &&
			    set_ticket_mac(hctx, k) == 0)
				rc = i == 0 ? 1 : 2;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	return rc;
}
