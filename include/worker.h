/*
 * A worker: its event_base, its listening sockets, the sessions it accepted
 * and its idle upstream connections. Everything a worker owns is touched by
 * the thread that runs its loop only, except stop and reload requests
 * (worker_stop, worker_reload), which arrive through a pipe so that no
 * event_base needs locks. A worker runs on a thread of its own, or, with
 * workers = 1, on the main thread's loop (worker_new's base).
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct config;
struct event;
struct event_base;
struct evconnlistener;
struct lsock;
struct session;
struct worker_handover;
struct upconn;
struct http_header;
struct sid_store;
struct rl_backend_ops;
struct rl_redis;

TAILQ_HEAD(session_list, session);
TAILQ_HEAD(upconn_list, upconn);

/* Owned by main.c; one per worker thread, or the main thread's one. */
struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct config *cfg;			/* current generation: new sessions take it */
	struct worker_handover *_Atomic next;	/* by worker_reload(), not taken yet */
	struct evconnlistener **listeners;	/* one per listener of cfg, in its order */
	struct lsock **lsocks;			/* the socket under each; a reference each */
	size_t nlisteners;
	int notify[2];				/* pipe: worker_stop() writes, stop_ev reads */
	int done_fd;				/* written once when the thread's loop ends; not owned */
	struct event *stop_ev;
	struct event *grace_ev;			/* shutdown_timeout expiry */
	struct event *reap_ev;			/* frees closed sessions outside callbacks */
	struct event *sweep_ev;			/* once a second: idle upstream expiry */
	struct event *accept_ev;		/* resumes accepting after an accept() error */
	bool accept_paused;
	bool started;				/* the thread runs */
	bool base_shared;			/* base is the main loop's: not owned, no thread */
	bool stopping;
	struct session_list sessions;		/* live sessions */
	struct session_list dead;		/* closed, waiting for reap_ev */
	size_t nsessions;
	struct upconn_list *idle;		/* per config_server.gindex, most recent first */
	unsigned *nidle;
	struct upconn_list idle_dead;		/* closed connections to free */
	struct http_header *hdrs;		/* scratch for parsing heads */
	struct sid_store *sids;			/* Engine.IO sid table, shared; not owned */
	/* Rate limits (ratelimit.h): the backend that takes tokens and counts
	 * connections (the in-process table shared by the workers by
	 * default, set by main.c); not owned. */
	const struct rl_backend_ops *rl_ops;
	void *rl_be;
	/* The worker's Redis backend when the file has a redis { } section
	 * (then rl_ops/rl_be point at it); owned, freed with the worker. */
	struct rl_redis *rl_redis;
	unsigned nhdrs;
};

/*
 * Create a worker for cfg on the listening sockets socks[0..cfg->nlisteners)
 * (it takes its own references to both). With base NULL the worker gets an
 * event_base and, from worker_start(), a thread of its own; otherwise it
 * runs on base, which the caller dispatches and frees after the worker.
 * Returns NULL on failure. Main thread.
 */
struct worker *worker_new(unsigned id, struct config *cfg, struct lsock *const *socks,
	struct event_base *base);

/*
 * An event_base configured as a worker's loop wants it (worker_new() with
 * a base of its own makes one like it). NULL on failure.
 */
struct event_base *worker_base_new(void);

/*
 * Start the thread; nothing for a worker on a shared base, which the
 * caller's loop runs. Returns 0 or -1.
 */
int worker_start(struct worker *w) __attribute__((warn_unused_result));

/*
 * Ask the worker to stop gracefully; with force, end its remaining
 * sessions now instead of after shutdown_timeout. Any thread.
 */
void worker_stop(struct worker *w, bool force);

/*
 * A new generation and the sockets of its listeners for one worker,
 * socks[0..cfg->nlisteners) (it takes its own references), made before a
 * reload commits to anything. NULL when out of memory. Main thread.
 */
struct worker_handover *worker_handover_new(struct config *cfg, struct lsock *const *socks);
/* One that was not handed over. Any thread. */
void worker_handover_free(struct worker_handover *h);

/*
 * Hand the worker h (it owns it from then on): sessions accepted from then
 * on use its generation; established ones keep theirs. The worker accepts
 * on the sockets it did not have, and stops accepting on those the new
 * generation does not list. A generation not taken yet is replaced. Main
 * thread.
 */
void worker_reload(struct worker *w, struct worker_handover *h);

/* Wait for the thread to end (if it was started), then free. Main thread. */
void worker_join_free(struct worker *w);

/* Queue s for freeing once the current callbacks return. Worker thread. */
void worker_defer_free(struct worker *w, struct session *s);

#endif
