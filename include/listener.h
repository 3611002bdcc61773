/*
 * Listening sockets. Each worker gets its own socket per configured
 * listener, bound with SO_REUSEPORT, so the kernel spreads connections
 * across workers without a shared accept queue.
 */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stdatomic.h>
#include <stddef.h>

struct config_listener;

/*
 * A listening socket, shared by whoever listens on it: main.c's table for
 * the running generation, each worker's listeners, a generation handed to a
 * worker and not taken yet. A reload that keeps an address keeps its
 * sockets, and what is queued on them; the last reference closes it.
 */
struct lsock {
	int fd;
	atomic_uint refs;
};

/* Wrap fd (one reference). NULL when out of memory; fd is then closed. */
struct lsock *lsock_new(int fd);
struct lsock *lsock_ref(struct lsock *s);
/* Drop a reference; the last one closes the socket. Any thread; NULL is fine. */
void lsock_unref(struct lsock *s);
/* Drop the references tab[0..n) holds, then free tab. */
void lsock_table_free(struct lsock **tab, size_t n);

/*
 * A bound, listening, non-blocking socket for l, or -1 with a message
 * ("bind(0.0.0.0:80) failed: Permission denied") in err. Main thread.
 */
int listener_open(const struct config_listener *l, char *err, size_t errlen);

#endif
