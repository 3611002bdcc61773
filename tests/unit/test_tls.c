/*
 * tls.c tests, with certificates made at run time (tls_fixture.c) and
 * handshakes driven in memory over BIO pairs: SNI selection, RSA/ECDSA by
 * signature algorithms, ALPN, protocol versions, resumption by cache and by
 * ticket across key rotations and reloads, ticket key files, certificate
 * errors and warnings, and the upstream client: verification, names,
 * mutual TLS and session reuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "tls.h"
#include "tls_fixture.h"

static char dir[64];
static EVP_PKEY *rsa, *ec, *ec2, *ca_key, *ca2_key;
static X509 *ca, *ca2;
static uint64_t fake_now = 1000;	/* tls_tick's clock, only ever forward */

/* Certificate files made once for the whole group. */
static const char *main_pem, *main_key, *exact_pem, *exact_key, *wild_pem, *wild_key;
static const char *wild_ec_pem, *wild_ec_key, *combined_pem, *expired_pem, *future_pem;
static const char *ca_pem, *ca2_pem, *api_pem, *api_key, *api_expired_pem, *client_pem, *client_key;

/* Paths from fx_path rotate; keep the ones the group needs. */
static const char *
keep(const char *path)
{
	char *p = strdup(path);

	assert_non_null(p);
	return p;
}

static const char *
write_cert(const char *name, EVP_PKEY *key, const struct fx_cert_spec *spec, bool with_ca)
{
	X509 *x = fx_cert(key, spec);
	const char *path = keep(fx_path(dir, name));

	fx_write_certs(path, x, with_ca ? ca : NULL, NULL);
	X509_free(x);
	return path;
}

static int
group_setup(void **state)
{
	static const char *const main_dns[] = { "main.test", NULL };
	static const char *const exact_dns[] = { "www.example.com", "shop.example.com", NULL };
	static const char *const wild_dns[] = { "*.example.org", NULL };
	static const char *const api_dns[] = { "api.internal", NULL };
	static const char *const api_ips[] = { "127.0.0.1", NULL };
	X509 *x;

	(void)state;
	fx_dir_make(dir, "test-tls");
	rsa = fx_key_rsa();
	ec = fx_key_ec();
	ec2 = fx_key_ec();
	ca_key = fx_key_ec();
	ca2_key = fx_key_ec();
	ca = fx_cert(ca_key, &(struct fx_cert_spec){ .cn = "Test CA", .to_days = 30, .ca = true });
	ca2 = fx_cert(ca2_key, &(struct fx_cert_spec){ .cn = "Other CA", .to_days = 30, .ca = true });
	ca_pem = keep(fx_write_certs(fx_path(dir, "ca.pem"), ca, NULL, NULL));
	ca2_pem = keep(fx_write_certs(fx_path(dir, "ca2.pem"), ca2, NULL, NULL));

	/* Listener certificates; the names tell them apart in handshakes. */
	main_pem = write_cert("main.pem", rsa, &(struct fx_cert_spec){ .cn = "main",
		.dns = main_dns, .to_days = 30 }, false);
	main_key = keep(fx_write_key(fx_path(dir, "rsa.key"), rsa));
	exact_pem = write_cert("exact.pem", rsa, &(struct fx_cert_spec){ .cn = "exact",
		.dns = exact_dns, .to_days = 30, .issuer = ca, .issuer_key = ca_key }, true);
	exact_key = main_key;
	wild_pem = write_cert("wild.pem", rsa, &(struct fx_cert_spec){ .cn = "wild-rsa",
		.dns = wild_dns, .to_days = 30 }, false);
	wild_key = main_key;
	wild_ec_pem = write_cert("wild-ec.pem", ec, &(struct fx_cert_spec){ .cn = "wild-ec",
		.dns = wild_dns, .to_days = 30 }, false);
	wild_ec_key = keep(fx_write_key(fx_path(dir, "ec.key"), ec));
	/* No subjectAltName: the CN is the name. */
	x = fx_cert(ec, &(struct fx_cert_spec){ .cn = "combined.test", .to_days = 30 });
	combined_pem = keep(fx_write_certs(fx_path(dir, "combined.pem"), x, NULL, ec));
	X509_free(x);
	expired_pem = write_cert("expired.pem", ec, &(struct fx_cert_spec){ .cn = "expired",
		.dns = main_dns, .from_days = -30, .to_days = -1 }, false);
	future_pem = write_cert("future.pem", ec, &(struct fx_cert_spec){ .cn = "future",
		.dns = main_dns, .from_days = 2, .to_days = 30 }, false);

	/* An upstream server signed by the test CA, and a client certificate. */
	api_pem = write_cert("api.pem", ec, &(struct fx_cert_spec){ .cn = "api", .dns = api_dns,
		.ips = api_ips, .to_days = 30, .issuer = ca, .issuer_key = ca_key }, false);
	api_key = wild_ec_key;
	api_expired_pem = write_cert("api-expired.pem", ec, &(struct fx_cert_spec){ .cn = "api",
		.dns = api_dns, .from_days = -10, .to_days = -2, .issuer = ca, .issuer_key = ca_key },
		true);
	client_pem = write_cert("client.pem", ec2, &(struct fx_cert_spec){ .cn = "client",
		.to_days = 30, .issuer = ca, .issuer_key = ca_key }, true);
	client_key = keep(fx_write_key(fx_path(dir, "client.key"), ec2));
	return 0;
}

static int
group_teardown(void **state)
{
	const char *paths[] = { main_pem, main_key, exact_pem, wild_pem, wild_ec_pem, wild_ec_key,
		combined_pem, expired_pem, future_pem, ca_pem, ca2_pem, api_pem, api_expired_pem,
		client_pem, client_key };

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		free((char *)paths[i]);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec2);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(ca2_key);
	X509_free(ca);
	X509_free(ca2);
	fx_dir_remove(dir);
	return 0;
}

/* ------------------------------------------------------------- helpers */

/* A listener as config_load() would fill it, with the table's defaults. */
struct lst {
	struct config_listener l;
	struct config_tls_cert certs[8];
};

