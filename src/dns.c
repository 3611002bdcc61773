/*
 * DNS discovery: resolves the host of every server group (a server whose
 * address names a host, loaded by config_build.c as max_addresses slots) with
 * evdns on the main thread's loop, and fills, keeps and empties the slots
 * from the answers. Owns the evdns base, and a timer, the slot view and the
 * queries of each group. Workers see only the result: server_address() and
 * weight_now (server.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "util.h"

enum { QUERY_A = 0, QUERY_AAAA, NQUERIES };

struct dns_group;

/*
 * One question in flight. Owned by its evdns request until the callback,
 * which frees it; when its group goes away first (a reload), group is set
 * to NULL and the callback only frees it.
 */
struct dns_query {
	struct dns_group *group;
	int kind;			/* QUERY_A or QUERY_AAAA */
};

/* The slots of one server that names a host, in the current generation. */
struct dns_group {
	const struct config_server *first;	/* slot 1; the group is first[0..nslots) */
	size_t nslots;
	struct dns_slot *slots;		/* what the answers made of the slots */
	struct dns_slot *before;	/* scratch: slots before an answer, for the log */
	enum dns_change *changes;	/* scratch for dns_assign() */
	struct event *timer;		/* the next round of queries */
	struct dns_query *queries[NQUERIES];	/* in flight, or NULL */
	struct evdns_request *reqs[NQUERIES];
	struct dns_addr *got;		/* addresses of this round's answers */
	size_t ngot, capgot;
	int error;			/* first failure of this round (DNS_ERR_*); 0: none */
	bool failing;			/* a failure was logged; cleared by an answer */
	bool overflow;			/* too many addresses was logged; cleared when they fit */
	bool empty;			/* an empty answer was logged; cleared by addresses */
};

/* The module's state; main thread only. */
static struct {
	struct event_base *base;
	struct evdns_base *evdns;	/* created when a first group needs it */
	char *resolvers;		/* what evdns asks now: the directive, or "" for resolv.conf */
	struct config *cfg;		/* the generation whose slots are filled (a reference) */
	struct dns_group *groups;
	size_t ngroups;
} dns;

/* ------------------------------------------------------------ assignment */

static bool
addr_eq(const struct dns_addr *a, const struct dns_addr *b)
{
	return a->family == b->family &&
		memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

/* The slot for a new address: never used, else free before this answer,
 * else freed by it; nslots when none is free. */
static size_t
free_slot(const struct dns_slot *slots, size_t nslots, const enum dns_change *changes)
{
	size_t before = nslots, now = nslots;

	for (size_t i = 0; i < nslots; i++) {
		if (slots[i].present)
			continue;
		if (!slots[i].used)
			return i;
		if (changes[i] == DNS_REMOVE) {
			if (now == nslots)
				now = i;
		} else if (before == nslots) {
			before = i;
		}
	}
	/* A slot this very answer frees goes last: should its address be
	 * missing from one answer only, it finds its slot again, and the
	 * clients whose cookie names the slot are not sent to another server
	 * under that name at once. */
	return before != nslots ? before : now;
}

size_t
dns_assign(struct dns_slot *slots, size_t nslots, const struct dns_addr *addrs,
		size_t naddrs, enum dns_change *changes)
{
	size_t extra = 0;

	for (size_t i = 0; i < nslots; i++) {
		bool kept = false;

		changes[i] = DNS_SAME;
		for (size_t a = 0; slots[i].present && a < naddrs && !kept; a++)
			kept = addr_eq(&slots[i].addr, &addrs[a]);
		if (slots[i].present && !kept) {
			slots[i].present = false;
			changes[i] = DNS_REMOVE;
		}
	}
	for (size_t a = 0; a < naddrs; a++) {
		size_t pick = nslots;
		bool seen = false;

		for (size_t b = 0; b < a && !seen; b++)
			seen = addr_eq(&addrs[a], &addrs[b]);
		for (size_t i = 0; i < nslots && !seen; i++)
			seen = slots[i].present && addr_eq(&slots[i].addr, &addrs[a]);
		if (seen)
			continue;
		for (size_t i = 0; i < nslots && pick == nslots; i++)
			if (!slots[i].present && slots[i].used && addr_eq(&slots[i].addr, &addrs[a]))
				pick = i;
		if (pick != nslots) {
			slots[pick].present = true;
			changes[pick] = DNS_BACK;
			continue;
		}
		pick = free_slot(slots, nslots, changes);
		if (pick == nslots) {
			extra++;
			continue;
		}
		changes[pick] = changes[pick] == DNS_REMOVE ? DNS_REPLACE : DNS_ADD;
		slots[pick].present = true;
		slots[pick].used = true;
		slots[pick].addr = addrs[a];
	}
	return extra;
}

/* ---------------------------------------------------------------- slots */

static socklen_t
slot_sockaddr(const struct dns_group *g, const struct dns_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)g->first->dns_port);
		memcpy(&sin->sin_addr, a->bytes, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)g->first->dns_port);
	memcpy(&sin6->sin6_addr, a->bytes, 16);
	return sizeof(*sin6);
}

