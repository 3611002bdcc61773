/*
 * A session is one client connection and the exchanges (request/response
 * pairs) that run on it one after the other. The client side is split by
 * role (session-int.h holds what the parts share): session.c owns the life
 * cycle, timeouts, keep-alive and the single place where a session ends;
 * session_head.c reading, checking, routing and admitting request heads,
 * with pipelining; session_answer.c the error and redirect answers sluice
 * writes itself; session_log.c the access-log line. forward.c and its
 * forward_*.c files drive the server side of each exchange.
 */
#ifndef SLUICE_SESSION_H
#define SLUICE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "http.h"
#include "lb_key.h"
#include "ratelimit.h"
#include "tunnel.h"
#include "util.h"

struct worker;
struct config;
struct config_route;
struct config_server;
struct upconn;
struct conn;
struct event;
struct evbuffer;

/* Where an exchange was when it ended. */
enum session_phase {
	PHASE_HEAD = 0,		/* reading the request head */
	PHASE_CONNECT,		/* choosing a server and connecting */
	PHASE_REQUEST,		/* sending the request body */
	PHASE_RESPONSE_HEAD,	/* waiting for the response head */
	PHASE_RESPONSE_BODY,	/* relaying the response body */
	PHASE_TUNNEL,		/* relaying WebSocket frames after 101 */
	PHASE_DONE,
};

/* Why it ended. */
enum session_term {
	TERM_OK = 0,
	TERM_CLIENT_CLOSED,
	TERM_CLIENT_TIMEOUT,
	TERM_BAD_REQUEST,
	TERM_HEADER_TOO_LARGE,
	TERM_URI_TOO_LONG,
	TERM_NOT_IMPLEMENTED,
	TERM_NO_ROUTE,
	TERM_NO_SERVER,		/* no server of the pool is usable: 503 */
	TERM_CONNECT_FAILED,
	TERM_CONNECT_TIMEOUT,
	TERM_UPSTREAM_TIMEOUT,
	TERM_UPSTREAM_CLOSED,
	TERM_BAD_RESPONSE,
	TERM_BODY_TIMEOUT,
	TERM_SHUTDOWN,
	TERM_INTERNAL,
	TERM_TUNNEL_IDLE,
	TERM_WS_PROTOCOL,	/* a frame broke RFC 6455: close 1002 */
	TERM_WS_TOO_BIG,	/* a message over ws_max_message: close 1009 */
	TERM_RATE_LIMITED,	/* a rate limit said no: 429, or close 1008 on a tunnel */
};

/* Which deadline the session timer stands for. */
enum session_timer {
	TIMER_NONE = 0,
	TIMER_CLIENT_HEADER,
	TIMER_CLIENT_IDLE,
	TIMER_CONNECT,
	TIMER_RESPONSE_HEADER,
	TIMER_BODY_IDLE,
	TIMER_TUNNEL_IDLE,
};

#define SESSION_MAX_TRIED 16

/* One request and its response; embedded in the session, reset between. */
struct exchange {
	bool active;
	bool server_counted;		/* counted in server->rt->active (server_acquire) */
	enum session_phase phase;
	int method;
	char method_str[16];
	char *uri;			/* copy for the access log, in s->uri_buf */
	char request_id[65];
	bool client_http10;
	bool client_keep_alive;		/* the client may send another request */
	bool req_read;			/* request body fully read from the client */
	bool up_reusable;		/* the server connection may carry another exchange */
	bool resp_head_sent;		/* a response head went to the client */
	bool resp_done;
	bool resp_close_delimited;	/* the client connection must close after */
	const struct config_route *route;
	const struct config_server *server;
	unsigned tried[SESSION_MAX_TRIED];
	unsigned ntried;
	bool retried_reuse;		/* already retried once after a stale idle connection */
	bool up_eof;			/* the server closed its side */
	bool ws_upgrade;		/* a valid WebSocket upgrade request */
	bool tunnel;			/* 101 came: relaying frames */
	struct ws_dir c2s;		/* client to server frames */
	struct ws_dir s2c;
	bool ws_closing;		/* close frames sent after a violation */
	enum session_term ws_close_term;
	/* Stickiness: the server the request's cookie or sid names, whether
	 * the answer must set the cookie, and whether to learn a sid from it. */
	const struct config_server *sticky_server;
	bool set_cookie;
	bool learn_sid_poll;
	bool learn_sid_ws;
	struct upconn *up;
	size_t head_len;		/* bytes of s->head_buf: the head for the server */
	struct http_body_state req_body;
	struct http_body_state resp_body;
	size_t resp_scan;
	uint64_t resp_bytes;		/* bytes received from the server */
	int status;
	enum session_term term;		/* why it ended */
	enum session_term last_failure;	/* of the last connect attempt */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t t_start_us;		/* util_now_us() when the head was complete */
	uint64_t t_connect_us;		/* start of the current connect */
	double connect_ms;
	double first_byte_ms;
	bool have_first_byte;
	/* Rate limits: the exchange waits for a backend's answer; the policy
	 * whose RateLimit field an allowed response carries (headers = on),
	 * with its numbers; the policy that denied it, for the access log. */
	bool rl_wait;
	const struct rl_policy *rl_hdr;
	struct rl_result rl_hdr_r;
	const struct rl_policy *rl_denied;
	/* The request's key for a keyed balancer (balance = hash), in the
	 * session's hash_key_buf; length 0: none. */
	const char *hash_key;
	size_t hash_key_len;
};

