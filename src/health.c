/*
 * Server health at run time (health.h): a record per pool and server name
 * that outlives reloads, the active checks it schedules on the main
 * thread's loop (health_check.c), the passive reports workers make, a
 * tick that ends ejections and holds and ramps slow starts, and the
 * publication of every kept generation's weight_now. The rules themselves
 * are health_state.c's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "config.h"
#include "health.h"
#include "health_check.h"
#include "health_state.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* Ejection and hold ends, slow-start steps and generations let go are
 * looked at this often. */
#define HEALTH_TICK_MS 100

/* A pool name's ejection count; freed with the last generation that has it. */
struct hpool {
	struct hpool *next;
	char *name;
	struct health_pool shared;
	unsigned gens;			/* kept generations that have the pool */
};

/* A server name's health; freed with the last kept generation that has it. */
struct hsrv {
	struct server_health shared;	/* what every generation's server_rt points to */
	struct hsrv *next;
	char *pool_name;
	char *name;
	char *label;			/* "pool/server", for the log */
	struct hpool *pool;
	unsigned gens;			/* kept generations that have the server */
	const struct config_server *cur;	/* in the running generation; NULL: not there */
	struct event timer;		/* the next check */
	bool timer_set;
	struct health_check *check;	/* in flight */
	struct health_verdict verdict;
	struct health_flap flap;
	char why[200];			/* the last failed check, for the down message */
	bool usable;			/* may get sessions, as last computed */
	uint64_t ramp_since;		/* slow start began; 0: not ramping */
	uint64_t in_service_since;	/* not ejected since; 0: ejected */
};

/* Main thread only. */
struct health {
	struct event_base *base;
	struct event *tick;
	struct config **gens;		/* kept generations, the running one last */
	size_t ngens;
	struct hpool *pools;
	struct hsrv *servers;
};

static struct health *H;

static uint64_t
now_ms(void)
{
	return util_now_us() / 1000;
}

static struct hsrv *
record_of(const struct server_health *sh)
{
	return (struct hsrv *)((char *)sh - offsetof(struct hsrv, shared));
}

/* ------------------------------------------------------------ records */

static struct hpool *
pool_find(const char *name)
{
	for (struct hpool *hp = H->pools; hp != NULL; hp = hp->next)
		if (strcmp(hp->name, name) == 0)
			return hp;
	return NULL;
}

static struct hpool *
pool_get(const char *name)
{
	struct hpool *hp = pool_find(name);

	if (hp != NULL)
		return hp;
	hp = calloc(1, sizeof(*hp));
	if (hp == NULL || (hp->name = strdup(name)) == NULL) {
		free(hp);
		return NULL;
	}
	atomic_init(&hp->shared.ejected, 0);
	atomic_init(&hp->shared.max_ejected, 0);
	hp->next = H->pools;
	H->pools = hp;
	return hp;
}

static void check_timer_cb(evutil_socket_t fd, short what, void *arg);

/* The record of pool/name; a new one starts up, and in service unless
 * it comes with a reload (then it ramps up through slow start). */
static struct hsrv *
server_get(const char *pool, const char *name, bool initial, uint64_t now)
{
	struct hsrv *hs;

	for (hs = H->servers; hs != NULL; hs = hs->next)
		if (strcmp(hs->pool_name, pool) == 0 && strcmp(hs->name, name) == 0)
			return hs;
	hs = calloc(1, sizeof(*hs));
	if (hs == NULL)
		return NULL;
	hs->pool_name = strdup(pool);
	hs->name = strdup(name);
	hs->label = malloc(strlen(pool) + strlen(name) + 2);
	if (hs->pool_name == NULL || hs->name == NULL || hs->label == NULL) {
		free(hs->pool_name);
		free(hs->name);
		free(hs->label);
		free(hs);
		return NULL;
	}
	sprintf(hs->label, "%s/%s", pool, name);
	atomic_init(&hs->shared.connect_failures, 0);
	atomic_init(&hs->shared.status_5xx, 0);
	atomic_init(&hs->shared.ejected, false);
	atomic_init(&hs->shared.ejected_until_ms, 0);
	atomic_init(&hs->shared.ejection_level, 0);
	atomic_init(&hs->shared.check_up, true);
	atomic_init(&hs->shared.held, false);
	atomic_init(&hs->shared.transitions, 0);
	atomic_init(&hs->shared.ejections, 0);
	atomic_init(&hs->shared.flap_holds, 0);
	evtimer_assign(&hs->timer, H->base, check_timer_cb, hs);
	health_verdict_init(&hs->verdict);
	hs->usable = initial;
	hs->in_service_since = now;
	hs->next = H->servers;
	H->servers = hs;
	return hs;
}