static void
lst_init(struct lst *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->l.name = (char *)name;
	s->l.tls_enabled = true;
	s->l.tls_conf = (struct config_listener_tls){
		.certs = s->certs,
		.min_version = CONFIG_TLS_1_2,
		.max_version = CONFIG_TLS_1_3,
		.ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20",
		.ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
		.session_cache = 20000,
		.session_timeout_s = 300,
		.tickets = true,
		.ticket_rotate_s = 3600,
	};
}

static void
lst_cert(struct lst *s, const char *name, const char *chain, const char *key)
{
	struct config_tls_cert *c = &s->certs[s->l.tls_conf.ncerts++];

	c->name = (char *)name;
	c->chain = (char *)chain;
	c->key = (char *)key;
}

static struct tls_server *
server_ok(const struct lst *s)
{
	struct tls_error err;
	struct tls_server *ts = tls_server_new(&s->l, &err);

	if (ts == NULL)
		fail_msg("tls_server_new: %s", err.msg);
	return ts;
}

/* The standard listener: main (default), exact, wild (RSA and ECDSA). */
static struct tls_server *
standard_server(struct lst *s, const char *name)
{
	lst_init(s, name);
	lst_cert(s, "main", main_pem, main_key);
	lst_cert(s, "exact", exact_pem, exact_key);
	lst_cert(s, "wild", wild_pem, wild_key);
	lst_cert(s, "wild-ec", wild_ec_pem, wild_ec_key);
	return server_ok(s);
}

static SSL_CTX *
client_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* The result of one in-memory handshake. */
struct hs {
	bool ok;
	int client_err, server_err;	/* SSL_get_error of the side that failed, or 0 */
	char client_why[256], server_why[256];
};

/*
 * Run client and server against each other over a BIO pair until both
 * finish or one fails, then let the client read what the server sent after
 * its Finished (TLS 1.3 tickets). Both SSLs stay the caller's.
 */
static struct hs
handshake(SSL *client, SSL *server)
{
	struct hs r = { 0 };
	BIO *cb, *sb;
	bool cdone = false, sdone = false;

	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	for (int i = 0; i < 50 && !(cdone && sdone); i++) {
		if (!cdone) {
			int rc = SSL_do_handshake(client);
			int e = SSL_get_error(client, rc);

			if (rc == 1) {
				cdone = true;
			} else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				r.client_err = e;
				tls_error_reason(client, e, r.client_why, sizeof(r.client_why));
				break;
			}
		}
		if (!sdone) {
			int rc = SSL_do_handshake(server);
			int e = SSL_get_error(server, rc);

			if (rc == 1) {
				sdone = true;
			} else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				r.server_err = e;
				tls_error_reason(server, e, r.server_why, sizeof(r.server_why));
				/* Let the client read the alert. */
				if (SSL_do_handshake(client) != 1) {
					r.client_err = SSL_get_error(client, -1);
					tls_error_reason(client, r.client_err, r.client_why,
						sizeof(r.client_why));
				}
				break;
			}
		}
	}
	r.ok = cdone && sdone;
	if (r.ok) {
		char byte;

		/* Post-handshake messages (tickets) in both directions. */
		for (int i = 0; i < 3; i++) {
			assert_true(SSL_read(client, &byte, 1) <= 0);
			assert_true(SSL_read(server, &byte, 1) <= 0);
		}
	}
	ERR_clear_error();
	return r;
}

/*
 * Close as a clean connection ends: OpenSSL marks the session of an SSL
 * freed without a close_notify as not resumable.
 */
static void
close_ssl(SSL *ssl)
{
	if (SSL_is_init_finished(ssl))
		SSL_shutdown(ssl);
	SSL_free(ssl);
	ERR_clear_error();
}

/* Handshake a fresh client of cctx (with sni, or none) with ts. */
static struct hs
connect_to(struct tls_server *ts, SSL_CTX *cctx, const char *sni, SSL_SESSION *resume,
		SSL **client_out, SSL **server_out)
{
	SSL *c = SSL_new(cctx), *s = tls_server_session_new(ts);
	struct hs r;

	assert_non_null(c);
	assert_non_null(s);
	SSL_set_connect_state(c);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(c, sni), 1);
	if (resume != NULL)
		assert_int_equal(SSL_set_session(c, resume), 1);
	r = handshake(c, s);
	*client_out = c;
	*server_out = s;
	return r;
}

/* The CN of the certificate the server presented for sni. */
static const char *
presented(struct tls_server *ts, SSL_CTX *cctx, const char *sni)
{
	static char cn[128];
	SSL *c, *s;
	struct hs r = connect_to(ts, cctx, sni, NULL, &c, &s);

	if (!r.ok)
		fail_msg("handshake for %s failed: %s / %s", sni ? sni : "(no SNI)",
			r.client_why, r.server_why);
	snprintf(cn, sizeof(cn), "%s", fx_cn(SSL_get0_peer_certificate(c)));
	close_ssl(c);
	close_ssl(s);
	return cn;
}

/* Handshake, and the session the client got (owned by the caller). */
static SSL_SESSION *
first_session(struct tls_server *ts, SSL_CTX *cctx)
{
	SSL *c, *s;
	struct hs r = connect_to(ts, cctx, "main.test", NULL, &c, &s);
	SSL_SESSION *sess;

	if (!r.ok)
		fail_msg("handshake failed: %s / %s", r.client_why, r.server_why);
	assert_false(SSL_session_reused(c));
	sess = SSL_get1_session(c);
	assert_non_null(sess);
	assert_true(SSL_SESSION_is_resumable(sess));
	close_ssl(c);
	close_ssl(s);
	return sess;
}

/* Whether a client offering sess resumes it on ts; *renewed: a new session
 * came with it (a ticket reissued under the current key). */
static bool
resumes(struct tls_server *ts, SSL_CTX *cctx, SSL_SESSION *sess, SSL_SESSION **renewed)
{
	SSL *c, *s;
	struct hs r = connect_to(ts, cctx, "main.test", sess, &c, &s);
	bool reused;

	if (!r.ok)
		fail_msg("handshake failed: %s / %s", r.client_why, r.server_why);
	reused = SSL_session_reused(c) != 0;
	if (renewed != NULL)
		*renewed = SSL_get1_session(c);
	close_ssl(c);
	close_ssl(s);
	return reused;
}

