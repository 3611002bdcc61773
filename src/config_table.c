/*
 * The directive tables: every option of the file format with its type,
 * default, bounds and help, one table per section, and the reference walk
 * over them (config_foreach_directive). Data only: config.c, config_check.c
 * and config_build.c apply the tables while loading, config_value.c converts
 * the values.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config-int.h"

#define MS_PER_DAY	(24ULL * 3600 * 1000)

/* ------------------------------------------------------------------ tables */

static const char *const type_names[] = {
	[OPT_SECTION] = "section",
	[OPT_UINT] = "integer",
	[OPT_INT] = "integer",
	[OPT_DURATION] = "duration",
	[OPT_SIZE] = "size",
	[OPT_SIZE64] = "size",
	[OPT_LOG_LEVEL] = "log level",
	[OPT_LOG_TARGET] = "log target",
	[OPT_ADDRESS] = "address",
	[OPT_HOST] = "host pattern",
	[OPT_PATH] = "path prefix",
	[OPT_REF] = "name",
	[OPT_STICKY] = "sticky mode",
	[OPT_COOKIE_NAME] = "cookie name",
	[OPT_SECRET] = "secret",
	[OPT_BOOL] = "boolean",
	[OPT_STRING] = "string",
	[OPT_FILE] = "file",
	[OPT_SECONDS] = "duration",
	[OPT_TLS_VERSION] = "TLS version",
	[OPT_REDIRECT] = "redirect",
	[OPT_SERVER_NAME] = "server name",
	[OPT_RESOLVERS] = "address list",
	[OPT_FAMILY] = "address family",
	[OPT_BALANCE] = "balancer",
	[OPT_HASH_KEY] = "hash key",
	[OPT_CHECK_TYPE] = "check type",
	[OPT_STATUS_RANGE] = "status range",
	[OPT_PERCENT] = "percentage",
	[OPT_RL_KEY] = "limit key",
	[OPT_RL_KIND] = "limit kind",
	[OPT_RL_EXCEED] = "exceed action",
	[OPT_NAMES] = "name list",
	[OPT_CIDRS] = "CIDR list",
	[OPT_REDIS_ERROR] = "error policy",
};

static unsigned long long default_workers(void);

#define DURATION(n, field, dflt, text) { .name = (n), .type = OPT_DURATION, .def = (dflt), \
	.min = 1, .max = MS_PER_DAY, .off = offsetof(struct config_timeouts, field), .help = (text) }

static const struct opt_def timeouts_opts[] = {
	DURATION("client_header", client_header_ms, "10s",
		"accept (or end of previous response) to complete request head, else 408"),
	DURATION("client_idle", client_idle_ms, "60s",
		"keep-alive wait for the next request"),
	DURATION("connect", connect_ms, "3s",
		"TCP connect to a server"),
	DURATION("response_header", response_header_ms, "30s",
		"request sent to response head, else 504"),
	DURATION("body_idle", body_idle_ms, "60s",
		"no progress while a body streams"),
	DURATION("upstream_idle", upstream_idle_ms, "60s",
		"an idle upstream keep-alive connection is closed after this"),
	/* Above Socket.io's default pingInterval + pingTimeout (25s + 20s),
	 * so that a live but quiet session is never cut by the proxy. */
	DURATION("tunnel_idle", tunnel_idle_ms, "120s",
		"a WebSocket tunnel with no byte either way for this long is closed"),
};

static const struct section_def timeouts_section = {
	.name = "timeouts", .path = "timeouts",
	.opts = timeouts_opts, .nopts = ARRAY_LEN(timeouts_opts),
};

static const struct opt_def limits_opts[] = {
	{ .name = "max_header_size", .type = OPT_SIZE, .def = "16k", .min = 1024, .max = 1 << 20,
	  .off = offsetof(struct config_limits, max_header_size),
	  .help = "whole request head, request line included; over it: 431" },
	{ .name = "max_headers", .type = OPT_UINT, .def = "100", .min = 1, .max = 10000,
	  .off = offsetof(struct config_limits, max_headers),
	  .help = "header fields in one request head; over it: 431" },
	{ .name = "max_uri", .type = OPT_SIZE, .def = "8k", .min = 64, .max = 1 << 20,
	  .off = offsetof(struct config_limits, max_uri),
	  .help = "request-target length, below max_header_size; over it: 414" },
	{ .name = "ws_max_message", .type = OPT_SIZE64, .def = "64m", .min = 1024, .max = 4ULL << 30,
	  .off = offsetof(struct config_limits, ws_max_message),
	  .help = "a WebSocket message, all fragments together; over it: close 1009" },
};

