/*
 * Configuration generations: reads a file, has libconfuse parse it against
 * the directive tables (config_table.c), reports the first error as FILE:LINE,
 * builds the immutable struct config and shares it by reference. Only this
 * file includes <confuse.h>; it opens no socket or file the config names.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <confuse.h>

#include "config-int.h"
#include "tls.h"

#define MAX_FILE_SIZE	(16u << 20)
#define STICKY_KEY_RANDOM_LEN	32

/* ------------------------------------------------------------- load state */

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
	struct config_scan scan;	/* the file's text and its sections (config_scan.c) */
	cfg_t *root;
	size_t nclosed;			/* sections closed so far by the parser */

	struct sec_rec *secs;
	size_t nsecs;
	struct opt_rec *opts;
	size_t nopts;

	bool failed;			/* the first error, kept */
	int err_line;			/* 0: no line applies */
	char msg[512];
};

static struct load *current;

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
	const struct brace *b = idx < ld->scan.nopens ? &ld->scan.opens[idx] : NULL;
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

/* -------------------------------------------------------------- callbacks */

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
	const struct opt_def *d =
		config_table_opt(config_table_section(cfg_name(sec)), opt->name);
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
	if (config_value_convert(d, text, &v, why, sizeof(why)) < 0) {
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
	const struct opt_def *d =
		config_table_opt(config_table_section(cfg_name(parent)), opt->name);
	const struct config_scan *sc = &ld->scan;
	size_t k = ld->nclosed++;
	const struct brace *b = k < sc->ncloses ? &sc->opens[sc->closes[k]] : NULL;
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
	if ((d->sub->flags & SEC_TITLED) && !config_value_name_ok(cfg_title(sec))) {
		load_error(ld, line, parent, "invalid %s name \"%s\" (expected " NAME_RULE ")",
			d->name, cfg_title(sec));
		return -1;
	}
	return check_section(ld, sec, d->sub, line);
}

static int
size_value(cfg_t *sec, const char *name, size_t *out)
{
	const struct opt_def *d = config_table_opt(&config_table_limits, name);

	return config_parse_size(opt_text(sec, d), out);
}

int
config_check_limits(struct load *ld, cfg_t *sec, int line)
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
	config_value_format_size(uri, a, sizeof(a));
	config_value_format_size(head, b, sizeof(b));
	load_error(ld, at, sec, "max_uri (%s) must be smaller than max_header_size (%s)", a, b);
	return -1;
}

/* The value of option name of sec (table sd) as a number; -1 if invalid. */
static int
opt_number(cfg_t *sec, const struct section_def *sd, const char *name, unsigned long long *n)
{
	const struct opt_def *d = config_table_opt(sd, name);
	struct opt_value v;
	char why[160];

	if (d == NULL || opt_text(sec, d) == NULL ||
	    config_value_convert(d, opt_text(sec, d), &v, why, sizeof(why)) < 0)
		return -1;
	free(v.s);
	*n = v.n;
	return 0;
}

int
config_check_tls(struct load *ld, cfg_t *sec, int line)
{
	const struct section_def *sd = config_table_section("tls");
	unsigned long long lo, hi, tickets;
	int at;

	(void)line;
	if (opt_number(sec, sd, "min_version", &lo) == 0 &&
	    opt_number(sec, sd, "max_version", &hi) == 0 && lo > hi) {
		at = opt_line(ld, sec, "max_version");
		load_error(ld, at ? at : where(ld, sec, "min_version"), sec,
			"min_version (TLS1.%llu) is above max_version (TLS1.%llu)",
			(lo & 0xff) - 1, (hi & 0xff) - 1);
		return -1;
	}
	if (cfg_getstr(sec, "ticket_key_file") != NULL &&
	    opt_number(sec, sd, "tickets", &tickets) == 0 && !tickets) {
		load_error(ld, where(ld, sec, "ticket_key_file"), sec,
			"ticket_key_file is set but tickets = off");
		return -1;
	}
	return 0;
}