static unsigned
tick(uint64_t advance)
{
	fake_now += advance;
	return tls_tick(fake_now);
}

/* ---------------------------------------------------------------- server */

static void
test_sni_selection(void **state)
{
	struct lst s;
	struct tls_server *ts = standard_server(&s, "sni");
	SSL_CTX *cctx = client_ctx();
	const char *cn;

	(void)state;
	assert_string_equal(presented(ts, cctx, "www.example.com"), "exact");
	assert_string_equal(presented(ts, cctx, "shop.example.com"), "exact");
	assert_string_equal(presented(ts, cctx, "WWW.Example.COM"), "exact");
	assert_string_equal(presented(ts, cctx, "www.example.com."), "exact");
	assert_string_equal(presented(ts, cctx, "main.test"), "main");
	/* The wildcard covers one label, and the ECDSA twin shares its names. */
	cn = presented(ts, cctx, "a.example.org");
	assert_true(strcmp(cn, "wild-rsa") == 0 || strcmp(cn, "wild-ec") == 0);
	assert_string_equal(presented(ts, cctx, "a.b.example.org"), "main");
	assert_string_equal(presented(ts, cctx, "example.org"), "main");
	assert_string_equal(presented(ts, cctx, "unknown.test"), "main");
	assert_string_equal(presented(ts, cctx, NULL), "main");
	/* An exact name wins over a wildcard that also matches. */
	SSL_CTX_free(cctx);
	tls_server_free(ts);

	lst_init(&s, "sni2");
	lst_cert(&s, "wild", wild_pem, wild_key);
	lst_cert(&s, "combined", combined_pem, NULL);
	ts = server_ok(&s);
	cctx = client_ctx();
	assert_string_equal(presented(ts, cctx, "combined.test"), "combined.test");
	assert_string_equal(presented(ts, cctx, "other.test"), "wild-rsa");
	SSL_CTX_free(cctx);
	tls_server_free(ts);
}

static void
test_rsa_and_ecdsa(void **state)
{
	static const char *const versions[] = { "TLS1.3", "TLS1.2" };
	struct lst s;
	struct tls_server *ts = standard_server(&s, "sigalgs");

	(void)state;
	for (size_t v = 0; v < 2; v++) {
		SSL_CTX *cctx = client_ctx();

		if (v == 1)
			assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
		assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, "ECDSA+SHA256"), 1);
		if (strcmp(presented(ts, cctx, "x.example.org"), "wild-ec") != 0)
			fail_msg("%s: ECDSA-only client did not get the ECDSA certificate", versions[v]);
		assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, "rsa_pss_rsae_sha256:RSA+SHA256"), 1);
		if (strcmp(presented(ts, cctx, "x.example.org"), "wild-rsa") != 0)
			fail_msg("%s: RSA-only client did not get the RSA certificate", versions[v]);
		SSL_CTX_free(cctx);
	}
	tls_server_free(ts);
}

static void
test_alpn(void **state)
{
	static const unsigned char h2_and_h1[] = "\x02h2\x08http/1.1";
	static const unsigned char h2_only[] = "\x02h2";
	struct lst s;
	struct tls_server *ts = standard_server(&s, "alpn");
	SSL_CTX *cctx = client_ctx();
	const unsigned char *sel;
	unsigned len;
	SSL *c, *sv;
	struct hs r;

	(void)state;
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, h2_and_h1, sizeof(h2_and_h1) - 1), 0);
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_true(r.ok);
	SSL_get0_alpn_selected(c, &sel, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	close_ssl(c);
	close_ssl(sv);

	/* Only h2 offered: no ALPN, but the handshake succeeds. */
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, h2_only, sizeof(h2_only) - 1), 0);
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_true(r.ok);
	SSL_get0_alpn_selected(c, &sel, &len);
	assert_int_equal(len, 0);
	close_ssl(c);
	close_ssl(sv);
	SSL_CTX_free(cctx);

	/* No ALPN at all. */
	cctx = client_ctx();
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_true(r.ok);
	SSL_get0_alpn_selected(sv, &sel, &len);
	assert_int_equal(len, 0);
	close_ssl(c);
	close_ssl(sv);
	SSL_CTX_free(cctx);
	tls_server_free(ts);
}

static void
test_versions(void **state)
{
	struct lst s;
	struct tls_server *ts;
	SSL_CTX *cctx = client_ctx();
	SSL *c, *sv;
	struct hs r;

	(void)state;
	/* Default: 1.2 and 1.3, and 1.3 wins. */
	ts = standard_server(&s, "versions");
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_true(r.ok);
	assert_string_equal(tls_version_name(c), "TLSv1.3");
	assert_string_equal(tls_version_name(sv), "TLSv1.3");
	assert_string_equal(tls_cipher_name(sv), "TLS_AES_256_GCM_SHA384");
	assert_string_equal(tls_sni(sv), "main.test");
	close_ssl(c);
	close_ssl(sv);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_true(r.ok);
	assert_string_equal(tls_version_name(sv), "TLSv1.2");
	/* ECDHE and AEAD only for TLS 1.2. */
	assert_string_equal(tls_cipher_name(sv), "ECDHE-RSA-AES256-GCM-SHA384");
	close_ssl(c);
	close_ssl(sv);
	tls_server_free(ts);

	/* min_version = TLS1.3 refuses a TLS 1.2 client. */
	lst_init(&s, "tls13only");
	s.l.tls_conf.min_version = CONFIG_TLS_1_3;
	lst_cert(&s, "main", main_pem, main_key);
	ts = server_ok(&s);
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_false(r.ok);
	assert_string_equal(r.server_why, "unsupported protocol");
	assert_string_equal(r.client_why, "tlsv1 alert protocol version");
	close_ssl(c);
	close_ssl(sv);
	tls_server_free(ts);

	/* max_version = TLS1.2 talks 1.2 to a 1.3 client. */
	SSL_CTX_free(cctx);
	cctx = client_ctx();
	lst_init(&s, "tls12only");
	s.l.tls_conf.max_version = CONFIG_TLS_1_2;
	lst_cert(&s, "main", main_pem, main_key);
	ts = server_ok(&s);
	/* Before a handshake there is nothing to name. */
	sv = tls_server_session_new(ts);
	assert_string_equal(tls_version_name(sv), "-");
	assert_string_equal(tls_cipher_name(sv), "-");
	assert_null(tls_sni(sv));
	close_ssl(sv);
	r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);
	assert_true(r.ok);
	assert_string_equal(tls_version_name(c), "TLSv1.2");
	close_ssl(c);
	close_ssl(sv);
	tls_server_free(ts);
	SSL_CTX_free(cctx);
}

