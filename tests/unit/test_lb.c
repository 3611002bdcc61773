/*
 * Balancer tests: smooth weighted round-robin shares and order; least
 * connections (weighted, alternating among equals); consistent hashing
 * (stability, weights, keys moved when servers come and go); power of two
 * random choices; and for all, the skipping of servers already tried for a
 * request or not usable now.
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
#include "lb.h"

static struct config_pool *
make_pool(const unsigned *weights, size_t n)
{
	struct config_pool *p = calloc(1, sizeof(*p));

	p->servers = calloc(n, sizeof(*p->servers));
	p->nservers = n;
	for (size_t i = 0; i < n; i++) {
		char name[24];

		snprintf(name, sizeof(name), "s%zu", i);
		p->servers[i].name = strdup(name);
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
	for (size_t i = 0; i < p->nservers; i++)
		free(p->servers[i].name);
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

/* ------------------------------------------------------------- any balancer */

#define MAX_SERVERS 16

/* A pick by ops over an explicit view of the servers. */
static const struct config_server *
pick_view(const struct lb_ops *ops, void *st, const struct lb_view *view,
		const unsigned *tried, size_t ntried, const char *key)
{
	struct lb_request req = {
		.view = view, .tried = tried, .ntried = ntried,
		.key = key, .key_len = key != NULL ? strlen(key) : 0,
	};

	return ops->pick(st, &req);
}

/* Every server at its configured weight, with no load. */
static void
view_idle(const struct config_pool *p, struct lb_view *view)
{
	for (size_t i = 0; i < p->nservers; i++) {
		view[i].weight = p->servers[i].weight;
		view[i].active = 0;
	}
}

static const struct lb_ops *const all_ops[] = {
	&lb_rr_ops, &lb_leastconn_ops, &lb_hash_ops, &lb_random2_ops,
};

/* Each balancer picks every server once as the others are tried, then
 * none; and none when no server is usable. */
static void
test_all_honour_tried(void **state)
{
	const unsigned weights[] = { 1, 2, 3 };
	struct config_pool *p = make_pool(weights, 3);
	struct lb_view view[3], down[3];

	(void)state;
	view_idle(p, view);
	memset(down, 0, sizeof(down));
	for (size_t o = 0; o < sizeof(all_ops) / sizeof(all_ops[0]); o++) {
		const struct lb_ops *ops = all_ops[o];
		void *st = ops->create(p);

		assert_non_null(st);
		for (int round = 0; round < 50; round++) {
			char key[32];
			const char *k = round % 2 ? key : NULL;
			unsigned tried[3];
			unsigned seen = 0;

			snprintf(key, sizeof(key), "key-%d", round);
			for (size_t n = 0; n < 3; n++) {
				const struct config_server *srv = pick_view(ops, st, view, tried, n, k);

				assert_non_null(srv);
				assert_false(seen & (1u << srv->index));
				seen |= 1u << srv->index;
				tried[n] = srv->index;
			}
			assert_null(pick_view(ops, st, view, tried, 3, k));
			assert_null(pick_view(ops, st, down, NULL, 0, k));
		}
		ops->destroy(st);
	}
	free_pool(p);
}

/* ---------------------------------------------------------------- leastconn */

static unsigned
lc_pick(void *st, const struct lb_view *view)
{
	const struct config_server *srv = pick_view(&lb_leastconn_ops, st, view, NULL, 0, NULL);

	assert_non_null(srv);
	return srv->index;
}

/* The fewest active exchanges for the weight win, weights counted exactly. */
static void
test_lc_least_loaded(void **state)
{
	const unsigned w1[] = { 1, 1, 1 }, w41[] = { 4, 1 };
	struct config_pool *p = make_pool(w1, 3), *q = make_pool(w41, 2);
	void *st = lb_leastconn_ops.create(p), *sq = lb_leastconn_ops.create(q);
	const struct lb_view v[] = { { 1, 3 }, { 1, 1 }, { 1, 2 } };
	const struct lb_view under[] = { { 4, 3 }, { 1, 1 } };	/* 0.75 < 1 */
	const struct lb_view over[] = { { 4, 5 }, { 1, 1 } };	/* 1.25 > 1 */
	const struct lb_view tie[] = { { 4, 4 }, { 1, 1 } };
	unsigned count[2] = { 0 };

	(void)state;
	for (int k = 0; k < 20; k++) {
		assert_int_equal(lc_pick(st, v), 1);
		assert_int_equal(lc_pick(sq, under), 0);
		assert_int_equal(lc_pick(sq, over), 1);
	}
	/* Equal load for the weight: the picks follow the weights. */
	for (int k = 0; k < 50; k++)
		count[lc_pick(sq, tie)]++;
	assert_int_equal(count[0], 40);
	assert_int_equal(count[1], 10);
	lb_leastconn_ops.destroy(st);
	lb_leastconn_ops.destroy(sq);
	free_pool(p);
	free_pool(q);
}

