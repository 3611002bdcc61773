/*
 * The Redis backend's connection, one per worker, on the worker's loop: the
 * server's addresses (asked off the loop by resolve.c when it is named by
 * host), connect to each in turn, AUTH, SCRIPT LOAD, back-off, the PING
 * probe that drops a connection that hangs, and disconnects. It also owns
 * what the whole process shares: the counters and the state changes logged
 * once per process. Leases, waiting requests and EVALSHA are redis.c's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
/* hiredis's adapter is all static functions written without our warnings. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "log.h"
#include "redis-int.h"
#include "redis.h"
#include "redis_conn.h"
#include "resolve.h"
#include "util.h"

#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		5000
#define CONNECT_TIMEOUT_MS	1000
/*
 * A PING goes out on each sweep while none is owed. One owed this long
 * (or 4 times the budget, if longer) means Redis, or the path to it, hangs:
 * the connection is dropped and made again, and meanwhile on_error decides
 * at once instead of every request waiting for its budget, and no more
 * commands pile up behind the ones owed.
 */
#define PROBE_LIMIT_MS		5000

/* ------------------------------------------------------- process-wide state */

/*
 * State changes are logged once for the whole process, not once per worker:
 * the first worker to lose Redis says so, the first one back says so.
 */
enum { G_UNKNOWN = 0, G_UP, G_DOWN };
static atomic_int g_state;
static atomic_bool g_slow;
/* The same for EVALSHA's answers (g_failing) is redis.c's, beside its one user. */

struct rl_redis_tally rl_redis_tally;

void
rl_redis_counters(struct rl_redis_counters *out)
{
	out->down = atomic_load_explicit(&rl_redis_tally.down, memory_order_relaxed);
	out->up = atomic_load_explicit(&rl_redis_tally.up, memory_order_relaxed);
	out->round_trips = atomic_load_explicit(&rl_redis_tally.round_trips, memory_order_relaxed);
	out->leased = atomic_load_explicit(&rl_redis_tally.leased, memory_order_relaxed);
	out->timeouts = atomic_load_explicit(&rl_redis_tally.timeouts, memory_order_relaxed);
	out->errors = atomic_load_explicit(&rl_redis_tally.errors, memory_order_relaxed);
}

void
rl_redis_note_late(struct rl_redis *rr)
{
	rl_redis_count(&rl_redis_tally.timeouts);
	if (!atomic_exchange(&g_slow, true))
		log_warn("redis %s slow: no answer within %llums; on_error = %s", rr->link.address,
			(unsigned long long)(rr->timeout_us / 1000),
			rl_redis_on_error_name(rr->on_error));
}

void
rl_redis_note_answer(struct rl_redis *rr, uint64_t took_us)
{
	if (took_us <= rr->timeout_us && atomic_load(&g_slow) && atomic_exchange(&g_slow, false))
		log_info("redis %s answers within %llums again", rr->link.address,
			(unsigned long long)(rr->timeout_us / 1000));
}

void
rl_redis_note_error(void)
{
	rl_redis_count(&rl_redis_tally.errors);
}

/* -------------------------------------------------------------- connection */

static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata);
static void connect_start(struct rl_redis *rr);

static void
went_down(struct rl_redis *rr, const char *why)
{
	if (rr->link.state == RR_UP)
		rl_redis_count(&rl_redis_tally.down);
	rr->link.state = RR_DOWN;
	if (atomic_exchange(&g_state, G_DOWN) != G_DOWN)
		log_warn("redis %s unreachable: %s; on_error = %s", rr->link.address, why,
			rl_redis_on_error_name(rr->on_error));
}

static void
went_up(struct rl_redis *rr)
{
	int was;

	rr->link.state = RR_UP;
	/* The handshake was answered: the connect deadline is met. */
	event_del(rr->link.connect_ev);
	rr->link.backoff_ms = BACKOFF_MIN_MS;
	/* Once this connection is lost, the name is asked again. */
	rr->link.next_addr = rr->link.naddrs;
	rl_redis_count(&rl_redis_tally.up);
	was = atomic_exchange(&g_state, G_UP);
	if (was == G_DOWN)
		log_info("redis %s reachable again", rr->link.address);
	else if (was == G_UNKNOWN)
		log_info("redis %s connected", rr->link.address);
}

