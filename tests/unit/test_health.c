/*
 * Health tests: the pure decisions walked through time (rise and fall,
 * flap hold-down with its back-off and reset, ejection length and cap,
 * the pool's ejection limit also under racing threads, slow-start
 * weights, answer checks, check spacing); the passive reports on a fake
 * server; one active check of each kind against a canned server on
 * loopback; and health.c's records across a reload, with real
 * configuration generations.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "health.h"
#include "health_check.h"
#include "health_state.h"
#include "pool.h"
#include "server.h"

static const struct config_health check_defaults = {
	.type = CONFIG_CHECK_HTTP, .method = "GET", .path = "/",
	.status_min = 200, .status_max = 399,
	.interval_ms = 2000, .timeout_ms = 1000, .rise = 2, .fall = 3, .jitter_pct = 10,
	.flap_changes = 4, .flap_window_ms = 60000, .flap_hold_ms = 10000,
	.flap_hold_max_ms = 300000,
};

static const struct config_passive passive_defaults = {
	.connect_failures = 3, .status_5xx = 0, .base_ejection_ms = 10000,
	.max_ejection_ms = 300000, .max_ejected_pct = 50,
};

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ verdicts */

static void
test_rise_fall(void **state)
{
	struct health_verdict v;

	(void)state;
	health_verdict_init(&v);
	assert_true(v.up);
	/* fall = 3: two failures leave it up, a pass between starts over. */
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_SAME);
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_SAME);
	assert_int_equal(health_verdict_add(&v, true, 2, 3), HEALTH_SAME);
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_SAME);
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_SAME);
	assert_true(v.up);
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_WENT_DOWN);
	assert_false(v.up);
	/* More failures change nothing. */
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_SAME);
	/* rise = 2: a failure between two passes starts over. */
	assert_int_equal(health_verdict_add(&v, true, 2, 3), HEALTH_SAME);
	assert_int_equal(health_verdict_add(&v, false, 2, 3), HEALTH_SAME);
	assert_int_equal(health_verdict_add(&v, true, 2, 3), HEALTH_SAME);
	assert_false(v.up);
	assert_int_equal(health_verdict_add(&v, true, 2, 3), HEALTH_WENT_UP);
	assert_true(v.up);
	assert_int_equal(health_verdict_add(&v, true, 2, 3), HEALTH_SAME);
	/* rise = fall = 1: every change of result is a change of verdict. */
	assert_int_equal(health_verdict_add(&v, false, 1, 1), HEALTH_WENT_DOWN);
	assert_int_equal(health_verdict_add(&v, true, 1, 1), HEALTH_WENT_UP);
}

/* ---------------------------------------------------------------- flaps */

/* Four changes a second apart from t; returns what the fourth did. */
static unsigned
flap_four(struct health_flap *f, uint64_t t, const struct config_health *h)
{
	for (int i = 0; i < 3; i++)
		assert_int_equal(health_flap_change(f, t + (uint64_t)i * 1000, h), 0);
	return health_flap_change(f, t + 3000, h);
}

static void
test_flap_hold(void **state)
{
	struct config_health h = check_defaults;
	static const unsigned want[] = { 20000, 40000, 80000, 160000, 300000, 300000 };
	struct health_flap f;
	uint64_t t = 1000000, end;

	(void)state;
	memset(&f, 0, sizeof(f));
	assert_int_equal(health_flap_check(&f, t), HEALTH_NOT_HELD);
	/* Four changes within the minute: held for flap_hold. */
	assert_int_equal(flap_four(&f, t, &h), 10000);
	assert_int_equal(health_flap_check(&f, t + 3000), HEALTH_HELD);
	/* Changes during the hold do not count towards the next one. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(health_flap_change(&f, t + 4000 + (uint64_t)i * 100, &h), 0);
	assert_int_equal(health_flap_check(&f, t + 12999), HEALTH_HELD);
	assert_int_equal(health_flap_check(&f, t + 13000), HEALTH_HOLD_OVER);
	assert_int_equal(health_flap_check(&f, t + 13001), HEALTH_NOT_HELD);
	/* Flapping again soon after each hold: each hold twice the last, up
	 * to the cap. */
	end = t + 13000;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		t = end + 1000;
		assert_int_equal(flap_four(&f, t, &h), want[i]);
		end = t + 3000 + want[i];
		assert_int_equal(health_flap_check(&f, end - 1), HEALTH_HELD);
		assert_int_equal(health_flap_check(&f, end), HEALTH_HOLD_OVER);
	}
	/* Flapping again a little less than flap_hold_max after the last
	 * hold: still the cap; quiet for flap_hold_max: starts over. */
	t = end + 299000 - 3000;
	assert_int_equal(flap_four(&f, t, &h), 300000);
	end = t + 3000 + 300000;
	assert_int_equal(health_flap_check(&f, end), HEALTH_HOLD_OVER);
	t = end + 300000;
	assert_int_equal(flap_four(&f, t, &h), 10000);
}

