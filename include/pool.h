/*
 * Runtime state of a pool: its balancer, shared by every worker and
 * serialised by a mutex (a pick is a few dozen instructions). Attached to a
 * configuration generation and freed with it.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stddef.h>

struct config;
struct config_pool;
struct config_server;

/*
 * Create the runtime state of every pool of cfg and set cfg->on_free so the
 * last config_unref() releases it. Returns 0 or -1 (nothing attached).
 * Main thread, before the generation is shared.
 */
int pool_attach(struct config *cfg) __attribute__((warn_unused_result));

/* A server for a new request, skipping tried ones; NULL when none is left. */
const struct config_server *pool_pick(struct config_pool *pool, const unsigned *tried,
		size_t ntried);

#endif
