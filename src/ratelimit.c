/*
 * Rate limits: the GCRA step, the key an event counts under (the client
 * address through trusted proxies, a header, a cookie, the route), the
 * RateLimit field values, and the admission of one exchange against the
 * policies of its route with whichever backend the worker holds. The
 * in-process backend is ratelimit_local.c; admission is asked for by
 * session_head.c, and answers are session_answer.c's.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http.h"
#include "lb.h"
#include "ratelimit.h"
#include "sticky.h"
#include "util.h"

/* Any fixed value: long values are shortened the same way everywhere, so
 * every replica and worker counts them under the same key. */
#define KEY_SHORTEN_SEED	0x726c2d6b65792d31ULL

/* ------------------------------------------------------------- GCRA math */

static unsigned
ceil_s(uint64_t us)
{
	uint64_t s = (us + 999999) / 1000000;

	return s > 0xffffffffu ? 0xffffffffu : (unsigned)s;
}

bool
rl_gcra(const struct rl_policy *p, uint64_t *tat, uint64_t now_us, struct rl_result *r)
{
	uint64_t t = *tat > now_us ? *tat : now_us;
	uint64_t ahead = t - now_us;		/* how far the budget is spent */

	if (ahead > p->tau_us) {
		unsigned retry = ceil_s(ahead - p->tau_us);

		r->allowed = false;
		r->remaining = 0;
		r->retry_after_s = retry > 0 ? retry : 1;
		r->reset_s = r->retry_after_s;
		return false;
	}
	*tat = t + p->t_us;
	r->allowed = true;
	/* What is left of tau after this event, in whole events. */
	r->remaining = p->t_us > 0 ? (unsigned)((p->tau_us - ahead) / p->t_us) : 0;
	r->reset_s = ceil_s(*tat - now_us);
	r->retry_after_s = 0;
	return true;
}

/* -------------------------------------------------------------- keys */

/* ip as 4 or 16 bytes; an IPv4-mapped IPv6 address counts as IPv4. */
static int
parse_ip(const char *ip, size_t len, unsigned char addr[16])
{
	char buf[INET6_ADDRSTRLEN + 2];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, ip, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, buf, addr) != 1)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)addr)) {
		memmove(addr, addr + 12, 4);
		return AF_INET;
	}
	return AF_INET6;
}

static bool
cidr_match_bytes(const struct config_cidr *cidrs, size_t n, int family,
		const unsigned char *addr)
{
	for (size_t i = 0; i < n; i++) {
		const struct config_cidr *c = &cidrs[i];
		unsigned full = c->bits / 8, rest = c->bits % 8;

		if (c->family != family || memcmp(c->addr, addr, full) != 0)
			continue;
		if (rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff00u >> rest)) == 0)
			return true;
	}
	return false;
}

bool
rl_cidr_match(const struct config_cidr *cidrs, size_t n, const char *ip)
{
	unsigned char addr[16];
	int family = parse_ip(ip, strlen(ip), addr);

	return family != 0 && cidr_match_bytes(cidrs, n, family, addr);
}

/*
 * One X-Forwarded-For entry: "1.2.3.4", "2001:db8::1", "[2001:db8::1]",
 * "[2001:db8::1]:80" or "1.2.3.4:80". Returns the family or 0.
 */
static int
parse_xff_entry(const char *s, size_t len, unsigned char addr[16])
{
	const char *colon;
	int family = parse_ip(s, len, addr);

	if (family != 0)
		return family;
	if (len > 2 && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		return close != NULL ? parse_ip(s + 1, (size_t)(close - s - 1), addr) : 0;
	}
	colon = memchr(s, ':', len);
	if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL)
		return parse_ip(s, (size_t)(colon - s), addr);
	return 0;
}

static size_t
format_ip(int family, const unsigned char addr[16], char *out, size_t outlen)
{
	if (inet_ntop(family, addr, out, (socklen_t)outlen) == NULL) {
		if (outlen > 0)
			out[0] = '\0';
		return 0;
	}
	return strlen(out);
}

size_t
rl_client_addr(const struct config *cfg, const char *peer_ip, const struct http_head *h,
		char *out, size_t outlen)
{
	unsigned char cur[16], next[16];
	int family = parse_ip(peer_ip, strlen(peer_ip), cur);

	if (family == 0) {
		/* Not an address (a Unix socket, say): the text is the key. */
		snprintf(out, outlen, "%s", peer_ip);
		return strlen(out);
	}
	if (cfg->ntrusted == 0 || h == NULL || !cidr_match_bytes(cfg->trusted, cfg->ntrusted,
			family, cur))
		return format_ip(family, cur, out, outlen);
	/* The peer is a trusted proxy: walk X-Forwarded-For from the right,
	 * the last field first, each appended by one more hop. */
	for (size_t i = h->nheaders; i-- > 0;) {
		const struct http_header *hd = &h->headers[i];
		const char *v = hd->value;
		size_t end = hd->value_len;

		if (hd->id != HTTP_F_X_FORWARDED_FOR)
			continue;
		while (end > 0) {
			size_t start = end, a, b;
			int f;

			while (start > 0 && v[start - 1] != ',')
				start--;
			a = start;
			b = end;
			while (a < b && (v[a] == ' ' || v[a] == '\t'))
				a++;
			while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
				b--;
			end = start > 0 ? start - 1 : 0;
			if (a == b)
				continue;	/* "a,,b": an empty entry says nothing */
			f = parse_xff_entry(v + a, b - a, next);
			if (f == 0)
				/* Garbage: what the trusted hop to its right
				 * saw is all that can be believed. */
				return format_ip(family, cur, out, outlen);
			family = f;
			memcpy(cur, next, 16);
			if (!cidr_match_bytes(cfg->trusted, cfg->ntrusted, family, cur))
				return format_ip(family, cur, out, outlen);
		}
	}
	return format_ip(family, cur, out, outlen);
}

