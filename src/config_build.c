/*
 * Building a generation from the parsed tree: fills struct config from the
 * tables, then links and checks what spans sections (listener addresses,
 * pools, routes, rate limits, DNS slots, the sticky key, TLS contexts).
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <confuse.h>

#include "config-int.h"
#include "tls.h"
#include "util.h"

#define STICKY_KEY_RANDOM_LEN	32

/* ------------------------------------------------------------------ build */

static int build_section(struct load *ld, cfg_t *sec, const struct section_def *sd, void *obj);

static int
build_subsections(struct load *ld, cfg_t *sec, const struct opt_def *d, char *base)
{
	const struct section_def *sub = d->sub;
	size_t n;
	char *arr;

	if (!(sub->flags & SEC_TITLED)) {
		cfg_t *child = cfg_getsec(sec, d->name);

		/* libconfuse gives a section the file lacks its defaults; only
		 * ours records what was parsed. */
		if (d->flags & OPT_PRESENT)
			*(bool *)(base + d->aux) = config_sec_line(ld, child) != 0;
		return build_section(ld, child, sub, base + d->off);
	}
	n = cfg_size(sec, d->name);
	arr = n ? xcalloc(n, sub->size) : NULL;
	*(void **)(base + d->off) = arr;
	*(size_t *)(base + d->aux) = n;
	for (size_t i = 0; i < n; i++) {
		cfg_t *child = cfg_getnsec(sec, d->name, (unsigned)i);
		char *elem = arr + i * sub->size;

		*(char **)(elem + sub->name_off) = xstrdup(cfg_title(child));
		if (build_section(ld, child, sub, elem) < 0)
			return -1;
	}
	return 0;
}

/* Fill obj from sec, with the table's defaults for what the file omits. */
static int
build_section(struct load *ld, cfg_t *sec, const struct section_def *sd, void *obj)
{
	for (size_t i = 0; i < sd->nopts; i++) {
		const struct opt_def *d = &sd->opts[i];
		const char *text;
		struct opt_value v;
		char why[160];

		if (d->type == OPT_SECTION) {
			if (build_subsections(ld, sec, d, obj) < 0)
				return -1;
			continue;
		}
		text = config_opt_text(sec, d);
		if (text == NULL && d->compute != NULL) {
			memset(&v, 0, sizeof(v));
			v.n = d->compute();
			config_value_store(d, &v, obj);
			continue;
		}
		if (text == NULL)
			continue;	/* required: config_check_section() saw to it */
		if (config_value_convert(d, text, &v, why, sizeof(why)) < 0) {
			/* Values were checked while parsing: only a bad
			 * default in the tables can get here. */
			if (d->type == OPT_SECRET)
				config_load_error(ld, config_where(ld, sec, d->name), sec, "%s", why);
			else
				config_load_error(ld, config_where(ld, sec, d->name), sec,
					"invalid %s \"%s\" (%s)", d->name, text, why);
			return -1;
		}
		config_value_store(d, &v, obj);
	}
	return 0;
}

static int
link_listeners(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		for (size_t j = 0; j < i; j++) {
			if (!util_addr_same(&cfg->listeners[i].addr, &cfg->listeners[j].addr))
				continue;
			cfg_t *sec = cfg_getnsec(ld->root, "listener", (unsigned)i);

			config_load_error(ld, config_where(ld, sec, "address"), sec,
				"address \"%s\" is already used by listener \"%s\"",
				cfg->listeners[i].address, cfg->listeners[j].name);
			return -1;
		}
	return 0;
}

/* Whether another server of pool p than skip is called name. */
static bool
pool_has_server(const struct config_pool *p, size_t skip, const char *name)
{
	for (size_t j = 0; j < p->nservers; j++)
		if (j != skip && strcmp(p->servers[j].name, name) == 0)
			return true;
	return false;
}

/*
 * Check a server of pool p as written, at index j of section sec: the DNS
 * discovery directives go with a host name only, and the names of its slots
 * must fit and be free.
 */
