/*
 * The Redis backend of the rate limiter, one per worker: the backend object
 * and its ops, the GCRA script and the EVALSHA that runs it, the leases that
 * spare a round trip per request, the per-request budget and on_error.
 * The connection (resolve, connect, handshake, back-off, probe) and the
 * process-wide counters are redis_link.c's; kind = connections is
 * redis_conn.c's. Policies, keys and the 429 answer are ratelimit.c's.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "config.h"
#include "log.h"
#include "ratelimit.h"
#include "redis-int.h"
#include "redis.h"
#include "redis_conn.h"
#include "util.h"

/*
 * Unspent tokens of a lease are dropped after this: the longest a worker
 * keeps tokens the rest of the fleet cannot have. Short, so that a lease
 * costs little accuracy; long enough to outlive a burst of requests.
 */
#define LEASE_TTL_US		(250 * 1000ULL)
#define SWEEP_MS		1000
/* A lease entry idle this long after its last state is forgotten. */
#define IDLE_FORGET_US		(1000 * 1000ULL)
#define MAX_KEY_LEN		1024

/*
 * One GCRA step for up to ARGV[3] events at once, with Redis's clock so that
 * every replica agrees. KEYS[1] holds the theoretical arrival time (TAT) in
 * microseconds; ARGV[1] is the emission interval T and ARGV[2] the tolerance
 * tau, both in microseconds. Returns {granted, TAT - now}: granted is 0 when
 * the next event does not fit yet. It grants at most a quarter of what fits
 * (and at least one): tokens leased to one worker are tokens the others are
 * denied, so leases form only where there is room to spare, and near the
 * limit every worker and replica asks for one at a time, which is exact.
 */
const char rl_redis_gcra_script[] =
	"if redis.replicate_commands then redis.replicate_commands() end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local T = tonumber(ARGV[1])\n"
	"local tau = tonumber(ARGV[2])\n"
	"local want = tonumber(ARGV[3])\n"
	"local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
	"if tat < now then tat = now end\n"
	"local fit = math.floor((tau - (tat - now)) / T) + 1\n"
	"if fit <= 0 then return {0, tat - now} end\n"
	"local cap = math.floor(fit / 4)\n"
	"if want > cap then want = cap end\n"
	"if want < 1 then want = 1 end\n"
	"tat = tat + want * T\n"
	"redis.call('SET', KEYS[1], string.format('%d', tat), 'PX',\n"
	"  math.floor((tat - now) / 1000) + 1)\n"
	"return {want, tat - now}\n";
const size_t rl_redis_gcra_script_len = sizeof(rl_redis_gcra_script) - 1;

/* A request waiting for Redis: queued on its lease and on the budget timer. */
struct rl_wait {
	TAILQ_ENTRY(rl_wait) by_lease;
	TAILQ_ENTRY(rl_wait) by_time;
	struct lease *le;
	const struct rl_policy *p;	/* the session's generation keeps it alive */
	rl_done_cb cb;
	void *arg;
	uint64_t deadline;		/* util_now_us() */
};

/*
 * What a worker knows of one (policy, key) in Redis, owned by the worker's
 * table. Local times are util_now_us(); tat is Redis's TAT as of the last
 * answer, moved to the local clock.
 */
struct lease {
	struct lease *next;		/* hash chain */
	uint64_t hash;
	uint64_t t_us, tau_us;		/* the policy's emission interval and tolerance */
	unsigned tokens;		/* granted, not yet spent */
	unsigned want;			/* size of the next lease asked for */
	uint64_t granted_at;
	uint64_t expires;		/* unspent tokens are dropped then */
	uint64_t tat;
	uint64_t deny_until;		/* nothing fits before then: deny without asking */
	uint64_t sent_at;
	bool inflight;			/* an EVALSHA is out; waiters queue on it */
	bool retried;			/* it met NOSCRIPT once already */
	struct wait_list waiters;
	unsigned nwaiters;
	size_t user_off;		/* where the client's key starts in key[] */
	size_t keylen;
	char key[];			/* prefix, policy name, ':', the client's key */
};

/*
 * EVALSHA answers errors (OOM, READONLY...): logged once for the process
 * and once when it stops, like the connection's state (redis_link.c).
 */
static atomic_bool g_failing;

/* ------------------------------------------------------------------ leases */

