/*
 * Configuration generations: reads a libconfuse file, checks it against the
 * option tables below, builds the immutable struct config that the rest of
 * sluice shares by reference, and answers route lookups against it. It opens
 * no socket and no file named in the config (listener.c and log.c do).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <confuse.h>

#include "config.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))
#define MS_PER_DAY	(24ULL * 3600 * 1000)
#define MAX_FILE_SIZE	(16u << 20)
#define MAX_NAME_LEN	64
#define MAX_HOST_LEN	253
#define MAX_COOKIE_NAME	64
#define STICKY_KEY_RANDOM_LEN	32

/* ------------------------------------------------------------------ tables */

enum opt_type {
	OPT_SECTION = 0,	/* a nested block; see struct section_def */
	OPT_UINT,		/* unsigned, bounded */
	OPT_INT,		/* int, bounded */
	OPT_DURATION,		/* unsigned milliseconds, bounded */
	OPT_SIZE,		/* size_t bytes, bounded */
	OPT_SIZE64,		/* uint64_t bytes, bounded */
	OPT_LOG_LEVEL,		/* enum config_log_level */
	OPT_LOG_TARGET,		/* char *: NULL for "off" */
	OPT_ADDRESS,		/* char * as written, sockaddr at aux, socklen_t at aux2 */
	OPT_HOST,		/* char * pattern, enum config_host_kind at aux, size_t len at aux2 */
	OPT_PATH,		/* char * prefix, size_t length at aux */
	OPT_REF,		/* char * name of another object, resolved after parsing */
	OPT_STICKY,		/* unsigned CONFIG_STICKY_* bits */
	OPT_COOKIE_NAME,	/* char *, an RFC 6265 cookie-name token */
	OPT_SECRET,		/* unsigned char * bytes, size_t length at aux; min..max bytes;
				 * never echoed in an error message */
};

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
};

#define OPT_REQUIRED	0x1	/* no default: the file must set it */

struct load;
struct section_def;

/*
 * One directive. The same entry drives the libconfuse option list, the
 * checks while parsing, the defaults, the copy into struct config and the
 * reference (config_foreach_directive), so they cannot drift apart.
 */
struct opt_def {
	const char *name;
	enum opt_type type;
	unsigned flags;
	const char *def;		/* default as written in a file; NULL: required or computed */
	unsigned long long min, max;	/* bounds in ms, bytes or units; sections: min count */
	size_t off;			/* field in the section's struct */
	size_t aux, aux2;		/* second and third field, per type */
	unsigned long long (*compute)(void);	/* default computed at load time */
	const struct section_def *sub;	/* OPT_SECTION */
	const char *help;
};

#define SEC_TITLED	0x1	/* written `kind "name" { }`, may repeat, names unique */

struct section_def {
	const char *name;		/* as libconfuse names the cfg_t; "root" at top */
	const char *path;		/* for the reference: "pool.server" */
	unsigned flags;
	size_t size;			/* element size for titled sections */
	size_t name_off;		/* char *name in the element, titled sections */
	const struct opt_def *opts;
	size_t nopts;
	int (*check)(struct load *ld, cfg_t *sec, int line);	/* at '}' */
};

static int check_limits(struct load *ld, cfg_t *sec, int line);
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

static const struct section_def limits_section = {
	.name = "limits", .path = "limits",
	.opts = limits_opts, .nopts = ARRAY_LEN(limits_opts), .check = check_limits,
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
};

static const struct section_def listener_section = {
	.name = "listener", .path = "listener", .flags = SEC_TITLED,
	.size = sizeof(struct config_listener),
	.name_off = offsetof(struct config_listener, name),
	.opts = listener_opts, .nopts = ARRAY_LEN(listener_opts),
};

static const struct opt_def server_opts[] = {
	{ .name = "address", .type = OPT_ADDRESS, .flags = OPT_REQUIRED,
	  .off = offsetof(struct config_server, address),
	  .aux = offsetof(struct config_server, addr),
	  .aux2 = offsetof(struct config_server, addrlen),
	  .help = "IP:port of the server; host names are not accepted" },
	{ .name = "weight", .type = OPT_UINT, .def = "1", .min = 1, .max = 1000,
	  .off = offsetof(struct config_server, weight),
	  .help = "share of the pool's requests, relative to the other servers" },
};

static const struct section_def server_section = {
	.name = "server", .path = "pool.server", .flags = SEC_TITLED,
	.size = sizeof(struct config_server),
	.name_off = offsetof(struct config_server, name),
	.opts = server_opts, .nopts = ARRAY_LEN(server_opts),
};

static const struct opt_def pool_opts[] = {
	{ .name = "retries", .type = OPT_UINT, .def = "2", .min = 0, .max = 100,
	  .off = offsetof(struct config_pool, retries),
	  .help = "other servers tried after a refused or timed-out connect" },
	{ .name = "keepalive", .type = OPT_UINT, .def = "32", .min = 0, .max = 10000,
	  .off = offsetof(struct config_pool, keepalive_max),
	  .help = "idle upstream connections kept per server and worker; 0 = none" },
	{ .name = "server", .type = OPT_SECTION, .min = 1, .sub = &server_section,
	  .off = offsetof(struct config_pool, servers),
	  .aux = offsetof(struct config_pool, nservers),
	  .help = "a backend server; one or more per pool" },
};

static const struct section_def pool_section = {
	.name = "pool", .path = "pool", .flags = SEC_TITLED,
	.size = sizeof(struct config_pool),
	.name_off = offsetof(struct config_pool, name),
	.opts = pool_opts, .nopts = ARRAY_LEN(pool_opts),
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
};

static const struct section_def route_section = {
	.name = "route", .path = "route", .flags = SEC_TITLED,
	.size = sizeof(struct config_route),
	.name_off = offsetof(struct config_route, name),
	.opts = route_opts, .nopts = ARRAY_LEN(route_opts),
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
	 * known to everyone; without one, build() draws a random one. */
	{ .name = "sticky_key", .type = OPT_SECRET, .min = 16, .max = 1024,
	  .off = offsetof(struct config, sticky_key), .aux = offsetof(struct config, sticky_key_len),
	  .help = "HMAC key that signs sticky cookies, 16 to 1024 bytes; a secret, best set from ${VAR}" },
	{ .name = "listener", .type = OPT_SECTION, .min = 1, .sub = &listener_section,
	  .off = offsetof(struct config, listeners), .aux = offsetof(struct config, nlisteners),
	  .help = "a listening socket; one or more" },
	{ .name = "pool", .type = OPT_SECTION, .min = 1, .sub = &pool_section,
	  .off = offsetof(struct config, pools), .aux = offsetof(struct config, npools),
	  .help = "a group of servers that share requests; one or more" },
	{ .name = "route", .type = OPT_SECTION, .sub = &route_section,
	  .off = offsetof(struct config, routes), .aux = offsetof(struct config, nroutes),
	  .help = "sends the requests it matches to a pool; most specific match wins" },
	{ .name = "timeouts", .type = OPT_SECTION, .sub = &timeouts_section,
	  .off = offsetof(struct config, timeouts),
	  .help = "how long each phase of an exchange may take" },
	{ .name = "limits", .type = OPT_SECTION, .sub = &limits_section,
	  .off = offsetof(struct config, limits),
	  .help = "bounds on a request head and on WebSocket messages" },
};