static void
checks_stop(struct hsrv *hs)
{
	health_check_cancel(hs->check);
	hs->check = NULL;
	if (hs->timer_set) {
		event_del(&hs->timer);
		hs->timer_set = false;
	}
}

/* Free the records no kept generation has (any that adopt() made in vain too). */
static void
records_sweep(void)
{
	for (struct hsrv **pp = &H->servers; *pp != NULL;) {
		struct hsrv *hs = *pp;

		if (hs->gens > 0) {
			pp = &hs->next;
			continue;
		}
		*pp = hs->next;
		checks_stop(hs);
		/* An ejected server that leaves gives its pool's slot back. */
		if (atomic_load(&hs->shared.ejected) && hs->shared.pool != NULL)
			atomic_fetch_sub(&hs->shared.pool->ejected, 1);
		free(hs->pool_name);
		free(hs->name);
		free(hs->label);
		free(hs);
	}
	for (struct hpool **pp = &H->pools; *pp != NULL;) {
		struct hpool *hp = *pp;

		if (hp->gens > 0) {
			pp = &hp->next;
			continue;
		}
		*pp = hp->next;
		free(hp->name);
		free(hp);
	}
}

/* ------------------------------------------------------------- weights */

/*
 * Store w, unless a worker ejects the server meanwhile: it sets ejected
 * and then stores 0, so whichever order the two threads' steps take, 0
 * wins (all four operations are sequentially consistent).
 */
static void
weight_store(struct server_rt *rt, unsigned w)
{
	if (atomic_load(&rt->weight_now) != w)
		atomic_store(&rt->weight_now, w);
	if (w > 0 && rt->health != NULL && atomic_load(&rt->health->ejected))
		atomic_store(&rt->weight_now, 0);
}

/* What srv (of any kept generation) should weigh now. */
static unsigned
weight_of(const struct config_server *srv, uint64_t now)
{
	const struct server_rt *rt = srv->rt;
	const struct server_health *sh = rt->health;
	const struct hsrv *hs;

	if (!atomic_load(&rt->present))
		return 0;
	if (sh == NULL)
		return srv->weight * SERVER_WEIGHT_SCALE;
	if (!atomic_load(&sh->check_up) || atomic_load(&sh->held) || atomic_load(&sh->ejected))
		return 0;
	hs = record_of(sh);
	return health_slow_start_weight(srv->weight * SERVER_WEIGHT_SCALE, hs->ramp_since, now,
		srv->pool->slow_start_ms);
}

static void
publish_all(uint64_t now)
{
	for (size_t g = 0; g < H->ngens; g++) {
		const struct config *cfg = H->gens[g];

		for (size_t i = 0; i < cfg->npools; i++)
			for (size_t k = 0; k < cfg->pools[i].nservers; k++) {
				const struct config_server *srv = &cfg->pools[i].servers[k];

				weight_store(srv->rt, weight_of(srv, now));
			}
	}
}

/*
 * Bring hs up to date at now: an ejection that is over, the ejection
 * multiplier forgiven after max_ejection in service, a flap hold that is
 * over, and slow start begun (when the server comes back into service)
 * or finished.
 */
