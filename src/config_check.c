/*
 * The checks of a section at its '}': counts and required options of every
 * section (config_check_section), then the cross-option hooks the tables
 * name. Values were checked one by one before (on_option); nothing is built.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <confuse.h>

#include "config-int.h"

/* Count, required-option and cross-option checks of a section. */
int
config_check_section(struct load *ld, cfg_t *sec, const struct section_def *sd, int line)
{
	for (size_t i = 0; i < sd->nopts; i++) {
		const struct opt_def *d = &sd->opts[i];

		if (d->type == OPT_SECTION && cfg_size(sec, d->name) < d->min) {
			config_load_error(ld, line, sec, "no %s defined (at least %llu required)",
				d->name, d->min);
			return -1;
		}
		if ((d->flags & OPT_REQUIRED) && cfg_getstr(sec, d->name) == NULL) {
			config_load_error(ld, line, sec, "%s is required", d->name);
			return -1;
		}
	}
	return sd->check != NULL ? sd->check(ld, sec, line) : 0;
}

static int
size_value(cfg_t *sec, const char *name, size_t *out)
{
	const struct opt_def *d = config_table_opt(&config_table_limits, name);

	return config_parse_size(config_opt_text(sec, d), out);
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
	 * (see config_build()); only one the file sets can contradict it. */
	if (uri < head || (at = config_opt_line(ld, sec, "max_uri")) == 0)
		return 0;
	(void)line;
	config_value_format_size(uri, a, sizeof(a));
	config_value_format_size(head, b, sizeof(b));
	config_load_error(ld, at, sec, "max_uri (%s) must be smaller than max_header_size (%s)", a, b);
	return -1;
}