static const struct section_def root_section = {
	.name = "root", .path = "",
	.opts = root_opts, .nopts = ARRAY_LEN(root_opts),
};

static const struct section_def *const all_sections[] = {
	&root_section, &listener_section, &pool_section, &server_section,
	&route_section, &timeouts_section, &limits_section,
};

static const char *const log_level_names[] = {
	[CONFIG_LOG_ERROR] = "error",
	[CONFIG_LOG_WARN] = "warn",
	[CONFIG_LOG_INFO] = "info",
	[CONFIG_LOG_DEBUG] = "debug",
};

/* ------------------------------------------------------------- load state */

/* A '{' as the pre-scan saw it: where the section starts and what it is. */
struct brace {
	int line;			/* line of the section keyword */
	char *kind;			/* keyword as written, or NULL */
	char *title;			/* title as written without quotes, or NULL */
};

/* A section whose '}' has been parsed. */
struct sec_rec {
	cfg_t *sec;
	cfg_t *parent;
	const char *kind;		/* points into the tables */
	int line;
};

/* An option set in the file. */
struct opt_rec {
	cfg_t *sec;
	const char *name;		/* points into the tables */
	int line;
};

/*
 * One config_load() in progress. libconfuse's callbacks carry no user
 * pointer, so the load in progress is reached through `current`; loading is
 * main-thread only and libconfuse's lexer is not reentrant anyway.
 */
struct load {
	const char *file;
	char *buf;			/* the file, with comments blanked out */
	size_t len;
	int nlines;
	cfg_t *root;

	struct brace *opens;		/* every '{' in file order */
	size_t nopens;
	size_t *closes;			/* index into opens, in closing order */
	size_t ncloses;
	size_t nclosed;			/* sections closed so far by the parser */

	struct sec_rec *secs;
	size_t nsecs;
	struct opt_rec *opts;
	size_t nopts;

	bool scan_failed;		/* the pre-scan found an error ... */
	bool scan_fatal;		/* ... that libconfuse must not see */
	int scan_line;
	char scan_msg[256];

	bool failed;			/* the first error, kept */
	int err_line;			/* 0: no line applies */
	char msg[512];
};

static struct load *current;

/* ----------------------------------------------------------------- helpers */

static void
out_of_memory(void)
{
	/* Config code runs at start-up and on reload in the main thread,
	 * where STYLE.md allows giving up on allocation failure. */
	fputs("sluice: out of memory while loading the configuration\n", stderr);
	abort();
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		out_of_memory();
	return p;
}

static void *
xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		out_of_memory();
	p = realloc(p, n * size != 0 ? n * size : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (d == NULL)
		out_of_memory();
	return d;
}

static char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

static void
lower_ascii(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* "1h", "2m", "10s" or "500ms": the largest unit that is exact. */
static void
format_duration(unsigned long long ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", ms / 3600000);
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%llum", ms / 60000);
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%llus", ms / 1000);
	else
		snprintf(buf, len, "%llums", ms);
}

static void
format_size(unsigned long long n, char *buf, size_t len)
{
	if (n != 0 && n % (1ULL << 30) == 0)
		snprintf(buf, len, "%llug", n >> 30);
	else if (n != 0 && n % (1ULL << 20) == 0)
		snprintf(buf, len, "%llum", n >> 20);
	else if (n != 0 && n % 1024 == 0)
		snprintf(buf, len, "%lluk", n >> 10);
	else
		snprintf(buf, len, "%llu", n);
}

static void
format_value(enum opt_type type, unsigned long long n, char *buf, size_t len)
{
	if (type == OPT_DURATION)
		format_duration(n, buf, len);
	else if (type == OPT_SIZE || type == OPT_SIZE64)
		format_size(n, buf, len);
	else
		snprintf(buf, len, "%llu", n);
}

static bool
has_bounds(const struct opt_def *d)
{
	return d->type == OPT_UINT || d->type == OPT_INT || d->type == OPT_DURATION ||
		d->type == OPT_SIZE || d->type == OPT_SIZE64;
}

static void
format_bounds(const struct opt_def *d, char *buf, size_t len)
{
	char lo[32], hi[32];

	format_value(d->type, d->min, lo, sizeof(lo));
	format_value(d->type, d->max, hi, sizeof(hi));
	snprintf(buf, len, "%s..%s", lo, hi);
}

/* Object names end up in logs and JSON ("server":"chat/a") unescaped. */
static bool
name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-' && s[n] != '.')
			return false;
	return n >= 1 && n <= MAX_NAME_LEN;
}

#define NAME_RULE "1 to 64 letters, digits, \"_\", \"-\" or \".\""

/* Host name syntax: dot-separated labels of letters, digits, '-' or '_'. */
static bool
hostname_ok(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > MAX_HOST_LEN)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* ----------------------------------------------------------------- parsers */