static uint64_t
hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int
table_grow(struct rl_redis *rr)
{
	size_t n = rr->nbuckets ? rr->nbuckets * 2 : 64;
	struct lease **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return -1;
	for (size_t i = 0; i < rr->nbuckets; i++) {
		struct lease *le, *next;

		for (le = rr->buckets[i]; le != NULL; le = next) {
			next = le->next;
			le->next = b[le->hash & (n - 1)];
			b[le->hash & (n - 1)] = le;
		}
	}
	free(rr->buckets);
	rr->buckets = b;
	rr->nbuckets = n;
	return 0;
}

/* The policy's GCRA parameters in microseconds (config_build.c derives them). */
static void
policy_params(const struct rl_policy *p, uint64_t *t_us, uint64_t *tau_us)
{
	*t_us = p->t_us ? p->t_us : 1;
	*tau_us = p->tau_us;
}

/*
 * The lease of (p, key), made when missing. The Redis key is built in place:
 * prefix, policy name, ':', key. Returns NULL when out of memory or when the
 * key is too long to be a sane Redis key.
 */
static struct lease *
lease_get(struct rl_redis *rr, const struct rl_policy *p, const char *key, size_t keylen)
{
	size_t namelen = strlen(p->name), off = rr->prefix_len + namelen + 1;
	size_t total = off + keylen;
	char buf[MAX_KEY_LEN];
	struct lease *le;
	uint64_t h, t_us, tau_us;

	if (total > sizeof(buf))
		return NULL;
	memcpy(buf, rr->prefix, rr->prefix_len);
	memcpy(buf + rr->prefix_len, p->name, namelen);
	buf[off - 1] = ':';
	memcpy(buf + off, key, keylen);
	h = hash_bytes(buf, total);
	policy_params(p, &t_us, &tau_us);
	if (rr->nbuckets != 0)
		for (le = rr->buckets[h & (rr->nbuckets - 1)]; le != NULL; le = le->next)
			if (le->hash == h && le->keylen == total && memcmp(le->key, buf, total) == 0) {
				/* A reload changed the policy: what was
				 * leased under the old one does not count. */
				if (le->t_us != t_us || le->tau_us != tau_us) {
					le->t_us = t_us;
					le->tau_us = tau_us;
					le->tokens = 0;
					le->want = 1;
					le->deny_until = 0;
				}
				return le;
			}
	if (rr->nleases >= rr->nbuckets && table_grow(rr) < 0)
		return NULL;
	le = calloc(1, sizeof(*le) + total);
	if (le == NULL)
		return NULL;
	le->hash = h;
	le->t_us = t_us;
	le->tau_us = tau_us;
	le->want = 1;
	le->user_off = off;
	le->keylen = total;
	memcpy(le->key, buf, total);
	TAILQ_INIT(&le->waiters);
	le->next = rr->buckets[h & (rr->nbuckets - 1)];
	rr->buckets[h & (rr->nbuckets - 1)] = le;
	rr->nleases++;
	return le;
}

static unsigned
clamp_uint(uint64_t v)
{
	return v > UINT_MAX ? UINT_MAX : (unsigned)v;
}

static unsigned
ceil_s(uint64_t us)
{
	return clamp_uint((us + 999999) / 1000000);
}

/* An allowed answer from what the lease knows: its tokens and the TAT. */
static void
fill_allowed(const struct lease *le, uint64_t now, struct rl_result *r)
{
	uint64_t ahead = le->tat > now ? le->tat - now : 0;
	uint64_t fit = ahead <= le->tau_us ? (le->tau_us - ahead) / le->t_us + 1 : 0;

	r->allowed = true;
	r->remaining = clamp_uint(fit + le->tokens);
	r->reset_s = ceil_s(ahead);
	r->retry_after_s = 0;
}

static void
fill_denied(const struct lease *le, uint64_t now, struct rl_result *r)
{
	uint64_t wait = le->deny_until > now ? le->deny_until - now : 0;
	unsigned s = ceil_s(wait);

	r->allowed = false;
	r->remaining = 0;
	r->retry_after_s = s ? s : 1;
	r->reset_s = ceil_s(le->tat > now ? le->tat - now : 0);
}

/* The answer when Redis cannot give one in time: on_error. */
static void
fill_on_error(struct rl_redis *rr, const struct rl_policy *p, const struct lease *le,
		struct rl_result *r)
{
	memset(r, 0, sizeof(*r));
	switch (rr->on_error) {
	case CONFIG_REDIS_DENY:
		r->allowed = false;
		r->retry_after_s = 1;
		r->reset_s = 1;
		return;
	case CONFIG_REDIS_LOCAL:
		/* The local backend answers synchronously (ratelimit.h). */
		if (rr->local_ops != NULL && p != NULL &&
		    rr->local_ops->take(rr->local_be, p, le->key + le->user_off,
			    le->keylen - le->user_off, r, NULL, NULL) == 0)
			return;
		/* No local backend to ask: let it pass. */
		memset(r, 0, sizeof(*r));
		r->allowed = true;
		return;
	default:
		r->allowed = true;
		return;
	}
}

