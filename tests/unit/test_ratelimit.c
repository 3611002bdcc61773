/*
 * Unit tests of ratelimit.c and ratelimit_local.c: the GCRA edges, the
 * RateLimit field values, key building through trusted proxies, the
 * in-process table under two threads, and the admission of connections
 * through an asynchronous backend.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config-int.h"
#include "http.h"
#include "ratelimit.h"

#define SEC 1000000ULL

static struct rl_policy
policy(const char *name, unsigned rate, unsigned per_s, unsigned burst)
{
	struct rl_policy p = {
		.name = (char *)name, .rate = rate, .per_s = per_s, .burst = burst,
	};

	p.t_us = (uint64_t)per_s * SEC / rate;
	p.tau_us = p.t_us * burst;
	return p;
}

/* burst = 0: events spaced T apart; the first passes at once. */
static void
test_gcra_no_burst(void **state)
{
	struct rl_policy p = policy("p", 10, 1, 0);	/* T = 100 ms */
	struct rl_result r;
	uint64_t tat = 0, now = 1000 * SEC;

	(void)state;
	assert_true(rl_gcra(&p, &tat, now, &r));
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, 1);			/* 100 ms, rounded up */
	assert_false(rl_gcra(&p, &tat, now, &r));
	assert_int_equal(r.retry_after_s, 1);
	assert_int_equal(r.remaining, 0);
	/* One microsecond early is still too early; on time passes. */
	assert_false(rl_gcra(&p, &tat, now + 100000 - 1, &r));
	assert_true(rl_gcra(&p, &tat, now + 100000, &r));
	assert_int_equal(tat, now + 200000);
}

/* burst = b: b + 1 at once from idle, then one per T. */
static void
test_gcra_burst_then_rate(void **state)
{
	struct rl_policy p = policy("per-ip", 1, 2, 3);	/* T = 2 s, tau = 6 s */
	struct rl_result r;
	uint64_t tat = 0, now = 50 * SEC;

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		assert_true(rl_gcra(&p, &tat, now, &r));
		assert_int_equal(r.remaining, 3 - i);
		assert_int_equal(r.reset_s, 2 * (i + 1));
	}
	assert_false(rl_gcra(&p, &tat, now, &r));
	assert_int_equal(r.retry_after_s, 2);
	assert_int_equal(r.reset_s, 2);
	/* A denial does not spend anything. */
	assert_int_equal(tat, now + 8 * SEC);
	assert_false(rl_gcra(&p, &tat, now + SEC, &r));
	assert_int_equal(r.retry_after_s, 1);
	assert_true(rl_gcra(&p, &tat, now + 2 * SEC, &r));
	assert_int_equal(r.remaining, 0);
	assert_false(rl_gcra(&p, &tat, now + 2 * SEC, &r));
	/* Idle long enough, the whole burst is back. */
	assert_true(rl_gcra(&p, &tat, now + 100 * SEC, &r));
	assert_int_equal(r.remaining, 3);
}

static void
test_format(void **state)
{
	struct rl_policy p = policy("per-ip", 100, 60, 0);
	struct rl_result r = { .allowed = false, .remaining = 0, .retry_after_s = 12,
			       .reset_s = 12 };
	char buf[100];

	(void)state;
	assert_int_equal(rl_format_policy(&p, buf, sizeof(buf)), 19);
	assert_string_equal(buf, "\"per-ip\";q=100;w=60");
	rl_format_state(&p, &r, buf, sizeof(buf));
	assert_string_equal(buf, "\"per-ip\";r=0;t=12");
	r = (struct rl_result){ .allowed = true, .remaining = 7, .reset_s = 3 };
	rl_format_state(&p, &r, buf, sizeof(buf));
	assert_string_equal(buf, "\"per-ip\";r=7;t=3");
	p.kind = RL_KIND_CONNECTIONS;
	rl_format_policy(&p, buf, sizeof(buf));
	assert_string_equal(buf, "\"per-ip\";q=100");
}

/* ------------------------------------------------------------------ keys */

static struct http_header hdrs[8];