static void
test_flap_window(void **state)
{
	struct config_health h = check_defaults;
	struct health_flap f;
	uint64_t t = 5000;

	(void)state;
	memset(&f, 0, sizeof(f));
	/* Changes 30 s apart: never four within a minute. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(health_flap_change(&f, t + (uint64_t)i * 30000, &h), 0);
	/* Three within the window plus one old one: not yet. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(health_flap_change(&f, t, &h), 0);
	assert_int_equal(health_flap_change(&f, t + 70000, &h), 0);
	assert_int_equal(health_flap_change(&f, t + 71000, &h), 0);
	assert_int_equal(health_flap_change(&f, t + 72000, &h), 0);
	assert_int_equal(health_flap_change(&f, t + 73000, &h), 10000);
	/* flap_changes = 0: no flap detection at all. */
	h.flap_changes = 0;
	memset(&f, 0, sizeof(f));
	for (int i = 0; i < 100; i++)
		assert_int_equal(health_flap_change(&f, t + (uint64_t)i, &h), 0);
	assert_int_equal(health_flap_check(&f, t + 100), HEALTH_NOT_HELD);
	/* More changes than the ring holds still count right. */
	h.flap_changes = HEALTH_FLAP_RING;
	memset(&f, 0, sizeof(f));
	for (int i = 0; i < HEALTH_FLAP_RING - 1; i++)
		assert_int_equal(health_flap_change(&f, t + (uint64_t)i * 10, &h), 0);
	assert_int_equal(health_flap_change(&f, t + 10000, &h), 10000);
}

/* ------------------------------------------------------------ ejections */

static void
test_ejection_length(void **state)
{
	struct config_passive p = passive_defaults;

	(void)state;
	assert_int_equal(health_ejection_ms(&p, 0), 10000);
	assert_int_equal(health_ejection_ms(&p, 1), 10000);
	assert_int_equal(health_ejection_ms(&p, 2), 20000);
	assert_int_equal(health_ejection_ms(&p, 29), 290000);
	assert_int_equal(health_ejection_ms(&p, 30), 300000);
	assert_int_equal(health_ejection_ms(&p, 31), 300000);
	assert_int_equal(health_ejection_ms(&p, 4000000000u), 300000);
	p.base_ejection_ms = 24 * 3600 * 1000;
	p.max_ejection_ms = 24 * 3600 * 1000;
	assert_int_equal(health_ejection_ms(&p, 4000000000u), 24 * 3600 * 1000);

	assert_int_equal(health_max_ejected(4, 50), 2);
	assert_int_equal(health_max_ejected(3, 50), 1);
	assert_int_equal(health_max_ejected(1, 50), 0);
	assert_int_equal(health_max_ejected(10, 100), 10);
	assert_int_equal(health_max_ejected(10, 0), 0);
	assert_int_equal(health_max_ejected(7, 30), 2);
}

static void
sh_init(struct server_health *sh, struct health_pool *hp)
{
	memset(sh, 0, sizeof(*sh));
	atomic_init(&sh->check_up, true);
	sh->pool = hp;
}

