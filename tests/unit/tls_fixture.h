/*
 * Test certificates made at run time (no key is ever stored in the tree):
 * RSA and EC keys, self-signed and CA-signed certificates with DNS and IP
 * subjectAltNames, written as PEM files into a temporary directory. Shared
 * by test_tls.c and test_config.c.
 */
#ifndef SLUICE_TLS_FIXTURE_H
#define SLUICE_TLS_FIXTURE_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* What fx_cert() makes; NULL lists and a NULL issuer are fine. */
struct fx_cert_spec {
	const char *cn;
	const char *const *dns;		/* NULL-terminated subjectAltName DNS names */
	const char *const *ips;		/* NULL-terminated subjectAltName IP addresses */
	long from_days;			/* notBefore, days from now (may be negative) */
	long to_days;			/* notAfter, days from now */
	bool ca;			/* basicConstraints CA:TRUE, keyCertSign */
	X509 *issuer;			/* NULL: self-signed */
	EVP_PKEY *issuer_key;
};

EVP_PKEY *fx_key_rsa(void);		/* 2048 bits */
EVP_PKEY *fx_key_ec(void);		/* P-256 */

/* A certificate for key, signed by spec->issuer_key or key itself. */
X509 *fx_cert(EVP_PKEY *key, const struct fx_cert_spec *spec);

/* mkdtemp("/tmp/sluice-PREFIX-XXXXXX") into dir (64 bytes); removing it
 * removes the files in it. */
void fx_dir_make(char *dir, const char *prefix);
void fx_dir_remove(const char *dir);

/* dir/name into a static buffer of 8 rotating slots. */
const char *fx_path(const char *dir, const char *name);

/* PEM writers; a NULL x2 or key is skipped. Return the path. */
const char *fx_write_certs(const char *path, X509 *x1, X509 *x2, EVP_PKEY *key);
const char *fx_write_key(const char *path, EVP_PKEY *key);
const char *fx_write_text(const char *path, const char *text);

/* The CN of x (static buffer), for telling certificates apart. */
const char *fx_cn(const X509 *x);

#endif