static void
record_update(struct hsrv *hs, uint64_t now)
{
	struct server_health *sh = &hs->shared;
	const struct config_pool *pool = hs->cur != NULL ? hs->cur->pool : NULL;
	bool usable;

	if (health_eject_over(sh, now))
		log_info("server %s: ejection over", hs->label);
	if (atomic_load(&sh->ejected)) {
		hs->in_service_since = 0;
	} else if (hs->in_service_since == 0) {
		hs->in_service_since = now;
	} else if (pool != NULL && atomic_load(&sh->ejection_level) > 0 &&
		   now - hs->in_service_since >= pool->passive.max_ejection_ms) {
		atomic_store(&sh->ejection_level, 0);
	}
	if (health_flap_check(&hs->flap, now) == HEALTH_HOLD_OVER) {
		atomic_store(&sh->held, false);
		log_info("server %s: flap hold over, %s", hs->label, hs->verdict.up ?
			"back in service" : "its checks still fail");
	}
	usable = hs->cur != NULL && atomic_load(&hs->cur->rt->present) &&
		atomic_load(&sh->check_up) && !atomic_load(&sh->held) && !atomic_load(&sh->ejected);
	if (!usable)
		hs->ramp_since = 0;
	else if (!hs->usable && pool->slow_start_ms > 0)
		hs->ramp_since = now;
	else if (hs->ramp_since != 0 && now - hs->ramp_since >= pool->slow_start_ms)
		hs->ramp_since = 0;
	hs->usable = usable;
}

/* Let go of generations only we still hold (not the running one). */
static void
gens_release_unused(void)
{
	size_t i = 0;

	while (i + 1 < H->ngens) {
		struct config *cfg = H->gens[i];

		if (atomic_load(&cfg->refcnt) > 1) {
			i++;
			continue;
		}
		for (size_t p = 0; p < cfg->npools; p++) {
			struct config_pool *cp = &cfg->pools[p];

			for (size_t k = 0; k < cp->nservers; k++)
				record_of(cp->servers[k].rt->health)->gens--;
			pool_find(cp->name)->gens--;
		}
		memmove(&H->gens[i], &H->gens[i + 1], (H->ngens - i - 1) * sizeof(*H->gens));
		H->ngens--;
		config_unref(cfg);
		records_sweep();
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ms();

	(void)fd;
	(void)what;
	(void)arg;
	gens_release_unused();
	for (struct hsrv *hs = H->servers; hs != NULL; hs = hs->next)
		record_update(hs, now);
	publish_all(now);
}

/* -------------------------------------------------------------- checks */

static void
check_schedule(struct hsrv *hs, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(&hs->timer, &tv);
	hs->timer_set = true;
}

/* A verdict changed: say so once, count it, and see whether it flaps. */
static void
verdict_changed(struct hsrv *hs, enum health_change ch, uint64_t now)
{
	const struct config_health *h = &hs->cur->pool->health;
	struct server_health *sh = &hs->shared;
	unsigned hold;

	atomic_store(&sh->check_up, ch == HEALTH_WENT_UP);
	atomic_fetch_add_explicit(&sh->transitions, 1, memory_order_relaxed);
	/* A held server is out of service whatever its checks say: its
	 * changes are not news. */
	if (hs->flap.hold_until == 0) {
		if (ch == HEALTH_WENT_DOWN)
			log_warn("server %s is down: %s (%u failed check%s in a row)", hs->label,
				hs->why, h->fall, h->fall == 1 ? "" : "s");
		else
			log_info("server %s is up: %u passed check%s in a row", hs->label, h->rise,
				h->rise == 1 ? "" : "s");
	}
	/* A server that was down by its checks and passes them again has
	 * recovered: an ejection from the failures of its bad time ends. */
	if (ch == HEALTH_WENT_UP && health_eject_over(sh, UINT64_MAX))
		log_info("server %s: ejection over, its checks pass again", hs->label);
	hold = health_flap_change(&hs->flap, now, h);
	if (hold > 0) {
		atomic_store(&sh->held, true);
		atomic_fetch_add_explicit(&sh->flap_holds, 1, memory_order_relaxed);
		log_warn("server %s is flapping (%u up/down changes within %u ms): held down for "
			"%u ms", hs->label, h->flap_changes, h->flap_window_ms, hold);
	}
	record_update(hs, now);
	publish_all(now);
}

static void
check_done_cb(void *arg, bool passed, const char *why)
{
	struct hsrv *hs = arg;
	const struct config_health *h = &hs->cur->pool->health;
	enum health_change ch;

	hs->check = NULL;
	/* A hold whose time is up ends first, so that this result counts. */
	record_update(hs, now_ms());
	if (!passed)
		snprintf(hs->why, sizeof(hs->why), "%s", why);
	ch = health_verdict_add(&hs->verdict, passed, h->rise, h->fall);
	if (ch != HEALTH_SAME)
		verdict_changed(hs, ch, now_ms());
	check_schedule(hs, health_next_delay(h, util_rand64()));
}

static void
check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hsrv *hs = arg;

	(void)fd;
	(void)what;
	hs->timer_set = false;
	if (hs->cur == NULL || !hs->cur->pool->health_on)
		return;
	/* A slot of DNS discovery that no answer fills has nothing to check. */
	if (!atomic_load(&hs->cur->rt->present)) {
		check_schedule(hs, hs->cur->pool->health.interval_ms);
		return;
	}
	hs->check = health_check_start(H->base, hs->cur, check_done_cb, hs);
	if (hs->check == NULL) {
		log_error("health check of server %s: out of memory", hs->label);
		check_schedule(hs, hs->cur->pool->health.interval_ms);
	}
}