const struct section_def config_table_limits = {
	.name = "limits", .path = "limits",
	.opts = limits_opts, .nopts = ARRAY_LEN(limits_opts), .check = config_check_limits,
};

static const struct opt_def certificate_opts[] = {
	{ .name = "chain", .type = OPT_FILE, .flags = OPT_REQUIRED,
	  .off = offsetof(struct config_tls_cert, chain),
	  .help = "PEM file: the certificate first, then its intermediate CAs" },
	{ .name = "key", .type = OPT_FILE,
	  .off = offsetof(struct config_tls_cert, key),
	  .help = "PEM file of the private key (RSA or ECDSA); default: the chain file" },
};

static const struct section_def certificate_section = {
	.name = "certificate", .path = "listener.tls.certificate", .flags = SEC_TITLED,
	.size = sizeof(struct config_tls_cert),
	.name_off = offsetof(struct config_tls_cert, name),
	.opts = certificate_opts, .nopts = ARRAY_LEN(certificate_opts),
};

#define TLS_FIELD(f) offsetof(struct config_listener_tls, f)

static const struct opt_def tls_opts[] = {
	{ .name = "certificate", .type = OPT_SECTION, .min = 1, .sub = &certificate_section,
	  .off = TLS_FIELD(certs), .aux = TLS_FIELD(ncerts),
	  .help = "a certificate and its key; the first is the default, the others are chosen by SNI" },
	{ .name = "min_version", .type = OPT_TLS_VERSION, .def = "TLS1.2",
	  .off = TLS_FIELD(min_version),
	  .help = "oldest protocol accepted: TLS1.2 or TLS1.3" },
	{ .name = "max_version", .type = OPT_TLS_VERSION, .def = "TLS1.3",
	  .off = TLS_FIELD(max_version),
	  .help = "newest protocol accepted: TLS1.2 or TLS1.3" },
	/* ECDHE for forward secrecy, AEAD only: no CBC, no static RSA. */
	{ .name = "ciphers", .type = OPT_STRING, .def = "ECDHE+AESGCM:ECDHE+CHACHA20",
	  .off = TLS_FIELD(ciphers),
	  .help = "TLS 1.2 ciphers, in OpenSSL's cipher list syntax" },
	{ .name = "ciphersuites", .type = OPT_STRING,
	  .def = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
	  .off = TLS_FIELD(ciphersuites),
	  .help = "TLS 1.3 cipher suites, separated by \":\"" },
	{ .name = "session_cache", .type = OPT_UINT, .def = "20000", .min = 0, .max = 10000000,
	  .off = TLS_FIELD(session_cache),
	  .help = "sessions kept for resumption by session id, shared by the workers; 0 = off" },
	{ .name = "session_timeout", .type = OPT_SECONDS, .def = "5m", .min = 1, .max = 7 * 86400,
	  .off = TLS_FIELD(session_timeout_s),
	  .help = "how long a client may resume a session, by id or by ticket" },
	{ .name = "tickets", .type = OPT_BOOL, .def = "on",
	  .off = TLS_FIELD(tickets),
	  .help = "resume sessions from tickets the client keeps (RFC 5077, TLS 1.3 tickets)" },
	{ .name = "ticket_rotate", .type = OPT_SECONDS, .def = "1h", .min = 60, .max = 7 * 86400,
	  .off = TLS_FIELD(ticket_rotate_s),
	  .help = "a new ticket key this often; a key still decrypts for two more intervals" },
	{ .name = "ticket_key_file", .type = OPT_FILE,
	  .off = TLS_FIELD(ticket_key_file),
	  .help = "ticket keys shared by replicas, one base64 key a line, the first encrypts; no rotation by time" },
	{ .name = "hsts", .type = OPT_SECONDS, .def = "0s", .min = 0, .max = 2 * 365 * 86400,
	  .off = TLS_FIELD(hsts_s),
	  .help = "Strict-Transport-Security max-age sent on every response; 0s = no header" },
};