/* ------------------------------------------------------------ resumption */

static void
test_resume_cache_and_tickets(void **state)
{
	struct lst s;
	struct tls_server *ts;
	SSL_SESSION *sess;

	(void)state;
	for (int v = 0; v < 2; v++) {
		SSL_CTX *cctx = client_ctx();

		if (v == 1)
			assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
		/* Tickets only. */
		lst_init(&s, "resume-tickets");
		lst_cert(&s, "main", main_pem, main_key);
		s.l.tls_conf.session_cache = 0;
		ts = server_ok(&s);
		sess = first_session(ts, cctx);
		assert_true(resumes(ts, cctx, sess, NULL));
		SSL_SESSION_free(sess);
		tls_server_free(ts);

		/* The session cache only (TLS 1.3: stateful tickets). */
		lst_init(&s, "resume-cache");
		lst_cert(&s, "main", main_pem, main_key);
		s.l.tls_conf.tickets = false;
		ts = server_ok(&s);
		sess = first_session(ts, cctx);
		assert_true(resumes(ts, cctx, sess, NULL));
		SSL_SESSION_free(sess);
		tls_server_free(ts);

		/* Neither: every handshake is a full one. */
		lst_init(&s, "resume-none");
		lst_cert(&s, "main", main_pem, main_key);
		s.l.tls_conf.tickets = false;
		s.l.tls_conf.session_cache = 0;
		ts = server_ok(&s);
		{
			SSL *c, *sv;
			struct hs r = connect_to(ts, cctx, "main.test", NULL, &c, &sv);

			assert_true(r.ok);
			sess = SSL_get1_session(c);
			close_ssl(c);
			close_ssl(sv);
		}
		assert_false(resumes(ts, cctx, sess, NULL));
		SSL_SESSION_free(sess);
		tls_server_free(ts);
		SSL_CTX_free(cctx);
	}
}

/* Sessions are per listener: another listener's ticket does not resume. */
static void
test_resume_per_listener(void **state)
{
	struct lst a, b;
	struct tls_server *ta, *tb;
	SSL_CTX *cctx = client_ctx();
	SSL_SESSION *sess;

	(void)state;
	lst_init(&a, "listener-a");
	lst_cert(&a, "main", main_pem, main_key);
	lst_init(&b, "listener-b");
	lst_cert(&b, "main", main_pem, main_key);
	ta = server_ok(&a);
	tb = server_ok(&b);
	sess = first_session(ta, cctx);
	assert_false(resumes(tb, cctx, sess, NULL));
	assert_true(resumes(ta, cctx, sess, NULL));
	SSL_SESSION_free(sess);
	tls_server_free(ta);
	tls_server_free(tb);
	SSL_CTX_free(cctx);
}

static void
test_ticket_rotation_and_reload(void **state)
{
	struct lst s;
	struct tls_server *ts, *reloaded;
	SSL_SESSION *sess, *renewed = NULL, *again = NULL;
	SSL_CTX *cctx = client_ctx();

	(void)state;
	lst_init(&s, "rotating");
	lst_cert(&s, "main", main_pem, main_key);
	s.l.tls_conf.session_cache = 0;		/* tickets alone */
	s.l.tls_conf.ticket_rotate_s = 600;
	ts = server_ok(&s);
	/* The first tick starts the interval; nothing rotates before it ends. */
	tick(0);
	assert_int_equal(tick(599), 0);
	sess = first_session(ts, cctx);

	/* One rotation: the old key still decrypts, and the ticket is renewed. */
	assert_int_equal(tick(1), 1);
	assert_true(resumes(ts, cctx, sess, &renewed));
	assert_non_null(renewed);
	assert_ptr_not_equal(renewed, sess);

	/* A reload: a new server for the same listener, built while the old
	 * generation lives, shares the keys. */
	reloaded = server_ok(&s);
	tls_server_free(ts);
	assert_true(resumes(reloaded, cctx, sess, NULL));

	/* After three rotations the first key is gone: full handshake. The
	 * renewed ticket was made one rotation later and still works. */
	assert_int_equal(tick(600), 1);
	assert_true(resumes(reloaded, cctx, sess, NULL));
	assert_int_equal(tick(600), 1);
	assert_false(resumes(reloaded, cctx, sess, NULL));
	assert_true(resumes(reloaded, cctx, renewed, &again));
	assert_int_equal(tick(600), 1);
	assert_false(resumes(reloaded, cctx, renewed, NULL));
	SSL_SESSION_free(again);
	SSL_SESSION_free(renewed);
	SSL_SESSION_free(sess);

	/* Once no generation has the listener, its keys are dropped: a new
	 * one starts a new ring, and tls_tick() has nothing to rotate. */
	sess = first_session(reloaded, cctx);
	tls_server_free(reloaded);
	assert_int_equal(tick(100000), 0);
	ts = server_ok(&s);
	assert_false(resumes(ts, cctx, sess, NULL));
	SSL_SESSION_free(sess);
	tls_server_free(ts);
	SSL_CTX_free(cctx);
}