/* ------------------------------------------------------- generations */

/*
 * Make cfg the running generation: records for its pools and servers,
 * srv->rt->health set, checks (re)started. On failure (out of memory)
 * nothing of cfg is kept.
 */
static int
adopt(struct config *cfg, bool initial)
{
	uint64_t now = now_ms();
	struct config **gens = realloc(H->gens, (H->ngens + 1) * sizeof(*gens));

	if (gens == NULL)
		return -1;
	H->gens = gens;
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *cp = &cfg->pools[i];

		if (pool_get(cp->name) == NULL)
			goto fail;
		for (size_t k = 0; k < cp->nservers; k++)
			if (server_get(cp->name, cp->servers[k].name, initial, now) == NULL)
				goto fail;
	}
	/* From here on nothing fails. Checks in flight belong to the
	 * generation before: they go. */
	for (struct hsrv *hs = H->servers; hs != NULL; hs = hs->next) {
		checks_stop(hs);
		hs->cur = NULL;
	}
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *cp = &cfg->pools[i];
		struct hpool *hp = pool_get(cp->name);

		hp->gens++;
		atomic_store(&hp->shared.max_ejected,
			health_max_ejected(cp->nservers, cp->passive.max_ejected_pct));
		for (size_t k = 0; k < cp->nservers; k++) {
			struct config_server *srv = &cp->servers[k];
			struct hsrv *hs = server_get(cp->name, srv->name, initial, now);

			hs->gens++;
			hs->cur = srv;
			hs->pool = hp;
			hs->shared.pool = &hp->shared;
			srv->rt->health = &hs->shared;
		}
	}
	H->gens[H->ngens++] = config_ref(cfg);
	for (struct hsrv *hs = H->servers; hs != NULL; hs = hs->next) {
		if (hs->cur == NULL)
			continue;
		if (!hs->cur->pool->health_on) {
			/* Without checks a server is as good as up; a hold
			 * from checks that no longer run is lifted. */
			health_verdict_init(&hs->verdict);
			memset(&hs->flap, 0, sizeof(hs->flap));
			atomic_store(&hs->shared.check_up, true);
			atomic_store(&hs->shared.held, false);
			continue;
		}
		/* First checks spread over one interval, not all at once. */
		check_schedule(hs, (unsigned)(util_rand64() % hs->cur->pool->health.interval_ms));
	}
	for (struct hsrv *hs = H->servers; hs != NULL; hs = hs->next)
		record_update(hs, now);
	publish_all(now);
	return 0;
fail:
	records_sweep();
	return -1;
}

