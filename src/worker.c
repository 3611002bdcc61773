/*
 * Workers: one event_base each (with workers = 1, the main thread's, and
 * no thread of its own), the listening sockets given by main.c, the
 * sessions they accept and the worker's idle upstream connections. Also
 * the deferred freeing of closed sessions, and the graceful stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "redis.h"
#include "session.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		void *arg)
{
	struct worker *w = arg;
	size_t i = 0;

	/* Which listener: a worker has few, and this beats an allocation per
	 * listener to carry its index. */
	while (i + 1 < w->nlisteners && w->listeners[i] != l)
		i++;
	session_accept(w, fd, sa, (socklen_t)salen, i);
}

/*
 * accept() failed (EMFILE, ENFILE, ENOBUFS...): the pending connection stays
 * in the queue, so the listener would be readable again at once and the loop
 * would spin. Pause accepting for a while; log once per pause.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct worker *w = arg;
	static const struct timeval pause = { .tv_sec = 0, .tv_usec = 100 * 1000 };

	(void)l;
	if (w->accept_paused)
		return;
	log_error("worker %u: accept() failed: %s; pausing accepts for 100 ms", w->id,
		strerror(errno));
	w->accept_paused = true;
	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->listeners[i] != NULL)
			evconnlistener_disable(w->listeners[i]);
	evtimer_add(w->accept_ev, &pause);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	w->accept_paused = false;
	if (w->stopping)
		return;
	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->listeners[i] != NULL)
			evconnlistener_enable(w->listeners[i]);
}

static void
worker_maybe_exit(struct worker *w)
{
	if (w->stopping && w->nsessions == 0) {
		upstream_close_idle(w);
		event_del(w->sweep_ev);
		event_del(w->accept_ev);
		/* On a shared base this ends the main loop too: with one
		 * worker, that is when main.c would end it anyway. */
		event_base_loopexit(w->base, NULL);
	}
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct session *s;

	(void)fd;
	(void)what;
	while ((s = TAILQ_FIRST(&w->dead)) != NULL) {
		TAILQ_REMOVE(&w->dead, s, link);
		session_free(s);
	}
	upstream_reap(w);
	worker_maybe_exit(w);
}

static void take_next_config(struct worker *w);

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	upstream_sweep(w);
	/* A generation that could not be taken for want of memory. */
	if (atomic_load_explicit(&w->next, memory_order_relaxed) != NULL)
		take_next_config(w);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct session *s, *next;

	(void)fd;
	(void)what;
	log_warn("worker %u: shutdown_timeout passed, closing %zu sessions", w->id,
		w->nsessions);
	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		session_abort(s, TERM_SHUTDOWN);
	}
}

/* A generation and its listening sockets, from worker_reload() to the worker. */
struct worker_handover {
	struct config *cfg;
	size_t nsocks;
	struct lsock *socks[];
};

void
worker_handover_free(struct worker_handover *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nsocks; i++)
		lsock_unref(h->socks[i]);
	if (h->cfg != NULL)
		config_unref(h->cfg);
	free(h);
}

/* Accept on fd (the socket stays the lsock's). NULL when out of memory. */
static struct evconnlistener *
listener_wrap(struct worker *w, int fd)
{
	/* Not LEV_OPT_CLOSE_ON_FREE: the lsock closes it. CLOSE_ON_EXEC is for
	 * the accepted sockets. Backlog 0: the socket already listens with the
	 * configured backlog. */
	struct evconnlistener *l = evconnlistener_new(w->base, accept_cb, w,
		LEV_OPT_CLOSE_ON_EXEC, 0, fd);

	if (l == NULL)
		return NULL;
	evconnlistener_set_error_cb(l, accept_error_cb);
	if (w->accept_paused)
		evconnlistener_disable(l);
	return l;
}

/*
 * Stop accepting and let go of the sockets; each closes with its last
 * reference (main.c holds one until it stops).
 */
