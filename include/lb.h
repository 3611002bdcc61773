/*
 * Balancer interface: one implementation per file (lb_rr.c, ...), chosen per
 * pool. A balancer picks a server of its pool, skipping the ones the caller
 * has already tried for this request. Calls are serialised by the pool.
 */
#ifndef SLUICE_LB_H
#define SLUICE_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	/* Whether pick reads req->key: only then do callers extract one
	 * from the request (lb_key.h), so other pools pay nothing for it. */
	bool keyed;
	/* State for pool; NULL on allocation failure. */
	void *(*create)(const struct config_pool *pool);
	void (*destroy)(void *state);
	/*
	 * A server with a weight above 0 and not in tried, or NULL when none
	 * is left.
	 */
	const struct config_server *(*pick)(void *state, const struct lb_request *req);
};

extern const struct lb_ops lb_rr_ops;		/* lb_rr.c: "roundrobin" */
extern const struct lb_ops lb_leastconn_ops;	/* lb_leastconn.c: "leastconn" */
extern const struct lb_ops lb_hash_ops;		/* lb_hash.c: "hash" */
extern const struct lb_ops lb_random2_ops;	/* lb_random2.c: "random2" */

/* The balancer called name, or NULL. */
const struct lb_ops *lb_find(const char *name);

/* Whether server index i is in tried[0..ntried). Shared by balancers. */
int lb_was_tried(unsigned i, const unsigned *tried, size_t ntried);

/* Whether server index i may be picked for req: weight above 0, not tried. */
int lb_eligible(const struct lb_request *req, unsigned i);

/*
 * Whether server i carries less load than server j for its weight:
 * active_i / weight_i < active_j / weight_j, compared exactly. Both weights
 * must be above 0.
 */
static inline bool
lb_less_loaded(const struct lb_view *i, const struct lb_view *j)
{
	return (uint64_t)i->active * j->weight < (uint64_t)j->active * i->weight;
}

/*
 * A 64-bit hash of len bytes, different for each seed. Stable across runs,
 * builds and byte orders of the same width: consistent hashing depends on
 * it, and so do keys shared by replicas.
 */
uint64_t lb_hash64(const void *data, size_t len, uint64_t seed);

/* Mix x into 64 well-spread bits (a bijection). */
uint64_t lb_mix64(uint64_t x);

#endif
