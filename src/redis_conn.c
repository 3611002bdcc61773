/*
 * Connection counts (kind = connections) kept in Redis, so that one limit
 * holds across every replica: a worker's count per key, the acquires it
 * waits on, its sign of life, and how it puts Redis right after a lost
 * connection or a failed change. redis.c owns the connection and hands
 * acquire() and release() here.
 *
 * In Redis, for a policy NAME and a key K:
 *   PREFIX NAME "#conns:" K   a hash: one field per worker of every replica,
 *                             "WORKER.EPOCH", the connections it holds
 *   PREFIX "#alive:" WORKER   "EPOCH MS": the worker's current epoch and
 *                             Redis's time (ms) when it last wrote
 * Policy names cannot hold '#', so these never meet the GCRA keys. A field
 * counts while its worker's alive key names its epoch and is younger than
 * ALIVE_COUNT_MS; a field of another epoch, or of a worker whose alive key
 * is gone (ALIVE_KEEP_MS of silence, or a clean stop), is deleted by the
 * next acquire that meets it. Changes are +1 and -1 with no clamping, so
 * they add up exactly in any order on one connection. When that stops
 * holding (a new connection, NOSCRIPT, an error reply) the worker moves to
 * a new epoch and writes what it holds whole: what the old name had,
 * half-done or not, stops counting at once.
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
 * One script, whose ARGV[1] says what to do; each run first writes the
 * worker's alive key with Redis's own clock. 'a' counts one more connection
 * if the live workers hold fewer than ARGV[5], 'r' one less, 'f' one more
 * without asking (on_error let it in), 's' sets the count (ARGV[9]) under a
 * new epoch, 'b' only says "alive". ARGV[2] is the worker, ARGV[3] its
 * epoch. Returns {counted, held by live workers with this one}.
 */
static const char conn_script[] =
	"if redis.replicate_commands then redis.replicate_commands() end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local mode, wid, ep, ap, k = ARGV[1], ARGV[2], ARGV[3], ARGV[4], KEYS[1]\n"
	"redis.call('SET', ap .. wid, ep .. ' ' .. string.format('%d', now), 'PX', ARGV[7])\n"
	"if mode == 'b' then return {1, 0} end\n"
	"local id, sum, v = wid .. '.' .. ep, 0, 0\n"
	"if mode == 'a' then\n"
	"  local h = redis.call('HGETALL', k)\n"
	"  for i = 1, #h, 2 do\n"
	"    local f, n = h[i], tonumber(h[i + 1]) or 0\n"
	"    if f == id then sum = sum + n else\n"
	"      local w, e = string.match(f, '^(.+)%.(%d+)$')\n"
	"      local a = w and redis.call('GET', ap .. w)\n"
	"      local ae, seen\n"
	"      if a then ae, seen = string.match(a, '^(%d+) (%d+)$') end\n"
	"      if ae == nil or ae ~= e then redis.call('HDEL', k, f)\n"
	"      elseif now - tonumber(seen) <= tonumber(ARGV[6]) then sum = sum + n end\n"
	"    end\n"
	"  end\n"
	"  if sum >= tonumber(ARGV[5]) then return {0, sum} end\n"
	"  sum = sum + 1\n"
	"end\n"
	"if mode == 's' then\n"
	"  v = tonumber(ARGV[9])\n"
	"  redis.call('HSET', k, id, ARGV[9])\n"
	"else\n"
	"  v = redis.call('HINCRBY', k, id, mode == 'r' and -1 or 1)\n"
	"end\n"
	"if v == 0 then redis.call('HDEL', k, id) end\n"
	"redis.call('PEXPIRE', k, ARGV[8])\n"
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
	unsigned epoch;			/* the name it went out under */
	unsigned counted_epoch;		/* 'a': the epoch when held moved on */
	uint64_t sent_at;
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
	struct rl_redis *owner;		/* for its counters and its log lines */
	unsigned epoch;			/* of the name the changes go out under */
	bool resync;			/* a change failed: a new epoch at the next beat */
	bool spoke;			/* it ever wrote to Redis: it may have fields there */
	char *prefix;
	size_t prefix_len;
	uint64_t timeout_us;
	unsigned on_error;
	const struct rl_backend_ops *local_ops;
	void *local_be;
	char sha[41];
	char wid[40];			/* the worker: process nonce "." worker number */
	char ep[16];			/* epoch, as text */
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