static void
listeners_release(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i] != NULL)
			evconnlistener_free(w->listeners[i]);
		w->listeners[i] = NULL;
		lsock_unref(w->lsocks[i]);
		w->lsocks[i] = NULL;
	}
}

/*
 * Listen on h's sockets, in h's order: a socket the worker already accepts
 * on keeps its listener; the others get one; the sockets h does not list
 * are let go. On failure (out of memory) nothing changes.
 */
static int
listeners_take(struct worker *w, struct worker_handover *h)
{
	size_t n = h->nsocks;
	struct evconnlistener **nl = calloc(n ? n : 1, sizeof(*nl));
	struct lsock **ns = calloc(n ? n : 1, sizeof(*ns));
	bool *kept = calloc(w->nlisteners ? w->nlisteners : 1, sizeof(*kept));
	size_t j;

	if (nl == NULL || ns == NULL || kept == NULL)
		goto fail;
	for (j = 0; j < n; j++) {
		for (size_t i = 0; i < w->nlisteners; i++) {
			if (!kept[i] && w->lsocks[i] == h->socks[j] && w->listeners[i] != NULL) {
				nl[j] = w->listeners[i];
				kept[i] = true;
				break;
			}
		}
		if (nl[j] == NULL && (nl[j] = listener_wrap(w, h->socks[j]->fd)) == NULL)
			goto fail;
	}
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (!kept[i] && w->listeners[i] != NULL)
			evconnlistener_free(w->listeners[i]);
		lsock_unref(w->lsocks[i]);
	}
	/* h's references become the worker's. */
	memcpy(ns, h->socks, n * sizeof(*ns));
	h->nsocks = 0;
	free(w->listeners);
	free(w->lsocks);
	free(kept);
	w->listeners = nl;
	w->lsocks = ns;
	w->nlisteners = n;
	return 0;
fail:
	for (j = 0; nl != NULL && j < n; j++) {
		bool old = false;

		for (size_t i = 0; i < w->nlisteners && !old; i++)
			old = nl[j] == w->listeners[i];
		if (nl[j] != NULL && !old)
			evconnlistener_free(nl[j]);
	}
	free(nl);
	free(ns);
	free(kept);
	return -1;
}

/*
 * Switch to the generation main.c handed over. Idle upstream connections
 * belong to the old one's servers: they are closed, and connections that
 * sessions of the old generation release later are not parked (upstream.c).
 */