static const struct section_def tls_section = {
	.name = "tls", .path = "listener.tls",
	.opts = tls_opts, .nopts = ARRAY_LEN(tls_opts), .check = config_check_tls,
};

static const struct opt_def listener_opts[] = {
	{ .name = "address", .type = OPT_ADDRESS, .flags = OPT_REQUIRED,
	  .off = offsetof(struct config_listener, address),
	  .aux = offsetof(struct config_listener, addr),
	  .aux2 = offsetof(struct config_listener, addrlen),
	  .help = "IP:port to listen on; IPv6 as \"[::]:8080\"; \"*:8080\" is any IPv4" },
	{ .name = "backlog", .type = OPT_INT, .def = "511", .min = 1, .max = 65535,
	  .off = offsetof(struct config_listener, backlog),
	  .help = "queue of connections not yet accepted (listen() backlog)" },
	{ .name = "redirect_https", .type = OPT_REDIRECT, .def = "off",
	  .off = offsetof(struct config_listener, redirect_https),
	  .help = "plain listener that answers 301 to https://: off, on (port 443) or the https port" },
	{ .name = "proxy_protocol", .type = OPT_BOOL, .def = "off",
	  .off = offsetof(struct config_listener, proxy_protocol),
	  .help = "connections start with a PROXY protocol v1 or v2 header whose source becomes the client address" },
	{ .name = "tls", .type = OPT_SECTION, .flags = OPT_PRESENT, .sub = &tls_section,
	  .off = offsetof(struct config_listener, tls_conf),
	  .aux = offsetof(struct config_listener, tls_enabled),
	  .help = "makes the listener speak TLS (HTTPS); without it, plain HTTP" },
};

static const struct section_def listener_section = {
	.name = "listener", .path = "listener", .flags = SEC_TITLED,
	.size = sizeof(struct config_listener),
	.name_off = offsetof(struct config_listener, name),
	.opts = listener_opts, .nopts = ARRAY_LEN(listener_opts),
	.check = config_check_listener,
};

static const struct opt_def server_opts[] = {
	{ .name = "address", .type = OPT_ADDRESS, .flags = OPT_REQUIRED | OPT_NAME_OK,
	  .off = offsetof(struct config_server, address),
	  .aux = offsetof(struct config_server, addr),
	  .aux2 = offsetof(struct config_server, addrlen),
	  .help = "IP:port of the server, or HOST:port to find its addresses through DNS" },
	{ .name = "weight", .type = OPT_UINT, .def = "1", .min = 1, .max = 1000,
	  .off = offsetof(struct config_server, weight),
	  .help = "share of the pool's requests, relative to the other servers" },
	{ .name = "tls_server_name", .type = OPT_SERVER_NAME,
	  .off = offsetof(struct config_server, tls_server_name),
	  .help = "this server's TLS name, in place of the pool's tls_server_name" },
	/* No defaults: unset, the pool's apply (config_build.c, expand_named). */
	{ .name = "resolve_interval", .type = OPT_DURATION, .min = 100, .max = 3600 * 1000,
	  .off = offsetof(struct config_server, resolve_interval_ms),
	  .help = "this server's resolve_interval, in place of the pool's" },
	{ .name = "max_addresses", .type = OPT_UINT, .min = 1, .max = 64,
	  .off = offsetof(struct config_server, max_addresses),
	  .help = "this server's max_addresses, in place of the pool's" },
	{ .name = "resolve_family", .type = OPT_FAMILY,
	  .off = offsetof(struct config_server, resolve_family),
	  .help = "this server's resolve_family, in place of the pool's" },
};

static const struct section_def server_section = {
	.name = "server", .path = "pool.server", .flags = SEC_TITLED,
	.size = sizeof(struct config_server),
	.name_off = offsetof(struct config_server, name),
	.opts = server_opts, .nopts = ARRAY_LEN(server_opts),
};

#define HEALTH_FIELD(f) offsetof(struct config_health, f)

