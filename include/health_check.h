/*
 * One active health check of one server: a non-blocking connect on the
 * main thread's event_base (with TLS when the pool has tls = on), then for
 * http and socketio a request and its answer, ended by a verdict. Knows
 * nothing of verdict counting or weights (health.c).
 */
#ifndef SLUICE_HEALTH_CHECK_H
#define SLUICE_HEALTH_CHECK_H

#include <stdbool.h>

struct config_server;
struct event_base;
struct health_check;

/*
 * The check's outcome: passed, or not with why in words ("connect(ADDR)
 * failed: Connection refused", "status 503", "timed out after 1000 ms").
 * why is valid during the call only. Called once, from the loop; the check
 * is freed when the callback returns.
 */
typedef void (*health_check_cb)(void *arg, bool passed, const char *why);

/*
 * Start checking srv as its pool's health section says, within its
 * timeout. srv and its generation must outlive the check (or
 * health_check_cancel() it first). Returns NULL when out of memory; a
 * connect that fails at once is reported through cb like any failure.
 * Main thread.
 */
struct health_check *health_check_start(struct event_base *base,
		const struct config_server *srv, health_check_cb cb, void *arg);

/* Stop a check in flight and free it; cb is not called. */
void health_check_cancel(struct health_check *hc);

#endif