static int
check_named(struct load *ld, cfg_t *sec, const struct config_pool *p, size_t j)
{
	static const char *const dns_only[] = {
		"resolve_interval", "max_addresses", "resolve_family",
	};
	const struct config_server *cs = &p->servers[j];
	unsigned n = cs->max_addresses ? cs->max_addresses : p->max_addresses;
	char slot[MAX_NAME_LEN + 16];
	int at;

	if (cs->addrlen != 0) {
		for (size_t i = 0; i < ARRAY_LEN(dns_only); i++)
			if ((at = config_opt_line(ld, sec, dns_only[i])) != 0) {
				config_load_error(ld, at, sec, "%s is set but the address is not a host name",
					dns_only[i]);
				return -1;
			}
		return 0;
	}
	snprintf(slot, sizeof(slot), "%s-%u", cs->name, n);
	if (strlen(slot) > MAX_NAME_LEN) {
		config_load_error(ld, config_sec_line(ld, sec), sec, "name too long for the names of its "
			"addresses (\"%s\" is over %d characters)", slot, MAX_NAME_LEN);
		return -1;
	}
	for (unsigned k = 1; k <= n; k++) {
		snprintf(slot, sizeof(slot), "%s-%u", cs->name, k);
		if (pool_has_server(p, j, slot)) {
			config_load_error(ld, config_sec_line(ld, sec), sec, "its addresses are named "
				"%s-1 to %s-%u, and server \"%s\" exists", cs->name, cs->name, n, slot);
			return -1;
		}
	}
	return 0;
}

/*
 * A server whose address names a host becomes max_addresses slots in its
 * place, "NAME-1" to "NAME-N", with its settings and no address: DNS
 * discovery (dns.c) fills them at run time. Fixed slots keep every index
 * stable while answers change, which the balancers, the per-worker idle
 * lists and the sticky tokens rely on.
 */
static int
expand_named(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];
		cfg_t *psec = cfg_getnsec(ld->root, "pool", (unsigned)i);
		struct config_server *out;
		size_t n = 0, o = 0;

		for (size_t j = 0; j < p->nservers; j++) {
			const struct config_server *cs = &p->servers[j];

			if (check_named(ld, cfg_getnsec(psec, "server", (unsigned)j), p, j) < 0)
				return -1;
			n += cs->addrlen != 0 ? 1 : (cs->max_addresses ? cs->max_addresses : p->max_addresses);
		}
		if (n == p->nservers)
			continue;
		out = xcalloc(n, sizeof(*out));
		for (size_t j = 0; j < p->nservers; j++) {
			struct config_server *cs = &p->servers[j];
			const char *colon;

			if (cs->addrlen != 0) {
				out[o++] = *cs;
				continue;
			}
			if (cs->max_addresses == 0)
				cs->max_addresses = p->max_addresses;
			if (cs->resolve_interval_ms == 0)
				cs->resolve_interval_ms = p->resolve_interval_ms;
			if (cs->resolve_family == CONFIG_FAMILY_POOL)
				cs->resolve_family = p->resolve_family;
			/* The value was checked as HOST:PORT. */
			colon = strrchr(cs->address, ':');
			cs->dns_port = (unsigned)strtoul(colon + 1, NULL, 10);
			cs->dns_name = xstrndup(cs->address, (size_t)(colon - cs->address));
			for (char *c = cs->dns_name; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			/* Without a name to check, TLS would verify the IP
			 * address, which a discovered server's certificate
			 * is unlikely to hold; the host name is what it was
			 * reached by. */
			if (p->tls_on && cs->tls_server_name == NULL && p->tls_server_name == NULL)
				cs->tls_server_name = xstrdup(cs->dns_name);
			for (unsigned k = 1; k <= cs->max_addresses; k++) {
				struct config_server *slot = &out[o++];
				char name[MAX_NAME_LEN + 16];

				*slot = *cs;
				snprintf(name, sizeof(name), "%s-%u", cs->name, k);
				slot->name = xstrdup(name);
				slot->address = xstrdup(cs->address);
				slot->dns_name = xstrdup(cs->dns_name);
				slot->tls_server_name = cs->tls_server_name != NULL ?
					xstrdup(cs->tls_server_name) : NULL;
				slot->dns_slot = k;
			}
			free(cs->name);
			free(cs->address);
			free(cs->dns_name);
			free(cs->tls_server_name);
		}
		free(p->servers);
		p->servers = out;
		p->nservers = n;
	}
	return 0;
}