/* base64 of 16-byte name, HMAC secret and AES key (80 or 48 bytes). */
static void
key_line(char *out, size_t len, size_t keylen, unsigned char fill)
{
	unsigned char raw[80];

	memset(raw, fill, sizeof(raw));
	raw[0] = (unsigned char)keylen;
	assert_true(len >= 4 * ((keylen + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)keylen);
}

static struct tls_server *
file_server(const char *name, const char *keyfile, struct tls_error *err)
{
	struct lst s;

	lst_init(&s, name);
	lst_cert(&s, "main", main_pem, main_key);
	s.l.tls_conf.session_cache = 0;
	s.l.tls_conf.ticket_key_file = (char *)keyfile;
	return tls_server_new(&s.l, err);
}

static void
test_ticket_key_file(void **state)
{
	char k1[128], k2[128], k3[128], text[1024];
	const char *f1 = keep(fx_path(dir, "tickets1.key"));
	const char *f2 = keep(fx_path(dir, "tickets2.key"));
	const char *f3 = keep(fx_path(dir, "tickets3.key"));
	struct tls_server *a, *b, *c, *d;
	struct tls_error err;
	SSL_CTX *cctx = client_ctx();
	SSL_SESSION *sess, *renewed = NULL;

	(void)state;
	key_line(k1, sizeof(k1), 80, 0x11);
	key_line(k2, sizeof(k2), 48, 0x22);
	key_line(k3, sizeof(k3), 80, 0x33);
	snprintf(text, sizeof(text), "# ticket keys\n\n%s\n  %s  \n", k1, k2);
	fx_write_text(f1, text);
	/* Rotated by hand: a new first key, the old one kept to decrypt. */
	snprintf(text, sizeof(text), "%s\n%s\n", k3, k1);
	fx_write_text(f2, text);
	snprintf(text, sizeof(text), "%s\n", k3);
	fx_write_text(f3, text);

	/* Two replicas (same listener name, separate processes in real life)
	 * with the same file resume each other's sessions. */
	a = file_server("replica", f1, &err);
	assert_non_null(a);
	b = file_server("replica", f1, &err);
	assert_non_null(b);
	c = file_server("replica", f2, &err);
	assert_non_null(c);
	d = file_server("replica", f3, &err);
	assert_non_null(d);
	sess = first_session(a, cctx);
	assert_true(resumes(b, cctx, sess, NULL));
	/* File keys do not rotate by time. */
	tick(100000);
	tick(100000);
	tick(100000);
	assert_true(resumes(a, cctx, sess, NULL));
	assert_true(resumes(c, cctx, sess, &renewed));
	assert_false(resumes(d, cctx, sess, NULL));
	/* c renewed the ticket under its first key, which d has. */
	assert_true(resumes(d, cctx, renewed, NULL));
	SSL_SESSION_free(renewed);
	SSL_SESSION_free(sess);
	/* A 48-byte (AES-128) key encrypts too. */
	snprintf(text, sizeof(text), "%s\n", k2);
	fx_write_text(f3, text);
	tls_server_free(d);
	d = file_server("replica", f3, &err);
	assert_non_null(d);
	sess = first_session(d, cctx);
	assert_true(resumes(d, cctx, sess, NULL));
	assert_true(resumes(a, cctx, sess, NULL));
	SSL_SESSION_free(sess);
	tls_server_free(a);
	tls_server_free(b);
	tls_server_free(c);
	tls_server_free(d);
	SSL_CTX_free(cctx);
	free((char *)f1);
	free((char *)f2);
	free((char *)f3);
}

/* The error is before, the file's path, then after. */
static void
expect_file_error(const char *text, const char *before, const char *after)
{
	const char *f = keep(fx_path(dir, "bad-tickets.key"));
	struct tls_error err;
	char want[512];

	if (text != NULL)
		fx_write_text(f, text);
	else
		unlink(f);
	assert_null(file_server("bad", f, &err));
	snprintf(want, sizeof(want), "%s%s%s", before, f, after);
	assert_string_equal(err.msg, want);
	assert_string_equal(err.directive, "ticket_key_file");
	assert_int_equal(err.cert, -1);
	unlink(f);
	free((char *)f);
}

static void
test_ticket_key_file_errors(void **state)
{
	char k1[128], short_key[64], text[1024];

	(void)state;
	key_line(k1, sizeof(k1), 80, 0x44);
	key_line(short_key, sizeof(short_key), 32, 0x55);
	snprintf(text, sizeof(text), "%s\n# c\nnot*base64!\n", k1);
	expect_file_error(text, "ticket_key_file ", ":3: invalid base64");
	snprintf(text, sizeof(text), "%s\n%s\n", k1, short_key);
	expect_file_error(text, "ticket_key_file ", ":2: a key is 80 bytes (or 48 for AES-128) once decoded, not 32; one key a line, as "
		"`openssl rand 80 | openssl base64 -A` writes it");
	/* Truncated base64 (a length not a multiple of 4). */
	snprintf(text, sizeof(text), "%.*s\n", (int)strlen(k1) - 1, k1);
	expect_file_error(text, "ticket_key_file ", ":1: invalid base64");
	/* Padding in the middle. */
	expect_file_error("QUJD=EFG\n", "ticket_key_file ", ":1: invalid base64");
	expect_file_error("# only a comment\n\n", "ticket_key_file ", " holds no key");
	expect_file_error(NULL, "cannot open ticket_key_file ", ": No such file or directory");
}

/* -------------------------------------------------- certificate loading */

static void
expect_cert_error(const char *chain, const char *key, const char *directive, const char *want)
{
	struct lst s;
	struct tls_error err;

	lst_init(&s, "errors");
	lst_cert(&s, "main", main_pem, main_key);
	lst_cert(&s, "bad", chain, key);
	assert_null(tls_server_new(&s.l, &err));
	assert_string_equal(err.msg, want);
	assert_string_equal(err.directive, directive);
	assert_int_equal(err.cert, 1);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_cert_errors(void **state)
{
	const char *missing = keep(fx_path(dir, "missing.pem"));
	const char *text = keep(fx_write_text(fx_path(dir, "text.pem"), "not a certificate\n"));
	const char *garbled = keep(fx_write_text(fx_path(dir, "garbled.pem"),
		"-----BEGIN CERTIFICATE-----\nMIIB!!!!not base64\n-----END CERTIFICATE-----\n"));
	const char *enc = keep(fx_path(dir, "encrypted.key"));
	char want[1024];
	FILE *fp;

	(void)state;
	/* A key that is not the certificate's. */
	snprintf(want, sizeof(want), "key %s does not match certificate %s", wild_ec_key, main_pem);
	expect_cert_error(main_pem, wild_ec_key, "key", want);
	/* A chain file that holds a key but not its certificate's. */
	snprintf(want, sizeof(want), "key %s does not match certificate %s", combined_pem, exact_pem);
	expect_cert_error(exact_pem, combined_pem, "key", want);
	snprintf(want, sizeof(want), "cannot open certificate %s: No such file or directory", missing);
	expect_cert_error(missing, main_key, "chain", want);
	snprintf(want, sizeof(want), "cannot open key %s: No such file or directory", missing);
	expect_cert_error(main_pem, missing, "key", want);
	snprintf(want, sizeof(want), "no PEM certificate in %s", text);
	expect_cert_error(text, main_key, "chain", want);
	snprintf(want, sizeof(want), "bad PEM certificate in %s: bad base64 decode", garbled);
	expect_cert_error(garbled, main_key, "chain", want);
	snprintf(want, sizeof(want), "no PEM private key in %s", text);
	expect_cert_error(main_pem, text, "key", want);
	/* Without key, the key is looked for in the chain file. */
	snprintf(want, sizeof(want), "no PEM private key in %s", main_pem);
	expect_cert_error(main_pem, NULL, "chain", want);
	/* An encrypted key would need a passphrase on the terminal. */
	fp = fopen(enc, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, rsa, EVP_aes_128_cbc(), NULL, 0, NULL,
		"secret"), 1);
	fclose(fp);
	snprintf(want, sizeof(want), "key %s is encrypted; sluice needs an unencrypted key", enc);
	expect_cert_error(main_pem, enc, "key", want);
	unlink(enc);
	unlink(text);
	unlink(garbled);
	free((char *)missing);
	free((char *)text);
	free((char *)garbled);
	free((char *)enc);
}

static void
test_cipher_errors(void **state)
{
	struct lst s;
	struct tls_error err;

	(void)state;
	lst_init(&s, "ciphers");
	lst_cert(&s, "main", main_pem, main_key);
	s.l.tls_conf.ciphers = "NOPE";
	assert_null(tls_server_new(&s.l, &err));
	assert_string_equal(err.msg, "ciphers \"NOPE\": no cipher that OpenSSL knows");
	assert_string_equal(err.directive, "ciphers");
	assert_int_equal(err.cert, -1);

	lst_init(&s, "ciphers");
	lst_cert(&s, "main", main_pem, main_key);
	s.l.tls_conf.ciphersuites = "TLS_NOPE";
	assert_null(tls_server_new(&s.l, &err));
	assert_string_equal(err.directive, "ciphersuites");

	/* A TLS 1.3-only listener needs no TLS 1.2 cipher. */
	lst_init(&s, "ciphers");
	lst_cert(&s, "main", main_pem, main_key);
	s.l.tls_conf.min_version = CONFIG_TLS_1_3;
	s.l.tls_conf.ciphers = "aNULL:!aNULL";
	assert_null(tls_server_new(&s.l, &err));
	assert_string_equal(err.directive, "ciphers");
}

/* Run fn with stderr going to a file; returns what was written (owned). */
static char *
capture_stderr(void (*fn)(void *), void *arg)
{
	const char *path = keep(fx_path(dir, "stderr.txt"));
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), saved = dup(2);
	char *buf = calloc(1, 4096);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0 && buf != NULL);
	assert_int_equal(dup2(fd, 2), 2);
	fn(arg);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	n = pread(fd, buf, 4095, 0);
	assert_true(n >= 0);
	close(fd);
	unlink(path);
	free((char *)path);
	return buf;
}

