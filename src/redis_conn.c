/*
 * Connection counts (kind = connections) kept in Redis, so that one limit
 * holds across every replica: a worker's count per key, the acquires it
 * waits on, its sign of life, and how it puts Redis right after a lost
 * connection. redis.c owns the connection and hands acquire() and
 * release() here.
 *
 * In Redis, for a policy NAME and a key K:
 *   PREFIX NAME "#conns:" K   a hash: one field per worker of every replica,
 *                             the connections that worker holds under K
 *   PREFIX "#alive:" ID       Redis's time (ms) when worker ID last wrote
 * Policy names cannot hold '#', so these never meet the GCRA keys. A worker
 * whose alive key is older than ALIVE_COUNT_MS (a crashed or cut-off
 * replica) is not counted; once the key is gone, its fields are deleted.
 * Changes are relative (+1, -1) and so exact while one connection carries
 * them in order; a new connection gets a new ID (the epoch moves on),
 * writes what the worker holds under it, and deletes the old ID's alive
 * key, since what the old connection left half-done cannot be known.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config-t.h"
#include "lb.h"
#include "log.h"
#include "redis.h"
#include "redis_conn.h"
#include "util.h"

#define ALIVE_BEAT_MS		1000	/* a worker holding connections says so this often */
#define ALIVE_COUNT_MS		5000	/* its counts count while it spoke within this */
#define ALIVE_KEEP_MS		60000	/* then its alive key, and so its fields, go */
#define KEY_TTL_MS		600000	/* a count hash nobody touches goes after this */
#define KEY_REFRESH_BEATS	60	/* the held hashes' TTL is renewed every so many beats */
#define MAX_KEY_LEN		1024
#define MIN_BUCKETS		64

/*
 * One script, whose ARGV[1] says what to do, so that every change writes
 * the worker's alive key with Redis's own clock: 'a' counts one more
 * connection if fewer than ARGV[4] are held by live workers, 'r' one less,
 * 'f' one more without asking (on_error let it in), 's' sets the count
 * (ARGV[8]) after a new connection, 'b' only says "alive". Returns
 * {counted, held by live workers, this one included}.
 */
static const char conn_script[] =
	"if redis.replicate_commands then redis.replicate_commands() end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local mode, id, ap, k = ARGV[1], ARGV[2], ARGV[3], KEYS[1]\n"
	"redis.call('SET', ap .. id, string.format('%d', now), 'PX', ARGV[6])\n"
	"if mode == 'b' then return {1, 0} end\n"
	"if mode == 'r' then\n"
	"  if redis.call('HINCRBY', k, id, -1) <= 0 then redis.call('HDEL', k, id) end\n"
	"  return {1, 0}\n"
	"end\n"
	"local sum = 0\n"
	"if mode == 'a' then\n"
	"  local h = redis.call('HGETALL', k)\n"
	"  for i = 1, #h, 2 do\n"
	"    local n = tonumber(h[i + 1]) or 0\n"
	"    if h[i] == id then sum = sum + n else\n"
	"      local seen = tonumber(redis.call('GET', ap .. h[i]))\n"
	"      if not seen then redis.call('HDEL', k, h[i])\n"
	"      elseif now - seen <= tonumber(ARGV[5]) then sum = sum + n end\n"
	"    end\n"
	"  end\n"
	"  if sum >= tonumber(ARGV[4]) then return {0, sum} end\n"
	"  redis.call('HINCRBY', k, id, 1)\n"
	"  sum = sum + 1\n"
	"elseif mode == 'f' then redis.call('HINCRBY', k, id, 1)\n"
	"else redis.call('HSET', k, id, ARGV[8]) end\n"
	"redis.call('PEXPIRE', k, ARGV[7])\n"
	"return {1, sum}\n";

/* What this worker holds under one (policy, key); owned by the table. */
struct conn_ent {
	struct conn_ent *next;		/* hash chain */
	uint64_t hash;
	unsigned held;			/* connections counted, as Redis should know them */
	unsigned refs;			/* holds and ops pointing here */
	size_t user_off;		/* where the client's key starts in key[] */
	size_t keylen;
	char key[];			/* the Redis key */
};