/* The value of option name of sec (table sd) as a number; -1 if invalid. */
static int
opt_number(cfg_t *sec, const struct section_def *sd, const char *name, unsigned long long *n)
{
	const struct opt_def *d = config_table_opt(sd, name);
	struct opt_value v;
	char why[160];

	if (d == NULL || config_opt_text(sec, d) == NULL ||
	    config_value_convert(d, config_opt_text(sec, d), &v, why, sizeof(why)) < 0)
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
		at = config_opt_line(ld, sec, "max_version");
		config_load_error(ld, at ? at : config_where(ld, sec, "min_version"), sec,
			"min_version (TLS1.%llu) is above max_version (TLS1.%llu)",
			(lo & 0xff) - 1, (hi & 0xff) - 1);
		return -1;
	}
	if (cfg_getstr(sec, "ticket_key_file") != NULL &&
	    opt_number(sec, sd, "tickets", &tickets) == 0 && !tickets) {
		config_load_error(ld, config_where(ld, sec, "ticket_key_file"), sec,
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
	if (config_sec_line(ld, cfg_getsec(sec, "tls")) != 0 &&
	    opt_number(sec, sd, "redirect_https", &port) == 0 && port != 0) {
		config_load_error(ld, config_where(ld, sec, "redirect_https"), sec,
			"redirect_https is for a plain listener, not one with tls");
		return -1;
	}
	return 0;
}

/* A hash_key that the pool's balancer would ignore is a mistake. */
static int
check_pool_balance(struct load *ld, cfg_t *sec, const struct section_def *sd)
{
	const char *balance = config_opt_text(sec, config_table_opt(sd, "balance"));
	unsigned long long keyed;
	int at;

	if (opt_number(sec, sd, "balance", &keyed) < 0)
		return 0;	/* on_option has reported it */
	if (!keyed && (at = config_opt_line(ld, sec, "hash_key")) != 0) {
		config_load_error(ld, at, sec, "hash_key is set but balance = %s (only hash uses it)",
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
		if ((at = config_opt_line(ld, sec, tls_only[i])) != 0) {
			config_load_error(ld, at, sec, "%s is set but tls = off", tls_only[i]);
			return -1;
		}
	for (unsigned j = 0; j < cfg_size(sec, "server") && !on; j++) {
		cfg_t *srv = cfg_getnsec(sec, "server", j);

		if ((at = config_opt_line(ld, srv, "tls_server_name")) != 0) {
			config_load_error(ld, at, srv, "tls_server_name is set but the pool has tls = off");
			return -1;
		}
	}
	if (cfg_getstr(sec, "tls_key") != NULL && cfg_getstr(sec, "tls_cert") == NULL) {
		config_load_error(ld, config_where(ld, sec, "tls_key"), sec,
			"tls_key is set without tls_cert");
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
	const char *method = config_opt_text(sec, config_table_opt(sd, "method"));
	const char *path = cfg_getstr(sec, "path"), *host = cfg_getstr(sec, "host");
	int at;

	(void)line;
	if (opt_number(sec, sd, "type", &type) < 0 || opt_number(sec, sd, "interval", &interval) < 0 ||
	    opt_number(sec, sd, "timeout", &timeout) < 0 ||
	    opt_number(sec, sd, "flap_hold", &hold) < 0 ||
	    opt_number(sec, sd, "flap_hold_max", &hold_max) < 0)
		return 0;	/* on_option has reported it */
	for (size_t i = 0; type == CONFIG_CHECK_TCP && i < ARRAY_LEN(unused_tcp); i++)
		if ((at = config_opt_line(ld, sec, unused_tcp[i])) != 0) {
			config_load_error(ld, at, sec, "%s is set but type = tcp (a connect is the check)",
				unused_tcp[i]);
			return -1;
		}
	for (size_t i = 0; type == CONFIG_CHECK_SOCKETIO && i < ARRAY_LEN(unused_sio); i++)
		if ((at = config_opt_line(ld, sec, unused_sio[i])) != 0) {
			config_load_error(ld, at, sec, "%s is set but type = socketio (which sends GET and "
				"expects 200 and an Engine.IO open packet)", unused_sio[i]);
			return -1;
		}
	if (method != NULL && !method_ok(method)) {
		config_load_error(ld, config_where(ld, sec, "method"), sec,
			"invalid method \"%s\" (expected a token such as GET or HEAD)", method);
		return -1;
	}
	if (path != NULL && !target_ok(path)) {
		config_load_error(ld, config_where(ld, sec, "path"), sec,
			"invalid path \"%s\" (expected \"/\" and more, without spaces or \"#\")", path);
		return -1;
	}
	if (host != NULL && strpbrk(host, " \t/?#@") != NULL) {
		config_load_error(ld, config_where(ld, sec, "host"), sec,
			"invalid host \"%s\" (expected a host name or HOST:PORT)", host);
		return -1;
	}
	if (cfg_getstr(sec, "body") != NULL && method != NULL && strcmp(method, "HEAD") == 0) {
		config_load_error(ld, config_where(ld, sec, "body"), sec,
			"body is set but method = HEAD (an answer to HEAD has no body)");
		return -1;
	}
	if (timeout > interval) {
		config_load_error(ld, config_where(ld, sec, config_opt_line(ld, sec, "timeout") ?
			"timeout" : "interval"), sec, "timeout (%s) is longer than interval (%s)",
			config_opt_text(sec, config_table_opt(sd, "timeout")),
			config_opt_text(sec, config_table_opt(sd, "interval")));
		return -1;
	}
	if (hold > hold_max) {
		config_load_error(ld, config_where(ld, sec, config_opt_line(ld, sec, "flap_hold_max") ?
			"flap_hold_max" : "flap_hold"), sec,
			"flap_hold (%s) is longer than flap_hold_max (%s)",
			config_opt_text(sec, config_table_opt(sd, "flap_hold")),
			config_opt_text(sec, config_table_opt(sd, "flap_hold_max")));
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
		config_load_error(ld, config_where(ld, sec, config_opt_line(ld, sec, "max_ejection") ?
			"max_ejection" : "base_ejection"), sec,
			"base_ejection (%s) is longer than max_ejection (%s)",
			config_opt_text(sec, config_table_opt(sd, "base_ejection")),
			config_opt_text(sec, config_table_opt(sd, "max_ejection")));
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
	if (kind != RL_KIND_MESSAGES && (at = config_opt_line(ld, sec, "on_exceed")) != 0) {
		config_load_error(ld, at, sec, "on_exceed is for kind = messages");
		return -1;
	}
	if (kind == RL_KIND_CONNECTIONS && ((at = config_opt_line(ld, sec, "per")) != 0 ||
					    (at = config_opt_line(ld, sec, "burst")) != 0)) {
		config_load_error(ld, at, sec, "per and burst do not apply to kind = connections "
			"(rate is the most connections at once)");
		return -1;
	}
	if ((kind == RL_KIND_MESSAGES || kind == RL_KIND_CONNECTIONS) &&
	    (at = config_opt_line(ld, sec, "headers")) != 0) {
		config_load_error(ld, at, sec, "headers is for kind = requests or upgrades");
		return -1;
	}
	return 0;
}
