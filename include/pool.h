/*
 * Runtime state of a pool: its balancer, shared by every worker and
 * serialised by a mutex (a pick is a few dozen instructions). Attached to a
 * configuration generation and freed with it.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct config_pool;
struct config_server;

/*
 * Create the runtime state of every pool of cfg and set cfg->on_free so the
 * last config_unref() releases it. A server that prev (the running
 * generation, or NULL) lists in the same pool, by the same name and at the
 * same address, shares its load counts with it. Returns 0 or -1 (nothing
 * attached). Main thread, before the generation is shared.
 */
int pool_attach(struct config *cfg, const struct config *prev) __attribute__((warn_unused_result));

/*
 * A server for a new request: usable now, not among tried (indexes), chosen
 * by the pool's balancer (key: the request's hash key, for hashing
 * balancers; NULL otherwise). NULL when none is left. Any worker.
 */
const struct config_server *pool_pick(struct config_pool *pool, const unsigned *tried,
		size_t ntried, const char *key, size_t key_len);

/*
 * Count a request answered 503 because no server of pool was usable, and
 * log it at most once a second with the count. Any worker.
 */
void pool_note_unusable(struct config_pool *pool);
unsigned long long pool_unusable_count(const struct config_pool *pool);

/* Whether any server of pool may get new sessions now. */
bool pool_any_usable(const struct config_pool *pool);

#endif
