/*
 * Power of two random choices: draw two different servers at random, in
 * proportion to their weights, and give the request to the one with less
 * load for its weight (active / weight). Close to least connections in
 * effect, without every worker piling onto the same least-loaded server
 * between two updates of the counts.
 */
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "config-t.h"
#include "lb.h"

struct r2_state {
	const struct config_pool *pool;
	uint64_t rng;			/* generator state; picks are serialised */
};

static void *
r2_create(const struct config_pool *pool)
{
	struct r2_state *st = calloc(1, sizeof(*st));
	struct timespec ts;

	if (st == NULL)
		return NULL;
	st->pool = pool;
	/* Nothing depends on the draws being secret, only on replicas not
	 * drawing in lockstep: the clock will do when the kernel has no
	 * entropy to give yet. */
	if (getrandom(&st->rng, sizeof(st->rng), GRND_NONBLOCK) != (ssize_t)sizeof(st->rng)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		st->rng = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	return st;
}

static void
r2_destroy(void *state)
{
	free(state);
}

/* Uniform in [0, bound), bound at most 2^32. */
static uint64_t
r2_below(struct r2_state *st, uint64_t bound)
{
	/* A counter through a bijective mixer (as splitmix64 does): every
	 * state is visited, and its top 32 bits are well spread. */
	st->rng += 0x9e3779b97f4a7c15ULL;
	return ((lb_mix64(st->rng) >> 32) * bound) >> 32;
}

/* An eligible server other than skip, drawn in proportion to weight out of
 * total (the sum of their weights, above 0). */
static size_t
r2_draw(struct r2_state *st, const struct lb_request *req, size_t skip, uint64_t total)
{
	const struct config_pool *pool = st->pool;
	uint64_t r = r2_below(st, total);
	size_t last = pool->nservers;

	for (size_t i = 0; i < pool->nservers; i++) {
		if (i == skip || !lb_eligible(req, (unsigned)i))
			continue;
		if (r < req->view[i].weight)
			return i;
		r -= req->view[i].weight;
		last = i;
	}
	return last;
}

static const struct config_server *
r2_pick(void *state, const struct lb_request *req)
{
	struct r2_state *st = state;
	const struct config_pool *pool = st->pool;
	uint64_t total = 0;
	size_t n = 0, a, b;

	for (size_t i = 0; i < pool->nservers; i++)
		if (lb_eligible(req, (unsigned)i)) {
			total += req->view[i].weight;
			n++;
		}
	if (n == 0)
		return NULL;
	a = r2_draw(st, req, pool->nservers, total);
	if (n == 1)
		return &pool->servers[a];
	b = r2_draw(st, req, a, total - req->view[a].weight);
	/* On a tie the first draw wins: with equal loads the choice then
	 * follows the weights exactly. */
	return &pool->servers[lb_less_loaded(&req->view[b], &req->view[a]) ? b : a];
}

const struct lb_ops lb_random2_ops = {
	.name = "random2",
	.keyed = false,
	.create = r2_create,
	.destroy = r2_destroy,
	.pick = r2_pick,
};
