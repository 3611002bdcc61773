/*
 * Internals of the configuration module, shared by config.c and the
 * config_*.c files it is split into; only config*.c include this header.
 * It does not include <confuse.h> (config.c, config_check.c and
 * config_build.c do): libconfuse's cfg_t appears here only as the opaque
 * struct cfg_t of the load in progress and of a section's check hook.
 */
#ifndef SLUICE_CONFIG_INT_H
#define SLUICE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))
#define MAX_NAME_LEN	64
#define MAX_HOST_LEN	253

#define NAME_RULE "1 to 64 letters, digits, \"_\", \"-\" or \".\""

/* ------------------------------------------------------------ table types */

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
	OPT_BOOL,		/* bool: on/off, yes/no, true/false */
	OPT_STRING,		/* char *, non-empty, no control characters */
	OPT_FILE,		/* char * path, non-empty; opened by whoever uses it */
	OPT_SECONDS,		/* unsigned seconds, bounded: s, m, h, d; no ms */
	OPT_TLS_VERSION,	/* unsigned CONFIG_TLS_1_2 or CONFIG_TLS_1_3 */
	OPT_REDIRECT,		/* unsigned: off = 0, on = 443, or a port */
	OPT_SERVER_NAME,	/* char * DNS name, lower case; not an IP address */
	OPT_RESOLVERS,		/* char * list of IP[:PORT], as written */
	OPT_FAMILY,		/* enum config_family, written any, ipv4 or ipv6 */
	OPT_BALANCE,		/* char * balancer name (lb_find), bool lb_ops.keyed at aux */
	OPT_HASH_KEY,		/* enum config_hash_key, char * name at aux (NULL: client) */
	OPT_CHECK_TYPE,		/* unsigned enum config_check_type: http, socketio, tcp */
	OPT_STATUS_RANGE,	/* unsigned low at off, high at aux: "200-399" or "200" */
	OPT_PERCENT,		/* unsigned percent, bounded: "50%" or "50" */
	OPT_RL_KEY,		/* unsigned enum rl_key_kind, char * name at aux (NULL: none) */
	OPT_RL_KIND,		/* unsigned enum rl_kind */
	OPT_RL_EXCEED,		/* unsigned enum rl_exceed */
	OPT_NAMES,		/* char * list of object names, resolved after parsing */
	OPT_CIDRS,		/* char * as written, struct config_cidr * at aux, size_t at aux2 */
	OPT_REDIS_ERROR,	/* unsigned enum config_redis_error: allow, deny, local */
};

#define OPT_REQUIRED	0x1	/* no default: the file must set it */
#define OPT_PRESENT	0x2	/* untitled section: bool at aux is set when the file has it */
#define OPT_NAME_OK	0x4	/* OPT_ADDRESS: HOST:PORT is accepted too (addrlen 0) */

struct cfg_t;			/* libconfuse's, opaque here */
struct load;			/* one config_load() in progress, below */
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
	int (*check)(struct load *ld, struct cfg_t *sec, int line);	/* at '}' */
};

/* A directive's value once checked; s is owned until stored. */
struct opt_value {
	unsigned long long n;
	char *s;
	enum config_host_kind host_kind;
	struct sockaddr_storage ss;
	socklen_t sslen;
};

/* ---------------------------------------------------------- pre-scan state */

/* A '{' as the pre-scan saw it: where the section starts and what it is. */
struct brace {
	int line;			/* line of the section keyword */
	char *kind;			/* keyword as written, or NULL */
	char *title;			/* title as written without quotes, or NULL */
};

/*
 * The file's text and what config_scan_run() found in it. Owned by the load
 * in progress; config_scan_free() releases buf and the brace lists.
 */
struct config_scan {
	char *buf;			/* the file, with comments blanked out */
	size_t len;
	int nlines;

	struct brace *opens;		/* every '{' in file order */
	size_t nopens;
	size_t *closes;			/* index into opens, in closing order */
	size_t ncloses;

	bool failed;			/* the pre-scan found an error ... */
	bool fatal;			/* ... that libconfuse must not see */
	int err_line;
	char msg[256];
};

/* -------------------------------------------------------------- load state */

struct sec_rec;			/* a section whose '}' has been parsed (config.c) */
struct opt_rec;			/* an option set in the file (config.c) */

/*
 * One config_load() in progress, on config_load()'s stack: config.c parses
 * into it, config_check.c and config_build.c read root and report through
 * config_load_error().
 */