static void
test_eject_cap(void **state)
{
	struct config_passive p = passive_defaults;
	struct health_pool hp;
	struct server_health s[3];
	uint64_t t = 50000;

	(void)state;
	atomic_init(&hp.ejected, 0);
	atomic_init(&hp.max_ejected, health_max_ejected(3, 50));
	for (int i = 0; i < 3; i++)
		sh_init(&s[i], &hp);
	assert_int_equal(health_eject(&s[0], &p, t), 10000);
	assert_true(atomic_load(&s[0].ejected));
	assert_int_equal(atomic_load(&s[0].ejected_until_ms), t + 10000);
	assert_int_equal(atomic_load(&s[0].ejections), 1);
	assert_int_equal(atomic_load(&hp.ejected), 1);
	/* Already ejected; and the pool's one slot is taken. */
	assert_int_equal(health_eject(&s[0], &p, t), 0);
	assert_int_equal(health_eject(&s[1], &p, t), 0);
	assert_false(atomic_load(&s[1].ejected));
	assert_int_equal(atomic_load(&hp.ejected), 1);
	/* Not over before its time; then the slot is free again. */
	atomic_store(&s[0].connect_failures, 7);
	assert_false(health_eject_over(&s[0], t + 9999));
	assert_true(health_eject_over(&s[0], t + 10000));
	assert_false(atomic_load(&s[0].ejected));
	assert_int_equal(atomic_load(&s[0].connect_failures), 0);
	assert_int_equal(atomic_load(&hp.ejected), 0);
	assert_false(health_eject_over(&s[0], t + 20000));
	assert_int_equal(health_eject(&s[1], &p, t + 10000), 10000);
	assert_true(health_eject_over(&s[1], t + 20000));
	/* Ejected again: twice as long (the level stays until forgiven). */
	assert_int_equal(health_eject(&s[0], &p, t + 20000), 20000);
	assert_int_equal(atomic_load(&s[0].ejection_level), 2);
	assert_true(health_eject_over(&s[0], t + 40000));
	/* A worker between its two stores: not ended by the main thread. */
	atomic_store(&s[2].ejected, true);
	atomic_store(&hp.ejected, 1);
	assert_false(health_eject_over(&s[2], UINT64_MAX));
	/* max_ejected 0: never. */
	atomic_store(&hp.max_ejected, 0);
	assert_int_equal(health_eject(&s[1], &p, t), 0);
}

#define RACE_THREADS 8
#define RACE_SERVERS 10

struct race {
	struct health_pool hp;
	struct server_health s[RACE_SERVERS];
	struct config_passive p;
	atomic_uint won;
	atomic_bool go;
};

static void *
race_thread(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->go))
		;
	for (int round = 0; round < 1000; round++)
		for (int i = 0; i < RACE_SERVERS; i++)
			if (health_eject(&r->s[i], &r->p, 1000) > 0)
				atomic_fetch_add(&r->won, 1);
	return NULL;
}

static void
test_eject_race(void **state)
{
	struct race *r = calloc(1, sizeof(*r));
	pthread_t th[RACE_THREADS];
	unsigned ejected = 0;

	(void)state;
	assert_non_null(r);
	r->p = passive_defaults;
	atomic_init(&r->hp.ejected, 0);
	atomic_init(&r->hp.max_ejected, 3);
	for (int i = 0; i < RACE_SERVERS; i++)
		sh_init(&r->s[i], &r->hp);
	for (int i = 0; i < RACE_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_thread, r), 0);
	atomic_store(&r->go, true);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	/* Exactly max_ejected servers ejected, each by one thread. */
	for (int i = 0; i < RACE_SERVERS; i++)
		ejected += atomic_load(&r->s[i].ejected);
	assert_int_equal(atomic_load(&r->won), 3);
	assert_int_equal(ejected, 3);
	assert_int_equal(atomic_load(&r->hp.ejected), 3);
	free(r);
}

/* ------------------------------------------------------------ slow start */