/* Idle or equally loaded servers alternate rather than the first taking
 * everything; a server with more load sits out. */
static void
test_lc_alternates_among_equals(void **state)
{
	const unsigned weights[] = { 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 3);
	void *st = lb_leastconn_ops.create(p);
	struct lb_view idle[3];
	const struct lb_view two[] = { { 1, 2 }, { 1, 2 }, { 1, 5 } };

	(void)state;
	view_idle(p, idle);
	for (unsigned k = 0; k < 300; k++)
		assert_int_equal(lc_pick(st, idle), k % 3);
	for (unsigned k = 0; k < 100; k++) {
		unsigned a = lc_pick(st, two), b = lc_pick(st, two);

		assert_int_not_equal(a, 2);
		assert_int_not_equal(b, 2);
		assert_int_not_equal(a, b);
	}
	lb_leastconn_ops.destroy(st);
	free_pool(p);
}

/* Long-lived connections (WebSockets) that never end: each pick adds one
 * to its server. The load stays in proportion to the weights at every
 * step, and exactly so at the end. */
static void
test_lc_long_lived(void **state)
{
	const unsigned weights[] = { 3, 1, 2 };
	struct config_pool *p = make_pool(weights, 3);
	void *st = lb_leastconn_ops.create(p);
	struct lb_view view[3];

	(void)state;
	view_idle(p, view);
	for (int k = 0; k < 600; k++) {
		view[lc_pick(st, view)].active++;
		/* No server is more than one connection ahead of its share. */
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 3; j++)
				assert_true(((long)view[i].active - 1) * weights[j] <=
					(long)view[j].active * weights[i]);
	}
	assert_int_equal(view[0].active, 300);
	assert_int_equal(view[1].active, 100);
	assert_int_equal(view[2].active, 200);
	lb_leastconn_ops.destroy(st);
	free_pool(p);
}

/* --------------------------------------------------------------------- hash */

#define NKEYS 100000

static const char *
key_of(unsigned k, char *buf, size_t len)
{
	snprintf(buf, len, "user-%u", k);
	return buf;
}

/* map[k] = index of the server key k goes to. */
static void
hash_map(const struct config_pool *p, const struct lb_view *view, unsigned *map)
{
	void *st = lb_hash_ops.create(p);
	char key[32];

	assert_non_null(st);
	for (unsigned k = 0; k < NKEYS; k++) {
		const struct config_server *srv =
			pick_view(&lb_hash_ops, st, view, NULL, 0, key_of(k, key, sizeof(key)));

		assert_non_null(srv);
		map[k] = srv->index;
	}
	lb_hash_ops.destroy(st);
}

/* The same key goes to the same server, whatever the instance, the
 * traffic in between or the order of the servers in the file. */
static void
test_hash_stable(void **state)
{
	const unsigned weights[] = { 1, 1, 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 5), *r = make_pool(weights, 5);
	void *a = lb_hash_ops.create(p), *b = lb_hash_ops.create(p), *c;
	struct lb_view view[5];
	char key[32];

	(void)state;
	view_idle(p, view);
	/* r lists the same servers backwards. */
	for (size_t i = 0; i < 5; i++)
		snprintf(r->servers[i].name, 3, "s%zu", 4 - i);
	c = lb_hash_ops.create(r);
	for (unsigned k = 0; k < 2000; k++) {
		const struct config_server *x, *y, *z;

		key_of(k % 500, key, sizeof(key));
		x = pick_view(&lb_hash_ops, a, view, NULL, 0, key);
		y = pick_view(&lb_hash_ops, b, view, NULL, 0, key);
		z = pick_view(&lb_hash_ops, c, view, NULL, 0, key);
		assert_ptr_equal(x, y);
		assert_string_equal(x->name, z->name);
		/* Load plays no part. */
		view[k % 5].active += 7;
	}
	lb_hash_ops.destroy(a);
	lb_hash_ops.destroy(b);
	lb_hash_ops.destroy(c);
	free_pool(p);
	free_pool(r);
}