static void
load_one(void *arg)
{
	struct lst s;

	lst_init(&s, "warn");
	lst_cert(&s, "old", arg, wild_ec_key);
	tls_server_free(server_ok(&s));
}

static void
load_shadowed(void *arg)
{
	struct lst s;

	(void)arg;
	lst_init(&s, "warn");
	lst_cert(&s, "main", main_pem, main_key);
	lst_cert(&s, "exact", exact_pem, exact_key);
	lst_cert(&s, "again", exact_pem, exact_key);
	tls_server_free(server_ok(&s));
}

static void
test_validity_warnings(void **state)
{
	char *out, want[512];

	(void)state;
	out = capture_stderr(load_one, (void *)expired_pem);
	snprintf(want, sizeof(want), "[warn] listener \"warn\": certificate \"old\": %s expired on ",
		expired_pem);
	if (strstr(out, want) == NULL || strstr(out, "(notAfter); loaded anyway") == NULL)
		fail_msg("no expiry warning in: %s", out);
	free(out);
	out = capture_stderr(load_one, (void *)future_pem);
	snprintf(want, sizeof(want), "[warn] listener \"warn\": certificate \"old\": %s is not "
		"valid before ", future_pem);
	if (strstr(out, want) == NULL)
		fail_msg("no notBefore warning in: %s", out);
	free(out);
	out = capture_stderr(load_one, (void *)wild_ec_pem);
	assert_string_equal(out, "");
	free(out);
	/* A certificate that SNI can never choose. */
	out = capture_stderr(load_shadowed, NULL);
	snprintf(want, sizeof(want), "[warn] listener \"warn\": certificate \"again\" (%s) is never "
		"chosen: an earlier certificate has each of its names\n", exact_pem);
	if (strstr(out, want) == NULL)
		fail_msg("no shadowing warning in: %s", out);
	free(out);
}

static void
test_hsts(void **state)
{
	struct lst s;
	struct tls_server *ts;

	(void)state;
	lst_init(&s, "hsts");
	lst_cert(&s, "main", main_pem, main_key);
	ts = server_ok(&s);
	assert_int_equal(tls_server_hsts(ts), 0);
	tls_server_free(ts);
	s.l.tls_conf.hsts_s = 31536000;
	ts = server_ok(&s);
	assert_int_equal(tls_server_hsts(ts), 31536000);
	tls_server_free(ts);
	tls_server_free(NULL);
	tls_client_free(NULL);
}

