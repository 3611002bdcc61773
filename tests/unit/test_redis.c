/*
 * Unit tests of the Redis backend without a Redis: a connection that is
 * refused applies on_error (allow, deny, or the local backend, here a fake)
 * synchronously, counts it, and everything is freed (run under ASan). The
 * exchanges with a real redis-server are in tests/integration/redis.test.mjs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "ratelimit.h"
#include "redis.h"

static unsigned local_calls;

/* The fake local backend: denies, and remembers the key it was asked. */
static char local_key[64];

static int
fake_take(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_result *r, rl_done_cb cb, void *arg)
{
	(void)be;
	(void)p;
	(void)cb;
	(void)arg;
	local_calls++;
	snprintf(local_key, sizeof(local_key), "%.*s", (int)keylen, key);
	memset(r, 0, sizeof(*r));
	r->allowed = false;
	r->retry_after_s = 7;
	return 0;
}

/* Connections: the fake counts nothing and says no, like fake_take. */
static int
fake_acquire(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg)
{
	*hold = NULL;
	return fake_take(be, p, key, keylen, r, cb, arg);
}

static void
fake_release(void *be, struct rl_hold *hold)
{
	(void)be;
	assert_null(hold);
}

static void
fake_cancel(void *be, void *arg)
{
	(void)be;
	(void)arg;
}

static const struct rl_backend_ops fake_ops = {
	.take = fake_take, .acquire = fake_acquire, .release = fake_release, .cancel = fake_cancel,
};

static void
never_cb(void *arg, const struct rl_result *r)
{
	(void)arg;
	(void)r;
	fail_msg("no callback expected: Redis is down, the answer is synchronous");
}

/* A port nothing listens on: bind port 0, note it, close. */
static int
closed_port(void)
{
	struct event_base *b = event_base_new();
	evutil_socket_t fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int port;

	assert_non_null(b);
	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	evutil_closesocket(fd);
	event_base_free(b);
	return port;
}

static void
run_down(unsigned on_error, bool want_allowed, bool want_local)
{
	struct config cfg;
	struct rl_policy p = {
		.name = "lim", .rate = 10, .per_s = 1, .burst = 0, .t_us = 100000, .tau_us = 0,
	};
	struct event_base *base = event_base_new();
	struct timeval tv = { .tv_sec = 0, .tv_usec = 50 * 1000 };
	struct rl_redis_counters before, after;
	struct rl_result r;
	struct rl_redis *rr;
	char addr[32];

	assert_non_null(base);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
	cfg.redis_on = true;
	cfg.redis.address = addr;
	cfg.redis.prefix = "unit:";
	cfg.redis.timeout_ms = 5;
	cfg.redis.on_error = on_error;
	cfg.redis.lease_max = 64;
	rr = rl_redis_new(base, &cfg, 0, &fake_ops, NULL);
	assert_non_null(rr);
	/* Let the refused connect come back, and the retry be scheduled. */
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);

	local_calls = 0;
	rl_redis_counters(&before);
	for (int i = 0; i < 3; i++) {
		memset(&r, 0xff, sizeof(r));
		assert_int_equal(rl_redis_ops.take(rr, &p, "10.0.0.1", 8, &r, never_cb, NULL), 0);
		assert_int_equal(r.allowed, want_allowed);
		if (!want_allowed)
			assert_true(r.retry_after_s >= 1);
	}
	rl_redis_counters(&after);
	assert_int_equal(after.errors - before.errors, 3);
	assert_int_equal(after.round_trips, before.round_trips);
	assert_int_equal(local_calls, want_local ? 3 : 0);
	if (want_local) {
		/* The local backend gets the client's key, not the Redis key. */
		assert_string_equal(local_key, "10.0.0.1");
		assert_int_equal(r.retry_after_s, 7);
	}
	/* Connections while Redis is down: on_error too, and what it lets
	 * in is held (to be written to Redis once it is back) and released. */
	{
		struct rl_policy c = { .name = "conns", .rate = 1, .kind = RL_KIND_CONNECTIONS };
		struct rl_hold *h[2] = { NULL, NULL };

		local_calls = 0;
		for (int i = 0; i < 2; i++) {
			assert_int_equal(rl_redis_ops.acquire(rr, &c, "10.0.0.2", 8, &h[i], &r,
				never_cb, NULL), 0);
			/* Without Redis, allow lets in beyond the rate. */
			assert_int_equal(r.allowed, want_allowed);
			assert_true(want_allowed ? h[i] != NULL : h[i] == NULL);
		}
		assert_int_equal(local_calls, want_local ? 2 : 0);
		if (want_local)
			assert_string_equal(local_key, "10.0.0.2");
		for (int i = 0; i < 2; i++)
			rl_redis_ops.release(rr, h[i]);
		rl_redis_ops.release(rr, NULL);
	}
	/* Cancelling what is not waiting is harmless. */
	rl_redis_ops.cancel(rr, NULL);
	rl_redis_free(rr);
	event_base_free(base);
}

static void
test_down_allow(void **state)
{
	(void)state;
	run_down(CONFIG_REDIS_ALLOW, true, false);
}

static void
test_down_deny(void **state)
{
	(void)state;
	run_down(CONFIG_REDIS_DENY, false, false);
}

static void
test_down_local(void **state)
{
	(void)state;
	run_down(CONFIG_REDIS_LOCAL, false, true);
}

/* An address that does not split into host and port fails cleanly. */
static void
test_bad_address(void **state)
{
	struct config cfg;
	struct event_base *base = event_base_new();

	(void)state;
	assert_non_null(base);
	memset(&cfg, 0, sizeof(cfg));
	cfg.redis_on = true;
	cfg.redis.address = "no-port";
	cfg.redis.prefix = "unit:";
	cfg.redis.timeout_ms = 5;
	cfg.redis.lease_max = 1;
	assert_null(rl_redis_new(base, &cfg, 0, NULL, NULL));
	rl_redis_free(NULL);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_down_allow),
		cmocka_unit_test(test_down_deny),
		cmocka_unit_test(test_down_local),
		cmocka_unit_test(test_bad_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