static int
parse_digits(const char **sp, unsigned long long *out)
{
	const char *s = *sp;
	unsigned long long n = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (n > (ULLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (unsigned long long)(*s - '0');
	}
	*sp = s;
	*out = n;
	return 0;
}

int
config_parse_duration(const char *s, unsigned *ms)
{
	unsigned long long n, mult;

	if (s == NULL || parse_digits(&s, &n) < 0)
		return -1;
	if (*s == '\0' || strcmp(s, "s") == 0)
		mult = 1000;
	else if (strcmp(s, "ms") == 0)
		mult = 1;
	else if (strcmp(s, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(s, "h") == 0)
		mult = 3600 * 1000;
	else
		return -1;
	if (n > UINT_MAX / mult)
		return -1;
	*ms = (unsigned)(n * mult);
	return 0;
}

/* A size as config_parse_size() reads it, in 64 bits whatever size_t is. */
static int
parse_size64(const char *s, uint64_t *bytes)
{
	unsigned long long n;
	unsigned shift;

	if (s == NULL || parse_digits(&s, &n) < 0)
		return -1;
	switch (*s) {
	case '\0':
		shift = 0;
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (*s != '\0' && s[1] != '\0')
		return -1;
	if (n > UINT64_MAX >> shift)
		return -1;
	*bytes = (uint64_t)n << shift;
	return 0;
}

int
config_parse_size(const char *s, size_t *bytes)
{
	uint64_t n;

	if (parse_size64(s, &n) < 0 || n > SIZE_MAX)
		return -1;
	*bytes = (size_t)n;
	return 0;
}

/*
 * A route's sticky modes: "off", or "cookie" and/or "socketio" separated by
 * spaces or commas, in any order.
 */
static int
parse_sticky(const char *s, unsigned *bits)
{
	static const char sep[] = " \t,";
	bool off = false;
	unsigned b = 0;

	for (s += strspn(s, sep); *s != '\0'; s += strspn(s, sep)) {
		size_t n = strcspn(s, sep);

		if (n == 3 && memcmp(s, "off", 3) == 0)
			off = true;
		else if (n == 6 && memcmp(s, "cookie", 6) == 0)
			b |= CONFIG_STICKY_COOKIE;
		else if (n == 8 && memcmp(s, "socketio", 8) == 0)
			b |= CONFIG_STICKY_SOCKETIO;
		else
			return -1;
		s += n;
	}
	/* "off" means nothing else; nothing at all is not "off" either. */
	if (off == (b != 0))
		return -1;
	*bits = b;
	return 0;
}

/* RFC 6265 cookie-name: an RFC 2616 token (no controls, spaces or separators). */
static bool
cookie_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if ((unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}", s[n]) != NULL)
			return false;
	return n >= 1 && n <= MAX_COOKIE_NAME;
}

/* Like config_parse_address(), saying in why what is wrong. */
static int
parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		char *why, size_t whylen)
{
	char host[INET6_ADDRSTRLEN];
	const char *port, *sep;
	unsigned long long p;
	bool v6 = false, any = false;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		sep = strchr(s, ']');
		if (sep == NULL || sep[1] != ':') {
			snprintf(why, whylen, "expected [IPv6]:PORT");
			return -1;
		}
		v6 = true;
		hlen = (size_t)(sep - s - 1);
		memcpy(host, s + 1, hlen < sizeof(host) ? hlen : 0);
		port = sep + 2;
	} else {
		sep = strrchr(s, ':');
		if (sep == NULL) {
			snprintf(why, whylen, "expected IP:PORT");
			return -1;
		}
		if (strchr(s, ':') != sep) {
			snprintf(why, whylen, "IPv6 addresses go in brackets, as in [::1]:8080");
			return -1;
		}
		hlen = (size_t)(sep - s);
		any = hlen == 1 && s[0] == '*';
		memcpy(host, s, hlen < sizeof(host) ? hlen : 0);
		port = sep + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(why, whylen, "expected IP:PORT");
		return -1;
	}
	host[hlen] = '\0';
	if (parse_digits(&port, &p) < 0 || *port != '\0') {
		snprintf(why, whylen, "expected IP:PORT");
		return -1;
	}
	if (p < 1 || p > 65535) {
		snprintf(why, whylen, "port must be 1..65535");
		return -1;
	}
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(why, whylen, "expected [IPv6]:PORT");
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (any) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			bool named = false;

			for (const char *c = host; *c; c++)
				named |= isalpha((unsigned char)*c) != 0;
			snprintf(why, whylen, "%s", named ?
				"address must be a numeric IP:port" : "expected IP:PORT");
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*len = sizeof(*sin);
	}
	return 0;
}

int
config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char why[128];

	if (s == NULL)
		return -1;
	return parse_address(s, ss, len, why, sizeof(why));
}

/* A directive's value once checked; s is owned until stored. */
struct opt_value {
	unsigned long long n;
	char *s;
	enum config_host_kind host_kind;
	struct sockaddr_storage ss;
	socklen_t sslen;
};

/*
 * Check and convert one value. On error, why says what was expected; the
 * caller names the option and the value.
 */
