/*
 * Runtime state of pools: the balancer instance and the lock around it.
 * Server health and weights that change at runtime will live here too.
 */
#include <pthread.h>
#include <stdlib.h>

#include "config-t.h"
#include "lb.h"
#include "pool.h"
#include "sticky.h"

/* Owned by its config generation (config_pool.rt). */
struct pool {
	pthread_mutex_t lock;
	const struct lb_ops *ops;
	void *state;
};

static void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	if (p->state != NULL)
		p->ops->destroy(p->state);
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
pool_attach(struct config *cfg)
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
		p->ops = &lb_rr_ops;
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
pool_pick(struct config_pool *pool, const unsigned *tried, size_t ntried)
{
	struct pool *p = pool->rt;
	const struct config_server *srv;

	pthread_mutex_lock(&p->lock);
	srv = p->ops->pick(p->state, tried, ntried);
	pthread_mutex_unlock(&p->lock);
	return srv;
}
