/*
 * Request heads: finding one in the client's input, checking and parsing
 * it, the https redirect and WebSocket upgrade checks, routing, the hash
 * key, and admission through the route's rate limits before forward.c
 * sends it on. The read loop that calls in here is session.c's; answers to
 * bad heads are session_answer.c's.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "http.h"
#include "lb_key.h"
#include "log.h"
#include "ratelimit.h"
#include "session-int.h"
#include "tunnel.h"
#include "util.h"
#include "worker.h"

/*
 * A copy of the request-target for the access log, NUL-terminated, in a
 * buffer the session keeps for its next requests instead of an allocation
 * per request. NULL when out of memory (the log then shows "-").
 */
static char *
session_keep_uri(struct session *s, const char *uri, size_t len)
{
	if (len + 1 > s->uri_cap) {
		size_t want = (len + 1 + 255) & ~(size_t)255;
		char *nb = realloc(s->uri_buf, want);

		if (nb == NULL)
			return NULL;
		s->uri_buf = nb;
		s->uri_cap = want;
	}
	memcpy(s->uri_buf, uri, len);
	s->uri_buf[len] = '\0';
	return s->uri_buf;
}

/* Map a head parse failure to its answer. */
static void
fail_parse(struct session *s, enum http_status st, const char *why)
{
	log_info("s%llu %s: bad request: %s", (unsigned long long)s->id, s->addr,
		why ? why : "malformed");
	switch (st) {
	case HTTP_HEAD_TOO_LARGE:
	case HTTP_TOO_MANY_HEADERS:
		session_fail(s, 431, TERM_HEADER_TOO_LARGE);
		break;
	case HTTP_URI_TOO_LONG:
		session_fail(s, 414, TERM_URI_TOO_LONG);
		break;
	case HTTP_NOT_IMPLEMENTED:
		session_fail(s, 501, TERM_NOT_IMPLEMENTED);
		break;
	default:
		session_fail(s, 400, TERM_BAD_REQUEST);
		break;
	}
}

static void session_rl_resume(void *arg);

/* Take the tokens of the route's limits for the request h. */
static enum rl_verdict
session_admit(struct session *s, const struct http_head *h)
{
	char ip[UTIL_ADDR_LEN];
	struct rl_admit_in in = {
		.cfg = s->cfg, .route = s->ex.route, .h = h, .peer_ip = ip,
		.upgrade = s->ex.ws_upgrade,
	};

	if (s->rl == NULL) {
		s->rl = rl_sess_new(s->w->rl_ops, s->w->rl_be, session_rl_resume, s);
		if (s->rl == NULL) {
			log_error("s%llu %s: out of memory", (unsigned long long)s->id, s->addr);
			return RL_ALLOW;
		}
	}
	session_client_ip(s, ip, sizeof(ip));
	return rl_admit(s->rl, &in);
}

/* Every limit has answered: forward, or answer 429. */
static void
session_admitted(struct session *s, enum rl_verdict v)
{
	struct exchange *ex = &s->ex;

	if (v != RL_ALLOW) {
		session_answer_rate_limited(s, v == RL_DENY_CLOSE);
		return;
	}
	ex->rl_hdr = rl_header(s->rl, &ex->rl_hdr_r);
	ex->phase = PHASE_CONNECT;
	forward_start(s);
}

/* An asynchronous backend's last answer came (never after session_destroy). */
static void
session_rl_resume(void *arg)
{
	struct session *s = arg;

	UTIL_ASSERT(!s->dead && s->ex.rl_wait);
	s->ex.rl_wait = false;
	if (!s->closing)
		conn_read_enable(s->c);
	session_admitted(s, rl_verdict(s->rl));
}

/* Whether a request head was found and handled; false when more bytes are
 * needed or the session stopped. */
