/*
 * The in-process rate limit backend: one table for the whole process,
 * shared by the workers, split into stripes with a mutex each so that
 * workers rarely meet on a lock. An entry is {policy name, key, TAT} (or a
 * connection count); it is dead once its TAT has passed, and the main
 * thread's sweep frees dead entries once a second, which bounds memory.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lb.h"
#include "ratelimit.h"
#include "util.h"

#define STRIPES		64	/* a power of two */
#define MIN_BUCKETS	64

/* Owned by its stripe; a held entry (connections) is not freed. */
struct rl_entry {
	struct rl_entry *next;
	uint64_t hash;
	uint64_t tat_us;		/* GCRA state; 0 for a connection count */
	unsigned held;			/* connections open (kind = connections) */
	unsigned stripe;
	size_t len;
	char key[];			/* policy name, '\0', key */
};

struct stripe {
	pthread_mutex_t mu;
	struct rl_entry **buckets;
	size_t nbuckets;		/* a power of two, or 0 before the first entry */
	size_t n;
} __attribute__((aligned(64)));	/* one cache line each: no false sharing */

struct rl_local {
	uint64_t seed;			/* random: keys chosen by clients cannot collide on purpose */
	struct stripe stripes[STRIPES];
};

struct rl_local *
rl_local_new(void)
{
	struct rl_local *t;

	if (posix_memalign((void **)&t, 64, sizeof(*t)) != 0)
		return NULL;
	memset(t, 0, sizeof(*t));
	if (getrandom(&t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed))
		t->seed = util_now_us() * 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&t->stripes[i].mu, NULL);
	return t;
}

void
rl_local_free(struct rl_local *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < STRIPES; i++) {
		struct stripe *st = &t->stripes[i];

		for (size_t b = 0; b < st->nbuckets; b++)
			for (struct rl_entry *e = st->buckets[b], *next; e != NULL; e = next) {
				next = e->next;
				free(e);
			}
		free(st->buckets);
		pthread_mutex_destroy(&st->mu);
	}
	free(t);
}

/* Double the buckets; on failure the table stays as it is, only slower. */
static void
grow(struct stripe *st)
{
	size_t nb = st->nbuckets ? st->nbuckets * 2 : MIN_BUCKETS;
	struct rl_entry **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i < st->nbuckets; i++)
		for (struct rl_entry *e = st->buckets[i], *next; e != NULL; e = next) {
			next = e->next;
			/* Stripes take the low bits of the hash; buckets the high. */
			e->next = b[(e->hash >> 32) & (nb - 1)];
			b[(e->hash >> 32) & (nb - 1)] = e;
		}
	free(st->buckets);
	st->buckets = b;
	st->nbuckets = nb;
}

/*
 * The entry of (p, key), created if absent, with its stripe locked; NULL
 * (nothing locked) when out of memory.
 */
static struct rl_entry *
lookup_locked(struct rl_local *t, const struct rl_policy *p, const char *key, size_t keylen)
{
	char buf[256];
	size_t nlen = strlen(p->name), len = nlen + 1 + keylen;
	uint64_t hash;
	struct stripe *st;
	struct rl_entry *e;

	UTIL_ASSERT(len <= sizeof(buf));
	memcpy(buf, p->name, nlen + 1);
	memcpy(buf + nlen + 1, key, keylen);
	hash = lb_hash64(buf, len, t->seed);
	st = &t->stripes[hash & (STRIPES - 1)];
	pthread_mutex_lock(&st->mu);
	if (st->nbuckets > 0)
		for (e = st->buckets[(hash >> 32) & (st->nbuckets - 1)]; e != NULL; e = e->next)
			if (e->hash == hash && e->len == len && memcmp(e->key, buf, len) == 0)
				return e;
	if (st->n >= st->nbuckets * 2)
		grow(st);
	e = st->nbuckets > 0 ? malloc(sizeof(*e) + len) : NULL;
	if (e == NULL) {
		pthread_mutex_unlock(&st->mu);
		return NULL;
	}
	e->hash = hash;
	e->tat_us = 0;
	e->held = 0;
	e->stripe = (unsigned)(hash & (STRIPES - 1));
	e->len = len;
	memcpy(e->key, buf, len);
	e->next = st->buckets[(hash >> 32) & (st->nbuckets - 1)];
	st->buckets[(hash >> 32) & (st->nbuckets - 1)] = e;
	st->n++;
	return e;
}

