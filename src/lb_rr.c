/*
 * Smooth weighted round-robin (as in nginx): every pick adds each server's
 * weight to its current value, takes the largest and subtracts the total
 * from it. Over any cycle of sum(weights) picks each server gets exactly its
 * weight, spread out rather than in bursts.
 */
#include <stdlib.h>

#include "config-t.h"
#include "lb.h"

struct rr_state {
	const struct config_pool *pool;
	long current[];			/* one per server */
};

static void *
rr_create(const struct config_pool *pool)
{
	struct rr_state *st = calloc(1, sizeof(*st) + pool->nservers * sizeof(long));

	if (st != NULL)
		st->pool = pool;
	return st;
}

static void
rr_destroy(void *state)
{
	free(state);
}

static const struct config_server *
rr_pick(void *state, const struct lb_request *req)
{
	struct rr_state *st = state;
	const struct config_pool *pool = st->pool;
	long total = 0;
	size_t best = pool->nservers;

	for (size_t i = 0; i < pool->nservers; i++) {
		/* A server already tried for this request, or not usable now,
		 * takes no part in the round, so the others' shares stay
		 * exact; slow start gives a server its ramping weight. */
		if (!lb_eligible(req, (unsigned)i))
			continue;
		st->current[i] += req->view[i].weight;
		total += req->view[i].weight;
		if (best == pool->nservers || st->current[i] > st->current[best])
			best = i;
	}
	if (best == pool->nservers)
		return NULL;
	st->current[best] -= total;
	return &pool->servers[best];
}

const struct lb_ops lb_rr_ops = {
	.name = "roundrobin",
	.keyed = false,
	.create = rr_create,
	.destroy = rr_destroy,
	.pick = rr_pick,
};
