/*
 * Opening server connections and caching idle keep-alive ones per worker
 * and server. A parked connection is watched: any byte or a close from the
 * server, or upstream_idle passing, closes it.
 */
#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "config-t.h"
#include "log.h"
#include "upstream.h"
#include "util.h"
#include "server.h"
#include "tls.h"
#include "worker.h"

struct upconn *
upstream_connect(struct worker *w, const struct config *gen, const struct config_server *srv,
		conn_data_cb readcb, conn_data_cb drainedcb, conn_event_cb eventcb, void *arg)
{
	struct upconn *up = calloc(1, sizeof(*up));
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (up == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	up->w = w;
	up->srv = srv;
	up->gen = gen;
	up->epoch = server_address(srv, &ss, &sslen);
	up->c = conn_connect(w->base, (const struct sockaddr *)&ss, sslen);
	if (up->c == NULL) {
		int err = errno;
		free(up);
		errno = err;
		return NULL;
	}
	if (srv->pool->tls != NULL) {
		SSL *ssl = tls_client_session_new(srv->pool->tls, srv);

		if (ssl == NULL || conn_tls_connect(up->c, ssl) < 0) {
			if (ssl != NULL)
				SSL_free(ssl);
			conn_free(up->c);
			free(up);
			errno = ENOMEM;
			return NULL;
		}
	}
	conn_setcb(up->c, readcb, drainedcb, eventcb, arg);
	return up;
}

static void
idle_unlink(struct upconn *up)
{
	struct worker *w = up->w;

	if (!up->idle)
		return;
	TAILQ_REMOVE(&w->idle[up->srv->gindex], up, link);
	w->nidle[up->srv->gindex]--;
	up->idle = false;
}

struct upconn *
upstream_take_idle(struct worker *w, const struct config *gen, const struct config_server *srv,
		conn_data_cb readcb, conn_data_cb drainedcb, conn_event_cb eventcb, void *arg)
{
	struct upconn *up;

	if (gen != w->cfg)
		return NULL;
	/* A connection whose close was read but not yet reported is no use,
	 * nor one to an address the server no longer has. */
	while ((up = TAILQ_FIRST(&w->idle[srv->gindex])) != NULL &&
	       (up->c->eof || up->c->failed ||
		up->epoch != atomic_load_explicit(&srv->rt->addr_epoch, memory_order_relaxed)))
		upstream_free(up);
	if (up == NULL)
		return NULL;
	idle_unlink(up);
	conn_setcb(up->c, readcb, drainedcb, eventcb, arg);
	up->reused = true;
	return up;
}

void
upstream_free(struct upconn *up)
{
	if (up == NULL)
		return;
	idle_unlink(up);
	if (up->c != NULL) {
		conn_free(up->c);
		up->c = NULL;
	}
	TAILQ_INSERT_TAIL(&up->w->idle_dead, up, link);
	event_active(up->w->reap_ev, EV_TIMEOUT, 0);
}

/* A parked connection spoke or closed: it cannot carry a request any more. */
static void
idle_read_cb(struct conn *c, void *arg)
{
	struct upconn *up = arg;

	(void)c;
	log_debug("idle connection to %s received unexpected data, closing",
		up->srv->address);
	upstream_free(up);
}

static void
idle_event_cb(struct conn *c, enum conn_event ev, void *arg)
{
	(void)c;
	(void)ev;
	upstream_free(arg);
}

void
upstream_release(struct upconn *up)
{
	struct worker *w = up->w;
	const struct config_server *srv = up->srv;

	if (w->stopping || up->gen != w->cfg || srv->pool->keepalive_max == 0 ||
	    up->c->eof || up->c->failed) {
		upstream_free(up);
		return;
	}
	up->uses++;
	conn_setcb(up->c, idle_read_cb, NULL, idle_event_cb, up);
	conn_read_enable(up->c);
	up->parked_us = util_now_us();
	TAILQ_INSERT_HEAD(&w->idle[srv->gindex], up, link);
	up->idle = true;
	if (++w->nidle[srv->gindex] > srv->pool->keepalive_max)
		upstream_free(TAILQ_LAST(&w->idle[srv->gindex], upconn_list));
}

void
upstream_close_idle(struct worker *w)
{
	for (size_t i = 0; i < w->cfg->nservers; i++) {
		struct upconn *up;

		while ((up = TAILQ_FIRST(&w->idle[i])) != NULL)
			upstream_free(up);
	}
}

void
upstream_sweep(struct worker *w)
{
	uint64_t now = util_now_us();
	uint64_t idle_us = (uint64_t)w->cfg->timeouts.upstream_idle_ms * 1000;

	for (size_t i = 0; i < w->cfg->nservers; i++) {
		struct upconn *up;

		/* Most recently parked first: the expired ones are at the tail. */
		while ((up = TAILQ_LAST(&w->idle[i], upconn_list)) != NULL &&
		       now - up->parked_us >= idle_us)
			upstream_free(up);
	}
}

void
upstream_reap(struct worker *w)
{
	struct upconn *up;

	while ((up = TAILQ_FIRST(&w->idle_dead)) != NULL) {
		TAILQ_REMOVE(&w->idle_dead, up, link);
		free(up);
	}
}
