/*
 * Runtime state of pools: the balancer instance and the lock around it, and
 * each server's runtime state (server.h): exchanges in progress and the
 * weight it should get now.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "health.h"
#include "lb.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "sticky.h"
#include "util.h"

/* A pick's view lives on the stack up to this many servers. */
#define POOL_VIEW_STACK 64

/* Owned by its config generation (config_pool.rt). */
struct pool {
	pthread_mutex_t lock;
	const struct lb_ops *ops;
	void *state;
	struct server_rt *servers;	/* one per config server, by index */
	size_t nservers;
	/* 503s for want of a usable server: counted, and logged at most once
	 * a second (pool_note_unusable), not once per request. */
	atomic_ullong no_server;
	atomic_ullong no_server_logged;	/* the count when it was last logged */
	atomic_ullong no_server_log_ms;	/* when (util_now_us() / 1000) */
};

void
server_acquire(const struct config_server *srv)
{
	atomic_fetch_add_explicit(&srv->rt->load->active, 1, memory_order_relaxed);
}

void
server_release(const struct config_server *srv)
{
	atomic_fetch_sub_explicit(&srv->rt->load->active, 1, memory_order_relaxed);
}

unsigned
server_address(const struct config_server *srv, struct sockaddr_storage *ss, socklen_t *len)
{
	struct server_rt *rt = srv->rt;
	unsigned epoch;

	pthread_mutex_lock(&rt->addr_lock);
	memcpy(ss, &rt->addr, sizeof(*ss));
	*len = rt->addrlen;
	epoch = atomic_load_explicit(&rt->addr_epoch, memory_order_relaxed);
	pthread_mutex_unlock(&rt->addr_lock);
	return epoch;
}

void
server_set_address(const struct config_server *srv, const struct sockaddr *sa, socklen_t len)
{
	struct server_rt *rt = srv->rt;

	if (len > sizeof(rt->addr))
		return;
	pthread_mutex_lock(&rt->addr_lock);
	memset(&rt->addr, 0, sizeof(rt->addr));
	memcpy(&rt->addr, sa, len);
	rt->addrlen = len;
	atomic_fetch_add_explicit(&rt->addr_epoch, 1, memory_order_relaxed);
	pthread_mutex_unlock(&rt->addr_lock);
}

/*
 * Every writer of what weight_now depends on (presence, health, slow
 * start) comes through here; health.c, which keeps the health, computes it.
 */
void
server_refresh_weight(const struct config_server *srv)
{
	health_refresh_weight(srv);
}

bool
server_usable(const struct config_server *srv)
{
	return atomic_load_explicit(&srv->rt->weight_now, memory_order_relaxed) > 0;
}

static void
load_unref(struct server_load *l)
{
	if (l != NULL && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		free(l);
}

/*
 * The load counts of cs: those of the same server in prev when it lists
 * one (same pool and name, and the same address or the same host to
 * resolve), else new ones. NULL when out of memory.
 */
static struct server_load *
load_for(const struct config_pool *cp, const struct config_server *cs, const struct config *prev)
{
	const struct config_pool *pp = config_pool_find(prev, cp->name);
	struct server_load *l;

	for (size_t k = 0; pp != NULL && pp->rt != NULL && k < pp->nservers; k++) {
		const struct config_server *ps = &pp->servers[k];
		bool same_addr = cs->dns_name != NULL ?
			ps->dns_name != NULL && strcmp(ps->dns_name, cs->dns_name) == 0 &&
				ps->dns_port == cs->dns_port :
			ps->dns_name == NULL && util_addr_same(&ps->addr, &cs->addr);

		if (strcmp(ps->name, cs->name) != 0 || !same_addr)
			continue;
		l = ps->rt->load;
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
		return l;
	}
	l = malloc(sizeof(*l));
	if (l != NULL) {
		atomic_init(&l->active, 0);
		atomic_init(&l->refs, 1);
	}
	return l;
}

static void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	if (p->state != NULL)
		p->ops->destroy(p->state);
	for (size_t k = 0; p->servers != NULL && k < p->nservers; k++) {
		pthread_mutex_destroy(&p->servers[k].addr_lock);
		load_unref(p->servers[k].load);
	}
	free(p->servers);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void
pool_detach(struct config *cfg)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		pool_free(cfg->pools[i].rt);
		cfg->pools[i].rt = NULL;
	}
}

