/*
 * Balancer interface: one implementation per file (lb_rr.c, ...), chosen per
 * pool. A balancer picks a server of its pool, skipping the ones the caller
 * has already tried for this request. Calls are serialised by the pool.
 */
#ifndef SLUICE_LB_H
#define SLUICE_LB_H

#include <stddef.h>

struct config_pool;
struct config_server;

struct lb_ops {
	const char *name;
	/* State for pool; NULL on allocation failure. */
	void *(*create)(const struct config_pool *pool);
	void (*destroy)(void *state);
	/*
	 * A server not listed in tried[0..ntried) (indexes within the pool), or
	 * NULL when every server was tried.
	 */
	const struct config_server *(*pick)(void *state, const unsigned *tried, size_t ntried);
};

extern const struct lb_ops lb_rr_ops;

/* The balancer called name, or NULL. */
const struct lb_ops *lb_find(const char *name);

/* Whether server index i is in tried[0..ntried). Shared by balancers. */
int lb_was_tried(unsigned i, const unsigned *tried, size_t ntried);

#endif
