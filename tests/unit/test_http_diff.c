/*
 * Differential tests of the head parsers: the one-pass split of common
 * heads (split_plain) against the two-pass reference, over generated heads
 * near the edges (methods, targets, framing fields, separators, stray
 * bytes). Requests are held to llhttp (http_parse_request_llhttp),
 * responses to check_field_block and split_fields
 * (http_parse_response_split): the same verdict, error text and fields.
 * Links http*.c and llhttp only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static uint64_t rnd_state = 0x2545f4914f6cdd1dULL;

/* xorshift64: the same heads on every run. */
static unsigned rnd(unsigned n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (unsigned)(rnd_state % n);
}

#define PICK(a) (a)[rnd(sizeof(a) / sizeof((a)[0]))]

static const char *const gen_names[] = { "Host", "host", "Content-Length",
	"Transfer-Encoding", "Connection", "Upgrade", "Expect", "Keep-Alive", "TE",
	"Proxy-Foo", "X-Forwarded-For", "Foo", "a b", "", "Content-Length " };
static const char *const gen_values[] = { "", "1", "12", "x", "chunked", "gzip, chunked",
	"chunked, gzip", "close", "keep-alive", "upgrade", "Upgrade, close", "websocket",
	"100-continue", "  v  ", "\t1\t", "-1", "1,1", "99999999999999999999999",
	"\x80\xff", "chunked,", "  ,  ", "identity", "a:b", "close, Foo", "a\tb" };
static const char *const gen_seps[] = { ": ", ": ", ": ", ":", " : ", ":  ", ":\t" };

/*
 * Up to five field lines from the lists above and the final CRLF after the
 * n bytes of start line in buf; now and then a byte changed, added or
 * removed, not in the final CRLF. Returns the head's length.
 */
static size_t gen_fields(char *buf, size_t cap, size_t n)
{
	for (unsigned i = 0, nh = rnd(6); i < nh; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s%s\r\n", PICK(gen_names),
			PICK(gen_seps), PICK(gen_values));
	n += (size_t)snprintf(buf + n, cap - n, "\r\n");
	for (unsigned i = 0, nm = rnd(6) == 0 ? rnd(3) + 1 : 0; i < nm && n > 4 && n < cap - 1; i++) {
		size_t at = rnd((unsigned)(n - 4));

		switch (rnd(3)) {
		case 0:
			buf[at] = " \t:\r\n,;\"\\#?/\x7f\x80\0"[rnd(15)];
			break;
		case 1:
			memmove(buf + at + 1, buf + at, n - at);
			buf[at] = (char)(32 + rnd(95));
			n++;
			break;
		default:
			memmove(buf + at, buf + at + 1, n - at - 1);
			n--;
			break;
		}
	}
	return n;
}

/* A request head near the edges of the direct path, sometimes mutated. */
static size_t gen_request(char *buf, size_t cap)
{
	static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
		"OPTIONS", "PATCH", "TRACE", "get", "FOO", "CONNECT", "PATC", "G" };
	static const char *const targets[] = { "/", "/a?b=c", "*", "http://x/y", "/%zz",
		"/a#b", "x", "//", "/\x7f", "/\x80", "/~!$&'()*+,;=:@" };
	size_t n = (size_t)snprintf(buf, cap, "%s %s HTTP/1.%d\r\n", PICK(methods), PICK(targets),
		rnd(8) ? 1 : 0);

	if (rnd(4))
		n += (size_t)snprintf(buf + n, cap - n, "Host: h%u\r\n", rnd(10));
	return gen_fields(buf, cap, n);
}

/* A response head with the same fields, sometimes mutated. */
static size_t gen_response(char *buf, size_t cap)
{
	static const char *const lines[] = { "HTTP/1.1 200 OK", "HTTP/1.0 200 OK",
		"HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified", "HTTP/1.1 101 Switching",
		"HTTP/1.1 404", "HTTP/1.1 500 Internal Server Error" };
	size_t n = (size_t)snprintf(buf, cap, "%s\r\n", PICK(lines));

	if (rnd(2))
		n += (size_t)snprintf(buf + n, cap - n, "Server: origin\r\n");
	return gen_fields(buf, cap, n);
}

