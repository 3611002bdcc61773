/*
 * The PROXY protocol parser (proxy.c): v1 TCP4, TCP6 and UNKNOWN lines, v2
 * PROXY and LOCAL headers over INET and INET6 with TLVs, every header fed
 * whole and in pieces down to single bytes, and the malformed headers that
 * must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "proxy.h"
#include "util.h"

/* Piece sizes every header is fed in; 0 stands for "all at once". */
static const size_t chunks[] = { 0, 1, 2, 3, 5, 7, 16, 64 };

/*
 * Feed data[0..len) in pieces of chunk bytes until the parser stops asking
 * for more. Returns the status; *used is the header bytes it took. The
 * parser is returned in *pp (freed by the caller).
 */
static enum proxy_status
feed(const void *data, size_t len, size_t chunk, size_t *used, struct proxy_parser **pp)
{
	struct proxy_parser *p = proxy_parser_new();
	const unsigned char *d = data;
	enum proxy_status st = PROXY_INCOMPLETE;
	size_t off = 0;

	assert_non_null(p);
	*used = 0;
	while (off < len && st == PROXY_INCOMPLETE) {
		size_t n = chunk == 0 || len - off < chunk ? len - off : chunk, u;

		st = proxy_parse(p, d + off, n, &u);
		assert_true(u <= n);
		if (st == PROXY_INCOMPLETE)
			assert_int_equal(u, n);
		*used += u;
		off += n;
	}
	assert_int_equal(proxy_parser_consumed(p), *used);
	*pp = p;
	return st;
}

/* data parses in every piece size into a header of hlen bytes; src and
 * dst are the expected "ip:port" texts, or NULL when it has no addresses. */
static void
expect_ok(const void *data, size_t len, size_t hlen, int version, const char *src,
		const char *dst)
{
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct proxy_parser *p;
		const struct proxy_result *r;
		size_t used, again;
		char buf[UTIL_ADDR_LEN];

		assert_int_equal(feed(data, len, chunks[i], &used, &p), PROXY_DONE);
		assert_int_equal(used, hlen);
		assert_null(proxy_parser_error(p));
		r = proxy_parser_result(p);
		assert_non_null(r);
		assert_int_equal(r->version, version);
		if (src == NULL) {
			assert_false(r->has_addr);
		} else {
			assert_true(r->has_addr);
			util_addr_format((const struct sockaddr *)&r->src, buf, sizeof(buf), 1);
			assert_string_equal(buf, src);
			util_addr_format((const struct sockaddr *)&r->dst, buf, sizeof(buf), 1);
			assert_string_equal(buf, dst);
			assert_int_equal(r->src_len, r->src.ss_family == AF_INET ?
				sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		}
		/* Done is final: nothing more is taken. */
		assert_int_equal(proxy_parse(p, "xyz", 3, &again), PROXY_DONE);
		assert_int_equal(again, 0);
		proxy_parser_free(p);
	}
}

/* data is refused in every piece size, having taken at most max bytes. */
static void
expect_bad(const void *data, size_t len, size_t max)
{
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct proxy_parser *p;
		size_t used, again;

		if (feed(data, len, chunks[i], &used, &p) != PROXY_ERROR)
			fail_msg("accepted (piece size %zu): \"%.*s\"", chunks[i], (int)len,
				(const char *)data);
		assert_true(used <= max);
		assert_non_null(proxy_parser_error(p));
		assert_null(proxy_parser_result(p));
		assert_int_equal(proxy_parse(p, "x", 1, &again), PROXY_ERROR);
		assert_int_equal(again, 0);
		proxy_parser_free(p);
	}
}

static void
ok_v1(const char *line, const char *src, const char *dst)
{
	char buf[512];

	/* What follows the header (a request, a ClientHello) is not taken. */
	snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n\r\n", line);
	expect_ok(buf, strlen(buf), strlen(line), 1, src, dst);
}

static void
bad_v1(const char *line)
{
	expect_bad(line, strlen(line), strlen(line));
}

/* ------------------------------------------------------------------ v1 */

static void
test_v1_tcp4(void **state)
{
	(void)state;
	ok_v1("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n", "1.2.3.4:1111", "5.6.7.8:2222");
	ok_v1("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", "0.0.0.0:0",
		"255.255.255.255:65535");
}