/* --------------------------------------------------------------- clients */

/* A pool of one server at ip:443, defaults as config_load() sets them. */
struct pl {
	struct config_pool p;
	struct config_server srv[2];
};

static void
pool_init(struct pl *t, const char *ca_file, const char *server_name)
{
	memset(t, 0, sizeof(*t));
	t->p.name = "up";
	t->p.tls_on = true;
	t->p.tls_verify = true;
	t->p.tls_ca = (char *)ca_file;
	t->p.tls_server_name = (char *)server_name;
	t->p.servers = t->srv;
	t->p.nservers = 2;
	for (unsigned i = 0; i < 2; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->srv[i].addr;

		t->srv[i].index = i;
		t->srv[i].pool = &t->p;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(443);
		sin->sin_addr.s_addr = htonl(0x7f000001 + i);	/* 127.0.0.1, .2 */
		t->srv[i].addrlen = sizeof(*sin);
	}
}

static struct tls_client *
client_ok(const struct pl *t)
{
	struct tls_error err;
	struct tls_client *tc = tls_client_new(&t->p, &err);

	if (tc == NULL)
		fail_msg("tls_client_new: %s", err.msg);
	return tc;
}

/* The upstream server: a listener with the api certificate. */
static struct tls_server *
api_server(struct lst *s, const char *chain)
{
	lst_init(s, "api");
	lst_cert(s, "api", chain, api_key);
	return server_ok(s);
}

/* Handshake tc's SSL for server i with ts; reason of a client failure. */
static struct hs
upstream(struct tls_client *tc, const struct config_server *srv, struct tls_server *ts,
		bool *reused, char *sni, size_t snilen)
{
	SSL *c = tls_client_session_new(tc, srv), *s = tls_server_session_new(ts);
	struct hs r;

	assert_non_null(c);
	assert_non_null(s);
	r = handshake(c, s);
	if (reused != NULL)
		*reused = SSL_session_reused(c) != 0;
	if (sni != NULL)
		snprintf(sni, snilen, "%s", tls_sni(s) ? tls_sni(s) : "(none)");
	if (r.ok) {
		const unsigned char *sel;
		unsigned len;

		SSL_get0_alpn_selected(c, &sel, &len);
		assert_int_equal(len, 8);
		assert_memory_equal(sel, "http/1.1", 8);
	}
	close_ssl(c);
	close_ssl(s);
	return r;
}

static void
expect_upstream_failure(struct tls_client *tc, const struct config_server *srv,
		struct tls_server *ts, const char *why)
{
	struct hs r = upstream(tc, srv, ts, NULL, NULL, 0);

	assert_false(r.ok);
	assert_string_equal(r.client_why, why);
}

static void
test_upstream_verify(void **state)
{
	struct lst s, se;
	struct tls_server *ts = api_server(&s, api_pem), *expired;
	struct tls_client *tc;
	struct pl t;
	char sni[128];

	(void)state;
	/* Right name: SNI sent, verified against the CA. */
	pool_init(&t, ca_pem, "api.internal");
	tc = client_ok(&t);
	assert_true(upstream(tc, &t.srv[0], ts, NULL, sni, sizeof(sni)).ok);
	assert_string_equal(sni, "api.internal");
	tls_client_free(tc);

	/* Wrong name. */
	pool_init(&t, ca_pem, "wrong.internal");
	tc = client_ok(&t);
	expect_upstream_failure(tc, &t.srv[0], ts, "certificate verify failed: hostname mismatch");
	/* A server's own name wins over the pool's. */
	t.srv[1].tls_server_name = "api.internal";
	assert_true(upstream(tc, &t.srv[1], ts, NULL, sni, sizeof(sni)).ok);
	assert_string_equal(sni, "api.internal");
	tls_client_free(tc);

	/* No name: no SNI, and the certificate must hold the server's IP. */
	pool_init(&t, ca_pem, NULL);
	tc = client_ok(&t);
	assert_true(upstream(tc, &t.srv[0], ts, NULL, sni, sizeof(sni)).ok);
	assert_string_equal(sni, "(none)");
	expect_upstream_failure(tc, &t.srv[1], ts, "certificate verify failed: IP address mismatch");
	tls_client_free(tc);

	/* A CA that did not sign it; or that did, but the client does not
	 * trust and the server sends along. */
	pool_init(&t, ca2_pem, "api.internal");
	tc = client_ok(&t);
	expect_upstream_failure(tc, &t.srv[0], ts,
		"certificate verify failed: unable to get local issuer certificate");
	tls_client_free(tc);
	tls_server_free(ts);
	lst_init(&s, "exact");
	lst_cert(&s, "exact", exact_pem, exact_key);
	ts = server_ok(&s);
	pool_init(&t, ca2_pem, "www.example.com");
	tc = client_ok(&t);
	expect_upstream_failure(tc, &t.srv[0], ts,
		"certificate verify failed: self-signed certificate in certificate chain");
	tls_client_free(tc);
	/* The chain file's intermediate completes the chain to a trusted CA. */
	pool_init(&t, ca_pem, "www.example.com");
	tc = client_ok(&t);
	assert_true(upstream(tc, &t.srv[0], ts, NULL, NULL, 0).ok);
	tls_client_free(tc);

	/* Expired. */
	expired = api_server(&se, api_expired_pem);
	pool_init(&t, ca_pem, "api.internal");
	tc = client_ok(&t);
	expect_upstream_failure(tc, &t.srv[0], expired,
		"certificate verify failed: certificate has expired");
	tls_client_free(tc);

	/* tls_verify = off accepts all of that. */
	pool_init(&t, ca2_pem, "wrong.internal");
	t.p.tls_verify = false;
	tc = client_ok(&t);
	assert_true(upstream(tc, &t.srv[0], expired, NULL, NULL, 0).ok);
	tls_client_free(tc);
	tls_server_free(expired);
	tls_server_free(ts);
}