/* ----------------------------------------------------------------- waiters */

static void
wait_unlink(struct rl_redis *rr, struct rl_wait *w)
{
	TAILQ_REMOVE(&w->le->waiters, w, by_lease);
	w->le->nwaiters--;
	TAILQ_REMOVE(&rr->waiting, w, by_time);
}

/* Answer w with r and free it. The callback may call take() or cancel(). */
static void
wait_finish(struct rl_redis *rr, struct rl_wait *w, const struct rl_result *r)
{
	rl_done_cb cb = w->cb;
	void *arg = w->arg;

	wait_unlink(rr, w);
	free(w);
	cb(arg, r);
}

/* Every waiter of le gets on_error's answer now. */
static void
fail_waiters(struct rl_redis *rr, struct lease *le)
{
	struct rl_wait *w;
	struct rl_result r;

	while ((w = TAILQ_FIRST(&le->waiters)) != NULL) {
		rl_redis_note_error();
		fill_on_error(rr, w->p, le, &r);
		wait_finish(rr, w, &r);
	}
}

static void
arm_budget(struct rl_redis *rr)
{
	struct rl_wait *w = TAILQ_FIRST(&rr->waiting);
	struct timeval tv;

	if (w == NULL)
		return;
	tv = util_tv_until(w->deadline);
	evtimer_add(rr->budget_ev, &tv);
}

static void
budget_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_redis *rr = arg;
	uint64_t now = util_now_us();
	struct rl_wait *w;
	struct rl_result r;

	(void)fd;
	(void)what;
	while ((w = TAILQ_FIRST(&rr->waiting)) != NULL && w->deadline <= now) {
		rl_redis_note_late(rr);
		/* The EVALSHA stays out: a late answer still becomes a lease. */
		fill_on_error(rr, w->p, w->le, &r);
		wait_finish(rr, w, &r);
	}
	arm_budget(rr);
}

/* ---------------------------------------------------------------- requests */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* EVALSHA for le, asking for enough tokens for its waiters. Returns 0 or -1. */
static int
send_take(struct rl_redis *rr, struct lease *le)
{
	char tbuf[24], taubuf[24], wbuf[16];
	unsigned want = le->want > le->nwaiters ? le->want : le->nwaiters;
	const char *argv[7];
	size_t lens[7];

	if (rl_redis_link_ac(rr) == NULL)
		return -1;
	if (want > rr->lease_max)
		want = rr->lease_max;
	snprintf(tbuf, sizeof(tbuf), "%llu", (unsigned long long)le->t_us);
	snprintf(taubuf, sizeof(taubuf), "%llu", (unsigned long long)le->tau_us);
	snprintf(wbuf, sizeof(wbuf), "%u", want);
	argv[0] = "EVALSHA";
	argv[1] = rr->sha;
	argv[2] = "1";
	argv[3] = le->key;
	argv[4] = tbuf;
	argv[5] = taubuf;
	argv[6] = wbuf;
	for (int i = 0; i < 7; i++)
		lens[i] = i == 3 ? le->keylen : strlen(argv[i]);
	if (redisAsyncCommandArgv(rl_redis_link_ac(rr), on_reply, le, 7, argv, lens) != REDIS_OK)
		return -1;
	le->inflight = true;
	le->sent_at = util_now_us();
	rl_redis_count(&rl_redis_tally.round_trips);
	return 0;
}

/*
 * Take one token of le for a request at now: from the lease, or a denial
 * known to hold. Returns true when r is filled.
 */
static bool
answer_locally(struct rl_redis *rr, struct lease *le, uint64_t now, struct rl_result *r)
{
	if (le->tokens > 0 && now >= le->expires) {
		/* Tokens left unspent: the lease was too large. */
		le->tokens = 0;
		if (le->want > 1)
			le->want /= 2;
	}
	if (le->tokens > 0) {
		le->tokens--;
		/* Spent within its time: the next lease may be larger. */
		if (le->tokens == 0 && now - le->granted_at < LEASE_TTL_US && le->want < rr->lease_max)
			le->want = le->want * 2 > rr->lease_max ? rr->lease_max : le->want * 2;
		fill_allowed(le, now, r);
		return true;
	}
	if (now < le->deny_until) {
		fill_denied(le, now, r);
		return true;
	}
	return false;
}

