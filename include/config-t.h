/*
 * Types of one configuration generation: what config_build.c builds from a
 * file. A generation is immutable once built and shared by reference between the
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

/* TLS protocol versions as on the wire, the values OpenSSL uses too. */
#define CONFIG_TLS_1_2	0x0303u
#define CONFIG_TLS_1_3	0x0304u

/* One `certificate "NAME" { }` of a listener's tls section. */
struct config_tls_cert {
	char *name;
	char *chain;			/* PEM: the certificate, then its intermediates */
	char *key;			/* PEM private key; NULL: it is in the chain file */
};

/* A listener's tls { } directives as written; tls_server.c builds contexts from them. */
struct config_listener_tls {
	struct config_tls_cert *certs;	/* certs[0] is the default certificate */
	size_t ncerts;
	unsigned min_version;		/* CONFIG_TLS_1_2 or CONFIG_TLS_1_3 */
	unsigned max_version;
	char *ciphers;			/* TLS 1.2 cipher list (OpenSSL syntax) */
	char *ciphersuites;		/* TLS 1.3 cipher suites */
	unsigned session_cache;		/* entries of the server session cache; 0: off */
	unsigned session_timeout_s;	/* session lifetime, cache and tickets */
	bool tickets;
	unsigned ticket_rotate_s;	/* in-memory ticket keys: a new one this often */
	char *ticket_key_file;		/* NULL: in-memory keys */
	unsigned hsts_s;		/* Strict-Transport-Security max-age; 0: no header */
};

struct tls_server;			/* tls.h: a listener's TLS contexts */
struct tls_client;			/* tls.h: a pool's client context */

struct config_listener {
	char *name;
	char *address;			/* as written: "0.0.0.0:8080", "[::1]:8080" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int backlog;
	/* Plain listener answering every request with a 301 to https://: 0 is
	 * off, otherwise the port of the https URL (443: the URL has none). */
	unsigned redirect_https;
	/* Every connection starts with a PROXY protocol v1 or v2 header (from
	 * a load balancer in front), read before TLS and HTTP. */
	bool proxy_protocol;
	bool tls_enabled;		/* the file has a tls { } section here */
	struct config_listener_tls tls_conf;
	/* The listener's TLS contexts, built by config_load() from tls_conf,
	 * owned and freed by the generation; NULL for a plain listener. */
	struct tls_server *tls;
};

/* Which records DNS discovery asks for: resolve_family. */
enum config_family {
	CONFIG_FAMILY_POOL = 0,		/* a server's when unset: the pool's */
	CONFIG_FAMILY_ANY,		/* A and AAAA */
	CONFIG_FAMILY_IPV4,		/* A only */
	CONFIG_FAMILY_IPV6,		/* AAAA only */
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
	char *tls_server_name;		/* overrides the pool's; NULL: the pool's */
	struct server_rt *rt;		/* runtime state (server.h), set by pool_attach() */
	/*
	 * DNS discovery (dns.h). A server whose address names a host is loaded
	 * as max_addresses slots "NAME-1".."NAME-N" with its settings, which
	 * the answers fill; dns_name is NULL for a fixed address. The three
	 * settings are as the file sets them on the server while parsing (0:
	 * the pool's), and the ones that apply once loaded.
	 */
	char *dns_name;			/* host to resolve, lower case */
	unsigned dns_port;		/* port of every address it resolves to */
	unsigned dns_slot;		/* 1..max_addresses: this slot of the group */
	unsigned resolve_interval_ms;
	unsigned max_addresses;
	enum config_family resolve_family;
};

/* What a pool's active health check sends (health { type }). */
enum config_check_type {
	CONFIG_CHECK_HTTP = 0,		/* a request; the answer's status (and body) decide */
	CONFIG_CHECK_SOCKETIO,		/* an Engine.IO polling handshake must open a session */
	CONFIG_CHECK_TCP,		/* a connect (and TLS handshake) is enough */
};

