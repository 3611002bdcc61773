/*
 * Directive values by type: checks one against its table entry and stores it
 * into struct config. The parsers are in config_number.c, config_addr.c and
 * config_keyword.c. No libconfuse and no load state here.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-int.h"
#include "lb.h"

static const char *const log_level_names[] = {
	[CONFIG_LOG_ERROR] = "error",
	[CONFIG_LOG_WARN] = "warn",
	[CONFIG_LOG_INFO] = "info",
	[CONFIG_LOG_DEBUG] = "debug",
};

static const char *const family_names[] = {
	[CONFIG_FAMILY_ANY] = "any",
	[CONFIG_FAMILY_IPV4] = "ipv4",
	[CONFIG_FAMILY_IPV6] = "ipv6",
};

static const char *const check_type_names[] = {
	[CONFIG_CHECK_HTTP] = "http",
	[CONFIG_CHECK_SOCKETIO] = "socketio",
	[CONFIG_CHECK_TCP] = "tcp",
};

static const char *const redis_error_names[] = {
	[CONFIG_REDIS_ALLOW] = "allow",
	[CONFIG_REDIS_DENY] = "deny",
	[CONFIG_REDIS_LOCAL] = "local",
};

/* ----------------------------------------------------------------- helpers */

static void
lower_ascii(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return false;
	return true;
}

/* ------------------------------------------------------------ option values */

/*
 * Check and convert one value. On error, why says what was expected; the
 * caller names the option and the value.
 */
