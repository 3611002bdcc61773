/*
 * Health decisions as pure functions (health_state.h): verdicts, flap
 * holds, ejections and their cap, slow-start weights, answer checks and
 * check spacing. Time is a parameter; nothing here does I/O or logs, so
 * the unit tests can walk every rule through time.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "health_state.h"

void
health_verdict_init(struct health_verdict *v)
{
	v->up = true;
	v->passes = 0;
	v->failures = 0;
}

enum health_change
health_verdict_add(struct health_verdict *v, bool passed, unsigned rise, unsigned fall)
{
	if (passed) {
		v->failures = 0;
		if (v->passes < UINT_MAX)
			v->passes++;
		if (!v->up && v->passes >= rise) {
			v->up = true;
			return HEALTH_WENT_UP;
		}
		return HEALTH_SAME;
	}
	v->passes = 0;
	if (v->failures < UINT_MAX)
		v->failures++;
	if (v->up && v->failures >= fall) {
		v->up = false;
		return HEALTH_WENT_DOWN;
	}
	return HEALTH_SAME;
}

unsigned
health_flap_change(struct health_flap *f, uint64_t now, const struct config_health *h)
{
	unsigned recent = 0;
	uint64_t len;

	/* A held server is down whatever its checks say: its changes do
	 * not count towards the next hold. */
	if (h->flap_changes == 0 || f->hold_until != 0)
		return 0;
	f->changes[f->next] = now;
	f->next = (f->next + 1) % HEALTH_FLAP_RING;
	if (f->nchanges < HEALTH_FLAP_RING)
		f->nchanges++;
	for (unsigned i = 0; i < f->nchanges; i++)
		if (now - f->changes[i] < h->flap_window_ms)
			recent++;
	if (recent < h->flap_changes)
		return 0;
	/* Back-off: a server that flaps again soon after a hold is held
	 * twice as long; one that stayed quiet for flap_hold_max starts over. */
	if (f->last_hold_end == 0 || now - f->last_hold_end >= h->flap_hold_max_ms) {
		len = h->flap_hold_ms;
	} else {
		len = 2 * (uint64_t)f->last_hold_ms;
		if (len > h->flap_hold_max_ms)
			len = h->flap_hold_max_ms;
	}
	f->hold_until = now + len;
	f->last_hold_end = f->hold_until;
	f->last_hold_ms = (unsigned)len;
	f->nchanges = 0;
	f->next = 0;
	return (unsigned)len;
}

enum health_hold
health_flap_check(struct health_flap *f, uint64_t now)
{
	if (f->hold_until == 0)
		return HEALTH_NOT_HELD;
	if (now < f->hold_until)
		return HEALTH_HELD;
	f->hold_until = 0;
	return HEALTH_HOLD_OVER;
}

unsigned
health_ejection_ms(const struct config_passive *p, unsigned level)
{
	uint64_t ms = (uint64_t)p->base_ejection_ms * (level ? level : 1);

	return ms > p->max_ejection_ms ? p->max_ejection_ms : (unsigned)ms;
}

unsigned
health_max_ejected(size_t n, unsigned pct)
{
	return (unsigned)(n * pct / 100);
}

unsigned
health_eject(struct server_health *sh, const struct config_passive *p, uint64_t now)
{
	struct health_pool *hp = sh->pool;
	unsigned cur, level, ms;
	bool no = false;

	if (hp == NULL || atomic_load(&sh->ejected))
		return 0;
	/* The pool's slot first: a server is marked ejected only once it
	 * really is, so the main thread never sees a claim that is undone. */
	cur = atomic_load(&hp->ejected);
	do {
		if (cur >= atomic_load(&hp->max_ejected))
			return 0;
	} while (!atomic_compare_exchange_weak(&hp->ejected, &cur, cur + 1));
	if (!atomic_compare_exchange_strong(&sh->ejected, &no, true)) {
		/* Another worker ejected it meanwhile. */
		atomic_fetch_sub(&hp->ejected, 1);
		return 0;
	}
	level = atomic_fetch_add(&sh->ejection_level, 1) + 1;
	ms = health_ejection_ms(p, level);
	atomic_store(&sh->ejected_until_ms, now + ms);
	atomic_fetch_add_explicit(&sh->ejections, 1, memory_order_relaxed);
	return ms;
}

bool
health_eject_over(struct server_health *sh, uint64_t now)
{
	uint64_t until;

	if (!atomic_load(&sh->ejected))
		return false;
	/* 0: the ejecting worker is between its two stores. */
	until = atomic_load(&sh->ejected_until_ms);
	if (until == 0 || now < until)
		return false;
	/* The failures that led to it are forgiven; the level stays, so a
	 * server that fails again at once is ejected for longer. */
	atomic_store(&sh->connect_failures, 0);
	atomic_store(&sh->status_5xx, 0);
	atomic_store(&sh->ejected_until_ms, 0);
	atomic_store(&sh->ejected, false);
	if (sh->pool != NULL)
		atomic_fetch_sub(&sh->pool->ejected, 1);
	return true;
}

unsigned
health_slow_start_weight(unsigned weight, uint64_t since, uint64_t now, unsigned slow_start_ms)
{
	unsigned low;

	if (since == 0 || slow_start_ms == 0 || now >= since + slow_start_ms)
		return weight;
	low = weight / 10 > 0 ? weight / 10 : 1;
	if (low >= weight || now <= since)
		return low < weight ? low : weight;
	return low + (unsigned)((uint64_t)(weight - low) * (now - since) / slow_start_ms);
}

bool
health_answer_ok(const struct config_health *h, int status, const char *body, size_t len,
		char *why, size_t whylen)
{
	if (h->type == CONFIG_CHECK_SOCKETIO) {
		if (status != 200) {
			snprintf(why, whylen, "status %d to the Engine.IO handshake", status);
			return false;
		}
		if (len < 2 || body[0] != '0' || body[1] != '{') {
			snprintf(why, whylen, "the answer is not an Engine.IO open packet");
			return false;
		}
		if (memmem(body, len, "\"sid\"", 5) == NULL) {
			snprintf(why, whylen, "the Engine.IO open packet has no sid");
			return false;
		}
		return true;
	}
	if (status < (int)h->status_min || status > (int)h->status_max) {
		snprintf(why, whylen, "status %d", status);
		return false;
	}
	if (h->body != NULL && memmem(body, len, h->body, strlen(h->body)) == NULL) {
		snprintf(why, whylen, "the body does not contain \"%s\"", h->body);
		return false;
	}
	return true;
}

unsigned
health_next_delay(const struct config_health *h, uint64_t rnd)
{
	uint64_t span = (uint64_t)h->interval_ms * h->jitter_pct / 100;

	if (span == 0)
		return h->interval_ms;
	return (unsigned)(h->interval_ms - span + rnd % (2 * span + 1));
}