/* A pool's health { } section: active checks, run by the main thread. */
struct config_health {
	unsigned type;			/* enum config_check_type */
	char *method;			/* http: request method */
	char *path;			/* request target; default by type (config_build.c) */
	char *host;			/* Host field; NULL: the server's TLS name or address */
	unsigned status_min;		/* http: status range that passes */
	unsigned status_max;
	char *body;			/* http: text the body must contain; NULL: any */
	unsigned interval_ms;		/* between two checks of a server */
	unsigned timeout_ms;		/* connect to verdict, at most interval */
	unsigned rise;			/* passes in a row that bring a server up */
	unsigned fall;			/* failures in a row that take it down */
	unsigned jitter_pct;		/* each interval drawn within +-this percent */
	unsigned flap_changes;		/* up/down changes within flap_window that hold it down; 0: never */
	unsigned flap_window_ms;
	unsigned flap_hold_ms;		/* first hold; each next one doubles ... */
	unsigned flap_hold_max_ms;	/* ... up to this */
};

/* A pool's passive { } section: ejection on what real traffic meets. */
struct config_passive {
	unsigned connect_failures;	/* failed connects in a row that eject; 0: never */
	unsigned status_5xx;		/* 5xx answers in a row that eject; 0: never */
	unsigned base_ejection_ms;	/* an ejection lasts this times the ejections in a row */
	unsigned max_ejection_ms;	/* ... at most this */
	unsigned max_ejected_pct;	/* share of the pool that may be ejected at once */
};

/* What a pool with a keyed balancer (balance = hash) hashes: hash_key. */
enum config_hash_key {
	CONFIG_HASH_CLIENT = 0,		/* the client's IP address, without port */
	CONFIG_HASH_HEADER,		/* a request header's value */
	CONFIG_HASH_COOKIE,		/* a cookie's value */
	CONFIG_HASH_QUERY,		/* a query parameter's raw value */
};

struct config_pool {
	char *name;
	struct config_server *servers;
	size_t nservers;
	unsigned retries;		/* further servers tried after a failed connect */
	unsigned keepalive_max;		/* idle upstream connections per server and worker */
	char *balance;			/* the balancer's name (lb_find), "roundrobin" by default */
	bool keyed;			/* it reads a hash key (lb_ops.keyed): extract one */
	enum config_hash_key hash_key;	/* what the key is */
	char *hash_key_name;		/* header, cookie or parameter name; NULL for client */
	bool health_on;			/* the file has a health { } section here */
	struct config_health health;
	struct config_passive passive;
	unsigned slow_start_ms;		/* weight ramp after a server comes back; 0: off */
	unsigned index;			/* position among the generation's pools */
	struct pool *rt;		/* runtime state (balancer), set by pool_attach() */
	/* DNS discovery defaults of its servers that name a host. */
	unsigned resolve_interval_ms;
	unsigned max_addresses;
	enum config_family resolve_family;
	/* TLS to the servers (tls = on). */
	bool tls_on;
	bool tls_verify;		/* check the server's certificate and name */
	char *tls_ca;			/* PEM CA file or directory; NULL: the system store */
	char *tls_server_name;		/* SNI and name to verify; NULL: verify the IP */
	char *tls_cert;			/* client certificate chain (mutual TLS) or NULL */
	char *tls_key;			/* its key; NULL: in tls_cert */
	/* The pool's client context, built by config_load() when tls_on, owned
	 * and freed by the generation; NULL otherwise. */
	struct tls_client *tls;
};

/* Route stickiness, a bit set: cookie is tried first, then the sid. */
#define CONFIG_STICKY_COOKIE	0x1u
#define CONFIG_STICKY_SOCKETIO	0x2u

enum config_host_kind {
	CONFIG_HOST_ANY = 0,		/* "*" */
	CONFIG_HOST_SUFFIX,		/* "*.example.com": any name ending in ".example.com" */
	CONFIG_HOST_EXACT,		/* "example.com" */
};

/* Most ratelimit names one route may list. */
#define CONFIG_ROUTE_MAX_RL	8

