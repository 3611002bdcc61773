/*
 * The life of an exchange on the server side: choosing a server (the one a
 * sticky cookie or sid names first, then the balancer's), connecting or
 * taking an idle connection, retrying elsewhere when a connect fails, the
 * server connection's events and deadlines, and the end of the exchange,
 * which recycles the connection. The heads are forward_head.c's, the bodies
 * forward_body.c's; the client side is session.c's and its session_*.c
 * files'.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "forward-int.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "session.h"
#include "sticky.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

static void up_drained_cb(struct conn *c, void *arg);
static void up_event_cb(struct conn *c, enum conn_event ev, void *arg);
static void forward_try(struct session *s);

static void
connect_failed(struct session *s, enum session_term term)
{
	struct exchange *ex = &s->ex;
	const struct config_pool *pool = ex->route->pool;

	/* Refused, timed out or a failed TLS handshake: passive health may
	 * eject the server now, before the retry picks again. */
	health_passive_connect_failed(ex->server);
	upstream_free(ex->up);
	ex->up = NULL;
	ex->last_failure = term;
	if (ex->ntried <= pool->retries && ex->ntried < pool->nservers &&
	    ex->ntried < SESSION_MAX_TRIED) {
		forward_try(s);
		return;
	}
	session_fail(s, 502, term);
}

static void
connect_new(struct session *s, const struct config_server *srv)
{
	struct exchange *ex = &s->ex;

	ex->t_connect_us = util_now_us();
	ex->up = upstream_connect(s->w, s->cfg, srv, forward_up_read_cb, up_drained_cb, up_event_cb, s);
	if (ex->up == NULL) {
		log_warn("s%llu %s: connect(%s) failed: %s (server %s/%s)", SID(s),
			srv->address, strerror(errno), srv->pool->name, srv->name);
		connect_failed(s, TERM_CONNECT_FAILED);
		return;
	}
	session_timer_set(s, TIMER_CONNECT);
}

/* The connection is ready: send the head and whatever body is here. */
static void
forward_connected(struct session *s)
{
	struct exchange *ex = &s->ex;
	struct upconn *up = ex->up;
	int rc;

	if (!up->reused) {
		ex->connect_ms = (double)(util_now_us() - ex->t_connect_us) / 1000.0;
		health_passive_connect_ok(ex->server);
	}
	up->connected = true;
	/* A copy: the head stays for a retry if a reused connection turns out
	 * to have been closed by the server. Without a body to follow, it is
	 * written at once, straight from the session's buffer when it can
	 * be; a body's first bytes go out with it (forward_client_readable). */
	if (ex->req_read)
		rc = conn_write(up->c, s->head_buf, ex->head_len);
	else
		rc = evbuffer_add(up->c->out, s->head_buf, ex->head_len);
	if (rc < 0) {
		session_fail(s, 500, TERM_INTERNAL);
		return;
	}
	conn_set_write_low(up->c, RELAY_HWM / 4);
	conn_set_read_hwm(up->c, RELAY_HWM / 2);
	conn_read_enable(up->c);
	if (ex->req_read) {
		ex->phase = PHASE_RESPONSE_HEAD;
		session_timer_set(s, TIMER_RESPONSE_HEADER);
		return;
	}
	ex->phase = PHASE_REQUEST;
	session_timer_set(s, TIMER_BODY_IDLE);
	forward_client_readable(s);
}

static void
forward_try(struct session *s)
{
	struct exchange *ex = &s->ex;
	const struct config_server *srv;

	/* The server a sticky cookie or sid names goes first; if it cannot be
	 * reached, the retry takes the balancer's choice among the others and
	 * the client's session moves there. */
	if (ex->ntried == 0 && ex->sticky_server != NULL && server_usable(ex->sticky_server))
		srv = ex->sticky_server;
	else
		srv = pool_pick(ex->route->pool, ex->tried, ex->ntried,
			ex->hash_key_len > 0 ? ex->hash_key : NULL, ex->hash_key_len);
	if (srv == NULL) {
		if (ex->ntried == 0 && !pool_any_usable(ex->route->pool)) {
			pool_note_unusable(ex->route->pool);
			session_fail(s, 503, TERM_NO_SERVER);
			return;
		}
		session_fail(s, 502, ex->ntried ? ex->last_failure : TERM_CONNECT_FAILED);
		return;
	}
	ex->tried[ex->ntried++] = srv->index;
	if (ex->server_counted)
		server_release(ex->server);
	server_acquire(srv);
	ex->server_counted = true;
	ex->server = srv;
	ex->up = upstream_take_idle(s->w, s->cfg, srv, forward_up_read_cb, up_drained_cb, up_event_cb, s);
	if (ex->up != NULL) {
		ex->connect_ms = 0;
		forward_connected(s);
		return;
	}
	connect_new(s, srv);
}

void
forward_start(struct session *s)
{
	forward_try(s);
}

void
forward_response_done(struct session *s)
{
	struct exchange *ex = &s->ex;
	struct upconn *up = ex->up;

	UTIL_DEBUG_ASSERT(ex->active && ex->resp_head_sent);
	ex->resp_done = true;
	ex->up = NULL;
	if (up != NULL) {
		/* Reuse only a connection whose request and response both ended
		 * exactly where their framing said. */
		if (ex->up_reusable && ex->req_read && !ex->up_eof &&
		    !up->c->eof && !up->c->failed &&
		    evbuffer_get_length(up->c->in) == 0 &&
		    evbuffer_get_length(up->c->out) == 0)
			upstream_release(up);
		else
			upstream_free(up);
	}
	session_exchange_done(s);
}