/* The same verdict, error text and parsed head from two parses of one head. */
static void assert_same_parse(enum http_status sa, const struct http_head *a,
		const struct http_header *ha, enum http_status sb, const struct http_head *b,
		const struct http_header *hb)
{
	assert_int_equal(sa, sb);
	if (sa != HTTP_OK) {
		assert_true((a->error == NULL) == (b->error == NULL));
		if (a->error != NULL)
			assert_string_equal(a->error, b->error);
		return;
	}
	assert_int_equal(a->method, b->method);
	assert_ptr_equal(a->uri, b->uri);
	assert_int_equal(a->uri_len, b->uri_len);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->version_minor, b->version_minor);
	assert_int_equal(a->nheaders, b->nheaders);
	assert_int_equal(a->head_len, b->head_len);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->content_length, b->content_length);
	assert_int_equal(a->keep_alive, b->keep_alive);
	assert_int_equal(a->expect_continue, b->expect_continue);
	assert_int_equal(a->upgrade, b->upgrade);
	assert_int_equal(a->upgrade_field, b->upgrade_field);
	assert_int_equal(a->conn_lists_fields, b->conn_lists_fields);
	/* An empty Host is the same wherever it points. */
	assert_int_equal(a->host == NULL, b->host == NULL);
	assert_int_equal(a->host_len, b->host_len);
	if (a->host_len > 0)
		assert_ptr_equal(a->host, b->host);
	for (size_t k = 0; k < a->nheaders; k++) {
		assert_ptr_equal(ha[k].name, hb[k].name);
		assert_int_equal(ha[k].name_len, hb[k].name_len);
		assert_int_equal(ha[k].value_len, hb[k].value_len);
		if (ha[k].value_len > 0)
			assert_ptr_equal(ha[k].value, hb[k].value);
		assert_int_equal(ha[k].id, hb[k].id);
	}
}

/*
 * Common request heads are split without llhttp, and anything that path
 * refuses goes through llhttp. Over many generated heads near the edges
 * (methods, targets, framing fields, separators, stray bytes), both must
 * give the same verdict, the same error text and the same parsed head.
 */
static void test_direct_split_matches_llhttp(void **state)
{
	static struct http_header ha[8], hb[8];
	struct http_limits l = { .max_headers = 5, .max_uri = 40 };
	char buf[1024];
	unsigned direct_ok = 0;

	(void)state;
	for (int it = 0; it < 200000; it++) {
		size_t n = gen_request(buf, sizeof(buf));
		struct http_head a, b;
		enum http_status sa = http_parse_request(&a, buf, n, ha, &l);
		enum http_status sb = http_parse_request_llhttp(&b, buf, n, hb, &l);

		assert_same_parse(sa, &a, ha, sb, &b, hb);
		direct_ok += sa == HTTP_OK;
	}
	/* The generator reaches the accepted side too, not only refusals. */
	assert_true(direct_ok > 10000);
}

/*
 * A response head's field lines are checked and split in one pass, and
 * anything that pass gives up on is parsed again in two: over generated
 * heads, both give the same verdict, error text and parsed head.
 */
static void test_plain_split_matches_two_pass(void **state)
{
	static struct http_header ha[8], hb[8];
	static const int methods[] = { HTTP_M_GET, HTTP_M_HEAD, HTTP_M_CONNECT };
	char buf[1024];
	unsigned ok = 0;

	(void)state;
	for (int it = 0; it < 200000; it++) {
		size_t n = gen_response(buf, sizeof(buf));
		int m = PICK(methods);
		struct http_head a, b;
		enum http_status sa = http_parse_response(&a, buf, n, ha, 5, m);
		enum http_status sb = http_parse_response_split(&b, buf, n, hb, 5, m);

		assert_same_parse(sa, &a, ha, sb, &b, hb);
		ok += sa == HTTP_OK;
	}
	assert_true(ok > 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_split_matches_llhttp),
		cmocka_unit_test(test_plain_split_matches_two_pass),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