static int
opt_convert(const struct opt_def *d, const char *text, struct opt_value *v,
		char *why, size_t whylen)
{
	char bounds[80];

	memset(v, 0, sizeof(*v));
	switch (d->type) {
	case OPT_UINT:
	case OPT_INT: {
		const char *p = text;

		if (parse_digits(&p, &v->n) < 0 || *p != '\0') {
			snprintf(why, whylen, "expected an integer");
			return -1;
		}
		break;
	}
	case OPT_DURATION: {
		unsigned ms;

		if (config_parse_duration(text, &ms) < 0) {
			snprintf(why, whylen, "expected a duration such as 500ms, 10s, 2m or 1h");
			return -1;
		}
		v->n = ms;
		break;
	}
	case OPT_SIZE: {
		size_t n;

		if (config_parse_size(text, &n) < 0) {
			snprintf(why, whylen, "expected a size such as 512, 16k or 1m");
			return -1;
		}
		v->n = n;
		break;
	}
	case OPT_SIZE64: {
		uint64_t n;

		if (parse_size64(text, &n) < 0) {
			snprintf(why, whylen, "expected a size such as 512, 16k or 1m");
			return -1;
		}
		v->n = n;
		break;
	}
	case OPT_LOG_LEVEL:
		for (size_t i = 0; i < ARRAY_LEN(log_level_names); i++)
			if (strcmp(text, log_level_names[i]) == 0) {
				v->n = i;
				return 0;
			}
		snprintf(why, whylen, "expected error, warn, info or debug");
		return -1;
	case OPT_LOG_TARGET:
		if (text[0] == '\0') {
			snprintf(why, whylen, "expected \"-\", \"off\" or a file path");
			return -1;
		}
		v->s = strcmp(text, "off") == 0 ? NULL : xstrdup(text);
		return 0;
	case OPT_ADDRESS:
		if (parse_address(text, &v->ss, &v->sslen, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_HOST:
		if (strcmp(text, "*") == 0) {
			v->host_kind = CONFIG_HOST_ANY;
			v->s = xstrdup(text);
		} else if (strncmp(text, "*.", 2) == 0 && hostname_ok(text + 2)) {
			v->host_kind = CONFIG_HOST_SUFFIX;
			v->s = xstrdup(text + 1);
		} else if (hostname_ok(text)) {
			v->host_kind = CONFIG_HOST_EXACT;
			v->s = xstrdup(text);
		} else {
			snprintf(why, whylen, "%s", strchr(text, ':') != NULL ?
				"a route host has no port" :
				"expected a host name, \"*.\" and a domain, or \"*\"");
			return -1;
		}
		lower_ascii(v->s);
		v->n = strlen(v->s);
		return 0;
	case OPT_PATH:
		if (text[0] != '/') {
			snprintf(why, whylen, "expected a path starting with \"/\"");
			return -1;
		}
		for (const char *c = text; *c; c++)
			if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#') {
				snprintf(why, whylen, "a path prefix has no spaces, \"?\" or \"#\"");
				return -1;
			}
		v->s = xstrdup(text);
		v->n = strlen(text);
		return 0;
	case OPT_REF:
		if (!name_ok(text)) {
			snprintf(why, whylen, "expected a name of " NAME_RULE);
			return -1;
		}
		v->s = xstrdup(text);
		return 0;
	case OPT_STICKY: {
		unsigned bits;

		if (parse_sticky(text, &bits) < 0) {
			snprintf(why, whylen, "expected off, cookie, socketio or \"cookie socketio\"");
			return -1;
		}
		v->n = bits;
		return 0;
	}
	case OPT_COOKIE_NAME:
		if (!cookie_name_ok(text)) {
			snprintf(why, whylen, "expected a cookie name of 1 to 64 letters, digits "
				"or any of !#$%%&'*+-.^_`|~");
			return -1;
		}
		v->s = xstrdup(text);
		return 0;
	case OPT_SECRET:
		/* why is the whole message here: the caller must not quote
		 * the value, which is the secret. */
		v->n = strlen(text);
		if (v->n < d->min) {
			snprintf(why, whylen, "%s must be at least %llu bytes", d->name, d->min);
			return -1;
		}
		if (v->n > d->max) {
			snprintf(why, whylen, "%s must be at most %llu bytes", d->name, d->max);
			return -1;
		}
		v->s = xstrdup(text);
		return 0;
	case OPT_SECTION:
		break;
	}
	if (has_bounds(d) && (v->n < d->min || v->n > d->max)) {
		format_bounds(d, bounds, sizeof(bounds));
		snprintf(why, whylen, "must be in %s", bounds);
		return -1;
	}
	return 0;
}

/* Move a converted value into its fields in obj. */
static void
opt_store(const struct opt_def *d, struct opt_value *v, void *obj)
{
	char *base = obj;

	switch (d->type) {
	case OPT_UINT:
	case OPT_DURATION:
		*(unsigned *)(base + d->off) = (unsigned)v->n;
		break;
	case OPT_INT:
		*(int *)(base + d->off) = (int)v->n;
		break;
	case OPT_SIZE:
		*(size_t *)(base + d->off) = (size_t)v->n;
		break;
	case OPT_SIZE64:
		*(uint64_t *)(base + d->off) = (uint64_t)v->n;
		break;
	case OPT_STICKY:
		*(unsigned *)(base + d->off) = (unsigned)v->n;
		break;
	case OPT_SECRET:
		*(unsigned char **)(base + d->off) = (unsigned char *)v->s;
		*(size_t *)(base + d->aux) = (size_t)v->n;
		break;
	case OPT_LOG_LEVEL:
		*(enum config_log_level *)(base + d->off) = (enum config_log_level)v->n;
		break;
	case OPT_ADDRESS:
		memcpy(base + d->aux, &v->ss, sizeof(v->ss));
		*(socklen_t *)(base + d->aux2) = v->sslen;
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_HOST:
		*(enum config_host_kind *)(base + d->aux) = v->host_kind;
		*(size_t *)(base + d->aux2) = (size_t)v->n;
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_PATH:
		*(size_t *)(base + d->aux) = (size_t)v->n;
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_LOG_TARGET:
	case OPT_REF:
	case OPT_COOKIE_NAME:
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_SECTION:
		break;
	}
	v->s = NULL;
}

/* ------------------------------------------------------------------ errors */

static cfg_t *
find_parent(cfg_t *from, cfg_t *sec)
{
	for (int i = 0; from->opts[i].name != NULL; i++) {
		cfg_opt_t *o = &from->opts[i];

		if (o->type != CFGT_SEC)
			continue;
		for (unsigned j = 0; j < cfg_opt_size(o); j++) {
			cfg_t *child = cfg_opt_getnsec(o, j), *found;

			if (child == sec)
				return from;
			if ((found = find_parent(child, sec)) != NULL)
				return found;
		}
	}
	return NULL;
}

static size_t
section_depth(struct load *ld, cfg_t *sec)
{
	size_t depth = 0;

	while (sec != NULL && sec != ld->root) {
		sec = find_parent(ld->root, sec);
		depth++;
	}
	return depth;
}

/* `pool "chat": server "a": ` for errors inside sections; "" at top level. */
static void
section_prefix(struct load *ld, cfg_t *sec, char *buf, size_t len)
{
	size_t used;

	buf[0] = '\0';
	if (sec == NULL || sec == ld->root)
		return;
	section_prefix(ld, find_parent(ld->root, sec), buf, len);
	used = strlen(buf);
	if (cfg_title(sec) != NULL)
		snprintf(buf + used, len - used, "%s \"%s\": ", cfg_name(sec), cfg_title(sec));
	else
		snprintf(buf + used, len - used, "%s: ", cfg_name(sec));
}

/*
 * Record the first error: line 0 when none applies, sec (or NULL) names the
 * section the message is about.
 */
static void __attribute__((format(printf, 4, 5)))
load_error(struct load *ld, int line, cfg_t *sec, const char *fmt, ...)
{
	char prefix[256];
	size_t used;
	va_list ap;

	if (ld->failed)
		return;
	ld->failed = true;
	ld->err_line = line;
	section_prefix(ld, sec, prefix, sizeof(prefix));
	snprintf(ld->msg, sizeof(ld->msg), "%s", prefix);
	used = strlen(ld->msg);
	va_start(ap, fmt);
	vsnprintf(ld->msg + used, sizeof(ld->msg) - used, fmt, ap);
	va_end(ap);
}

static int
opt_line(struct load *ld, cfg_t *sec, const char *name)
{
	for (size_t i = 0; i < ld->nopts; i++)
		if (ld->opts[i].sec == sec && strcmp(ld->opts[i].name, name) == 0)
			return ld->opts[i].line;
	return 0;
}

static int
sec_line(struct load *ld, cfg_t *sec)
{
	for (size_t i = 0; i < ld->nsecs; i++)
		if (ld->secs[i].sec == sec)
			return ld->secs[i].line;
	return 0;
}

/* The line of an option if the file sets it, else that of its section. */
static int
where(struct load *ld, cfg_t *sec, const char *name)
{
	int line = opt_line(ld, sec, name);

	return line ? line : sec_line(ld, sec);
}

/* libconfuse reports "found duplicate title" without saying of what. */
static void
report_duplicate(struct load *ld, cfg_t *parent, const char *title)
{
	/* The '{' being parsed is the next one after those already closed
	 * and those still open around it. */
	size_t idx = ld->nclosed + section_depth(ld, parent);
	const struct brace *b = idx < ld->nopens ? &ld->opens[idx] : NULL;
	const char *kind = "section";
	int line = parent->line;

	if (b != NULL && b->kind != NULL && b->title != NULL && strcmp(b->title, title) == 0) {
		kind = b->kind;
		line = b->line;
	}
	for (size_t i = 0; i < ld->nsecs; i++) {
		const struct sec_rec *r = &ld->secs[i];

		if (r->parent == parent && strcmp(r->kind, kind) == 0 &&
		    cfg_title(r->sec) != NULL && strcmp(cfg_title(r->sec), title) == 0) {
			load_error(ld, line, parent, "duplicate %s \"%s\" (first defined at line %d)",
				kind, title, r->line);
			return;
		}
	}
	load_error(ld, line, parent, "duplicate %s \"%s\"", kind, title);
}

/* Syntax errors from libconfuse, reworded into our "FILE:LINE: " form. */
static void __attribute__((format(printf, 2, 0)))
on_confuse_error(cfg_t *sec, const char *fmt, va_list ap)
{
	struct load *ld = current;
	char text[300];

	if (ld == NULL || ld->failed)
		return;
	if (strstr(fmt, "duplicate title") != NULL && sec != NULL) {
		va_list aq;
		const char *title;

		va_copy(aq, ap);
		title = va_arg(aq, const char *);
		va_end(aq);
		report_duplicate(ld, sec, title != NULL ? title : "");
		return;
	}
	vsnprintf(text, sizeof(text), fmt, ap);
	/* libconfuse quotes with '...'; our messages use "...". */
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	load_error(ld, sec != NULL ? sec->line : 0, sec, "%s", text);
}

/* --------------------------------------------------------------- pre-scan */

/*
 * libconfuse 3.3 miscounts lines after comments and accepts a section left
 * open at the end of the file. So before it sees the file, this scan blanks
 * comments out (keeping newlines, so its line numbers stay right) and notes
 * where each section's '{' is and what closes it, so that errors about a
 * whole section can point at its first line. It follows libconfuse's lexer:
 * '#' starts a comment anywhere outside quotes, "//" and "/ *" only where a
 * token starts, and "${NAME}" is one token.
 */
enum tok_kind {
	TOK_NONE = 0,
	TOK_WORD,
	TOK_EQUAL,
	TOK_OTHER,
};

struct tok {
	enum tok_kind kind;
	bool value;			/* a word right after '=' */
	int line;
	size_t start, len;
};

static void
scan_error(struct load *ld, int line, const char *msg)
{
	if (ld->scan_failed)
		return;
	ld->scan_failed = true;
	ld->scan_line = line;
	snprintf(ld->scan_msg, sizeof(ld->scan_msg), "%s", msg);
}

static bool
is_titled_kind(const char *b, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(all_sections); i++) {
		const struct section_def *sd = all_sections[i];

		if ((sd->flags & SEC_TITLED) && strlen(sd->name) == len &&
		    memcmp(sd->name, b, len) == 0)
			return true;
	}
	return false;
}