/* What a session's connection holds: struct rl_hold to the session. */
struct conn_hold {
	struct conn_ent *e;
	struct rl_hold *local;		/* on_error = local: the in-process count too */
};

/* One command sent, until its reply (or the connection's end) comes. */
struct conn_op {
	TAILQ_ENTRY(conn_op) link;	/* c->waiting, while a session waits */
	struct rl_conns *c;
	struct conn_ent *e;		/* NULL for a beat */
	char mode;			/* the script's ARGV[1] */
	bool waiting;			/* 'a': a session waits for the answer */
	bool counted;			/* 'a' answered: held moved on, the session holds it */
	bool eval;			/* sent again as EVAL after NOSCRIPT */
	unsigned limit;			/* 'a': the policy's rate */
	unsigned value;			/* 's': the count */
	/* 'a' while waiting */
	const struct rl_policy *p;	/* the session's generation keeps it alive */
	struct conn_hold *hold;		/* allocated up front, handed over if allowed */
	struct rl_hold **hold_out;
	rl_done_cb cb;
	void *arg;
	uint64_t deadline;
};

TAILQ_HEAD(op_list, conn_op);

struct rl_conns {
	struct event_base *base;
	struct redisAsyncContext *const *ac;
	unsigned worker_id;
	unsigned epoch;			/* of the connection now, or being made */
	unsigned spoke_epoch;		/* the last one Redis answered on: its alive key may live */
	char *prefix;
	size_t prefix_len;
	uint64_t timeout_us;
	unsigned on_error;
	const struct rl_backend_ops *local_ops;
	void *local_be;
	char sha[41];
	char id[64];			/* nonce.worker.epoch */
	char alive_prefix[MAX_KEY_LEN];	/* PREFIX "#alive:" */
	size_t alive_prefix_len;

	struct conn_ent **buckets;
	size_t nbuckets;		/* a power of two */
	size_t nents;
	size_t nheld;			/* connections held, all keys */
	unsigned beats;
	struct op_list waiting;		/* by deadline */
	struct event *budget_ev;
	struct event *beat_ev;
	unsigned nops;			/* replies owed */
	bool dying;			/* freed once nops is 0 */
};

static atomic_bool g_failing;		/* the script answers errors: logged once */

/* A process-wide random word: IDs of two replicas never meet. */
static uint64_t
process_nonce(void)
{
	static _Atomic uint64_t nonce;
	uint64_t v = atomic_load(&nonce), mine = 0;

	if (v != 0)
		return v;
	if (getrandom(&mine, sizeof(mine), 0) != (ssize_t)sizeof(mine))
		mine = util_now_us() * 0x9e3779b97f4a7c15ULL;
	mine |= 1;
	return atomic_compare_exchange_strong(&nonce, &v, mine) ? mine : v;
}

/* ------------------------------------------------------------------ table */

