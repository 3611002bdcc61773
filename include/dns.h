/*
 * DNS discovery of servers. A server whose address names a host is loaded
 * as a group of slots (config_build.c); this module resolves the host with
 * evdns on the main thread's loop every resolve_interval and fills, keeps and
 * empties the slots. It does not balance, and does not judge the health of
 * the servers it fills: it sets their address and `present` only.
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct event_base;

/* One address of an answer, without port. */
struct dns_addr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned char bytes[16];	/* network order; IPv4 uses the first 4 */
};

/* A slot as dns_assign() sees it. */
struct dns_slot {
	bool present;			/* the last answer named addr */
	bool used;			/* addr is set (present, or kept since removed) */
	struct dns_addr addr;
};

enum dns_change {
	DNS_SAME = 0,			/* nothing changes */
	DNS_ADD,			/* present now, with a new address */
	DNS_BACK,			/* present again, with the address it kept */
	DNS_REMOVE,			/* not present any more; its address stays */
	DNS_REPLACE,			/* present, with a new address in place of one gone */
};

/*
 * Match an answer, addrs[0..naddrs) (duplicates allowed), against the slots
 * of a group, and update slots[] to it; changes[i] says what happened to
 * slot i. An address still answered keeps its slot; one that comes back
 * takes the slot that had it, if free; a new one takes a slot never used,
 * else the lowest one free before this answer, else one this answer frees.
 * Returns how many addresses found no free slot (they are ignored). Pure:
 * no I/O, no locks.
 */
size_t dns_assign(struct dns_slot *slots, size_t nslots, const struct dns_addr *addrs,
		size_t naddrs, enum dns_change *changes);

/*
 * Start resolving the named servers of cfg, whose pools are attached
 * (pool_attach), on base; the first queries leave at once. Takes a
 * reference on cfg. Returns 0, or -1 when the resolver cannot be set up
 * (logged). Main thread.
 */
int dns_start(struct event_base *base, struct config *cfg) __attribute__((warn_unused_result));

/*
 * A reload: resolve the named servers of next (attached, about to replace
 * prev) from now on, and give each of its slots the address and presence
 * that the slot of the same pool and name had in prev when it names the
 * same host and port, so that the pool does not empty until the next
 * answer. Queries of prev in flight are cancelled. Main thread.
 */
void dns_reload(struct config *prev, struct config *next);

/* Cancel everything and free what the module holds. Main thread, at exit. */
void dns_stop(void);

#endif