int
config_check_listener(struct load *ld, cfg_t *sec, int line)
{
	const struct section_def *sd = config_table_section("listener");
	unsigned long long port;

	(void)line;
	if (sec_line(ld, cfg_getsec(sec, "tls")) != 0 &&
	    opt_number(sec, sd, "redirect_https", &port) == 0 && port != 0) {
		load_error(ld, where(ld, sec, "redirect_https"), sec,
			"redirect_https is for a plain listener, not one with tls");
		return -1;
	}
	return 0;
}

/* A hash_key that the pool's balancer would ignore is a mistake. */
static int
check_pool_balance(struct load *ld, cfg_t *sec, const struct section_def *sd)
{
	const char *balance = opt_text(sec, config_table_opt(sd, "balance"));
	unsigned long long keyed;
	int at;

	if (opt_number(sec, sd, "balance", &keyed) < 0)
		return 0;	/* on_option has reported it */
	if (!keyed && (at = opt_line(ld, sec, "hash_key")) != 0) {
		load_error(ld, at, sec, "hash_key is set but balance = %s (only hash uses it)",
			balance);
		return -1;
	}
	return 0;
}

int
config_check_pool(struct load *ld, cfg_t *sec, int line)
{
	static const char *const tls_only[] = {
		"tls_verify", "tls_ca", "tls_server_name", "tls_cert", "tls_key",
	};
	const struct section_def *sd = config_table_section("pool");
	unsigned long long on = 0;
	int at;

	(void)line;
	if (opt_number(sec, sd, "tls", &on) < 0)
		return 0;	/* on_option has reported it */
	for (size_t i = 0; i < ARRAY_LEN(tls_only) && !on; i++)
		if ((at = opt_line(ld, sec, tls_only[i])) != 0) {
			load_error(ld, at, sec, "%s is set but tls = off", tls_only[i]);
			return -1;
		}
	for (unsigned j = 0; j < cfg_size(sec, "server") && !on; j++) {
		cfg_t *srv = cfg_getnsec(sec, "server", j);

		if ((at = opt_line(ld, srv, "tls_server_name")) != 0) {
			load_error(ld, at, srv, "tls_server_name is set but the pool has tls = off");
			return -1;
		}
	}
	if (cfg_getstr(sec, "tls_key") != NULL && cfg_getstr(sec, "tls_cert") == NULL) {
		load_error(ld, where(ld, sec, "tls_key"), sec, "tls_key is set without tls_cert");
		return -1;
	}
	return check_pool_balance(ld, sec, sd);
}

/* An HTTP method: a token (RFC 9110 9.1), sent as written. */
static bool
method_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && strchr("!#$%&'*+-.^_`|~", s[n]) == NULL)
			return false;
	return n >= 1 && n <= 32;
}

/* A request target in origin-form: "/", then printable ASCII without spaces or '#'. */
static bool
target_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '#')
			return false;
	return true;
}