static int
table_grow(struct rl_conns *c)
{
	size_t n = c->nbuckets ? c->nbuckets * 2 : MIN_BUCKETS;
	struct conn_ent **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return -1;
	for (size_t i = 0; i < c->nbuckets; i++)
		while (c->buckets[i] != NULL) {
			struct conn_ent *e = c->buckets[i];

			c->buckets[i] = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
	return 0;
}

/* The entry of (p, key), made when missing; NULL when out of memory or too long. */
static struct conn_ent *
ent_get(struct rl_conns *c, const struct rl_policy *p, const char *key, size_t keylen)
{
	static const char mid[] = "#conns:";
	size_t namelen = strlen(p->name), total = c->prefix_len + namelen + sizeof(mid) - 1 + keylen;
	char buf[MAX_KEY_LEN], *w = buf;
	struct conn_ent *e;
	uint64_t h;

	if (total > sizeof(buf))
		return NULL;
	memcpy(w, c->prefix, c->prefix_len);
	w += c->prefix_len;
	memcpy(w, p->name, namelen);
	w += namelen;
	memcpy(w, mid, sizeof(mid) - 1);
	w += sizeof(mid) - 1;
	memcpy(w, key, keylen);
	h = lb_hash64(buf, total, 0);
	for (e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && e->keylen == total && memcmp(e->key, buf, total) == 0)
			return e;
	if (c->nents >= c->nbuckets && table_grow(c) < 0)
		return NULL;
	e = calloc(1, sizeof(*e) + total);
	if (e == NULL)
		return NULL;
	e->hash = h;
	e->user_off = total - keylen;
	e->keylen = total;
	memcpy(e->key, buf, total);
	e->next = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	c->nents++;
	return e;
}

/* One reference to e fewer: free it once nothing holds or waits on it. */
static void
ent_put(struct rl_conns *c, struct conn_ent *e)
{
	struct conn_ent **pp;

	UTIL_ASSERT(e->refs > 0);
	if (--e->refs > 0 || e->held > 0)
		return;
	for (pp = &c->buckets[e->hash & (c->nbuckets - 1)]; *pp != e; pp = &(*pp)->next)
		;
	*pp = e->next;
	c->nents--;
	free(e);
}

/* ---------------------------------------------------------------- commands */

static void on_reply(struct redisAsyncContext *ac, void *reply, void *privdata);

/* EVALSHA (or EVAL, after NOSCRIPT) of op. Returns 0 or -1. */
static int
op_send(struct rl_conns *c, struct conn_op *op)
{
	char mode[2] = { op->mode, '\0' }, limit[16], live[16], keep[16], ttl[16], value[16];
	const char *argv[12];
	size_t lens[12];
	redisAsyncContext *ac = *c->ac;

	if (ac == NULL)
		return -1;
	snprintf(limit, sizeof(limit), "%u", op->limit);
	snprintf(live, sizeof(live), "%u", ALIVE_COUNT_MS);
	snprintf(keep, sizeof(keep), "%u", ALIVE_KEEP_MS);
	snprintf(ttl, sizeof(ttl), "%u", KEY_TTL_MS);
	snprintf(value, sizeof(value), "%u", op->value);
	argv[0] = op->eval ? "EVAL" : "EVALSHA";
	argv[1] = op->eval ? conn_script : c->sha;
	argv[2] = "1";
	argv[3] = op->e != NULL ? op->e->key : c->alive_prefix;
	argv[4] = mode;
	argv[5] = c->id;
	argv[6] = c->alive_prefix;
	argv[7] = limit;
	argv[8] = live;
	argv[9] = keep;
	argv[10] = ttl;
	argv[11] = value;
	/* The key and the script are not measured: the key has no NUL. */
	lens[1] = op->eval ? sizeof(conn_script) - 1 : sizeof(c->sha) - 1;
	lens[3] = op->e != NULL ? op->e->keylen : c->alive_prefix_len;
	lens[6] = c->alive_prefix_len;
	for (int i = 0; i < 12; i++)
		if (i != 1 && i != 3 && i != 6)
			lens[i] = strlen(argv[i]);
	return redisAsyncCommandArgv(ac, on_reply, op, 12, argv, lens) == REDIS_OK ? 0 : -1;
}

/* A new op of mode on e (NULL: a beat), sent now. Returns it, or NULL. */
static struct conn_op *
op_start(struct rl_conns *c, struct conn_ent *e, char mode, unsigned value)
{
	struct conn_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->c = c;
	op->e = e;
	op->mode = mode;
	op->value = value;
	if (op_send(c, op) < 0) {
		free(op);
		return NULL;
	}
	if (e != NULL)
		e->refs++;
	c->nops++;
	return op;
}

/* A change nobody waits on. Without a connection it is not sent: the next
 * connection writes the counts whole (rl_conns_linked). */
static void
op_tell(struct rl_conns *c, struct conn_ent *e, char mode)
{
	(void)op_start(c, e, mode, 0);
}

/* ----------------------------------------------------------------- answers */

static void
arm_budget(struct rl_conns *c)
{
	struct conn_op *op = TAILQ_FIRST(&c->waiting);
	struct timeval tv;

	if (op == NULL)
		return;
	tv = util_tv_until(op->deadline);
	evtimer_add(c->budget_ev, &tv);
}

/* Count the session's connection under e: the hold is its to release. */
static void
hold_give(struct rl_conns *c, struct conn_ent *e, struct conn_hold *hd, struct rl_hold *local,
		struct rl_hold **out)
{
	hd->e = e;
	hd->local = local;
	e->refs++;
	e->held++;
	c->nheld++;
	*out = (struct rl_hold *)(void *)hd;
}

/*
 * What on_error says, without Redis. Returns whether the connection may
 * go on; then *hd has become the session's hold (else it is freed).
 */
static bool
decide_on_error(struct rl_conns *c, const struct rl_policy *p, struct conn_ent *e,
		struct conn_hold *hd, struct rl_hold **out, struct rl_result *r)
{
	struct rl_hold *local = NULL;

	memset(r, 0, sizeof(*r));
	if (c->on_error == CONFIG_REDIS_DENY) {
		r->retry_after_s = r->reset_s = 1;
		free(hd);
		return false;
	}
	if (c->on_error == CONFIG_REDIS_LOCAL && c->local_ops != NULL &&
	    c->local_ops->acquire(c->local_be, p, e->key + e->user_off, e->keylen - e->user_off,
		    &local, r, NULL, NULL) == 0 && !r->allowed) {
		free(hd);
		return false;
	}
	/* Let in (allow, or the in-process count said yes, or it could
	 * not count): counted here, so that Redis learns of it. */
	memset(r, 0, sizeof(*r));
	r->allowed = true;
	hold_give(c, e, hd, local, out);
	return true;
}

/* Answer op's session with r and take op off the waiting list. */
static void
op_answer(struct rl_conns *c, struct conn_op *op, const struct rl_result *r)
{
	rl_done_cb cb = op->cb;
	void *arg = op->arg;

	TAILQ_REMOVE(&c->waiting, op, link);
	op->waiting = false;
	op->hold = NULL;
	cb(arg, r);
}

static void
budget_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_conns *c = arg;
	uint64_t now = util_now_us();
	struct conn_op *op;
	struct rl_result r;

	(void)fd;
	(void)what;
	while ((op = TAILQ_FIRST(&c->waiting)) != NULL && op->deadline <= now) {
		/* The reply still comes, and then puts Redis right. */
		op->counted = decide_on_error(c, op->p, op->e, op->hold, op->hold_out, &r);
		op_answer(c, op, &r);
	}
	arm_budget(c);
}