static void
link_pools(struct config *cfg)
{
	unsigned gindex = 0;

	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];

		p->index = (unsigned)i;
		/* The check's default target depends on its type. */
		if (p->health_on && p->health.path == NULL)
			p->health.path = xstrdup(p->health.type == CONFIG_CHECK_SOCKETIO ?
				"/socket.io/" : "/");
		for (size_t j = 0; j < p->nservers; j++) {
			p->servers[j].index = (unsigned)j;
			p->servers[j].gindex = gindex++;
			p->servers[j].pool = p;
		}
	}
	cfg->nservers = gindex;
}

/*
 * Match order: exact hosts, then suffixes longest first, then "*"; within
 * one host, longest path first. config_route_match() takes the first route
 * that matches both, which gives the documented precedence.
 */
static int
route_order(const void *pa, const void *pb)
{
	const struct config_route *a = pa, *b = pb;
	int c;

	if (a->host_kind != b->host_kind)
		return a->host_kind > b->host_kind ? -1 : 1;
	if (a->host_len != b->host_len)
		return a->host_len > b->host_len ? -1 : 1;
	if ((c = strcmp(a->host, b->host)) != 0)
		return c;
	if (a->path_len != b->path_len)
		return a->path_len > b->path_len ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int
link_routes(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct config_route *r = &cfg->routes[i];
		cfg_t *sec = cfg_getnsec(ld->root, "route", (unsigned)i);

		r->index = (unsigned)i;
		if ((r->pool = config_pool_find(cfg, r->pool_name)) == NULL) {
			config_load_error(ld, config_where(ld, sec, "pool"), sec, "unknown pool \"%s\"",
				r->pool_name);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			const struct config_route *o = &cfg->routes[j];

			if (o->host_kind == r->host_kind && strcmp(o->host, r->host) == 0 &&
			    strcmp(o->path, r->path) == 0) {
				config_load_error(ld, config_sec_line(ld, sec), sec,
					"same host and path as route \"%s\"", o->name);
				return -1;
			}
		}
	}
	if (cfg->nroutes > 1)
		qsort(cfg->routes, cfg->nroutes, sizeof(*cfg->routes), route_order);
	return 0;
}

/*
 * Derive each policy's GCRA constants, and resolve the ratelimit names of
 * each route (in file order: before link_routes sorts them).
 */
static int
link_ratelimits(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		struct rl_policy *p = &cfg->ratelimits[i];

		p->index = (unsigned)i;
		p->t_us = (uint64_t)p->per_s * 1000000 / p->rate;
		p->tau_us = p->t_us * p->burst;
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct config_route *r = &cfg->routes[i];
		cfg_t *sec = cfg_getnsec(ld->root, "route", (unsigned)i);
		const char *s = r->ratelimit_names;
		int at = config_where(ld, sec, "ratelimit");

		while (s != NULL && *s) {
			size_t n = strcspn(s, " \t,"), k;

			if (n == 0) {
				s++;
				continue;
			}
			for (k = 0; k < cfg->nratelimits; k++)
				if (strlen(cfg->ratelimits[k].name) == n &&
				    memcmp(cfg->ratelimits[k].name, s, n) == 0)
					break;
			if (k == cfg->nratelimits) {
				config_load_error(ld, at, sec, "unknown ratelimit \"%.*s\"", (int)n, s);
				return -1;
			}
			for (unsigned j = 0; j < r->nrl; j++)
				if (r->rl[j] == &cfg->ratelimits[k]) {
					config_load_error(ld, at, sec, "ratelimit \"%.*s\" listed twice",
						(int)n, s);
					return -1;
				}
			if (r->nrl == CONFIG_ROUTE_MAX_RL) {
				config_load_error(ld, at, sec, "more than %d ratelimits", CONFIG_ROUTE_MAX_RL);
				return -1;
			}
			r->rl[r->nrl++] = &cfg->ratelimits[k];
			r->rl_kinds |= RL_KINDS_BIT(cfg->ratelimits[k].kind);
			s += n;
		}
	}
	return 0;
}