int
config_check_health(struct load *ld, cfg_t *sec, int line)
{
	/* What each check type does not use: setting it is a mistake. */
	static const char *const unused_tcp[] = { "method", "path", "host", "status", "body" };
	static const char *const unused_sio[] = { "method", "status", "body" };
	const struct section_def *sd = config_table_section("health");
	unsigned long long type, interval, timeout, hold, hold_max;
	const char *method = opt_text(sec, config_table_opt(sd, "method"));
	const char *path = cfg_getstr(sec, "path"), *host = cfg_getstr(sec, "host");
	int at;

	(void)line;
	if (opt_number(sec, sd, "type", &type) < 0 || opt_number(sec, sd, "interval", &interval) < 0 ||
	    opt_number(sec, sd, "timeout", &timeout) < 0 ||
	    opt_number(sec, sd, "flap_hold", &hold) < 0 ||
	    opt_number(sec, sd, "flap_hold_max", &hold_max) < 0)
		return 0;	/* on_option has reported it */
	for (size_t i = 0; type == CONFIG_CHECK_TCP && i < ARRAY_LEN(unused_tcp); i++)
		if ((at = opt_line(ld, sec, unused_tcp[i])) != 0) {
			load_error(ld, at, sec, "%s is set but type = tcp (a connect is the check)",
				unused_tcp[i]);
			return -1;
		}
	for (size_t i = 0; type == CONFIG_CHECK_SOCKETIO && i < ARRAY_LEN(unused_sio); i++)
		if ((at = opt_line(ld, sec, unused_sio[i])) != 0) {
			load_error(ld, at, sec, "%s is set but type = socketio (which sends GET and "
				"expects 200 and an Engine.IO open packet)", unused_sio[i]);
			return -1;
		}
	if (method != NULL && !method_ok(method)) {
		load_error(ld, where(ld, sec, "method"), sec,
			"invalid method \"%s\" (expected a token such as GET or HEAD)", method);
		return -1;
	}
	if (path != NULL && !target_ok(path)) {
		load_error(ld, where(ld, sec, "path"), sec,
			"invalid path \"%s\" (expected \"/\" and more, without spaces or \"#\")", path);
		return -1;
	}
	if (host != NULL && strpbrk(host, " \t/?#@") != NULL) {
		load_error(ld, where(ld, sec, "host"), sec,
			"invalid host \"%s\" (expected a host name or HOST:PORT)", host);
		return -1;
	}
	if (cfg_getstr(sec, "body") != NULL && method != NULL && strcmp(method, "HEAD") == 0) {
		load_error(ld, where(ld, sec, "body"), sec,
			"body is set but method = HEAD (an answer to HEAD has no body)");
		return -1;
	}
	if (timeout > interval) {
		load_error(ld, where(ld, sec, opt_line(ld, sec, "timeout") ? "timeout" : "interval"),
			sec, "timeout (%s) is longer than interval (%s)",
			opt_text(sec, config_table_opt(sd, "timeout")),
			opt_text(sec, config_table_opt(sd, "interval")));
		return -1;
	}
	if (hold > hold_max) {
		load_error(ld, where(ld, sec, opt_line(ld, sec, "flap_hold_max") ? "flap_hold_max" :
			"flap_hold"), sec, "flap_hold (%s) is longer than flap_hold_max (%s)",
			opt_text(sec, config_table_opt(sd, "flap_hold")),
			opt_text(sec, config_table_opt(sd, "flap_hold_max")));
		return -1;
	}
	return 0;
}

int
config_check_passive(struct load *ld, cfg_t *sec, int line)
{
	const struct section_def *sd = config_table_section("passive");
	unsigned long long base, max;

	(void)line;
	if (opt_number(sec, sd, "base_ejection", &base) < 0 ||
	    opt_number(sec, sd, "max_ejection", &max) < 0)
		return 0;	/* on_option has reported it */
	if (base > max) {
		load_error(ld, where(ld, sec, opt_line(ld, sec, "max_ejection") ? "max_ejection" :
			"base_ejection"), sec, "base_ejection (%s) is longer than max_ejection (%s)",
			opt_text(sec, config_table_opt(sd, "base_ejection")),
			opt_text(sec, config_table_opt(sd, "max_ejection")));
		return -1;
	}
	return 0;
}

/*
 * Options that a ratelimit's kind ignores are mistakes: on_exceed outside
 * kind = messages, per and burst for kind = connections (a count at once),
 * headers for kinds without a response of their own.
 */