static void
on_reply(struct redisAsyncContext *ac, void *reply, void *privdata)
{
	struct conn_op *op = privdata;
	struct rl_conns *c = op->c;
	redisReply *rep = reply;
	bool ok;

	(void)ac;
	if (c->dying) {
		free(op->hold);
		free(op);
		if (--c->nops == 0)
			rl_conns_free(c);
		return;
	}
	if (rep != NULL)
		c->spoke_epoch = c->epoch;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0 && !op->eval) {
		/* SCRIPT FLUSH or a failover: the script text itself, once. */
		op->eval = true;
		if (op_send(c, op) == 0)
			return;
	}
	ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
		rep->element[0]->type == REDIS_REPLY_INTEGER &&
		rep->element[1]->type == REDIS_REPLY_INTEGER;
	if (rep != NULL && !ok) {
		if (!atomic_exchange(&g_failing, true))
			log_error("redis: unexpected answer to a connection count: %.200s",
				rep->type == REDIS_REPLY_ERROR ? rep->str : "not two integers");
	} else if (ok && atomic_load(&g_failing) && atomic_exchange(&g_failing, false)) {
		log_info("redis counts connections again");
	}
	if (op->mode == 'a') {
		bool granted = ok && rep->element[0]->integer == 1;
		struct rl_result r;

		if (op->waiting) {
			if (!ok) {
				op->counted = decide_on_error(c, op->p, op->e, op->hold,
					op->hold_out, &r);
			} else if (granted) {
				long long sum = rep->element[1]->integer;

				r = (struct rl_result){ .allowed = true };
				r.remaining = sum >= 0 && (unsigned long long)sum < op->limit ?
					op->limit - (unsigned)sum : 0;
				hold_give(c, op->e, op->hold, NULL, op->hold_out);
				op->counted = true;
			} else {
				r = (struct rl_result){ .retry_after_s = 1, .reset_s = 1 };
				free(op->hold);
			}
			op_answer(c, op, &r);
		}
		/* Redis's count must follow what was decided here (late,
		 * by on_error, or for a session gone). Without a reply the
		 * connection is gone: the next one writes the counts whole. */
		if (rep != NULL && granted && !op->counted)
			op_tell(c, op->e, 'r');
		else if (rep != NULL && !granted && op->counted)
			op_tell(c, op->e, 'f');
	}
	if (op->e != NULL)
		ent_put(c, op->e);
	c->nops--;
	free(op);
}