static const char *
slot_text(const struct dns_group *g, const struct dns_addr *a, char *buf, size_t len)
{
	struct sockaddr_storage ss;

	slot_sockaddr(g, a, &ss);
	return util_addr_format((const struct sockaddr *)&ss, buf, len, 1);
}

/* Make slot i of g what g->slots[i] says, for the workers. */
static void
slot_publish(const struct dns_group *g, size_t i, bool new_address)
{
	const struct config_server *srv = &g->first[i];
	struct sockaddr_storage ss;
	socklen_t len;

	/* The address goes first: a worker that sees the weight must find
	 * the address that goes with it. */
	if (new_address) {
		len = slot_sockaddr(g, &g->slots[i].addr, &ss);
		server_set_address(srv, (const struct sockaddr *)&ss, len);
	}
	atomic_store_explicit(&srv->rt->present, g->slots[i].present, memory_order_relaxed);
	server_refresh_weight(srv);
}

static void
group_apply(struct dns_group *g)
{
	const char *pool = g->first->pool->name;
	char a[UTIL_ADDR_LEN], b[UTIL_ADDR_LEN];
	size_t extra, npresent = 0;
	bool had = false;

	memcpy(g->before, g->slots, g->nslots * sizeof(*g->slots));
	for (size_t i = 0; i < g->nslots; i++)
		had |= g->slots[i].present;
	extra = dns_assign(g->slots, g->nslots, g->got, g->ngot, g->changes);
	for (size_t i = 0; i < g->nslots; i++) {
		const char *name = g->first[i].name;

		npresent += g->slots[i].present;
		switch (g->changes[i]) {
		case DNS_SAME:
			break;
		case DNS_REPLACE:
			log_info("%s/%s removed: %s", pool, name, slot_text(g, &g->before[i].addr, b, sizeof(b)));
			/* fall through */
		case DNS_ADD:
		case DNS_BACK:
			slot_publish(g, i, g->changes[i] != DNS_BACK);
			log_info("%s/%s added: %s", pool, name, slot_text(g, &g->slots[i].addr, a, sizeof(a)));
			break;
		case DNS_REMOVE:
			slot_publish(g, i, false);
			log_info("%s/%s removed: %s", pool, name, slot_text(g, &g->slots[i].addr, a, sizeof(a)));
			break;
		}
	}
	/* g->first is slot 1, "NAME-1": the server as written is NAME. */
	if (extra > 0 && !g->overflow)
		log_warn("pool %s: %s has %zu more address%s than the %zu slots of server \"%.*s\" "
			"(max_addresses): %s no traffic", pool, g->first->dns_name, extra,
			extra == 1 ? "" : "es", g->nslots,
			(int)(strlen(g->first->name) - 2), g->first->name,
			extra == 1 ? "it gets" : "they get");
	g->overflow = extra > 0;
	if (npresent == 0 && had && !g->empty)
		log_warn("pool %s: %s resolves to no address now", pool, g->first->dns_name);
	g->empty = npresent == 0;
}

