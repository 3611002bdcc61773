/*
 * Connections to servers: opening them, and each worker's cache of idle
 * keep-alive connections per server. An upstream connection belongs to one
 * worker; while an exchange uses it, the exchange's session owns it.
 */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stdbool.h>
#include <sys/queue.h>
#include <stdint.h>

#include "conn.h"

struct worker;
struct config_server;

/* Owned by a session while in use, by the worker's idle list otherwise. */
struct upconn {
	TAILQ_ENTRY(upconn) link;
	struct worker *w;
	const struct config_server *srv;
	const struct config *gen;	/* srv's generation: parked only if still the worker's */
	struct conn *c;
	unsigned epoch;		/* srv's address epoch when connected (server.h) */
	bool connected;
	bool reused;		/* taken from the idle cache */
	bool idle;		/* on w->idle[srv->gindex] */
	unsigned uses;		/* exchanges carried so far */
	uint64_t parked_us;	/* when it went idle (util_now_us) */
};

/*
 * Start a non-blocking connect to srv, a server of generation gen (the
 * session's), with the given callbacks; over TLS when srv's pool says so,
 * and then CONN_CONNECTED follows the handshake. Returns NULL when the
 * connect fails at once (errno set); the callbacks then never run.
 */
struct upconn *upstream_connect(struct worker *w, const struct config *gen,
		const struct config_server *srv,
		conn_data_cb readcb, conn_data_cb drainedcb, conn_event_cb eventcb, void *arg);

/*
 * The most recently parked idle connection to srv, with the given callbacks
 * installed, or NULL. The idle cache holds the worker's current generation
 * only: a session still on an older one (after a reload) gets NULL.
 */
struct upconn *upstream_take_idle(struct worker *w, const struct config *gen,
		const struct config_server *srv,
		conn_data_cb readcb, conn_data_cb drainedcb, conn_event_cb eventcb, void *arg);

/*
 * Park a connection whose last exchange ended cleanly, or close it when the
 * cache for its server is full or the worker is stopping. Takes ownership.
 */
void upstream_release(struct upconn *up);

/* Close now; the memory goes when the worker reaps. Accepts NULL. */
void upstream_free(struct upconn *up);

/* Close every idle connection of w (worker stopping). */
void upstream_close_idle(struct worker *w);

/*
 * Close idle connections parked longer than upstream_idle. Called by the
 * worker once a second: parking and taking a connection then never touches
 * its read event, which would cost an epoll_ctl() each time.
 */
void upstream_sweep(struct worker *w);

/* Free connections queued by upstream_free. Worker thread, outside callbacks. */
void upstream_reap(struct worker *w);

#endif
