/*
 * Connection counts (rate limits of kind = connections) kept in Redis, one
 * worker's side: redis.c's backend hands acquire() and release() to it and
 * tells it of each new connection to Redis. Internal to the Redis backend.
 */
#ifndef SLUICE_REDIS_CONN_H
#define SLUICE_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

struct event_base;
struct redisAsyncContext;
struct rl_conns;
struct rl_redis;

/* What the counts need of their worker's backend; copied. */
struct rl_conns_conf {
	struct event_base *base;
	struct rl_redis *owner;		/* its counters and log lines (redis.h) */
	unsigned worker_id;
	const char *prefix;		/* the keys' prefix (redis { prefix }) */
	uint64_t timeout_us;		/* an answer's budget */
	unsigned on_error;		/* enum config_redis_error */
	const struct rl_backend_ops *local_ops;	/* on_error = local; answers at once */
	void *local_be;
	/* The backend's connection, NULL while there is none: commands go
	 * there, after the handshake that redis_link.c queued first. */
	struct redisAsyncContext *const *ac;
};

/* NULL when out of memory. */
struct rl_conns *rl_conns_new(const struct rl_conns_conf *conf);

/*
 * Free the counts. Call it before the connection is freed: it queues the
 * deletion of this worker's alive key (its counts stop counting at once),
 * which the caller may flush, and the replies still owed then free only
 * what they own. Accepts NULL.
 */
void rl_conns_free(struct rl_conns *c);

/*
 * *conf->ac is a new connection, with the handshake queued: load the
 * script, and write what this worker holds under a new epoch, so that
 * what the old connection may have left half-done stops counting.
 */
void rl_conns_linked(struct rl_conns *c);

/* acquire(), release() and (for acquire's callers) cancel() of struct rl_backend_ops. */
int rl_conns_acquire(struct rl_conns *c, const struct rl_policy *p, const char *key,
		size_t keylen, struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg);
void rl_conns_release(struct rl_conns *c, struct rl_hold *hold);
void rl_conns_cancel(struct rl_conns *c, void *arg);

#endif
