/*
 * Balancer tests: smooth weighted round-robin shares and order, and the
 * skipping of servers already tried for a request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config-t.h"
#include "lb.h"

static struct config_pool *
make_pool(const unsigned *weights, size_t n)
{
	struct config_pool *p = calloc(1, sizeof(*p));

	p->servers = calloc(n, sizeof(*p->servers));
	p->nservers = n;
	for (size_t i = 0; i < n; i++) {
		p->servers[i].weight = weights[i];
		p->servers[i].index = (unsigned)i;
		p->servers[i].pool = p;
	}
	return p;
}

/*
 * A pick as pool_pick() makes it: every server at its configured weight,
 * or at down[i] == 1 weight 0 (not usable).
 */
static const struct config_server *
pick_down(void *st, const struct config_pool *p, const unsigned *tried, size_t ntried,
		const int *down)
{
	struct lb_view view[16];
	struct lb_request req = { .view = view, .tried = tried, .ntried = ntried };

	for (size_t i = 0; i < p->nservers; i++) {
		view[i].weight = down != NULL && down[i] ? 0 : p->servers[i].weight;
		view[i].active = 0;
	}
	return lb_rr_ops.pick(st, &req);
}

static const struct config_server *
pick(void *st, const struct config_pool *p, const unsigned *tried, size_t ntried)
{
	return pick_down(st, p, tried, ntried, NULL);
}

static void
free_pool(struct config_pool *p)
{
	free(p->servers);
	free(p);
}

/* Over every full cycle of sum(weights) picks, each server gets its weight. */
static void
test_rr_exact_share_every_cycle(void **state)
{
	const unsigned weights[] = { 5, 1, 3, 2 };
	const unsigned total = 11;
	struct config_pool *p = make_pool(weights, 4);
	void *st = lb_rr_ops.create(p);

	(void)state;
	for (int cycle = 0; cycle < 50; cycle++) {
		unsigned count[4] = { 0 };

		for (unsigned k = 0; k < total; k++) {
			const struct config_server *srv = pick(st, p, NULL, 0);
			assert_non_null(srv);
			count[srv->index]++;
		}
		for (int i = 0; i < 4; i++)
			assert_int_equal(count[i], weights[i]);
	}
	lb_rr_ops.destroy(st);
	free_pool(p);
}

/*
 * Smooth: weights 5,1,1 spread the heavy server out (a a b a c a a) instead
 * of a burst of five, and every window of 7 consecutive picks, not only the
 * aligned ones, holds the exact shares.
 */
static void
test_rr_smooth_order(void **state)
{
	const unsigned weights[] = { 5, 1, 1 };
	const unsigned expect[] = { 0, 0, 1, 0, 2, 0, 0 };
	struct config_pool *p = make_pool(weights, 3);
	void *st = lb_rr_ops.create(p);
	unsigned seq[700];

	(void)state;
	for (int k = 0; k < 700; k++)
		seq[k] = pick(st, p, NULL, 0)->index;
	for (int k = 0; k < 700; k++)
		assert_int_equal(seq[k], expect[k % 7]);
	for (int k = 0; k + 7 <= 700; k++) {
		unsigned count[3] = { 0 };
		for (int j = 0; j < 7; j++)
			count[seq[k + j]]++;
		assert_int_equal(count[0], 5);
		assert_int_equal(count[1], 1);
		assert_int_equal(count[2], 1);
	}
	lb_rr_ops.destroy(st);
	free_pool(p);
}

static void
test_rr_skips_tried(void **state)
{
	const unsigned weights[] = { 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 3);
	void *st = lb_rr_ops.create(p);
	unsigned tried[3];

	(void)state;
	for (int k = 0; k < 30; k++) {
		const struct config_server *a, *b, *c;

		a = pick(st, p, NULL, 0);
		tried[0] = a->index;
		b = pick(st, p, tried, 1);
		assert_non_null(b);
		assert_int_not_equal(b->index, a->index);
		tried[1] = b->index;
		c = pick(st, p, tried, 2);
		assert_non_null(c);
		assert_int_not_equal(c->index, a->index);
		assert_int_not_equal(c->index, b->index);
		tried[2] = c->index;
		assert_null(pick(st, p, tried, 3));
	}
	lb_rr_ops.destroy(st);
	free_pool(p);
}

/* A server at weight 0 (down, ejected) gets nothing; the others keep
 * their exact shares; every server down: no pick. */
static void
test_rr_skips_unusable(void **state)
{
	const unsigned weights[] = { 2, 1, 1 };
	const int down[] = { 0, 1, 0 }, all[] = { 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 3);
	void *st = lb_rr_ops.create(p);
	unsigned count[3] = { 0 };

	(void)state;
	for (int k = 0; k < 300; k++)
		count[pick_down(st, p, NULL, 0, down)->index]++;
	assert_int_equal(count[0], 200);
	assert_int_equal(count[1], 0);
	assert_int_equal(count[2], 100);
	assert_null(pick_down(st, p, NULL, 0, all));
	lb_rr_ops.destroy(st);
	free_pool(p);
}

static void
test_lb_find(void **state)
{
	(void)state;
	assert_ptr_equal(lb_find("roundrobin"), &lb_rr_ops);
	assert_null(lb_find("nope"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rr_exact_share_every_cycle),
		cmocka_unit_test(test_rr_smooth_order),
		cmocka_unit_test(test_rr_skips_tried),
		cmocka_unit_test(test_rr_skips_unusable),
		cmocka_unit_test(test_lb_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