struct rl_policy;

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
	/* Rate limits: the names as written ("a b"), and the policies they
	 * name (in the generation's ratelimits[]); nrl is 0 for none, which
	 * is all the request path looks at. rl_kinds: RL_KINDS_BIT() set. */
	char *ratelimit_names;
	const struct rl_policy *rl[CONFIG_ROUTE_MAX_RL];
	unsigned nrl;
	unsigned rl_kinds;
};

/* What a rate limit counts (ratelimit { kind }). */
enum rl_kind {
	RL_KIND_REQUESTS = 0,		/* HTTP requests (upgrades included) */
	RL_KIND_UPGRADES,		/* WebSocket upgrade requests only */
	RL_KIND_MESSAGES,		/* messages per WebSocket connection, client to server */
	RL_KIND_CONNECTIONS,		/* concurrent client connections */
};

#define RL_KINDS_BIT(k)	(1u << (k))

/* What a rate limit's key is (ratelimit { key }). */
enum rl_key_kind {
	RL_KEY_CLIENT = 0,		/* the client's IP address (trusted_proxies, PROXY) */
	RL_KEY_HEADER,			/* a request header's value */
	RL_KEY_COOKIE,			/* a cookie's value */
	RL_KEY_ROUTE,			/* none: every client of the route shares one budget */
};

/* kind = messages over the limit (ratelimit { on_exceed }). */
enum rl_exceed {
	RL_EXCEED_CLOSE = 0,		/* close the WebSocket with 1008 */
	RL_EXCEED_DROP,			/* drop the message, frames and all */
};

/*
 * One `ratelimit "NAME" { }` section: a GCRA policy (ratelimit.h). Part of
 * the generation; t_us and tau_us are derived when it is built.
 */
struct rl_policy {
	char *name;
	unsigned rate;			/* events per `per`; connections: the most at once */
	unsigned per_s;			/* the window, in seconds */
	unsigned burst;			/* events beyond the steady spacing */
	unsigned key;			/* enum rl_key_kind */
	char *key_name;			/* header or cookie name; NULL otherwise */
	unsigned kind;			/* enum rl_kind */
	unsigned on_exceed;		/* enum rl_exceed */
	bool headers;			/* allowed responses carry RateLimit */
	unsigned index;			/* position in config.ratelimits */
	uint64_t t_us;			/* emission interval T = per / rate */
	uint64_t tau_us;		/* burst tolerance = burst * T */
};

/* A trusted_proxies entry: an address family, a prefix and its length. */
struct config_cidr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned bits;
	unsigned char addr[16];		/* network order; 4 bytes for AF_INET */
};

/* What a Redis-backed limit answers when Redis is slow or down: on_error. */
enum config_redis_error {
	CONFIG_REDIS_ALLOW = 0,		/* let the request through */
	CONFIG_REDIS_DENY,		/* answer 429 */
	CONFIG_REDIS_LOCAL,		/* ask the in-process limiter instead */
};

/* The top-level redis { } section: where rate limit state is shared (redis.c). */
struct config_redis {
	char *address;			/* as written: "127.0.0.1:6379" or "HOST:PORT" */
	struct sockaddr_storage addr;	/* addrlen 0: address names a host */
	socklen_t addrlen;
	char *user;			/* ACL user; NULL: AUTH with the password alone */
	unsigned char *password;	/* NULL: no AUTH */
	size_t password_len;
	char *prefix;			/* of every key sluice writes */
	unsigned timeout_ms;		/* budget of one request's round trip */
	unsigned on_error;		/* enum config_redis_error */
	unsigned lease_max;		/* most tokens a worker holds per key */
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
	/* DNS servers that discovery asks ("IP[:PORT]" separated by spaces or
	 * commas, as written); NULL: those of /etc/resolv.conf. */
	char *resolvers;
	/* ratelimit sections, in file order (ratelimit.h). */
	struct rl_policy *ratelimits;
	size_t nratelimits;
	/* Peers whose X-Forwarded-For is believed: the list as written and
	 * parsed; NULL/0 for none. */
	char *trusted_proxies;
	struct config_cidr *trusted;
	size_t ntrusted;
	/* Rate limits shared through Redis: the file has a redis { } section. */
	bool redis_on;
	struct config_redis redis;
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