/* Owned by its worker (worker.sessions); freed through worker_defer_free. */
struct session {
	TAILQ_ENTRY(session) link;
	struct worker *w;
	struct config *cfg;		/* the generation it was accepted under */
	const struct config_listener *listener;	/* in cfg: where it was accepted */
	/* LB_KEY_MAX bytes for the hash key, made on the first request routed
	 * to a keyed pool: most sessions never need it, idle tunnels least. */
	char *hash_key_buf;
	/* The request head for the server, kept for retries until the
	 * exchange ends; the buffer is reused by the next exchange. */
	char *head_buf;
	size_t head_cap;
	/* What ex.uri points to, when set: reused by every exchange. */
	char *uri_buf;
	size_t uri_cap;
	uint64_t id;
	struct conn *c;			/* the client connection */
	char addr[UTIL_ADDR_LEN];	/* "ip:port", or "[ipv6]:port": the client's */
	/* PROXY protocol listeners: the header parser until the header is in
	 * (NULL after), and the connection's own peer, owned, when the header
	 * named another client (addr is then the header's source). */
	struct proxy_parser *pp;
	char *peer;
	size_t scan;			/* http_head_find progress */
	struct event timer;		/* embedded: one allocation less per session */
	enum session_timer timer_kind;
	/*
	 * Deadlines are lazy: setting one only moves the timer when it must
	 * fire sooner than it is armed for; a timer that fires early re-arms
	 * for what is left. A keep-alive exchange then costs no timer heap
	 * operation at all in the steady state.
	 */
	uint64_t deadline_us;		/* when timer_kind expires (util_now_us) */
	uint64_t timer_due_us;		/* when the armed timer fires; 0: not armed */
	uint64_t progress_us;		/* last body progress (util_now_us), for body_idle */
	bool closing;			/* flushing the last bytes, then freed */
	bool linger;			/* after the flush, drain input before closing */
	bool lingering;
	bool in_read;			/* inside session_client_read */
	bool read_again;
	bool out_blocked;		/* reading paused: too many answers unread */
	bool dead;			/* on the worker's dead list */
	bool client_eof;
	bool draining;			/* worker stopping: last exchange */
	unsigned requests;
	/* Rate limit state, from the first request routed to a route with
	 * limits; NULL until then (ratelimit.h). Owned. */
	struct rl_sess *rl;
	struct exchange ex;
};

/* Adopt an accepted socket. Worker thread. */
void session_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
		size_t listener);

/*
 * End the current exchange with an error answer (status > 0) or an abort
 * (status 0: the client connection is cut). Logs the exchange.
 */
void session_fail(struct session *s, int status, enum session_term term);

/* The response is complete: log, recycle or close. */
void session_exchange_done(struct session *s);

/* Close now, logging the exchange in progress with term. */
void session_abort(struct session *s, enum session_term term);

/* Arm the session timer for kind (uses the session's config). */
void session_timer_set(struct session *s, enum session_timer kind);

/* Worker stopping: close when idle, else finish the exchange and close. */
void session_drain(struct session *s);

/* Free a session queued by worker_defer_free. */
void session_free(struct session *s);

/*
 * End a WebSocket tunnel: log it with term, close the server side now and
 * the client side once its output is flushed (lingering if asked).
 */
void session_end_tunnel(struct session *s, enum session_term term, bool linger);

/* Re-arm the session timer for ms more, keeping its kind. */
void session_timer_rearm(struct session *s, unsigned ms);

/* Progress mark for body_idle and tunnel_idle (monotonic clock). */
void session_progress(struct session *s);

/*
 * The client's IP address without port ("1.2.3.4", "::1") into buf: the
 * peer's, or the one its PROXY protocol header named. Returns its length.
 */
size_t session_client_ip(const struct session *s, char *buf, size_t len);

/* Client side read handling, also called by forward.c after an exchange. */
void session_client_read(struct session *s);


#endif