/* Hand le's tokens (or its denial) to its waiters in order; ask again for the rest. */
static void
serve_waiters(struct rl_redis *rr, struct lease *le)
{
	struct rl_wait *w;
	struct rl_result r;

	while ((w = TAILQ_FIRST(&le->waiters)) != NULL) {
		if (!answer_locally(rr, le, util_now_us(), &r))
			break;
		wait_finish(rr, w, &r);
	}
	if (!TAILQ_EMPTY(&le->waiters) && !le->inflight && send_take(rr, le) < 0)
		fail_waiters(rr, le);
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rl_redis *rr = ac->data;
	struct lease *le = privdata;
	redisReply *rep = reply;
	uint64_t now = util_now_us();
	long long n, ahead;

	le->inflight = false;
	if (rr == NULL || rr->freeing)
		return;
	if (rep == NULL) {
		/* The connection is going: no answer will come. */
		fail_waiters(rr, le);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
	    !le->retried && rl_redis_link_ac(rr) == ac) {
		/* SCRIPT FLUSH, or a failover to a server that never saw it:
		 * load it again (queued before the retry) and retry once. */
		le->retried = true;
		if (rl_redis_send_script(rr) == 0 && send_take(rr, le) == 0)
			return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		/* Once per state, like the connection: a full or read-only
		 * Redis answers every request so. */
		if (!atomic_exchange(&g_failing, true))
			log_error("redis %s: unexpected answer to EVALSHA: %.200s; on_error = %s",
				rl_redis_link_address(rr),
				rep->type == REDIS_REPLY_ERROR ? rep->str : "not two integers",
				rl_redis_on_error_name(rr->on_error));
		fail_waiters(rr, le);
		return;
	}
	le->retried = false;
	if (atomic_load(&g_failing) && atomic_exchange(&g_failing, false))
		log_info("redis %s answers EVALSHA again", rl_redis_link_address(rr));
	rl_redis_note_answer(rr, now - le->sent_at);
	n = rep->element[0]->integer;
	ahead = rep->element[1]->integer;
	le->tat = now + (ahead > 0 ? (uint64_t)ahead : 0);
	if (n <= 0) {
		/* GCRA: the next event fits when TAT - now <= tau. */
		le->deny_until = le->tat > le->tau_us ? le->tat - le->tau_us : 0;
		if (le->deny_until <= now)
			le->deny_until = now + 1;
	} else {
		/* A late answer's tokens are kept too: Redis counted them. */
		if (now >= le->expires)
			le->tokens = 0;
		le->tokens += (unsigned)n;
		le->granted_at = now;
		le->expires = now + LEASE_TTL_US;
		le->deny_until = 0;
	}
	serve_waiters(rr, le);
	arm_budget(rr);
}

/* ------------------------------------------------------------- the backend */

static int
rr_take(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_result *r, rl_done_cb cb, void *arg)
{
	struct rl_redis *rr = be;
	uint64_t now = util_now_us();
	struct lease *le = lease_get(rr, p, key, keylen);
	struct rl_wait *w;

	if (le == NULL)
		return -1;
	/* Earlier waiters come first: no token jumps the queue. */
	if (le->nwaiters == 0 && answer_locally(rr, le, now, r)) {
		if (r->allowed)
			rl_redis_count(&rl_redis_tally.leased);
		return 0;
	}
	if (rl_redis_link_ac(rr) == NULL) {
		rl_redis_note_error();
		fill_on_error(rr, p, le, r);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	w->le = le;
	w->p = p;
	w->cb = cb;
	w->arg = arg;
	w->deadline = now + rr->timeout_us;
	TAILQ_INSERT_TAIL(&le->waiters, w, by_lease);
	le->nwaiters++;
	TAILQ_INSERT_TAIL(&rr->waiting, w, by_time);
	if (!le->inflight && send_take(rr, le) < 0) {
		wait_unlink(rr, w);
		free(w);
		rl_redis_note_error();
		fill_on_error(rr, p, le, r);
		return 0;
	}
	if (TAILQ_FIRST(&rr->waiting) == w)
		arm_budget(rr);
	return 1;
}

static int
rr_acquire(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg)
{
	struct rl_redis *rr = be;

	return rl_conns_acquire(rr->conns, p, key, keylen, hold, r, cb, arg);
}

static void
rr_release(void *be, struct rl_hold *hold)
{
	struct rl_redis *rr = be;

	rl_conns_release(rr->conns, hold);
}

static void
rr_cancel(void *be, void *arg)
{
	struct rl_redis *rr = be;
	struct rl_wait *w, *next;

	rl_conns_cancel(rr->conns, arg);

	/* One session may wait on several policies: drop them all. */
	for (w = TAILQ_FIRST(&rr->waiting); w != NULL; w = next) {
		next = TAILQ_NEXT(w, by_time);
		if (w->arg == arg) {
			wait_unlink(rr, w);
			free(w);
		}
	}
}

const struct rl_backend_ops rl_redis_ops = {
	.take = rr_take,
	.acquire = rr_acquire,
	.release = rr_release,
	.cancel = rr_cancel,
};

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl_redis *rr = arg;
	uint64_t now = util_now_us();

	(void)fd;
	(void)what;
	rl_redis_probe(rr, now);
	for (size_t i = 0; i < rr->nbuckets; i++) {
		struct lease **pp = &rr->buckets[i], *le;

		while ((le = *pp) != NULL) {
			uint64_t last = le->expires > le->deny_until ? le->expires : le->deny_until;

			if (le->inflight || le->nwaiters > 0 || now < last + IDLE_FORGET_US) {
				pp = &le->next;
				continue;
			}
			*pp = le->next;
			free(le);
			rr->nleases--;
		}
	}
}

