/*
 * Internals of the session module, shared by session.c and the session_*.c
 * files it is split into; only session*.c include this header. session.c
 * owns the life cycle, the client's events and the end of each exchange;
 * session_head.c checks, routes and admits request heads; session_answer.c
 * writes the answers sluice makes itself; session_log.c formats the
 * access-log line.
 */
#ifndef SLUICE_SESSION_INT_H
#define SLUICE_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "http.h"
#include "session.h"
#include "util.h"

/*
 * Inline, as they were when session.c was one file: session_head.c begins
 * an exchange on every request head, session.c on a head that timed out.
 */

/* Reset the exchange for the next request on this connection. */
static inline void
exchange_reset(struct session *s)
{
	struct exchange *ex = &s->ex;

	memset(ex, 0, sizeof(*ex));
}

/* Start an exchange: from here on, it is logged whatever happens. */
static inline void
exchange_begin(struct session *s)
{
	struct exchange *ex = &s->ex;

	exchange_reset(s);
	ex->active = true;
	ex->phase = PHASE_HEAD;
	ex->client_keep_alive = false;
	strcpy(ex->method_str, "-");
	ex->t_start_us = util_now_us();
}

/* -------------------------------------------------------------- session.c */

/* Log the exchange once and forget it (no-op when none is active); the
 * session goes on or not. */
void session_exchange_end(struct session *s, enum session_term term);

/*
 * Stop after the bytes in the output buffer are sent. With linger, the
 * write side is shut and the client's remaining input drained for a while
 * so that a client still sending does not turn our close into a reset that
 * destroys the answer. No-op on a dead session.
 */
void session_close(struct session *s, bool linger);

/* --------------------------------------------------------- session_head.c */

/*
 * Take the next request head from the client's input and act on it: an
 * answer of our own, or the exchange handed to forward.c. Whether a head
 * was found and handled; false when more bytes are needed or the session
 * stopped. Called by session_client_read() with no exchange active.
 */
bool session_read_head(struct session *s);

/* ------------------------------------------------------- session_answer.c */

/*
 * A plain listener with redirect_https: 301 to the same host and path over
 * https, then end the exchange. t points into the head; head_len bytes of
 * head are dropped from the input after the answer is written.
 */
void session_answer_redirect(struct session *s, const struct http_target *t,
		size_t head_len);

/* 429 for the rate-limit denial s->rl holds, then end the exchange. close:
 * close the connection after it whatever the request (kind = connections). */
void session_answer_rate_limited(struct session *s, bool close);

/* ---------------------------------------------------------- session_log.c */

/* Write the access-log line of s's current exchange (nothing when the
 * access log is off). */
void session_log_write(const struct session *s);

#endif
