/*
 * Runtime state of one server, shared by every worker: what the balancers
 * read at pick time (how many exchanges it carries, the weight it should
 * get now) and what health checking and discovery write. It belongs to the
 * pool runtime of its configuration generation (pool.c) and is reached
 * from the immutable config_server through srv->rt.
 */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

struct config_server;
struct server_health;

/*
 * weight_now is the configured weight times this: balancers only compare
 * weights with each other, so the scale changes no share, and it leaves
 * slow start room to ramp even a server of weight 1 in small steps.
 */
#define SERVER_WEIGHT_SCALE 64

/*
 * Exchanges and WebSocket tunnels on a server now, from every worker and
 * every generation that lists the server (same pool, name and address): a
 * reload must not make the balancers forget the tunnels already open.
 * Reference counted by those generations (pool.c).
 */
struct server_load {
	atomic_uint active;
	atomic_uint refs;
};

struct server_rt {
	struct server_load *load;
	/*
	 * The weight balancers use now: the configured weight when the server
	 * is healthy; less during slow start; 0 when it must get no new
	 * sessions (down, ejected, removed). Workers read it, the main thread
	 * (health checks, discovery) writes it.
	 */
	atomic_uint weight_now;
	/*
	 * Whether the server exists now: always for a server with a fixed
	 * address; for a slot filled by DNS discovery, while an answer names
	 * it. A server that is not present gets weight 0.
	 */
	atomic_bool present;
	/*
	 * Where to connect. Fixed servers: the configured address for ever.
	 * Discovered slots: written by the main thread when DNS answers
	 * change; addr_epoch then moves on, so that idle connections made to
	 * an older address are not reused. Read through server_address().
	 */
	pthread_mutex_t addr_lock;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	atomic_uint addr_epoch;
	/*
	 * The server's health, kept by pool and server name across reloads
	 * and shared with the other generations' server_rt of that name
	 * (health.h): passive failure counts, ejection, verdicts, counters.
	 * Set by the main thread before the generation is shared; NULL only
	 * before that.
	 */
	struct server_health *health;
};

/* Copy srv's current address; returns its epoch. Any thread. */
unsigned server_address(const struct config_server *srv, struct sockaddr_storage *ss,
		socklen_t *len);

/* Give srv a new address (DNS discovery). Main thread. */
void server_set_address(const struct config_server *srv, const struct sockaddr *sa,
		socklen_t len);

/*
 * Recompute srv's weight_now from what is known of it now (present,
 * health, slow start: health_refresh_weight()); call it after changing
 * any of those. Main thread, or pool_attach() before the generation is
 * shared.
 */
void server_refresh_weight(const struct config_server *srv);

/* Count an exchange (or tunnel) on srv, and its end. Any thread. */
void server_acquire(const struct config_server *srv);
void server_release(const struct config_server *srv);

/* Whether srv may get new sessions (weight_now > 0). Any thread. */
bool server_usable(const struct config_server *srv);

#endif
