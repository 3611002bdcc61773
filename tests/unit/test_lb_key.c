/*
 * Hash key extraction (lb_key.c): the client's address without its port,
 * a header, a cookie or a query parameter, absent and empty values, and the
 * shortening of long values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config-t.h"
#include "http.h"
#include "lb_key.h"

#define MAX_FIELDS 8

struct req {
	struct http_head h;
	struct http_header fields[MAX_FIELDS];
};

/* A head with the fields given as "Name: value" strings, NULL-terminated. */
static void
req_init(struct req *r, const char *const *lines)
{
	memset(r, 0, sizeof(*r));
	r->h.headers = r->fields;
	for (size_t i = 0; lines != NULL && lines[i] != NULL; i++) {
		const char *colon = strchr(lines[i], ':');
		const char *v = colon + 1;

		assert_non_null(colon);
		assert_true(i < MAX_FIELDS);
		while (*v == ' ')
			v++;
		r->fields[i].name = lines[i];
		r->fields[i].name_len = (size_t)(colon - lines[i]);
		r->fields[i].value = v;
		r->fields[i].value_len = strlen(v);
		r->h.nheaders++;
	}
}

/* The key as a string ("" when absent), kept in static storage. */
static const char *
key(enum config_hash_key kind, const char *name, const char *const *lines,
		const char *target, const char *client)
{
	static char buf[LB_KEY_MAX + 1];
	struct config_pool pool = { .hash_key = kind, .hash_key_name = (char *)name };
	struct req r;
	size_t n;

	req_init(&r, lines);
	n = lb_key_extract(&pool, &r.h, target, strlen(target), client, buf);
	assert_true(n <= LB_KEY_MAX);
	buf[n] = '\0';
	return buf;
}

static void
test_client(void **state)
{
	(void)state;
	assert_string_equal(key(CONFIG_HASH_CLIENT, NULL, NULL, "/", "192.0.2.7:5555"), "192.0.2.7");
	assert_string_equal(key(CONFIG_HASH_CLIENT, NULL, NULL, "/", "[::1]:5555"), "::1");
	assert_string_equal(key(CONFIG_HASH_CLIENT, NULL, NULL, "/", "[2001:db8::5]:80"),
		"2001:db8::5");
	assert_string_equal(key(CONFIG_HASH_CLIENT, NULL, NULL, "/", "10.0.0.1"), "10.0.0.1");
	/* Two connections of one client share the key. */
	assert_string_equal(key(CONFIG_HASH_CLIENT, NULL, NULL, "/x?a=1", "10.1.2.3:40001"),
		"10.1.2.3");
}

static void
test_header(void **state)
{
	static const char *const one[] = { "Host: a", "X-User: alice", "Accept: */*", NULL };
	static const char *const two[] = { "x-user:", "X-USER: bob", "X-User: carol", NULL };
	static const char *const none[] = { "Host: a", "X-Users: nope", "X-Use: no", NULL };

	(void)state;
	assert_string_equal(key(CONFIG_HASH_HEADER, "X-User", one, "/", "1.1.1.1:1"), "alice");
	/* Names compare without case; the first field with a value wins. */
	assert_string_equal(key(CONFIG_HASH_HEADER, "x-user", one, "/", "1.1.1.1:1"), "alice");
	assert_string_equal(key(CONFIG_HASH_HEADER, "X-User", two, "/", "1.1.1.1:1"), "bob");
	assert_string_equal(key(CONFIG_HASH_HEADER, "X-User", none, "/", "1.1.1.1:1"), "");
	assert_string_equal(key(CONFIG_HASH_HEADER, "X-User", NULL, "/", "1.1.1.1:1"), "");
}