int
config_value_convert(const struct opt_def *d, const char *text, struct opt_value *v,
		char *why, size_t whylen)
{
	char bounds[80];

	memset(v, 0, sizeof(*v));
	switch (d->type) {
	case OPT_UINT:
	case OPT_INT: {
		const char *p = text;

		if (config_number_digits(&p, &v->n) < 0 || *p != '\0') {
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

		if (config_number_size64(text, &n) < 0) {
			snprintf(why, whylen, "expected a size such as 512, 16k or 1m");
			return -1;
		}
		v->n = n;
		break;
	}
	case OPT_LOG_LEVEL:
		return config_keyword_match(text, log_level_names, ARRAY_LEN(log_level_names), v,
			"expected error, warn, info or debug", why, whylen);
	case OPT_LOG_TARGET:
		if (text[0] == '\0') {
			snprintf(why, whylen, "expected \"-\", \"off\" or a file path");
			return -1;
		}
		v->s = strcmp(text, "off") == 0 ? NULL : xstrdup(text);
		return 0;
	case OPT_ADDRESS:
		if (config_addr_parse(text, &v->ss, &v->sslen, why, whylen) < 0) {
			int named = (d->flags & OPT_NAME_OK) ? config_addr_name_port(text, why, whylen) : 1;

			if (named != 0)
				return -1;
			/* A host for DNS discovery: no address yet. */
			memset(&v->ss, 0, sizeof(v->ss));
			v->sslen = 0;
		}
		v->s = xstrdup(text);
		return 0;
	case OPT_HOST:
		if (strcmp(text, "*") == 0) {
			v->host_kind = CONFIG_HOST_ANY;
			v->s = xstrdup(text);
		} else if (strncmp(text, "*.", 2) == 0 && config_addr_hostname_ok(text + 2)) {
			v->host_kind = CONFIG_HOST_SUFFIX;
			v->s = xstrdup(text + 1);
		} else if (config_addr_hostname_ok(text)) {
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
		if (!config_value_name_ok(text)) {
			snprintf(why, whylen, "expected a name of " NAME_RULE);
			return -1;
		}
		v->s = xstrdup(text);
		return 0;
	case OPT_STICKY: {
		unsigned bits;

		if (config_keyword_sticky(text, &bits) < 0) {
			snprintf(why, whylen, "expected off, cookie, socketio or \"cookie socketio\"");
			return -1;
		}
		v->n = bits;
		return 0;
	}
	case OPT_COOKIE_NAME:
		if (!config_keyword_cookie_name_ok(text)) {
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
	case OPT_BOOL: {
		bool b;

		if (config_keyword_bool(text, &b) < 0) {
			snprintf(why, whylen, "expected on or off");
			return -1;
		}
		v->n = b;
		return 0;
	}
	case OPT_STRING:
	case OPT_FILE:
		if (text[0] == '\0' || !printable(text)) {
			snprintf(why, whylen, "%s", d->type == OPT_FILE ?
				"expected a file path" : "expected a non-empty string");
			return -1;
		}
		v->s = xstrdup(text);
		return 0;
	case OPT_SECONDS:
		if (config_number_seconds(text, &v->n) < 0) {
			snprintf(why, whylen, "expected a duration such as 30s, 5m, 1h or 7d");
			return -1;
		}
		break;
	case OPT_TLS_VERSION: {
		unsigned ver;

		if (config_keyword_tls_version(text, &ver) < 0) {
			snprintf(why, whylen, "expected TLS1.2 or TLS1.3");
			return -1;
		}
		v->n = ver;
		return 0;
	}
	case OPT_REDIRECT: {
		const char *p = text;

		if (strcmp(text, "off") == 0) {
			v->n = 0;
		} else if (strcmp(text, "on") == 0) {
			v->n = 443;
		} else if (config_number_digits(&p, &v->n) < 0 || *p != '\0' || v->n < 1 || v->n > 65535) {
			snprintf(why, whylen, "expected on, off or the https port");
			return -1;
		}
		return 0;
	}
	case OPT_SERVER_NAME: {
		struct in_addr a4;
		struct in6_addr a6;

		if (inet_pton(AF_INET, text, &a4) == 1 || inet_pton(AF_INET6, text, &a6) == 1) {
			snprintf(why, whylen, "an IP address is not a server name; "
				"without one, the server's IP address is verified");
			return -1;
		}
		if (!config_addr_hostname_ok(text)) {
			snprintf(why, whylen, "expected a host name");
			return -1;
		}
		v->s = xstrdup(text);
		lower_ascii(v->s);
		return 0;
	}
	case OPT_BALANCE: {
		const struct lb_ops *ops = lb_find(text);

		if (ops == NULL) {
			snprintf(why, whylen, "expected roundrobin, leastconn, hash or random2");
			return -1;
		}
		v->n = ops->keyed;
		v->s = xstrdup(text);
		return 0;
	}
	case OPT_HASH_KEY:
		return config_keyword_hash_key(text, v, why, whylen);
	case OPT_RESOLVERS:
		if (config_addr_resolvers(text, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_FAMILY:
		return config_keyword_match(text, family_names, ARRAY_LEN(family_names), v,
			"expected any, ipv4 or ipv6", why, whylen);
	case OPT_CHECK_TYPE:
		return config_keyword_match(text, check_type_names, ARRAY_LEN(check_type_names), v,
			"expected http, socketio or tcp", why, whylen);
	case OPT_REDIS_ERROR:
		return config_keyword_match(text, redis_error_names, ARRAY_LEN(redis_error_names), v,
			"expected allow, deny or local", why, whylen);
	case OPT_RL_KEY:
		return config_keyword_rl_key(text, v, why, whylen);
	case OPT_RL_KIND: {
		static const char *const kinds[] = {
			[RL_KIND_REQUESTS] = "requests", [RL_KIND_UPGRADES] = "upgrades",
			[RL_KIND_MESSAGES] = "messages", [RL_KIND_CONNECTIONS] = "connections",
		};
		return config_keyword_match(text, kinds, ARRAY_LEN(kinds), v,
			"expected requests, upgrades, messages or connections", why, whylen);
	}
	case OPT_RL_EXCEED: {
		static const char *const acts[] = {
			[RL_EXCEED_CLOSE] = "close", [RL_EXCEED_DROP] = "drop",
		};
		return config_keyword_match(text, acts, ARRAY_LEN(acts), v, "expected close or drop",
			why, whylen);
	}
	case OPT_NAMES:
		if (config_keyword_names(text, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_CIDRS:
		if (config_addr_cidrs(text, NULL, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_STATUS_RANGE: {
		unsigned long long lo, hi;

		if (config_number_status_range(text, &lo, &hi) < 0) {
			snprintf(why, whylen, "expected a status such as 200, or a range "
				"such as 200-399, within 100..599");
			return -1;
		}
		/* Both ends in one number until config_value_store(). */
		v->n = lo * 1000 + hi;
		return 0;
	}
	case OPT_PERCENT:
		if (config_number_percent(text, &v->n) < 0) {
			snprintf(why, whylen, "expected a percentage such as 50%%");
			return -1;
		}
		break;
	case OPT_SECTION:
		break;
	}
	if (config_value_has_bounds(d) && (v->n < d->min || v->n > d->max)) {
		config_value_format_bounds(d, bounds, sizeof(bounds));
		snprintf(why, whylen, "must be in %s", bounds);
		return -1;
	}
	return 0;
}

/* Move a converted value into its fields in obj. */
void
config_value_store(const struct opt_def *d, struct opt_value *v, void *obj)
{
	char *base = obj;

	switch (d->type) {
	case OPT_UINT:
	case OPT_DURATION:
	case OPT_SECONDS:
	case OPT_TLS_VERSION:
	case OPT_REDIRECT:
		*(unsigned *)(base + d->off) = (unsigned)v->n;
		break;
	case OPT_BOOL:
		*(bool *)(base + d->off) = v->n != 0;
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
	case OPT_STRING:
	case OPT_FILE:
	case OPT_SERVER_NAME:
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_BALANCE:
		*(char **)(base + d->off) = v->s;
		*(bool *)(base + d->aux) = v->n != 0;
		break;
	case OPT_HASH_KEY:
		*(enum config_hash_key *)(base + d->off) = (enum config_hash_key)v->n;
		*(char **)(base + d->aux) = v->s;
		break;
	case OPT_RESOLVERS:
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_FAMILY:
		*(enum config_family *)(base + d->off) = (enum config_family)v->n;
		break;
	case OPT_CHECK_TYPE:
	case OPT_REDIS_ERROR:
	case OPT_PERCENT:
		*(unsigned *)(base + d->off) = (unsigned)v->n;
		break;
	case OPT_STATUS_RANGE:
		*(unsigned *)(base + d->off) = (unsigned)(v->n / 1000);
		*(unsigned *)(base + d->aux) = (unsigned)(v->n % 1000);
		break;
	case OPT_RL_KEY:
		*(unsigned *)(base + d->off) = (unsigned)v->n;
		*(char **)(base + d->aux) = v->s;
		break;
	case OPT_RL_KIND:
	case OPT_RL_EXCEED:
		*(unsigned *)(base + d->off) = (unsigned)v->n;
		break;
	case OPT_NAMES:
		*(char **)(base + d->off) = v->s;
		break;
	case OPT_CIDRS: {
		char why[8];
		long n = config_addr_cidrs(v->s, NULL, why, sizeof(why));
		struct config_cidr *arr = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*arr));

		/* Checked by config_value_convert(): it parses again, the same. */
		n = config_addr_cidrs(v->s, arr, why, sizeof(why));
		*(char **)(base + d->off) = v->s;
		*(struct config_cidr **)(base + d->aux) = arr;
		*(size_t *)(base + d->aux2) = n > 0 ? (size_t)n : 0;
		break;
	}
	case OPT_SECTION:
		break;
	}
	v->s = NULL;
}