/* Shares follow the weights within half a percent over 100k keys. */
static void
test_hash_weights(void **state)
{
	const unsigned weights[] = { 1, 2, 3, 4 }, equal[] = { 5, 5, 5, 5, 5, 5, 5, 5, 5, 5 };
	struct config_pool *p = make_pool(weights, 4), *q = make_pool(equal, 10);
	unsigned *map = calloc(NKEYS, sizeof(*map));
	struct lb_view view[MAX_SERVERS];
	unsigned count[MAX_SERVERS] = { 0 };

	(void)state;
	view_idle(p, view);
	hash_map(p, view, map);
	for (unsigned k = 0; k < NKEYS; k++)
		count[map[k]]++;
	for (int i = 0; i < 4; i++) {
		double share = (double)count[i] / NKEYS, want = weights[i] / 10.0;

		if (share < want - 0.005 || share > want + 0.005)
			fail_msg("server %d: share %.4f, want %.2f", i, share, want);
	}
	memset(count, 0, sizeof(count));
	view_idle(q, view);
	hash_map(q, view, map);
	for (unsigned k = 0; k < NKEYS; k++)
		count[map[k]]++;
	for (int i = 0; i < 10; i++) {
		double share = (double)count[i] / NKEYS;

		if (share < 0.095 || share > 0.105)
			fail_msg("server %d of 10: share %.4f", i, share);
	}
	free(map);
	free_pool(p);
	free_pool(q);
}

/* An 11th server takes its share from the 10 others and nothing else
 * moves: at most 1/11 + 5% of the keys, all of them to the new server. */
