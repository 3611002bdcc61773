/*
 * Rate limits: the GCRA step of a policy (struct rl_policy, config-t.h),
 * the key an event is counted under (client address through trusted
 * proxies, a header, a cookie, the route), the backend interface that
 * takes tokens (in-process here, Redis in redis.c), and the admission of
 * one exchange against all the policies of its route. It does not write
 * answers: session_answer.c sends the 429 that rl_format_* help build.
 */
#ifndef SLUICE_RATELIMIT_H
#define SLUICE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"

struct http_head;
struct rl_hold;			/* a counted connection, the backend's own */

/* Longest key a backend sees, policy name not included; longer header or
 * cookie values are shortened to a prefix and a hash of the whole. */
#define RL_KEY_MAX 128

/* What a backend answers for one event. */
struct rl_result {
	bool allowed;
	unsigned remaining;		/* events that would pass right now, after this one */
	unsigned reset_s;		/* seconds until the budget is whole again */
	unsigned retry_after_s;		/* denied: seconds until one would pass, >= 1 */
};

/* Called by an asynchronous backend with the answer, on the caller's loop. */
typedef void (*rl_done_cb)(void *arg, const struct rl_result *r);

/*
 * A backend answers "take one token of key under policy p now", maybe
 * asynchronously. key[0..keylen) does not include the policy: a backend
 * scopes keys by p->name itself. be is the backend instance.
 */
struct rl_backend_ops {
	/* Returns 0 when done synchronously (r filled, cb not called), 1 when
	 * cb(arg, ...) will be called later on the calling worker's loop, -1
	 * on failure (the caller lets the event through). */
	int (*take)(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_result *r, rl_done_cb cb, void *arg);
	/*
	 * kind = connections: count one more connection of key under p,
	 * unless p->rate are open already wherever the backend counts (the
	 * process, or every replica). Returns as take(). When the answer is
	 * "allowed", *hold is set (before take returns 0, or before cb runs)
	 * to what release() gives back; it may be NULL when nothing was
	 * counted (on_error = allow with no table, out of memory).
	 */
	int (*acquire)(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg);
	/* The connection counted by acquire is gone. Accepts NULL. */
	void (*release)(void *be, struct rl_hold *hold);
	/* The caller went away before cb: cb(arg) must not be called. An
	 * acquire cancelled so counts nothing. */
	void (*cancel)(void *be, void *arg);
};

/* ------------------------------------------------------------- GCRA math */

/*
 * One event at now_us under p, with *tat the key's theoretical arrival time
 * (0: never seen). Allowed iff max(tat, now) - now <= tau; then *tat moves
 * on by T. Fills r. Pure: backends and the WebSocket message counter share it.
 */
bool rl_gcra(const struct rl_policy *p, uint64_t *tat, uint64_t now_us, struct rl_result *r);

/* -------------------------------------------------------------- keys */

/*
 * The client's address for limits: peer_ip itself, or, when peer_ip is in
 * cfg->trusted, the first address of X-Forwarded-For (walking from the
 * right, across every X-Forwarded-For field) that is not trusted; when all
 * are trusted, the leftmost; an entry that is not an address stops the walk
 * at the address to its right. Written normalised (inet_ntop) into out.
 * Returns its length.
 */
size_t rl_client_addr(const struct config *cfg, const char *peer_ip, const struct http_head *h,
		char *out, size_t outlen);

/* Whether ip (text) is in one of cidrs[0..n). */
bool rl_cidr_match(const struct config_cidr *cidrs, size_t n, const char *ip);

/*
 * The key of an event under p, into out: client_addr (already resolved),
 * a header's or cookie's value, or the route's name. Returns its length;
 * 0 when the request has no such header or cookie: p does not count it.
 */
size_t rl_key_build(const struct rl_policy *p, const struct config_route *route,
		const struct http_head *h, const char *client_addr, char out[RL_KEY_MAX]);

/* --------------------------------------------------------- answers */

/* `"NAME";q=RATE;w=PER` into buf; returns its length (truncated at len - 1). */
size_t rl_format_policy(const struct rl_policy *p, char *buf, size_t len);

/* `"NAME";r=R;t=T` into buf; returns its length. */
size_t rl_format_state(const struct rl_policy *p, const struct rl_result *r, char *buf,
		size_t len);

/* --------------------------------------------- the in-process backend */