static void
scan_open(struct load *ld, const struct tok *t1, const struct tok *t2, int line)
{
	struct brace *b;

	ld->opens = xrealloc(ld->opens, ld->nopens + 1, sizeof(*ld->opens));
	b = &ld->opens[ld->nopens++];
	memset(b, 0, sizeof(*b));
	b->line = line;
	if (t1->kind != TOK_WORD || t1->value)
		return;
	if (t2->kind == TOK_WORD && !t2->value && is_titled_kind(ld->buf + t2->start, t2->len)) {
		b->kind = xstrndup(ld->buf + t2->start, t2->len);
		b->title = xstrndup(ld->buf + t1->start, t1->len);
		b->line = t2->line;
	} else {
		b->kind = xstrndup(ld->buf + t1->start, t1->len);
		b->line = t1->line;
	}
}

static void
scan_close(struct load *ld, size_t open)
{
	ld->closes = xrealloc(ld->closes, ld->ncloses + 1, sizeof(*ld->closes));
	ld->closes[ld->ncloses++] = open;
}

/* Index of the '}' that ends "${...}" starting at i, or 0. */
static size_t
scan_env_end(const char *b, size_t n, size_t i)
{
	if (i + 1 >= n || b[i] != '$' || b[i + 1] != '{')
		return 0;
	for (size_t k = i + 2; k < n; k++)
		if (b[k] == '}')
			return k;
	return 0;
}

static int
count_newlines(const char *b, size_t from, size_t to)
{
	int n = 0;

	for (size_t i = from; i < to; i++)
		n += b[i] == '\n';
	return n;
}

static void
scan(struct load *ld)
{
	char *b = ld->buf;
	size_t n = ld->len, i = 0, *stack = NULL, depth = 0;
	struct tok t1 = { 0 }, t2 = { 0 };
	int line = 1;

	while (i < n) {
		char c = b[i];
		struct tok t = { .kind = TOK_WORD, .line = line, .start = i };
		size_t end;

		if (c == '\0') {
			scan_error(ld, line, "unexpected NUL byte");
			ld->scan_fatal = true;
			break;
		}
		if (c == '\n') {
			line++;
			i++;
			continue;
		}
		/* libconfuse's lexer drops a stray '*' like blank space. */
		if (c == ' ' || c == '\t' || c == '\r' || c == '*') {
			i++;
			continue;
		}
		if (c == '#' || (c == '/' && i + 1 < n && b[i + 1] == '/')) {
			while (i < n && b[i] != '\n')
				b[i++] = ' ';
			continue;
		}
		if (c == '/' && i + 1 < n && b[i + 1] == '*') {
			int start = line;

			b[i++] = ' ';
			b[i++] = ' ';
			while (i < n && !(b[i] == '*' && i + 1 < n && b[i + 1] == '/')) {
				if (b[i] == '\n')
					line++;
				else
					b[i] = ' ';
				i++;
			}
			if (i >= n) {
				scan_error(ld, start, "unterminated comment");
				break;
			}
			b[i++] = ' ';
			b[i++] = ' ';
			continue;
		}
		if (c == '"' || c == '\'') {
			size_t j = i + 1;

			while (j < n && b[j] != c) {
				if (b[j] == '\\' && j + 1 < n) {
					line += b[j + 1] == '\n';
					j += 2;
				} else if (c == '"' && (end = scan_env_end(b, n, j)) != 0) {
					line += count_newlines(b, j, end);
					j = end + 1;
				} else {
					line += b[j] == '\n';
					j++;
				}
			}
			if (j >= n) {
				scan_error(ld, t.line, "unterminated string");
				break;
			}
			t.start = i + 1;
			t.len = j - i - 1;
			i = j + 1;
		} else if ((end = scan_env_end(b, n, i)) != 0) {
			line += count_newlines(b, i, end);
			t.len = end + 1 - i;
			i = end + 1;
		} else if (strchr("={}()+,", c) != NULL) {
			t.kind = c == '=' ? TOK_EQUAL : TOK_OTHER;
			if (c == '{') {
				scan_open(ld, &t1, &t2, line);
				stack = xrealloc(stack, depth + 1, sizeof(*stack));
				stack[depth++] = ld->nopens - 1;
			} else if (c == '}' && depth > 0) {
				/* A '}' at top level is libconfuse's to report. */
				scan_close(ld, stack[--depth]);
			}
			i++;
		} else {
			while (i < n && b[i] != '\0' && strchr(" #\"'\t\n\r={}()+,*", b[i]) == NULL)
				i++;
			t.len = i - t.start;
		}
		t.value = t.kind == TOK_WORD && t1.kind == TOK_EQUAL;
		t2 = t1;
		t1 = t;
	}
	if (depth > 0 && !ld->scan_failed) {
		const struct brace *open = &ld->opens[stack[depth - 1]];
		char msg[200];

		if (open->title != NULL)
			snprintf(msg, sizeof(msg), "%s \"%s\" is not closed (missing \"}\")",
				open->kind, open->title);
		else
			snprintf(msg, sizeof(msg), "%s is not closed (missing \"}\")",
				open->kind != NULL ? open->kind : "section");
		scan_error(ld, open->line, msg);
	}
	/* libconfuse closes what is left open at the end of the file. */
	while (depth > 0)
		scan_close(ld, stack[--depth]);
	free(stack);
}

