/*
 * The Redis backend of the rate limiter: one per worker thread, on the
 * worker's event loop. It owns its hiredis connection, the leases it holds
 * and the requests waiting on Redis; the policies and the HTTP side are
 * ratelimit.c's. Public names carry "rl_redis_": hiredis owns "redis".
 */
#ifndef SLUICE_REDIS_H
#define SLUICE_REDIS_H

#include <stdint.h>

#include "config-t.h"
#include "ratelimit.h"

struct event_base;
struct rl_redis;

/*
 * A backend for worker worker_id on base, connecting to cfg->redis (which
 * must be on) at once and again with back-off whenever the connection
 * drops. It copies what it needs from cfg. on_error = local asks local_ops
 * with local_be (which must answer synchronously); with local_ops NULL,
 * local behaves as allow. Returns NULL when out of memory. Call it before
 * the worker's thread runs, or in that thread.
 */
struct rl_redis *rl_redis_new(struct event_base *base, const struct config *cfg,
		unsigned worker_id, const struct rl_backend_ops *local_ops, void *local_be);

/*
 * Close the connection and free everything. Waiting requests are not
 * answered: their sessions must be gone already. Accepts NULL. The worker's
 * thread, or the main thread once that thread has ended.
 */
void rl_redis_free(struct rl_redis *rr);

/* take() and cancel() of struct rl_backend_ops, be being a struct rl_redis. */
extern const struct rl_backend_ops rl_redis_ops;

/*
 * Process-wide counters, for metrics; each one only grows. Summed over the
 * workers, read with relaxed atomics (any thread).
 */
struct rl_redis_counters {
	uint64_t down;			/* a worker's connection went from usable to not */
	uint64_t up;			/* ... and back */
	uint64_t round_trips;		/* EVALSHA sent */
	uint64_t leased;		/* requests answered from a lease, no round trip */
	uint64_t timeouts;		/* requests answered by on_error after the budget */
	uint64_t errors;		/* requests answered by on_error for another reason */
};

void rl_redis_counters(struct rl_redis_counters *out);

/* The SHA1 of a script, in hex, as EVALSHA names it. Returns 0 or -1. */
int rl_redis_script_sha(const char *script, size_t len, char out[41]);

/*
 * For redis_conn.c too: a question of rr's worker went past its budget
 * (counted; "slow" logged once for the process), an answer came after
 * took_us ("answers within ... again" once the slowness is over), or
 * on_error answered because Redis could not (counted).
 */
void rl_redis_note_late(struct rl_redis *rr);
void rl_redis_note_answer(struct rl_redis *rr, uint64_t took_us);
void rl_redis_note_error(void);

#endif
