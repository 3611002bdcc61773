/*
 * Least connections, weighted: the server with the fewest exchanges and
 * tunnels in progress for its weight (active / weight) gets the request.
 * Servers that tie share the picks by smooth weighted round-robin, so that
 * idle or equally loaded servers alternate instead of the first one taking
 * every short request. Suits long-lived WebSockets, whose load the
 * request count of round-robin does not see.
 */
#include <stdlib.h>

#include "config-t.h"
#include "lb.h"

struct lc_state {
	const struct config_pool *pool;
	long current[];			/* smooth round-robin among ties, per server */
};

static void *
lc_create(const struct config_pool *pool)
{
	struct lc_state *st = calloc(1, sizeof(*st) + pool->nservers * sizeof(long));

	if (st != NULL)
		st->pool = pool;
	return st;
}

static void
lc_destroy(void *state)
{
	free(state);
}

static const struct config_server *
lc_pick(void *state, const struct lb_request *req)
{
	struct lc_state *st = state;
	const struct config_pool *pool = st->pool;
	size_t n = pool->nservers, least = n, best = n;
	long total = 0;

	for (size_t i = 0; i < n; i++)
		if (lb_eligible(req, (unsigned)i) &&
		    (least == n || lb_less_loaded(&req->view[i], &req->view[least])))
			least = i;
	if (least == n)
		return NULL;
	/* Only the servers as lightly loaded as the least take part in the
	 * round; each step adds and removes the same total among them, so
	 * the counters of the others stay where they were. */
	for (size_t i = least; i < n; i++) {
		if (!lb_eligible(req, (unsigned)i) ||
		    lb_less_loaded(&req->view[least], &req->view[i]))
			continue;
		st->current[i] += req->view[i].weight;
		total += req->view[i].weight;
		if (best == n || st->current[i] > st->current[best])
			best = i;
	}
	st->current[best] -= total;
	return &pool->servers[best];
}

const struct lb_ops lb_leastconn_ops = {
	.name = "leastconn",
	.keyed = false,
	.create = lc_create,
	.destroy = lc_destroy,
	.pick = lc_pick,
};