/*
 * A process-wide table shared by the workers: striped mutexes, entries
 * {policy name, key, TAT} dropped once their TAT has passed. Also holds
 * the connection counts of kind = connections (rl_local_ops.acquire).
 * Created by main.c.
 */
struct rl_local;

extern const struct rl_backend_ops rl_local_ops;

/* NULL when out of memory. Main thread. */
struct rl_local *rl_local_new(void);

/* Accepts NULL. Main thread, once the workers are gone. */
void rl_local_free(struct rl_local *t);

/* Drop the entries whose TAT is past and that hold no connection; returns
 * how many remain. Main thread, about once a second. Any thread is safe. */
size_t rl_local_sweep(struct rl_local *t, uint64_t now_us);

/* One event of p for key, synchronously (what rl_local_ops.take does). */
void rl_local_take(struct rl_local *t, const struct rl_policy *p, const char *key,
		size_t keylen, uint64_t now_us, struct rl_result *r);

/*
 * kind = connections: count one more connection of key under p, unless
 * p->rate are already open. Returns a handle for rl_local_release (the
 * entry stays while it is held), or NULL when over the limit or out of
 * memory (*over says which). Any thread.
 */
struct rl_hold *rl_local_acquire(struct rl_local *t, const struct rl_policy *p, const char *key,
		size_t keylen, bool *over);

/* The connection is gone. Accepts NULL. Any thread. */
void rl_local_release(struct rl_local *t, struct rl_hold *h);

/* ------------------------------------------------------------ admission */

struct rl_sess;

/* One take() or acquire() of an exchange, in flight or answered. */
struct rl_slot {
	struct rl_sess *rs;
	const struct rl_policy *p;
	bool pending;			/* the backend answers later */
	bool failed;			/* the backend could not try: let through */
	struct rl_hold *hold;		/* acquire(): what it counted, until held */
	struct rl_result r;
};

/*
 * A session's rate limit state, allocated on its first request routed to a
 * route with limits (sessions that never meet one pay nothing): the takes
 * of the current exchange, the connections it counts (kind = connections)
 * and its WebSocket message budgets. Owned by the session; worker thread.
 */
struct rl_sess {
	const struct rl_backend_ops *ops;
	void *be;
	void (*resume)(void *arg);	/* the last pending answer came */
	void *arg;
	struct rl_slot slot[CONFIG_ROUTE_MAX_RL];
	unsigned nslots;
	unsigned npending;
	struct rl_hold *held[CONFIG_ROUTE_MAX_RL];
	const struct rl_policy *held_p[CONFIG_ROUTE_MAX_RL];
	unsigned nheld;
	uint64_t msg_tat[CONFIG_ROUTE_MAX_RL];	/* per route->rl[i], kind = messages */
};

/* What one exchange is admitted with. */
struct rl_admit_in {
	const struct config *cfg;
	const struct config_route *route;
	const struct http_head *h;
	const char *peer_ip;		/* session_client_ip() */
	bool upgrade;			/* a WebSocket upgrade request */
};

enum rl_verdict {
	RL_ALLOW = 0,
	RL_DENY,			/* 429 */
	RL_DENY_CLOSE,			/* 429 and close (kind = connections) */
	RL_PENDING,			/* resume(arg) comes once every answer is in */
};

/* NULL when out of memory. The backend is the worker's: it counts the
 * connections too, and takes them back when the session goes. */
struct rl_sess *rl_sess_new(const struct rl_backend_ops *ops, void *be,
		void (*resume)(void *arg), void *arg);

/* Cancel what is pending, release the connections held, free. Accepts NULL. */
void rl_sess_free(struct rl_sess *rs);

/* Cancel what is pending: resume will not be called. */
void rl_sess_cancel(struct rl_sess *rs);

/* Take a token of every policy of in->route that applies to the request. */
enum rl_verdict rl_admit(struct rl_sess *rs, const struct rl_admit_in *in);

/* The verdict once nothing is pending. */
enum rl_verdict rl_verdict(const struct rl_sess *rs);

/* The denial to answer with: the one with the longest wait. NULL if none. */
const struct rl_policy *rl_denial(const struct rl_sess *rs, struct rl_result *r);

/* For an allowed exchange: the headers = on policy with the least left, or NULL. */
const struct rl_policy *rl_header(const struct rl_sess *rs, struct rl_result *r);

/* A client data message on a tunnel of route: false when a kind = messages
 * policy says no (*which is the first that did). */
bool rl_message(struct rl_sess *rs, const struct config_route *route, uint64_t now_us,
		const struct rl_policy **which);

#endif
