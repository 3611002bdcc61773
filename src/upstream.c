/*
 * Opening server connections and caching idle keep-alive ones per worker
 * and server. A parked connection is watched: any byte or a close from the
 * server, or upstream_idle passing, closes it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config-t.h"
#include "log.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

struct upconn *
upstream_connect(struct worker *w, const struct config_server *srv,
		bufferevent_data_cb readcb, bufferevent_data_cb writecb,
		bufferevent_event_cb eventcb, void *arg)
{
	struct upconn *up;
	int fd, one = 1;

	fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	/* Heads and small bodies go out in separate writes; do not let Nagle
	 * hold the second behind the first's ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	up = calloc(1, sizeof(*up));
	if (up == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	up->w = w;
	up->srv = srv;
	up->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (up->bev == NULL) {
		close(fd);
		free(up);
		errno = ENOMEM;
		return NULL;
	}
	bufferevent_setcb(up->bev, readcb, writecb, eventcb, arg);
	if (bufferevent_socket_connect(up->bev, (const struct sockaddr *)&srv->addr,
			(int)srv->addrlen) < 0) {
		int err = errno;
		bufferevent_free(up->bev);
		free(up);
		errno = err ? err : ECONNREFUSED;
		return NULL;
	}
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
upstream_take_idle(struct worker *w, const struct config_server *srv,
		bufferevent_data_cb readcb, bufferevent_data_cb writecb,
		bufferevent_event_cb eventcb, void *arg)
{
	struct upconn *up = TAILQ_FIRST(&w->idle[srv->gindex]);

	if (up == NULL)
		return NULL;
	idle_unlink(up);
	bufferevent_set_timeouts(up->bev, NULL, NULL);
	bufferevent_setcb(up->bev, readcb, writecb, eventcb, arg);
	up->reused = true;
	return up;
}

void
upstream_free(struct upconn *up)
{
	if (up == NULL)
		return;
	idle_unlink(up);
	if (up->bev != NULL) {
		bufferevent_free(up->bev);
		up->bev = NULL;
	}
	TAILQ_INSERT_TAIL(&up->w->idle_dead, up, link);
	event_active(up->w->reap_ev, EV_TIMEOUT, 0);
}

/* A parked connection spoke or closed: it cannot carry a request any more. */
static void
idle_read_cb(struct bufferevent *bev, void *arg)
{
	struct upconn *up = arg;

	(void)bev;
	log_debug("idle connection to %s received unexpected data, closing",
		up->srv->address);
	upstream_free(up);
}

static void
idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	upstream_free(arg);
}

void
upstream_release(struct upconn *up)
{
	struct worker *w = up->w;
	const struct config_server *srv = up->srv;
	struct timeval tv;
	unsigned ms = w->cfg->timeouts.upstream_idle_ms;

	if (w->stopping || srv->pool->keepalive_max == 0) {
		upstream_free(up);
		return;
	}
	up->uses++;
	bufferevent_setcb(up->bev, idle_read_cb, NULL, idle_event_cb, up);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(up->bev, &tv, NULL);
	bufferevent_enable(up->bev, EV_READ);
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
upstream_reap(struct worker *w)
{
	struct upconn *up;

	while ((up = TAILQ_FIRST(&w->idle_dead)) != NULL) {
		TAILQ_REMOVE(&w->idle_dead, up, link);
		free(up);
	}
}