/* -------------------------------------------------------------- queries */

static const char *
error_text(int err)
{
	const char *s = evdns_err_to_string(err);

	return s != NULL ? s : "unknown error";
}

static void
group_schedule(struct dns_group *g, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (event_add(g->timer, &tv) < 0)
		log_error("dns: event_add() failed: %s is no longer resolved", g->first->dns_name);
}

/* Both answers are in (or could not be asked): act on them, then wait. */
static void
group_round_end(struct dns_group *g)
{
	const char *pool = g->first->pool->name;

	if (g->error != 0) {
		size_t n = 0;

		for (size_t i = 0; i < g->nslots; i++)
			n += g->slots[i].present;
		/* A resolver that is down says nothing about the servers:
		 * they stay. */
		if (!g->failing)
			log_warn("pool %s: resolving %s failed (%s); its %zu current address%s stay%s",
				pool, g->first->dns_name, error_text(g->error), n,
				n == 1 ? "" : "es", n == 1 ? "s" : "");
		g->failing = true;
	} else {
		if (g->failing)
			log_info("pool %s: resolving %s works again", pool, g->first->dns_name);
		g->failing = false;
		group_apply(g);
	}
	group_schedule(g, g->first->resolve_interval_ms);
}

static void
group_add_addr(struct dns_group *g, int family, const void *bytes)
{
	struct dns_addr *a;

	if (g->ngot == g->capgot) {
		size_t cap = g->capgot ? g->capgot * 2 : 16;
		struct dns_addr *got = realloc(g->got, cap * sizeof(*got));

		/* Short of memory, the round fails and the slots stay. */
		if (got == NULL) {
			if (g->error == 0)
				g->error = DNS_ERR_UNKNOWN;
			return;
		}
		g->got = got;
		g->capgot = cap;
	}
	a = &g->got[g->ngot++];
	memset(a, 0, sizeof(*a));
	a->family = family;
	memcpy(a->bytes, bytes, family == AF_INET ? 4 : 16);
}

static void
answer_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct dns_query *q = arg;
	struct dns_group *g = q->group;
	int kind = q->kind;

	(void)ttl;
	free(q);
	if (g == NULL)
		return;		/* its group went away with a reload */
	g->queries[kind] = NULL;
	g->reqs[kind] = NULL;
	if (result == DNS_ERR_NONE) {
		for (int i = 0; i < count && type == DNS_IPv4_A; i++)
			group_add_addr(g, AF_INET, (const uint32_t *)addresses + i);
		for (int i = 0; i < count && type == DNS_IPv6_AAAA; i++)
			group_add_addr(g, AF_INET6, (const struct in6_addr *)addresses + i);
	} else if (result != DNS_ERR_NOTEXIST && result != DNS_ERR_NODATA && g->error == 0) {
		/* NXDOMAIN and an empty answer are answers: no address.
		 * Anything else (timeout, SERVFAIL, refused) is not. */
		g->error = result;
	}
	if (g->queries[QUERY_A] == NULL && g->queries[QUERY_AAAA] == NULL)
		group_round_end(g);
}

static void
group_ask(struct dns_group *g, int kind)
{
	struct dns_query *q = calloc(1, sizeof(*q));
	struct evdns_request *req = NULL;

	if (q != NULL) {
		q->group = g;
		q->kind = kind;
		if (kind == QUERY_A)
			req = evdns_base_resolve_ipv4(dns.evdns, g->first->dns_name, 0, answer_cb, q);
		else
			req = evdns_base_resolve_ipv6(dns.evdns, g->first->dns_name, 0, answer_cb, q);
	}
	if (req == NULL) {
		free(q);
		if (g->error == 0)
			g->error = DNS_ERR_UNKNOWN;
		return;
	}
	g->queries[kind] = q;
	g->reqs[kind] = req;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_group *g = arg;
	enum config_family fam = g->first->resolve_family;

	(void)fd;
	(void)what;
	g->ngot = 0;
	g->error = 0;
	if (fam != CONFIG_FAMILY_IPV6)
		group_ask(g, QUERY_A);
	if (fam != CONFIG_FAMILY_IPV4)
		group_ask(g, QUERY_AAAA);
	/* evdns answers later, never from inside a resolve call; if no
	 * question could leave, the round ends now. */
	if (g->queries[QUERY_A] == NULL && g->queries[QUERY_AAAA] == NULL)
		group_round_end(g);
}