/* A server that requires a client certificate from the test CA. */
static SSL_CTX *
mtls_server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, api_pem), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, api_key, SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_load_verify_file(ctx, ca_pem), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;
}

static void
test_upstream_mtls(void **state)
{
	SSL_CTX *sctx = mtls_server_ctx();
	struct tls_client *tc;
	struct pl t;
	SSL *c, *s;
	struct hs r;

	(void)state;
	pool_init(&t, ca_pem, "api.internal");
	t.p.tls_cert = (char *)client_pem;
	t.p.tls_key = (char *)client_key;
	tc = client_ok(&t);
	c = tls_client_session_new(tc, &t.srv[0]);
	s = SSL_new(sctx);
	SSL_set_accept_state(s);
	r = handshake(c, s);
	if (!r.ok)
		fail_msg("mTLS handshake: %s / %s", r.client_why, r.server_why);
	assert_string_equal(fx_cn(SSL_get0_peer_certificate(s)), "client");
	close_ssl(c);
	close_ssl(s);
	tls_client_free(tc);

	/* Without a client certificate the server refuses. */
	pool_init(&t, ca_pem, "api.internal");
	tc = client_ok(&t);
	c = tls_client_session_new(tc, &t.srv[0]);
	s = SSL_new(sctx);
	SSL_set_accept_state(s);
	r = handshake(c, s);
	assert_false(r.ok);
	assert_string_equal(r.server_why, "peer did not return a certificate");
	close_ssl(c);
	close_ssl(s);
	tls_client_free(tc);
	SSL_CTX_free(sctx);
}

static void
test_upstream_resume(void **state)
{
	static const unsigned versions[] = { CONFIG_TLS_1_3, CONFIG_TLS_1_2 };
	struct lst s;
	struct tls_server *ts;
	struct tls_client *tc;
	struct pl t;
	bool reused;

	(void)state;
	for (size_t v = 0; v < 2; v++) {
		lst_init(&s, "api");
		lst_cert(&s, "api", api_pem, api_key);
		s.l.tls_conf.max_version = versions[v];
		ts = server_ok(&s);
		pool_init(&t, ca_pem, "api.internal");
		tc = client_ok(&t);
		assert_true(upstream(tc, &t.srv[0], ts, &reused, NULL, 0).ok);
		assert_false(reused);
		assert_true(upstream(tc, &t.srv[0], ts, &reused, NULL, 0).ok);
		assert_true(reused);
		/* Sessions are kept per server. */
		t.srv[1].tls_server_name = "api.internal";
		assert_true(upstream(tc, &t.srv[1], ts, &reused, NULL, 0).ok);
		assert_false(reused);
		tls_client_session_forget(tc, &t.srv[0]);
		assert_true(upstream(tc, &t.srv[0], ts, &reused, NULL, 0).ok);
		assert_false(reused);
		tls_client_free(tc);
		tls_server_free(ts);
	}
}

static void
test_client_errors(void **state)
{
	const char *missing = keep(fx_path(dir, "missing-ca.pem"));
	const char *text = keep(fx_write_text(fx_path(dir, "ca-text.pem"), "nothing\n"));
	struct tls_error err;
	struct pl t;
	char want[512];

	(void)state;
	pool_init(&t, missing, NULL);
	assert_null(tls_client_new(&t.p, &err));
	snprintf(want, sizeof(want), "cannot open tls_ca %s: No such file or directory", missing);
	assert_string_equal(err.msg, want);
	assert_string_equal(err.directive, "tls_ca");

	pool_init(&t, text, NULL);
	assert_null(tls_client_new(&t.p, &err));
	snprintf(want, sizeof(want), "no PEM certificate in tls_ca %s", text);
	assert_string_equal(err.msg, want);

	/* A directory of hashed CA names is accepted. */
	pool_init(&t, dir, NULL);
	tls_client_free(client_ok(&t));
	/* The system store. */
	pool_init(&t, NULL, "api.internal");
	tls_client_free(client_ok(&t));

	pool_init(&t, ca_pem, NULL);
	t.p.tls_cert = (char *)client_pem;
	t.p.tls_key = (char *)main_key;
	assert_null(tls_client_new(&t.p, &err));
	snprintf(want, sizeof(want), "key %s does not match certificate %s", main_key, client_pem);
	assert_string_equal(err.msg, want);
	assert_string_equal(err.directive, "tls_key");
	t.p.tls_key = NULL;
	assert_null(tls_client_new(&t.p, &err));
	snprintf(want, sizeof(want), "no PEM private key in %s", client_pem);
	assert_string_equal(err.msg, want);
	assert_string_equal(err.directive, "tls_cert");
	unlink(text);
	free((char *)missing);
	free((char *)text);
}

static void
test_error_reason(void **state)
{
	char buf[128];

	(void)state;
	errno = ECONNRESET;
	assert_string_equal(tls_error_reason(NULL, SSL_ERROR_SYSCALL, buf, sizeof(buf)),
		"Connection reset by peer");
	errno = 0;
	assert_string_equal(tls_error_reason(NULL, SSL_ERROR_SYSCALL, buf, sizeof(buf)),
		"connection closed by the peer");
	assert_string_equal(tls_error_reason(NULL, SSL_ERROR_SSL, buf, sizeof(buf)),
		"TLS error 1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sni_selection),
		cmocka_unit_test(test_rsa_and_ecdsa),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_resume_cache_and_tickets),
		cmocka_unit_test(test_resume_per_listener),
		cmocka_unit_test(test_ticket_rotation_and_reload),
		cmocka_unit_test(test_ticket_key_file),
		cmocka_unit_test(test_ticket_key_file_errors),
		cmocka_unit_test(test_cert_errors),
		cmocka_unit_test(test_cipher_errors),
		cmocka_unit_test(test_validity_warnings),
		cmocka_unit_test(test_hsts),
		cmocka_unit_test(test_upstream_verify),
		cmocka_unit_test(test_upstream_mtls),
		cmocka_unit_test(test_upstream_resume),
		cmocka_unit_test(test_client_errors),
		cmocka_unit_test(test_error_reason),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