static void
schedule_retry(struct rl_redis *rr)
{
	struct timeval tv = {
		.tv_sec = rr->link.backoff_ms / 1000,
		.tv_usec = (suseconds_t)(rr->link.backoff_ms % 1000) * 1000,
	};

	if (rr->freeing)
		return;
	evtimer_add(rr->link.retry_ev, &tv);
	rr->link.backoff_ms = rr->link.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
		rr->link.backoff_ms * 2;
}

/*
 * A connection attempt failed. The next address of a host name is tried at
 * once, without a word; after the last one Redis is down, and a retry waits
 * for the back-off.
 */
static void
attempt_failed(struct rl_redis *rr, const char *why)
{
	static const struct timeval now = { 0, 0 };

	if (!rr->freeing && rr->link.next_addr < rr->link.naddrs) {
		log_debug("redis %s: %s; trying the next address", rr->link.address, why);
		evtimer_add(rr->link.retry_ev, &now);
		return;
	}
	went_down(rr, why);
	schedule_retry(rr);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connect_start(arg);
}

/* Drop the connection now (connect timeout, a broken handshake). */
static void
drop(struct rl_redis *rr, const char *why)
{
	redisAsyncContext *ac = rr->link.ac;

	rr->link.ac = NULL;
	event_del(rr->link.connect_ev);
	/* Its pending callbacks see a NULL reply and answer their waiters. */
	if (ac != NULL)
		redisAsyncFree(ac);
	attempt_failed(rr, why);
}

static void
connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_redis *rr = arg;

	(void)fd;
	(void)what;
	if (rr->link.state == RR_CONNECTING && rr->link.ac != NULL)
		drop(rr, (rr->link.ac->c.flags & REDIS_CONNECTED) ? "no answer to the handshake" :
			"connect timed out");
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rl_redis *rr = ac->data;

	if (rr == NULL || rr->freeing || rr->link.ac != ac)
		return;
	/*
	 * Connected: the deadline stays until the handshake is answered
	 * (went_up). A Redis that hangs (SIGSTOP) still completes TCP
	 * connects from its listen queue, and until the PING probe gave up
	 * on such a connection every request would wait its whole budget.
	 */
	if (status == REDIS_OK)
		return;
	event_del(rr->link.connect_ev);
	/* hiredis frees ac after this callback. */
	rr->link.ac = NULL;
	attempt_failed(rr, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rl_redis *rr = ac->data;

	(void)status;
	if (rr == NULL || rr->freeing || rr->link.ac != ac)
		return;
	rr->link.ac = NULL;
	attempt_failed(rr, ac->err ? ac->errstr : "connection closed");
}

/* AUTH's and SCRIPT LOAD's replies; privdata is the handshake step. */
static void
on_handshake(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rl_redis *rr = ac->data;
	redisReply *rep = reply;
	bool script = privdata != NULL;
	char why[256];

	if (rr == NULL || rr->freeing || rr->link.ac != ac || rep == NULL)
		return;		/* the disconnect callback handles it */
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "%s failed: %.200s", script ? "SCRIPT LOAD" : "AUTH",
			rep->str);
		/* Not from within hiredis's callback: disconnect, and let the
		 * disconnect callback schedule the retry. */
		went_down(rr, why);
		redisAsyncDisconnect(ac);
		return;
	}
	if (script && rr->link.state != RR_UP)
		went_up(rr);
}

/* Also redis.c's, after a NOSCRIPT. */
int
rl_redis_send_script(struct rl_redis *rr)
{
	static const char load[] = "LOAD";
	const char *argv[3] = { "SCRIPT", load, rl_redis_gcra_script };
	size_t lens[3] = { 6, sizeof(load) - 1, rl_redis_gcra_script_len };

	/* Any non-NULL privdata marks the SCRIPT LOAD step. */
	return redisAsyncCommandArgv(rr->link.ac, on_handshake, (void *)load, 3, argv, lens) ==
		REDIS_OK ? 0 : -1;
}

