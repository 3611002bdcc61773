/*
 * Start-up and shutdown: command line, configuration, listening sockets,
 * worker threads, and the main thread's event loop, which handles signals,
 * reloads, health checks and DNS, and with workers = 1 runs the one worker
 * too.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "health.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "ratelimit.h"
#include "redis.h"
#include "sticky.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#if __has_include("build-config.h")
#include "build-config.h"
#endif
#ifndef SLUICE_VERSION
#ifdef PACKAGE_VERSION
#define SLUICE_VERSION PACKAGE_VERSION
#else
#define SLUICE_VERSION "0.1.0"
#endif
#endif

struct main_state {
	const char *file;
	struct config *cfg;		/* the running generation */
	struct event_base *base;
	struct worker **workers;
	unsigned nworkers;
	/* The sockets of cfg's listeners: worker w's are lsocks[w * cfg->nlisteners
	 * + listener]; a reference each. Let go once stopping. */
	struct lsock **lsocks;
	unsigned exited;		/* workers whose loop has ended */
	struct sid_store *sids;		/* Engine.IO sid table, shared by the workers */
	struct rl_local *rl;		/* in-process rate limits, shared by the workers */
	struct event *expire_ev;	/* once a second: expire sids */
	int done[2];			/* pipe: workers write when they end */
	bool stopping;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: sluice [-t] -c FILE\n"
		"       sluice -v | -h\n"
		"  -c FILE  configuration file\n"
		"  -t       check the configuration and exit (0: valid, 1: not)\n"
		"  -v       print the version and exit\n"
		"  -h       print this help and exit\n");
}

/* The listener of cfg on l's address, as an index; cfg->nlisteners if none. */
static size_t
listener_on(const struct config *cfg, const struct config_listener *l)
{
	size_t k;

	for (k = 0; k < cfg->nlisteners; k++)
		if (util_addr_same(&cfg->listeners[k].addr, &l->addr))
			break;
	return k;
}

/*
 * The sockets of n's listeners for every worker. A listener on an address
 * the running generation listens on keeps its sockets, and the connections
 * queued on them (listeners_apply_backlogs sets a changed backlog once the
 * reload is committed); a new address, and every address at start-up (no
 * m->lsocks yet), gets a socket per worker. NULL with err set when one
 * cannot be opened: nothing stays open and nothing changes then.
 */