struct load {
	const char *file;
	struct config_scan scan;	/* the file's text and its sections (config_scan.c) */
	struct cfg_t *root;
	size_t nclosed;			/* sections closed so far by the parser */

	struct sec_rec *secs;
	size_t nsecs;
	struct opt_rec *opts;
	size_t nopts;

	bool failed;			/* the first error, kept */
	int err_line;			/* 0: no line applies */
	char msg[512];
};

/* ----------------------------------------------------------------- memory */

static inline void
out_of_memory(void)
{
	/* Config code runs at start-up and on reload in the main thread,
	 * where STYLE.md allows giving up on allocation failure. */
	fputs("sluice: out of memory while loading the configuration\n", stderr);
	abort();
}

static inline void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		out_of_memory();
	return p;
}

static inline void *
xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		out_of_memory();
	p = realloc(p, n * size != 0 ? n * size : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

static inline char *
xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (d == NULL)
		out_of_memory();
	return d;
}

static inline char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* ------------------------------------------------------ config_table.c */

/* The top-level section and the limits section, immutable tables. */
extern const struct section_def config_table_root;
extern const struct section_def config_table_limits;

/* The section libconfuse calls name ("root" at top), or NULL. */
const struct section_def *config_table_section(const char *name);

/* The option name of sd (NULL is allowed and finds nothing), or NULL. */
const struct opt_def *config_table_opt(const struct section_def *sd, const char *name);

/* Whether kind[0..len) names a section written `kind "title" { }`. */
bool config_table_titled(const char *kind, size_t len);

/* ------------------------------------------------------ config_value.c */

/*
 * Check and convert one value. Returns 0, or -1 with why saying what was
 * expected (for OPT_SECRET, the whole message: the value is not quoted). On
 * success v->s, if set, is owned by the caller until config_value_store().
 */
int config_value_convert(const struct opt_def *d, const char *text, struct opt_value *v,
		char *why, size_t whylen) SLUICE_WUR;

/* Move a converted value into its fields in obj; v->s is then obj's. */
void config_value_store(const struct opt_def *d, struct opt_value *v, void *obj);

/*
 * The parsers below check text and convert it, and own nothing they are
 * given. Those with why write what was expected into it on error.
 */

/* ----------------------------------------------------- config_number.c */

/* Digits at *sp into *out, *sp moved past them. Returns 0, or -1 (none, overflow). */
int config_number_digits(const char **sp, unsigned long long *out) SLUICE_WUR;

/* A size as config_parse_size() reads it, in 64 bits. Returns 0 or -1. */
int config_number_size64(const char *s, uint64_t *bytes) SLUICE_WUR;

/* Whole seconds: digits and s, m, h or d (bare: seconds). Returns 0 or -1. */
int config_number_seconds(const char *s, unsigned long long *out) SLUICE_WUR;

/* "200-399" or "200": status codes 100..599, low first. Returns 0 or -1. */
int config_number_status_range(const char *s, unsigned long long *lo,
		unsigned long long *hi) SLUICE_WUR;

/* "50%" or "50". Returns 0 or -1. */
int config_number_percent(const char *s, unsigned long long *out) SLUICE_WUR;

/* "16k", "1m": the largest unit that is exact. */
void config_value_format_size(unsigned long long n, char *buf, size_t len);

/* Whether d has numeric bounds, and "1ms..24h" for them. */
bool config_value_has_bounds(const struct opt_def *d);
void config_value_format_bounds(const struct opt_def *d, char *buf, size_t len);

/* ------------------------------------------------------- config_addr.c */

/* Host name syntax: dot-separated labels of letters, digits, '-' or '_'. */
bool config_addr_hostname_ok(const char *s);

/* Like config_parse_address(), saying in why what is wrong. Returns 0 or -1. */
int config_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		char *why, size_t whylen) SLUICE_WUR;

/*
 * A server address naming a host, "HOST:PORT". Returns 0; 1 when s does not
 * name a host (the IP parser's message stands); -1 with why when it names
 * one badly.
 */
int config_addr_name_port(const char *s, char *why, size_t whylen) SLUICE_WUR;

/* resolvers: IP, IP:PORT or [IPv6]:PORT, space or comma separated. 0 or -1. */
int config_addr_resolvers(const char *s, char *why, size_t whylen) SLUICE_WUR;

/* Parse "10.0.0.0/8", "::1" (a host) from s[0..len) into c. Returns 0 or -1. */
int config_value_parse_cidr(const char *s, size_t len, struct config_cidr *c) SLUICE_WUR;