/* ------------------------------------------------------------- resolver */

/* evdns's own messages: the state changes that matter are logged above. */
static void
evdns_log_cb(int is_warning, const char *msg)
{
	(void)is_warning;
	(void)msg;
	log_debug("dns: %s", msg);
}

/* Point evdns at cfg's resolvers, creating it first if need be. */
static int
resolver_setup(const struct config *cfg)
{
	const char *want = cfg->resolvers != NULL ? cfg->resolvers : "";
	bool fresh = dns.evdns == NULL;
	int rc;

	if (!fresh && dns.resolvers != NULL && strcmp(dns.resolvers, want) == 0)
		return 0;
	if (fresh) {
		evdns_set_log_fn(evdns_log_cb);
		dns.evdns = evdns_base_new(dns.base, 0);
		if (dns.evdns == NULL) {
			log_error("dns: evdns_base_new() failed");
			return -1;
		}
	} else {
		/* Queries in flight wait, then go to the new servers. */
		evdns_base_clear_nameservers_and_suspend(dns.evdns);
		evdns_base_search_clear(dns.evdns);
	}
	free(dns.resolvers);
	dns.resolvers = strdup(want);
	if (dns.resolvers == NULL) {
		log_error("dns: out of memory");
		return -1;
	}
	if (want[0] != '\0') {
		static const char sep[] = " \t,";

		for (const char *s = want + strspn(want, sep); *s != '\0'; s += strspn(s, sep)) {
			size_t n = strcspn(s, sep);
			char tok[128];

			snprintf(tok, sizeof(tok), "%.*s", (int)n, s);
			if (evdns_base_nameserver_ip_add(dns.evdns, tok) != 0)
				log_error("dns: resolver %s cannot be used", tok);
			s += n;
		}
	} else {
		/* As the system's resolver does: its servers, search list,
		 * ndots, timeout and attempts. */
		rc = evdns_base_resolv_conf_parse(dns.evdns,
			DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH | DNS_OPTION_MISC,
			"/etc/resolv.conf");
		if (rc != 0)
			log_warn("dns: /etc/resolv.conf %s; asking 127.0.0.1",
				rc == 6 ? "lists no nameserver" : "cannot be read");
	}
	if (!fresh)
		evdns_base_resume(dns.evdns);
	return 0;
}

/* --------------------------------------------------------------- groups */

/*
 * Free g and what it owns. Its queries in flight are cancelled; their
 * callback still comes (DNS_ERR_CANCEL, or the answer it had already got)
 * and frees them. At exit, with the evdns base already freed, they are
 * freed here (dropped: the base freed their requests without calling back).
 */
static void
group_free(struct dns_group *g, bool dropped)
{
	for (int k = 0; k < NQUERIES; k++) {
		if (g->queries[k] == NULL)
			continue;
		if (dropped) {
			free(g->queries[k]);
		} else {
			g->queries[k]->group = NULL;
			evdns_cancel_request(dns.evdns, g->reqs[k]);
		}
		g->queries[k] = NULL;
	}
	if (g->timer != NULL)
		event_free(g->timer);
	free(g->slots);
	free(g->before);
	free(g->changes);
	free(g->got);
}

static void
groups_free(struct dns_group *groups, size_t n, bool dropped)
{
	for (size_t i = 0; i < n; i++)
		group_free(&groups[i], dropped);
	free(groups);
}

