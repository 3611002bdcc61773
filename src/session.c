/*
 * Client connections: accepting, the PROXY header and TLS start, timers and
 * their deadlines, the connection's events and the read loop (keep-alive,
 * pipelining), and the one place where an exchange (session_exchange_end)
 * and a session (session_close, session_destroy) end. Request heads are
 * session_head.c's, our own answers session_answer.c's, the access-log line
 * session_log.c's, the server side of each exchange forward.c's and its
 * forward_*.c files'.
 */
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "session-int.h"
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

static void session_read_cb(struct conn *c, void *arg);
static void session_drained_cb(struct conn *c, void *arg);
static void session_event_cb(struct conn *c, enum conn_event ev, void *arg);
static void session_flushed(struct session *s);
static void session_timer_cb(evutil_socket_t fd, short what, void *arg);
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

/* Log the exchange once and forget it; the session goes on or not. */
void
session_exchange_end(struct session *s, enum session_term term)
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
	session_log_write(s);
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

void
session_exchange_done(struct session *s)
{
	struct exchange *ex = &s->ex;
	bool keep = ex->client_keep_alive && !ex->resp_close_delimited && ex->req_read &&
		!s->draining;
	/* A client that half-closed after pipelining still gets answers to
	 * the requests it sent: the session closes once they are used up. */
	bool more_input = evbuffer_get_length(s->c->in) > 0;

	session_exchange_end(s, TERM_OK);
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
	session_exchange_end(s, term);
	session_close(s, linger);
}

void
session_abort(struct session *s, enum session_term term)
{
	session_exchange_end(s, term);
	session_destroy(s);
}
/*
 * Stop after the bytes in the output buffer are sent. With linger, the
 * write side is shut and the client's remaining input drained for a while
 * so that a client still sending does not turn our close into a reset that
 * destroys the answer.
 */
void
session_close(struct session *s, bool linger)
{
	if (s->dead)
		return;
	s->closing = true;
	s->linger = linger;
	session_exchange_end(s, s->ex.term);
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
