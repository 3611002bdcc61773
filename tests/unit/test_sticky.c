/*
 * sticky.c tests: cookie tokens (with known answers computed by the openssl
 * command line), Cookie field parsing, the sid query parameter, Engine.IO
 * open packets, and the in-process sid table, alone and from four threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sticky.h"

#define KEY	"sluice-test-key-0123456789abcdef"
#define KEYLEN	(sizeof(KEY) - 1)

/* ------------------------------------------------------------------ token */

static void
test_token_known_answer(void **state)
{
	char tok[STICKY_TOKEN_LEN + 1];

	(void)state;
	/*
	 * printf 'chat\0a' | openssl dgst -sha256 -mac HMAC \
	 *   -macopt key:sluice-test-key-0123456789abcdef -binary |
	 *   head -c 16 | base64 | tr '+/' '-_' | tr -d '='
	 */
	assert_int_equal(sticky_token((const unsigned char *)KEY, KEYLEN, "chat", "a", tok), 0);
	assert_string_equal(tok, "QMP0_frQ9gcO-SxqhdjI9A");
	assert_int_equal(sticky_token((const unsigned char *)KEY, KEYLEN, "chat", "b", tok), 0);
	assert_string_equal(tok, "NDXmRMGvyOtMsw_pUs9Zew");
}