int
health_start(struct event_base *base, struct config *cfg)
{
	static const struct timeval tick = {
		.tv_sec = HEALTH_TICK_MS / 1000, .tv_usec = (HEALTH_TICK_MS % 1000) * 1000,
	};

	UTIL_ASSERT(H == NULL);
	H = calloc(1, sizeof(*H));
	if (H == NULL)
		return -1;
	H->base = base;
	H->tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	if (H->tick == NULL || event_add(H->tick, &tick) < 0 || adopt(cfg, true) < 0) {
		health_stop();
		return -1;
	}
	return 0;
}

int
health_reload(struct config *cfg)
{
	return adopt(cfg, false);
}

void
health_stop(void)
{
	if (H == NULL)
		return;
	if (H->tick != NULL)
		event_free(H->tick);
	/* Checks first: they use their generation's servers and TLS context. */
	for (struct hsrv *hs = H->servers; hs != NULL; hs = hs->next) {
		checks_stop(hs);
		hs->gens = 0;
	}
	for (size_t g = 0; g < H->ngens; g++)
		config_unref(H->gens[g]);
	for (struct hpool *hp = H->pools; hp != NULL; hp = hp->next)
		hp->gens = 0;
	records_sweep();
	free(H->gens);
	free(H);
	H = NULL;
}

/* ------------------------------------------------------------- passive */

/* A failure counted at n in a row: eject when the threshold is reached. */
static void
passive_failed(const struct config_server *srv, unsigned n, unsigned threshold, const char *what)
{
	struct server_health *sh = srv->rt->health;
	unsigned ms;

	if (n < threshold)
		return;
	ms = health_eject(sh, &srv->pool->passive, now_ms());
	if (ms == 0)
		return;
	/* At once for this generation; the main thread's tick brings the
	 * others (sessions from before a reload) along. */
	atomic_store(&srv->rt->weight_now, 0);
	log_warn("server %s/%s ejected for %u ms: %u %s in a row (ejection %u in a row)",
		srv->pool->name, srv->name, ms, n, what, atomic_load(&sh->ejection_level));
}

void
health_passive_connect_failed(const struct config_server *srv)
{
	const struct config_passive *p = &srv->pool->passive;
	struct server_health *sh = srv->rt != NULL ? srv->rt->health : NULL;

	if (sh == NULL || p->connect_failures == 0)
		return;
	passive_failed(srv, atomic_fetch_add(&sh->connect_failures, 1) + 1, p->connect_failures,
		"failed connects");
}

void
health_passive_connect_ok(const struct config_server *srv)
{
	struct server_health *sh = srv->rt != NULL ? srv->rt->health : NULL;

	/* Read first: the common case writes nothing to a shared line. */
	if (sh != NULL && atomic_load_explicit(&sh->connect_failures, memory_order_relaxed) != 0)
		atomic_store(&sh->connect_failures, 0);
}

void
health_passive_status(const struct config_server *srv, int status)
{
	const struct config_passive *p = &srv->pool->passive;
	struct server_health *sh = srv->rt != NULL ? srv->rt->health : NULL;

	if (sh == NULL || p->status_5xx == 0)
		return;
	if (status >= 500 && status <= 599) {
		passive_failed(srv, atomic_fetch_add(&sh->status_5xx, 1) + 1, p->status_5xx,
			"5xx answers");
		return;
	}
	if (atomic_load_explicit(&sh->status_5xx, memory_order_relaxed) != 0)
		atomic_store(&sh->status_5xx, 0);
}

/* ---------------------------------------------------------------- misc */

unsigned
health_retry_after_s(const struct config_pool *pool)
{
	uint64_t ms;

	if (pool == NULL || !pool->health_on)
		return 1;
	ms = (uint64_t)pool->health.interval_ms * pool->health.rise;
	return ms < 1000 ? 1 : (unsigned)((ms + 999) / 1000);
}

void
health_refresh_weight(const struct config_server *srv)
{
	uint64_t now = now_ms();

	if (H != NULL && srv->rt->health != NULL) {
		struct hsrv *hs = record_of(srv->rt->health);

		if (hs->cur == srv)
			record_update(hs, now);
	}
	weight_store(srv->rt, weight_of(srv, now));
}