static struct http_head
head(const char *const *fields, size_t n)
{
	struct http_head h;

	memset(&h, 0, sizeof(h));
	h.headers = hdrs;
	for (size_t i = 0; i < n; i++) {
		hdrs[i].name = fields[2 * i];
		hdrs[i].name_len = strlen(fields[2 * i]);
		hdrs[i].value = fields[2 * i + 1];
		hdrs[i].value_len = strlen(fields[2 * i + 1]);
		hdrs[i].id = strcasecmp(fields[2 * i], "x-forwarded-for") == 0 ?
			HTTP_F_X_FORWARDED_FOR : HTTP_F_OTHER;
	}
	h.nheaders = n;
	return h;
}

static struct config_cidr cidrs[4];

static struct config
trusting(const char *const *list, size_t n)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(config_value_parse_cidr(list[i], strlen(list[i]), &cidrs[i]), 0);
	cfg.trusted = cidrs;
	cfg.ntrusted = n;
	return cfg;
}

static const char *
client(const struct config *cfg, const char *peer, const struct http_head *h)
{
	static char out[RL_KEY_MAX];

	rl_client_addr(cfg, peer, h, out, sizeof(out));
	return out;
}

static void
test_client_addr(void **state)
{
	static const char *const proxies[] = { "10.0.0.0/8", "127.0.0.1", "::1/128" };
	static const char *const xff1[] = { "X-Forwarded-For", "203.0.113.7 , 10.1.2.3" };
	static const char *const xff2[] = {
		"X-Forwarded-For", "198.51.100.1, 203.0.113.9",
		"X-Forwarded-For", " 10.9.9.9 ,10.0.0.5",
	};
	static const char *const xff_v6[] = { "x-forwarded-for", "[2001:DB8::0:1]:443" };
	static const char *const xff_bad[] = { "X-Forwarded-For", "1.2.3.4, junk, 10.0.0.1" };
	static const char *const xff_all[] = { "X-Forwarded-For", "10.0.0.9, 10.0.0.8" };
	struct config none, cfg = trusting(proxies, 3);
	struct http_head h;

	(void)state;
	memset(&none, 0, sizeof(none));
	h = head(xff1, 1);
	/* Without trusted proxies, X-Forwarded-For is ignored. */
	assert_string_equal(client(&none, "127.0.0.1", &h), "127.0.0.1");
	/* An untrusted peer's X-Forwarded-For is ignored too. */
	assert_string_equal(client(&cfg, "192.0.2.1", &h), "192.0.2.1");
	/* From the right: 10.1.2.3 is a proxy, 203.0.113.7 is the client. */
	assert_string_equal(client(&cfg, "127.0.0.1", &h), "203.0.113.7");
	/* Several fields: the last one is the nearest hop. */
	h = head(xff2, 2);
	assert_string_equal(client(&cfg, "127.0.0.1", &h), "203.0.113.9");
	/* IPv6, written in brackets with a port and in upper case. */
	h = head(xff_v6, 1);
	assert_string_equal(client(&cfg, "::1", &h), "2001:db8::1");
	/* An IPv4-mapped peer is an IPv4 peer. */
	assert_string_equal(client(&cfg, "::ffff:127.0.0.1", &h), "2001:db8::1");
	/* Garbage stops the walk at the last trusted hop's report. */
	h = head(xff_bad, 1);
	assert_string_equal(client(&cfg, "127.0.0.1", &h), "10.0.0.1");
	/* All trusted: the leftmost. */
	h = head(xff_all, 1);
	assert_string_equal(client(&cfg, "10.0.0.1", &h), "10.0.0.9");
	/* No field at all: the peer. */
	h = head(NULL, 0);
	assert_string_equal(client(&cfg, "10.0.0.1", &h), "10.0.0.1");
	assert_true(rl_cidr_match(cfg.trusted, cfg.ntrusted, "10.255.0.1"));
	assert_false(rl_cidr_match(cfg.trusted, cfg.ntrusted, "11.0.0.1"));
	assert_false(rl_cidr_match(cfg.trusted, cfg.ntrusted, "::2"));
}