/* Copy value into out, shortening it past RL_KEY_MAX to a prefix and a hash. */
static size_t
key_put(const char *value, size_t len, char out[RL_KEY_MAX])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t hash;

	if (len <= RL_KEY_MAX) {
		memcpy(out, value, len);
		return len;
	}
	memcpy(out, value, RL_KEY_MAX - 16);
	hash = lb_hash64(value, len, KEY_SHORTEN_SEED);
	for (int k = 0; k < 16; k++)
		out[RL_KEY_MAX - 16 + k] = hex[(hash >> (60 - 4 * k)) & 0xf];
	return RL_KEY_MAX;
}

size_t
rl_key_build(const struct rl_policy *p, const struct config_route *route,
		const struct http_head *h, const char *client_addr, char out[RL_KEY_MAX])
{
	switch (p->key) {
	case RL_KEY_CLIENT:
		return key_put(client_addr, strlen(client_addr), out);
	case RL_KEY_ROUTE:
		return key_put(route->name, strlen(route->name), out);
	case RL_KEY_HEADER:
		for (size_t i = 0; i < h->nheaders; i++)
			if (h->headers[i].value_len > 0 && http_header_is(&h->headers[i], p->key_name))
				return key_put(h->headers[i].value, h->headers[i].value_len, out);
		return 0;
	case RL_KEY_COOKIE:
		for (size_t i = 0; i < h->nheaders; i++) {
			const struct http_header *hd = &h->headers[i];
			const char *v;
			size_t vlen;

			if (http_header_is(hd, "cookie") &&
			    sticky_cookie_find(hd->value, hd->value_len, p->key_name, &v, &vlen) &&
			    vlen > 0)
				return key_put(v, vlen, out);
		}
		return 0;
	}
	return 0;
}

/* --------------------------------------------------------- answers */