int
config_check_ratelimit(struct load *ld, cfg_t *sec, int line)
{
	const struct section_def *sd = config_table_section("ratelimit");
	unsigned long long kind;
	int at;

	(void)line;
	if (opt_number(sec, sd, "kind", &kind) < 0)
		return 0;	/* on_option has reported it */
	if (kind != RL_KIND_MESSAGES && (at = opt_line(ld, sec, "on_exceed")) != 0) {
		load_error(ld, at, sec, "on_exceed is for kind = messages");
		return -1;
	}
	if (kind == RL_KIND_CONNECTIONS && ((at = opt_line(ld, sec, "per")) != 0 ||
					    (at = opt_line(ld, sec, "burst")) != 0)) {
		load_error(ld, at, sec, "per and burst do not apply to kind = connections "
			"(rate is the most connections at once)");
		return -1;
	}
	if ((kind == RL_KIND_MESSAGES || kind == RL_KIND_CONNECTIONS) &&
	    (at = opt_line(ld, sec, "headers")) != 0) {
		load_error(ld, at, sec, "headers is for kind = requests or upgrades");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ build */

static int build_section(struct load *ld, cfg_t *sec, const struct section_def *sd, void *obj);

static int
build_subsections(struct load *ld, cfg_t *sec, const struct opt_def *d, char *base)
{
	const struct section_def *sub = d->sub;
	size_t n;
	char *arr;

	if (!(sub->flags & SEC_TITLED)) {
		cfg_t *child = cfg_getsec(sec, d->name);

		/* libconfuse gives a section the file lacks its defaults; only
		 * ours records what was parsed. */
		if (d->flags & OPT_PRESENT)
			*(bool *)(base + d->aux) = sec_line(ld, child) != 0;
		return build_section(ld, child, sub, base + d->off);
	}
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
			config_value_store(d, &v, obj);
			continue;
		}
		if (text == NULL)
			continue;	/* required: check_section() saw to it */
		if (config_value_convert(d, text, &v, why, sizeof(why)) < 0) {
			/* Values were checked while parsing: only a bad
			 * default in the tables can get here. */
			if (d->type == OPT_SECRET)
				load_error(ld, where(ld, sec, d->name), sec, "%s", why);
			else
				load_error(ld, where(ld, sec, d->name), sec, "invalid %s \"%s\" (%s)",
					d->name, text, why);
			return -1;
		}
		config_value_store(d, &v, obj);
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

/* Whether another server of pool p than skip is called name. */
static bool
pool_has_server(const struct config_pool *p, size_t skip, const char *name)
{
	for (size_t j = 0; j < p->nservers; j++)
		if (j != skip && strcmp(p->servers[j].name, name) == 0)
			return true;
	return false;
}

/*
 * Check a server of pool p as written, at index j of section sec: the DNS
 * discovery directives go with a host name only, and the names of its slots
 * must fit and be free.
 */
static int
check_named(struct load *ld, cfg_t *sec, const struct config_pool *p, size_t j)
{
	static const char *const dns_only[] = {
		"resolve_interval", "max_addresses", "resolve_family",
	};
	const struct config_server *cs = &p->servers[j];
	unsigned n = cs->max_addresses ? cs->max_addresses : p->max_addresses;
	char slot[MAX_NAME_LEN + 16];
	int at;

	if (cs->addrlen != 0) {
		for (size_t i = 0; i < ARRAY_LEN(dns_only); i++)
			if ((at = opt_line(ld, sec, dns_only[i])) != 0) {
				load_error(ld, at, sec, "%s is set but the address is not a host name",
					dns_only[i]);
				return -1;
			}
		return 0;
	}
	snprintf(slot, sizeof(slot), "%s-%u", cs->name, n);
	if (strlen(slot) > MAX_NAME_LEN) {
		load_error(ld, sec_line(ld, sec), sec, "name too long for the names of its "
			"addresses (\"%s\" is over %d characters)", slot, MAX_NAME_LEN);
		return -1;
	}
	for (unsigned k = 1; k <= n; k++) {
		snprintf(slot, sizeof(slot), "%s-%u", cs->name, k);
		if (pool_has_server(p, j, slot)) {
			load_error(ld, sec_line(ld, sec), sec, "its addresses are named %s-1 to %s-%u, "
				"and server \"%s\" exists", cs->name, cs->name, n, slot);
			return -1;
		}
	}
	return 0;
}

/*
 * A server whose address names a host becomes max_addresses slots in its
 * place, "NAME-1" to "NAME-N", with its settings and no address: DNS
 * discovery (dns.c) fills them at run time. Fixed slots keep every index
 * stable while answers change, which the balancers, the per-worker idle
 * lists and the sticky tokens rely on.
 */
static int
expand_named(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];
		cfg_t *psec = cfg_getnsec(ld->root, "pool", (unsigned)i);
		struct config_server *out;
		size_t n = 0, o = 0;

		for (size_t j = 0; j < p->nservers; j++) {
			const struct config_server *cs = &p->servers[j];

			if (check_named(ld, cfg_getnsec(psec, "server", (unsigned)j), p, j) < 0)
				return -1;
			n += cs->addrlen != 0 ? 1 : (cs->max_addresses ? cs->max_addresses : p->max_addresses);
		}
		if (n == p->nservers)
			continue;
		out = xcalloc(n, sizeof(*out));
		for (size_t j = 0; j < p->nservers; j++) {
			struct config_server *cs = &p->servers[j];
			const char *colon;

			if (cs->addrlen != 0) {
				out[o++] = *cs;
				continue;
			}
			if (cs->max_addresses == 0)
				cs->max_addresses = p->max_addresses;
			if (cs->resolve_interval_ms == 0)
				cs->resolve_interval_ms = p->resolve_interval_ms;
			if (cs->resolve_family == CONFIG_FAMILY_POOL)
				cs->resolve_family = p->resolve_family;
			/* The value was checked as HOST:PORT. */
			colon = strrchr(cs->address, ':');
			cs->dns_port = (unsigned)strtoul(colon + 1, NULL, 10);
			cs->dns_name = xstrndup(cs->address, (size_t)(colon - cs->address));
			for (char *c = cs->dns_name; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			/* Without a name to check, TLS would verify the IP
			 * address, which a discovered server's certificate
			 * is unlikely to hold; the host name is what it was
			 * reached by. */
			if (p->tls_on && cs->tls_server_name == NULL && p->tls_server_name == NULL)
				cs->tls_server_name = xstrdup(cs->dns_name);
			for (unsigned k = 1; k <= cs->max_addresses; k++) {
				struct config_server *slot = &out[o++];
				char name[MAX_NAME_LEN + 16];

				*slot = *cs;
				snprintf(name, sizeof(name), "%s-%u", cs->name, k);
				slot->name = xstrdup(name);
				slot->address = xstrdup(cs->address);
				slot->dns_name = xstrdup(cs->dns_name);
				slot->tls_server_name = cs->tls_server_name != NULL ?
					xstrdup(cs->tls_server_name) : NULL;
				slot->dns_slot = k;
			}
			free(cs->name);
			free(cs->address);
			free(cs->dns_name);
			free(cs->tls_server_name);
		}
		free(p->servers);
		p->servers = out;
		p->nservers = n;
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
		/* The check's default target depends on its type. */
		if (p->health_on && p->health.path == NULL)
			p->health.path = xstrdup(p->health.type == CONFIG_CHECK_SOCKETIO ?
				"/socket.io/" : "/");
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

/*
 * Derive each policy's GCRA constants, and resolve the ratelimit names of
 * each route (in file order: before link_routes sorts them).
 */
static int
link_ratelimits(struct load *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		struct rl_policy *p = &cfg->ratelimits[i];

		p->index = (unsigned)i;
		p->t_us = (uint64_t)p->per_s * 1000000 / p->rate;
		p->tau_us = p->t_us * p->burst;
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct config_route *r = &cfg->routes[i];
		cfg_t *sec = cfg_getnsec(ld->root, "route", (unsigned)i);
		const char *s = r->ratelimit_names;
		int at = where(ld, sec, "ratelimit");

		while (s != NULL && *s) {
			size_t n = strcspn(s, " \t,"), k;

			if (n == 0) {
				s++;
				continue;
			}
			for (k = 0; k < cfg->nratelimits; k++)
				if (strlen(cfg->ratelimits[k].name) == n &&
				    memcmp(cfg->ratelimits[k].name, s, n) == 0)
					break;
			if (k == cfg->nratelimits) {
				load_error(ld, at, sec, "unknown ratelimit \"%.*s\"", (int)n, s);
				return -1;
			}
			for (unsigned j = 0; j < r->nrl; j++)
				if (r->rl[j] == &cfg->ratelimits[k]) {
					load_error(ld, at, sec, "ratelimit \"%.*s\" listed twice",
						(int)n, s);
					return -1;
				}
			if (r->nrl == CONFIG_ROUTE_MAX_RL) {
				load_error(ld, at, sec, "more than %d ratelimits", CONFIG_ROUTE_MAX_RL);
				return -1;
			}
			r->rl[r->nrl++] = &cfg->ratelimits[k];
			r->rl_kinds |= RL_KINDS_BIT(cfg->ratelimits[k].kind);
			s += n;
		}
	}
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

/*
 * Build the TLS contexts the generation owns: `sluice -t` thereby checks
 * every certificate, key and ticket key file. An error points at the line
 * of the directive it is about.
 */
static int
link_tls(struct load *ld, struct config *cfg)
{
	struct tls_error terr;

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];
		cfg_t *sec;

		if (!l->tls_enabled)
			continue;
		memset(&terr, 0, sizeof(terr));
		if ((l->tls = tls_server_new(l, &terr)) != NULL)
			continue;
		sec = cfg_getsec(cfg_getnsec(ld->root, "listener", (unsigned)i), "tls");
		if (terr.cert >= 0 && (unsigned)terr.cert < cfg_size(sec, "certificate"))
			sec = cfg_getnsec(sec, "certificate", (unsigned)terr.cert);
		load_error(ld, where(ld, sec, terr.directive ? terr.directive : ""), sec,
			"%s", terr.msg);
		return -1;
	}
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];
		cfg_t *sec;

		if (!p->tls_on)
			continue;
		memset(&terr, 0, sizeof(terr));
		if ((p->tls = tls_client_new(p, &terr)) != NULL)
			continue;
		sec = cfg_getnsec(ld->root, "pool", (unsigned)i);
		load_error(ld, where(ld, sec, terr.directive ? terr.directive : ""), sec,
			"%s", terr.msg);
		return -1;
	}
	return 0;
}