/* -------------------------------------------------------------- callbacks */

static const struct section_def *
section_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(all_sections); i++)
		if (strcmp(all_sections[i]->name, name) == 0)
			return all_sections[i];
	return NULL;
}

static const struct opt_def *
opt_by_name(const struct section_def *sd, const char *name)
{
	for (size_t i = 0; sd != NULL && i < sd->nopts; i++)
		if (strcmp(sd->opts[i].name, name) == 0)
			return &sd->opts[i];
	return NULL;
}

/* The value of d in sec: as set in the file, else its default (or NULL). */
static const char *
opt_text(cfg_t *sec, const struct opt_def *d)
{
	const char *text = cfg_getstr(sec, d->name);

	return text != NULL ? text : d->def;
}

/* After each value: check it now, while libconfuse's line is its line. */
static int
on_option(cfg_t *sec, cfg_opt_t *opt)
{
	struct load *ld = current;
	const struct opt_def *d = opt_by_name(section_by_name(cfg_name(sec)), opt->name);
	const char *text = cfg_opt_getnstr(opt, 0);
	struct opt_value v;
	char why[160];
	int first;

	if (d == NULL || text == NULL)
		return 0;
	first = opt_line(ld, sec, d->name);
	if (first != 0) {
		load_error(ld, sec->line, sec, "duplicate option \"%s\" (first set at line %d)",
			d->name, first);
		return -1;
	}
	ld->opts = xrealloc(ld->opts, ld->nopts + 1, sizeof(*ld->opts));
	ld->opts[ld->nopts++] = (struct opt_rec){ .sec = sec, .name = d->name, .line = sec->line };
	if (opt_convert(d, text, &v, why, sizeof(why)) < 0) {
		if (d->type == OPT_SECRET)
			load_error(ld, sec->line, sec, "%s", why);
		else
			load_error(ld, sec->line, sec, "invalid %s \"%s\" (%s)", d->name, text, why);
		return -1;
	}
	if (d->type == OPT_SECRET && v.s != NULL)
		explicit_bzero(v.s, v.n);
	free(v.s);
	return 0;
}

/* Count, required-option and cross-option checks of a section. */
static int
check_section(struct load *ld, cfg_t *sec, const struct section_def *sd, int line)
{
	for (size_t i = 0; i < sd->nopts; i++) {
		const struct opt_def *d = &sd->opts[i];

		if (d->type == OPT_SECTION && cfg_size(sec, d->name) < d->min) {
			load_error(ld, line, sec, "no %s defined (at least %llu required)",
				d->name, d->min);
			return -1;
		}
		if ((d->flags & OPT_REQUIRED) && cfg_getstr(sec, d->name) == NULL) {
			load_error(ld, line, sec, "%s is required", d->name);
			return -1;
		}
	}
	return sd->check != NULL ? sd->check(ld, sec, line) : 0;
}

/* After each section's '}'. */
static int
on_section(cfg_t *parent, cfg_opt_t *opt)
{
	struct load *ld = current;
	const struct opt_def *d = opt_by_name(section_by_name(cfg_name(parent)), opt->name);
	size_t k = ld->nclosed++;
	const struct brace *b = k < ld->ncloses ? &ld->opens[ld->closes[k]] : NULL;
	cfg_t *sec;
	int line, first;

	if (d == NULL || d->type != OPT_SECTION || cfg_opt_size(opt) == 0)
		return 0;
	/* Titles are unique (CFGF_NO_TITLE_DUPES), so the section just
	 * parsed is the last one added. */
	sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	line = b != NULL && b->kind != NULL && strcmp(b->kind, d->name) == 0 ? b->line : parent->line;
	first = sec_line(ld, sec);
	if (first != 0) {
		load_error(ld, line, parent, "duplicate %s section (first at line %d)", d->name, first);
		return -1;
	}
	ld->secs = xrealloc(ld->secs, ld->nsecs + 1, sizeof(*ld->secs));
	ld->secs[ld->nsecs++] = (struct sec_rec){
		.sec = sec, .parent = parent, .kind = d->name, .line = line,
	};
	if ((d->sub->flags & SEC_TITLED) && !name_ok(cfg_title(sec))) {
		load_error(ld, line, parent, "invalid %s name \"%s\" (expected " NAME_RULE ")",
			d->name, cfg_title(sec));
		return -1;
	}
	return check_section(ld, sec, d->sub, line);
}

static int
size_value(cfg_t *sec, const char *name, size_t *out)
{
	const struct opt_def *d = opt_by_name(&limits_section, name);

	return config_parse_size(opt_text(sec, d), out);
}

static int
check_limits(struct load *ld, cfg_t *sec, int line)
{
	size_t head, uri;
	char a[32], b[32];
	int at;

	if (size_value(sec, "max_header_size", &head) < 0 || size_value(sec, "max_uri", &uri) < 0)
		return 0;	/* on_option has reported it */
	/* A max_uri left at its default follows a smaller max_header_size
	 * (see build()); only one the file sets can contradict it. */
	if (uri < head || (at = opt_line(ld, sec, "max_uri")) == 0)
		return 0;
	(void)line;
	format_size(uri, a, sizeof(a));
	format_size(head, b, sizeof(b));
	load_error(ld, at, sec, "max_uri (%s) must be smaller than max_header_size (%s)", a, b);
	return -1;
}

/* ------------------------------------------------------------------ build */

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

static int build_section(struct load *ld, cfg_t *sec, const struct section_def *sd, void *obj);

static int
build_subsections(struct load *ld, cfg_t *sec, const struct opt_def *d, char *base)
{
	const struct section_def *sub = d->sub;
	size_t n;
	char *arr;

	if (!(sub->flags & SEC_TITLED))
		return build_section(ld, cfg_getsec(sec, d->name), sub, base + d->off);
	n = cfg_size(sec, d->name);
	arr = n ? xcalloc(n, sub->size) : NULL;
	*(void **)(base + d->off) = arr;
	*(size_t *)(base + d->aux) = n;
	for (size_t i = 0; i < n; i++) {
		cfg_t *child = cfg_getnsec(sec, d->name, (unsigned)i);
		char *elem = arr + i * sub->size;

		*(char **)(elem + sub->name_off) = xstrdup(cfg_title(child));
		if (build_section(ld, child, sub, elem) < 0)
			return -1;
	}
	return 0;
}

/* Fill obj from sec, with the table's defaults for what the file omits. */
static int
build_section(struct load *ld, cfg_t *sec, const struct section_def *sd, void *obj)
{
	for (size_t i = 0; i < sd->nopts; i++) {
		const struct opt_def *d = &sd->opts[i];
		const char *text;
		struct opt_value v;
		char why[160];

		if (d->type == OPT_SECTION) {
			if (build_subsections(ld, sec, d, obj) < 0)
				return -1;
			continue;
		}
		text = opt_text(sec, d);
		if (text == NULL && d->compute != NULL) {
			memset(&v, 0, sizeof(v));
			v.n = d->compute();
			opt_store(d, &v, obj);
			continue;
		}
		if (text == NULL)
			continue;	/* required: check_section() saw to it */
		if (opt_convert(d, text, &v, why, sizeof(why)) < 0) {
			/* Values were checked while parsing: only a bad
			 * default in the tables can get here. */
			if (d->type == OPT_SECRET)
				load_error(ld, where(ld, sec, d->name), sec, "%s", why);
			else
				load_error(ld, where(ld, sec, d->name), sec, "invalid %s \"%s\" (%s)",
					d->name, text, why);
			return -1;
		}
		opt_store(d, &v, obj);
	}
	return 0;
}

