/*
 * Name resolution off the loop (resolve.h): one detached thread per question
 * runs getaddrinfo() and writes a byte into a pipe that the asking loop
 * watches. The question is shared by the loop and the thread and freed by
 * whichever lets go last; a cancelled question's thread finishes unheard.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "resolve.h"

int (*resolve_getaddrinfo)(const char *node, const char *service,
	const struct addrinfo *hints, struct addrinfo **res) = getaddrinfo;

struct resolve {
	pthread_mutex_t lock;
	int refs;			/* the loop's and the thread's; under lock */
	bool cancelled;			/* the loop let go first; under lock */
	int fds[2];			/* the thread writes fds[1] once, when done */
	struct event *ev;		/* fds[0] on the loop; the loop's only */
	resolve_cb cb;
	void *arg;
	char *host;
	char port[8];
	/* Written by the thread before the byte, read by the loop after it. */
	int err;
	int sys_errno;			/* for EAI_SYSTEM */
	struct sockaddr_storage addrs[RESOLVE_MAX];
	size_t naddrs;
};

bool
resolve_is_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void
resolve_destroy(struct resolve *r)
{
	pthread_mutex_destroy(&r->lock);
	close(r->fds[0]);
	close(r->fds[1]);
	free(r->host);
	free(r);
}

/* Drop one side's hold; the last one frees. */
static void
resolve_unref(struct resolve *r, bool cancel)
{
	bool last;

	pthread_mutex_lock(&r->lock);
	if (cancel)
		r->cancelled = true;
	last = --r->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (last)
		resolve_destroy(r);
}

static void *
resolve_thread(void *arg)
{
	struct resolve *r = arg;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG,
	};
	struct addrinfo *res = NULL;

	r->err = resolve_getaddrinfo(r->host, r->port, &hints, &res);
	r->sys_errno = errno;
	for (const struct addrinfo *ai = r->err == 0 ? res : NULL;
	     ai != NULL && r->naddrs < RESOLVE_MAX; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(r->addrs[0]))
			continue;
		memcpy(&r->addrs[r->naddrs++], ai->ai_addr, ai->ai_addrlen);
	}
	if (r->err == 0 && r->naddrs == 0)
		r->err = EAI_NODATA;
	if (res != NULL)
		freeaddrinfo(res);
	pthread_mutex_lock(&r->lock);
	if (!r->cancelled) {
		ssize_t n;

		do
			n = write(r->fds[1], "", 1);
		while (n < 0 && errno == EINTR);
	}
	pthread_mutex_unlock(&r->lock);
	resolve_unref(r, false);
	return NULL;
}

static void
resolve_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolve *r = arg;
	struct sockaddr_storage addrs[RESOLVE_MAX];
	size_t n;
	resolve_cb cb = r->cb;
	void *cb_arg = r->arg;
	int err, sys_errno;
	const char *text = NULL;

	(void)fd;
	(void)what;
	/* The thread wrote these before it took the lock to write the byte. */
	pthread_mutex_lock(&r->lock);
	err = r->err;
	sys_errno = r->sys_errno;
	n = r->naddrs;
	memcpy(addrs, r->addrs, n * sizeof(addrs[0]));
	pthread_mutex_unlock(&r->lock);
	event_free(r->ev);
	r->ev = NULL;
	resolve_unref(r, false);
	if (err == EAI_SYSTEM)
		text = strerror(sys_errno);
	else if (err != 0)
		text = gai_strerror(err);
	cb(err, text, addrs, err == 0 ? n : 0, cb_arg);
}

struct resolve *
resolve_start(struct event_base *base, const char *host, int port, resolve_cb cb, void *arg)
{
	struct resolve *r = calloc(1, sizeof(*r));
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int rc;

	if (r == NULL)
		return NULL;
	r->fds[0] = r->fds[1] = -1;
	r->cb = cb;
	r->arg = arg;
	r->refs = 2;
	snprintf(r->port, sizeof(r->port), "%d", port);
	if ((r->host = strdup(host)) == NULL || pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r->host);
		free(r);
		return NULL;
	}
	if (pipe2(r->fds, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    (r->ev = event_new(base, r->fds[0], EV_READ, resolve_ready_cb, r)) == NULL ||
	    event_add(r->ev, NULL) < 0)
		goto fail;
	/* Signals stay with the threads that handle them. */
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&tid, &attr, resolve_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		errno = rc;
		goto fail;
	}
	return r;
fail:
	rc = errno;
	if (r->ev != NULL)
		event_free(r->ev);
	r->refs = 1;
	resolve_unref(r, true);
	errno = rc;
	return NULL;
}

void
resolve_cancel(struct resolve *r)
{
	if (r == NULL)
		return;
	if (r->ev != NULL) {
		event_free(r->ev);
		r->ev = NULL;
	}
	resolve_unref(r, true);
}
