/*
 * Client connections: accepting, reading and checking request heads,
 * routing, answering errors, keep-alive and pipelining, timeouts, the access
 * log line, and the one place where a session ends. The server side of each
 * exchange is forward.c's.
 */
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "session.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

/* Bytes buffered towards a peer before reading from the other side pauses. */
#define SESSION_RELAY_HWM (256 * 1024)
/* How long a closing connection keeps draining what the client still sends,
 * so that our error answer is not destroyed by a reset. */
#define SESSION_LINGER_MS 2000

static atomic_uint_fast64_t session_ids;

static const char *const term_names[] = {
	[TERM_OK] = "ok",
	[TERM_CLIENT_CLOSED] = "client_closed",
	[TERM_CLIENT_TIMEOUT] = "client_timeout",
	[TERM_BAD_REQUEST] = "bad_request",
	[TERM_HEADER_TOO_LARGE] = "header_too_large",
	[TERM_URI_TOO_LONG] = "uri_too_long",
	[TERM_NOT_IMPLEMENTED] = "not_implemented",
	[TERM_NO_ROUTE] = "no_route",
	[TERM_NO_SERVER] = "no_server",
	[TERM_CONNECT_FAILED] = "connect_failed",
	[TERM_CONNECT_TIMEOUT] = "connect_timeout",
	[TERM_UPSTREAM_TIMEOUT] = "upstream_timeout",
	[TERM_UPSTREAM_CLOSED] = "upstream_closed",
	[TERM_BAD_RESPONSE] = "bad_response",
	[TERM_BODY_TIMEOUT] = "body_timeout",
	[TERM_SHUTDOWN] = "shutdown",
	[TERM_INTERNAL] = "internal",
	[TERM_TUNNEL_IDLE] = "tunnel_idle",
	[TERM_WS_PROTOCOL] = "ws_protocol",
	[TERM_WS_TOO_BIG] = "ws_too_big",
	[TERM_RATE_LIMITED] = "rate_limited",
};

static const char *const phase_names[] = {
	[PHASE_HEAD] = "head",
	[PHASE_CONNECT] = "connect",
	[PHASE_REQUEST] = "request",
	[PHASE_RESPONSE_HEAD] = "response_head",
	[PHASE_RESPONSE_BODY] = "response_body",
	[PHASE_TUNNEL] = "tunnel",
	[PHASE_DONE] = "done",
};

static void session_read_cb(struct conn *c, void *arg);
static void session_drained_cb(struct conn *c, void *arg);
static void session_event_cb(struct conn *c, enum conn_event ev, void *arg);
static void session_flushed(struct session *s);
static void session_timer_cb(evutil_socket_t fd, short what, void *arg);
static void session_close(struct session *s, bool linger);
static void session_destroy(struct session *s);
static void session_proxy_read(struct session *s);

void
session_progress(struct session *s)
{
	s->progress_us = util_now_us();
}

static unsigned
timer_ms(const struct session *s, enum session_timer kind)
{
	const struct config_timeouts *t = &s->cfg->timeouts;

	switch (kind) {
	case TIMER_CLIENT_HEADER:
		return t->client_header_ms;
	case TIMER_CLIENT_IDLE:
		return t->client_idle_ms;
	case TIMER_CONNECT:
		return t->connect_ms;
	case TIMER_RESPONSE_HEADER:
		return t->response_header_ms;
	case TIMER_BODY_IDLE:
		return t->body_idle_ms;
	case TIMER_TUNNEL_IDLE:
		return t->tunnel_idle_ms;
	case TIMER_NONE:
		break;
	}
	return 0;
}

static void
timer_arm_at(struct session *s, uint64_t now_us, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(&s->timer, &tv);
	s->timer_due_us = now_us + (uint64_t)ms * 1000;
}

static void
timer_arm_ms(struct session *s, unsigned ms)
{
	timer_arm_at(s, util_now_us(), ms);
}

void
session_timer_rearm(struct session *s, unsigned ms)
{
	timer_arm_ms(s, ms);
}