static void
test_token_distinct(void **state)
{
	static const unsigned char key2[] = "another-key-of-enough-bytes";
	char a[STICKY_TOKEN_LEN + 1], b[STICKY_TOKEN_LEN + 1];
	const unsigned char *k = (const unsigned char *)KEY;

	(void)state;
	/* Deterministic, and only URL- and cookie-safe characters. */
	assert_int_equal(sticky_token(k, KEYLEN, "chat", "a", a), 0);
	assert_int_equal(sticky_token(k, KEYLEN, "chat", "a", b), 0);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), STICKY_TOKEN_LEN);
	assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
		STICKY_TOKEN_LEN);
	/* Server, pool, key each change it; the NUL keeps ("ch","ata")
	 * apart from ("cha","ta"). */
	assert_int_equal(sticky_token(k, KEYLEN, "chat", "b", b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(sticky_token(k, KEYLEN, "chat2", "a", b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(sticky_token(key2, sizeof(key2) - 1, "chat", "a", b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(sticky_token(k, KEYLEN, "ch", "ata", a), 0);
	assert_int_equal(sticky_token(k, KEYLEN, "cha", "ta", b), 0);
	assert_string_not_equal(a, b);
	/* No key, no token. */
	assert_int_equal(sticky_token(k, 0, "chat", "a", a), -1);
	assert_int_equal(sticky_token(NULL, 16, "chat", "a", a), -1);
}

/* ----------------------------------------------------------------- cookie */

static void
expect_cookie(const char *header, const char *name, const char *want)
{
	const char *v = NULL;
	size_t n = 0;
	bool found = sticky_cookie_find(header, strlen(header), name, &v, &n);

	if (want == NULL) {
		if (found)
			fail_msg("[%s] %s: found \"%.*s\", want none", header, name, (int)n, v);
		return;
	}
	if (!found)
		fail_msg("[%s] %s: not found, want \"%s\"", header, name, want);
	if (n != strlen(want) || memcmp(v, want, n) != 0)
		fail_msg("[%s] %s: got \"%.*s\", want \"%s\"", header, name, (int)n, v, want);
}

static void
test_cookie_find(void **state)
{
	static const struct {
		const char *header, *name, *want;
	} cases[] = {
		{ "sluice=abc", "sluice", "abc" },
		{ "a=1; sluice=abc; b=2", "sluice", "abc" },
		{ "a=1;sluice=abc;b=2", "sluice", "abc" },
		{ "a=1 ;  sluice = abc  ; b=2", "sluice", "abc" },
		{ "\tsluice=abc\t", "sluice", "abc" },
		{ "a=1; sluice=\"abc\"", "sluice", "abc" },
		{ "sluice=\"\"", "sluice", "" },
		{ "sluice=\"abc", "sluice", "\"abc" },
		{ "sluice=", "sluice", "" },
		{ "sluice=a=b", "sluice", "a=b" },
		{ "sluice=1; sluice=2", "sluice", "1" },
		{ "a=1; sluice=abc;", "sluice", "abc" },
		{ ";;sluice=abc", "sluice", "abc" },
		/* names match exactly, case-sensitive, whole */
		{ "Sluice=abc", "sluice", NULL },
		{ "xsluice=abc; sluicex=def", "sluice", NULL },
		{ "a=sluice=abc", "sluice", NULL },
		{ "sluice; b=2", "sluice", NULL },
		{ "a=1; sluice", "sluice", NULL },
		{ "", "sluice", NULL },
		{ "a=1", "", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_cookie(cases[i].header, cases[i].name, cases[i].want);
	{
		/* Nothing past len is read. */
		const char *v;
		size_t n;
		const char h[] = "a=1; sluice=abcdef; b=2";

		assert_true(sticky_cookie_find(h, strlen("a=1; sluice=abc"), "sluice", &v, &n));
		assert_int_equal(n, 3);
		assert_memory_equal(v, "abc", 3);
		assert_false(sticky_cookie_find(h, strlen("a=1; slu"), "sluice", &v, &n));
		assert_false(sticky_cookie_find(h, strlen(h), NULL, &v, &n));
	}
}

/* -------------------------------------------------------------------- sid */

static void
expect_sid(const char *target, const char *want)
{
	const char *sid = NULL;
	size_t n = 0;
	bool found = sticky_sid_from_target(target, strlen(target), &sid, &n);

	if (want == NULL) {
		if (found)
			fail_msg("%s: found \"%.*s\", want none", target, (int)n, sid);
		return;
	}
	if (!found)
		fail_msg("%s: not found, want \"%s\"", target, want);
	if (n != strlen(want) || memcmp(sid, want, n) != 0)
		fail_msg("%s: got \"%.*s\", want \"%s\"", target, (int)n, sid, want);
}

static void
test_sid_from_target(void **state)
{
	static const struct {
		const char *target, *want;
	} cases[] = {
		{ "/socket.io/?EIO=4&transport=polling&sid=Ab_-9xYz", "Ab_-9xYz" },
		{ "/socket.io/?sid=abc&EIO=4", "abc" },
		{ "/socket.io/?EIO=4&sid=abc&t=x", "abc" },
		{ "/?sid=abc#frag", "abc" },
		{ "/?a=1&sid=abc&sid=def", "abc" },
		{ "/?xsid=abc&sid=def", "def" },
		{ "/?xsid=abc", NULL },
		{ "/?sidx=abc", NULL },
		{ "/?SID=abc", NULL },
		{ "/?sid", NULL },
		{ "/?sid=", NULL },
		{ "/?sid=&b=1", NULL },
		{ "/?sid=#x", NULL },
		{ "/sid=abc", NULL },
		{ "/a#?sid=abc", NULL },
		{ "/?a=1#&sid=abc", NULL },
		{ "", NULL },
		{ "/?", NULL },
		{ "/?&&sid=q", "q" },
		/* 64 characters are kept, 65 are not. */
		{ "/?sid=0123456789012345678901234567890123456789012345678901234567890123",
		  "0123456789012345678901234567890123456789012345678901234567890123" },
		{ "/?sid=01234567890123456789012345678901234567890123456789012345678901234", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_sid(cases[i].target, cases[i].want);
	{
		const char *sid;
		size_t n;
		const char t[] = "/?sid=abcdef&x=1";

		/* The value stops at len. */
		assert_true(sticky_sid_from_target(t, strlen("/?sid=abc"), &sid, &n));
		assert_int_equal(n, 3);
		assert_false(sticky_sid_from_target(t, strlen("/?sid="), &sid, &n));
		assert_false(sticky_sid_from_target(NULL, 0, &sid, &n));
	}
}

/* ------------------------------------------------------------ open packet */

#define EIO4_OPEN "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"]," \
	"\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}"

static void
expect_open(const char *data, size_t len, const char *want_sid, unsigned want_ttl)
{
	char sid[STICKY_SID_MAX + 1] = "untouched";
	unsigned ttl = 7;
	bool ok = sticky_parse_open_packet(data, len, sid, &ttl);

	if (want_sid == NULL) {
		if (ok)
			fail_msg("[%.*s]: got sid %s, want none", (int)len, data, sid);
		return;
	}
	if (!ok)
		fail_msg("[%.*s]: no sid, want %s", (int)len, data, want_sid);
	assert_string_equal(sid, want_sid);
	assert_int_equal(ttl, want_ttl);
}

static void
expect_open_str(const char *data, const char *want_sid, unsigned want_ttl)
{
	expect_open(data, strlen(data), want_sid, want_ttl);
}

static void
test_open_packet(void **state)
{
	static const char eio3[] = "96:0{\"sid\":\"Kx-3aQ_7\",\"upgrades\":[\"websocket\"],"
		"\"pingInterval\":30000,\"pingTimeout\":60000}2:40";
	char buf[256];
	size_t full = strlen(EIO4_OPEN), sid_end;

	(void)state;
	expect_open_str(EIO4_OPEN, "lv_VI97HAXpY6yYWAAAC", 45000);
	/* Engine.IO 4 polling batches packets with \x1e after the open one. */
	expect_open_str(EIO4_OPEN "\x1e" "40", "lv_VI97HAXpY6yYWAAAC", 45000);
	expect_open_str(eio3, "Kx-3aQ_7", 90000);
	/* Member order and blanks do not matter; unknown members of any
	 * shape are skipped. */
	expect_open_str("0{ \"pingTimeout\" : 1000 , \"x\":{\"sid\":\"nested\",\"a\":[1,{\"b\":null}]},"
		"\"y\":\"q\\\"\\\\\",\"z\":true, \"sid\" : \"abc\", \"pingInterval\":2000}", "abc", 3000);
	/* Absent heartbeats count as Engine.IO's defaults. */
	expect_open_str("0{\"sid\":\"abc\"}", "abc", 45000);
	expect_open_str("0{\"sid\":\"abc\",\"pingInterval\":1000}", "abc", 21000);
	expect_open_str("0{\"sid\":\"abc\",\"pingTimeout\":\"5\"}", "abc", 45000);
	/* Absurd heartbeats are clamped to a day each. */
	expect_open_str("0{\"sid\":\"abc\",\"pingInterval\":99999999999999999999999,\"pingTimeout\":0}",
		"abc", 24u * 3600 * 1000);

	/* Every prefix that ends before the sid's closing quote: not yet. */
	sid_end = strstr(EIO4_OPEN, "AAAC\"") - EIO4_OPEN + 4;
	for (size_t n = 0; n <= sid_end; n++)
		expect_open(EIO4_OPEN, n, NULL, 0);
	/* From there on the sid is known; the heartbeat once it is whole. */
	expect_open(EIO4_OPEN, sid_end + 1, "lv_VI97HAXpY6yYWAAAC", 45000);
	for (size_t n = sid_end + 1; n <= full; n++) {
		char sid[STICKY_SID_MAX + 1];
		unsigned ttl;

		assert_true(sticky_parse_open_packet(EIO4_OPEN, n, sid, &ttl));
		assert_string_equal(sid, "lv_VI97HAXpY6yYWAAAC");
	}
	for (size_t n = 0; n < strlen("96:0{\"sid\":\"Kx-3aQ_7\""); n++)
		expect_open(eio3, n, NULL, 0);

	/* Not an open packet, or not a sid sluice will key on. */
	expect_open_str("4{\"sid\":\"abc\"}", NULL, 0);
	expect_open_str("40{\"sid\":\"abc\"}", NULL, 0);
	expect_open_str("96:4{\"sid\":\"abc\"}", NULL, 0);
	expect_open_str("0 {\"sid\":\"abc\"}", NULL, 0);
	expect_open_str("0[\"sid\",\"abc\"]", NULL, 0);
	expect_open_str(":0{\"sid\":\"abc\"}", NULL, 0);
	expect_open_str("96", NULL, 0);
	expect_open_str("0{}", NULL, 0);
	expect_open_str("0{\"sid\":\"\"}", NULL, 0);
	expect_open_str("0{\"sid\":123}", NULL, 0);
	expect_open_str("0{\"sid\":\"a\\\"b\"}", NULL, 0);
	expect_open_str("0{\"sid\":\"a\\u0041\"}", NULL, 0);
	expect_open_str("0{\"sid\":\"a b\"}", NULL, 0);
	expect_open_str("0{\"sid\":\"a/b\"}", NULL, 0);
	expect_open_str("0{\"sids\":\"abc\"}", NULL, 0);
	expect_open_str("0{\"x\":[\"sid\",\"abc\"]}", NULL, 0);
	expect_open_str("0{\"x\" \"sid\":\"abc\"}", NULL, 0);
	expect_open_str("0{\"x\":1 \"sid\":\"abc\"}", NULL, 0);
	expect_open_str("", NULL, 0);
	assert_false(sticky_parse_open_packet(NULL, 0, buf, &(unsigned){ 0 }));
	/* 64 sid characters are kept, 65 are not. */
	snprintf(buf, sizeof(buf), "0{\"sid\":\"%s\"}",
		"0123456789012345678901234567890123456789012345678901234567890123");
	expect_open_str(buf, "0123456789012345678901234567890123456789012345678901234567890123", 45000);
	snprintf(buf, sizeof(buf), "0{\"sid\":\"%s\"}",
		"01234567890123456789012345678901234567890123456789012345678901234");
	expect_open_str(buf, NULL, 0);
}

/* ------------------------------------------------------------------ store */

static void
expect_get(struct sid_store *s, const char *sid, const char *pool, uint64_t now, const char *want)
{
	char server[65] = "untouched";
	bool found = s->ops->get(s->st, sid, strlen(sid), pool, server, sizeof(server), now);

	if (want == NULL) {
		if (found)
			fail_msg("get %s/%s at %llu: found %s", pool, sid, (unsigned long long)now, server);
		return;
	}
	if (!found)
		fail_msg("get %s/%s at %llu: not found, want %s", pool, sid,
			(unsigned long long)now, want);
	assert_string_equal(server, want);
}

static int
put(struct sid_store *s, const char *sid, const char *pool, const char *server,
		unsigned ttl, uint64_t now)
{
	return s->ops->put(s->st, sid, strlen(sid), pool, server, ttl, now);
}

static void
test_store_basic(void **state)
{
	struct sid_store *s = sid_store_local_new();
	char name65[66], server[8];

	(void)state;
	assert_non_null(s);
	assert_string_equal(s->ops->name, "local");
	assert_int_equal(s->ops->count(s->st), 0);
	expect_get(s, "abc", "chat", 0, NULL);

	assert_int_equal(put(s, "abc", "chat", "a", 1000, 10000), 0);
	assert_int_equal(put(s, "def", "chat", "b", 1000, 10000), 0);
	assert_int_equal(s->ops->count(s->st), 2);
	expect_get(s, "abc", "chat", 10000, "a");
	expect_get(s, "def", "chat", 10000, "b");
	/* Another pool's route does not see it; prefixes are other keys. */
	expect_get(s, "abc", "other", 10000, NULL);
	expect_get(s, "ab", "chat", 10000, NULL);
	expect_get(s, "abcd", "chat", 10000, NULL);

	/* A get renews the TTL from its own time; without one, it ends. */
	expect_get(s, "abc", "chat", 10900, "a");
	expect_get(s, "abc", "chat", 11800, "a");
	expect_get(s, "def", "chat", 11800, NULL);	/* expired at 11000 */
	assert_int_equal(s->ops->count(s->st), 1);	/* and dropped on the way */
	expect_get(s, "abc", "chat", 12800, NULL);	/* exactly at expiry: gone */

	/* A second put of a sid replaces the first. */
	assert_int_equal(put(s, "abc", "chat", "a", 1000, 20000), 0);
	assert_int_equal(put(s, "abc", "chat", "b", 5000, 20000), 0);
	assert_int_equal(s->ops->count(s->st), 1);
	expect_get(s, "abc", "chat", 24000, "b");

	/* del, also of what is not there. */
	s->ops->del(s->st, "abc", 3);
	s->ops->del(s->st, "abc", 3);
	s->ops->del(s->st, "zzz", 3);
	assert_int_equal(s->ops->count(s->st), 0);
	expect_get(s, "abc", "chat", 24000, NULL);

	/* Bounds: sid 1..64 bytes, names up to 64 bytes, output capacity. */
	memset(name65, 'n', 65);
	name65[65] = '\0';
	assert_int_equal(s->ops->put(s->st, "x", 0, "chat", "a", 1000, 0), -1);
	assert_int_equal(s->ops->put(s->st, name65, 65, "chat", "a", 1000, 0), -1);
	assert_int_equal(s->ops->put(s->st, name65, 64, "chat", "a", 1000, 0), 0);
	assert_int_equal(put(s, "p", name65, "a", 1000, 0), -1);
	assert_int_equal(put(s, "q", "chat", name65, 1000, 0), -1);
	assert_int_equal(put(s, "r", name65 + 1, name65 + 1, 1000, 0), 0);
	expect_get(s, "r", name65 + 1, 0, name65 + 1);
	assert_int_equal(put(s, "t", "chat", "eight-ch", 1000, 0), 0);
	assert_false(s->ops->get(s->st, "t", 1, "chat", server, sizeof(server), 0));
	assert_int_equal(put(s, "u", "chat", "seven-c", 1000, 0), 0);
	assert_true(s->ops->get(s->st, "u", 1, "chat", server, sizeof(server), 0));
	assert_string_equal(server, "seven-c");
	assert_false(s->ops->get(s->st, "u", 0, "chat", server, sizeof(server), 0));
	assert_false(s->ops->get(s->st, name65, 65, "chat", server, sizeof(server), 0));
	assert_int_equal(s->ops->count(s->st), 4);
	sid_store_free(s);
	sid_store_free(NULL);
}

static void
test_store_expire_and_grow(void **state)
{
	struct sid_store *s = sid_store_local_new();
	char sid[32], want[16];

	(void)state;
	assert_non_null(s);
	/* Enough to double the table several times. */
	for (unsigned i = 0; i < 20000; i++) {
		snprintf(sid, sizeof(sid), "sid%u", i);
		snprintf(want, sizeof(want), "s%u", i % 7);
		assert_int_equal(put(s, sid, "chat", want, i % 2 ? 1000 : 5000, 0), 0);
	}
	assert_int_equal(s->ops->count(s->st), 20000);
	for (unsigned i = 0; i < 20000; i += 997) {
		snprintf(sid, sizeof(sid), "sid%u", i);
		snprintf(want, sizeof(want), "s%u", i % 7);
		expect_get(s, sid, "chat", 0, want);
	}
	assert_int_equal(s->ops->expire(s->st, 999), 0);
	assert_int_equal(s->ops->expire(s->st, 1000), 10000);
	assert_int_equal(s->ops->count(s->st), 10000);
	expect_get(s, "sid1", "chat", 1000, NULL);
	/* A get at 4000 renews sid0 (TTL 5000) to 9000; the rest end at 5000. */
	expect_get(s, "sid0", "chat", 4000, "s0");
	assert_int_equal(s->ops->expire(s->st, 5000), 9999);
	expect_get(s, "sid0", "chat", 5000, "s0");
	assert_int_equal(s->ops->expire(s->st, 100000), 1);
	assert_int_equal(s->ops->count(s->st), 0);
	assert_int_equal(s->ops->expire(s->st, 100000), 0);
	sid_store_free(s);
}

struct worker_arg {
	struct sid_store *s;
	unsigned id;
	unsigned misses;
};

static void *
worker(void *p)
{
	struct worker_arg *w = p;
	char sid[32], server[65], want[16];

	for (unsigned i = 0; i < 5000; i++) {
		snprintf(sid, sizeof(sid), "w%u-%u", w->id, i);
		snprintf(want, sizeof(want), "srv%u", w->id);
		if (w->s->ops->put(w->s->st, sid, strlen(sid), "chat", want, 60000, i) != 0)
			w->misses++;
		/* Read back an own entry and one of another thread's. */
		if (!w->s->ops->get(w->s->st, sid, strlen(sid), "chat", server, sizeof(server), i) ||
		    strcmp(server, want) != 0)
			w->misses++;
		snprintf(sid, sizeof(sid), "w%u-%u", (w->id + 1) % 4, i / 2);
		(void)w->s->ops->get(w->s->st, sid, strlen(sid), "chat", server, sizeof(server), i);
		if (i % 1000 == 0)
			(void)w->s->ops->expire(w->s->st, 0);
		if (i % 3 == 0) {
			snprintf(sid, sizeof(sid), "w%u-%u", w->id, i);
			w->s->ops->del(w->s->st, sid, strlen(sid));
		}
	}
	return NULL;
}

static void
test_store_threads(void **state)
{
	struct sid_store *s = sid_store_local_new();
	struct worker_arg args[4];
	pthread_t th[4];

	(void)state;
	assert_non_null(s);
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct worker_arg){ .s = s, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].misses, 0);
	}
	/* Each thread deleted every third of its 5000 entries. */
	assert_int_equal(s->ops->count(s->st), 4 * (5000 - 1667));
	sid_store_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_known_answer),
		cmocka_unit_test(test_token_distinct),
		cmocka_unit_test(test_cookie_find),
		cmocka_unit_test(test_sid_from_target),
		cmocka_unit_test(test_open_packet),
		cmocka_unit_test(test_store_basic),
		cmocka_unit_test(test_store_expire_and_grow),
		cmocka_unit_test(test_store_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
