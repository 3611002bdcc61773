/*
 * Run-time test certificates (tls_fixture.h): keys from OpenSSL's
 * generator, X509v3 certificates built and signed in memory, PEM files in
 * a temporary directory. Failures abort: a test cannot go on without them.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls_fixture.h"

static void __attribute__((noreturn))
fx_fail(const char *what)
{
	fprintf(stderr, "tls_fixture: %s failed\n", what);
	abort();
}

EVP_PKEY *
fx_key_rsa(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

	if (k == NULL)
		fx_fail("RSA keygen");
	return k;
}

EVP_PKEY *
fx_key_ec(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (k == NULL)
		fx_fail("EC keygen");
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		fx_fail("X509 extension");
	X509_EXTENSION_free(ext);
}

X509 *
fx_cert(EVP_PKEY *key, const struct fx_cert_spec *spec)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char serial[8];
	BIGNUM *bn;
	char san[1024] = "";

	if (x == NULL || name == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		fx_fail("X509_new");
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		fx_fail("serial");
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), spec->from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), spec->to_days * 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)spec->cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, spec->issuer != NULL ? X509_get_subject_name(spec->issuer) : name);
	X509_NAME_free(name);
	for (size_t i = 0; spec->dns != NULL && spec->dns[i] != NULL; i++)
		snprintf(san + strlen(san), sizeof(san) - strlen(san), "%sDNS:%s",
			san[0] ? "," : "", spec->dns[i]);
	for (size_t i = 0; spec->ips != NULL && spec->ips[i] != NULL; i++)
		snprintf(san + strlen(san), sizeof(san) - strlen(san), "%sIP:%s",
			san[0] ? "," : "", spec->ips[i]);
	if (san[0])
		add_ext(x, spec->issuer ? spec->issuer : x, NID_subject_alt_name, san);
	if (spec->ca) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, x, NID_subject_key_identifier, "hash");
	} else {
		add_ext(x, x, NID_basic_constraints, "CA:FALSE");
	}
	if (X509_sign(x, spec->issuer_key != NULL ? spec->issuer_key : key, EVP_sha256()) == 0)
		fx_fail("X509_sign");
	return x;
}

void
fx_dir_make(char *dir, const char *prefix)
{
	snprintf(dir, 64, "/tmp/sluice-%s-XXXXXX", prefix);
	if (mkdtemp(dir) == NULL)
		fx_fail("mkdtemp");
}

void
fx_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlink(fx_path(dir, e->d_name));
	closedir(d);
	rmdir(dir);
}

const char *
fx_path(const char *dir, const char *name)
{
	static char bufs[8][256];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

const char *
fx_write_certs(const char *path, X509 *x1, X509 *x2, EVP_PKEY *key)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || !PEM_write_X509(fp, x1) || (x2 != NULL && !PEM_write_X509(fp, x2)) ||
	    (key != NULL && !PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL)))
		fx_fail("writing a certificate");
	fclose(fp);
	return path;
}

const char *
fx_write_key(const char *path, EVP_PKEY *key)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || !PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL))
		fx_fail("writing a key");
	fclose(fp);
	return path;
}

const char *
fx_write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(text, fp) < 0)
		fx_fail("writing a file");
	fclose(fp);
	return path;
}

const char *
fx_cn(const X509 *x)
{
	static char cn[256];

	if (x == NULL ||
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) < 0)
		return "(none)";
	return cn;
}