static void
test_slow_start(void **state)
{
	uint64_t t = 100000;
	unsigned prev = 0;

	(void)state;
	assert_int_equal(health_slow_start_weight(100, t, t, 10000), 10);
	assert_int_equal(health_slow_start_weight(100, t, t + 1000, 10000), 19);
	assert_int_equal(health_slow_start_weight(100, t, t + 5000, 10000), 55);
	assert_int_equal(health_slow_start_weight(100, t, t + 9999, 10000), 99);
	assert_int_equal(health_slow_start_weight(100, t, t + 10000, 10000), 100);
	assert_int_equal(health_slow_start_weight(100, t, t + 99999, 10000), 100);
	/* Off, or not ramping: the full weight. */
	assert_int_equal(health_slow_start_weight(100, 0, t, 10000), 100);
	assert_int_equal(health_slow_start_weight(100, t, t, 0), 100);
	/* Small weights: never below 1, never above the weight. */
	assert_int_equal(health_slow_start_weight(1, t, t, 10000), 1);
	assert_int_equal(health_slow_start_weight(1, t, t + 5000, 10000), 1);
	assert_int_equal(health_slow_start_weight(5, t, t, 10000), 1);
	assert_int_equal(health_slow_start_weight(5, t, t + 5000, 10000), 3);
	assert_int_equal(health_slow_start_weight(1000, t, t, 60000), 100);
	/* A clock read just before since (another thread's): the floor. */
	assert_int_equal(health_slow_start_weight(100, t, t - 1, 10000), 10);
	/* Never goes down as time goes on. */
	for (uint64_t ms = 0; ms <= 12000; ms += 250) {
		unsigned w = health_slow_start_weight(37, t, t + ms, 10000);

		assert_true(w >= prev && w >= 3 && w <= 37);
		prev = w;
	}
	assert_int_equal(prev, 37);
}

/* ------------------------------------------------------------- answers */

static void
test_answers(void **state)
{
	struct config_health h = check_defaults;
	char why[160];
	static const char open[] = "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],"
		"\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}";

	(void)state;
	assert_true(health_answer_ok(&h, 200, "", 0, why, sizeof(why)));
	assert_true(health_answer_ok(&h, 399, "", 0, why, sizeof(why)));
	assert_false(health_answer_ok(&h, 400, "", 0, why, sizeof(why)));
	assert_string_equal(why, "status 400");
	assert_false(health_answer_ok(&h, 199, "", 0, why, sizeof(why)));
	h.status_min = h.status_max = 204;
	assert_true(health_answer_ok(&h, 204, "", 0, why, sizeof(why)));
	assert_false(health_answer_ok(&h, 200, "", 0, why, sizeof(why)));
	h.status_min = 200;
	h.status_max = 299;
	h.body = "\"status\":\"ok\"";
	assert_true(health_answer_ok(&h, 200, "{\"status\":\"ok\"}", 15, why, sizeof(why)));
	assert_false(health_answer_ok(&h, 200, "{\"status\":\"degraded\"}", 21, why, sizeof(why)));
	assert_string_equal(why, "the body does not contain \"\"status\":\"ok\"\"");
	/* Not past the length given (the body is not NUL-terminated). */
	assert_false(health_answer_ok(&h, 200, "{\"status\":\"ok\"}", 10, why, sizeof(why)));

	h.type = CONFIG_CHECK_SOCKETIO;
	h.body = NULL;
	assert_true(health_answer_ok(&h, 200, open, strlen(open), why, sizeof(why)));
	assert_false(health_answer_ok(&h, 400, "{\"code\":0}", 10, why, sizeof(why)));
	assert_string_equal(why, "status 400 to the Engine.IO handshake");
	assert_false(health_answer_ok(&h, 200, "0{\"upgrades\":[]}", 16, why, sizeof(why)));
	assert_string_equal(why, "the Engine.IO open packet has no sid");
	assert_false(health_answer_ok(&h, 200, "40", 2, why, sizeof(why)));
	assert_false(health_answer_ok(&h, 200, "<html>", 6, why, sizeof(why)));
	assert_string_equal(why, "the answer is not an Engine.IO open packet");
	assert_false(health_answer_ok(&h, 200, "", 0, why, sizeof(why)));
}