static void
test_cookie(void **state)
{
	static const char *const plain[] = { "Cookie: a=1; sid=xyz; b=2", NULL };
	static const char *const quoted[] = { "Cookie: sid=\"q-1\"", NULL };
	static const char *const second[] = { "Cookie: a=1", "Cookie: sid=two", NULL };
	static const char *const near[] = { "Cookie: sidx=1; xsid=2; SID=3", "X-Sid: 4", NULL };
	static const char *const empty[] = { "Cookie: sid=", NULL };

	(void)state;
	assert_string_equal(key(CONFIG_HASH_COOKIE, "sid", plain, "/", "1.1.1.1:1"), "xyz");
	assert_string_equal(key(CONFIG_HASH_COOKIE, "sid", quoted, "/", "1.1.1.1:1"), "q-1");
	assert_string_equal(key(CONFIG_HASH_COOKIE, "sid", second, "/", "1.1.1.1:1"), "two");
	/* Cookie names are case-sensitive and whole. */
	assert_string_equal(key(CONFIG_HASH_COOKIE, "sid", near, "/", "1.1.1.1:1"), "");
	assert_string_equal(key(CONFIG_HASH_COOKIE, "sid", empty, "/", "1.1.1.1:1"), "");
	assert_string_equal(key(CONFIG_HASH_COOKIE, "sid", NULL, "/", "1.1.1.1:1"), "");
}

static void
test_query(void **state)
{
	(void)state;
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?user=bob&x=1", "1.1.1.1:1"), "bob");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?x=1&user=bob", "1.1.1.1:1"), "bob");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?user=1&user=2", "1.1.1.1:1"), "1");
	/* Whole names only; an empty value or a bare name is no value. */
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?username=x&user=y", "1.1.1.1:1"), "y");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?xuser=x&user", "1.1.1.1:1"), "");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?user=&user=z", "1.1.1.1:1"), "z");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?&&user=w&", "1.1.1.1:1"), "w");
	/* Raw: percent-encoding is kept, as sent. */
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?user=a%20b", "1.1.1.1:1"), "a%20b");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/user=x", "1.1.1.1:1"), "");
	assert_string_equal(key(CONFIG_HASH_QUERY, "user", NULL, "/p?", "1.1.1.1:1"), "");
	/* An absolute-form target's path and query, as routing sees it. */
	assert_string_equal(key(CONFIG_HASH_QUERY, "sid", NULL,
		"/socket.io/?EIO=4&transport=polling&sid=abc123", "1.1.1.1:1"), "abc123");
}

/* Values up to LB_KEY_MAX stay as they are; longer ones keep their start
 * and end with a hash of the whole value, so they stay apart and stable. */
static void
test_long_values(void **state)
{
	char v1[400], v2[400], f1[420], f2[420], k1[LB_KEY_MAX + 1], exact[LB_KEY_MAX + 1];
	const char *l1[] = { f1, NULL }, *l2[] = { f2, NULL };

	(void)state;
	memset(exact, 'e', LB_KEY_MAX);
	exact[LB_KEY_MAX] = '\0';
	snprintf(f1, sizeof(f1), "X-Key: %s", exact);
	assert_string_equal(key(CONFIG_HASH_HEADER, "X-Key", l1, "/", "1.1.1.1:1"), exact);

	memset(v1, 'a', sizeof(v1) - 1);
	v1[sizeof(v1) - 1] = '\0';
	memcpy(v2, v1, sizeof(v2));
	v2[sizeof(v2) - 2] = 'b';	/* differs in its last byte only */
	snprintf(f1, sizeof(f1), "X-Key: %s", v1);
	snprintf(f2, sizeof(f2), "X-Key: %s", v2);
	strcpy(k1, key(CONFIG_HASH_HEADER, "X-Key", l1, "/", "1.1.1.1:1"));
	assert_int_equal(strlen(k1), LB_KEY_MAX);
	assert_memory_equal(k1, v1, LB_KEY_MAX - 16);
	for (int i = LB_KEY_MAX - 16; i < LB_KEY_MAX; i++)
		assert_non_null(strchr("0123456789abcdef", k1[i]));
	assert_string_equal(key(CONFIG_HASH_HEADER, "X-Key", l1, "/", "1.1.1.1:1"), k1);
	assert_string_not_equal(key(CONFIG_HASH_HEADER, "X-Key", l2, "/", "1.1.1.1:1"), k1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_long_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