/* AUTH (ACL user and password, or the password alone), then SCRIPT LOAD. */
static int
send_handshake(struct rl_redis *rr)
{
	const char *argv[3] = { "AUTH" };
	size_t lens[3] = { 4 };
	int n = 1;

	if (rr->link.password != NULL) {
		if (rr->link.user != NULL) {
			argv[n] = rr->link.user;
			lens[n++] = strlen(rr->link.user);
		}
		argv[n] = rr->link.password;
		lens[n++] = rr->link.password_len;
		if (redisAsyncCommandArgv(rr->link.ac, on_handshake, NULL, n, argv, lens) !=
		    REDIS_OK)
			return -1;
	}
	return rl_redis_send_script(rr);
}

/* Connect to ip (a literal) and queue the handshake. */
static void
connect_to(struct rl_redis *rr, const char *ip)
{
	static const struct timeval ct = {
		.tv_sec = CONNECT_TIMEOUT_MS / 1000, .tv_usec = (CONNECT_TIMEOUT_MS % 1000) * 1000,
	};
	redisAsyncContext *ac;

	ac = redisAsyncConnect(ip, rr->link.port);
	if (ac == NULL) {
		went_down(rr, "out of memory");
		schedule_retry(rr);
		return;
	}
	if (ac->err) {
		char why[128];

		/* connect() failed at once (ENETUNREACH, EADDRNOTAVAIL: ::1
		 * without IPv6): the next address is tried at once, as for
		 * a refusal that comes later. */
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		attempt_failed(rr, why);
		return;
	}
	ac->data = rr;
	if (redisLibeventAttach(ac, rr->base) != REDIS_OK) {
		redisAsyncFree(ac);
		attempt_failed(rr, "cannot attach to the event loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rr->link.ac = ac;
	rr->link.state = RR_CONNECTING;
	rr->link.probe_owed = false;
	evtimer_add(rr->link.connect_ev, &ct);
	/* Commands queue until the connect completes, in order: the
	 * handshake first, the connection counts, then whatever take() sends. */
	if (send_handshake(rr) < 0) {
		drop(rr, "cannot queue the handshake");
		return;
	}
	rl_conns_linked(rr->conns);
}

/* Connect to the next address of host's answer. */
static void
connect_next(struct rl_redis *rr)
{
	const struct sockaddr_storage *ss = &rr->link.addrs[rr->link.next_addr++];
	char ip[UTIL_ADDR_LEN + 16];

	/* resolve.c keeps IPv4 and IPv6 answers only. */
	util_addr_format((const struct sockaddr *)ss, ip, UTIL_ADDR_LEN, 0);
	/* A link-local address needs its scope, which hiredis's own
	 * getaddrinfo() reads back from "fe80::1%2". */
	if (ss->ss_family == AF_INET6 && ((const struct sockaddr_in6 *)ss)->sin6_scope_id != 0)
		snprintf(ip + strlen(ip), sizeof(ip) - strlen(ip), "%%%u",
			(unsigned)((const struct sockaddr_in6 *)ss)->sin6_scope_id);
	log_debug("redis %s: trying %s", rr->link.address, ip);
	connect_to(rr, ip);
}

/* host's addresses are in, or the question failed. */
static void
resolved(int err, const char *errtext, const struct sockaddr_storage *addrs, size_t n, void *arg)
{
	struct rl_redis *rr = arg;
	char why[300];

	rr->link.resolving = NULL;
	if (err != 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", rr->link.host, errtext);
		went_down(rr, why);
		schedule_retry(rr);
		return;
	}
	memcpy(rr->link.addrs, addrs, n * sizeof(addrs[0]));
	rr->link.naddrs = n;
	rr->link.next_addr = 0;
	connect_next(rr);
}

/*
 * Connect, or first ask for the host's address. A name is asked anew at
 * every attempt, so that Redis moved to another address is followed, and
 * off the loop: the system's resolver blocks, and while it waits the
 * requests of this worker go on, answered by on_error.
 */
static void
connect_start(struct rl_redis *rr)
{
	if (rr->freeing || rr->link.ac != NULL || rr->link.resolving != NULL)
		return;
	if (rr->link.literal) {
		connect_to(rr, rr->link.host);
		return;
	}
	if (rr->link.next_addr < rr->link.naddrs) {
		connect_next(rr);
		return;
	}
	rr->link.resolving = resolve_start(rr->base, rr->link.host, rr->link.port, resolved, rr);
	if (rr->link.resolving == NULL) {
		char why[128];

		snprintf(why, sizeof(why), "cannot start resolving: %s", strerror(errno));
		went_down(rr, why);
		schedule_retry(rr);
	}
}

/* ------------------------------------------------------------------- probe */

static void
on_probe(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rl_redis *rr = ac->data;

	(void)privdata;
	if (rr == NULL || rr->freeing || rr->link.ac != ac || reply == NULL)
		return;
	rr->link.probe_owed = false;
}

/* Send the PING, or drop the connection when the last one is owed too long. */
void
rl_redis_probe(struct rl_redis *rr, uint64_t now)
{
	uint64_t limit_us = rr->timeout_us * 4 > PROBE_LIMIT_MS * 1000ULL ?
		rr->timeout_us * 4 : PROBE_LIMIT_MS * 1000ULL;
	char why[64];

	if (rr->link.ac == NULL)
		return;
	if (!rr->link.probe_owed) {
		if (redisAsyncCommand(rr->link.ac, on_probe, NULL, "PING") == REDIS_OK) {
			rr->link.probe_owed = true;
			rr->link.probe_sent_at = now;
		}
		return;
	}
	if (now - rr->link.probe_sent_at < limit_us)
		return;
	snprintf(why, sizeof(why), "no answer for %llu ms",
		(unsigned long long)((now - rr->link.probe_sent_at) / 1000));
	drop(rr, why);
}

/* ------------------------------------------------------------- life cycle */

/* "host:port" or "[v6]:port" into its parts. Returns 0 or -1. */
static int
split_address(const char *s, char **host, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hlen;
	char *end;
	long v;

	if (colon == NULL)
		return -1;
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && colon[-1] == ']') {
		h = s + 1;
		hlen -= 2;
	}
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535 || hlen == 0)
		return -1;
	*host = strndup(h, hlen);
	*port = (int)v;
	return *host != NULL ? 0 : -1;
}