static void
test_key_build(void **state)
{
	static const char *const fields[] = {
		"Cookie", "a=1; uid=u42; b=2",
		"X-Api-Key", "k-123",
	};
	struct rl_policy p = policy("p", 1, 1, 0);
	struct config_route route = { .name = (char *)"api" };
	struct http_head h = head(fields, 2);
	char key[RL_KEY_MAX], longv[300];
	size_t n;

	(void)state;
	p.key = RL_KEY_CLIENT;
	n = rl_key_build(&p, &route, &h, "192.0.2.1", key);
	assert_int_equal(n, 9);
	assert_memory_equal(key, "192.0.2.1", 9);
	p.key = RL_KEY_ROUTE;
	n = rl_key_build(&p, &route, &h, "192.0.2.1", key);
	assert_int_equal(n, 3);
	assert_memory_equal(key, "api", 3);
	p.key = RL_KEY_HEADER;
	p.key_name = (char *)"x-api-key";
	n = rl_key_build(&p, &route, &h, "192.0.2.1", key);
	assert_int_equal(n, 5);
	assert_memory_equal(key, "k-123", 5);
	p.key_name = (char *)"x-other";
	assert_int_equal(rl_key_build(&p, &route, &h, "192.0.2.1", key), 0);
	p.key = RL_KEY_COOKIE;
	p.key_name = (char *)"uid";
	n = rl_key_build(&p, &route, &h, "192.0.2.1", key);
	assert_int_equal(n, 3);
	assert_memory_equal(key, "u42", 3);
	/* A long value is shortened, the same way every time. */
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	p.key = RL_KEY_CLIENT;
	assert_int_equal(rl_key_build(&p, &route, &h, longv, key), RL_KEY_MAX);
}

/* ------------------------------------------------------------ the table */

static void
test_local_table(void **state)
{
	struct rl_local *t = rl_local_new();
	struct rl_policy a = policy("a", 1, 10, 1), b = policy("b", 1, 10, 0);
	struct rl_policy c = policy("conn", 2, 1, 0);
	struct rl_result r;
	struct rl_hold *h1, *h2, *h3;
	bool over;
	uint64_t now = 10 * SEC;

	(void)state;
	assert_non_null(t);
	rl_local_take(t, &a, "k", 1, now, &r);
	assert_true(r.allowed);
	rl_local_take(t, &a, "k", 1, now, &r);
	assert_true(r.allowed);
	rl_local_take(t, &a, "k", 1, now, &r);
	assert_false(r.allowed);
	/* Another policy, the same key: another budget. */
	rl_local_take(t, &b, "k", 1, now, &r);
	assert_true(r.allowed);
	rl_local_take(t, &a, "k2", 2, now, &r);
	assert_true(r.allowed);
	c.kind = RL_KIND_CONNECTIONS;
	h1 = rl_local_acquire(t, &c, "k", 1, &over);
	h2 = rl_local_acquire(t, &c, "k", 1, &over);
	assert_non_null(h1);
	assert_non_null(h2);
	h3 = rl_local_acquire(t, &c, "k", 1, &over);
	assert_null(h3);
	assert_true(over);
	/* Before the TATs pass, nothing goes; held entries never. */
	assert_int_equal(rl_local_sweep(t, now), 4);
	assert_int_equal(rl_local_sweep(t, now + 100 * SEC), 1);
	rl_local_release(t, h1);
	h3 = rl_local_acquire(t, &c, "k", 1, &over);
	assert_non_null(h3);
	rl_local_release(t, h2);
	rl_local_release(t, h3);
	assert_int_equal(rl_local_sweep(t, now + 100 * SEC), 0);
	/* Swept, the budget is whole again. */
	rl_local_take(t, &a, "k", 1, now + 100 * SEC, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 1);
	rl_local_free(t);
}

struct hammer {
	struct rl_local *t;
	const struct rl_policy *p;
	unsigned allowed;
};

#define HAMMER_TRIES 200000

static void *
hammer(void *arg)
{
	struct hammer *hm = arg;
	char key[16];
	struct rl_result r;

	for (unsigned i = 0; i < HAMMER_TRIES; i++) {
		/* One hot key, and many cold ones that make the table grow. */
		rl_local_take(hm->t, hm->p, "hot", 3, 5 * SEC, &r);
		hm->allowed += r.allowed;
		snprintf(key, sizeof(key), "k%u", i % 5000);
		rl_local_take(hm->t, hm->p, key, strlen(key), 5 * SEC, &r);
	}
	return NULL;
}