static bool
same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
		memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static int
link_listeners(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		for (size_t j = 0; j < i; j++) {
			if (!same_sockaddr(&cfg->listeners[i].addr, &cfg->listeners[j].addr))
				continue;
			cfg_t *sec = cfg_getnsec(ld->root, "listener", (unsigned)i);

			load_error(ld, where(ld, sec, "address"), sec,
				"address \"%s\" is already used by listener \"%s\"",
				cfg->listeners[i].address, cfg->listeners[j].name);
			return -1;
		}
	return 0;
}

static void
link_pools(struct config *cfg)
{
	unsigned gindex = 0;

	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];

		p->index = (unsigned)i;
		for (size_t j = 0; j < p->nservers; j++) {
			p->servers[j].index = (unsigned)j;
			p->servers[j].gindex = gindex++;
			p->servers[j].pool = p;
		}
	}
	cfg->nservers = gindex;
}

/*
 * Match order: exact hosts, then suffixes longest first, then "*"; within
 * one host, longest path first. config_route_match() takes the first route
 * that matches both, which gives the documented precedence.
 */
static int
route_order(const void *pa, const void *pb)
{
	const struct config_route *a = pa, *b = pb;
	int c;

	if (a->host_kind != b->host_kind)
		return a->host_kind > b->host_kind ? -1 : 1;
	if (a->host_len != b->host_len)
		return a->host_len > b->host_len ? -1 : 1;
	if ((c = strcmp(a->host, b->host)) != 0)
		return c;
	if (a->path_len != b->path_len)
		return a->path_len > b->path_len ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int
link_routes(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct config_route *r = &cfg->routes[i];
		cfg_t *sec = cfg_getnsec(ld->root, "route", (unsigned)i);

		r->index = (unsigned)i;
		for (size_t p = 0; p < cfg->npools && r->pool == NULL; p++)
			if (strcmp(cfg->pools[p].name, r->pool_name) == 0)
				r->pool = &cfg->pools[p];
		if (r->pool == NULL) {
			load_error(ld, where(ld, sec, "pool"), sec, "unknown pool \"%s\"", r->pool_name);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			const struct config_route *o = &cfg->routes[j];

			if (o->host_kind == r->host_kind && strcmp(o->host, r->host) == 0 &&
			    strcmp(o->path, r->path) == 0) {
				load_error(ld, sec_line(ld, sec), sec,
					"same host and path as route \"%s\"", o->name);
				return -1;
			}
		}
	}
	if (cfg->nroutes > 1)
		qsort(cfg->routes, cfg->nroutes, sizeof(*cfg->routes), route_order);
	return 0;
}

/* Fill buf from the kernel's CSPRNG; 0 or -1 with errno set. */
static int
random_bytes(unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t got = getrandom(buf, len, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		buf += got;
		len -= (size_t)got;
	}
	return 0;
}

/*
 * Cookie stickiness without a sticky_key: sign with a random key. It is
 * drawn once per process and reused by every later load, so that a reload
 * does not invalidate the cookies clients hold; a restart does, and so does
 * running several replicas, which is why main.c warns about it.
 */
static int
fill_sticky_key(struct load *ld, struct config *cfg)
{
	static unsigned char process_key[STICKY_KEY_RANDOM_LEN];
	static bool process_key_set;	/* loading is main-thread only */
	bool cookies = false;

	for (size_t i = 0; i < cfg->nroutes; i++)
		cookies |= (cfg->routes[i].sticky & CONFIG_STICKY_COOKIE) != 0;
	if (cfg->sticky_key != NULL || !cookies)
		return 0;
	if (!process_key_set) {
		if (random_bytes(process_key, sizeof(process_key)) < 0) {
			load_error(ld, 0, NULL, "getrandom() failed for the sticky cookie key: %s",
				strerror(errno));
			return -1;
		}
		process_key_set = true;
	}
	cfg->sticky_key = xcalloc(1, sizeof(process_key));
	memcpy(cfg->sticky_key, process_key, sizeof(process_key));
	cfg->sticky_key_len = sizeof(process_key);
	cfg->sticky_key_random = true;
	return 0;
}

static void
config_destroy(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].address);
	}
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];

		for (size_t j = 0; j < p->nservers; j++) {
			free(p->servers[j].name);
			free(p->servers[j].address);
		}
		free(p->servers);
		free(p->name);
	}
	free(cfg->pools);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].name);
		free(cfg->routes[i].host);
		free(cfg->routes[i].path);
		free(cfg->routes[i].pool_name);
		free(cfg->routes[i].sticky_cookie);
	}
	free(cfg->routes);
	if (cfg->sticky_key != NULL)
		explicit_bzero(cfg->sticky_key, cfg->sticky_key_len);
	free(cfg->sticky_key);
	free(cfg->access_log);
	free(cfg->file);
	free(cfg);
}

static struct config *
build(struct load *ld)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	atomic_init(&cfg->refcnt, 1);
	cfg->file = xstrdup(ld->file);
	if (check_section(ld, ld->root, &root_section, 0) < 0 ||
	    build_section(ld, ld->root, &root_section, cfg) < 0 ||
	    link_listeners(ld, cfg) < 0 ||
	    link_routes(ld, cfg) < 0 ||
	    fill_sticky_key(ld, cfg) < 0) {
		config_destroy(cfg);
		return NULL;
	}
	link_pools(cfg);
	if (cfg->limits.max_uri >= cfg->limits.max_header_size)
		cfg->limits.max_uri = cfg->limits.max_header_size - 1;
	return cfg;
}

/* ------------------------------------------------------------------- load */

static cfg_opt_t *
make_opts(const struct section_def *sd)
{
	cfg_opt_t *o = xcalloc(sd->nopts + 1, sizeof(*o));

	for (size_t i = 0; i < sd->nopts; i++) {
		const struct opt_def *d = &sd->opts[i];

		o[i].name = d->name;
		if (d->type == OPT_SECTION) {
			o[i].type = CFGT_SEC;
			o[i].subopts = make_opts(d->sub);
			o[i].flags = (d->sub->flags & SEC_TITLED) ?
				CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES : CFGF_NONE;
			o[i].validcb = on_section;
		} else {
			/* Every value is read as a string and converted by
			 * the table, so that unquoted 10s and 16k work. */
			o[i].type = CFGT_STR;
			o[i].flags = CFGF_NODEFAULT;
			o[i].validcb = on_option;
		}
	}
	return o;
}

