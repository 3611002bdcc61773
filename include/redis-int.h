/*
 * Internals of the Redis backend, shared by redis.c and redis_link.c; only
 * those two include this header (redis_conn.c sees the backend through
 * redis.h and redis_conn.h). redis.c owns the backend object, its leases,
 * the waiting requests, the GCRA script and its replies; redis_link.c owns
 * the connection and the state shared by the whole process.
 */
#ifndef SLUICE_REDIS_INT_H
#define SLUICE_REDIS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <hiredis/async.h>

#include "config-t.h"
#include "ratelimit.h"
#include "redis.h"
#include "resolve.h"

struct event;
struct event_base;
struct lease;				/* a (policy, key) in Redis; redis.c's */
struct rl_conns;

/* The waiting requests (struct rl_wait, redis.c's), by lease or by deadline. */
TAILQ_HEAD(wait_list, rl_wait);

enum rr_state {
	RR_DOWN = 0,			/* no connection; a retry is scheduled */
	RR_CONNECTING,			/* commands queue, the handshake is under way */
	RR_UP,				/* the script is loaded: answers come */
};

/*
 * The connection to Redis: redis_link.c's alone, as only that file writes
 * these fields. The other files read the context and the address through
 * the functions below (rl_redis_link_ac() and its kin), never the fields.
 */
struct rl_redis_link {
	char *address;			/* for the logs, as written */
	char *host;
	int port;
	bool literal;			/* host is an IP address: no question to ask */
	struct resolve *resolving;	/* host's addresses, being asked off the loop */
	struct sockaddr_storage addrs[RESOLVE_MAX];	/* host's, as last answered */
	size_t naddrs;
	size_t next_addr;		/* the next one to try; naddrs: ask again */
	char *user;
	char *password;
	size_t password_len;

	/* NULL while there is none. Its data is the struct rl_redis, for the
	 * callbacks of redis.c and redis_link.c alike. */
	redisAsyncContext *ac;
	enum rr_state state;
	unsigned backoff_ms;
	struct event *retry_ev;		/* reconnect after back-off */
	struct event *connect_ev;	/* a connect that takes too long */
	bool probe_owed;		/* a PING is out on ac */
	uint64_t probe_sent_at;
};

/*
 * One per worker, owned by it (struct worker.rl_redis); made and freed by
 * redis.c. The fields before link are in neither part because the link
 * reads them too: rl_redis_new() sets them before the link starts (the
 * link connects on the worker's base, and needs timeout_us for the probe's
 * limit, on_error for its log lines and conns to tell it of each new
 * connection). rl_redis_free() sets freeing before it frees
 * anything, so that the callbacks either file still has owed return at once.
 */
struct rl_redis {
	struct event_base *base;
	uint64_t timeout_us;
	unsigned on_error;		/* enum config_redis_error */
	bool freeing;
	struct rl_conns *conns;		/* kind = connections (redis_conn.c) */

	struct rl_redis_link link;	/* redis_link.c's */

	/* The rest is redis.c's: the keys, the leases and their waiters. */
	char *prefix;
	size_t prefix_len;
	unsigned lease_max;
	const struct rl_backend_ops *local_ops;
	void *local_be;
	char sha[41];			/* SHA1 of the GCRA script, hex */
	struct event *budget_ev;	/* the oldest waiter's deadline */
	struct event *sweep_ev;		/* forgets idle leases, sends the probe */
	struct lease **buckets;
	size_t nbuckets;		/* a power of 2 */
	size_t nleases;
	struct wait_list waiting;	/* every waiter, by deadline */
};

/* ---------------------------------------------------------------- redis.c */

/* The GCRA script, which the handshake loads and EVALSHA runs. */
extern const char rl_redis_gcra_script[];
extern const size_t rl_redis_gcra_script_len;	/* without its NUL */

/* ----------------------------------------------------------- redis_link.c */

/*
 * The process-wide counters behind rl_redis_counters(). Inline, as they
 * were when the backend was one file: take() counts a leased answer on
 * every request that a lease serves.
 */
struct rl_redis_tally {
	atomic_uint_fast64_t down, up, round_trips, leased, timeouts, errors;
};

extern struct rl_redis_tally rl_redis_tally;

static inline void
rl_redis_count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline const char *
rl_redis_on_error_name(unsigned e)
{
	return e == CONFIG_REDIS_ALLOW ? "allow" : e == CONFIG_REDIS_DENY ? "deny" : "local";
}

/*
 * The connection to send a command on, NULL while there is none. Commands
 * sent while it connects queue behind the handshake.
 */
static inline redisAsyncContext *
rl_redis_link_ac(const struct rl_redis *rr)
{
	return rr->link.ac;
}

/*
 * Where the link keeps its context, for a reader that must see it change
 * (struct rl_conns_conf.ac); read-only.
 */
static inline redisAsyncContext *const *
rl_redis_link_ac_slot(const struct rl_redis *rr)
{
	return &rr->link.ac;
}

/* The address as written in the config, for log lines. */
static inline const char *
rl_redis_link_address(const struct rl_redis *rr)
{
	return rr->link.address;
}

/*
 * Fill rr's connection fields from c (address, host and port, user and
 * password) and make its timers on rr->base. Returns 0, or -1 when out of
 * memory or when the address does not parse; then rl_redis_link_close()
 * frees what was made. The caller's thread, before the connection starts.
 */
int rl_redis_link_init(struct rl_redis *rr, const struct config_redis *c)
	__attribute__((warn_unused_result));

/* Connect, or first ask for the host's addresses; failures retry with back-off. */
void rl_redis_link_start(struct rl_redis *rr);

/*
 * With rr->freeing set and rr->conns freed: stop resolving, send what is
 * queued if the socket takes it now, free the connection (its pending
 * callbacks see a NULL reply), the timers and the fields init made.
 */
void rl_redis_link_close(struct rl_redis *rr);

/* SCRIPT LOAD, so that EVALSHA finds the script. Returns 0 or -1. */
int rl_redis_send_script(struct rl_redis *rr);

/*
 * From the sweep, each second: send a PING while none is owed, or drop the
 * connection (and make it again) when one has been owed too long.
 */
void rl_redis_probe(struct rl_redis *rr, uint64_t now);

#endif