static void
up_drained_cb(struct conn *c, void *arg)
{
	struct session *s = arg;

	(void)c;
	if (s->ex.req_read || s->dead)
		return;
	conn_read_enable(s->c);
	forward_client_readable(s);
}

static bool
method_idempotent(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0 ||
		strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0 || strcmp(m, "TRACE") == 0;
}

static void
up_event_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;
	struct exchange *ex = &s->ex;
	struct upconn *up = ex->up;
	const struct config_server *srv = ex->server;

	if (ev == CONN_CONNECTED) {
		forward_connected(s);
		return;
	}
	if (!up->connected) {
		log_warn("s%llu %s: connect(%s) failed: %s (server %s/%s)", SID(s),
			srv->address, conn_strerror(c), srv->pool->name, srv->name);
		connect_failed(s, TERM_CONNECT_FAILED);
		return;
	}
	if (ev == CONN_EOF && ex->phase == PHASE_RESPONSE_BODY) {
		ex->up_eof = true;
		forward_response_body(s);
		return;
	}
	if (!ex->have_first_byte && up->reused && !ex->retried_reuse &&
	    ex->req_body.kind == HTTP_BODY_NONE && method_idempotent(ex->method_str)) {
		/* The server closed a kept-alive connection as we reused it. The
		 * request was idempotent and had no body: send it again on a new
		 * connection (RFC 9112 9.3.1). */
		log_debug("s%llu %s: reused connection to %s/%s was closed, retrying", SID(s),
			srv->pool->name, srv->name);
		ex->retried_reuse = true;
		upstream_free(up);
		ex->up = NULL;
		connect_new(s, srv);
		return;
	}
	log_warn("s%llu %s: server %s/%s closed the connection before a complete response%s%s",
		SID(s), srv->pool->name, srv->name, ev == CONN_ERROR ? ": " : "",
		ev == CONN_ERROR ? conn_strerror(c) : "");
	session_fail(s, 502, TERM_UPSTREAM_CLOSED);
}

void
forward_timeout(struct session *s, enum session_timer kind)
{
	struct exchange *ex = &s->ex;
	const struct config_server *srv = ex->server;

	if (kind == TIMER_CONNECT) {
		log_warn("s%llu %s: connect(%s) failed: timed out after %u ms (server %s/%s)",
			SID(s), srv->address, s->cfg->timeouts.connect_ms, srv->pool->name, srv->name);
		connect_failed(s, TERM_CONNECT_TIMEOUT);
		return;
	}
	log_warn("s%llu %s: server %s/%s sent no response head within %u ms", SID(s),
		srv->pool->name, srv->name, s->cfg->timeouts.response_header_ms);
	/* The client gets a 504: for passive health, a 5xx of the server's. */
	health_passive_status(srv, 504);
	session_fail(s, 504, TERM_UPSTREAM_TIMEOUT);
}

/* The server of pool called name, or NULL. */
static const struct config_server *
pool_server_named(const struct config_pool *pool, const char *name)
{
	for (size_t i = 0; i < pool->nservers; i++)
		if (strcmp(pool->servers[i].name, name) == 0)
			return &pool->servers[i];
	return NULL;
}

void
forward_sticky_lookup(struct session *s, const struct http_head *h, const struct http_target *t)
{
	struct exchange *ex = &s->ex;
	const struct config_route *r = ex->route;
	const struct config_pool *pool = r->pool;
	const char *sid, *q;
	size_t sidlen;

	if (r->sticky & CONFIG_STICKY_COOKIE) {
		ex->set_cookie = true;
		for (size_t i = 0; i < h->nheaders && ex->sticky_server == NULL; i++) {
			const struct http_header *hd = &h->headers[i];
			const char *v;
			size_t vlen;

			if (!http_header_is(hd, "cookie") ||
			    !sticky_cookie_find(hd->value, hd->value_len, r->sticky_cookie, &v, &vlen) ||
			    vlen != STICKY_TOKEN_LEN)
				continue;
			/* A forged or stale token matches no server: ignored,
			 * and replaced by the answer's Set-Cookie. */
			for (size_t k = 0; k < pool->nservers; k++) {
				if (memcmp(pool->servers[k].sticky_token, v, STICKY_TOKEN_LEN) == 0) {
					ex->sticky_server = &pool->servers[k];
					ex->set_cookie = false;
					break;
				}
			}
		}
	}
	if (!(r->sticky & CONFIG_STICKY_SOCKETIO))
		return;
	q = memchr(t->path, '?', t->path_len);
	if (q == NULL || memmem(q, t->path_len - (size_t)(q - t->path), "EIO=", 4) == NULL)
		return;
	if (sticky_sid_from_target(t->path, t->path_len, &sid, &sidlen)) {
		char name[128];

		if (ex->sticky_server == NULL &&
		    s->w->sids->ops->get(s->w->sids->st, sid, sidlen, pool->name, name, sizeof(name),
				util_now_us() / 1000))
			ex->sticky_server = pool_server_named(pool, name);
		return;
	}
	/* A handshake: the answer will carry the new session's sid. */
	if (memmem(q, t->path_len - (size_t)(q - t->path), "transport=websocket", 19) != NULL)
		ex->learn_sid_ws = ex->ws_upgrade;
	else
		ex->learn_sid_poll = true;
}
