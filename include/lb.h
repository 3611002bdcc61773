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

/*
 * What a balancer sees of server i of its pool at pick time: its weight now
 * (0: it must not be picked: down, ejected, removed; less than configured
 * during slow start) and the exchanges and tunnels it carries now.
 */
struct lb_view {
	unsigned weight;
	unsigned active;
};

/* What a pick is about: the servers' state, and the request's hash key. */
struct lb_request {
	const struct lb_view *view;	/* one per server of the pool, by index */
	const unsigned *tried;		/* indexes already tried for this request */
	size_t ntried;
	const char *key;		/* for hashing balancers; NULL when none */
	size_t key_len;
};

struct lb_ops {
	const char *name;
	/* State for pool; NULL on allocation failure. */
	void *(*create)(const struct config_pool *pool);
	void (*destroy)(void *state);
	/*
	 * A server with a weight above 0 and not in tried, or NULL when none
	 * is left.
	 */
	const struct config_server *(*pick)(void *state, const struct lb_request *req);
};

extern const struct lb_ops lb_rr_ops;

/* The balancer called name, or NULL. */
const struct lb_ops *lb_find(const char *name);

/* Whether server index i is in tried[0..ntried). Shared by balancers. */
int lb_was_tried(unsigned i, const unsigned *tried, size_t ntried);

/* Whether server index i may be picked for req: weight above 0, not tried. */
int lb_eligible(const struct lb_request *req, unsigned i);

#endif
