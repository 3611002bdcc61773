/*
 * Unit tests of the Redis backend without a Redis: a connection that is
 * refused applies on_error (allow, deny, or the local backend, here a fake)
 * synchronously, counts it, and everything is freed (run under ASan). The
 * exchanges with a real redis-server are in tests/integration/redis.test.mjs.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "ratelimit.h"
#include "redis.h"
#include "resolve.h"

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

/* A Redis backend on base for address, the fake local backend behind it. */
static struct rl_redis *
redis_at(struct event_base *base, const char *address, unsigned on_error, unsigned lease_max)
{
	struct config cfg;
	struct rl_redis *rr;

	memset(&cfg, 0, sizeof(cfg));
	cfg.redis_on = true;
	cfg.redis.address = (char *)address;
	cfg.redis.prefix = "unit:";
	cfg.redis.timeout_ms = 5;
	cfg.redis.on_error = on_error;
	cfg.redis.lease_max = lease_max;
	rr = rl_redis_new(base, &cfg, 0, &fake_ops, NULL);
	assert_non_null(rr);
	return rr;
}

static void
run_down(unsigned on_error, bool want_allowed, bool want_local)
{
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
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
	rr = redis_at(base, addr, on_error, 64);
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

/*
 * A resolver that takes its time: each question waits for the test to let
 * it go, then fails (NULL answer) or answers the loopback address.
 */
static atomic_int gai_calls, gai_returned;
static atomic_bool gai_release, gai_answer;

static int
slow_gai(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 2 * 1000 * 1000 };
	int rc;

	(void)node;
	atomic_fetch_add(&gai_calls, 1);
	for (int i = 0; i < 2500 && !atomic_load(&gai_release); i++)
		nanosleep(&ts, NULL);
	rc = atomic_load(&gai_answer) ? getaddrinfo("127.0.0.1", service, hints, res) : EAI_NONAME;
	atomic_fetch_add(&gai_returned, 1);
	return rc;
}