/* ------------------------------------------------------------ the interface */

int
rl_conns_acquire(struct rl_conns *c, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg)
{
	struct conn_ent *e = ent_get(c, p, key, keylen);
	struct conn_hold *hd;
	struct conn_op *op;
	bool was_waiting;

	if (e == NULL)
		return -1;
	hd = calloc(1, sizeof(*hd));
	if (hd == NULL) {
		e->refs++;
		ent_put(c, e);
		return -1;
	}
	if (*c->ac == NULL) {
		/* No Redis: on_error now. What it lets in is written to
		 * Redis by the next connection. */
		e->refs++;
		decide_on_error(c, p, e, hd, hold, r);
		ent_put(c, e);
		return 0;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		free(hd);
		e->refs++;
		ent_put(c, e);
		return -1;
	}
	op->c = c;
	op->e = e;
	op->mode = 'a';
	op->limit = p->rate;
	if (op_send(c, op) < 0) {
		free(op);
		e->refs++;
		decide_on_error(c, p, e, hd, hold, r);
		ent_put(c, e);
		return 0;
	}
	e->refs++;
	c->nops++;
	op->waiting = true;
	op->p = p;
	op->hold = hd;
	op->hold_out = hold;
	op->cb = cb;
	op->arg = arg;
	op->deadline = util_now_us() + c->timeout_us;
	was_waiting = !TAILQ_EMPTY(&c->waiting);
	TAILQ_INSERT_TAIL(&c->waiting, op, link);
	if (!was_waiting)
		arm_budget(c);
	return 1;
}

void
rl_conns_release(struct rl_conns *c, struct rl_hold *hold)
{
	struct conn_hold *hd = (struct conn_hold *)(void *)hold;
	struct conn_ent *e;

	if (hd == NULL)
		return;
	e = hd->e;
	if (hd->local != NULL)
		c->local_ops->release(c->local_be, hd->local);
	free(hd);
	UTIL_ASSERT(e->held > 0 && c->nheld > 0);
	e->held--;
	c->nheld--;
	op_tell(c, e, 'r');
	ent_put(c, e);
}

void
rl_conns_cancel(struct rl_conns *c, void *arg)
{
	struct conn_op *op, *next;

	for (op = TAILQ_FIRST(&c->waiting); op != NULL; op = next) {
		next = TAILQ_NEXT(op, link);
		if (op->arg != arg)
			continue;
		/* The reply, when it comes, takes back what Redis counted. */
		TAILQ_REMOVE(&c->waiting, op, link);
		op->waiting = false;
		free(op->hold);
		op->hold = NULL;
	}
}

/* The worker's name on the connection of epoch. */
static size_t
id_format(const struct rl_conns *c, unsigned epoch, char *out, size_t len)
{
	int n = snprintf(out, len, "%016llx.%u.%u", (unsigned long long)process_nonce(),
		c->worker_id, epoch);

	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

void
rl_conns_linked(struct rl_conns *c)
{
	c->epoch++;
	id_format(c, c->epoch, c->id, sizeof(c->id));
	if (c->spoke_epoch != 0) {
		/* The last name Redis heard stops counting at once (its
		 * fields are deleted by the next acquire that meets them);
		 * names of connections that never got an answer wrote
		 * nothing. Queued first, so it holds once anything is
		 * answered on this connection. */
		char key[MAX_KEY_LEN];
		const char *argv[2] = { "DEL", key };
		size_t lens[2] = { 3, c->alive_prefix_len };

		memcpy(key, c->alive_prefix, c->alive_prefix_len);
		lens[1] += id_format(c, c->spoke_epoch, key + c->alive_prefix_len,
			sizeof(key) - c->alive_prefix_len);
		(void)redisAsyncCommandArgv(*c->ac, NULL, NULL, 2, argv, lens);
	}
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct conn_ent *e = c->buckets[i]; e != NULL; e = e->next)
			if (e->held > 0)
				(void)op_start(c, e, 's', e->held);
}