static void
test_next_delay(void **state)
{
	struct config_health h = check_defaults;
	unsigned lo = UINT32_MAX, hi = 0;

	(void)state;
	assert_int_equal(health_next_delay(&h, 0), 1800);
	assert_int_equal(health_next_delay(&h, 400), 2200);
	assert_int_equal(health_next_delay(&h, 401), 1800);
	for (uint64_t r = 1; r < 100000; r = r * 7 + 13) {
		unsigned d = health_next_delay(&h, r * 0x9e3779b97f4a7c15ULL);

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	assert_true(lo >= 1800 && hi <= 2200 && hi > lo);
	h.jitter_pct = 0;
	assert_int_equal(health_next_delay(&h, 12345), 2000);
	h.jitter_pct = 50;
	h.interval_ms = 100;
	assert_int_equal(health_next_delay(&h, 0), 50);
	assert_int_equal(health_next_delay(&h, 100), 150);
}

/* ------------------------------------------------------------- passive */

/* A server of a one-server pool, with the health records health.c would give it. */
struct fake {
	struct config_pool pool;
	struct config_server srv;
	struct server_rt rt;
	struct server_health sh;
	struct health_pool hp;
};

static void
fake_init(struct fake *f, unsigned max_ejected)
{
	memset(f, 0, sizeof(*f));
	f->pool.name = "p";
	f->pool.servers = &f->srv;
	f->pool.nservers = 1;
	f->pool.passive = passive_defaults;
	f->pool.health = check_defaults;
	f->srv.name = "s";
	f->srv.address = "127.0.0.1:1";
	f->srv.weight = 5;
	f->srv.pool = &f->pool;
	f->srv.rt = &f->rt;
	pthread_mutex_init(&f->rt.addr_lock, NULL);
	atomic_init(&f->rt.weight_now, 5);
	atomic_init(&f->rt.present, true);
	f->rt.health = &f->sh;
	atomic_init(&f->hp.ejected, 0);
	atomic_init(&f->hp.max_ejected, max_ejected);
	sh_init(&f->sh, &f->hp);
}

static void
fake_free(struct fake *f)
{
	pthread_mutex_destroy(&f->rt.addr_lock);
}

static void
test_passive_connect(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, 1);
	health_passive_connect_failed(&f.srv);
	health_passive_connect_failed(&f.srv);
	/* A success in between starts the count over. */
	health_passive_connect_ok(&f.srv);
	assert_int_equal(atomic_load(&f.sh.connect_failures), 0);
	health_passive_connect_failed(&f.srv);
	health_passive_connect_failed(&f.srv);
	assert_false(atomic_load(&f.sh.ejected));
	assert_int_equal(atomic_load(&f.rt.weight_now), 5);
	health_passive_connect_failed(&f.srv);
	assert_true(atomic_load(&f.sh.ejected));
	assert_int_equal(atomic_load(&f.rt.weight_now), 0);
	assert_int_equal(atomic_load(&f.hp.ejected), 1);
	assert_int_equal(atomic_load(&f.sh.ejections), 1);
	/* In flight on the ejected server: counted, no second ejection. */
	health_passive_connect_failed(&f.srv);
	assert_int_equal(atomic_load(&f.sh.ejections), 1);
	assert_int_equal(atomic_load(&f.hp.ejected), 1);
	fake_free(&f);

	/* connect_failures = 0: off. */
	fake_init(&f, 1);
	f.pool.passive.connect_failures = 0;
	for (int i = 0; i < 10; i++)
		health_passive_connect_failed(&f.srv);
	assert_false(atomic_load(&f.sh.ejected));
	assert_int_equal(atomic_load(&f.sh.connect_failures), 0);
	/* No health record yet (a generation before health_reload()): ignored. */
	f.pool.passive.connect_failures = 1;
	f.rt.health = NULL;
	health_passive_connect_failed(&f.srv);
	health_passive_connect_ok(&f.srv);
	health_passive_status(&f.srv, 500);
	assert_int_equal(atomic_load(&f.rt.weight_now), 5);
	fake_free(&f);

	/* The pool's cap (one server of one at 50%: none). */
	fake_init(&f, 0);
	for (int i = 0; i < 5; i++)
		health_passive_connect_failed(&f.srv);
	assert_false(atomic_load(&f.sh.ejected));
	assert_int_equal(atomic_load(&f.rt.weight_now), 5);
	fake_free(&f);
}