static void
take_next_config(struct worker *w)
{
	struct worker_handover *h = atomic_exchange(&w->next, NULL);
	struct config *next, *old = w->cfg;
	size_t n;

	if (h == NULL)
		return;
	if (w->stopping) {
		worker_handover_free(h);
		return;
	}
	next = h->cfg;
	n = next->nservers ? next->nservers : 1;
	if (next->limits.max_headers > w->nhdrs) {
		/* Sessions of either generation parse into it: it only grows. */
		struct http_header *hdrs = realloc(w->hdrs,
			next->limits.max_headers * sizeof(*hdrs));

		if (hdrs == NULL)
			goto nomem;
		w->hdrs = hdrs;
		w->nhdrs = next->limits.max_headers;
	}
	if (n > (old->nservers ? old->nservers : 1)) {
		struct upconn_list *idle;
		unsigned *nidle;

		upstream_close_idle(w);
		idle = realloc(w->idle, n * sizeof(*idle));
		if (idle == NULL)
			goto nomem;
		w->idle = idle;
		nidle = realloc(w->nidle, n * sizeof(*nidle));
		if (nidle == NULL)
			goto nomem;
		w->nidle = nidle;
	} else {
		upstream_close_idle(w);
	}
	for (size_t k = 0; k < n; k++) {
		TAILQ_INIT(&w->idle[k]);
		w->nidle[k] = 0;
	}
	/* Last: what came before only grew or emptied what the old
	 * generation uses too. */
	if (listeners_take(w, h) < 0)
		goto nomem;
	w->cfg = next;
	h->cfg = NULL;
	worker_handover_free(h);
	config_unref(old);
	log_debug("worker %u: new configuration generation", w->id);
	return;
nomem:
	/* Not dropped: main.c's table already lists h's sockets as this
	 * worker's, so a new address's socket would listen with nobody to
	 * accept on it (its share of connections hanging) and a removed
	 * one would go on accepting. Tried again from the sweep, unless a
	 * newer generation has come meanwhile. */
	log_error("worker %u: out of memory taking the new configuration; keeping the old one "
		"for now", w->id);
	{
		struct worker_handover *none = NULL;

		if (!atomic_compare_exchange_strong(&w->next, &none, h))
			worker_handover_free(h);
	}
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct session *s, *next;
	struct timeval tv;
	char buf[16];
	ssize_t n;
	bool force = false, stop = false;
	unsigned ms;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		for (ssize_t i = 0; i < n; i++) {
			force |= buf[i] == 'f';
			stop |= buf[i] == 'f' || buf[i] == 's';
			if (buf[i] == 'r')
				take_next_config(w);
		}
	if (!stop)
		return;
	ms = w->cfg->timeouts.shutdown_ms;
	if (w->stopping) {
		/* A second signal: do not wait for shutdown_timeout. */
		if (force)
			event_active(w->grace_ev, EV_TIMEOUT, 0);
		return;
	}
	w->stopping = true;
	listeners_release(w);
	upstream_close_idle(w);
	/* session_drain() may close s, which moves it to the dead list. */
	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		session_drain(s);
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(w->grace_ev, &tv);
	if (force)
		event_active(w->grace_ev, EV_TIMEOUT, 0);
	worker_maybe_exit(w);
}

/*
 * The worker's loop. With the epoll changelist, an event removed and added
 * again within one loop turn (an upstream connection parked and taken
 * again, a read timeout changed) costs no epoll_ctl() at all.
 */
struct event_base *
worker_base_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static void
worker_free(struct worker *w)
{
	struct session *s;

	if (w == NULL)
		return;
	listeners_release(w);
	free(w->listeners);
	free(w->lsocks);
	/* Sessions closed in the loop's last turn wait on the dead list. */
	while ((s = TAILQ_FIRST(&w->dead)) != NULL) {
		TAILQ_REMOVE(&w->dead, s, link);
		session_free(s);
	}
	if (w->idle != NULL) {
		upstream_close_idle(w);
		upstream_reap(w);
	}
	free(w->idle);
	free(w->nidle);
	free(w->hdrs);
	/* Before the base it runs on. */
	rl_redis_free(w->rl_redis);
	if (w->stop_ev != NULL)
		event_free(w->stop_ev);
	if (w->grace_ev != NULL)
		event_free(w->grace_ev);
	if (w->reap_ev != NULL)
		event_free(w->reap_ev);
	if (w->sweep_ev != NULL)
		event_free(w->sweep_ev);
	if (w->accept_ev != NULL)
		event_free(w->accept_ev);
	if (w->notify[0] >= 0)
		close(w->notify[0]);
	if (w->notify[1] >= 0)
		close(w->notify[1]);
	if (w->base != NULL && !w->base_shared)
		event_base_free(w->base);
	if (w->cfg != NULL)
		config_unref(w->cfg);
	worker_handover_free(atomic_exchange(&w->next, NULL));
	free(w);
}

static const struct timeval sweep_interval = { .tv_sec = 1, .tv_usec = 0 };