int
pool_attach(struct config *cfg, const struct config *prev)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *cp = &cfg->pools[i];
		struct pool *p;

		/* The cookie value naming each server, computed once here
		 * rather than per request. */
		for (size_t k = 0; cfg->sticky_key != NULL && k < cp->nservers; k++)
			if (sticky_token(cfg->sticky_key, cfg->sticky_key_len, cp->name,
					cp->servers[k].name, cp->servers[k].sticky_token) < 0)
				goto fail;
		p = calloc(1, sizeof(*p));

		if (p == NULL)
			goto fail;
		pthread_mutex_init(&p->lock, NULL);
		p->servers = calloc(cp->nservers ? cp->nservers : 1, sizeof(*p->servers));
		if (p->servers == NULL) {
			pool_free(p);
			goto fail;
		}
		p->nservers = cp->nservers;
		for (size_t k = 0; k < cp->nservers; k++) {
			struct server_rt *rt = &p->servers[k];
			const struct config_server *cs = &cp->servers[k];

			atomic_init(&rt->weight_now, cs->weight * SERVER_WEIGHT_SCALE);
			/* A slot of DNS discovery waits for an answer. */
			atomic_init(&rt->present, cs->dns_name == NULL);
			atomic_init(&rt->addr_epoch, 0);
			pthread_mutex_init(&rt->addr_lock, NULL);
			memcpy(&rt->addr, &cs->addr, sizeof(rt->addr));
			rt->addrlen = cs->addrlen;
			if ((rt->load = load_for(cp, cs, prev)) == NULL) {
				/* Only the servers up to k are set up. */
				p->nservers = k + 1;
				pool_free(p);
				goto fail;
			}
			cp->servers[k].rt = rt;
			server_refresh_weight(cs);
		}
		/* config_value.c accepted only names lb_find() knows. */
		p->ops = cp->balance != NULL ? lb_find(cp->balance) : &lb_rr_ops;
		if (p->ops == NULL) {
			pool_free(p);
			goto fail;
		}
		p->state = p->ops->create(&cfg->pools[i]);
		if (p->state == NULL) {
			pool_free(p);
			goto fail;
		}
		cfg->pools[i].rt = p;
	}
	cfg->on_free = pool_detach;
	return 0;
fail:
	pool_detach(cfg);
	return -1;
}

const struct config_server *
pool_pick(struct config_pool *pool, const unsigned *tried, size_t ntried, const char *key,
		size_t key_len)
{
	struct pool *p = pool->rt;
	const struct config_server *srv;
	struct lb_view stack[POOL_VIEW_STACK], *view = stack;
	struct lb_request req = {
		.tried = tried, .ntried = ntried, .key = key, .key_len = key_len,
	};

	if (p->nservers > POOL_VIEW_STACK) {
		view = malloc(p->nservers * sizeof(*view));
		if (view == NULL)
			return NULL;
	}
	/* A snapshot: counts move under other workers' feet, which a
	 * balancer's choice tolerates. */
	for (size_t i = 0; i < p->nservers; i++) {
		view[i].weight = atomic_load_explicit(&p->servers[i].weight_now, memory_order_relaxed);
		view[i].active = atomic_load_explicit(&p->servers[i].load->active,
			memory_order_relaxed);
	}
	req.view = view;
	pthread_mutex_lock(&p->lock);
	srv = p->ops->pick(p->state, &req);
	pthread_mutex_unlock(&p->lock);
	if (view != stack)
		free(view);
	return srv;
}

void
pool_note_unusable(struct config_pool *pool)
{
	struct pool *p = pool->rt;
	unsigned long long n = atomic_fetch_add(&p->no_server, 1) + 1;
	unsigned long long now = util_now_us() / 1000, last = atomic_load(&p->no_server_log_ms);

	/* One worker wins the second's log line; the others only count. now
	 * may be a little older than another worker's last (a clock held
	 * through a callback, util.h): compared so that it cannot wrap. */
	if ((last == 0 || now >= last + 1000) &&
	    atomic_compare_exchange_strong(&p->no_server_log_ms, &last, now)) {
		unsigned long long before = atomic_exchange(&p->no_server_logged, n);

		log_warn("pool %s: no usable server: 503 (%llu since the last such line, %llu in all)",
			pool->name, n - before, n);
	}
}

unsigned long long
pool_unusable_count(const struct config_pool *pool)
{
	return atomic_load(&pool->rt->no_server);
}

bool
pool_any_usable(const struct config_pool *pool)
{
	for (size_t i = 0; i < pool->nservers; i++)
		if (server_usable(&pool->servers[i]))
			return true;
	return false;
}