void
rl_local_take(struct rl_local *t, const struct rl_policy *p, const char *key, size_t keylen,
		uint64_t now_us, struct rl_result *r)
{
	struct rl_entry *e = lookup_locked(t, p, key, keylen);

	if (e == NULL) {
		/* Out of memory: a limiter that cannot count lets through
		 * rather than refuse everyone. */
		*r = (struct rl_result){ .allowed = true };
		return;
	}
	/* An entry whose TAT has passed is as good as new: rl_gcra starts
	 * from now (the lazy expiry). */
	rl_gcra(p, &e->tat_us, now_us, r);
	pthread_mutex_unlock(&t->stripes[e->stripe].mu);
}

struct rl_hold *
rl_local_acquire(struct rl_local *t, const struct rl_policy *p, const char *key, size_t keylen,
		bool *over)
{
	struct rl_entry *e = lookup_locked(t, p, key, keylen);
	bool ok;

	*over = false;
	if (e == NULL)
		return NULL;
	ok = e->held < p->rate;
	if (ok)
		e->held++;
	pthread_mutex_unlock(&t->stripes[e->stripe].mu);
	*over = !ok;
	return ok ? (struct rl_hold *)(void *)e : NULL;
}

void
rl_local_release(struct rl_local *t, struct rl_hold *h)
{
	struct rl_entry *e = (struct rl_entry *)(void *)h;
	struct stripe *st;

	if (h == NULL)
		return;
	st = &t->stripes[e->stripe];
	pthread_mutex_lock(&st->mu);
	UTIL_ASSERT(e->held > 0);
	e->held--;
	pthread_mutex_unlock(&st->mu);
}

size_t
rl_local_sweep(struct rl_local *t, uint64_t now_us)
{
	size_t left = 0;

	for (int i = 0; i < STRIPES; i++) {
		struct stripe *st = &t->stripes[i];

		pthread_mutex_lock(&st->mu);
		for (size_t b = 0; b < st->nbuckets; b++) {
			struct rl_entry **pp = &st->buckets[b];

			while (*pp != NULL) {
				struct rl_entry *e = *pp;

				if (e->held == 0 && e->tat_us <= now_us) {
					*pp = e->next;
					free(e);
					st->n--;
				} else {
					pp = &e->next;
				}
			}
		}
		left += st->n;
		pthread_mutex_unlock(&st->mu);
	}
	return left;
}

static int
local_take(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_result *r, rl_done_cb cb, void *arg)
{
	(void)cb;
	(void)arg;
	rl_local_take(be, p, key, keylen, util_now_us(), r);
	return 0;
}

static int
local_acquire(void *be, const struct rl_policy *p, const char *key, size_t keylen,
		struct rl_hold **hold, struct rl_result *r, rl_done_cb cb, void *arg)
{
	bool over;

	(void)cb;
	(void)arg;
	*hold = rl_local_acquire(be, p, key, keylen, &over);
	if (*hold == NULL && !over)
		return -1;	/* out of memory */
	/* No RateLimit field tells of connections: remaining stays 0. */
	*r = (struct rl_result){ .allowed = !over, .reset_s = over, .retry_after_s = over };
	return 0;
}

static void
local_release(void *be, struct rl_hold *hold)
{
	rl_local_release(be, hold);
}

static void
local_cancel(void *be, void *arg)
{
	/* Never pending: nothing to cancel. */
	(void)be;
	(void)arg;
}

const struct rl_backend_ops rl_local_ops = {
	.take = local_take,
	.acquire = local_acquire,
	.release = local_release,
	.cancel = local_cancel,
};