int
rl_redis_script_sha(const char *script, size_t len_in, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (EVP_Digest(script, len_in, md, &len, EVP_sha1(), NULL) != 1 ||
	    len != 20)
		return -1;
	for (unsigned i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

struct rl_redis *
rl_redis_new(struct event_base *base, const struct config *cfg, unsigned worker_id,
		const struct rl_backend_ops *local_ops, void *local_be)
{
	const struct config_redis *c = &cfg->redis;
	struct rl_redis *rr = calloc(1, sizeof(*rr));

	if (rr == NULL)
		return NULL;
	rr->base = base;
	rr->timeout_us = (uint64_t)c->timeout_ms * 1000;
	rr->on_error = c->on_error;
	rr->lease_max = c->lease_max ? c->lease_max : 1;
	rr->local_ops = local_ops;
	rr->local_be = local_be;
	TAILQ_INIT(&rr->waiting);
	rr->prefix = strdup(c->prefix);
	if (rr->prefix == NULL || rl_redis_link_init(rr, c) < 0 ||
	    rl_redis_script_sha(rl_redis_gcra_script, rl_redis_gcra_script_len, rr->sha) < 0)
		goto fail;
	rr->prefix_len = strlen(rr->prefix);
	rr->budget_ev = evtimer_new(base, budget_cb, rr);
	rr->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, rr);
	if (rr->budget_ev == NULL || rr->sweep_ev == NULL || table_grow(rr) < 0)
		goto fail;
	{
		struct timeval tv = { .tv_sec = SWEEP_MS / 1000, .tv_usec = 0 };
		struct rl_conns_conf cc = {
			.base = base, .owner = rr, .worker_id = worker_id, .prefix = rr->prefix,
			.timeout_us = rr->timeout_us, .on_error = rr->on_error,
			.local_ops = local_ops, .local_be = local_be,
			.ac = rl_redis_link_ac_slot(rr),
		};

		if (event_add(rr->sweep_ev, &tv) < 0 || (rr->conns = rl_conns_new(&cc)) == NULL)
			goto fail;
	}
	rl_redis_link_start(rr);
	return rr;
fail:
	rl_redis_free(rr);
	return NULL;
}

void
rl_redis_free(struct rl_redis *rr)
{
	struct rl_wait *w;

	if (rr == NULL)
		return;
	rr->freeing = true;
	/* Before the connection: its replies still owed only free their own. */
	rl_conns_free(rr->conns);
	rl_redis_link_close(rr);
	while ((w = TAILQ_FIRST(&rr->waiting)) != NULL) {
		wait_unlink(rr, w);
		free(w);
	}
	for (size_t i = 0; i < rr->nbuckets; i++) {
		struct lease *le, *next;

		for (le = rr->buckets[i]; le != NULL; le = next) {
			next = le->next;
			free(le);
		}
	}
	free(rr->buckets);
	if (rr->budget_ev != NULL)
		event_free(rr->budget_ev);
	if (rr->sweep_ev != NULL)
		event_free(rr->sweep_ev);
	free(rr->prefix);
	free(rr);
}
