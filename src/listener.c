/*
 * Creating listening sockets, and the references that keep each open while
 * a generation listens on it. Accepting on them is the worker's business
 * (worker.c wraps each in an evconnlistener).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config-t.h"
#include "listener.h"

int
listener_open(const struct config_listener *l, char *err, size_t errlen)
{
	int fd, one = 1;
	const char *call;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		call = "socket";
		goto fail;
	}
	call = "setsockopt";
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* "[::]:80" means IPv6 only; IPv4 gets its own listener if wanted. */
	if (l->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	call = "bind";
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0)
		goto fail;
	call = "listen";
	if (listen(fd, l->backlog) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "listener \"%s\": %s(%s) failed: %s", l->name, call,
		l->address, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

struct lsock *
lsock_new(int fd)
{
	struct lsock *s = malloc(sizeof(*s));

	if (s == NULL) {
		close(fd);
		return NULL;
	}
	s->fd = fd;
	atomic_init(&s->refs, 1);
	return s;
}

struct lsock *
lsock_ref(struct lsock *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void
lsock_unref(struct lsock *s)
{
	if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	close(s->fd);
	free(s);
}

void
lsock_table_free(struct lsock **tab, size_t n)
{
	if (tab == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		lsock_unref(tab[i]);
	free(tab);
}
