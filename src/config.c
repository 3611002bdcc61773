/*
 * Configuration loads: reads a file, has libconfuse parse it against the
 * tables (config_table.c) through our callbacks, reports the first error as
 * FILE:LINE, and shares and frees what config_build.c makes. Opens no socket.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confuse.h>

#include "config-int.h"
#include "tls.h"

#define MAX_FILE_SIZE	(16u << 20)

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
 * libconfuse's callbacks carry no user pointer, so the load in progress
 * (struct load, config-int.h) is reached through `current`; loading is
 * main-thread only and libconfuse's lexer is not reentrant anyway.
 */
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
void __attribute__((format(printf, 4, 5)))
config_load_error(struct load *ld, int line, cfg_t *sec, const char *fmt, ...)
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

int
config_opt_line(struct load *ld, cfg_t *sec, const char *name)
{
	for (size_t i = 0; i < ld->nopts; i++)
		if (ld->opts[i].sec == sec && strcmp(ld->opts[i].name, name) == 0)
			return ld->opts[i].line;
	return 0;
}

int
config_sec_line(struct load *ld, cfg_t *sec)
{
	for (size_t i = 0; i < ld->nsecs; i++)
		if (ld->secs[i].sec == sec)
			return ld->secs[i].line;
	return 0;
}

/* The line of an option if the file sets it, else that of its section. */
int
config_where(struct load *ld, cfg_t *sec, const char *name)
{
	int line = config_opt_line(ld, sec, name);

	return line ? line : config_sec_line(ld, sec);
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
			config_load_error(ld, line, parent, "duplicate %s \"%s\" (first defined at line %d)",
				kind, title, r->line);
			return;
		}
	}
	config_load_error(ld, line, parent, "duplicate %s \"%s\"", kind, title);
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
	config_load_error(ld, sec != NULL ? sec->line : 0, sec, "%s", text);
}

/* -------------------------------------------------------------- callbacks */

/* The value of d in sec: as set in the file, else its default (or NULL). */
const char *
config_opt_text(cfg_t *sec, const struct opt_def *d)
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
	first = config_opt_line(ld, sec, d->name);
	if (first != 0) {
		config_load_error(ld, sec->line, sec, "duplicate option \"%s\" (first set at line %d)",
			d->name, first);
		return -1;
	}
	ld->opts = xrealloc(ld->opts, ld->nopts + 1, sizeof(*ld->opts));
	ld->opts[ld->nopts++] = (struct opt_rec){ .sec = sec, .name = d->name, .line = sec->line };
	if (config_value_convert(d, text, &v, why, sizeof(why)) < 0) {
		if (d->type == OPT_SECRET)
			config_load_error(ld, sec->line, sec, "%s", why);
		else
			config_load_error(ld, sec->line, sec, "invalid %s \"%s\" (%s)", d->name, text, why);
		return -1;
	}
	if (d->type == OPT_SECRET && v.s != NULL)
		explicit_bzero(v.s, v.n);
	free(v.s);
	return 0;
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
	first = config_sec_line(ld, sec);
	if (first != 0) {
		config_load_error(ld, line, parent, "duplicate %s section (first at line %d)", d->name, first);
		return -1;
	}
	ld->secs = xrealloc(ld->secs, ld->nsecs + 1, sizeof(*ld->secs));
	ld->secs[ld->nsecs++] = (struct sec_rec){
		.sec = sec, .parent = parent, .kind = d->name, .line = line,
	};
	if ((d->sub->flags & SEC_TITLED) && !config_value_name_ok(cfg_title(sec))) {
		config_load_error(ld, line, parent, "invalid %s name \"%s\" (expected " NAME_RULE ")",
			d->name, cfg_title(sec));
		return -1;
	}
	return config_check_section(ld, sec, d->sub, line);
}

/* ---------------------------------------------------------------- freeing */

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

void
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
		config_load_error(ld, 0, NULL, "cannot open: %s", strerror(errno));
		return -1;
	}
	sc->buf = xcalloc(1, cap + 1);
	while ((got = fread(sc->buf + sc->len, 1, cap - sc->len, fp)) > 0) {
		sc->len += got;
		if (sc->len == cap) {
			if (cap >= MAX_FILE_SIZE) {
				config_load_error(ld, 0, NULL, "file is larger than %u bytes", MAX_FILE_SIZE);
				fclose(fp);
				return -1;
			}
			cap *= 2;
			sc->buf = xrealloc(sc->buf, cap + 1, 1);
		}
	}
	if (ferror(fp)) {
		config_load_error(ld, 0, NULL, "cannot read: %s", strerror(errno));
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
			config_load_error(ld, 0, NULL, "syntax error");
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
			cfg = config_build(&ld);
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

/* ---------------------------------------------------------------- lookup */

struct config_pool *
config_pool_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; cfg != NULL && i < cfg->npools; i++)
		if (strcmp(cfg->pools[i].name, name) == 0)
			return &cfg->pools[i];
	return NULL;
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