static struct lsock **
listeners_plan(const struct main_state *m, const struct config *n, char *err, size_t errlen)
{
	const struct config *o = m->lsocks != NULL ? m->cfg : NULL;
	size_t nl = n->nlisteners, ol = o != NULL ? o->nlisteners : 0;
	size_t total = (size_t)m->nworkers * nl;
	struct lsock **tab = calloc(total ? total : 1, sizeof(*tab));

	if (tab == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t j = 0; j < nl; j++) {
		const struct config_listener *l = &n->listeners[j];
		size_t k = o != NULL ? listener_on(o, l) : 0;

		for (unsigned w = 0; w < m->nworkers; w++) {
			struct lsock **slot = &tab[(size_t)w * nl + j];
			int fd;

			if (k < ol) {
				*slot = lsock_ref(m->lsocks[(size_t)w * ol + k]);
				continue;
			}
			if ((fd = listener_open(l, err, errlen)) < 0)
				goto fail;
			if ((*slot = lsock_new(fd)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		}
	}
	return tab;
fail:
	lsock_table_free(tab, total);
	return NULL;
}

/* A kept listener's new backlog, on its sockets tab (n's). Once committed. */
static void
listeners_apply_backlogs(const struct config *o, const struct config *n, struct lsock *const *tab,
		unsigned nworkers)
{
	for (size_t j = 0; j < n->nlisteners; j++) {
		const struct config_listener *l = &n->listeners[j];
		size_t k = listener_on(o, l);

		if (k == o->nlisteners || o->listeners[k].backlog == l->backlog)
			continue;
		for (unsigned w = 0; w < nworkers; w++)
			if (listen(tab[(size_t)w * n->nlisteners + j]->fd, l->backlog) < 0)
				log_warn("listener \"%s\": listen(%s) with backlog %d failed: %s",
					l->name, l->address, l->backlog, strerror(errno));
	}
}

/* Say which listeners the reload from o to n adds and removes. */
static void
listeners_log_changes(const struct config *o, const struct config *n)
{
	for (size_t j = 0; j < n->nlisteners; j++)
		if (listener_on(o, &n->listeners[j]) == o->nlisteners)
			log_info("listener \"%s\" on %s added", n->listeners[j].name,
				n->listeners[j].address);
	for (size_t k = 0; k < o->nlisteners; k++)
		if (listener_on(n, &o->listeners[k]) == n->nlisteners)
			log_info("listener \"%s\" on %s removed; its established connections go on",
				o->listeners[k].name, o->listeners[k].address);
}

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether b's redis { } section is a's: each worker's connection is made at start. */
static bool
same_redis(const struct config *a, const struct config *b)
{
	const struct config_redis *x = &a->redis, *y = &b->redis;

	if (a->redis_on != b->redis_on)
		return false;
	if (!a->redis_on)
		return true;
	return same_string(x->address, y->address) && same_string(x->user, y->user) &&
		x->password_len == y->password_len &&
		(x->password_len == 0 || memcmp(x->password, y->password, x->password_len) == 0) &&
		same_string(x->prefix, y->prefix) && x->timeout_ms == y->timeout_ms &&
		x->on_error == y->on_error && x->lease_max == y->lease_max;
}

/*
 * SIGHUP: load the file again and hand the new generation to the workers.
 * Sessions already established keep the generation they started with (and
 * its TLS contexts, pools and timeouts); new ones get the new one.
 * Listeners may come and go (listeners_plan). A file that does not load, a
 * listener that cannot be opened, or a change of what cannot change without
 * a restart (workers, the access log, the redis section) leaves the running
 * configuration in place.
 */
static void
reload(struct main_state *m)
{
	char err[1024];
	struct config *n = config_load(m->file, err, sizeof(err));
	const char *why = NULL;
	struct lsock **tab;
	struct worker_handover **hs;

	if (n == NULL) {
		log_error("reload failed, the running configuration stays: %s", err);
		return;
	}
	if (n->workers != m->cfg->workers)
		why = "workers changed";
	else if ((n->access_log == NULL) != (m->cfg->access_log == NULL) ||
		 (n->access_log != NULL && strcmp(n->access_log, m->cfg->access_log) != 0))
		why = "access_log changed";
	else if (!same_redis(m->cfg, n))
		why = "the redis section changed";
	if (why != NULL) {
		log_error("reload of %s refused, the running configuration stays: %s "
			"(restart sluice to apply that)", m->file, why);
		config_unref(n);
		return;
	}
	tab = listeners_plan(m, n, err, sizeof(err));
	if (tab == NULL) {
		log_error("reload failed, the running configuration stays: %s", err);
		config_unref(n);
		return;
	}
	/* Everything a worker will be handed, before anything is committed;
	 * then, before the workers get n, its weights must already say which
	 * servers are down, ejected or held. */
	hs = calloc(m->nworkers, sizeof(*hs));
	for (unsigned i = 0; hs != NULL && i < m->nworkers; i++)
		if ((hs[i] = worker_handover_new(n, tab + (size_t)i * n->nlisteners)) == NULL)
			goto nomem;
	if (hs == NULL || pool_attach(n, m->cfg) < 0 || health_reload(n) < 0)
		goto nomem;
	dns_reload(m->cfg, n);
	log_set_level(n->log_level);
	listeners_log_changes(m->cfg, n);
	listeners_apply_backlogs(m->cfg, n, tab, m->nworkers);
	for (unsigned i = 0; i < m->nworkers; i++)
		worker_reload(m->workers[i], hs[i]);
	free(hs);
	lsock_table_free(m->lsocks, (size_t)m->nworkers * m->cfg->nlisteners);
	m->lsocks = tab;
	config_unref(m->cfg);
	m->cfg = n;
	log_info("configuration reloaded from %s", m->file);
	return;
nomem:
	log_error("reload failed, the running configuration stays: out of memory");
	for (unsigned i = 0; hs != NULL && i < m->nworkers; i++)
		worker_handover_free(hs[i]);
	free(hs);
	lsock_table_free(tab, (size_t)m->nworkers * n->nlisteners);
	config_unref(n);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct main_state *m = arg;

	(void)what;
	if (sig == SIGHUP) {
		if (!m->stopping)
			reload(m);
		return;
	}
	if (m->stopping) {
		log_warn("%s again: closing the remaining connections now", strsignal((int)sig));
		for (unsigned i = 0; i < m->nworkers; i++)
			worker_stop(m->workers[i], true);
		return;
	}
	m->stopping = true;
	log_info("%s: stopping gracefully", strsignal((int)sig));
	/* The sockets close as the workers let go of theirs: new
	 * connections are refused, not left waiting in a queue. */
	lsock_table_free(m->lsocks, (size_t)m->nworkers * m->cfg->nlisteners);
	m->lsocks = NULL;
	for (unsigned i = 0; i < m->nworkers; i++)
		worker_stop(m->workers[i], false);
}

static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct main_state *m = arg;

	(void)fd;
	(void)what;
	m->sids->ops->expire(m->sids->st, util_now_us() / 1000);
	rl_local_sweep(m->rl, util_now_us());
	tls_tick(util_now_us() / 1000000);
}

/* A worker's loop ended; the main loop ends with the last one, so that a
 * second signal still finds it listening. */
static void
worker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct main_state *m = arg;
	char buf[64];
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			m->exited += (unsigned)n;
	if (m->exited >= m->nworkers)
		event_base_loopexit(m->base, NULL);
}

