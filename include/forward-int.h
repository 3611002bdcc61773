/*
 * Internals of the forward module, shared by forward.c and the forward_*.c
 * files it is split into; only forward*.c include this header. forward.c
 * owns the exchange's life on the server side (pick, connect, retries, the
 * server connection's events, the end); forward_head.c the request head for
 * the server and the response head for the client; forward_body.c the
 * bodies relayed both ways.
 */
#ifndef SLUICE_FORWARD_INT_H
#define SLUICE_FORWARD_INT_H

#include "conn.h"
#include "session.h"

/* Bytes queued towards one side before reading from the other pauses. */
#define RELAY_HWM (256 * 1024)

#define SID(s) (unsigned long long)(s)->id, (s)->addr

/* -------------------------------------------------------------- forward.c */

/*
 * The response has ended (its framing said so, or the server closed a
 * close-delimited body): recycle or free the server connection and end the
 * exchange. Called with the response head sent.
 */
void forward_response_done(struct session *s);

/* --------------------------------------------------------- forward_head.c */

/*
 * The read callback of the server connection (arg: the session), given to
 * upstream_connect() and upstream_take_idle(): relay interim heads, then
 * check and rewrite the final head for the client (or start the tunnel on
 * a 101) and go on with the body.
 */
void forward_up_read_cb(struct conn *c, void *arg);

/* --------------------------------------------------------- forward_body.c */

/* Move the response body that is here towards the client; end the exchange
 * when its framing, or the server's close, says it is complete. */
void forward_response_body(struct session *s);

#endif