int
rl_redis_link_init(struct rl_redis *rr, const struct config_redis *c)
{
	rr->link.backoff_ms = BACKOFF_MIN_MS;
	rr->link.address = strdup(c->address);
	if (rr->link.address == NULL ||
	    split_address(c->address, &rr->link.host, &rr->link.port) < 0)
		return -1;
	rr->link.literal = resolve_is_literal(rr->link.host);
	if (c->user != NULL && (rr->link.user = strdup(c->user)) == NULL)
		return -1;
	if (c->password != NULL) {
		rr->link.password = malloc(c->password_len + 1);
		if (rr->link.password == NULL)
			return -1;
		memcpy(rr->link.password, c->password, c->password_len);
		rr->link.password[c->password_len] = '\0';
		rr->link.password_len = c->password_len;
	}
	rr->link.retry_ev = evtimer_new(rr->base, retry_cb, rr);
	rr->link.connect_ev = evtimer_new(rr->base, connect_timeout_cb, rr);
	return rr->link.retry_ev != NULL && rr->link.connect_ev != NULL ? 0 : -1;
}

void
rl_redis_link_start(struct rl_redis *rr)
{
	connect_start(rr);
}

void
rl_redis_link_close(struct rl_redis *rr)
{
	resolve_cancel(rr->link.resolving);
	rr->link.resolving = NULL;
	if (rr->link.ac != NULL) {
		redisAsyncContext *ac = rr->link.ac;

		/* A clean stop: what is queued (the connections released, the
		 * alive key's deletion) goes out if the socket takes it now. */
		if (rr->link.state == RR_UP) {
			int done = 0;

			/* The context's own writer: on an error it reports,
			 * where redisAsyncHandleWrite would free ac. */
			(void)redisBufferWrite(&ac->c, &done);
		}
		rr->link.ac = NULL;
		redisAsyncFree(ac);
	}
	if (rr->link.retry_ev != NULL)
		event_free(rr->link.retry_ev);
	if (rr->link.connect_ev != NULL)
		event_free(rr->link.connect_ev);
	if (rr->link.password != NULL)
		explicit_bzero(rr->link.password, rr->link.password_len);
	free(rr->link.password);
	free(rr->link.user);
	free(rr->link.host);
	free(rr->link.address);
}