bool
session_read_head(struct session *s)
{
	struct evbuffer *in = s->c->in;
	struct exchange *ex = &s->ex;
	const struct config_limits *lim = &s->cfg->limits;
	struct http_limits hl = { .max_headers = lim->max_headers, .max_uri = lim->max_uri };
	struct http_head h;
	enum http_status st;
	size_t head_len;
	struct http_target t;
	const char *data, *why = NULL;

	if (evbuffer_get_length(in) == 0)
		return false;
	st = http_head_find(in, &s->scan, lim->max_header_size, &head_len);
	if (st == HTTP_INCOMPLETE) {
		/* Only a head that is still coming needs its deadline; most
		 * arrive whole, and arming a timer costs more than its check. */
		if (s->timer_kind != TIMER_CLIENT_HEADER)
			session_timer_set(s, TIMER_CLIENT_HEADER);
		return false;
	}
	exchange_begin(s);
	s->scan = 0;
	if (st != HTTP_OK) {
		fail_parse(s, st, st == HTTP_HEAD_TOO_LARGE ? "head too large" : "malformed head");
		return false;
	}
	data = (const char *)evbuffer_pullup(in, (ssize_t)head_len);
	if (data == NULL) {
		session_fail(s, 500, TERM_INTERNAL);
		return false;
	}
	ex->bytes_in = head_len;
	memset(&h, 0, sizeof(h));
	st = http_parse_request(&h, data, head_len, s->w->hdrs, &hl);
	if (h.method_str != NULL && h.method_len > 0) {
		size_t n = h.method_len < sizeof(ex->method_str) - 1 ?
			h.method_len : sizeof(ex->method_str) - 1;
		memcpy(ex->method_str, h.method_str, n);
		ex->method_str[n] = '\0';
	}
	if (h.uri != NULL && st != HTTP_URI_TOO_LONG)
		ex->uri = session_keep_uri(s, h.uri, h.uri_len);
	if (st != HTTP_OK) {
		evbuffer_drain(in, head_len);
		fail_parse(s, st, h.error);
		return false;
	}
	s->requests++;
	ex->method = h.method;
	ex->client_http10 = h.version_minor == 0;
	ex->client_keep_alive = h.keep_alive && !s->draining;
	http_body_init(&ex->req_body, h.body, h.content_length, false);
	ex->req_read = h.body == HTTP_BODY_NONE;
	st = http_request_target(&h, &t);
	if (st != HTTP_OK) {
		evbuffer_drain(in, head_len);
		fail_parse(s, st, st == HTTP_NOT_IMPLEMENTED ?
			"CONNECT and authority-form targets are not supported" :
			"bad absolute-form target");
		return false;
	}
	if (s->listener->redirect_https != 0) {
		session_answer_redirect(s, &t, head_len);
		return true;
	}
	/* Only a request with an Upgrade field can ask for a WebSocket. */
	switch (h.upgrade_field ? tunnel_check_upgrade(&h, &why) : TUNNEL_NOT_WEBSOCKET) {
	case TUNNEL_UPGRADE_BAD:
		evbuffer_drain(in, head_len);
		fail_parse(s, HTTP_BAD, why);
		return false;
	case TUNNEL_UPGRADE_OK:
		ex->ws_upgrade = true;
		break;
	case TUNNEL_NOT_WEBSOCKET:
		break;
	}
	ex->route = config_route_match(s->cfg, t.host, t.host_len, t.path, t.path_len);
	if (ex->route == NULL) {
		evbuffer_drain(in, head_len);
		session_fail(s, 404, TERM_NO_ROUTE);
		return true;
	}
	if (ex->route->sticky != 0)
		forward_sticky_lookup(s, &h, &t);
	if (ex->route->pool->keyed) {
		if (s->hash_key_buf == NULL && (s->hash_key_buf = malloc(LB_KEY_MAX)) == NULL) {
			evbuffer_drain(in, head_len);
			session_fail(s, 500, TERM_INTERNAL);
			return false;
		}
		ex->hash_key = s->hash_key_buf;
		ex->hash_key_len = lb_key_extract(ex->route->pool, &h, t.path, t.path_len, s->addr,
			s->hash_key_buf);
	}
	if (forward_build_request(s, &h, &t) < 0) {
		evbuffer_drain(in, head_len);
		session_fail(s, 500, TERM_INTERNAL);
		return false;
	}
	/* A route without limits pays this one test. */
	if (ex->route->nrl > 0) {
		/* Keys are read from the head: before it is drained. */
		enum rl_verdict v = session_admit(s, &h);

		evbuffer_drain(in, head_len);
		s->timer_kind = TIMER_NONE;
		if (v == RL_PENDING) {
			/* The backend answers later: read nothing meanwhile
			 * (the body, if any, stays for forward_body.c). */
			ex->rl_wait = true;
			conn_read_disable(s->c);
			return true;
		}
		session_admitted(s, v);
		return true;
	}
	evbuffer_drain(in, head_len);
	ex->phase = PHASE_CONNECT;
	/* The next deadline (connect, response_header) re-arms the timer; until
	 * then a firing timer finds TIMER_NONE and does nothing. Not deleting
	 * it saves a heap operation per request. */
	s->timer_kind = TIMER_NONE;
	forward_start(s);
	return true;
}
