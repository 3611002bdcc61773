/*
 * util.c tests: address formatting, request ids, JSON escaping.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

static void
test_addr_format(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	char buf[UTIL_ADDR_LEN];

	(void)state;
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	assert_string_equal(util_addr_format((struct sockaddr *)&sin, buf, sizeof(buf), 1),
		"10.1.2.3:8080");
	assert_string_equal(util_addr_format((struct sockaddr *)&sin, buf, sizeof(buf), 0),
		"10.1.2.3");
	assert_string_equal(util_addr_format((struct sockaddr *)&sin6, buf, sizeof(buf), 1),
		"[2001:db8::1]:443");
	assert_string_equal(util_addr_format((struct sockaddr *)&sin6, buf, sizeof(buf), 0),
		"2001:db8::1");
}

static void
test_request_id(void **state)
{
	char a[33], b[33];

	(void)state;
	assert_int_equal(util_rand_seed(), 0);
	util_request_id(a);
	util_request_id(b);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
}

static void
test_json_escape(void **state)
{
	char buf[64];
	size_t n;

	(void)state;
	n = util_json_escape(buf, sizeof(buf), 0, "a\"b\\c\n\x01\xff", 8);
	assert_string_equal(buf, "a\\\"b\\\\c\\u000a\\u0001\\u00ff");
	assert_int_equal(n, strlen(buf));
	/* Truncation keeps whole escapes and a NUL. */
	n = util_json_escape(buf, 8, 0, "\"\"\"\"\"\"", 6);
	assert_string_equal(buf, "\\\"\\\"\\\"");
	assert_int_equal(n, 6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_json_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