static const struct opt_def health_opts[] = {
	{ .name = "type", .type = OPT_CHECK_TYPE, .def = "http",
	  .off = HEALTH_FIELD(type),
	  .help = "http (a request and its status), socketio (an Engine.IO handshake) or tcp (a connect)" },
	{ .name = "method", .type = OPT_STRING, .def = "GET",
	  .off = HEALTH_FIELD(method),
	  .help = "method of the http check's request" },
	/* No default here: it depends on the type (config_build.c fills it in). */
	{ .name = "path", .type = OPT_STRING,
	  .off = HEALTH_FIELD(path),
	  .help = "target of the check's request; default: \"/\" (http), \"/socket.io/\" (socketio)" },
	{ .name = "host", .type = OPT_STRING,
	  .off = HEALTH_FIELD(host),
	  .help = "Host of the check's request; default: the server's TLS name, else its address" },
	{ .name = "status", .type = OPT_STATUS_RANGE, .def = "200-399",
	  .off = HEALTH_FIELD(status_min), .aux = HEALTH_FIELD(status_max),
	  .help = "statuses that pass the http check: one, or a range such as 200-399" },
	{ .name = "body", .type = OPT_STRING,
	  .off = HEALTH_FIELD(body),
	  .help = "text the answer's body must contain to pass (first 64k); default: any body" },
	{ .name = "interval", .type = OPT_DURATION, .def = "2s", .min = 100, .max = 3600 * 1000,
	  .off = HEALTH_FIELD(interval_ms),
	  .help = "time between two checks of a server" },
	{ .name = "timeout", .type = OPT_DURATION, .def = "1s", .min = 10, .max = 60 * 1000,
	  .off = HEALTH_FIELD(timeout_ms),
	  .help = "a check without a verdict after this fails; at most interval" },
	{ .name = "rise", .type = OPT_UINT, .def = "2", .min = 1, .max = 100,
	  .off = HEALTH_FIELD(rise),
	  .help = "passed checks in a row that bring a down server back" },
	{ .name = "fall", .type = OPT_UINT, .def = "3", .min = 1, .max = 100,
	  .off = HEALTH_FIELD(fall),
	  .help = "failed checks in a row that take a server down" },
	{ .name = "jitter", .type = OPT_PERCENT, .def = "10%", .min = 0, .max = 50,
	  .off = HEALTH_FIELD(jitter_pct),
	  .help = "each interval is drawn at random within this much of it, so checks do not bunch up" },
	{ .name = "flap_changes", .type = OPT_UINT, .def = "4", .min = 0, .max = 64,
	  .off = HEALTH_FIELD(flap_changes),
	  .help = "up/down changes within flap_window that make a server flapping; 0 = never" },
	{ .name = "flap_window", .type = OPT_DURATION, .def = "60s", .min = 1000, .max = MS_PER_DAY,
	  .off = HEALTH_FIELD(flap_window_ms),
	  .help = "the time over which flap_changes are counted" },
	{ .name = "flap_hold", .type = OPT_DURATION, .def = "10s", .min = 100, .max = MS_PER_DAY,
	  .off = HEALTH_FIELD(flap_hold_ms),
	  .help = "a flapping server is held down this long, whatever its checks say" },
	{ .name = "flap_hold_max", .type = OPT_DURATION, .def = "5m", .min = 100, .max = MS_PER_DAY,
	  .off = HEALTH_FIELD(flap_hold_max_ms),
	  .help = "each hold doubles the next one up to this; a server quiet this long starts over" },
};

static const struct section_def health_section = {
	.name = "health", .path = "pool.health",
	.opts = health_opts, .nopts = ARRAY_LEN(health_opts), .check = config_check_health,
};

#define PASSIVE_FIELD(f) offsetof(struct config_passive, f)

static const struct opt_def passive_opts[] = {
	{ .name = "connect_failures", .type = OPT_UINT, .def = "3", .min = 0, .max = 1000,
	  .off = PASSIVE_FIELD(connect_failures),
	  .help = "refused or timed-out connects in a row that eject a server; 0 = never" },
	{ .name = "status_5xx", .type = OPT_UINT, .def = "0", .min = 0, .max = 1000,
	  .off = PASSIVE_FIELD(status_5xx),
	  .help = "5xx answers in a row (504 for no answer in time too) that eject a server; 0 = never" },
	{ .name = "base_ejection", .type = OPT_DURATION, .def = "10s", .min = 100, .max = MS_PER_DAY,
	  .off = PASSIVE_FIELD(base_ejection_ms),
	  .help = "an ejection lasts this times the number of ejections in a row" },
	{ .name = "max_ejection", .type = OPT_DURATION, .def = "5m", .min = 100, .max = MS_PER_DAY,
	  .off = PASSIVE_FIELD(max_ejection_ms),
	  .help = "the longest ejection; a server in service this long starts over at base_ejection" },
	{ .name = "max_ejected", .type = OPT_PERCENT, .def = "50%", .min = 0, .max = 100,
	  .off = PASSIVE_FIELD(max_ejected_pct),
	  .help = "most of the pool's servers ejected at once (rounded down)" },
};

