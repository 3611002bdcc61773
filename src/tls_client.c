/*
 * A pool's client context (tls.h): verification against tls_ca or the
 * system store, the client certificate, and the session kept per upstream
 * server so that the next connection to it resumes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls-int.h"

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
	struct client_slot *slot = SSL_get_ex_data(ssl, tls_slot_index);
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
		tls_set_error(err, "tls_ca", -1, "cannot open tls_ca %s: %s", path, strerror(errno));
		return -1;
	}
	ERR_clear_error();
	if (S_ISDIR(st.st_mode)) {
		if (SSL_CTX_load_verify_dir(ctx, path) != 1) {
			tls_set_error(err, "tls_ca", -1, "tls_ca %s: %s", path,
				tls_last_reason(why, sizeof(why)));
			return -1;
		}
		return 0;
	}
	/* Open it first, for errno's word on why it cannot be read. */
	if ((fp = fopen(path, "r")) == NULL) {
		tls_set_error(err, "tls_ca", -1, "cannot open tls_ca %s: %s", path, strerror(errno));
		return -1;
	}
	fclose(fp);
	if (SSL_CTX_load_verify_file(ctx, path) != 1) {
		if (tls_last_reason_is(ERR_LIB_X509, X509_R_NO_CERTIFICATE_OR_CRL_FOUND) ||
		    tls_last_reason_is(ERR_LIB_PEM, PEM_R_NO_START_LINE))
			tls_set_error(err, "tls_ca", -1, "no PEM certificate in tls_ca %s", path);
		else
			tls_set_error(err, "tls_ca", -1, "bad PEM certificate in tls_ca %s: %s", path,
				tls_last_reason(why, sizeof(why)));
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
	tls_set_error(err, NULL, -1, "%s", "");
	tc = tls_xcalloc(1, sizeof(*tc));
	if (pthread_mutex_init(&tc->lock, NULL) != 0)
		tls_oom();
	tc->verify = p->tls_verify;
	tc->server_name = p->tls_server_name != NULL ? tls_xstrdup(p->tls_server_name) : NULL;
	tc->nslots = p->nservers;
	tc->slots = tls_xcalloc(p->nservers, sizeof(*tc->slots));
	for (size_t i = 0; i < p->nservers; i++)
		tc->slots[i].tc = tc;
	tc->ctx = SSL_CTX_new(TLS_client_method());
	if (tc->ctx == NULL)
		tls_oom();
	SSL_CTX_set_min_proto_version(tc->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(tc->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(tc->ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_alpn_protos(tc->ctx, alpn_http11, sizeof(alpn_http11) - 1) != 0)
		tls_oom();
	/* Sessions go to the per-server slots, not to OpenSSL's cache. */
	SSL_CTX_set_session_cache_mode(tc->ctx,
		SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(tc->ctx, on_client_session);
	if (p->tls_ca != NULL) {
		if (load_ca(tc->ctx, p->tls_ca, err) < 0)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(tc->ctx) != 1) {
		tls_set_error(err, "tls_verify", -1, "cannot load the system's CA store: %s",
			tls_last_reason(why, sizeof(why)));
		goto fail;
	}
	SSL_CTX_set_verify(tc->ctx, p->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (p->tls_cert != NULL) {
		snprintf(what, sizeof(what), "pool \"%s\": client certificate", p->name);
		if (tls_cert_load(p->tls_cert, p->tls_key, &lc, err, "tls_cert", "tls_key", -1,
			    what) < 0)
			goto fail;
		if (tls_cert_use(tc->ctx, &lc, p->tls_cert, err, "tls_cert", -1) < 0) {
			tls_cert_clear(&lc);
			goto fail;
		}
		tls_cert_clear(&lc);
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
	if (slot != NULL && SSL_set_ex_data(ssl, tls_slot_index, slot) != 1)
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