/* Fill buf from the kernel's CSPRNG; 0 or -1 with errno set. */
static int
random_bytes(unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t got = getrandom(buf, len, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		buf += got;
		len -= (size_t)got;
	}
	return 0;
}

/*
 * Cookie stickiness without a sticky_key: sign with a random key. It is
 * drawn once per process and reused by every later load, so that a reload
 * does not invalidate the cookies clients hold; a restart does, and so does
 * running several replicas, which is why main.c warns about it.
 */
static int
fill_sticky_key(struct load *ld, struct config *cfg)
{
	static unsigned char process_key[STICKY_KEY_RANDOM_LEN];
	static bool process_key_set;	/* loading is main-thread only */
	bool cookies = false;

	for (size_t i = 0; i < cfg->nroutes; i++)
		cookies |= (cfg->routes[i].sticky & CONFIG_STICKY_COOKIE) != 0;
	if (cfg->sticky_key != NULL || !cookies)
		return 0;
	if (!process_key_set) {
		if (random_bytes(process_key, sizeof(process_key)) < 0) {
			config_load_error(ld, 0, NULL, "getrandom() failed for the sticky cookie key: %s",
				strerror(errno));
			return -1;
		}
		process_key_set = true;
	}
	cfg->sticky_key = xcalloc(1, sizeof(process_key));
	memcpy(cfg->sticky_key, process_key, sizeof(process_key));
	cfg->sticky_key_len = sizeof(process_key);
	cfg->sticky_key_random = true;
	return 0;
}

/*
 * Build the TLS contexts the generation owns: `sluice -t` thereby checks
 * every certificate, key and ticket key file. An error points at the line
 * of the directive it is about.
 */
static int
link_tls(struct load *ld, struct config *cfg)
{
	struct tls_error terr;

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];
		cfg_t *sec;

		if (!l->tls_enabled)
			continue;
		memset(&terr, 0, sizeof(terr));
		if ((l->tls = tls_server_new(l, &terr)) != NULL)
			continue;
		sec = cfg_getsec(cfg_getnsec(ld->root, "listener", (unsigned)i), "tls");
		if (terr.cert >= 0 && (unsigned)terr.cert < cfg_size(sec, "certificate"))
			sec = cfg_getnsec(sec, "certificate", (unsigned)terr.cert);
		config_load_error(ld, config_where(ld, sec, terr.directive ? terr.directive : ""), sec,
			"%s", terr.msg);
		return -1;
	}
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];
		cfg_t *sec;

		if (!p->tls_on)
			continue;
		memset(&terr, 0, sizeof(terr));
		if ((p->tls = tls_client_new(p, &terr)) != NULL)
			continue;
		sec = cfg_getnsec(ld->root, "pool", (unsigned)i);
		config_load_error(ld, config_where(ld, sec, terr.directive ? terr.directive : ""), sec,
			"%s", terr.msg);
		return -1;
	}
	return 0;
}

struct config *
config_build(struct load *ld)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	atomic_init(&cfg->refcnt, 1);
	cfg->file = xstrdup(ld->file);
	if (config_check_section(ld, ld->root, &config_table_root, 0) < 0 ||
	    build_section(ld, ld->root, &config_table_root, cfg) < 0 ||
	    link_listeners(ld, cfg) < 0 ||
	    link_ratelimits(ld, cfg) < 0 ||
	    link_routes(ld, cfg) < 0 ||
	    fill_sticky_key(ld, cfg) < 0 ||
	    expand_named(ld, cfg) < 0) {
		config_destroy(cfg);
		return NULL;
	}
	link_pools(cfg);
	if (link_tls(ld, cfg) < 0) {
		config_destroy(cfg);
		return NULL;
	}
	if (cfg->limits.max_uri >= cfg->limits.max_header_size)
		cfg->limits.max_uri = cfg->limits.max_header_size - 1;
	return cfg;
}