static void
free_listener(struct config_listener *l)
{
	struct config_listener_tls *t = &l->tls_conf;

	tls_server_free(l->tls);
	for (size_t i = 0; i < t->ncerts; i++) {
		free(t->certs[i].name);
		free(t->certs[i].chain);
		free(t->certs[i].key);
	}
	free(t->certs);
	free(t->ciphers);
	free(t->ciphersuites);
	free(t->ticket_key_file);
	free(l->name);
	free(l->address);
}

static void
config_destroy(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		free_listener(&cfg->listeners[i]);
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->npools; i++) {
		struct config_pool *p = &cfg->pools[i];

		tls_client_free(p->tls);
		for (size_t j = 0; j < p->nservers; j++) {
			free(p->servers[j].name);
			free(p->servers[j].address);
			free(p->servers[j].tls_server_name);
			free(p->servers[j].dns_name);
		}
		free(p->servers);
		free(p->name);
		free(p->tls_ca);
		free(p->tls_server_name);
		free(p->tls_cert);
		free(p->tls_key);
		free(p->balance);
		free(p->hash_key_name);
		free(p->health.method);
		free(p->health.path);
		free(p->health.host);
		free(p->health.body);
	}
	free(cfg->pools);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].name);
		free(cfg->routes[i].host);
		free(cfg->routes[i].path);
		free(cfg->routes[i].pool_name);
		free(cfg->routes[i].sticky_cookie);
		free(cfg->routes[i].ratelimit_names);
	}
	free(cfg->routes);
	if (cfg->sticky_key != NULL)
		explicit_bzero(cfg->sticky_key, cfg->sticky_key_len);
	free(cfg->sticky_key);
	free(cfg->access_log);
	free(cfg->resolvers);
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		free(cfg->ratelimits[i].name);
		free(cfg->ratelimits[i].key_name);
	}
	free(cfg->ratelimits);
	free(cfg->trusted_proxies);
	free(cfg->trusted);
	free(cfg->redis.address);
	free(cfg->redis.user);
	if (cfg->redis.password != NULL)
		explicit_bzero(cfg->redis.password, cfg->redis.password_len);
	free(cfg->redis.password);
	free(cfg->redis.prefix);
	free(cfg->file);
	free(cfg);
}