/* The group in groups[0..n) that slot 1 of a group of cfg continues, or NULL. */
static const struct dns_group *
group_before(const struct dns_group *groups, size_t n, const struct config_server *first)
{
	for (size_t i = 0; i < n; i++) {
		const struct config_server *o = groups[i].first;

		if (strcmp(o->pool->name, first->pool->name) == 0 &&
		    strcmp(o->name, first->name) == 0 &&
		    strcmp(o->dns_name, first->dns_name) == 0 && o->dns_port == first->dns_port)
			return &groups[i];
	}
	return NULL;
}

/* Build the groups of cfg, carrying the slots over from the running ones. */
static int
install(struct config *cfg)
{
	struct dns_group *groups;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < cfg->npools; i++)
		for (size_t j = 0; j < cfg->pools[i].nservers; j++)
			n += cfg->pools[i].servers[j].dns_slot == 1;
	if (n > 0 && resolver_setup(cfg) < 0)
		return -1;
	groups = calloc(n ? n : 1, sizeof(*groups));
	if (groups == NULL)
		goto oom;
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct config_pool *p = &cfg->pools[i];

		for (size_t j = 0; j < p->nservers; j++) {
			struct dns_group *g = &groups[k];
			const struct dns_group *old;

			if (p->servers[j].dns_slot != 1)
				continue;
			k++;
			g->first = &p->servers[j];
			g->nslots = g->first->max_addresses;
			g->slots = calloc(g->nslots, sizeof(*g->slots));
			g->before = calloc(g->nslots, sizeof(*g->before));
			g->changes = calloc(g->nslots, sizeof(*g->changes));
			g->timer = evtimer_new(dns.base, timer_cb, g);
			if (g->slots == NULL || g->before == NULL || g->changes == NULL ||
			    g->timer == NULL) {
				groups_free(groups, k, false);
				goto oom;
			}
			old = group_before(dns.groups, dns.ngroups, g->first);
			if (old == NULL) {
				group_schedule(g, 0);
				continue;
			}
			/* Slot by slot (same name, same host): a reload does
			 * not empty the pool until the next answer. */
			for (size_t s = 0; s < g->nslots && s < old->nslots; s++) {
				g->slots[s] = old->slots[s];
				if (g->slots[s].used)
					slot_publish(g, s, true);
			}
			g->failing = old->failing;
			g->overflow = old->overflow;
			g->empty = old->empty;
			group_schedule(g, g->first->resolve_interval_ms);
		}
	}
	groups_free(dns.groups, dns.ngroups, false);
	dns.groups = groups;
	dns.ngroups = n;
	config_unref(dns.cfg);
	dns.cfg = config_ref(cfg);
	return 0;
oom:
	log_error("dns: out of memory");
	return -1;
}

/* ---------------------------------------------------------------- public */

int
dns_start(struct event_base *base, struct config *cfg)
{
	dns.base = base;
	return install(cfg);
}

void
dns_reload(struct config *prev, struct config *next)
{
	(void)prev;	/* the running groups are prev's */
	if (dns.base == NULL)
		return;
	if (install(next) < 0) {
		/* The new generation's named servers stay empty; the old
		 * groups go, since their slots are no longer used. */
		log_error("dns: discovery stopped after the reload; restart sluice");
		groups_free(dns.groups, dns.ngroups, false);
		dns.groups = NULL;
		dns.ngroups = 0;
	}
}

void
dns_stop(void)
{
	/* Without fail_requests, evdns frees its requests without calling
	 * back: nothing runs after this, and the groups free the queries. */
	if (dns.evdns != NULL)
		evdns_base_free(dns.evdns, 0);
	dns.evdns = NULL;
	groups_free(dns.groups, dns.ngroups, true);
	dns.groups = NULL;
	dns.ngroups = 0;
	free(dns.resolvers);
	dns.resolvers = NULL;
	config_unref(dns.cfg);
	dns.cfg = NULL;
	dns.base = NULL;
}