void
session_timer_set(struct session *s, enum session_timer kind)
{
	uint64_t now;
	unsigned ms;

	if (kind == TIMER_BODY_IDLE || kind == TIMER_TUNNEL_IDLE) {
		session_progress(s);
		/* Re-arming on every read would cost a heap operation per read;
		 * instead the timer checks the last progress when it fires. */
		if (s->timer_kind == kind)
			return;
	}
	s->timer_kind = kind;
	if (kind == TIMER_NONE) {
		evtimer_del(&s->timer);
		s->timer_due_us = 0;
		return;
	}
	ms = timer_ms(s, kind);
	now = util_now_us();
	s->deadline_us = now + (uint64_t)ms * 1000;
	if (s->timer_due_us == 0 || s->timer_due_us > s->deadline_us)
		timer_arm_at(s, now, ms);
}

/* Reset the exchange for the next request on this connection. */
static void
exchange_reset(struct session *s)
{
	struct exchange *ex = &s->ex;

	memset(ex, 0, sizeof(*ex));
}

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

/* Start an exchange: from here on, it is logged whatever happens. */
static void
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

static void
session_log(struct session *s)
{
	struct exchange *ex = &s->ex;
	char line[4096], when[40], server[256];
	size_t n = 0;
	int k;

	if (!log_access_enabled())
		return;
	log_format_time(when, sizeof(when));
	if (ex->server != NULL) {
		size_t m = 0;
		server[m++] = '"';
		m = util_json_escape(server, sizeof(server) - 1, m, ex->server->pool->name,
			strlen(ex->server->pool->name));
		m = util_json_escape(server, sizeof(server) - 1, m, "/", 1);
		m = util_json_escape(server, sizeof(server) - 1, m, ex->server->name,
			strlen(ex->server->name));
		server[m++] = '"';
		server[m] = '\0';
	} else {
		strcpy(server, "null");
	}
	k = snprintf(line, sizeof(line),
		"{\"time\":\"%s\",\"worker\":%u,\"session\":%llu,\"client\":\"%s\",\"method\":\"",
		when, s->w->id, (unsigned long long)s->id, s->addr);
	n = (size_t)k;
	n = util_json_escape(line, sizeof(line), n, ex->method_str, strlen(ex->method_str));
	n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"path\":\"");
	if (ex->uri != NULL)
		n = util_json_escape(line, sizeof(line) - 1024, n, ex->uri, strlen(ex->uri));
	else
		n = util_json_escape(line, sizeof(line), n, "-", 1);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
		"\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
		"\"connect_ms\":%.3f,\"first_byte_ms\":%.3f,\"total_ms\":%.3f,"
		"\"server\":%s,\"request_id\":\"",
		ex->status, (unsigned long long)ex->bytes_in, (unsigned long long)ex->bytes_out,
		ex->connect_ms, ex->have_first_byte ? ex->first_byte_ms : 0.0,
		(double)(util_now_us() - ex->t_start_us) / 1000.0, server);
	n = util_json_escape(line, sizeof(line), n, ex->request_id, strlen(ex->request_id));
	n += (size_t)snprintf(line + n, sizeof(line) - n,
		"\",\"termination\":\"%s\",\"phase\":\"%s\"",
		term_names[ex->term], phase_names[ex->phase]);
	if (s->c != NULL && s->c->ssl != NULL && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
			",\"tls_version\":\"%s\",\"tls_cipher\":\"%s\"",
			tls_version_name(s->c->ssl), tls_cipher_name(s->c->ssl));
	else if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
			",\"tls_version\":null,\"tls_cipher\":null");
	if (s->peer != NULL && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"peer\":\"%s\"", s->peer);
	if (ex->rl_denied != NULL && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"ratelimit\":\"%s\"",
			ex->rl_denied->name);
	if (ex->tunnel && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
			",\"ws_messages_in\":%llu,\"ws_messages_out\":%llu",
			(unsigned long long)ex->c2s.messages, (unsigned long long)ex->s2c.messages);
	if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, "}\n");
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	log_access_write(line, n);
}