static struct config *
build(struct load *ld)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	atomic_init(&cfg->refcnt, 1);
	cfg->file = xstrdup(ld->file);
	if (check_section(ld, ld->root, &config_table_root, 0) < 0 ||
	    build_section(ld, ld->root, &config_table_root, cfg) < 0 ||
	    link_listeners(ld, cfg) < 0 ||
	    link_ratelimits(ld, cfg) < 0 ||
	    link_routes(ld, cfg) < 0 ||
	    fill_sticky_key(ld, cfg) < 0 ||
	    expand_named(ld, cfg) < 0) {
		config_destroy(cfg);
		return NULL;
	}
	link_pools(cfg);
	if (link_tls(ld, cfg) < 0) {
		config_destroy(cfg);
		return NULL;
	}
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
	struct config_scan *sc = &ld->scan;
	FILE *fp = fopen(ld->file, "r");
	size_t cap = 4096, got;

	if (fp == NULL) {
		load_error(ld, 0, NULL, "cannot open: %s", strerror(errno));
		return -1;
	}
	sc->buf = xcalloc(1, cap + 1);
	while ((got = fread(sc->buf + sc->len, 1, cap - sc->len, fp)) > 0) {
		sc->len += got;
		if (sc->len == cap) {
			if (cap >= MAX_FILE_SIZE) {
				load_error(ld, 0, NULL, "file is larger than %u bytes", MAX_FILE_SIZE);
				fclose(fp);
				return -1;
			}
			cap *= 2;
			sc->buf = xrealloc(sc->buf, cap + 1, 1);
		}
	}
	if (ferror(fp)) {
		load_error(ld, 0, NULL, "cannot read: %s", strerror(errno));
		fclose(fp);
		return -1;
	}
	fclose(fp);
	sc->buf[sc->len] = '\0';
	return 0;
}