static const struct section_def passive_section = {
	.name = "passive", .path = "pool.passive",
	.opts = passive_opts, .nopts = ARRAY_LEN(passive_opts), .check = config_check_passive,
};

static const struct opt_def pool_opts[] = {
	{ .name = "retries", .type = OPT_UINT, .def = "2", .min = 0, .max = 100,
	  .off = offsetof(struct config_pool, retries),
	  .help = "other servers tried after a refused or timed-out connect" },
	{ .name = "keepalive", .type = OPT_UINT, .def = "32", .min = 0, .max = 10000,
	  .off = offsetof(struct config_pool, keepalive_max),
	  .help = "idle upstream connections kept per server and worker; 0 = none" },
	{ .name = "balance", .type = OPT_BALANCE, .def = "roundrobin",
	  .off = offsetof(struct config_pool, balance),
	  .aux = offsetof(struct config_pool, keyed),
	  .help = "how a server is chosen: roundrobin, leastconn, hash or random2" },
	{ .name = "hash_key", .type = OPT_HASH_KEY, .def = "client",
	  .off = offsetof(struct config_pool, hash_key),
	  .aux = offsetof(struct config_pool, hash_key_name),
	  .help = "what balance = hash hashes: client, \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"" },
	{ .name = "tls", .type = OPT_BOOL, .def = "off",
	  .off = offsetof(struct config_pool, tls_on),
	  .help = "connect to the servers with TLS" },
	{ .name = "tls_verify", .type = OPT_BOOL, .def = "on",
	  .off = offsetof(struct config_pool, tls_verify),
	  .help = "check the servers' certificates against tls_ca and their name or IP address" },
	{ .name = "tls_ca", .type = OPT_FILE,
	  .off = offsetof(struct config_pool, tls_ca),
	  .help = "PEM file (or directory) of the CAs to trust; default: the system's store" },
	{ .name = "tls_server_name", .type = OPT_SERVER_NAME,
	  .off = offsetof(struct config_pool, tls_server_name),
	  .help = "name sent as SNI and verified; default: none, the server's IP address is verified" },
	{ .name = "tls_cert", .type = OPT_FILE,
	  .off = offsetof(struct config_pool, tls_cert),
	  .help = "client certificate chain (PEM) for servers that require one" },
	{ .name = "tls_key", .type = OPT_FILE,
	  .off = offsetof(struct config_pool, tls_key),
	  .help = "the client certificate's private key (PEM); default: the tls_cert file" },
	{ .name = "resolve_interval", .type = OPT_DURATION, .def = "5s", .min = 100, .max = 3600 * 1000,
	  .off = offsetof(struct config_pool, resolve_interval_ms),
	  .help = "how often the host name of a server is resolved again (DNS discovery)" },
	{ .name = "max_addresses", .type = OPT_UINT, .def = "8", .min = 1, .max = 64,
	  .off = offsetof(struct config_pool, max_addresses),
	  .help = "slots of a server that names a host: the most addresses it takes at once" },
	{ .name = "resolve_family", .type = OPT_FAMILY, .def = "any",
	  .off = offsetof(struct config_pool, resolve_family),
	  .help = "records a host name is resolved to: any (A and AAAA), ipv4 (A) or ipv6 (AAAA)" },
	{ .name = "slow_start", .type = OPT_DURATION, .def = "0s", .min = 0, .max = 3600 * 1000,
	  .off = offsetof(struct config_pool, slow_start_ms),
	  .help = "a server back in service ramps from a tenth of its weight to all of it over this; 0s = off" },
	{ .name = "health", .type = OPT_SECTION, .flags = OPT_PRESENT, .sub = &health_section,
	  .off = offsetof(struct config_pool, health),
	  .aux = offsetof(struct config_pool, health_on),
	  .help = "active health checks of the pool's servers; without it, none" },
	{ .name = "passive", .type = OPT_SECTION, .sub = &passive_section,
	  .off = offsetof(struct config_pool, passive),
	  .help = "ejection of servers on errors that real requests meet" },
	{ .name = "server", .type = OPT_SECTION, .min = 1, .sub = &server_section,
	  .off = offsetof(struct config_pool, servers),
	  .aux = offsetof(struct config_pool, nservers),
	  .help = "a backend server; one or more per pool" },
};

static const struct section_def pool_section = {
	.name = "pool", .path = "pool", .flags = SEC_TITLED,
	.size = sizeof(struct config_pool),
	.name_off = offsetof(struct config_pool, name),
	.opts = pool_opts, .nopts = ARRAY_LEN(pool_opts), .check = config_check_pool,
};

static const struct opt_def route_opts[] = {
	{ .name = "host", .type = OPT_HOST, .def = "*",
	  .off = offsetof(struct config_route, host),
	  .aux = offsetof(struct config_route, host_kind),
	  .aux2 = offsetof(struct config_route, host_len),
	  .help = "Host to match: a name, \"*.example.com\" for its subdomains, or \"*\" for any" },
	{ .name = "path", .type = OPT_PATH, .def = "/",
	  .off = offsetof(struct config_route, path),
	  .aux = offsetof(struct config_route, path_len),
	  .help = "path prefix to match, on whole segments; \"/\" matches every path" },
	{ .name = "pool", .type = OPT_REF, .flags = OPT_REQUIRED,
	  .off = offsetof(struct config_route, pool_name),
	  .help = "the pool that serves the matching requests" },
	{ .name = "sticky", .type = OPT_STICKY, .def = "off",
	  .off = offsetof(struct config_route, sticky),
	  .help = "keep a client on one server: off, cookie, socketio, or \"cookie socketio\" for both" },
	{ .name = "sticky_cookie", .type = OPT_COOKIE_NAME, .def = "sluice",
	  .off = offsetof(struct config_route, sticky_cookie),
	  .help = "name of the cookie that sticky = cookie sets; an RFC 6265 token" },
	{ .name = "ratelimit", .type = OPT_NAMES,
	  .off = offsetof(struct config_route, ratelimit_names),
	  .help = "ratelimit sections that apply to the route, separated by spaces or commas" },
};

static const struct section_def route_section = {
	.name = "route", .path = "route", .flags = SEC_TITLED,
	.size = sizeof(struct config_route),
	.name_off = offsetof(struct config_route, name),
	.opts = route_opts, .nopts = ARRAY_LEN(route_opts),
};

#define REDIS_FIELD(f) offsetof(struct config_redis, f)

static const struct opt_def redis_opts[] = {
	{ .name = "address", .type = OPT_ADDRESS, .flags = OPT_NAME_OK, .def = "127.0.0.1:6379",
	  .off = REDIS_FIELD(address), .aux = REDIS_FIELD(addr), .aux2 = REDIS_FIELD(addrlen),
	  .help = "IP:port (or HOST:port) of the Redis server that holds the shared limits" },
	{ .name = "user", .type = OPT_STRING,
	  .off = REDIS_FIELD(user),
	  .help = "ACL user to AUTH as, with password; default: AUTH with the password alone" },
	/* A secret like sticky_key: never echoed, best set from ${VAR}. */
	{ .name = "password", .type = OPT_SECRET, .min = 1, .max = 512,
	  .off = REDIS_FIELD(password), .aux = REDIS_FIELD(password_len),
	  .help = "password sent with AUTH; default: none, no AUTH; best set from ${VAR}" },
	{ .name = "prefix", .type = OPT_STRING, .def = "sluice:rl:",
	  .off = REDIS_FIELD(prefix),
	  .help = "start of every key sluice writes, before the limit's name and the client's key" },
	{ .name = "timeout", .type = OPT_DURATION, .def = "5ms", .min = 1, .max = 10 * 1000,
	  .off = REDIS_FIELD(timeout_ms),
	  .help = "a request waits this long for Redis, then on_error decides" },
	{ .name = "on_error", .type = OPT_REDIS_ERROR, .def = "local",
	  .off = REDIS_FIELD(on_error),
	  .help = "when Redis is slow or down: allow, deny (429) or local (the in-process limiter)" },
	{ .name = "lease_max", .type = OPT_UINT, .def = "256", .min = 1, .max = 10000,
	  .off = REDIS_FIELD(lease_max),
	  .help = "most tokens a worker takes from Redis at once for one key (a lease)" },
};

static const struct section_def redis_section = {
	.name = "redis", .path = "redis",
	.opts = redis_opts, .nopts = ARRAY_LEN(redis_opts),
};

#define RL_FIELD(f) offsetof(struct rl_policy, f)

static const struct opt_def ratelimit_opts[] = {
	{ .name = "rate", .type = OPT_UINT, .flags = OPT_REQUIRED, .min = 1, .max = 1000000,
	  .off = RL_FIELD(rate),
	  .help = "events allowed in each window (per); for kind = connections, the most at once" },
	{ .name = "per", .type = OPT_SECONDS, .def = "1s", .min = 1, .max = 86400,
	  .off = RL_FIELD(per_s),
	  .help = "the window that rate counts over, 1s to 24h" },
	{ .name = "burst", .type = OPT_UINT, .def = "0", .min = 0, .max = 1000000,
	  .off = RL_FIELD(burst),
	  .help = "events allowed at once beyond the steady spacing of per / rate" },
	{ .name = "key", .type = OPT_RL_KEY, .def = "client",
	  .off = RL_FIELD(key), .aux = RL_FIELD(key_name),
	  .help = "whose budget an event takes: client, \"header:NAME\", \"cookie:NAME\" or route" },
	{ .name = "kind", .type = OPT_RL_KIND, .def = "requests",
	  .off = RL_FIELD(kind),
	  .help = "what is counted: requests, upgrades, messages (per WebSocket) or connections" },
	{ .name = "on_exceed", .type = OPT_RL_EXCEED, .def = "close",
	  .off = RL_FIELD(on_exceed),
	  .help = "kind = messages over the limit: close (with 1008) or drop the message" },
	{ .name = "headers", .type = OPT_BOOL, .def = "off",
	  .off = RL_FIELD(headers),
	  .help = "allowed responses carry a RateLimit field too (429 answers always do)" },
};

static const struct section_def ratelimit_section = {
	.name = "ratelimit", .path = "ratelimit", .flags = SEC_TITLED,
	.size = sizeof(struct rl_policy),
	.name_off = offsetof(struct rl_policy, name),
	.opts = ratelimit_opts, .nopts = ARRAY_LEN(ratelimit_opts),
	.check = config_check_ratelimit,
};

static const struct opt_def root_opts[] = {
	{ .name = "workers", .type = OPT_UINT, .min = 1, .max = 64,
	  .off = offsetof(struct config, workers), .compute = default_workers,
	  .help = "worker threads; default: the number of online CPUs, at most 64" },
	{ .name = "log_level", .type = OPT_LOG_LEVEL, .def = "info",
	  .off = offsetof(struct config, log_level),
	  .help = "error, warn, info or debug" },
	{ .name = "access_log", .type = OPT_LOG_TARGET, .def = "-",
	  .off = offsetof(struct config, access_log),
	  .help = "\"-\" = stdout, \"off\" = none, otherwise a file path" },
	{ .name = "shutdown_timeout", .type = OPT_DURATION, .def = "30s", .min = 1, .max = MS_PER_DAY,
	  .off = offsetof(struct config, timeouts.shutdown_ms),
	  .help = "grace for in-flight exchanges on SIGTERM" },
	/* No default on purpose: a key written in a shipped file would be
	 * known to everyone; without one, config_build.c draws a random one. */
	{ .name = "sticky_key", .type = OPT_SECRET, .min = 16, .max = 1024,
	  .off = offsetof(struct config, sticky_key), .aux = offsetof(struct config, sticky_key_len),
	  .help = "HMAC key that signs sticky cookies, 16 to 1024 bytes; a secret, best set from ${VAR}" },
	{ .name = "resolvers", .type = OPT_RESOLVERS,
	  .off = offsetof(struct config, resolvers),
	  .help = "DNS servers that discovery asks, \"IP[:PORT] ...\"; default: those of /etc/resolv.conf" },
	{ .name = "trusted_proxies", .type = OPT_CIDRS,
	  .off = offsetof(struct config, trusted_proxies),
	  .aux = offsetof(struct config, trusted), .aux2 = offsetof(struct config, ntrusted),
	  .help = "peers whose X-Forwarded-For gives the client address, \"CIDR ...\"; default: none" },
	{ .name = "listener", .type = OPT_SECTION, .min = 1, .sub = &listener_section,
	  .off = offsetof(struct config, listeners), .aux = offsetof(struct config, nlisteners),
	  .help = "a listening socket; one or more" },
	{ .name = "pool", .type = OPT_SECTION, .min = 1, .sub = &pool_section,
	  .off = offsetof(struct config, pools), .aux = offsetof(struct config, npools),
	  .help = "a group of servers that share requests; one or more" },
	{ .name = "route", .type = OPT_SECTION, .sub = &route_section,
	  .off = offsetof(struct config, routes), .aux = offsetof(struct config, nroutes),
	  .help = "sends the requests it matches to a pool; most specific match wins" },
	{ .name = "ratelimit", .type = OPT_SECTION, .sub = &ratelimit_section,
	  .off = offsetof(struct config, ratelimits), .aux = offsetof(struct config, nratelimits),
	  .help = "a named rate limit that routes apply; kept in-process, or in Redis with redis { }" },
	{ .name = "timeouts", .type = OPT_SECTION, .sub = &timeouts_section,
	  .off = offsetof(struct config, timeouts),
	  .help = "how long each phase of an exchange may take" },
	{ .name = "limits", .type = OPT_SECTION, .sub = &config_table_limits,
	  .off = offsetof(struct config, limits),
	  .help = "bounds on a request head and on WebSocket messages" },
	{ .name = "redis", .type = OPT_SECTION, .flags = OPT_PRESENT, .sub = &redis_section,
	  .off = offsetof(struct config, redis), .aux = offsetof(struct config, redis_on),
	  .help = "share rate limits through Redis; without it, they are kept in-process" },
};

const struct section_def config_table_root = {
	.name = "root", .path = "",
	.opts = root_opts, .nopts = ARRAY_LEN(root_opts),
};

static const struct section_def *const all_sections[] = {
	&config_table_root, &listener_section, &tls_section, &certificate_section,
	&pool_section, &server_section, &health_section, &passive_section, &route_section, &timeouts_section, &config_table_limits,
	&ratelimit_section,
	&redis_section,
};

static unsigned long long
default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > 64)
		n = 64;
	return (unsigned long long)n;
}

