/*
 * Name resolution off the loop: the system's resolver (getaddrinfo, so
 * /etc/hosts, /etc/resolv.conf and nsswitch as every other program sees
 * them) on a short-lived thread of its own, the answer handed back to the
 * loop that asked. A DNS server that is slow or silent then delays only the
 * one connection that waits for the name, never the requests of the loop.
 */
#ifndef SLUICE_RESOLVE_H
#define SLUICE_RESOLVE_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct resolve;

/* The most addresses an answer keeps, in the resolver's order. */
#define RESOLVE_MAX 8

/*
 * The answer, on the loop's thread: err is 0 and addrs[0..n) the addresses
 * (n >= 1), or err is a getaddrinfo() error (EAI_*), errtext says it, and n
 * is 0.
 */
typedef void (*resolve_cb)(int err, const char *errtext, const struct sockaddr_storage *addrs,
		size_t n, void *arg);

/*
 * Ask for host:port (TCP) and return at once; cb comes later from base's
 * loop, never from inside this call. NULL when the question cannot be
 * started (errno set); cb is then never called.
 */
struct resolve *resolve_start(struct event_base *base, const char *host, int port,
		resolve_cb cb, void *arg);

/* Forget a question still open: its cb is never called. */
void resolve_cancel(struct resolve *r);

/* True when host is an IPv4 or IPv6 literal, which needs no question. */
bool resolve_is_literal(const char *host);

/* What the threads call; tests put a slow or failing one in its place. */
extern int (*resolve_getaddrinfo)(const char *node, const char *service,
		const struct addrinfo *hints, struct addrinfo **res);

#endif
