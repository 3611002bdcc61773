/*
 * Unit tests for http*.c: head finding, strict request and response parsing
 * (one test per request-smuggling vector), and chunked/length body framing
 * fed at every byte boundary. Links http*.c and llhttp only. The
 * differential tests of the one-pass split are test_http_diff.c's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "http.h"

#define MAXH 100

static struct http_header hdrs[MAXH];
static struct http_limits lim = { .max_headers = MAXH, .max_uri = 8192 };

static enum http_status req(struct http_head *h, const char *s)
{
	return http_parse_request(h, s, strlen(s), hdrs, &lim);
}

static enum http_status resp(struct http_head *h, const char *s, int method)
{
	return http_parse_response(h, s, strlen(s), hdrs, MAXH, method);
}

/* A failure must always say why. */
static void expect_req(const char *s, enum http_status want)
{
	struct http_head h;
	enum http_status st = req(&h, s);

	if (st != want)
		print_error("request %s: got %d (%s), want %d\n", s, st,
				h.error ? h.error : "-", want);
	assert_int_equal(st, want);
	if (want != HTTP_OK)
		assert_non_null(h.error);
	else
		assert_null(h.error);
}

static void expect_resp(const char *s, int method, enum http_status want)
{
	struct http_head h;
	enum http_status st = resp(&h, s, method);

	if (st != want)
		print_error("response %s: got %d (%s), want %d\n", s, st,
				h.error ? h.error : "-", want);
	assert_int_equal(st, want);
	if (want != HTTP_OK)
		assert_non_null(h.error);
}

