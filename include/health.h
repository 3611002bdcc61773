/*
 * Server health: active checks run by the main thread, passive ejection
 * reported by the workers, flap hold-down and slow start, which together
 * give each server its weight_now (server.h). Health is kept by pool and
 * server name, so a reload keeps it. The decisions themselves are pure
 * functions in health_state.h; the checks' I/O is health_check.h's.
 */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>

struct config;
struct config_pool;
struct config_server;
struct event_base;

/*
 * A pool's ejection count, shared by every generation that has a pool of
 * that name. Workers take and the main thread gives back slots with
 * atomics only.
 */
struct health_pool {
	atomic_uint ejected;		/* servers ejected now */
	atomic_uint max_ejected;	/* max_ejected of the pool's size, rounded down */
};

/*
 * The health of one server, shared by every generation that has a server
 * of that pool and name (srv->rt->health). Owned by health.c, which frees
 * it once no generation it keeps has the server. Workers write the
 * passive fields; the main thread writes the rest. The counters count
 * since start and are for metrics.
 */
struct server_health {
	atomic_uint connect_failures;	/* failed connects in a row (passive) */
	atomic_uint status_5xx;		/* 5xx answers in a row (passive) */
	/*
	 * Set by the worker that ejects (which then sets ejected_until_ms);
	 * cleared by the main thread once ejected_until_ms has passed. 0 in
	 * ejected_until_ms means the ejecting worker has not written it yet.
	 */
	atomic_bool ejected;
	atomic_ullong ejected_until_ms;	/* util_now_us() / 1000 */
	atomic_uint ejection_level;	/* ejections in a row: the duration's multiplier */
	atomic_bool check_up;		/* the active checks' verdict (true without checks) */
	atomic_bool held;		/* held down for flapping */
	atomic_ullong transitions;	/* active check verdict changes, up or down */
	atomic_ullong ejections;	/* passive ejections */
	atomic_ullong flap_holds;	/* holds for flapping */
	struct health_pool *pool;
};

/*
 * Take cfg (a reference of its own) as the running generation: state for
 * each of its servers, checks scheduled for pools with a health section
 * (first ones spread over one interval), and a tick that ends ejections
 * and holds and ramps weights. Servers start up: traffic flows at once,
 * and a dead server goes down after fall checks (or sooner by passive
 * ejection). Main thread, on base, before the workers start. 0 or -1.
 */
int health_start(struct event_base *base, struct config *cfg) __attribute__((warn_unused_result));

/*
 * cfg replaces the running generation, which health keeps (with its
 * server_rt weights up to date) as long as sessions use it. Servers are
 * matched by pool and server name: their verdicts, ejections, holds and
 * ramps carry over; a server new to the file comes up through slow start;
 * checks in flight are dropped and run again within one interval. Call
 * after pool_attach(cfg), before the workers get cfg. Main thread. 0 or
 * -1 (out of memory: cfg is not taken).
 */
int health_reload(struct config *cfg) __attribute__((warn_unused_result));

/*
 * Store srv's weight_now from what is known now: present (DNS discovery),
 * the checks' verdict, a flap hold, an ejection, slow start. For a server
 * of a generation health has not taken yet, present and the configured
 * weight only. server_refresh_weight() (pool.c) calls it. Main thread.
 */
void health_refresh_weight(const struct config_server *srv);

/* Cancel checks, drop every generation kept and free all. Main thread, after the workers ended. */
void health_stop(void);

/*
 * Passive reports from the data path, lock-free, any worker. A connect
 * that failed (refused, timed out, TLS handshake failed) or succeeded;
 * the status of a server's answer (or 504 when none came in time). When
 * the pool's threshold is reached, the reporting worker ejects the server
 * itself, at once, unless max_ejected of the pool already are.
 */
void health_passive_connect_failed(const struct config_server *srv);
void health_passive_connect_ok(const struct config_server *srv);
void health_passive_status(const struct config_server *srv, int status);

/*
 * Seconds a client should wait after a 503 for lack of a usable server:
 * how long checks take to bring one back (interval x rise), at least 1.
 * Any thread.
 */
unsigned health_retry_after_s(const struct config_pool *pool);

#endif
