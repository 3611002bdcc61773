/*
 * The decisions of health checking as pure functions of their inputs and
 * the time (milliseconds, any monotonic origin above 0): verdicts from
 * check results (rise, fall), flap hold-down with back-off, passive
 * ejection and its length, the pool's ejection cap, slow-start weights,
 * whether an answer passes a check, and when the next check runs. No I/O,
 * no clock, no logging: health.c applies them, the unit tests drive them.
 */
#ifndef SLUICE_HEALTH_STATE_H
#define SLUICE_HEALTH_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"
#include "health.h"

/* Most verdict changes remembered for flap detection (flap_changes <= this). */
#define HEALTH_FLAP_RING 64

/* The active checks' verdict on a server. */
struct health_verdict {
	bool up;
	unsigned passes;		/* passed checks in a row */
	unsigned failures;		/* failed checks in a row */
};

enum health_change {
	HEALTH_SAME = 0,
	HEALTH_WENT_UP,
	HEALTH_WENT_DOWN,
};

/* A verdict that starts up (health_start's choice: traffic flows at once). */
void health_verdict_init(struct health_verdict *v);

/*
 * Count one check result: rise passes in a row bring a down server up,
 * fall failures in a row take an up server down.
 */
enum health_change health_verdict_add(struct health_verdict *v, bool passed, unsigned rise,
		unsigned fall);

/* Flap detection and hold-down for one server. */
struct health_flap {
	uint64_t changes[HEALTH_FLAP_RING];	/* times of recent verdict changes */
	unsigned nchanges;
	unsigned next;			/* where the next change goes in the ring */
	uint64_t hold_until;		/* 0: not held */
	uint64_t last_hold_end;		/* when the last hold ended (or will); 0: never held */
	unsigned last_hold_ms;		/* how long it was */
};

/*
 * A verdict change at now. When it makes flap_changes changes within
 * flap_window, the server is held down: for flap_hold the first time, for
 * twice the last hold (at most flap_hold_max) when the last hold ended
 * less than flap_hold_max ago. Returns the hold's length in ms, or 0.
 * Changes during a hold are not counted, and a hold starts the count
 * afresh.
 */
unsigned health_flap_change(struct health_flap *f, uint64_t now, const struct config_health *h);

enum health_hold {
	HEALTH_NOT_HELD = 0,
	HEALTH_HELD,
	HEALTH_HOLD_OVER,		/* the hold ended at this call */
};

/* Whether f holds the server at now; ends a hold whose time has come. */
enum health_hold health_flap_check(struct health_flap *f, uint64_t now);

/* How long ejection number level (1, 2, ...) lasts: base x level, at most max. */
unsigned health_ejection_ms(const struct config_passive *p, unsigned level);

/* Servers of a pool of n that may be ejected at once: n x pct / 100, rounded down. */
unsigned health_max_ejected(size_t n, unsigned pct);

/*
 * Eject sh at now if it is not ejected yet and its pool has a slot left:
 * claims the slot and the server with compare-exchanges, so that of
 * racing workers exactly one ejects. Returns the ejection's length in ms,
 * or 0 when nothing was done. Any thread.
 */
unsigned health_eject(struct server_health *sh, const struct config_passive *p, uint64_t now);

/*
 * End sh's ejection if its time has passed at now: the failure counts
 * start over and the pool's slot is given back. Returns true when it
 * ended. Main thread (the only one that ends ejections).
 */
bool health_eject_over(struct server_health *sh, uint64_t now);

/*
 * The weight of a server of configured weight during slow start begun at
 * since: from a tenth of it (at least 1) up to all of it, linearly over
 * slow_start_ms. since 0 or slow_start_ms 0: the full weight.
 */
unsigned health_slow_start_weight(unsigned weight, uint64_t since, uint64_t now,
		unsigned slow_start_ms);

/*
 * Whether a check's answer passes: http, status within the range and
 * (when set) the body containing h->body; socketio, 200 and a body that
 * is an Engine.IO open packet ('0' then a JSON object with a "sid").
 * On failure, why says what was wrong (static text or written to buf).
 */
bool health_answer_ok(const struct config_health *h, int status, const char *body, size_t len,
		char *why, size_t whylen);

/*
 * Milliseconds to the next check: interval, moved by up to jitter_pct
 * percent either way according to rnd (any 64 random bits).
 */
unsigned health_next_delay(const struct config_health *h, uint64_t rnd);

#endif
