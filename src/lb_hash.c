/*
 * Consistent hashing on the request's key (lb_key.c extracts it), by
 * weighted rendezvous hashing: every server scores the key, the highest
 * score wins. A server that goes down or is removed takes only its own keys
 * with it, and they spread over the others in proportion to weight; one
 * that is added takes from each of the others its share and nothing more.
 * Servers are scored by name, so a key maps to the same server across
 * reloads, replicas and reorderings of the file. A request without a key
 * goes by smooth weighted round-robin.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config-t.h"
#include "lb.h"

/* Seeds of the key and server name hashes: any fixed values will do, but
 * they must never change, or every key moves on upgrade. */
#define HASH_SEED_KEY		0x736c756963652d6bULL	/* "sluice-k" */
#define HASH_SEED_SERVER	0x736c756963652d73ULL	/* "sluice-s" */

struct hash_state {
	const struct config_pool *pool;
	void *rr;			/* lb_rr state, for requests without a key */
	uint64_t name_hash[];		/* per server, of its name */
};

static void *
hash_create(const struct config_pool *pool)
{
	struct hash_state *st = calloc(1, sizeof(*st) + pool->nservers * sizeof(uint64_t));

	if (st == NULL)
		return NULL;
	st->pool = pool;
	st->rr = lb_rr_ops.create(pool);
	if (st->rr == NULL) {
		free(st);
		return NULL;
	}
	for (size_t i = 0; i < pool->nservers; i++) {
		const char *name = pool->servers[i].name;

		st->name_hash[i] = lb_hash64(name, strlen(name), HASH_SEED_SERVER);
	}
	return st;
}

static void
hash_destroy(void *state)
{
	struct hash_state *st = state;

	lb_rr_ops.destroy(st->rr);
	free(st);
}

/*
 * Server i's score for the key: weight / -ln(u), u uniform in (0, 1) drawn
 * from the key and the server. The largest of such scores falls on each
 * server with probability weight / sum(weights), and a server's score does
 * not depend on which other servers exist.
 */
static double
hash_score(uint64_t key_hash, uint64_t name_hash, unsigned weight)
{
	uint64_t x = lb_mix64(key_hash ^ name_hash);
	/* The top 53 bits, centred in their interval: never 0, never 1. */
	double u = ((double)(x >> 11) + 0.5) * 0x1p-53;

	return (double)weight / -log(u);
}

static const struct config_server *
hash_pick(void *state, const struct lb_request *req)
{
	struct hash_state *st = state;
	const struct config_pool *pool = st->pool;
	size_t best = pool->nservers;
	double best_score = 0;
	uint64_t kh;

	if (req->key == NULL || req->key_len == 0)
		return lb_rr_ops.pick(st->rr, req);
	kh = lb_hash64(req->key, req->key_len, HASH_SEED_KEY);
	/* A retry skips the servers tried: the key's next best server takes
	 * it, the same for every request with that key. */
	for (size_t i = 0; i < pool->nservers; i++) {
		double score;

		if (!lb_eligible(req, (unsigned)i))
			continue;
		score = hash_score(kh, st->name_hash[i], req->view[i].weight);
		if (best == pool->nservers || score > best_score) {
			best = i;
			best_score = score;
		}
	}
	return best == pool->nservers ? NULL : &pool->servers[best];
}

const struct lb_ops lb_hash_ops = {
	.name = "hash",
	.keyed = true,
	.create = hash_create,
	.destroy = hash_destroy,
	.pick = hash_pick,
};