static void
test_passive_5xx(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, 1);
	/* status_5xx = 0 (the default): 5xx answers count for nothing. */
	for (int i = 0; i < 10; i++)
		health_passive_status(&f.srv, 503);
	assert_false(atomic_load(&f.sh.ejected));
	f.pool.passive.status_5xx = 2;
	health_passive_status(&f.srv, 500);
	health_passive_status(&f.srv, 404);
	health_passive_status(&f.srv, 502);
	health_passive_status(&f.srv, 101);
	health_passive_status(&f.srv, 504);
	assert_false(atomic_load(&f.sh.ejected));
	health_passive_status(&f.srv, 599);
	assert_true(atomic_load(&f.sh.ejected));
	assert_int_equal(atomic_load(&f.rt.weight_now), 0);
	assert_int_equal(atomic_load(&f.sh.ejected_until_ms) > 0, 1);
	fake_free(&f);
}

static void
test_retry_after(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, 0);
	assert_int_equal(health_retry_after_s(NULL), 1);
	assert_int_equal(health_retry_after_s(&f.pool), 1);
	f.pool.health_on = true;
	assert_int_equal(health_retry_after_s(&f.pool), 4);	/* 2s x rise 2 */
	f.pool.health.interval_ms = 100;
	f.pool.health.rise = 1;
	assert_int_equal(health_retry_after_s(&f.pool), 1);
	f.pool.health.interval_ms = 1500;
	assert_int_equal(health_retry_after_s(&f.pool), 2);
	fake_free(&f);
}

/* ------------------------------------------------- checks over loopback */

/*
 * A server on loopback that reads one request head and answers with
 * canned bytes (NULL: never answers), then closes.
 */
struct canned {
	struct event_base *base;
	int lfd;
	unsigned port;
	const char *answer;
	char request[2048];
	size_t reqlen;
	struct event *lev;
	struct event *cev;
	int cfd;
};

struct outcome {
	int done;
	bool passed;
	char why[256];
};

static void
canned_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct canned *cs = arg;
	ssize_t n;

	(void)what;
	n = read(fd, cs->request + cs->reqlen, sizeof(cs->request) - 1 - cs->reqlen);
	if (n <= 0)
		return;
	cs->reqlen += (size_t)n;
	cs->request[cs->reqlen] = '\0';
	if (strstr(cs->request, "\r\n\r\n") == NULL || cs->answer == NULL)
		return;
	assert_int_equal(write(fd, cs->answer, strlen(cs->answer)), (ssize_t)strlen(cs->answer));
	event_del(cs->cev);
	close(fd);
	cs->cfd = -1;
}

static void
canned_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct canned *cs = arg;
	int c = accept(fd, NULL, NULL);

	(void)what;
	if (c < 0)
		return;
	cs->cfd = c;
	cs->cev = event_new(cs->base, c, EV_READ | EV_PERSIST, canned_read_cb, cs);
	event_add(cs->cev, NULL);
}

static void
canned_start(struct canned *cs, struct event_base *base, const char *answer)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	memset(cs, 0, sizeof(*cs));
	cs->base = base;
	cs->answer = answer;
	cs->cfd = -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cs->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(cs->lfd >= 0);
	assert_int_equal(bind(cs->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(cs->lfd, 8), 0);
	assert_int_equal(getsockname(cs->lfd, (struct sockaddr *)&sin, &len), 0);
	cs->port = ntohs(sin.sin_port);
	cs->lev = event_new(base, cs->lfd, EV_READ | EV_PERSIST, canned_accept_cb, cs);
	event_add(cs->lev, NULL);
}

static void
canned_stop(struct canned *cs)
{
	if (cs->cev != NULL)
		event_free(cs->cev);
	if (cs->cfd >= 0)
		close(cs->cfd);
	event_free(cs->lev);
	close(cs->lfd);
}