/* ----------------------------------------------------------------- lookup */

const struct section_def *
config_table_section(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(all_sections); i++)
		if (strcmp(all_sections[i]->name, name) == 0)
			return all_sections[i];
	return NULL;
}

const struct opt_def *
config_table_opt(const struct section_def *sd, const char *name)
{
	for (size_t i = 0; sd != NULL && i < sd->nopts; i++)
		if (strcmp(sd->opts[i].name, name) == 0)
			return &sd->opts[i];
	return NULL;
}

bool
config_table_titled(const char *kind, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(all_sections); i++) {
		const struct section_def *sd = all_sections[i];

		if ((sd->flags & SEC_TITLED) && strlen(sd->name) == len &&
		    memcmp(sd->name, kind, len) == 0)
			return true;
	}
	return false;
}

/* -------------------------------------------------------------- reference */

static void
foreach_in(const struct section_def *sd, config_directive_fn fn, void *arg)
{
	for (size_t i = 0; i < sd->nopts; i++) {
		const struct opt_def *d = &sd->opts[i];
		char bounds[80];
		struct config_directive cd = {
			.section = sd->path,
			.name = d->name,
			.type = type_names[d->type],
			.def = d->def,
			.required = (d->flags & OPT_REQUIRED) != 0,
			.help = d->help,
		};

		if (config_value_has_bounds(d)) {
			config_value_format_bounds(d, bounds, sizeof(bounds));
			cd.bounds = bounds;
		} else if (d->type == OPT_SECTION && d->min > 0) {
			snprintf(bounds, sizeof(bounds), "at least %llu", d->min);
			cd.bounds = bounds;
		} else if (d->type == OPT_SECRET) {
			snprintf(bounds, sizeof(bounds), "%llu..%llu bytes", d->min, d->max);
			cd.bounds = bounds;
		}
		fn(&cd, arg);
		if (d->type == OPT_SECTION)
			foreach_in(d->sub, fn, arg);
	}
}

void
config_foreach_directive(config_directive_fn fn, void *arg)
{
	foreach_in(&config_table_root, fn, arg);
}