static bool span_is(const char *p, size_t n, const char *want)
{
	return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ------------------------------------------------------------------ */
/* Valid requests                                                      */

static void test_req_get(void **state)
{
	(void)state;
	const char *s = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n"
			"User-Agent:   curl/8  \r\nAccept: */*\r\nX-Empty:\r\n\r\n";
	struct http_head h;

	assert_int_equal(req(&h, s), HTTP_OK);
	assert_int_equal(h.method, HTTP_M_GET);
	assert_true(span_is(h.method_str, h.method_len, "GET"));
	assert_true(span_is(h.uri, h.uri_len, "/a/b?c=d"));
	assert_int_equal(h.version_major, 1);
	assert_int_equal(h.version_minor, 1);
	assert_int_equal(h.head_len, strlen(s));
	assert_int_equal(h.nheaders, 4);
	assert_ptr_equal(h.headers, hdrs);
	assert_true(span_is(hdrs[0].name, hdrs[0].name_len, "Host"));
	assert_true(span_is(hdrs[1].value, hdrs[1].value_len, "curl/8"));
	assert_true(span_is(hdrs[3].name, hdrs[3].name_len, "X-Empty"));
	assert_int_equal(hdrs[3].value_len, 0);
	assert_non_null(hdrs[3].value);
	assert_true(span_is(h.host, h.host_len, "example.com:8080"));
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_true(h.keep_alive);
	assert_false(h.expect_continue);
	assert_false(h.upgrade);
	assert_null(h.error);
}

static void test_req_post_length(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n"),
			HTTP_OK);
	assert_int_equal(h.method, HTTP_M_POST);
	assert_int_equal(h.body, HTTP_BODY_LENGTH);
	assert_int_equal(h.content_length, 12);
	assert_int_equal(req(&h, "POST /up HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n"),
			HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_LENGTH);
	assert_int_equal(h.content_length, 0);
	assert_int_equal(req(&h, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: "
			"18446744073709551615\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.method, HTTP_M_PUT);
	assert_true(h.content_length == UINT64_MAX);
}

static void test_req_post_chunked(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: Chunked\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_CHUNKED);
	/* An empty list element is allowed (RFC 9110 5.6.1). */
	assert_int_equal(req(&h, "POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: , chunked\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_CHUNKED);
}

static void test_req_http10(void **state)
{
	(void)state;
	struct http_head h;

	/* No Host needed, no keep-alive by default. */
	assert_int_equal(req(&h, "GET / HTTP/1.0\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.version_minor, 0);
	assert_false(h.keep_alive);
	assert_null(h.host);
	assert_int_equal(h.nheaders, 0);
	assert_int_equal(req(&h, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), HTTP_OK);
	assert_true(h.keep_alive);
	assert_int_equal(req(&h, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"),
			HTTP_OK);
	assert_false(h.keep_alive);
	/* Expect and Upgrade mean nothing in HTTP/1.0. */
	assert_int_equal(req(&h, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: upgrade"
			"\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\n"), HTTP_OK);
	assert_false(h.expect_continue);
	assert_false(h.upgrade);
	assert_int_equal(h.body, HTTP_BODY_LENGTH);
}

static void test_req_connection(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
			HTTP_OK);
	assert_false(h.keep_alive);
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\n"
			"Connection: CLOSE\r\n\r\n"), HTTP_OK);
	assert_false(h.keep_alive);
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n"),
			HTTP_OK);
	assert_true(h.keep_alive);
}

static void test_req_expect(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
			"Content-Length: 3\r\n\r\n"), HTTP_OK);
	assert_true(h.expect_continue);
	assert_int_equal(req(&h, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"), HTTP_OK);
	assert_false(h.expect_continue);
}

static void test_req_upgrade(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade"
			"\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"), HTTP_OK);
	assert_true(h.upgrade);
	assert_true(h.keep_alive);
	assert_int_equal(req(&h, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
			HTTP_OK);
	assert_false(h.upgrade);
	assert_int_equal(req(&h, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"),
			HTTP_OK);
	assert_false(h.upgrade);
}

static void test_req_methods(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.method, HTTP_M_HEAD);
	assert_int_equal(req(&h, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
			HTTP_OK);
	assert_int_equal(h.method, HTTP_M_CONNECT);
	assert_true(span_is(h.uri, h.uri_len, "a.example:443"));
	assert_int_equal(req(&h, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.method, HTTP_M_OPTIONS);
	assert_int_equal(req(&h, "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.method, HTTP_M_DELETE);
	assert_int_equal(req(&h, "GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n"),
			HTTP_OK);
	assert_true(span_is(h.uri, h.uri_len, "http://a.example/x?y"));
	/* A well-formed token that llhttp does not know: 501. */
	expect_req("FROB / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_NOT_IMPLEMENTED);
	expect_req("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
}

static void test_req_host_forms(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), HTTP_OK);
	assert_true(span_is(h.host, h.host_len, "[::1]:80"));
	/* Empty Host is allowed when the target has no authority. */
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost:\r\n\r\n"), HTTP_OK);
	assert_int_equal(h.host_len, 0);
	expect_req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", HTTP_BAD);
}

/* ------------------------------------------------------------------ */
/* Smuggling vectors: one test each                                     */

static void test_smuggle_cl_te(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"Transfer-Encoding: chunked\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			"Content-Length: 5\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_cl_duplicate(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"Content-Length: 5\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"content-length: 6\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_cl_list(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_cl_nondigit(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\t2\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_cl_empty(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:   \r\n\r\n", HTTP_BAD);
}

static void test_smuggle_cl_overflow(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
			HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
			"99999999999999999999999999\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_te_not_final(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
			HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			"Transfer-Encoding: gzip\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_te_unknown(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;a=b\r\n\r\n",
			HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
			HTTP_BAD);
	/* A coding we do not apply before a final chunked: 501. */
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
			HTTP_NOT_IMPLEMENTED);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
			"Transfer-Encoding: chunked\r\n\r\n", HTTP_NOT_IMPLEMENTED);
}

static void test_smuggle_te_twice(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
			HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			"Transfer-Encoding: chunked\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_te_empty(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_te_http10(void **state)
{
	(void)state;
	expect_req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_obs_fold(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
			HTTP_BAD);
	/* A field line starting with whitespace right after the request line. */
	expect_req("GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_bare_lf(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\n\n\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\n\n", HTTP_BAD);
}

static void test_smuggle_bare_cr(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_nul(void **state)
{
	(void)state;
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
	struct http_head h;

	assert_int_equal(http_parse_request(&h, s, sizeof(s) - 1, hdrs, &lim), HTTP_BAD);
	assert_non_null(h.error);
}

static void test_smuggle_ctl_value(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1f\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b\r\n\r\n", HTTP_BAD);
	/* HTAB and obs-text are field content. */
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xe9\r\n\r\n", HTTP_OK);
}

static void test_smuggle_name_chars(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX\"Y: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nX-\xe9: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: b\r\n\r\n", HTTP_OK);
}

static void test_smuggle_space_before_colon(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP_BAD);
	assert_string_equal(h.error, "whitespace before colon");
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", HTTP_BAD);
	expect_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_missing_host(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_several_hosts(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_target_chars(void **state)
{
	(void)state;
	expect_req("GET /a\x01" "b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /%20?a=[1]&b={x}|~!$'()*+,;=:@ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_OK);
}

static void test_smuggle_version(void **state)
{
	(void)state;
	expect_req("GET / HTTP/1.2\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/0.9\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / http/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET /\r\n\r\n", HTTP_BAD);
	expect_req("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP_BAD);
}

static void test_smuggle_head_shape(void **state)
{
	(void)state;
	/* A second message or body inside the bytes handed over. */
	expect_req("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
	expect_req("GET / HTTP/1.1\r\nHost: a\r\n", HTTP_BAD);
	expect_req("", HTTP_BAD);
	expect_req("\r\n\r\n", HTTP_BAD);
	expect_req("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_BAD);
}

/* ------------------------------------------------------------------ */
/* Limits                                                              */

static void test_uri_too_long(void **state)
{
	(void)state;
	struct http_limits small = { .max_headers = MAXH, .max_uri = 10 };
	struct http_head h;
	const char *ok = "GET /123456789 HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *big = "GET /1234567890 HTTP/1.1\r\nHost: a\r\n\r\n";
	/* 414 wins over what else is wrong further on. */
	const char *big_bad = "GET /1234567890 HTTP/1.1\r\nHost : a\r\n\r\n";

	assert_int_equal(http_parse_request(&h, ok, strlen(ok), hdrs, &small), HTTP_OK);
	assert_int_equal(http_parse_request(&h, big, strlen(big), hdrs, &small),
			HTTP_URI_TOO_LONG);
	assert_non_null(h.error);
	assert_int_equal(http_parse_request(&h, big_bad, strlen(big_bad), hdrs, &small),
			HTTP_URI_TOO_LONG);
}

static void test_uri_too_long_big(void **state)
{
	(void)state;
	size_t n = 20000;
	char *s = malloc(n + 64);
	struct http_head h;
	int len;

	assert_non_null(s);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'a', n);
	len = snprintf(s + 5 + n, 64, " HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(http_parse_request(&h, s, 5 + n + (size_t)len, hdrs, &lim),
			HTTP_URI_TOO_LONG);
	free(s);
}

static void test_too_many_headers(void **state)
{
	(void)state;
	struct http_limits small = { .max_headers = 3, .max_uri = 100 };
	struct http_head h;
	const char *three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
	const char *four = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	struct http_header few[3];

	assert_int_equal(http_parse_request(&h, three, strlen(three), few, &small), HTTP_OK);
	assert_int_equal(h.nheaders, 3);
	assert_int_equal(http_parse_request(&h, four, strlen(four), few, &small),
			HTTP_TOO_MANY_HEADERS);
	assert_non_null(h.error);
	assert_int_equal(http_parse_response(&h, "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
			31, few, 1, HTTP_M_GET), HTTP_TOO_MANY_HEADERS);
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */

static void test_resp_length(void **state)
{
	(void)state;
	struct http_head h;
	const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nServer: x\r\n\r\n";

	assert_int_equal(resp(&h, s, HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.status, 200);
	assert_true(span_is(h.reason, h.reason_len, "OK"));
	assert_int_equal(h.method, -1);
	assert_int_equal(h.version_minor, 1);
	assert_int_equal(h.body, HTTP_BODY_LENGTH);
	assert_int_equal(h.content_length, 42);
	assert_true(h.keep_alive);
	assert_int_equal(h.nheaders, 2);
	assert_int_equal(h.head_len, strlen(s));
	assert_null(h.error);
}

static void test_resp_chunked(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_CHUNKED);
	assert_true(h.keep_alive);
	/* Other codings under chunked are end-to-end for us: still chunked framing. */
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
			HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_CHUNKED);
}

static void test_resp_until_close(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_UNTIL_CLOSE);
	assert_false(h.keep_alive);
	/* Transfer-Encoding without a final chunked: read until close (RFC 9112 6.3). */
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
			HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_UNTIL_CLOSE);
	assert_false(h.keep_alive);
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
			HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_UNTIL_CLOSE);
}

static void test_resp_no_body(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", HTTP_M_HEAD),
			HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_int_equal(h.content_length, 42);
	assert_true(h.keep_alive);
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			HTTP_M_HEAD), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_int_equal(resp(&h, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
			HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_true(h.keep_alive);
	assert_int_equal(resp(&h, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
			HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_int_equal(resp(&h, "HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_POST), HTTP_OK);
	assert_int_equal(h.status, 100);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_int_equal(resp(&h, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", HTTP_M_GET),
			HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_int_equal(resp(&h, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
			"Upgrade: websocket\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_true(h.upgrade);
	assert_int_equal(resp(&h, "HTTP/1.1 200 Connection established\r\n\r\n", HTTP_M_CONNECT),
			HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_NONE);
	assert_int_equal(resp(&h, "HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n",
			HTTP_M_CONNECT), HTTP_OK);
	assert_int_equal(h.body, HTTP_BODY_LENGTH);
}

static void test_resp_keep_alive(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(resp(&h, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP_M_GET),
			HTTP_OK);
	assert_false(h.keep_alive);
	assert_int_equal(resp(&h, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n"
			"Connection: keep-alive\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_true(h.keep_alive);
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
			"Connection: close\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_false(h.keep_alive);
}

static void test_resp_status_line(void **state)
{
	(void)state;
	struct http_head h;

	assert_int_equal(resp(&h, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET),
			HTTP_OK);
	assert_int_equal(h.reason_len, 0);
	assert_int_equal(resp(&h, "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", HTTP_M_GET),
			HTTP_OK);
	assert_int_equal(h.reason_len, 0);
	assert_int_equal(resp(&h, "HTTP/1.1 599 Very  odd\treason\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_true(span_is(h.reason, h.reason_len, "Very  odd\treason"));
	expect_resp("HTTP/1.1 099 Low\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 600 High\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 20 Short\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 2000 Long\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 2x0 X\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.2 200 OK\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/2 200 OK\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1  200 OK\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("ICY 200 OK\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 O\x01K\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\n\r\n", HTTP_M_GET, HTTP_BAD);
}

static void test_resp_smuggling(void **state)
{
	(void)state;
	expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
			HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
			HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
			HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET,
			HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n", HTTP_M_GET, HTTP_BAD);
	expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", HTTP_M_GET, HTTP_BAD);
	/* Malformed framing fields are refused even where they do not frame. */
	expect_resp("HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n", HTTP_M_GET,
			HTTP_BAD);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void test_header_is(void **state)
{
	(void)state;
	struct http_header hd = { .name = "Content-Length", .name_len = 14 };

	assert_true(http_header_is(&hd, "content-length"));
	assert_true(http_header_is(&hd, "CONTENT-LENGTH"));
	assert_false(http_header_is(&hd, "content-lengt"));
	assert_false(http_header_is(&hd, "content-lengthx"));
	assert_false(http_header_is(&hd, "content_length"));
}

static void test_list_has(void **state)
{
	(void)state;
	const char *v = "keep-alive ,\tUpgrade,  , HTTP2-Settings";

	assert_true(http_list_has(v, strlen(v), "upgrade"));
	assert_true(http_list_has(v, strlen(v), "keep-alive"));
	assert_true(http_list_has(v, strlen(v), "http2-settings"));
	assert_false(http_list_has(v, strlen(v), "close"));
	assert_false(http_list_has(v, strlen(v), "upgrad"));
	assert_false(http_list_has(v, strlen(v), "settings"));
	assert_false(http_list_has("", 0, "close"));
	assert_true(http_list_has("close", 5, "close"));
	/* Only len bytes count. */
	assert_false(http_list_has("closed", 4, "close"));
	assert_true(http_list_has("close, x", 5, "close"));
}

static void test_reason(void **state)
{
	(void)state;
	assert_string_equal(http_reason(200), "OK");
	assert_string_equal(http_reason(400), "Bad Request");
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(408), "Request Timeout");
	assert_string_equal(http_reason(414), "URI Too Long");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(501), "Not Implemented");
	assert_string_equal(http_reason(502), "Bad Gateway");
	assert_string_equal(http_reason(503), "Service Unavailable");
	assert_string_equal(http_reason(504), "Gateway Timeout");
	assert_string_equal(http_reason(511), "Network Authentication Required");
	assert_string_equal(http_reason(999), "");
	assert_string_equal(http_reason(0), "");
}

/* ------------------------------------------------------------------ */
/* http_head_find                                                      */

static void test_find_whole(void **state)
{
	(void)state;
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody\0\n";
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	evbuffer_add(b, s, sizeof(s) - 1);
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_OK);
	assert_int_equal(len, strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
	assert_int_equal(evbuffer_get_length(b), sizeof(s) - 1);
	evbuffer_free(b);
}

static void test_find_trickle(void **state)
{
	(void)state;
	const char *s = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
	size_t head = strlen(s) - 3;
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	for (size_t i = 0; i < head; i++) {
		enum http_status st;

		evbuffer_add(b, s + i, 1);
		st = http_head_find(b, &scan, 1024, &len);
		if (i + 1 < head) {
			assert_int_equal(st, HTTP_INCOMPLETE);
			/* Everything received has been checked once: O(n) overall. */
			assert_int_equal(scan, i + 1);
		} else {
			assert_int_equal(st, HTTP_OK);
			assert_int_equal(len, head);
		}
	}
	evbuffer_free(b);
}

/* The head spread over many chains, CRLFs split between them. */
static void test_find_chains(void **state)
{
	(void)state;
	const char *parts[] = { "GET / HTTP/1.1\r", "\nHost: a\r\n", "X: y\r\n\r", "\n",
			"tail" };
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		assert_int_equal(evbuffer_add_reference(b, parts[i], strlen(parts[i]),
				NULL, NULL), 0);
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_OK);
	assert_int_equal(len, strlen("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"));
	evbuffer_free(b);

	/* The same bytes arriving one chain at a time. */
	b = evbuffer_new();
	scan = 0;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(evbuffer_add_reference(b, parts[i], strlen(parts[i]),
				NULL, NULL), 0);
		assert_int_equal(http_head_find(b, &scan, 1024, &len),
				i < 3 ? HTTP_INCOMPLETE : HTTP_OK);
	}
	assert_int_equal(len, strlen("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"));
	evbuffer_free(b);
}

static void test_find_bare_lf(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	evbuffer_add_printf(b, "GET / HTTP/1.1\r\nHost: a\nX");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_BAD);
	evbuffer_free(b);

	/* Trickled: the LF comes in its own call after a checked byte. */
	b = evbuffer_new();
	scan = 0;
	evbuffer_add_printf(b, "GET / HTTP/1.1\r\nHost: a");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_INCOMPLETE);
	evbuffer_add_printf(b, "\n");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_BAD);
	evbuffer_free(b);

	b = evbuffer_new();
	scan = 0;
	evbuffer_add_printf(b, "\nGET / HTTP/1.1\r\n\r\n");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_BAD);
	evbuffer_free(b);

	b = evbuffer_new();
	scan = 0;
	evbuffer_add_printf(b, "GET / HTTP/1.1\r\n\n");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_BAD);
	evbuffer_free(b);
}

static void test_find_nul(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	evbuffer_add(b, "GET / HTTP/1.1\r\nX: \0\r\n\r\n", 24);
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_BAD);
	evbuffer_free(b);
}

static void test_find_too_large(void **state)
{
	(void)state;
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";	/* 27 bytes */
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	evbuffer_add_printf(b, "%s", s);
	assert_int_equal(http_head_find(b, &scan, 27, &len), HTTP_OK);
	assert_int_equal(len, 27);
	scan = 0;
	assert_int_equal(http_head_find(b, &scan, 26, &len), HTTP_HEAD_TOO_LARGE);
	evbuffer_free(b);

	/* Trickling past the limit. */
	b = evbuffer_new();
	scan = 0;
	for (int i = 0; i < 40; i++) {
		enum http_status st;

		evbuffer_add(b, "a", 1);
		st = http_head_find(b, &scan, 32, &len);
		assert_int_equal(st, i + 1 < 32 ? HTTP_INCOMPLETE : HTTP_HEAD_TOO_LARGE);
	}
	evbuffer_free(b);
}

static void test_find_leading_crlf(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;
	char out[64];

	/* A lone CR may start a CRLF: wait without consuming it. */
	evbuffer_add_printf(b, "\r");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_INCOMPLETE);
	assert_int_equal(scan, 0);
	evbuffer_add_printf(b, "\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_OK);
	assert_int_equal(len, 27);
	assert_int_equal(evbuffer_get_length(b), 27);
	assert_int_equal(evbuffer_copyout(b, out, 3), 3);
	assert_memory_equal(out, "GET", 3);
	evbuffer_free(b);

	/* A CR followed by something else is left for the parser to refuse. */
	b = evbuffer_new();
	scan = 0;
	evbuffer_add_printf(b, "\rX\r\n\r\n");
	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_OK);
	assert_int_equal(len, 6);
	evbuffer_free(b);
}

static void test_find_empty(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	size_t scan = 0, len = 0;

	assert_int_equal(http_head_find(b, &scan, 1024, &len), HTTP_INCOMPLETE);
	evbuffer_free(b);
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */

static size_t drain_all(struct evbuffer *b, char *out, size_t cap)
{
	size_t n = evbuffer_get_length(b);

	assert_true(n <= cap);
	assert_int_equal(evbuffer_remove(b, out, n), (int)n);
	return n;
}

static void test_body_none(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

	evbuffer_add_printf(src, "next");
	http_body_init(&st, HTTP_BODY_NONE, 0, false);
	assert_int_equal(http_body_move(&st, src, dst, 100), HTTP_BODY_DONE);
	assert_int_equal(evbuffer_get_length(src), 4);
	assert_int_equal(evbuffer_get_length(dst), 0);
	http_body_init(&st, HTTP_BODY_LENGTH, 0, false);
	assert_int_equal(http_body_move(&st, src, dst, 100), HTTP_BODY_DONE);
	assert_int_equal(evbuffer_get_length(src), 4);
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void test_body_length(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	char out[64];

	http_body_init(&st, HTTP_BODY_LENGTH, 10, false);
	evbuffer_add_printf(src, "0123");
	assert_int_equal(http_body_move(&st, src, dst, 100), HTTP_BODY_MORE);
	assert_int_equal(st.remaining, 6);
	evbuffer_add_printf(src, "456789NEXT");
	/* max bounds what one call takes. */
	assert_int_equal(http_body_move(&st, src, dst, 2), HTTP_BODY_MORE);
	assert_int_equal(evbuffer_get_length(dst), 6);
	assert_int_equal(http_body_move(&st, src, dst, 100), HTTP_BODY_DONE);
	assert_int_equal(st.moved, 10);
	assert_int_equal(drain_all(dst, out, sizeof(out)), 10);
	assert_memory_equal(out, "0123456789", 10);
	assert_int_equal(drain_all(src, out, sizeof(out)), 4);
	assert_memory_equal(out, "NEXT", 4);
	assert_int_equal(http_body_move(&st, src, dst, 100), HTTP_BODY_DONE);
	assert_int_equal(http_body_move(&st, src, dst, 0), HTTP_BODY_DONE);
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void test_body_until_close(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

	http_body_init(&st, HTTP_BODY_UNTIL_CLOSE, 0, false);
	evbuffer_add_printf(src, "0123456789");
	assert_int_equal(http_body_move(&st, src, dst, 4), HTTP_BODY_MORE);
	assert_int_equal(evbuffer_get_length(src), 6);
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_MORE);
	assert_int_equal(evbuffer_get_length(src), 0);
	assert_int_equal(evbuffer_get_length(dst), 10);
	assert_int_equal(st.moved, 10);
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_MORE);
	evbuffer_free(src);
	evbuffer_free(dst);
}

/*
 * Run a chunked body through http_body_move, first split in two at every
 * byte boundary, then one byte at a time. The body must end exactly at its
 * last byte, src must hold only what follows, and dst must be the input
 * (forwarding) or want_data (dechunking).
 */
static void check_chunked(const char *in, const char *want_data)
{
	size_t n = strlen(in);
	char *out = malloc(n + 1);
	static const char tail[] = "GET /next";

	assert_non_null(out);
	for (int dechunk = 0; dechunk <= 1; dechunk++) {
		const char *want = dechunk ? want_data : in;
		size_t want_len = strlen(want);

		for (size_t split = 0; split <= n; split++) {
			struct http_body_state st;
			struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
			enum http_body_result r;

			http_body_init(&st, HTTP_BODY_CHUNKED, 0, dechunk);
			evbuffer_add(src, in, split);
			r = http_body_move(&st, src, dst, SIZE_MAX);
			if (split < n)
				assert_int_equal(r, HTTP_BODY_MORE);
			evbuffer_add(src, in + split, n - split);
			evbuffer_add(src, tail, sizeof(tail) - 1);
			r = http_body_move(&st, src, dst, SIZE_MAX);
			if (r != HTTP_BODY_DONE)
				print_error("split %zu dechunk %d: %s\n", split, dechunk,
						st.error ? st.error : "-");
			assert_int_equal(r, HTTP_BODY_DONE);
			assert_int_equal(evbuffer_get_length(src), sizeof(tail) - 1);
			assert_int_equal(st.moved, want_len);
			assert_int_equal(drain_all(dst, out, n), want_len);
			assert_memory_equal(out, want, want_len);
			evbuffer_free(src);
			evbuffer_free(dst);
		}

		/* One byte at a time. */
		struct http_body_state st;
		struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

		http_body_init(&st, HTTP_BODY_CHUNKED, 0, dechunk);
		for (size_t i = 0; i < n; i++) {
			enum http_body_result r;

			evbuffer_add(src, in + i, 1);
			r = http_body_move(&st, src, dst, SIZE_MAX);
			assert_int_equal(r, i + 1 < n ? HTTP_BODY_MORE : HTTP_BODY_DONE);
		}
		assert_int_equal(evbuffer_get_length(src), 0);
		assert_int_equal(drain_all(dst, out, n), want_len);
		assert_memory_equal(out, want, want_len);
		evbuffer_free(src);
		evbuffer_free(dst);

		/* With max = 1: framing lines go whole, data byte by byte. */
		src = evbuffer_new();
		dst = evbuffer_new();
		http_body_init(&st, HTTP_BODY_CHUNKED, 0, dechunk);
		evbuffer_add(src, in, n);
		for (size_t calls = 0;; calls++) {
			size_t before = evbuffer_get_length(src);
			enum http_body_result r = http_body_move(&st, src, dst, 1);

			assert_true(calls <= n);
			assert_true(before - evbuffer_get_length(src) >= 1);
			if (r == HTTP_BODY_DONE)
				break;
			assert_int_equal(r, HTTP_BODY_MORE);
		}
		assert_int_equal(evbuffer_get_length(src), 0);
		assert_int_equal(drain_all(dst, out, n), want_len);
		assert_memory_equal(out, want, want_len);
		evbuffer_free(src);
		evbuffer_free(dst);
	}
	free(out);
}

static void test_chunked_simple(void **state)
{
	(void)state;
	check_chunked("5\r\nhello\r\n0\r\n\r\n", "hello");
	check_chunked("0\r\n\r\n", "");
	check_chunked("1\r\na\r\n2\r\nbc\r\nA\r\n0123456789\r\n0\r\n\r\n", "abc0123456789");
	check_chunked("00005\r\nhello\r\n000\r\n\r\n", "hello");
	check_chunked("f\r\n0123456789abcde\r\n0\r\n\r\n", "0123456789abcde");
	check_chunked("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n");
}

static void test_chunked_extensions(void **state)
{
	(void)state;
	check_chunked("5;a\r\nhello\r\n0\r\n\r\n", "hello");
	check_chunked("5;a=b\r\nhello\r\n0;last\r\n\r\n", "hello");
	check_chunked("5 ; a = b ;c\t;\td=\"q \\\" ;x\"\r\nhello\r\n0\r\n\r\n", "hello");
	check_chunked("5;name=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
}

static void test_chunked_trailers(void **state)
{
	(void)state;
	check_chunked("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", "hello");
	check_chunked("0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n", "");
}

static void test_chunked_big_chunk(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	char data[3000];

	memset(data, 'x', sizeof(data));
	http_body_init(&st, HTTP_BODY_CHUNKED, 0, true);
	evbuffer_add_printf(src, "bb8\r\n");
	evbuffer_add(src, data, sizeof(data));
	evbuffer_add_printf(src, "\r\n0\r\n\r\n");
	/* max counts framing: 5 bytes of size line then 995 of data. */
	assert_int_equal(http_body_move(&st, src, dst, 1000), HTTP_BODY_MORE);
	assert_int_equal(evbuffer_get_length(dst), 995);
	assert_int_equal(st.remaining, 3000 - 995);
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_DONE);
	assert_int_equal(evbuffer_get_length(dst), 3000);
	assert_int_equal(st.moved, 3000);
	evbuffer_free(src);
	evbuffer_free(dst);
}

/* Feed a whole chunked body; expect an error at some point. */
static void expect_chunked_error(const char *in)
{
	for (int dechunk = 0; dechunk <= 1; dechunk++) {
		struct http_body_state st;
		struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
		enum http_body_result r;

		http_body_init(&st, HTTP_BODY_CHUNKED, 0, dechunk);
		evbuffer_add(src, in, strlen(in));
		r = http_body_move(&st, src, dst, SIZE_MAX);
		if (r != HTTP_BODY_ERROR)
			print_error("chunked %s: got %d\n", in, r);
		assert_int_equal(r, HTTP_BODY_ERROR);
		assert_non_null(st.error);
		/* Errors stick. */
		assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_ERROR);
		evbuffer_free(src);
		evbuffer_free(dst);
	}
}

static void test_chunked_bad_size(void **state)
{
	(void)state;
	expect_chunked_error("\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("g\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error(" 5\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5 \r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("-5\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("+5\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("0x5\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5\tx\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("1000000000000001\r\n");
	expect_chunked_error("ffffffffffffffffff\r\n");
	expect_chunked_error("10000000000000000000000000000005\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_size_limit(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

	/* 2^60 itself is accepted. */
	http_body_init(&st, HTTP_BODY_CHUNKED, 0, false);
	evbuffer_add_printf(src, "1000000000000000\r\nab");
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_MORE);
	assert_true(st.remaining == (UINT64_C(1) << 60) - 2);
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void test_chunked_bad_ext(void **state)
{
	(void)state;
	expect_chunked_error("5;\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;=a\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=\"open\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=b c\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a b\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a \r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=b \r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a@b\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5,a\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=\"x\x01\"\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=\"x\\\x01\"\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5;a\rb\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_bare_lf(void **state)
{
	(void)state;
	expect_chunked_error("5\nhello\r\n0\r\n\r\n");
	expect_chunked_error("5\r\nhello\n0\r\n\r\n");
	expect_chunked_error("5\r\nhello\r\n0\n\r\n");
	expect_chunked_error("5\r\nhello\r\n0\r\n\n");
	expect_chunked_error("5\r\nhello\r\n0\r\nX: y\n\r\n");
	expect_chunked_error("\n");
}

static void test_chunked_data_crlf(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();

	expect_chunked_error("5\r\nhelloX\r\n0\r\n\r\n");
	expect_chunked_error("5\r\nhello\rX0\r\n\r\n");
	expect_chunked_error("5\r\nhello0\r\n\r\n");
	/* A wrong byte is seen as soon as it arrives. */
	http_body_init(&st, HTTP_BODY_CHUNKED, 0, false);
	evbuffer_add_printf(src, "5\r\nhelloZ");
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_ERROR);
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void test_chunked_line_too_long(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	char ext[HTTP_CHUNK_LINE_MAX];

	memset(ext, 'a', sizeof(ext));
	/* An incomplete line waits without being consumed. */
	http_body_init(&st, HTTP_BODY_CHUNKED, 0, false);
	evbuffer_add_printf(src, "5;");
	evbuffer_add(src, ext, 100);
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_MORE);
	assert_int_equal(evbuffer_get_length(src), 102);
	assert_int_equal(evbuffer_get_length(dst), 0);
	/* A line of exactly the limit passes. */
	evbuffer_add(src, ext, HTTP_CHUNK_LINE_MAX - 102 - 2);
	evbuffer_add_printf(src, "\r\nhello\r\n0\r\n\r\n");
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_DONE);
	assert_int_equal(evbuffer_get_length(dst), HTTP_CHUNK_LINE_MAX + 12);
	evbuffer_free(src);
	evbuffer_free(dst);

	src = evbuffer_new();
	dst = evbuffer_new();
	http_body_init(&st, HTTP_BODY_CHUNKED, 0, false);
	evbuffer_add_printf(src, "5;");
	evbuffer_add(src, ext, HTTP_CHUNK_LINE_MAX - 2);
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_ERROR);
	assert_non_null(st.error);
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void test_chunked_trailer_bad(void **state)
{
	(void)state;
	expect_chunked_error("0\r\nNoColon\r\n\r\n");
	expect_chunked_error("0\r\n: x\r\n\r\n");
	expect_chunked_error("0\r\nX : y\r\n\r\n");
	expect_chunked_error("0\r\nX: y\r\n folded\r\n\r\n");
	expect_chunked_error("0\r\nX: a\x01\r\n\r\n");
	expect_chunked_error("0\r\nX: a\rb\r\n\r\n");
}

static void test_chunked_trailer_too_large(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	enum http_body_result r = HTTP_BODY_MORE;

	http_body_init(&st, HTTP_BODY_CHUNKED, 0, false);
	evbuffer_add_printf(src, "0\r\n");
	for (int i = 0; i < 2000 && r == HTTP_BODY_MORE; i++) {
		evbuffer_add_printf(src, "X-Pad-%04d: 0123456789\r\n", i);
		r = http_body_move(&st, src, dst, SIZE_MAX);
	}
	assert_int_equal(r, HTTP_BODY_ERROR);
	assert_string_equal(st.error, "trailer section too large");
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void test_chunked_dechunk_drops_trailers(void **state)
{
	(void)state;
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	char out[64];

	http_body_init(&st, HTTP_BODY_CHUNKED, 0, true);
	evbuffer_add_printf(src, "3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nNEXT");
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_DONE);
	assert_int_equal(drain_all(dst, out, sizeof(out)), 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(st.moved, 3);
	assert_int_equal(drain_all(src, out, sizeof(out)), 4);
	assert_memory_equal(out, "NEXT", 4);
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_DONE);
	evbuffer_free(src);
	evbuffer_free(dst);
}

/* Chunk data moves as evbuffer chains, so a referenced payload is not copied. */
static void test_chunked_zero_copy(void **state)
{
	(void)state;
	static char payload[8192];
	struct http_body_state st;
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	struct evbuffer_iovec v[4];
	int found = 0;

	http_body_init(&st, HTTP_BODY_CHUNKED, 0, true);
	evbuffer_add_printf(src, "2000\r\n");
	evbuffer_add_reference(src, payload, sizeof(payload), NULL, NULL);
	evbuffer_add_printf(src, "\r\n0\r\n\r\n");
	assert_int_equal(http_body_move(&st, src, dst, SIZE_MAX), HTTP_BODY_DONE);
	assert_int_equal(evbuffer_get_length(dst), sizeof(payload));
	for (int i = 0, n = evbuffer_peek(dst, -1, NULL, v, 4); i < n && i < 4; i++)
		if (v[i].iov_base == payload)
			found = 1;
	assert_true(found);
	evbuffer_free(src);
	evbuffer_free(dst);
}

/* Where a request goes: origin-form, absolute-form, "*", and refusals. */
static void test_request_target(void **state)
{
	struct http_head h;
	struct http_target t;

	(void)state;
	assert_int_equal(req(&h, "GET /a?b HTTP/1.1\r\nHost: x.example:8080\r\n\r\n"), HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_OK);
	assert_false(t.absolute);
	assert_true(span_is(t.host, t.host_len, "x.example:8080"));
	assert_true(span_is(t.path, t.path_len, "/a?b"));

	assert_int_equal(req(&h, "GET http://Pub.example/admin?x=1 HTTP/1.1\r\n"
		"Host: other.example\r\n\r\n"), HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_OK);
	assert_true(t.absolute);
	assert_true(span_is(t.host, t.host_len, "Pub.example"));
	assert_true(span_is(t.path, t.path_len, "/admin?x=1"));

	assert_int_equal(req(&h, "GET https://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n"),
		HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_OK);
	assert_true(t.absolute);
	assert_true(span_is(t.path, t.path_len, "/"));

	assert_int_equal(req(&h, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_OK);
	assert_false(t.absolute);
	assert_true(span_is(t.path, t.path_len, "/"));

	/* Refused: sluice is not a forward proxy. */
	assert_int_equal(req(&h, "CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n"),
		HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_NOT_IMPLEMENTED);
	/* Authority-form with another method is malformed already. */
	assert_int_equal(req(&h, "GET h.example:443 HTTP/1.1\r\nHost: h.example\r\n\r\n"), HTTP_BAD);
	assert_int_equal(req(&h, "GET ftp://h.example/x HTTP/1.1\r\nHost: h.example\r\n\r\n"), HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_BAD);
	assert_int_equal(req(&h, "GET http://h.example?q HTTP/1.1\r\nHost: h.example\r\n\r\n"), HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_BAD);
	assert_int_equal(req(&h, "GET http://u@h.example/ HTTP/1.1\r\nHost: h.example\r\n\r\n"), HTTP_OK);
	assert_int_equal(http_request_target(&h, &t), HTTP_BAD);
}

/* upgrade_field says an Upgrade field is there, whatever the version;
 * upgrade needs HTTP/1.1 and Connection: upgrade too. */
static void test_upgrade_field(void **state)
{
	struct http_head h;

	(void)state;
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_OK);
	assert_false(h.upgrade_field);
	assert_false(h.upgrade);
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		"Connection: keep-alive, Upgrade\r\n\r\n"), HTTP_OK);
	assert_true(h.upgrade_field);
	assert_true(h.upgrade);
	assert_true(h.keep_alive);
	assert_int_equal(req(&h, "GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\n"
		"Connection: upgrade\r\n\r\n"), HTTP_OK);
	assert_true(h.upgrade_field);
	assert_false(h.upgrade);
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close ,upgrade\r\n"
		"\r\n"), HTTP_OK);
	assert_false(h.keep_alive);
	assert_false(h.upgrade_field);
	assert_false(h.upgrade);
}

/* conn_lists_fields: a Connection field names something other than the
 * three options, so the rewriters must look for fields to strip. */
static void test_conn_lists_fields(void **state)
{
	struct http_head h;

	(void)state;
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: h\r\n"
		"Connection: keep-alive, Upgrade ,, close\r\n\r\n"), HTTP_OK);
	assert_false(h.conn_lists_fields);
	assert_int_equal(req(&h, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
		"Connection: X-Secret\r\nX-Secret: 1\r\n\r\n"), HTTP_OK);
	assert_true(h.conn_lists_fields);
	assert_int_equal(req(&h, "TRACE / HTTP/1.1\r\nHost: h\r\n"
		"Connection: x-secret\r\n\r\n"), HTTP_OK);
	assert_true(h.conn_lists_fields);
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
		"Content-Length: 0\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_false(h.conn_lists_fields);
	assert_int_equal(resp(&h, "HTTP/1.1 200 OK\r\nConnection: Foo\r\n"
		"Content-Length: 0\r\n\r\n", HTTP_M_GET), HTTP_OK);
	assert_true(h.conn_lists_fields);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_req_get),
		cmocka_unit_test(test_req_post_length),
		cmocka_unit_test(test_req_post_chunked),
		cmocka_unit_test(test_req_http10),
		cmocka_unit_test(test_req_connection),
		cmocka_unit_test(test_req_expect),
		cmocka_unit_test(test_req_upgrade),
		cmocka_unit_test(test_req_methods),
		cmocka_unit_test(test_req_host_forms),
		cmocka_unit_test(test_smuggle_cl_te),
		cmocka_unit_test(test_smuggle_cl_duplicate),
		cmocka_unit_test(test_smuggle_cl_list),
		cmocka_unit_test(test_smuggle_cl_nondigit),
		cmocka_unit_test(test_smuggle_cl_empty),
		cmocka_unit_test(test_smuggle_cl_overflow),
		cmocka_unit_test(test_smuggle_te_not_final),
		cmocka_unit_test(test_smuggle_te_unknown),
		cmocka_unit_test(test_smuggle_te_twice),
		cmocka_unit_test(test_smuggle_te_empty),
		cmocka_unit_test(test_smuggle_te_http10),
		cmocka_unit_test(test_smuggle_obs_fold),
		cmocka_unit_test(test_smuggle_bare_lf),
		cmocka_unit_test(test_smuggle_bare_cr),
		cmocka_unit_test(test_smuggle_nul),
		cmocka_unit_test(test_smuggle_ctl_value),
		cmocka_unit_test(test_smuggle_name_chars),
		cmocka_unit_test(test_smuggle_space_before_colon),
		cmocka_unit_test(test_smuggle_missing_host),
		cmocka_unit_test(test_smuggle_several_hosts),
		cmocka_unit_test(test_smuggle_target_chars),
		cmocka_unit_test(test_smuggle_version),
		cmocka_unit_test(test_smuggle_head_shape),
		cmocka_unit_test(test_uri_too_long),
		cmocka_unit_test(test_uri_too_long_big),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_resp_length),
		cmocka_unit_test(test_resp_chunked),
		cmocka_unit_test(test_resp_until_close),
		cmocka_unit_test(test_resp_no_body),
		cmocka_unit_test(test_resp_keep_alive),
		cmocka_unit_test(test_resp_status_line),
		cmocka_unit_test(test_resp_smuggling),
		cmocka_unit_test(test_header_is),
		cmocka_unit_test(test_list_has),
		cmocka_unit_test(test_reason),
		cmocka_unit_test(test_find_whole),
		cmocka_unit_test(test_find_trickle),
		cmocka_unit_test(test_find_chains),
		cmocka_unit_test(test_find_bare_lf),
		cmocka_unit_test(test_find_nul),
		cmocka_unit_test(test_find_too_large),
		cmocka_unit_test(test_find_leading_crlf),
		cmocka_unit_test(test_find_empty),
		cmocka_unit_test(test_body_none),
		cmocka_unit_test(test_body_length),
		cmocka_unit_test(test_body_until_close),
		cmocka_unit_test(test_chunked_simple),
		cmocka_unit_test(test_chunked_extensions),
		cmocka_unit_test(test_chunked_trailers),
		cmocka_unit_test(test_chunked_big_chunk),
		cmocka_unit_test(test_chunked_bad_size),
		cmocka_unit_test(test_chunked_size_limit),
		cmocka_unit_test(test_chunked_bad_ext),
		cmocka_unit_test(test_chunked_bare_lf),
		cmocka_unit_test(test_chunked_data_crlf),
		cmocka_unit_test(test_chunked_line_too_long),
		cmocka_unit_test(test_chunked_trailer_bad),
		cmocka_unit_test(test_chunked_trailer_too_large),
		cmocka_unit_test(test_chunked_dechunk_drops_trailers),
		cmocka_unit_test(test_chunked_zero_copy),
		cmocka_unit_test(test_request_target),
		cmocka_unit_test(test_upgrade_field),
		cmocka_unit_test(test_conn_lists_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
