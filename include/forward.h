/*
 * The server side of an exchange: building the request head for the
 * server, choosing and connecting to a server (with retries), streaming the
 * request body, reading the response head and relaying the response body.
 * Worker thread only; every function takes the session that owns the
 * exchange. Split by role (forward-int.h holds what the parts share):
 * forward.c picks, connects, retries and ends the exchange; forward_head.c
 * writes the request head and reads and rewrites the response head;
 * forward_body.c relays the bodies.
 */
#ifndef SLUICE_FORWARD_H
#define SLUICE_FORWARD_H

#include "session.h"

struct http_head;
struct http_target;

/*
 * Write the request head for the server into s->head_buf from the
 * client's parsed head h and its target t: an absolute-form target goes out
 * in origin-form with its authority as Host. Returns 0 or -1 (out of memory).
 */
int forward_build_request(struct session *s, const struct http_head *h,
		const struct http_target *t)
	__attribute__((warn_unused_result));

/*
 * For a route with stickiness: find the server the request's cookie or
 * Engine.IO sid names (ex.sticky_server), and note whether the answer must
 * set the cookie or teach us a sid.
 */
void forward_sticky_lookup(struct session *s, const struct http_head *h,
		const struct http_target *t);

/* Pick a server and connect (or reuse an idle connection), then send. */
void forward_start(struct session *s);

/* The client sent more request body bytes. */
void forward_client_readable(struct session *s);

/* The client's output buffer drained: resume reading the response. */
void forward_client_drained(struct session *s);

/* A connect or response_header deadline passed. */
void forward_timeout(struct session *s, enum session_timer kind);

#endif