static void
run_for_ms(struct event_base *base, long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Run the loop until *flag reaches want, for at most 5 s. */
static void
run_until(struct event_base *base, atomic_int *flag, int want)
{
	for (int i = 0; i < 500 && atomic_load(flag) < want; i++)
		run_for_ms(base, 10);
	assert_true(atomic_load(flag) >= want);
}

/*
 * A Redis named by a host name: the question goes to a thread, and while
 * the resolver keeps it waiting the worker's loop runs and its requests are
 * answered by on_error. A failed question is asked again after the
 * back-off, and so is a name whose address refuses; freeing the backend
 * with a question open leaves the thread to finish alone (run under ASan).
 */
static void
test_resolve_off_loop(void **state)
{
	struct rl_policy p = { .name = "lim", .rate = 10, .per_s = 1, .t_us = 100000 };
	struct event_base *base = event_base_new();
	struct rl_result r;
	struct rl_redis *rr;
	char addr[64];
	int ticks = 0;

	(void)state;
	assert_non_null(base);
	resolve_getaddrinfo = slow_gai;
	atomic_store(&gai_calls, 0);
	atomic_store(&gai_returned, 0);
	atomic_store(&gai_release, false);
	atomic_store(&gai_answer, false);
	snprintf(addr, sizeof(addr), "redis.unit.invalid:%d", closed_port());
	rr = redis_at(base, addr, CONFIG_REDIS_ALLOW, 8);
	/* The loop turns while the question waits. */
	for (; ticks < 5; ticks++)
		run_for_ms(base, 10);
	assert_int_equal(atomic_load(&gai_calls), 1);
	assert_int_equal(atomic_load(&gai_returned), 0);
	memset(&r, 0xff, sizeof(r));
	assert_int_equal(rl_redis_ops.take(rr, &p, "10.0.0.9", 8, &r, never_cb, NULL), 0);
	assert_true(r.allowed);
	/* No such name: asked again after the back-off. */
	atomic_store(&gai_release, true);
	run_until(base, &gai_calls, 2);
	/* An address that refuses: asked again too, not kept. */
	atomic_store(&gai_answer, true);
	run_until(base, &gai_calls, 4);
	/* A question open when the backend goes. */
	atomic_store(&gai_release, false);
	run_until(base, &gai_calls, atomic_load(&gai_returned) + 1);
	rl_redis_free(rr);
	atomic_store(&gai_release, true);
	for (int i = 0; i < 500 && atomic_load(&gai_returned) < atomic_load(&gai_calls); i++)
		run_for_ms(base, 10);
	assert_int_equal(atomic_load(&gai_returned), atomic_load(&gai_calls));
	/* The thread lets go of the question right after its resolver returns. */
	run_for_ms(base, 50);
	resolve_getaddrinfo = getaddrinfo;
	event_base_free(base);
}

/* The first address each two-address resolver answers, then 127.0.0.1. */
static const char *first_addr;

static int
two_gai(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	struct addrinfo *second = NULL;
	int rc;

	(void)node;
	atomic_fetch_add(&gai_calls, 1);
	rc = getaddrinfo(first_addr, service, hints, res);
	if (rc == 0 && (rc = getaddrinfo("127.0.0.1", service, hints, &second)) == 0)
		(*res)->ai_next = second;
	atomic_fetch_add(&gai_returned, 1);
	return rc;
}

/*
 * A backend whose name resolves to first, then to 127.0.0.1 where a
 * listener waits; *lfd is that listener (non-blocking).
 */
static struct rl_redis *
redis_two_addresses(struct event_base *base, const char *first, evutil_socket_t *lfd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char addr[64];

	*lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*lfd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(*lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(*lfd, 4), 0);
	assert_int_equal(getsockname(*lfd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(evutil_make_socket_nonblocking(*lfd), 0);
	first_addr = first;
	resolve_getaddrinfo = two_gai;
	atomic_store(&gai_calls, 0);
	atomic_store(&gai_returned, 0);
	snprintf(addr, sizeof(addr), "redis.unit.invalid:%d", ntohs(sin.sin_port));
	return redis_at(base, addr, CONFIG_REDIS_ALLOW, 8);
}

static void
two_addresses_done(struct event_base *base, struct rl_redis *rr, evutil_socket_t lfd,
		evutil_socket_t cfd)
{
	assert_int_equal(atomic_load(&gai_calls), 1);
	rl_redis_free(rr);
	evutil_closesocket(cfd);
	evutil_closesocket(lfd);
	resolve_getaddrinfo = getaddrinfo;
	event_base_free(base);
}

/*
 * A name with several addresses: one that refuses (127.0.0.2, where
 * nothing listens) is passed over for the next, without asking the name
 * again.
 */
static void
test_resolve_next_address(void **state)
{
	struct event_base *base = event_base_new();
	evutil_socket_t lfd, cfd = -1;
	struct rl_redis *rr;

	(void)state;
	assert_non_null(base);
	rr = redis_two_addresses(base, "127.0.0.2", &lfd);
	for (int i = 0; i < 2500 && cfd < 0; i++) {
		run_for_ms(base, 2);
		cfd = accept(lfd, NULL, NULL);
	}
	assert_true(cfd >= 0);
	two_addresses_done(base, rr, lfd, cfd);
}

/*
 * An address whose connect() fails within redisAsyncConnect
 * (255.255.255.255: ENETUNREACH) is passed over at once too, not after the
 * back-off (100 ms): a few turns of the loop that do not wait are enough to
 * be connected to the next one.
 */
static void
test_resolve_next_address_sync_failure(void **state)
{
	struct event_base *base = event_base_new();
	evutil_socket_t lfd, cfd = -1;
	struct rl_redis *rr;

	(void)state;
	assert_non_null(base);
	rr = redis_two_addresses(base, "255.255.255.255", &lfd);
	/* Wait for the answer without turning the loop. */
	for (int i = 0; i < 2500 && atomic_load(&gai_returned) == 0; i++) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	/* The thread lets go just after; then turns that never wait: the
	 * answer, the failed connect, the next address. */
	for (int i = 0; i < 200 && cfd < 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		cfd = accept(lfd, NULL, NULL);
	}
	if (cfd < 0)
		fail_msg("the next address was not tried at once (the back-off?)");
	two_addresses_done(base, rr, lfd, cfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_down_allow),
		cmocka_unit_test(test_down_deny),
		cmocka_unit_test(test_down_local),
		cmocka_unit_test(test_bad_address),
		cmocka_unit_test(test_resolve_off_loop),
		cmocka_unit_test(test_resolve_next_address),
		cmocka_unit_test(test_resolve_next_address_sync_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