/* Log the exchange once and forget it; the session goes on or not. */
static void
exchange_end(struct session *s, enum session_term term)
{
	struct exchange *ex = &s->ex;

	if (!ex->active)
		return;
	ex->term = term;
	if (term == TERM_OK && !ex->tunnel)
		ex->phase = PHASE_DONE;
	if (ex->up != NULL) {
		upstream_free(ex->up);
		ex->up = NULL;
	}
	if (ex->server_counted) {
		server_release(ex->server);
		ex->server_counted = false;
	}
	session_log(s);
	ex->active = false;
}

/* Run TLS over the client connection (a TLS listener). Returns 0 or -1. */
static int __attribute__((warn_unused_result))
session_start_tls(struct session *s)
{
	SSL *ssl = tls_server_session_new(s->listener->tls);

	if (ssl == NULL || conn_tls_accept(s->c, ssl) < 0) {
		log_error("s%llu %s: out of memory starting TLS", (unsigned long long)s->id,
			s->addr);
		if (ssl != NULL)
			SSL_free(ssl);
		return -1;
	}
	return 0;
}

void
session_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
		size_t listener)
{
	struct session *s;
	int one = 1;
	size_t hwm;

	(void)salen;
	if (w->stopping) {
		close(fd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		log_error("worker %u: out of memory accepting a connection", w->id);
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->w = w;
	s->cfg = config_ref(w->cfg);
	s->listener = &s->cfg->listeners[listener < s->cfg->nlisteners ? listener : 0];
	s->id = atomic_fetch_add(&session_ids, 1) + 1;
	util_addr_format(sa, s->addr, sizeof(s->addr), 1);
	s->c = conn_new(w->base, fd);
	evtimer_assign(&s->timer, w->base, session_timer_cb, s);
	TAILQ_INSERT_TAIL(&w->sessions, s, link);
	w->nsessions++;
	if (s->c == NULL) {
		log_error("s%llu %s: out of memory", (unsigned long long)s->id, s->addr);
		if (s->c == NULL)
			close(fd);
		session_destroy(s);
		return;
	}
	/* The input buffer must hold a whole head; beyond that, reading pauses
	 * until the exchange has moved bytes on (pipelined requests wait). */
	hwm = s->cfg->limits.max_header_size + 4096;
	if (hwm < 64 * 1024)
		hwm = 64 * 1024;
	conn_set_read_hwm(s->c, hwm);
	conn_set_write_low(s->c, SESSION_RELAY_HWM / 4);
	conn_setcb(s->c, session_read_cb, session_drained_cb, session_event_cb, s);
	if (s->listener->proxy_protocol) {
		/* The PROXY header comes before anything else, TLS included:
		 * the conn reads nothing itself until session_proxy_read() has
		 * taken the header, and TLS starts only then. */
		s->pp = proxy_parser_new();
		if (s->pp == NULL) {
			log_error("s%llu %s: out of memory", (unsigned long long)s->id, s->addr);
			session_destroy(s);
			return;
		}
		conn_set_raw(s->c, true);
	} else if (s->listener->tls != NULL && session_start_tls(s) < 0) {
		session_destroy(s);
		return;
	}
	/* The PROXY header and the TLS handshake, if any, run within
	 * client_header too. */
	conn_read_enable(s->c);
	session_timer_set(s, TIMER_CLIENT_HEADER);
	log_debug("s%llu %s: accepted by worker %u", (unsigned long long)s->id, s->addr, w->id);
}

/*
 * A plain listener with redirect_https: 301 to the same host and path over
 * https. The host loses its port; the listener's redirect port is added
 * unless it is 443. A request with a body is not read: the connection
 * closes after the answer. Drops the request head from the input.
 */
static void
send_redirect(struct session *s, const struct http_target *t, size_t head_len)
{
	struct exchange *ex = &s->ex;
	const char *host = t->host != NULL ? t->host : "";
	size_t hlen = t->host != NULL ? t->host_len : 0, i = hlen;
	unsigned port = s->listener->redirect_https;
	char portbuf[16] = "";
	struct evbuffer *out = s->c->out;
	bool close = !ex->client_keep_alive || !ex->req_read || s->draining;
	int n;

	/* Strip ":port", but not the colons of an IPv6 literal. */
	while (i > 0 && host[i - 1] >= '0' && host[i - 1] <= '9')
		i--;
	if (i > 0 && i < hlen + 1 && host[i - 1] == ':' && (host[0] != '[' || host[i - 2] == ']'))
		hlen = i - 1;
	if (port != 443)
		snprintf(portbuf, sizeof(portbuf), ":%u", port);
	n = evbuffer_add_printf(out, "HTTP/1.1 301 Moved Permanently\r\nLocation: https://%.*s%s%.*s\r\n"
		"Content-Length: 0\r\n%s\r\n", (int)hlen, host, portbuf, (int)t->path_len, t->path,
		close ? "Connection: close\r\n" : "");
	/* t points into the head: drop it only now. */
	evbuffer_drain(s->c->in, head_len);
	conn_flush(s->c);
	ex->bytes_out += n > 0 ? (uint64_t)n : 0;
	ex->status = 301;
	ex->resp_head_sent = true;
	exchange_end(s, TERM_OK);
	if (close)
		session_close(s, true);
	else
		session_client_read(s);
}

/* Answer status with a short text body. close: say so and end the session. */
static void
send_error(struct session *s, int status, bool close)
{
	struct evbuffer *out = s->c->out;
	const char *reason = http_reason(status);
	char head[384], sts[96] = "";
	int n, blen;
	unsigned hsts = s->listener->tls != NULL && s->c->ssl != NULL ?
		tls_server_hsts(s->listener->tls) : 0;

	/* Our own answers carry the listener's HSTS policy too. */
	if (hsts > 0)
		snprintf(sts, sizeof(sts), "Strict-Transport-Security: max-age=%u\r\n", hsts);
	/* No usable server: when to come back (as long as health checks
	 * take to bring one back). */
	if (status == 503)
		snprintf(sts + strlen(sts), sizeof(sts) - strlen(sts), "Retry-After: %u\r\n",
			health_retry_after_s(s->ex.route != NULL ? s->ex.route->pool : NULL));
	blen = (int)strlen(reason) + 5;		/* "502 " + reason + "\n" */
	n = snprintf(head, sizeof(head),
		"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s%s\r\n"
		"%d %s\n",
		status, reason, blen, sts, close ? "Connection: close\r\n" : "", status, reason);
	evbuffer_add(out, head, (size_t)n);
	conn_flush(s->c);
	s->ex.bytes_out += (uint64_t)n;
	s->ex.status = status;
	s->ex.resp_head_sent = true;
}

void
session_fail(struct session *s, int status, enum session_term term)
{
	struct exchange *ex = &s->ex;
	bool close;

	if (status == 0 || ex->resp_head_sent) {
		/* Nothing sensible can be said in the middle of a response. */
		session_abort(s, term);
		return;
	}
	/* The connection can go on only if the request was read to its end and
	 * nothing in it was wrong. */
	close = !ex->client_keep_alive || !ex->req_read || s->draining ||
		(s->client_eof && evbuffer_get_length(s->c->in) == 0) ||
		status == 400 || status == 408 || status == 414 || status == 431 ||
		status == 501;
	send_error(s, status, close);
	exchange_end(s, term);
	if (close)
		session_close(s, true);
	else
		session_client_read(s);
}

void
session_exchange_done(struct session *s)
{
	struct exchange *ex = &s->ex;
	bool keep = ex->client_keep_alive && !ex->resp_close_delimited && ex->req_read &&
		!s->draining;
	/* A client that half-closed after pipelining still gets answers to
	 * the requests it sent: the session closes once they are used up. */
	bool more_input = evbuffer_get_length(s->c->in) > 0;

	exchange_end(s, TERM_OK);
	if (!keep || (s->client_eof && !more_input)) {
		/* Unread input (a body the server did not wait for) would turn
		 * our close into a reset that destroys the response: linger. */
		session_close(s, !ex->req_read || more_input);
		return;
	}
	session_client_read(s);
}

void
session_end_tunnel(struct session *s, enum session_term term, bool linger)
{
	if (s->dead)
		return;
	exchange_end(s, term);
	session_close(s, linger);
}

void
session_abort(struct session *s, enum session_term term)
{
	exchange_end(s, term);
	session_destroy(s);
}

/*
 * Stop after the bytes in the output buffer are sent. With linger, the
 * write side is shut and the client's remaining input drained for a while
 * so that a client still sending does not turn our close into a reset that
 * destroys the answer.
 */
static void
session_close(struct session *s, bool linger)
{
	if (s->dead)
		return;
	s->closing = true;
	s->linger = linger;
	exchange_end(s, s->ex.term);
	conn_set_write_low(s->c, 0);
	if (!linger)
		conn_read_disable(s->c);
	/* Bound the flush by the idle timeout: a client that stops reading our
	 * last answer does not keep the session forever. */
	session_timer_set(s, TIMER_CLIENT_IDLE);
	conn_flush(s->c);
	if (evbuffer_get_length(s->c->out) == 0)
		session_flushed(s);
}

static void
session_destroy(struct session *s)
{
	if (s->dead)
		return;
	s->dead = true;
	/* An answer still on its way from a backend must not find us. */
	if (s->rl != NULL)
		rl_sess_cancel(s->rl);
	if (s->ex.up != NULL) {
		upstream_free(s->ex.up);
		s->ex.up = NULL;
	}
	evtimer_del(&s->timer);
	s->timer_due_us = 0;
	if (s->c != NULL) {
		conn_free(s->c);
		s->c = NULL;
	}
	worker_defer_free(s->w, s);
}

void
session_free(struct session *s)
{
	UTIL_ASSERT(s->dead && s->c == NULL && s->ex.up == NULL);

	proxy_parser_free(s->pp);
	free(s->peer);
	free(s->hash_key_buf);
	/* Releases the connections it counted (kind = connections). */
	rl_sess_free(s->rl);
	free(s->uri_buf);
	free(s->head_buf);
	config_unref(s->cfg);
	free(s);
}

void
session_drain(struct session *s)
{
	s->draining = true;
	if (s->closing)
		return;
	if (!s->ex.active && evbuffer_get_length(s->c->in) == 0) {
		session_close(s, false);
		return;
	}
	s->ex.client_keep_alive = false;
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

size_t
session_client_ip(const struct session *s, char *buf, size_t len)
{
	const char *a = s->addr, *end;

	/* addr is "ip:port" or "[ipv6]:port" (R3's PROXY header rewrites it). */
	if (a[0] == '[' && (end = strchr(a, ']')) != NULL)
		a++;
	else if ((end = strrchr(a, ':')) == NULL)
		end = a + strlen(a);
	if ((size_t)(end - a) >= len)
		end = a + len - 1;
	memcpy(buf, a, (size_t)(end - a));
	buf[end - a] = '\0';
	return (size_t)(end - a);
}

/*
 * 429 for the denial rs holds: Retry-After, RateLimit-Policy, RateLimit and
 * a problem+json body. The connection closes after it when the request's
 * body was not read, or always (close, for kind = connections).
 */
static void
send_rate_limited(struct session *s, bool close)
{
	struct exchange *ex = &s->ex;
	struct rl_result r = { 0 };
	const struct rl_policy *p = rl_denial(s->rl, &r);
	char head[768], body[384], pol[100], state[100], sts[96] = "";
	unsigned hsts = s->listener->tls != NULL && s->c->ssl != NULL ?
		tls_server_hsts(s->listener->tls) : 0;
	int n, blen;

	UTIL_ASSERT(p != NULL);
	close = close || !ex->client_keep_alive || !ex->req_read || s->draining ||
		(s->client_eof && evbuffer_get_length(s->c->in) == 0);
	if (hsts > 0)
		snprintf(sts, sizeof(sts), "Strict-Transport-Security: max-age=%u\r\n", hsts);
	rl_format_policy(p, pol, sizeof(pol));
	rl_format_state(p, &r, state, sizeof(state));
	/* Policy names are NAME_RULE characters: nothing to escape. */
	blen = snprintf(body, sizeof(body), "{\"type\":\"about:blank\",\"title\":\"Too Many Requests\","
		"\"status\":429,\"detail\":\"rate limit \\\"%s\\\" exceeded\",\"policy\":\"%s\","
		"\"retry_after\":%u}\n", p->name, p->name, r.retry_after_s);
	n = snprintf(head, sizeof(head), "HTTP/1.1 429 Too Many Requests\r\n"
		"Content-Type: application/problem+json\r\nContent-Length: %d\r\n"
		"Retry-After: %u\r\nRateLimit-Policy: %s\r\nRateLimit: %s\r\n%s%s\r\n",
		blen, r.retry_after_s, pol, state, sts, close ? "Connection: close\r\n" : "");
	evbuffer_add(s->c->out, head, (size_t)n);
	evbuffer_add(s->c->out, body, (size_t)blen);
	conn_flush(s->c);
	ex->bytes_out += (uint64_t)(n + blen);
	ex->status = 429;
	ex->resp_head_sent = true;
	ex->rl_denied = p;
	log_debug("s%llu %s: rate limit \"%s\" exceeded", (unsigned long long)s->id, s->addr,
		p->name);
	exchange_end(s, TERM_RATE_LIMITED);
	if (close)
		session_close(s, true);
	else
		session_client_read(s);
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
		send_rate_limited(s, v == RL_DENY_CLOSE);
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
static bool
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
		send_redirect(s, &t, head_len);
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
			 * (the body, if any, stays for forward.c). */
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

void
session_client_read(struct session *s)
{
	/* An exchange that ends inside this loop (a 404, say) calls back here;
	 * the guard turns that recursion into the loop's next turn. */
	if (s->in_read) {
		s->read_again = true;
		return;
	}
	s->in_read = true;
	for (;;) {
		s->read_again = false;
		if (s->dead || s->closing)
			break;
		if (s->ex.active) {
			if (s->ex.rl_wait)
				break;	/* session_rl_resume() goes on */
			if (s->ex.tunnel)
				tunnel_client_readable(s);
			else if (!s->ex.req_read)
				forward_client_readable(s);
			if (!s->read_again)
				break;
			continue;
		}
		if (evbuffer_get_length(s->c->in) == 0) {
			if (s->draining || s->client_eof) {
				session_close(s, false);
				break;
			}
			if (s->timer_kind != TIMER_CLIENT_IDLE && s->requests > 0)
				session_timer_set(s, TIMER_CLIENT_IDLE);
			break;
		}
		/* A client that pipelines without reading our answers must not
		 * make us buffer them without bound: wait for the output to
		 * drain (session_drained_cb comes back here). */
		if (evbuffer_get_length(s->c->out) >= SESSION_RELAY_HWM) {
			conn_read_disable(s->c);
			s->out_blocked = true;
			break;
		}
		if (!session_read_head(s) && !s->read_again) {
			/* A head that can never be finished. */
			if (s->client_eof && !s->ex.active && !s->dead && !s->closing)
				session_close(s, false);
			break;
		}
	}
	s->in_read = false;
}

static void
session_read_cb(struct conn *c, void *arg)
{
	struct session *s = arg;

	UTIL_DEBUG_ASSERT(!s->dead && s->c == c);
	if (s->pp != NULL) {
		/* Nothing is left to say to a client that has not even sent
		 * its PROXY header; the socket must not stay readable unread. */
		if (s->closing)
			session_destroy(s);
		else
			session_proxy_read(s);
		return;
	}
	if (s->closing) {
		/* Lingering: what the client still sends is discarded. */
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		return;
	}
	session_client_read(s);
}

/* The PROXY header is in: the client is who it names. Then TLS, or HTTP. */
static void
session_proxy_done(struct session *s)
{
	const struct proxy_result *r = proxy_parser_result(s->pp);

	if (r->has_addr) {
		s->peer = strdup(s->addr);
		if (s->peer == NULL) {
			log_error("s%llu %s: out of memory", (unsigned long long)s->id, s->addr);
			session_abort(s, TERM_INTERNAL);
			return;
		}
		util_addr_format((const struct sockaddr *)&r->src, s->addr, sizeof(s->addr), 1);
	}
	log_debug("s%llu %s: PROXY v%d header from %s%s", (unsigned long long)s->id, s->addr,
		r->version, s->peer != NULL ? s->peer : s->addr,
		r->has_addr ? "" : " (LOCAL or UNKNOWN: the peer is the client)");
	proxy_parser_free(s->pp);
	s->pp = NULL;
	conn_set_raw(s->c, false);
	/* The bytes after the header are still in the socket: the read event
	 * fires again for them, into TLS or straight into c->in. */
	if (s->listener->tls != NULL && session_start_tls(s) < 0)
		session_destroy(s);
}

/*
 * Read the PROXY protocol header that opens the connection without taking
 * a byte past it from the kernel: peek, let the parser say how many of the
 * peeked bytes are the header's, take exactly those. While the header is
 * incomplete every peeked byte is the header's, so each round empties the
 * socket and the level-triggered read event does not spin.
 */
static void
session_proxy_read(struct session *s)
{
	unsigned char buf[512];
	enum proxy_status st = PROXY_INCOMPLETE;

	while (st == PROXY_INCOMPLETE) {
		ssize_t n = conn_peek(s->c, buf, sizeof(buf));
		size_t used;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			log_debug("s%llu %s: connection closed before its PROXY header: %s",
				(unsigned long long)s->id, s->addr,
				n == 0 ? "end of stream" : strerror(errno));
			session_abort(s, TERM_CLIENT_CLOSED);
			return;
		}
		st = proxy_parse(s->pp, buf, (size_t)n, &used);
		if (st == PROXY_ERROR) {
			log_info("s%llu %s: bad PROXY header: %s", (unsigned long long)s->id,
				s->addr, proxy_parser_error(s->pp));
			session_abort(s, TERM_BAD_REQUEST);
			return;
		}
		/* The bytes were peeked: taking them cannot come up short. */
		if (used > 0 && conn_take(s->c, buf, used) != (ssize_t)used) {
			log_info("s%llu %s: recv() of the PROXY header failed: %s",
				(unsigned long long)s->id, s->addr, strerror(errno));
			session_abort(s, TERM_CLIENT_CLOSED);
			return;
		}
	}
	session_proxy_done(s);
}

/* A closing session's last bytes are out. */
static void
session_flushed(struct session *s)
{
	if (!s->linger || s->client_eof) {
		session_destroy(s);
		return;
	}
	/* Answer sent: shut our side, then drain the client's until it
	 * closes or SESSION_LINGER_MS passes. */
	conn_shutdown_write(s->c);
	/* What the client sent meanwhile is of no use; a full input buffer
	 * would also keep reading paused. */
	evbuffer_drain(s->c->in, evbuffer_get_length(s->c->in));
	conn_read_enable(s->c);
	s->timer_kind = TIMER_NONE;
	timer_arm_ms(s, SESSION_LINGER_MS);
	s->linger = false;
	s->lingering = true;
}

static void
session_drained_cb(struct conn *c, void *arg)
{
	struct session *s = arg;

	if (s->dead)
		return;
	if (s->closing) {
		if (evbuffer_get_length(c->out) == 0 && !s->lingering)
			session_flushed(s);
		return;
	}
	if (s->ex.active) {
		if (s->ex.tunnel)
			tunnel_client_drained(s);
		else
			forward_client_drained(s);
		return;
	}
	if (s->out_blocked) {
		s->out_blocked = false;
		conn_read_enable(s->c);
		session_client_read(s);
	}
}

static void
session_event_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;

	if (s->dead)
		return;
	if (ev == CONN_ERROR && c->handshaking) {
		log_info("s%llu %s: TLS handshake failed: %s", (unsigned long long)s->id,
			s->addr, conn_strerror(c));
		session_abort(s, TERM_CLIENT_CLOSED);
		return;
	}
	if (ev == CONN_ERROR) {
		log_debug("s%llu %s: client connection error: %s", (unsigned long long)s->id,
			s->addr, conn_strerror(c));
		session_abort(s, s->ex.ws_closing ? s->ex.ws_close_term : TERM_CLIENT_CLOSED);
		return;
	}
	if (ev != CONN_EOF)
		return;
	s->client_eof = true;
	if (s->closing) {
		if (s->lingering || evbuffer_get_length(c->out) == 0)
			session_destroy(s);
		return;
	}
	if (!s->ex.active) {
		/* Answer the complete requests still buffered, flush, close;
		 * session_client_read() sees client_eof. */
		session_client_read(s);
		return;
	}
	if (s->ex.tunnel) {
		tunnel_client_eof(s);
		return;
	}
	/* During an exchange: the rest of a request body may still be in the
	 * input buffer; forward_client_readable() aborts once it is used up
	 * and the body is incomplete. A half-close after a complete request
	 * is answered, then the connection closes. */
	if (!s->ex.req_read)
		forward_client_readable(s);
}

static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	uint64_t idle_ms;
	unsigned ms;

	(void)fd;
	(void)what;
	s->timer_due_us = 0;
	if (s->dead)
		return;
	if (s->closing) {
		/* The flush or the linger took too long. */
		session_destroy(s);
		return;
	}
	switch (s->timer_kind) {
	case TIMER_CLIENT_HEADER:
	case TIMER_CLIENT_IDLE:
	case TIMER_CONNECT:
	case TIMER_RESPONSE_HEADER: {
		/* Armed for an earlier deadline that has since moved on. */
		uint64_t now = util_now_us();

		if (now + 1000 < s->deadline_us) {
			timer_arm_at(s, now, (unsigned)((s->deadline_us - now + 999) / 1000));
			return;
		}
		break;
	}
	default:
		break;
	}
	switch (s->timer_kind) {
	case TIMER_CLIENT_HEADER:
		if (s->pp != NULL && proxy_parser_consumed(s->pp) > 0)
			log_info("s%llu %s: PROXY header incomplete after %u ms",
				(unsigned long long)s->id, s->addr, s->cfg->timeouts.client_header_ms);
		if (!s->ex.active && evbuffer_get_length(s->c->in) == 0) {
			/* Nothing of a request arrived: not worth an answer. */
			session_destroy(s);
			return;
		}
		exchange_begin(s);
		session_fail(s, 408, TERM_CLIENT_TIMEOUT);
		return;
	case TIMER_CLIENT_IDLE:
		session_destroy(s);
		return;
	case TIMER_CONNECT:
	case TIMER_RESPONSE_HEADER:
		forward_timeout(s, s->timer_kind);
		return;
	case TIMER_BODY_IDLE:
		idle_ms = (util_now_us() - s->progress_us) / 1000;
		ms = timer_ms(s, TIMER_BODY_IDLE);
		if (idle_ms + 1 < ms) {
			timer_arm_ms(s, ms - (unsigned)idle_ms);
			return;
		}
		if (!s->ex.req_read && !s->ex.resp_head_sent) {
			/* The request body stalled: the client stopped sending,
			 * or the server stopped reading and we stopped reading
			 * from the client. Blame the one that stopped. */
			if (s->ex.up != NULL && evbuffer_get_length(s->ex.up->c->out) > 0)
				session_fail(s, 504, TERM_UPSTREAM_TIMEOUT);
			else
				session_fail(s, 408, TERM_CLIENT_TIMEOUT);
			return;
		}
		session_abort(s, TERM_BODY_TIMEOUT);
		return;
	case TIMER_TUNNEL_IDLE:
		tunnel_timeout(s);
		return;
	case TIMER_NONE:
		break;
	}
}