static const struct timeval expire_interval = { .tv_sec = 1, .tv_usec = 0 };

int
main(int argc, char **argv)
{
	struct main_state m = { .done = { -1, -1 } };
	struct event *done_ev = NULL;
	const char *file = NULL;
	bool check_only = false;
	struct config *cfg;
	struct event *sigs[3] = { NULL };
	const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
	char err[1024];
	int opt, rc = 1;
	unsigned started = 0;

	while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'v':
			printf("sluice %s\n", SLUICE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (file == NULL || optind != argc) {
		usage(stderr);
		return 1;
	}
	cfg = config_load(file, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check_only) {
		fprintf(stderr, "%s: configuration OK\n", file);
		config_unref(cfg);
		return 0;
	}
	m.file = file;
	m.cfg = cfg;
	log_set_level(cfg->log_level);
	if (cfg->sticky_key_random)
		log_warn("no sticky_key set: sticky cookies are signed with a random key and "
			"will not survive a restart or match other replicas");
	signal(SIGPIPE, SIG_IGN);
	if (pool_attach(cfg, NULL) < 0) {
		log_error("out of memory");
		goto out_cfg;
	}
	if (log_access_open(cfg->access_log) < 0) {
		log_error("access_log %s: open() failed: %s", cfg->access_log, strerror(errno));
		goto out_cfg;
	}
	m.nworkers = cfg->workers;
	m.workers = calloc(m.nworkers, sizeof(*m.workers));
	/* With one worker, the main loop is the worker's loop and the process
	 * has one thread: the kernel then takes no file reference on each
	 * socket call, and libc skips its cancellation and locking steps. */
	m.base = m.nworkers == 1 ? worker_base_new() : event_base_new();
	m.sids = sid_store_local_new();
	m.rl = rl_local_new();
	if (m.workers == NULL || m.base == NULL || m.sids == NULL || m.rl == NULL ||
	    pipe2(m.done, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_error("cannot set up: %s", strerror(errno ? errno : ENOMEM));
		goto out;
	}
	done_ev = event_new(m.base, m.done[0], EV_READ | EV_PERSIST, worker_done_cb, &m);
	m.expire_ev = event_new(m.base, -1, EV_PERSIST, expire_cb, &m);
	if (done_ev == NULL || event_add(done_ev, NULL) < 0 || m.expire_ev == NULL ||
	    event_add(m.expire_ev, &expire_interval) < 0) {
		log_error("out of memory");
		goto out;
	}
	/* The random state is per thread: the main thread's draws (health
	 * checks' first spread and jitter) need it seeded like a worker's. */
	if (util_rand_seed() < 0)
		log_warn("getrandom() failed: %s; health check timing will not be random",
			strerror(errno));
	if (health_start(m.base, cfg) < 0) {
		log_error("out of memory");
		goto out;
	}
	/* Servers that name a host wait for its first answer, which the
	 * main loop gets while the workers start. */
	if (dns_start(m.base, cfg) < 0)
		goto out;
	if ((m.lsocks = listeners_plan(&m, cfg, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		goto out;
	}
	for (unsigned i = 0; i < m.nworkers; i++) {
		m.workers[i] = worker_new(i, cfg, m.lsocks + (size_t)i * cfg->nlisteners,
			m.nworkers == 1 ? m.base : NULL);
		if (m.workers[i] == NULL) {
			log_error("worker %u: cannot be created", i);
			goto out;
		}
		m.workers[i]->done_fd = m.done[1];
		m.workers[i]->sids = m.sids;
		m.workers[i]->rl_ops = &rl_local_ops;
		m.workers[i]->rl_be = m.rl;
		/* With redis { }, the limits go to Redis; the in-process table
		 * answers for it when on_error = local. */
		if (cfg->redis_on) {
			m.workers[i]->rl_redis = rl_redis_new(m.workers[i]->base, cfg, i,
				&rl_local_ops, m.rl);
			if (m.workers[i]->rl_redis == NULL) {
				log_error("worker %u: cannot set up its Redis backend: out of memory", i);
				goto out;
			}
			m.workers[i]->rl_ops = &rl_redis_ops;
			m.workers[i]->rl_be = m.workers[i]->rl_redis;
		}
	}
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(m.base, signums[i], signal_cb, &m);
		if (sigs[i] == NULL || event_add(sigs[i], NULL) < 0) {
			log_error("cannot install signal handlers");
			goto out;
		}
	}
	for (; started < m.nworkers; started++) {
		if (worker_start(m.workers[started]) < 0) {
			log_error("worker %u: pthread_create() failed", started);
			for (unsigned k = 0; k < started; k++)
				worker_stop(m.workers[k], true);
			goto out;
		}
	}
	for (size_t l = 0; l < cfg->nlisteners; l++)
		log_info("listener \"%s\" on %s", cfg->listeners[l].name, cfg->listeners[l].address);
	log_info("sluice %s started with %u worker%s", SLUICE_VERSION, m.nworkers,
		m.nworkers == 1 ? "" : "s");
	event_base_dispatch(m.base);
	rc = 0;
out:
	for (unsigned i = 0; m.workers != NULL && i < m.nworkers; i++) {
		if (m.workers[i] == NULL)
			continue;
		worker_join_free(m.workers[i]);
	}
	dns_stop();
	health_stop();
	if (done_ev != NULL)
		event_free(done_ev);
	if (m.expire_ev != NULL)
		event_free(m.expire_ev);
	sid_store_free(m.sids);
	rl_local_free(m.rl);
	for (int i = 0; i < 2; i++)
		if (m.done[i] >= 0)
			close(m.done[i]);
	/* Freeing a signal event restores the default action, and a second
	 * SIGTERM in the last instants would then kill us with a signal instead
	 * of exit 0: block them first, then ignore them for good. */
	sigset_t mask;
	sigemptyset(&mask);
	for (int i = 0; i < 3; i++)
		sigaddset(&mask, signums[i]);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	for (int i = 0; i < 3; i++) {
		if (sigs[i] != NULL)
			event_free(sigs[i]);
		signal(signums[i], SIG_IGN);
	}
	if (m.base != NULL)
		event_base_free(m.base);
	free(m.workers);
	lsock_table_free(m.lsocks, (size_t)m.nworkers * m.cfg->nlisteners);
	if (rc == 0)
		log_info("stopped");
out_cfg:
	log_access_close();
	config_unref(m.cfg);
	return rc;
}