static size_t
clamp(int n, size_t len)
{
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

size_t
rl_format_policy(const struct rl_policy *p, char *buf, size_t len)
{
	if (p->kind == RL_KIND_CONNECTIONS)
		return clamp(snprintf(buf, len, "\"%s\";q=%u", p->name, p->rate), len);
	return clamp(snprintf(buf, len, "\"%s\";q=%u;w=%u", p->name, p->rate, p->per_s), len);
}

size_t
rl_format_state(const struct rl_policy *p, const struct rl_result *r, char *buf, size_t len)
{
	return clamp(snprintf(buf, len, "\"%s\";r=%u;t=%u", p->name, r->remaining,
		r->allowed ? r->reset_s : r->retry_after_s), len);
}

/* ------------------------------------------------------------ admission */

static bool
is_conn(const struct rl_policy *p)
{
	return p->kind == RL_KIND_CONNECTIONS;
}

/* An answered acquire: the session holds what it counted until it goes. */
static void
slot_settle(struct rl_sess *rs, struct rl_slot *slot)
{
	if (!is_conn(slot->p) || !slot->r.allowed || slot->failed)
		return;
	if (rs->nheld == CONFIG_ROUTE_MAX_RL) {
		/* Routes with many connections limits, one session across
		 * them all: past the first eight it is not counted. */
		rs->ops->release(rs->be, slot->hold);
		slot->hold = NULL;
		return;
	}
	rs->held[rs->nheld] = slot->hold;
	rs->held_p[rs->nheld++] = slot->p;
	slot->hold = NULL;
}

static void
slot_done(void *arg, const struct rl_result *r)
{
	struct rl_slot *slot = arg;
	struct rl_sess *rs = slot->rs;

	UTIL_ASSERT(slot->pending && rs->npending > 0);
	slot->r = *r;
	slot->pending = false;
	slot_settle(rs, slot);
	if (--rs->npending == 0)
		rs->resume(rs->arg);
}

struct rl_sess *
rl_sess_new(const struct rl_backend_ops *ops, void *be, void (*resume)(void *arg), void *arg)
{
	struct rl_sess *rs = calloc(1, sizeof(*rs));

	if (rs == NULL)
		return NULL;
	rs->ops = ops;
	rs->be = be;
	rs->resume = resume;
	rs->arg = arg;
	return rs;
}

void
rl_sess_free(struct rl_sess *rs)
{
	if (rs == NULL)
		return;
	rl_sess_cancel(rs);
	for (unsigned i = 0; i < rs->nheld; i++)
		rs->ops->release(rs->be, rs->held[i]);
	free(rs);
}

void
rl_sess_cancel(struct rl_sess *rs)
{
	for (unsigned i = 0; i < rs->nslots && rs->npending > 0; i++)
		if (rs->slot[i].pending) {
			rs->ops->cancel(rs->be, &rs->slot[i]);
			rs->slot[i].pending = false;
			rs->npending--;
		}
}

static bool
holds(const struct rl_sess *rs, const struct rl_policy *p)
{
	for (unsigned i = 0; i < rs->nheld; i++)
		if (rs->held_p[i] == p)
			return true;
	return false;
}

enum rl_verdict
rl_admit(struct rl_sess *rs, const struct rl_admit_in *in)
{
	const struct config_route *route = in->route;
	char client[RL_KEY_MAX], key[RL_KEY_MAX];
	bool have_client = false;

	UTIL_ASSERT(rs->npending == 0);
	rs->nslots = 0;
	for (unsigned i = 0; i < route->nrl; i++) {
		const struct rl_policy *p = route->rl[i];
		struct rl_slot *slot;
		size_t keylen;
		int rc;

		if (p->kind == RL_KIND_MESSAGES ||
		    (p->kind == RL_KIND_UPGRADES && !in->upgrade) ||
		    (is_conn(p) && holds(rs, p)))
			continue;
		if (p->key == RL_KEY_CLIENT && !have_client) {
			rl_client_addr(in->cfg, in->peer_ip, in->h, client, sizeof(client));
			have_client = true;
		}
		keylen = rl_key_build(p, route, in->h, client, key);
		if (keylen == 0)
			continue;	/* no such header or cookie: not counted */
		slot = &rs->slot[rs->nslots++];
		slot->rs = rs;
		slot->p = p;
		slot->pending = false;
		slot->failed = false;
		slot->hold = NULL;
		if (is_conn(p))
			rc = rs->ops->acquire(rs->be, p, key, keylen, &slot->hold, &slot->r,
				slot_done, slot);
		else
			rc = rs->ops->take(rs->be, p, key, keylen, &slot->r, slot_done, slot);
		if (rc == 1) {
			slot->pending = true;
			rs->npending++;
		} else if (rc < 0) {
			/* The backend could not even try (it applies
			 * on_error itself when it can): let it through. */
			slot->failed = true;
			slot->r = (struct rl_result){ .allowed = true };
		} else {
			slot_settle(rs, slot);
		}
	}
	return rs->npending > 0 ? RL_PENDING : rl_verdict(rs);
}

enum rl_verdict
rl_verdict(const struct rl_sess *rs)
{
	enum rl_verdict v = RL_ALLOW;

	for (unsigned i = 0; i < rs->nslots; i++)
		if (!rs->slot[i].r.allowed) {
			/* Too many connections: this one must go. */
			if (is_conn(rs->slot[i].p))
				return RL_DENY_CLOSE;
			v = RL_DENY;
		}
	return v;
}

const struct rl_policy *
rl_denial(const struct rl_sess *rs, struct rl_result *r)
{
	const struct rl_policy *worst = NULL;

	for (unsigned i = 0; i < rs->nslots; i++) {
		const struct rl_slot *slot = &rs->slot[i];

		/* A connections limit says why the connection closes. */
		if (!slot->r.allowed && is_conn(slot->p)) {
			*r = slot->r;
			return slot->p;
		}
	}
	for (unsigned i = 0; i < rs->nslots; i++) {
		const struct rl_slot *slot = &rs->slot[i];

		if (!slot->r.allowed && (worst == NULL || slot->r.retry_after_s > r->retry_after_s)) {
			worst = slot->p;
			*r = slot->r;
		}
	}
	return worst;
}

const struct rl_policy *
rl_header(const struct rl_sess *rs, struct rl_result *r)
{
	const struct rl_policy *best = NULL;

	for (unsigned i = 0; i < rs->nslots; i++) {
		const struct rl_slot *slot = &rs->slot[i];

		if (slot->p->headers && slot->r.allowed && !slot->failed &&
		    (best == NULL || slot->r.remaining < r->remaining)) {
			best = slot->p;
			*r = slot->r;
		}
	}
	return best;
}

bool
rl_message(struct rl_sess *rs, const struct config_route *route, uint64_t now_us,
		const struct rl_policy **which)
{
	bool ok = true;

	for (unsigned i = 0; i < route->nrl; i++) {
		const struct rl_policy *p = route->rl[i];
		struct rl_result r;

		if (p->kind != RL_KIND_MESSAGES)
			continue;
		if (!rl_gcra(p, &rs->msg_tat[i], now_us, &r) && ok) {
			ok = false;
			*which = p;
		}
	}
	return ok;
}
