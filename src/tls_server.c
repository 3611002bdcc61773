/*
 * A listener's server contexts (tls.h): one context per set of certificate
 * names and key types, SNI selection among them, ALPN, the session cache and
 * the ticket callback, whose keys are tls_ticket.c's.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "log.h"
#include "tls-int.h"

#define MAX_KEY_TYPES	4		/* RSA, ECDSA, and room for Ed25519 and the like */

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

/* OpenSSL's ticket key callback: the keys are the ring of the listener whose
 * context the handshake is on; tls_ticket_key() does the rest. */
static int
on_ticket_key(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
		EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_server *ts = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_index);

	return tls_ticket_key(ts != NULL ? ts->ring : NULL, key_name, iv, ectx, hctx, enc);
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
		tls_oom();
	SSL_CTX_set_ex_data(ctx, tls_ctx_index, ts);
	if (SSL_CTX_set_min_proto_version(ctx, (int)conf->min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, (int)conf->max_version) != 1) {
		tls_set_error(err, "min_version", -1, "cannot set the protocol versions: %s",
			tls_last_reason(why, sizeof(why)));
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
		tls_set_error(err, "ciphers", -1, "ciphers \"%s\": no cipher that OpenSSL knows",
			conf->ciphers);
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) != 1) {
		ERR_clear_error();
		tls_set_error(err, "ciphersuites", -1, "ciphersuites \"%s\": not a list of TLS 1.3 "
			"cipher suites", conf->ciphersuites);
		goto fail;
	}
	count_ciphers(ctx, &n13, &n12);
	if (conf->max_version >= CONFIG_TLS_1_3 && n13 == 0) {
		tls_set_error(err, "ciphersuites", -1, "ciphersuites \"%s\": no TLS 1.3 cipher suite "
			"that OpenSSL knows", conf->ciphersuites);
		goto fail;
	}
	if (conf->min_version <= CONFIG_TLS_1_2 && n12 == 0) {
		tls_set_error(err, "ciphers", -1, "ciphers \"%s\": no TLS 1.2 cipher that OpenSSL knows",
			conf->ciphers);
		goto fail;
	}
	/* Sessions resume only on the listener that made them, in this
	 * generation or a later one: the context id is its name. */
	if (EVP_Digest(ts->name, strlen(ts->name), sid, &sidlen, EVP_sha256(), NULL) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, sid,
		    sidlen > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH : sidlen) != 1)
		tls_oom();
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
		ts->groups = tls_xrealloc(ts->groups, ts->ngroups + 1, sizeof(*ts->groups));
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
			ts->sni = tls_xrealloc(ts->sni, ts->nsni + 1, sizeof(*ts->sni));
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
	if (tls_cert_use(g->ctx, lc, conf->certs[i].chain, err, "chain", i) < 0)
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
	tls_set_error(err, NULL, -1, "%s", "");
	ts = tls_xcalloc(1, sizeof(*ts));
	ts->name = tls_xstrdup(l->name);
	ts->hsts_s = conf->hsts_s;
	if (conf->ncerts == 0) {
		tls_set_error(err, "certificate", -1, "no certificate");
		goto fail;
	}
	for (size_t i = 0; i < conf->ncerts; i++) {
		const struct config_tls_cert *c = &conf->certs[i];
		struct loaded_cert lc;
		int rc;

		snprintf(what, sizeof(what), "listener \"%s\": certificate \"%s\"", l->name, c->name);
		if (tls_cert_load(c->chain, c->key, &lc, err, "chain", "key", (int)i, what) < 0)
			goto fail;
		rc = add_cert(ts, conf, &lc, (int)i, err);
		tls_cert_clear(&lc);
		if (rc < 0)
			goto fail;
	}
	if (ts->nsni > 1)
		qsort(ts->sni, ts->nsni, sizeof(*ts->sni), cmp_sni);
	if (conf->tickets) {
		ts->ring = conf->ticket_key_file != NULL ?
			tls_ticket_from_file(conf->ticket_key_file, err) :
			tls_ticket_attach(l->name, conf->ticket_rotate_s, err);
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
	tls_ticket_release(ts->ring);
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