static void
test_hash_add_server(void **state)
{
	const unsigned weights[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	struct config_pool *ten = make_pool(weights, 10), *eleven = make_pool(weights, 11);
	unsigned *before = calloc(NKEYS, sizeof(*before)), *after = calloc(NKEYS, sizeof(*after));
	struct lb_view view[MAX_SERVERS];
	unsigned moved = 0;

	(void)state;
	view_idle(ten, view);
	hash_map(ten, view, before);
	view_idle(eleven, view);
	hash_map(eleven, view, after);
	for (unsigned k = 0; k < NKEYS; k++) {
		if (before[k] == after[k])
			continue;
		moved++;
		assert_int_equal(after[k], 10);
	}
	if (moved > NKEYS * (1.0 / 11 + 0.05) || moved < NKEYS * (1.0 / 11 - 0.01))
		fail_msg("%u of %u keys moved; want about 1/11", moved, NKEYS);
	free(before);
	free(after);
	free_pool(ten);
	free_pool(eleven);
}

/* A server that goes down (weight 0) or is removed from the file loses
 * its keys, which spread over all the others; no other key moves. */
static void
test_hash_server_gone(void **state)
{
	const unsigned weights[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 10), *nine = make_pool(weights, 9);
	unsigned *before = calloc(NKEYS, sizeof(*before)), *after = calloc(NKEYS, sizeof(*after));
	struct lb_view view[MAX_SERVERS];
	unsigned spread[MAX_SERVERS] = { 0 }, moved = 0;

	(void)state;
	view_idle(p, view);
	hash_map(p, view, before);
	view[3].weight = 0;
	hash_map(p, view, after);
	for (unsigned k = 0; k < NKEYS; k++) {
		assert_int_not_equal(after[k], 3);
		if (before[k] != 3) {
			assert_int_equal(after[k], before[k]);
		} else {
			spread[after[k]]++;
			moved++;
		}
	}
	for (int i = 0; i < 10; i++)
		if (i != 3 && spread[i] < moved / 9 * 0.8)
			fail_msg("server %d got %u of the %u keys of the server down", i, spread[i], moved);

	/* Removed: the file lists s0..s9 without s3; names decide, not
	 * positions. */
	for (size_t i = 3; i < 9; i++)
		snprintf(nine->servers[i].name, 3, "s%zu", i + 1);
	view_idle(nine, view);
	hash_map(nine, view, after);
	for (unsigned k = 0; k < NKEYS; k++) {
		const char *was = p->servers[before[k]].name, *now = nine->servers[after[k]].name;

		if (before[k] != 3)
			assert_string_equal(was, now);
		else
			assert_string_not_equal(now, "s3");
	}
	free(before);
	free(after);
	free_pool(p);
	free_pool(nine);
}

/* A retry goes to the key's next server, the same for every request with
 * the key. */
static void
test_hash_retry(void **state)
{
	const unsigned weights[] = { 1, 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 4);
	void *st = lb_hash_ops.create(p);
	struct lb_view view[4];
	char key[32];

	(void)state;
	view_idle(p, view);
	for (unsigned k = 0; k < 1000; k++) {
		unsigned tried[1];
		const struct config_server *first, *second;

		key_of(k, key, sizeof(key));
		first = pick_view(&lb_hash_ops, st, view, NULL, 0, key);
		tried[0] = first->index;
		second = pick_view(&lb_hash_ops, st, view, tried, 1, key);
		assert_non_null(second);
		assert_int_not_equal(second->index, first->index);
		assert_ptr_equal(pick_view(&lb_hash_ops, st, view, tried, 1, key), second);
	}
	lb_hash_ops.destroy(st);
	free_pool(p);
}

/* Without a key: smooth weighted round-robin, exact shares. */
static void
test_hash_no_key(void **state)
{
	const unsigned weights[] = { 2, 1, 1 };
	struct config_pool *p = make_pool(weights, 3);
	void *st = lb_hash_ops.create(p);
	struct lb_view view[3];
	unsigned count[3] = { 0 };
	struct lb_request empty = { .view = view, .key = "", .key_len = 0 };

	(void)state;
	view_idle(p, view);
	for (int k = 0; k < 200; k++)
		count[pick_view(&lb_hash_ops, st, view, NULL, 0, NULL)->index]++;
	for (int k = 0; k < 200; k++)
		count[lb_hash_ops.pick(st, &empty)->index]++;
	assert_int_equal(count[0], 200);
	assert_int_equal(count[1], 100);
	assert_int_equal(count[2], 100);
	lb_hash_ops.destroy(st);
	free_pool(p);
}

/* ------------------------------------------------------------------ random2 */

static unsigned
r2_pick(void *st, const struct lb_view *view, const unsigned *tried, size_t ntried)
{
	const struct config_server *srv = pick_view(&lb_random2_ops, st, view, tried, ntried, NULL);

	assert_non_null(srv);
	return srv->index;
}

/* Without load, the first draw decides: shares follow the weights. */
static void
test_r2_weights(void **state)
{
	const unsigned weights[] = { 1, 2, 3, 4 };
	struct config_pool *p = make_pool(weights, 4);
	void *st = lb_random2_ops.create(p);
	struct lb_view view[4];
	unsigned count[4] = { 0 };

	(void)state;
	view_idle(p, view);
	for (unsigned k = 0; k < NKEYS; k++)
		count[r2_pick(st, view, NULL, 0)]++;
	for (int i = 0; i < 4; i++) {
		double share = (double)count[i] / NKEYS, want = weights[i] / 10.0;

		if (share < want - 0.01 || share > want + 0.01)
			fail_msg("server %d: share %.4f, want %.2f", i, share, want);
	}
	lb_random2_ops.destroy(st);
	free_pool(p);
}

/* Of the two drawn, the less loaded for its weight wins. */
static void
test_r2_prefers_less_loaded(void **state)
{
	const unsigned w2[] = { 1, 1 }, w3[] = { 1, 1, 1 };
	struct config_pool *p = make_pool(w2, 2), *q = make_pool(w3, 3);
	void *st = lb_random2_ops.create(p), *sq = lb_random2_ops.create(q);
	const struct lb_view busy_a[] = { { 1, 5 }, { 1, 0 } };
	const struct lb_view busy_bc[] = { { 1, 0 }, { 1, 10 }, { 1, 10 } };
	unsigned count[3] = { 0 };
	double share;

	(void)state;
	/* With two servers both are always drawn. */
	for (int k = 0; k < 1000; k++)
		assert_int_equal(r2_pick(st, busy_a, NULL, 0), 1);
	/* Of three, the idle one is in two pairs out of three. */
	for (int k = 0; k < 30000; k++)
		count[r2_pick(sq, busy_bc, NULL, 0)]++;
	share = count[0] / 30000.0;
	if (share < 2.0 / 3 - 0.02 || share > 2.0 / 3 + 0.02)
		fail_msg("idle server: share %.4f, want 0.667", share);
	lb_random2_ops.destroy(st);
	lb_random2_ops.destroy(sq);
	free_pool(p);
	free_pool(q);
}

/* Servers at weight 0 or already tried are never drawn; a single one left
 * is taken; none left: NULL. */
static void
test_r2_skips_unusable_and_tried(void **state)
{
	const unsigned weights[] = { 1, 1, 1, 1 };
	struct config_pool *p = make_pool(weights, 4);
	void *st = lb_random2_ops.create(p);
	const struct lb_view view[] = { { 1, 0 }, { 0, 0 }, { 1, 0 }, { 1, 0 } };
	const unsigned tried[] = { 2, 3 }, all[] = { 0, 2, 3 };
	unsigned count[4] = { 0 };

	(void)state;
	for (int k = 0; k < 10000; k++)
		count[r2_pick(st, view, tried, 1)]++;
	assert_int_equal(count[1], 0);
	assert_int_equal(count[2], 0);
	assert_true(count[0] > 0 && count[3] > 0);
	for (int k = 0; k < 100; k++)
		assert_int_equal(r2_pick(st, view, tried, 2), 0);
	assert_null(pick_view(&lb_random2_ops, st, view, all, 3, NULL));
	lb_random2_ops.destroy(st);
	free_pool(p);
}

static void
test_lb_find(void **state)
{
	(void)state;
	assert_ptr_equal(lb_find("roundrobin"), &lb_rr_ops);
	assert_ptr_equal(lb_find("leastconn"), &lb_leastconn_ops);
	assert_ptr_equal(lb_find("hash"), &lb_hash_ops);
	assert_ptr_equal(lb_find("random2"), &lb_random2_ops);
	assert_null(lb_find("nope"));
	assert_null(lb_find("Hash"));
	/* Only hash reads a key: the others' pools extract none. */
	assert_true(lb_hash_ops.keyed);
	assert_false(lb_rr_ops.keyed);
	assert_false(lb_leastconn_ops.keyed);
	assert_false(lb_random2_ops.keyed);
}

/* The hash is fixed: keys must map the same after an upgrade. */
static void
test_hash64_fixed(void **state)
{
	(void)state;
	assert_true(lb_hash64("", 0, 0) != lb_hash64("", 0, 1));
	assert_true(lb_hash64("ab", 2, 0) != lb_hash64("ab\0", 3, 0));
	assert_true(lb_hash64("abcdefgh1", 9, 0) != lb_hash64("abcdefgh2", 9, 0));
	assert_true(lb_hash64("user-1", 6, 7) == lb_hash64("user-1", 6, 7));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rr_exact_share_every_cycle),
		cmocka_unit_test(test_rr_smooth_order),
		cmocka_unit_test(test_rr_skips_tried),
		cmocka_unit_test(test_rr_skips_unusable),
		cmocka_unit_test(test_all_honour_tried),
		cmocka_unit_test(test_lc_least_loaded),
		cmocka_unit_test(test_lc_alternates_among_equals),
		cmocka_unit_test(test_lc_long_lived),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_hash_weights),
		cmocka_unit_test(test_hash_add_server),
		cmocka_unit_test(test_hash_server_gone),
		cmocka_unit_test(test_hash_retry),
		cmocka_unit_test(test_hash_no_key),
		cmocka_unit_test(test_r2_weights),
		cmocka_unit_test(test_r2_prefers_less_loaded),
		cmocka_unit_test(test_r2_skips_unusable_and_tried),
		cmocka_unit_test(test_lb_find),
		cmocka_unit_test(test_hash64_fixed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