struct worker *
worker_new(unsigned id, struct config *cfg, struct lsock *const *socks, struct event_base *base)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->id = id;
	w->notify[0] = w->notify[1] = -1;
	w->done_fd = -1;
	w->cfg = config_ref(cfg);
	TAILQ_INIT(&w->sessions);
	TAILQ_INIT(&w->dead);
	TAILQ_INIT(&w->idle_dead);
	w->base_shared = base != NULL;
	w->base = base != NULL ? base : worker_base_new();
	w->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*w->listeners));
	w->lsocks = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*w->lsocks));
	w->idle = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*w->idle));
	w->nidle = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*w->nidle));
	w->nhdrs = cfg->limits.max_headers < 128 ? 128 : cfg->limits.max_headers;
	w->hdrs = calloc(w->nhdrs, sizeof(*w->hdrs));
	if (w->base == NULL || w->listeners == NULL || w->lsocks == NULL || w->idle == NULL ||
	    w->nidle == NULL ||
	    w->hdrs == NULL || pipe2(w->notify, O_CLOEXEC | O_NONBLOCK) < 0)
		goto fail;
	for (size_t k = 0; k < cfg->nservers; k++)
		TAILQ_INIT(&w->idle[k]);
	w->stop_ev = event_new(w->base, w->notify[0], EV_READ | EV_PERSIST, stop_cb, w);
	w->grace_ev = evtimer_new(w->base, grace_cb, w);
	w->reap_ev = event_new(w->base, -1, 0, reap_cb, w);
	w->sweep_ev = event_new(w->base, -1, EV_PERSIST, sweep_cb, w);
	w->accept_ev = evtimer_new(w->base, accept_resume_cb, w);
	if (w->stop_ev == NULL || w->grace_ev == NULL || w->reap_ev == NULL ||
	    w->sweep_ev == NULL || w->accept_ev == NULL || event_add(w->stop_ev, NULL) < 0 ||
	    event_add(w->sweep_ev, &sweep_interval) < 0)
		goto fail;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		w->lsocks[i] = lsock_ref(socks[i]);
		w->nlisteners = i + 1;
		if ((w->listeners[i] = listener_wrap(w, socks[i]->fd)) == NULL)
			goto fail;
	}
	return w;
fail:
	worker_free(w);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (util_rand_seed() < 0)
		log_warn("worker %u: getrandom() failed: %s", w->id, strerror(errno));
	event_base_dispatch(w->base);
	/* Tell the main thread; it exits once every worker has. */
	if (w->done_fd >= 0) {
		char c = 'd';
		while (write(w->done_fd, &c, 1) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

int
worker_start(struct worker *w)
{
	/* On the main thread's loop: that thread runs it, seeded by main.c. */
	if (w->base_shared)
		return 0;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	w->started = true;
	return 0;
}

void
worker_stop(struct worker *w, bool force)
{
	char c = force ? 'f' : 's';

	while (write(w->notify[1], &c, 1) < 0 && errno == EINTR)
		;
}

struct worker_handover *
worker_handover_new(struct config *cfg, struct lsock *const *socks)
{
	size_t n = cfg->nlisteners;
	struct worker_handover *h = malloc(sizeof(*h) + n * sizeof(h->socks[0]));

	if (h == NULL)
		return NULL;
	h->cfg = config_ref(cfg);
	h->nsocks = n;
	for (size_t i = 0; i < n; i++)
		h->socks[i] = lsock_ref(socks[i]);
	return h;
}

void
worker_reload(struct worker *w, struct worker_handover *h)
{
	char c = 'r';

	/* A generation not taken yet is simply replaced. */
	worker_handover_free(atomic_exchange(&w->next, h));
	while (write(w->notify[1], &c, 1) < 0 && errno == EINTR)
		;
}

void
worker_join_free(struct worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	worker_free(w);
}

void
worker_defer_free(struct worker *w, struct session *s)
{
	UTIL_ASSERT(s->dead);
	UTIL_ASSERT(w->nsessions > 0);
	TAILQ_REMOVE(&w->sessions, s, link);
	TAILQ_INSERT_TAIL(&w->dead, s, link);
	w->nsessions--;
	event_active(w->reap_ev, EV_TIMEOUT, 0);
}