/* Two threads on one key at one instant: exactly burst + 1 pass in all. */
static void
test_local_threads(void **state)
{
	struct rl_local *t = rl_local_new();
	struct rl_policy p = policy("p", 10, 1, 999);
	struct hammer a = { .t = t, .p = &p }, b = { .t = t, .p = &p };
	pthread_t ta, tb;

	(void)state;
	assert_int_equal(pthread_create(&ta, NULL, hammer, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, hammer, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.allowed + b.allowed, 1000);
	rl_local_free(t);
}

/* ------------------------------------------------------------ admission */

/* A backend whose acquire always answers later, through fire(). */
static struct fake {
	rl_done_cb cb;
	void *arg;
	struct rl_hold **hold;
	unsigned acquires, releases, cancels;
	struct rl_hold *released;
} fk;

static int
fake_take(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_result *r, rl_done_cb cb, void *arg)
{
	(void)be;
	(void)p;
	(void)key;
	(void)keylen;
	(void)cb;
	(void)arg;
	*r = (struct rl_result){ .allowed = true };
	return 0;
}

static int
fake_acquire(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg)
{
	(void)be;
	(void)p;
	(void)r;
	assert_memory_equal(key, "api", keylen);
	fk.acquires++;
	fk.cb = cb;
	fk.arg = arg;
	fk.hold = hold;
	return 1;
}

static void
fake_release(void *be, struct rl_hold *hold)
{
	(void)be;
	fk.releases++;
	fk.released = hold;
}

static void
fake_cancel(void *be, void *arg)
{
	(void)be;
	if (arg == fk.arg)
		fk.cancels++;
}

static const struct rl_backend_ops fake_ops = {
	.take = fake_take, .acquire = fake_acquire, .release = fake_release, .cancel = fake_cancel,
};

static unsigned resumed;

static void
on_resume(void *arg)
{
	(void)arg;
	resumed++;
}

/* Answer the pending acquire: allowed with hold h, or refused. */
static void
fire(struct rl_hold *h)
{
	struct rl_result r = { .allowed = h != NULL, .retry_after_s = h == NULL, .reset_s = 1 };

	if (h != NULL)
		*fk.hold = h;
	fk.cb(fk.arg, &r);
}

/* kind = connections through an asynchronous backend: counted once per
 * session, refused with a close, released when the session goes, and a
 * session gone before the answer counts nothing. */
static void
test_admit_connections(void **state)
{
	struct rl_policy c = policy("conns", 2, 1, 0);
	struct config_route route = { .name = (char *)"api", .nrl = 1 };
	struct config cfg;
	struct http_head h = { 0 };
	struct rl_admit_in in = { .cfg = &cfg, .route = &route, .h = &h, .peer_ip = "192.0.2.1" };
	struct rl_hold *const mark = (struct rl_hold *)(void *)&c;
	struct rl_sess *rs;
	struct rl_result r;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	memset(&fk, 0, sizeof(fk));
	c.kind = RL_KIND_CONNECTIONS;
	c.key = RL_KEY_ROUTE;
	route.rl[0] = &c;

	rs = rl_sess_new(&fake_ops, NULL, on_resume, NULL);
	assert_non_null(rs);
	assert_int_equal(rl_admit(rs, &in), RL_PENDING);
	resumed = 0;
	fire(mark);
	assert_int_equal(resumed, 1);
	assert_int_equal(rl_verdict(rs), RL_ALLOW);
	/* The next request of the session is not counted again. */
	assert_int_equal(rl_admit(rs, &in), RL_ALLOW);
	assert_int_equal(fk.acquires, 1);
	rl_sess_free(rs);
	assert_int_equal(fk.releases, 1);
	assert_ptr_equal(fk.released, mark);

	/* Refused: 429 and close, the connections limit says why. */
	rs = rl_sess_new(&fake_ops, NULL, on_resume, NULL);
	assert_int_equal(rl_admit(rs, &in), RL_PENDING);
	fire(NULL);
	assert_int_equal(rl_verdict(rs), RL_DENY_CLOSE);
	assert_ptr_equal(rl_denial(rs, &r), &c);
	assert_int_equal(r.retry_after_s, 1);
	rl_sess_free(rs);
	assert_int_equal(fk.releases, 1);

	/* Gone while waiting: cancelled, nothing to release. */
	rs = rl_sess_new(&fake_ops, NULL, on_resume, NULL);
	assert_int_equal(rl_admit(rs, &in), RL_PENDING);
	rl_sess_free(rs);
	assert_int_equal(fk.cancels, 1);
	assert_int_equal(fk.releases, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gcra_no_burst),
		cmocka_unit_test(test_gcra_burst_then_rate),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_client_addr),
		cmocka_unit_test(test_key_build),
		cmocka_unit_test(test_local_table),
		cmocka_unit_test(test_local_threads),
		cmocka_unit_test(test_admit_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