static void
test_v1_tcp6(void **state)
{
	(void)state;
	ok_v1("PROXY TCP6 2001:db8::1 ::1 65535 443\r\n", "[2001:db8::1]:65535", "[::1]:443");
	/* The longest line a TCP6 header can make, 104 bytes. */
	ok_v1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
		"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void
test_v1_unknown(void **state)
{
	char line[200];

	(void)state;
	ok_v1("PROXY UNKNOWN\r\n", NULL, NULL);
	/* Whatever follows UNKNOWN is ignored... */
	ok_v1("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", NULL, NULL);
	/* ...up to the 107-byte limit, CRLF included. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + 105, "\r\n", 3);
	assert_int_equal(strlen(line), 107);
	ok_v1(line, NULL, NULL);
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + 106, "\r\n", 3);
	bad_v1(line);
}

static void
test_v1_malformed(void **state)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\n\r\n",		/* no header at all */
		"PROXX TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY\r\n",
		"PROXY \r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\n",	/* LF without CR */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\r\n",
		"PROXY TCP4 1.2.3.4\r5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n",	/* a field missing */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 3333\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 \r\n",
		"PROXY TCP4  1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8  1111 2222\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 example.com 1111 2222\r\n",
		"PROXY TCP4 ::1 ::1 1111 2222\r\n",		/* family mismatch */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP6 ::1 ::g 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 99999\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 22a2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 111111 2222\r\n",
	};
	char line[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_v1(bad[i]);
	/* NUL inside the line. */
	expect_bad("PROXY TCP4 1.2.3.4\0 5.6.7.8 1111 2222\r\n", 40, 40);
	/* No CRLF within 107 bytes: refused at the 107th, not later. */
	memset(line, '1', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	memcpy(line, "PROXY TCP4 ", 11);
	expect_bad(line, strlen(line), 107);
	/* A wrong first byte is refused at once. */
	expect_bad("\x16\x03\x01\x02\x00", 5, 1);
	expect_bad("GET / HTTP/1.1\r\n\r\n", 18, 1);
}

/* ------------------------------------------------------------------ v2 */

static const unsigned char sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* A v2 header: ver_cmd, fam, then body bytes (length computed unless
 * len_override >= 0); returns the total length written to out. */
static size_t
v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body, size_t blen,
		long len_override)
{
	size_t len = len_override >= 0 ? (size_t)len_override : blen;

	memcpy(out, sig, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(len >> 8);
	out[15] = (unsigned char)len;
	if (blen > 0)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

/* 1.2.3.4:1111 -> 5.6.7.8:2222 */
static const unsigned char inet_body[12] = {
	1, 2, 3, 4, 5, 6, 7, 8, 0x04, 0x57, 0x08, 0xAE
};

/* [2001:db8::1]:443 -> [::1]:8443, then three TLVs: ALPN "h2", an empty
 * NOOP and a 5-byte custom one. */
static const unsigned char inet6_tlv_body[36 + 5 + 3 + 8] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0x01, 0xBB, 0x20, 0xFB,
	0x01, 0x00, 0x02, 'h', '2',
	0x04, 0x00, 0x00,
	0xEA, 0x00, 0x05, 1, 2, 3, 4, 5,
};

static void
test_v2_proxy_inet(void **state)
{
	unsigned char buf[128];
	size_t n = v2(buf, 0x21, 0x11, inet_body, sizeof(inet_body), -1);

	(void)state;
	memcpy(buf + n, "GET /", 5);
	expect_ok(buf, n + 5, 28, 2, "1.2.3.4:1111", "5.6.7.8:2222");
}

static void
test_v2_proxy_inet6_tlvs(void **state)
{
	unsigned char buf[128];
	size_t n = v2(buf, 0x21, 0x21, inet6_tlv_body, sizeof(inet6_tlv_body), -1);

	(void)state;
	/* A TLS ClientHello follows: left alone. */
	memcpy(buf + n, "\x16\x03\x01", 3);
	expect_ok(buf, n + 3, 16 + sizeof(inet6_tlv_body), 2, "[2001:db8::1]:443",
		"[::1]:8443");
	/* Addresses longer than the family needs are not taken for TLVs
	 * when the length says so: here an INET header with a TLV. */
	{
		unsigned char body[12 + 4];

		memcpy(body, inet_body, 12);
		memcpy(body + 12, "\x05\x00\x01\x7f", 4);
		n = v2(buf, 0x21, 0x11, body, sizeof(body), -1);
		expect_ok(buf, n, n, 2, "1.2.3.4:1111", "5.6.7.8:2222");
	}
}

static void
test_v2_local_unspec(void **state)
{
	unsigned char buf[4200], junk[4096];
	size_t n;

	(void)state;
	/* LOCAL: a health check from the balancer; the peer is the client. */
	n = v2(buf, 0x20, 0x00, NULL, 0, -1);
	expect_ok(buf, n, 16, 2, NULL, NULL);
	/* LOCAL with a family and a body: both ignored. */
	n = v2(buf, 0x20, 0x11, inet_body, sizeof(inet_body), -1);
	expect_ok(buf, n, 28, 2, NULL, NULL);
	/* PROXY over UNSPEC: addresses unknown. */
	n = v2(buf, 0x21, 0x00, NULL, 0, -1);
	expect_ok(buf, n, 16, 2, NULL, NULL);
	n = v2(buf, 0x21, 0x00, "\x04\x00\x00", 3, -1);
	expect_ok(buf, n, 19, 2, NULL, NULL);
	/* The largest header accepted: one big TLV after the addresses. */
	memset(junk, 0xAB, sizeof(junk));
	memcpy(junk, inet_body, 12);
	junk[12] = 0xEE;
	junk[13] = (unsigned char)((4096 - 15) >> 8);
	junk[14] = (unsigned char)(4096 - 15);
	n = v2(buf, 0x21, 0x11, junk, 4096, -1);
	expect_ok(buf, n, 16 + 4096, 2, "1.2.3.4:1111", "5.6.7.8:2222");
}

static void
test_v2_malformed(void **state)
{
	unsigned char buf[8192], body[64];
	size_t n;

	(void)state;
	/* Wrong signature bytes, early and late. */
	n = v2(buf, 0x21, 0x11, inet_body, sizeof(inet_body), -1);
	buf[4] = 0x01;
	expect_bad(buf, n, 5);
	n = v2(buf, 0x21, 0x11, inet_body, sizeof(inet_body), -1);
	buf[11] = 0x0D;
	expect_bad(buf, n, 12);
	/* Version 1 and 3, command 2 and 15. */
	n = v2(buf, 0x11, 0x11, inet_body, sizeof(inet_body), -1);
	expect_bad(buf, n, 16);
	n = v2(buf, 0x31, 0x11, inet_body, sizeof(inet_body), -1);
	expect_bad(buf, n, 16);
	n = v2(buf, 0x22, 0x11, inet_body, sizeof(inet_body), -1);
	expect_bad(buf, n, 16);
	n = v2(buf, 0x2F, 0x11, inet_body, sizeof(inet_body), -1);
	expect_bad(buf, n, 16);
	/* Families and transports other than INET/INET6 over STREAM. */
	n = v2(buf, 0x21, 0x12, inet_body, sizeof(inet_body), -1);	/* DGRAM */
	expect_bad(buf, n, 16);
	n = v2(buf, 0x21, 0x10, inet_body, sizeof(inet_body), -1);	/* UNSPEC transport */
	expect_bad(buf, n, 16);
	n = v2(buf, 0x21, 0x31, inet_body, sizeof(inet_body), -1);	/* UNIX */
	expect_bad(buf, n, 16);
	n = v2(buf, 0x21, 0x41, inet_body, sizeof(inet_body), -1);
	expect_bad(buf, n, 16);
	n = v2(buf, 0x21, 0x01, inet_body, sizeof(inet_body), -1);
	expect_bad(buf, n, 16);
	/* Lengths too short for the addresses, or over the bound. */
	n = v2(buf, 0x21, 0x11, inet_body, 11, -1);
	expect_bad(buf, n, 16);
	n = v2(buf, 0x21, 0x21, inet6_tlv_body, 35, -1);
	expect_bad(buf, n, 16);
	n = v2(buf, 0x21, 0x11, NULL, 0, 4097);
	memset(buf + n, 0, 4097);
	expect_bad(buf, n + 4097, 16);
	n = v2(buf, 0x20, 0x00, NULL, 0, 0xFFFF);
	expect_bad(buf, n, 16);
	/* TLVs that do not fit the length: a truncated TLV head, a value
	 * running past the end. */
	memcpy(body, inet_body, 12);
	memcpy(body + 12, "\x04\x00", 2);
	n = v2(buf, 0x21, 0x11, body, 14, -1);
	expect_bad(buf, n, 16 + 13);
	memcpy(body + 12, "\x04\x00\x05\x01\x02", 5);
	n = v2(buf, 0x21, 0x11, body, 17, -1);
	expect_bad(buf, n, 16 + 15);
	n = v2(buf, 0x21, 0x00, "\x04\x00\x01", 3, -1);
	expect_bad(buf, n, 19);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v2_proxy_inet),
		cmocka_unit_test(test_v2_proxy_inet6_tlvs),
		cmocka_unit_test(test_v2_local_unspec),
		cmocka_unit_test(test_v2_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