/* "10.0.0.0/8 ::1/128" into out (NULL: only check). Returns the count or -1. */
long config_addr_cidrs(const char *s, struct config_cidr *out, char *why, size_t whylen);

/* ---------------------------------------------------- config_keyword.c */

/* Whether s is a valid object name (NAME_RULE). */
bool config_value_name_ok(const char *s);

/* "a b,c": object names, spaces or commas between. Returns 0 or -1. */
int config_keyword_names(const char *s, char *why, size_t whylen) SLUICE_WUR;

/* A route's sticky modes: "off", or cookie and/or socketio. Returns 0 or -1. */
int config_keyword_sticky(const char *s, unsigned *bits) SLUICE_WUR;

/* on/off, yes/no, true/false. Returns 0 or -1. */
int config_keyword_bool(const char *s, bool *b) SLUICE_WUR;

/* "TLS1.2" or "TLSv1.2", either case: CONFIG_TLS_1_*. Returns 0 or -1. */
int config_keyword_tls_version(const char *s, unsigned *v) SLUICE_WUR;

/* An RFC 6265 cookie-name of 1 to 64 characters. */
bool config_keyword_cookie_name_ok(const char *s);

/*
 * hash_key (client, header:, cookie:, query:) and a rate limit's key
 * (client, route, header:, cookie:): the kind in v->n, the name in v->s
 * (the caller's). Return 0 or -1.
 */
int config_keyword_hash_key(const char *text, struct opt_value *v, char *why,
		size_t whylen) SLUICE_WUR;
int config_keyword_rl_key(const char *text, struct opt_value *v, char *why,
		size_t whylen) SLUICE_WUR;

/*
 * A value that must be one of names[0..n) (NULL entries: enum values
 * without a name): its index in v->n, or -1 with expected in why.
 */
int config_keyword_match(const char *text, const char *const *names, size_t n,
		struct opt_value *v, const char *expected, char *why, size_t whylen) SLUICE_WUR;

/* ------------------------------------------------------- config_scan.c */

/*
 * Count sc->buf's lines, blank its comments out and record every section's
 * '{' and what closes it. The first error goes to sc->failed, err_line and
 * msg; sc->fatal means libconfuse must not be run on the text.
 */
void config_scan_run(struct config_scan *sc);

/* Free what sc owns, wiping buf first (it may hold sticky_key). */
void config_scan_free(struct config_scan *sc);

/* ------------------------------------------------------------ config.c */

/*
 * Record the first error of ld: line 0 when none applies, sec (or NULL)
 * names the section the message is about. Later errors are dropped.
 */
void config_load_error(struct load *ld, int line, struct cfg_t *sec, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The line where the file sets option name of sec, or 0. */
int config_opt_line(struct load *ld, struct cfg_t *sec, const char *name);

/* The line of section sec, or 0 when the file lacks it (defaults only). */
int config_sec_line(struct load *ld, struct cfg_t *sec);

/* The line of an option if the file sets it, else that of its section. */
int config_where(struct load *ld, struct cfg_t *sec, const char *name);

/* The value of d in sec: as set in the file, else its default (or NULL). */
const char *config_opt_text(struct cfg_t *sec, const struct opt_def *d);

/* Free a generation whatever its count (config_unref() is the way out). */
void config_destroy(struct config *cfg);

/* ------------------------------------------------------ config_build.c */

/*
 * The generation described by the parsed ld->root, with refcnt 1; NULL
 * after config_load_error().
 */
struct config *config_build(struct load *ld);

/* ------------------------------------------------------ config_check.c */

/*
 * Count, required-option and cross-option checks of section sec (table sd)
 * whose keyword is at line. Returns 0, or -1 after config_load_error().
 */
int config_check_section(struct load *ld, struct cfg_t *sec, const struct section_def *sd,
		int line);

/* limits' check hook: max_uri against max_header_size. Returns 0 or -1. */
int config_check_limits(struct load *ld, struct cfg_t *sec, int line);

/* Check hooks of the TLS directives (a listener, its tls section, a pool). */
int config_check_listener(struct load *ld, struct cfg_t *sec, int line);
int config_check_tls(struct load *ld, struct cfg_t *sec, int line);
int config_check_pool(struct load *ld, struct cfg_t *sec, int line);

/* ratelimit's check hook: options that its kind ignores. */
int config_check_ratelimit(struct load *ld, struct cfg_t *sec, int line);

/* Check hooks of a pool's health and passive sections (bounds between options). */
int config_check_health(struct load *ld, struct cfg_t *sec, int line);
int config_check_passive(struct load *ld, struct cfg_t *sec, int line);

#endif