static void
free_opts(cfg_opt_t *o)
{
	for (size_t i = 0; o[i].name != NULL; i++)
		if (o[i].subopts != NULL)
			free_opts(o[i].subopts);
	free(o);
}

static int
read_file(struct load *ld)
{
	FILE *fp = fopen(ld->file, "r");
	size_t cap = 4096, got;

	if (fp == NULL) {
		load_error(ld, 0, NULL, "cannot open: %s", strerror(errno));
		return -1;
	}
	ld->buf = xcalloc(1, cap + 1);
	while ((got = fread(ld->buf + ld->len, 1, cap - ld->len, fp)) > 0) {
		ld->len += got;
		if (ld->len == cap) {
			if (cap >= MAX_FILE_SIZE) {
				load_error(ld, 0, NULL, "file is larger than %u bytes", MAX_FILE_SIZE);
				fclose(fp);
				return -1;
			}
			cap *= 2;
			ld->buf = xrealloc(ld->buf, cap + 1, 1);
		}
	}
	if (ferror(fp)) {
		load_error(ld, 0, NULL, "cannot read: %s", strerror(errno));
		fclose(fp);
		return -1;
	}
	fclose(fp);
	ld->buf[ld->len] = '\0';
	ld->nlines = count_newlines(ld->buf, 0, ld->len) +
		(ld->len > 0 && ld->buf[ld->len - 1] != '\n');
	return 0;
}

static int
parse(struct load *ld)
{
	cfg_opt_t *opts = make_opts(&root_section);
	FILE *fp;
	int rc = 0;

	ld->root = cfg_init(opts, CFGF_NONE);
	free_opts(opts);
	if (ld->root == NULL)
		out_of_memory();
	cfg_set_error_function(ld->root, on_confuse_error);
	if (ld->len == 0)
		return 0;
	fp = fmemopen(ld->buf, ld->len, "r");
	if (fp == NULL)
		out_of_memory();
	if (cfg_parse_fp(ld->root, fp) != CFG_SUCCESS) {
		if (!ld->failed)
			load_error(ld, 0, NULL, "syntax error");
		rc = -1;
	}
	fclose(fp);
	return rc;
}

static void
load_free(struct load *ld)
{
	if (ld->root != NULL)
		cfg_free(ld->root);
	for (size_t i = 0; i < ld->nopens; i++) {
		free(ld->opens[i].kind);
		free(ld->opens[i].title);
	}
	free(ld->opens);
	free(ld->closes);
	free(ld->secs);
	free(ld->opts);
	/* The file may hold sticky_key. */
	if (ld->buf != NULL)
		explicit_bzero(ld->buf, ld->len);
	free(ld->buf);
}

struct config *
config_load(const char *file, char *err, size_t errlen)
{
	struct load ld = { .file = file };
	struct config *cfg = NULL;
	int line;

	current = &ld;
	if (read_file(&ld) == 0) {
		scan(&ld);
		if (!ld.scan_fatal && parse(&ld) == 0 && !ld.scan_failed)
			cfg = build(&ld);
	}
	current = NULL;
	/* Of a scan error and a parse error, report the earlier. */
	if (ld.scan_failed && (!ld.failed || ld.err_line == 0 || ld.scan_line <= ld.err_line)) {
		ld.failed = true;
		ld.err_line = ld.scan_line;
		snprintf(ld.msg, sizeof(ld.msg), "%s", ld.scan_msg);
	}
	if (cfg == NULL && err != NULL && errlen > 0) {
		line = ld.err_line;
		/* libconfuse counts the line after a final newline. */
		if (line > ld.nlines)
			line = ld.nlines > 0 ? ld.nlines : 1;
		for (char *p = ld.msg; *p; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				*p = '?';
		if (ld.err_line > 0)
			snprintf(err, errlen, "%s:%d: %s", file, line, ld.msg);
		else
			snprintf(err, errlen, "%s: %s", file, ld.failed ? ld.msg : "invalid configuration");
	}
	load_free(&ld);
	return cfg;
}

/* --------------------------------------------------------------- sharing */

struct config *
config_ref(struct config *cfg)
{
	atomic_fetch_add_explicit(&cfg->refcnt, 1, memory_order_relaxed);
	return cfg;
}

void
config_unref(struct config *cfg)
{
	unsigned old;

	if (cfg == NULL)
		return;
	/* acq_rel: the freeing thread must see every other holder's writes
	 * to the runtime state attached to the generation. */
	old = atomic_fetch_sub_explicit(&cfg->refcnt, 1, memory_order_acq_rel);
	if (old == 0) {
		fputs("sluice: config_unref: reference count underflow\n", stderr);
		abort();
	}
	if (old > 1)
		return;
	if (cfg->on_free != NULL)
		cfg->on_free(cfg);
	config_destroy(cfg);
}

/* ---------------------------------------------------------------- routing */

/* Whether path is under r's prefix, ending on a segment boundary. */
static bool
path_matches(const struct config_route *r, const char *path, size_t len)
{
	char next;

	if (r->path_len == 1)
		return true;	/* "/" matches every path, even "*" */
	if (len < r->path_len || memcmp(path, r->path, r->path_len) != 0)
		return false;
	if (len == r->path_len || r->path[r->path_len - 1] == '/')
		return true;
	next = path[r->path_len];
	return next == '/' || next == '?';
}

const struct config_route *
config_route_match(const struct config *cfg, const char *host, size_t host_len,
		const char *path, size_t path_len)
{
	char name[MAX_HOST_LEN + 2];
	size_t n = 0;
	bool named = false;

	if (host != NULL && host_len > 0) {
		const char *end;

		/* Drop ":port"; "[v6]:port" keeps its brackets. */
		if (host[0] == '[') {
			end = memchr(host, ']', host_len);
			end = end != NULL ? end + 1 : host + host_len;
		} else if ((end = memchr(host, ':', host_len)) == NULL) {
			end = host + host_len;
		}
		n = (size_t)(end - host);
		if (n > 0 && host[n - 1] == '.')
			n--;	/* "example.com." is example.com */
		if (n > 0 && n <= MAX_HOST_LEN) {
			for (size_t i = 0; i < n; i++)
				name[i] = (char)tolower((unsigned char)host[i]);
			named = true;
		}
	}
	if (path == NULL)
		path_len = 0;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct config_route *r = &cfg->routes[i];

		switch (r->host_kind) {
		case CONFIG_HOST_EXACT:
			if (!named || n != r->host_len || memcmp(name, r->host, n) != 0)
				continue;
			break;
		case CONFIG_HOST_SUFFIX:
			if (!named || n <= r->host_len ||
			    memcmp(name + n - r->host_len, r->host, r->host_len) != 0)
				continue;
			break;
		case CONFIG_HOST_ANY:
			break;
		}
		if (path_matches(r, path, path_len))
			return r;
	}
	return NULL;
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

		if (has_bounds(d)) {
			format_bounds(d, bounds, sizeof(bounds));
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
	foreach_in(&root_section, fn, arg);
}
