/*
 * The bodies of an exchange: the request body from the client to the server
 * and the response body from the server to the client, each moved by its
 * framing (http_body.c) and paused while the other side's output is backed
 * up. A Socket.io polling handshake's body also teaches the sid table its
 * sid.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "forward-int.h"
#include "http.h"
#include "log.h"
#include "session.h"
#include "sticky.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

/*
 * Move body b from `from`'s input to `to`'s output, counting the bytes in
 * *count, until the input is empty, the body is done, or the output is
 * backlogged, when reading `from` pauses until `to` drains. Stopping at any
 * other point could strand input: a flush that empties the output brings no
 * drained callback to resume the move.
 */
static enum http_body_result
relay_body(struct session *s, struct http_body_state *b, struct conn *from, struct conn *to,
		uint64_t *count)
{
	enum http_body_result r = HTTP_BODY_MORE;

	do {
		size_t olen = evbuffer_get_length(to->out);
		uint64_t before = b->moved;

		if (olen >= RELAY_HWM) {
			conn_read_disable(from);
			break;
		}
		r = http_body_move(b, from->in, to->out, RELAY_HWM - olen);
		conn_flush(to);
		if (b->moved == before)
			break;
		*count += b->moved - before;
		session_progress(s);
	} while (r == HTTP_BODY_MORE && evbuffer_get_length(from->in) > 0);
	return r;
}

void
forward_client_readable(struct session *s)
{
	struct exchange *ex = &s->ex;
	enum http_body_result r;

	if (ex->req_read || ex->up == NULL || !ex->up->connected)
		return;
	r = relay_body(s, &ex->req_body, s->c, ex->up->c, &ex->bytes_in);
	switch (r) {
	case HTTP_BODY_ERROR:
		log_info("s%llu %s: bad request body: %s", SID(s),
			ex->req_body.error ? ex->req_body.error : "malformed chunked framing");
		session_fail(s, 400, TERM_BAD_REQUEST);
		return;
	case HTTP_BODY_DONE:
		ex->req_read = true;
		if (ex->phase == PHASE_REQUEST) {
			ex->phase = PHASE_RESPONSE_HEAD;
			session_timer_set(s, TIMER_RESPONSE_HEADER);
		}
		return;
	case HTTP_BODY_MORE:
		break;
	}
	if (s->client_eof && evbuffer_get_length(s->c->in) == 0) {
		/* The client closed before the end of its body. */
		session_abort(s, TERM_CLIENT_CLOSED);
	}
}

/*
 * The body of a Socket.io polling handshake starts with the Engine.IO open
 * packet: look at its first bytes (before they move on) for the sid.
 * Returns false while the sid may still be arriving.
 */
static bool
learn_sid_from_body(struct session *s, struct evbuffer *in)
{
	struct exchange *ex = &s->ex;
	size_t avail = evbuffer_get_length(in), skip = 0, n;
	const char *p;
	char sid[STICKY_SID_MAX + 1];
	unsigned ttl;

	n = avail < 512 ? avail : 512;
	p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	if (p == NULL)
		return true;
	if (ex->resp_body.kind == HTTP_BODY_CHUNKED) {
		/* Skip the first chunk-size line. */
		const char *lf = memchr(p, '\n', n);
		if (lf == NULL)
			return n >= 512;
		skip = (size_t)(lf - p) + 1;
	}
	if (!sticky_parse_open_packet(p + skip, n - skip, sid, &ttl)) {
		/* Wait for more only where the framing says more is coming;
		 * a chunked or close-delimited body gets one look. */
		return n >= 512 || ex->resp_body.kind != HTTP_BODY_LENGTH ||
			ex->resp_body.remaining <= avail;
	}
	if (s->w->sids->ops->put(s->w->sids->st, sid, strlen(sid), ex->server->pool->name,
			ex->server->name, ttl, util_now_us() / 1000) < 0)
		log_warn("s%llu %s: sid table full: Socket.io session %s not remembered", SID(s),
			sid);
	return true;
}

void
forward_response_body(struct session *s)
{
	struct exchange *ex = &s->ex;
	struct evbuffer *in = ex->up->c->in;
	enum http_body_result r;

	if (ex->learn_sid_poll) {
		if (!learn_sid_from_body(s, in) && !ex->up_eof) {
			session_timer_set(s, TIMER_BODY_IDLE);
			return;
		}
		ex->learn_sid_poll = false;
	}

	r = relay_body(s, &ex->resp_body, ex->up->c, s->c, &ex->bytes_out);
	switch (r) {
	case HTTP_BODY_ERROR:
		log_warn("s%llu %s: bad response body from server %s/%s: %s", SID(s),
			ex->server->pool->name, ex->server->name,
			ex->resp_body.error ? ex->resp_body.error : "malformed");
		session_abort(s, TERM_BAD_RESPONSE);
		return;
	case HTTP_BODY_DONE:
		forward_response_done(s);
		return;
	case HTTP_BODY_MORE:
		break;
	}
	if (ex->up_eof && evbuffer_get_length(in) == 0) {
		if (ex->resp_body.kind == HTTP_BODY_UNTIL_CLOSE) {
			forward_response_done(s);
			return;
		}
		log_warn("s%llu %s: server %s/%s closed the connection in the middle of "
			"the response body", SID(s), ex->server->pool->name, ex->server->name);
		session_abort(s, TERM_UPSTREAM_CLOSED);
		return;
	}
	/* More body to wait for: from now on body_idle applies. Armed only
	 * here, so a response that came whole with its head never arms it. */
	session_timer_set(s, TIMER_BODY_IDLE);
}

void
forward_client_drained(struct session *s)
{
	struct exchange *ex = &s->ex;

	if (ex->phase != PHASE_RESPONSE_BODY || ex->up == NULL)
		return;
	conn_read_enable(ex->up->c);
	forward_response_body(s);
}