static int
parse(struct load *ld)
{
	struct config_scan *sc = &ld->scan;
	cfg_opt_t *opts = make_opts(&config_table_root);
	FILE *fp;
	int rc = 0;

	ld->root = cfg_init(opts, CFGF_NONE);
	free_opts(opts);
	if (ld->root == NULL)
		out_of_memory();
	cfg_set_error_function(ld->root, on_confuse_error);
	if (sc->len == 0)
		return 0;
	fp = fmemopen(sc->buf, sc->len, "r");
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
	config_scan_free(&ld->scan);
	free(ld->secs);
	free(ld->opts);
}

struct config *
config_load(const char *file, char *err, size_t errlen)
{
	struct load ld = { .file = file };
	struct config *cfg = NULL;
	int line;

	current = &ld;
	if (read_file(&ld) == 0) {
		config_scan_run(&ld.scan);
		if (!ld.scan.fatal && parse(&ld) == 0 && !ld.scan.failed)
			cfg = build(&ld);
	}
	current = NULL;
	/* Of a scan error and a parse error, report the earlier. */
	if (ld.scan.failed && (!ld.failed || ld.err_line == 0 || ld.scan.err_line <= ld.err_line)) {
		ld.failed = true;
		ld.err_line = ld.scan.err_line;
		snprintf(ld.msg, sizeof(ld.msg), "%s", ld.scan.msg);
	}
	if (cfg == NULL && err != NULL && errlen > 0) {
		line = ld.err_line;
		/* libconfuse counts the line after a final newline. */
		if (line > ld.scan.nlines)
			line = ld.scan.nlines > 0 ? ld.scan.nlines : 1;
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