/* Say "alive" while holding connections; now and then renew their hashes' TTL. */
static void
beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_conns *c = arg;

	(void)fd;
	(void)what;
	if (c->nheld == 0 || *c->ac == NULL)
		return;
	op_tell(c, NULL, 'b');
	if (++c->beats % KEY_REFRESH_BEATS != 0)
		return;
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct conn_ent *e = c->buckets[i]; e != NULL; e = e->next)
			if (e->held > 0) {
				char ttl[16];
				const char *argv[3] = { "PEXPIRE", e->key, ttl };
				size_t lens[3] = { 7, e->keylen, 0 };

				lens[2] = (size_t)snprintf(ttl, sizeof(ttl), "%u", KEY_TTL_MS);
				(void)redisAsyncCommandArgv(*c->ac, NULL, NULL, 3, argv, lens);
			}
}

struct rl_conns *
rl_conns_new(const struct rl_conns_conf *conf)
{
	static const struct timeval beat = {
		.tv_sec = ALIVE_BEAT_MS / 1000, .tv_usec = (ALIVE_BEAT_MS % 1000) * 1000,
	};
	struct rl_conns *c = calloc(1, sizeof(*c));
	int n;

	if (c == NULL)
		return NULL;
	c->base = conf->base;
	c->ac = conf->ac;
	c->worker_id = conf->worker_id;
	c->timeout_us = conf->timeout_us;
	c->on_error = conf->on_error;
	c->local_ops = conf->local_ops;
	c->local_be = conf->local_be;
	TAILQ_INIT(&c->waiting);
	c->prefix = strdup(conf->prefix);
	if (c->prefix == NULL)
		goto fail;
	c->prefix_len = strlen(c->prefix);
	n = snprintf(c->alive_prefix, sizeof(c->alive_prefix), "%s#alive:", c->prefix);
	if (n < 0 || (size_t)n >= sizeof(c->alive_prefix) - sizeof(c->id))
		goto fail;
	c->alive_prefix_len = (size_t)n;
	c->budget_ev = evtimer_new(c->base, budget_cb, c);
	c->beat_ev = event_new(c->base, -1, EV_PERSIST, beat_cb, c);
	if (c->budget_ev == NULL || c->beat_ev == NULL || rl_redis_script_sha(conn_script, sizeof(conn_script) - 1, c->sha) < 0 ||
	    table_grow(c) < 0 || event_add(c->beat_ev, &beat) < 0)
		goto fail;
	return c;
fail:
	rl_conns_free(c);
	return NULL;
}

void
rl_conns_free(struct rl_conns *c)
{
	if (c == NULL)
		return;
	if (!c->dying) {
		struct conn_op *op;

		c->dying = true;
		while ((op = TAILQ_FIRST(&c->waiting)) != NULL) {
			TAILQ_REMOVE(&c->waiting, op, link);
			op->waiting = false;
		}
		for (size_t i = 0; i < c->nbuckets; i++)
			while (c->buckets[i] != NULL) {
				struct conn_ent *e = c->buckets[i];

				c->buckets[i] = e->next;
				free(e);
			}
		free(c->buckets);
		c->buckets = NULL;
		if (c->budget_ev != NULL)
			event_free(c->budget_ev);
		if (c->beat_ev != NULL)
			event_free(c->beat_ev);
		free(c->prefix);
	}
	/* Replies still owed free their ops, then the last one frees c. */
	if (c->nops == 0)
		free(c);
}