/* EVALSHA (or EVAL, after NOSCRIPT) of op under the current epoch. Returns 0 or -1. */
static int
op_send(struct rl_conns *c, struct conn_op *op)
{
	char mode[2] = { op->mode, '\0' }, limit[16], live[16], keep[16], ttl[16], value[16];
	const char *argv[13];
	size_t lens[13];
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
	argv[5] = c->wid;
	argv[6] = c->ep;
	argv[7] = c->alive_prefix;
	argv[8] = limit;
	argv[9] = live;
	argv[10] = keep;
	argv[11] = ttl;
	argv[12] = value;
	/* The key and the script are not measured: the key has no NUL. */
	lens[1] = op->eval ? sizeof(conn_script) - 1 : sizeof(c->sha) - 1;
	lens[3] = op->e != NULL ? op->e->keylen : c->alive_prefix_len;
	lens[7] = c->alive_prefix_len;
	for (int i = 0; i < 13; i++)
		if (i != 1 && i != 3 && i != 7)
			lens[i] = strlen(argv[i]);
	if (redisAsyncCommandArgv(ac, on_reply, op, 13, argv, lens) != REDIS_OK)
		return -1;
	c->spoke = true;
	op->epoch = c->epoch;
	op->sent_at = util_now_us();
	return 0;
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

/*
 * A change nobody waits on. Without a connection it is not sent: the next
 * connection writes the counts whole; if it cannot be queued, the next
 * beat does.
 */
static void
op_tell(struct rl_conns *c, struct conn_ent *e, char mode)
{
	if (op_start(c, e, mode, 0) == NULL && *c->ac != NULL)
		c->resync = true;
}

/*
 * Move to a new epoch and write what this worker holds under it, on the
 * connection there is: the script first (a new connection, or NOSCRIPT),
 * then the alive key, which makes every field of the old epoch stop
 * counting, then each count. Commands queue in this order, ahead of
 * anything sent later.
 */
static void
resync(struct rl_conns *c)
{
	const char *argv[3] = { "SCRIPT", "LOAD", conn_script };
	size_t lens[3] = { 6, 4, sizeof(conn_script) - 1 };

	c->resync = false;
	c->epoch++;
	snprintf(c->ep, sizeof(c->ep), "%u", c->epoch);
	if (*c->ac == NULL)
		return;
	/* A worker that never counted a connection has nothing to put right. */
	if (redisAsyncCommandArgv(*c->ac, NULL, NULL, 3, argv, lens) != REDIS_OK ||
	    (c->spoke && op_start(c, NULL, 'b', 0) == NULL)) {
		c->resync = true;
		return;
	}
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct conn_ent *e = c->buckets[i]; e != NULL; e = e->next)
			if (e->held > 0 && op_start(c, e, 's', e->held) == NULL)
				c->resync = true;
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

/* Decide a waiting acquire by on_error; the reply, when it comes, puts Redis right. */
static void
op_decide_on_error(struct rl_conns *c, struct conn_op *op, struct rl_result *r)
{
	op->counted = decide_on_error(c, op->p, op->e, op->hold, op->hold_out, r);
	op->counted_epoch = c->epoch;
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
		rl_redis_note_late(c->owner);
		op_decide_on_error(c, op, &r);
		op_answer(c, op, &r);
	}
	arm_budget(c);
}

/*
 * The reply to an acquire: answer the session if it still waits, then make
 * Redis hold what was decided. Under the same epoch, Redis's +1 either
 * matches the decision or is undone ('r'), or is missing and added ('f').
 * Under an older epoch, what Redis did no longer counts; the new epoch's
 * counts were written from held, so only a connection counted since then
 * is missing ('f').
 */
static void
acquire_replied(struct rl_conns *c, struct conn_op *op, bool ok, bool granted, long long sum)
{
	struct rl_result r;

	if (op->waiting) {
		if (!ok) {
			rl_redis_note_error();
			op_decide_on_error(c, op, &r);
		} else if (granted) {
			r = (struct rl_result){ .allowed = true };
			r.remaining = sum >= 0 && (unsigned long long)sum < op->limit ?
				op->limit - (unsigned)sum : 0;
			hold_give(c, op->e, op->hold, NULL, op->hold_out);
			op->counted = true;
			op->counted_epoch = c->epoch;
		} else {
			r = (struct rl_result){ .retry_after_s = 1, .reset_s = 1 };
			free(op->hold);
		}
		op_answer(c, op, &r);
	}
	if (op->epoch == c->epoch) {
		if (granted && !op->counted)
			op_tell(c, op->e, 'r');
		else if (!granted && op->counted)
			op_tell(c, op->e, 'f');
	} else if (op->counted && op->counted_epoch == c->epoch) {
		op_tell(c, op->e, 'f');
	}
}

