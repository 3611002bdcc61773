/*
 * Types of one configuration generation: what config.c builds from a file.
 * A generation is immutable once built and shared by reference between the
 * main thread and the workers; runtime state (balancer cursors, idle
 * connections) lives elsewhere and points into it.
 */
#ifndef SLUICE_CONFIG_T_H
#define SLUICE_CONFIG_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Durations are kept in milliseconds, sizes in bytes. */
struct config_timeouts {
	unsigned client_header_ms;	/* accept or last response -> full request head */
	unsigned client_idle_ms;	/* keep-alive wait for the next request */
	unsigned connect_ms;		/* TCP connect to a server */
	unsigned response_header_ms;	/* request sent -> response head read */
	unsigned body_idle_ms;		/* no progress while a body streams */
	unsigned upstream_idle_ms;	/* idle keep-alive upstream connection lifetime */
	unsigned shutdown_ms;		/* grace for in-flight exchanges on SIGTERM */
	unsigned tunnel_idle_ms;	/* WebSocket tunnel with no byte either way */
};

struct config_limits {
	size_t max_header_size;		/* whole request head, request line included */
	unsigned max_headers;		/* header fields in one head */
	size_t max_uri;			/* request-target length */
	uint64_t ws_max_message;	/* WebSocket message, all fragments; over it: close 1009 */
};

struct config_listener {
	char *name;
	char *address;			/* as written: "0.0.0.0:8080", "[::1]:8080" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int backlog;
};

struct config_server {
	char *name;
	char *address;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned weight;		/* 1..1000 */
	unsigned index;			/* position within its pool */
	unsigned gindex;		/* position among all servers of the generation */
	struct config_pool *pool;	/* back pointer */
	char sticky_token[23];		/* cookie value naming it (pool_attach; sticky.h) */
};

struct config_pool {
	char *name;
	struct config_server *servers;
	size_t nservers;
	unsigned retries;		/* further servers tried after a failed connect */
	unsigned keepalive_max;		/* idle upstream connections per server and worker */
	unsigned index;			/* position among the generation's pools */
	struct pool *rt;		/* runtime state (balancer), set by pool_attach() */
};

/* Route stickiness, a bit set: cookie is tried first, then the sid. */
#define CONFIG_STICKY_COOKIE	0x1u
#define CONFIG_STICKY_SOCKETIO	0x2u

enum config_host_kind {
	CONFIG_HOST_ANY = 0,		/* "*" */
	CONFIG_HOST_SUFFIX,		/* "*.example.com": any name ending in ".example.com" */
	CONFIG_HOST_EXACT,		/* "example.com" */
};

struct config_route {
	char *name;
	char *host;			/* lower case; for SUFFIX, the part after '*' (".example.com") */
	enum config_host_kind host_kind;
	char *path;			/* prefix, starts with '/' */
	size_t path_len;
	struct config_pool *pool;
	size_t host_len;		/* strlen(host) */
	char *pool_name;		/* as written; pool is what it names */
	unsigned index;			/* position in the file; routes[] is in match order */
	unsigned sticky;		/* CONFIG_STICKY_* bits; 0: off */
	char *sticky_cookie;		/* cookie name for CONFIG_STICKY_COOKIE */
};

enum config_log_level {
	CONFIG_LOG_ERROR = 0,
	CONFIG_LOG_WARN,
	CONFIG_LOG_INFO,
	CONFIG_LOG_DEBUG,
};

struct config {
	atomic_uint refcnt;
	char *file;
	unsigned workers;
	struct config_listener *listeners;
	size_t nlisteners;
	struct config_pool *pools;
	size_t npools;
	size_t nservers;		/* over all pools: range of config_server.gindex */
	struct config_route *routes;
	size_t nroutes;
	struct config_timeouts timeouts;
	struct config_limits limits;
	char *access_log;		/* NULL: off; "-": stdout; otherwise a file path */
	enum config_log_level log_level;
	/* HMAC key for sticky cookies: from sticky_key, or random per process
	 * (sticky_key_random) when the file sets none. */
	unsigned char *sticky_key;
	size_t sticky_key_len;
	bool sticky_key_random;
	/* Called by the last config_unref() before anything is freed, to
	 * release runtime state attached to the generation (pool_detach). */
	void (*on_free)(struct config *cfg);
};

/*
 * One directive of the file format as the tables in config_table.c describe
 * it, for reference output and for the tests that keep conf/sluice.conf and
 * docs/configuration.md in step with the code.
 */
struct config_directive {
	const char *section;		/* "" at top level, "pool", "pool.server", ... */
	const char *name;
	const char *type;		/* "integer", "duration", "size", "section", ... */
	const char *def;		/* default as written in a file; NULL: none or computed */
	int required;			/* the file must set it */
	const char *bounds;		/* "1..64", "1ms..24h", "at least 1" (sections); or NULL */
	const char *help;		/* the one-line description */
};

#endif