static void
outcome_cb(void *arg, bool passed, const char *why)
{
	struct outcome *o = arg;

	o->done++;
	o->passed = passed;
	snprintf(o->why, sizeof(o->why), "%s", why);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until the check reports or ms pass. */
static void
wait_outcome(struct event_base *base, struct outcome *o, int ms)
{
	long long end = mono_ms() + ms;
	struct event *wake = event_new(base, -1, EV_PERSIST, wake_cb, NULL);
	struct timeval tv = { 0, 5000 };

	event_add(wake, &tv);
	while (o->done == 0 && mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wake);
}

/* One check of a fake server at port with h; the outcome. */
static struct outcome
check_once(struct event_base *base, unsigned port, const struct config_health *h)
{
	struct fake f;
	struct sockaddr_in *sin;
	struct outcome o = { 0 };
	struct health_check *hc;

	fake_init(&f, 0);
	f.pool.health = *h;
	sin = (struct sockaddr_in *)&f.rt.addr;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f.rt.addrlen = sizeof(*sin);
	hc = health_check_start(base, &f.srv, outcome_cb, &o);
	assert_non_null(hc);
	wait_outcome(base, &o, 3000);
	assert_int_equal(o.done, 1);
	fake_free(&f);
	return o;
}

static void
test_check_http(void **state)
{
	struct event_base *base = event_base_new();
	struct config_health h = check_defaults;
	struct canned cs;
	struct outcome o;

	(void)state;
	h.path = "/healthz?deep=1";
	h.host = "api.internal";
	canned_start(&cs, base, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	o = check_once(base, cs.port, &h);
	assert_true(o.passed);
	assert_non_null(strstr(cs.request, "GET /healthz?deep=1 HTTP/1.1\r\n"));
	assert_non_null(strstr(cs.request, "\r\nHost: api.internal\r\n"));
	assert_non_null(strstr(cs.request, "\r\nConnection: close\r\n"));
	canned_stop(&cs);

	canned_start(&cs, base, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
	o = check_once(base, cs.port, &h);
	assert_false(o.passed);
	assert_string_equal(o.why, "status 503");
	canned_stop(&cs);

	/* A body check reads a chunked body through to its end, dechunked. */
	h.body = "ready";
	h.method = "POST";
	canned_start(&cs, base, "HTTP/1.1 100 Continue\r\n\r\n"
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nrea\r\n2\r\ndy\r\n0\r\n\r\n");
	o = check_once(base, cs.port, &h);
	assert_true(o.passed);
	assert_non_null(strstr(cs.request, "POST /healthz?deep=1 HTTP/1.1\r\n"));
	canned_stop(&cs);

	/* A body ended by the close. */
	canned_start(&cs, base, "HTTP/1.0 200 OK\r\n\r\nnot yet");
	o = check_once(base, cs.port, &h);
	assert_false(o.passed);
	assert_string_equal(o.why, "the body does not contain \"ready\"");
	canned_stop(&cs);

	canned_start(&cs, base, "garbage\r\n\r\n");
	o = check_once(base, cs.port, &h);
	assert_false(o.passed);
	assert_string_equal(o.why, "malformed answer head");
	canned_stop(&cs);
	event_base_free(base);
}

static void
test_check_socketio(void **state)
{
	struct event_base *base = event_base_new();
	struct config_health h = check_defaults;
	struct canned cs;
	struct outcome o;

	(void)state;
	h.type = CONFIG_CHECK_SOCKETIO;
	h.path = "/socket.io/";
	canned_start(&cs, base, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 30\r\n\r\n"
		"0{\"sid\":\"abc\",\"upgrades\":[]}  ");
	o = check_once(base, cs.port, &h);
	assert_true(o.passed);
	assert_non_null(strstr(cs.request, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"));
	/* No Host set and no TLS name: the server's address. */
	assert_non_null(strstr(cs.request, "\r\nHost: 127.0.0.1:1\r\n"));
	canned_stop(&cs);

	canned_start(&cs, base, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
	o = check_once(base, cs.port, &h);
	assert_false(o.passed);
	assert_string_equal(o.why, "status 400 to the Engine.IO handshake");
	canned_stop(&cs);
	event_base_free(base);
}

static void
test_check_tcp_and_timeout(void **state)
{
	struct event_base *base = event_base_new();
	struct config_health h = check_defaults;
	struct canned cs;
	struct outcome o;
	long long t0;
	unsigned port;

	(void)state;
	h.type = CONFIG_CHECK_TCP;
	canned_start(&cs, base, NULL);
	port = cs.port;
	o = check_once(base, port, &h);
	assert_true(o.passed);
	canned_stop(&cs);
	/* Nothing listens there now. */
	o = check_once(base, port, &h);
	assert_false(o.passed);
	assert_non_null(strstr(o.why, "failed: Connection refused"));

	/* An http check of a server that never answers times out. */
	h.type = CONFIG_CHECK_HTTP;
	h.timeout_ms = 200;
	canned_start(&cs, base, NULL);
	t0 = mono_ms();
	o = check_once(base, cs.port, &h);
	assert_false(o.passed);
	assert_string_equal(o.why, "timed out after 200 ms waiting for an answer");
	assert_true(mono_ms() - t0 >= 190);
	canned_stop(&cs);
	event_base_free(base);
}

/* ------------------------------------------------ records and reloads */

static char dir[64];

static struct config *
load(const char *text)
{
	char path[128], err[512] = "";
	struct config *cfg;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/h.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	cfg = config_load(path, err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(pool_attach(cfg, NULL), 0);
	return cfg;
}

static unsigned
weight(const struct config *cfg, size_t server)
{
	return atomic_load(&cfg->pools[0].servers[server].rt->weight_now) / SERVER_WEIGHT_SCALE;
}

#define RELOAD_CONF(extra) \
	"listener \"l\" { address = \"127.0.0.1:1\" }\n" \
	"pool \"p\" {\n" \
	"  slow_start = 10s\n" \
	"  passive { connect_failures = 2 base_ejection = 100ms max_ejected = 100% }\n" \
	"  server \"a\" { address = \"127.0.0.1:2\" weight = 100 }\n" \
	"  server \"b\" { address = \"127.0.0.1:3\" weight = 100 }\n" \
	extra \
	"}\n"

static void
test_reload_keeps_state(void **state)
{
	struct event_base *base = event_base_new();
	struct config *g1, *g2;
	struct outcome never = { 0 };
	long long end;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sluice-test-health-XXXXXX");
	assert_non_null(mkdtemp(dir));
	g1 = load(RELOAD_CONF(""));
	assert_int_equal(health_start(base, g1), 0);
	/* At start every server is in service at its full weight. */
	assert_int_equal(weight(g1, 0), 100);
	assert_int_equal(weight(g1, 1), 100);
	/* Two failed connects eject a, at once. */
	health_passive_connect_failed(&g1->pools[0].servers[0]);
	health_passive_connect_failed(&g1->pools[0].servers[0]);
	assert_int_equal(weight(g1, 0), 0);

	/* A reload: a's ejection carries over by name; c is new and ramps. */
	g2 = load(RELOAD_CONF("  server \"c\" { address = \"127.0.0.1:4\" weight = 100 }\n"));
	assert_int_equal(health_reload(g2), 0);
	assert_ptr_equal(g2->pools[0].servers[0].rt->health, g1->pools[0].servers[0].rt->health);
	assert_int_equal(weight(g2, 0), 0);
	assert_int_equal(weight(g2, 1), 100);
	assert_true(weight(g2, 2) >= 10 && weight(g2, 2) < 20);
	/* Sessions of the old generation still see it ejected too. */
	assert_int_equal(weight(g1, 0), 0);

	/* The ejection ends within its 100 ms (plus a tick), in both. */
	end = mono_ms() + 2000;
	while ((weight(g2, 0) == 0 || weight(g1, 0) == 0) && mono_ms() < end)
		wait_outcome(base, &never, 20);
	assert_true(weight(g2, 0) > 0);
	assert_true(weight(g1, 0) > 0);
	/* It comes back through slow start. */
	assert_true(weight(g2, 0) < 100);
	/* The old generation is let go once only health holds it (ASan
	 * would see a leak otherwise); the new one stays. */
	config_unref(g1);
	wait_outcome(base, &never, 300);
	health_stop();
	config_unref(g2);
	event_base_free(base);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rise_fall),
		cmocka_unit_test(test_flap_hold),
		cmocka_unit_test(test_flap_window),
		cmocka_unit_test(test_ejection_length),
		cmocka_unit_test(test_eject_cap),
		cmocka_unit_test(test_eject_race),
		cmocka_unit_test(test_slow_start),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_next_delay),
		cmocka_unit_test(test_passive_connect),
		cmocka_unit_test(test_passive_5xx),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_check_http),
		cmocka_unit_test(test_check_socketio),
		cmocka_unit_test(test_check_tcp_and_timeout),
		cmocka_unit_test(test_reload_keeps_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
