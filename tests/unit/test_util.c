/*
 * util.c tests: address formatting and comparison, request ids, JSON escaping,
 * the clock held through one callback.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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

/* Address and port decide; padding, flow label and scope do not. */
static void
test_addr_same(void **state)
{
	struct sockaddr_storage a, b;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a, *b4 = (struct sockaddr_in *)&b;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a, *b6 = (struct sockaddr_in6 *)&b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0xff, sizeof(b));
	a4->sin_family = b4->sin_family = AF_INET;
	a4->sin_port = b4->sin_port = htons(80);
	inet_pton(AF_INET, "127.0.0.1", &a4->sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &b4->sin_addr);
	assert_true(util_addr_same(&a, &b));
	b4->sin_port = htons(81);
	assert_false(util_addr_same(&a, &b));
	inet_pton(AF_INET, "127.0.0.2", &b4->sin_addr);
	b4->sin_port = htons(80);
	assert_false(util_addr_same(&a, &b));

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a6->sin6_family = b6->sin6_family = AF_INET6;
	a6->sin6_port = b6->sin6_port = htons(443);
	inet_pton(AF_INET6, "2001:db8::1", &a6->sin6_addr);
	inet_pton(AF_INET6, "2001:db8::1", &b6->sin6_addr);
	b6->sin6_flowinfo = 7;
	b6->sin6_scope_id = 2;
	assert_true(util_addr_same(&a, &b));
	inet_pton(AF_INET6, "2001:db8::2", &b6->sin6_addr);
	assert_false(util_addr_same(&a, &b));
	/* Another family, or one neither of them is. */
	a4->sin_family = AF_INET;
	assert_false(util_addr_same(&a, &b));
	a.ss_family = b.ss_family = AF_UNIX;
	assert_false(util_addr_same(&a, &b));
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

/* Sleep 2 ms: longer than the clock's microsecond step. */
static void
pass_time(void)
{
	struct timespec ts = { .tv_nsec = 2000000 };

	nanosleep(&ts, NULL);
}

/* In a thread that holds nothing: how far the clock moved over pass_time(). */
static void *
other_thread_clock(void *arg)
{
	uint64_t t0 = util_now_us();

	pass_time();
	*(uint64_t *)arg = util_now_us() - t0;
	return NULL;
}

static void
test_clock_hold(void **state)
{
	uint64_t t0, t1, t2, t3;

	(void)state;
	/* Unheld, every call reads the clock. */
	t0 = util_now_us();
	pass_time();
	assert_true(util_now_us() >= t0 + 2000);

	/* Held: the first call's instant, through nested holds. */
	util_clock_hold();
	t1 = util_now_us();
	assert_true(t1 >= t0 + 2000);
	pass_time();
	assert_int_equal(util_now_us(), t1);
	util_clock_hold();
	pass_time();
	assert_int_equal(util_now_us(), t1);
	util_clock_release();
	assert_int_equal(util_now_us(), t1);
	util_clock_release();

	/* A hold is the holding thread's own: another thread's clock moves. */
	util_clock_hold();
	t3 = util_now_us();
	{
		pthread_t th;
		uint64_t moved = 0;

		assert_int_equal(pthread_create(&th, NULL, other_thread_clock, &moved), 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_true(moved >= 2000);
	}
	assert_int_equal(util_now_us(), t3);
	util_clock_release();

	/* Released: the clock moves again, and a new hold reads it afresh. */
	t2 = util_now_us();
	assert_true(t2 >= t3 + 2000 && t3 >= t1 + 4000);
	pass_time();
	util_clock_hold();
	assert_true(util_now_us() >= t2 + 2000);
	util_clock_release();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_addr_same),
		cmocka_unit_test(test_clock_hold),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_json_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