static void
on_reply(struct redisAsyncContext *ac, void *reply, void *privdata)
{
	struct conn_op *op = privdata;
	struct rl_conns *c = op->c;
	redisReply *rep = reply;
	bool ok, noscript;

	(void)ac;
	if (c->dying) {
		free(op->hold);
		free(op);
		if (--c->nops == 0)
			rl_conns_free(c);
		return;
	}
	noscript = rep != NULL && rep->type == REDIS_REPLY_ERROR &&
		strncmp(rep->str, "NOSCRIPT", 8) == 0;
	if (noscript) {
		/* SCRIPT FLUSH, or a failover to a server that never saw
		 * it: the changes sent since did nothing. Load it and write
		 * the counts whole (once for all the ops caught out), and
		 * ask again for a session that waits. */
		if (op->epoch == c->epoch)
			resync(c);
		if (op->mode == 'a' && op->waiting && !op->eval) {
			op->eval = true;
			if (op_send(c, op) == 0)
				return;
		}
	}
	ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
		rep->element[0]->type == REDIS_REPLY_INTEGER &&
		rep->element[1]->type == REDIS_REPLY_INTEGER;
	if (ok) {
		rl_redis_note_answer(c->owner, util_now_us() - op->sent_at);
		if (atomic_load(&g_failing) && atomic_exchange(&g_failing, false))
			log_info("redis counts connections again");
	} else if (rep != NULL && !noscript) {
		/* A change that failed (OOM, READONLY...): the next beat
		 * writes the counts whole under a new epoch. */
		c->resync = true;
		if (!atomic_exchange(&g_failing, true))
			log_error("redis: unexpected answer to a connection count: %.200s",
				rep->type == REDIS_REPLY_ERROR ? rep->str : "not two integers");
	}
	/* Without a reply the connection is gone: the next one writes the
	 * counts whole, and what this op did does not count then. */
	if (op->mode == 'a' && (rep != NULL || op->waiting))
		acquire_replied(c, op, ok, ok && rep->element[0]->integer == 1,
			ok ? rep->element[1]->integer : 0);
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
	e->refs++;			/* until the end of this call */
	hd = calloc(1, sizeof(*hd));
	op = hd != NULL ? calloc(1, sizeof(*op)) : NULL;
	if (op == NULL) {
		free(hd);
		ent_put(c, e);
		return -1;
	}
	op->c = c;
	op->e = e;
	op->mode = 'a';
	op->limit = p->rate;
	if (op_send(c, op) < 0) {
		/* No Redis: on_error now. What it lets in is written to
		 * Redis by the next connection. */
		free(op);
		rl_redis_note_error();
		decide_on_error(c, p, e, hd, hold, r);
		ent_put(c, e);
		return 0;
	}
	c->nops++;			/* the op keeps the reference */
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

void
rl_conns_linked(struct rl_conns *c)
{
	resync(c);
}

/*
 * Say "alive" while holding connections, write the counts whole after a
 * failed change, and now and then renew the held hashes' TTL.
 */
static void
beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_conns *c = arg;

	(void)fd;
	(void)what;
	if (*c->ac == NULL)
		return;
	if (c->resync) {
		resync(c);
		return;
	}
	if (c->nheld == 0)
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
	c->owner = conf->owner;
	c->timeout_us = conf->timeout_us;
	c->on_error = conf->on_error;
	c->local_ops = conf->local_ops;
	c->local_be = conf->local_be;
	TAILQ_INIT(&c->waiting);
	snprintf(c->wid, sizeof(c->wid), "%016llx.%u", (unsigned long long)process_nonce(),
		conf->worker_id);
	snprintf(c->ep, sizeof(c->ep), "%u", c->epoch);
	c->prefix = strdup(conf->prefix);
	if (c->prefix == NULL)
		goto fail;
	c->prefix_len = strlen(c->prefix);
	n = snprintf(c->alive_prefix, sizeof(c->alive_prefix), "%s#alive:", c->prefix);
	if (n < 0 || (size_t)n >= sizeof(c->alive_prefix) - sizeof(c->wid))
		goto fail;
	c->alive_prefix_len = (size_t)n;
	c->budget_ev = evtimer_new(c->base, budget_cb, c);
	c->beat_ev = event_new(c->base, -1, EV_PERSIST, beat_cb, c);
	if (c->budget_ev == NULL || c->beat_ev == NULL ||
	    rl_redis_script_sha(conn_script, sizeof(conn_script) - 1, c->sha) < 0 ||
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
		/* A clean stop: this worker's counts stop counting at once
		 * (the caller flushes what is queued before it closes). */
		if (*c->ac != NULL && c->spoke) {
			char key[MAX_KEY_LEN];
			size_t wlen = strlen(c->wid);
			const char *argv[2] = { "DEL", key };
			size_t lens[2] = { 3, c->alive_prefix_len + wlen };

			memcpy(key, c->alive_prefix, c->alive_prefix_len);
			memcpy(key + c->alive_prefix_len, c->wid, wlen);
			(void)redisAsyncCommandArgv(*c->ac, NULL, NULL, 2, argv, lens);
		}
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
