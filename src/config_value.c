/*
 * Directive values: parsing durations, sizes, addresses, host patterns, path
 * prefixes and the other option types, checking them against their table
 * entry and storing them into struct config; and writing durations and sizes
 * back for messages and the reference. No libconfuse and no load state here.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config-int.h"
#include "lb.h"

#define MAX_COOKIE_NAME	64

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

void
config_value_format_size(unsigned long long n, char *buf, size_t len)
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

/* "7d", "1h", "5m" or "30s": the largest unit that is exact. */
static void
format_seconds(unsigned long long s, char *buf, size_t len)
{
	if (s != 0 && s % 86400 == 0)
		snprintf(buf, len, "%llud", s / 86400);
	else if (s != 0 && s % 3600 == 0)
		snprintf(buf, len, "%lluh", s / 3600);
	else if (s != 0 && s % 60 == 0)
		snprintf(buf, len, "%llum", s / 60);
	else
		snprintf(buf, len, "%llus", s);
}

static void
format_value(enum opt_type type, unsigned long long n, char *buf, size_t len)
{
	if (type == OPT_DURATION)
		format_duration(n, buf, len);
	else if (type == OPT_SECONDS)
		format_seconds(n, buf, len);
	else if (type == OPT_SIZE || type == OPT_SIZE64)
		config_value_format_size(n, buf, len);
	else if (type == OPT_PERCENT)
		snprintf(buf, len, "%llu%%", n);
	else
		snprintf(buf, len, "%llu", n);
}

bool
config_value_has_bounds(const struct opt_def *d)
{
	return d->type == OPT_UINT || d->type == OPT_INT || d->type == OPT_DURATION ||
		d->type == OPT_SIZE || d->type == OPT_SIZE64 || d->type == OPT_SECONDS ||
		d->type == OPT_PERCENT;
}

void
config_value_format_bounds(const struct opt_def *d, char *buf, size_t len)
{
	char lo[32], hi[32];

	format_value(d->type, d->min, lo, sizeof(lo));
	format_value(d->type, d->max, hi, sizeof(hi));
	snprintf(buf, len, "%s..%s", lo, hi);
}

/* Object names end up in logs and JSON ("server":"chat/a") unescaped. */
bool
config_value_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-' && s[n] != '.')
			return false;
	return n >= 1 && n <= MAX_NAME_LEN;
}

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

/*
 * A duration in whole seconds: digits and s, m, h or d (a bare number is
 * seconds). Used where the consumer counts in seconds (TLS sessions, HSTS),
 * which also lets it go past the 49 days that milliseconds fit in 32 bits.
 */
static int
parse_seconds(const char *s, unsigned long long *out)
{
	unsigned long long n, mult;

	if (parse_digits(&s, &n) < 0)
		return -1;
	if (*s == '\0' || strcmp(s, "s") == 0)
		mult = 1;
	else if (strcmp(s, "m") == 0)
		mult = 60;
	else if (strcmp(s, "h") == 0)
		mult = 3600;
	else if (strcmp(s, "d") == 0)
		mult = 86400;
	else
		return -1;
	if (n > UINT_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

static int
parse_bool(const char *s, bool *b)
{
	static const char *const yes[] = { "on", "yes", "true" };
	static const char *const no[] = { "off", "no", "false" };

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*b = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*b = false;
			return 0;
		}
	}
	return -1;
}

/* "TLS1.2" or OpenSSL's "TLSv1.2", either case. */
static int
parse_tls_version(const char *s, unsigned *v)
{
	if (strncasecmp(s, "TLS", 3) != 0)
		return -1;
	s += 3;
	if (*s == 'v' || *s == 'V')
		s++;
	if (strcmp(s, "1.2") == 0)
		*v = CONFIG_TLS_1_2;
	else if (strcmp(s, "1.3") == 0)
		*v = CONFIG_TLS_1_3;
	else
		return -1;
	return 0;
}

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return false;
	return true;
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

/* RFC 9110 5.1 field-name: a token. */
static bool
field_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && strchr("!#$%&'*+-.^_`|~", s[n]) == NULL)
			return false;
	return n >= 1 && n <= MAX_NAME_LEN;
}

/* A query parameter name as it appears in a target, percent-encoded. */
static bool
query_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if ((unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f ||
		    strchr("&=#?", s[n]) != NULL)
			return false;
	return n >= 1 && n <= MAX_NAME_LEN;
}

/* hash_key: client, "header:NAME", "cookie:NAME" or "query:NAME". */
static int
parse_hash_key(const char *text, struct opt_value *v, char *why, size_t whylen)
{
	static const struct {
		const char *prefix;
		enum config_hash_key kind;
		bool (*ok)(const char *);
		const char *what;
	} kinds[] = {
		{ "header:", CONFIG_HASH_HEADER, field_name_ok, "a header field name" },
		{ "cookie:", CONFIG_HASH_COOKIE, cookie_name_ok, "a cookie name" },
		{ "query:", CONFIG_HASH_QUERY, query_name_ok, "a query parameter name" },
	};

	if (strcmp(text, "client") == 0) {
		v->n = CONFIG_HASH_CLIENT;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
		size_t plen = strlen(kinds[i].prefix);

		if (strncmp(text, kinds[i].prefix, plen) != 0)
			continue;
		if (!kinds[i].ok(text + plen)) {
			snprintf(why, whylen, "expected %s of 1 to %d characters after \"%s\"",
				kinds[i].what, MAX_NAME_LEN, kinds[i].prefix);
			return -1;
		}
		v->n = kinds[i].kind;
		v->s = xstrdup(text + plen);
		return 0;
	}
	snprintf(why, whylen, "expected client, \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"");
	return -1;
}

/* A rate limit's key: client, route, "header:NAME" or "cookie:NAME". */
static int
parse_rl_key(const char *text, struct opt_value *v, char *why, size_t whylen)
{
	if (strcmp(text, "client") == 0 || strcmp(text, "route") == 0) {
		v->n = text[0] == 'c' ? RL_KEY_CLIENT : RL_KEY_ROUTE;
		return 0;
	}
	if (strncmp(text, "header:", 7) == 0 && field_name_ok(text + 7)) {
		v->n = RL_KEY_HEADER;
		v->s = xstrdup(text + 7);
		return 0;
	}
	if (strncmp(text, "cookie:", 7) == 0 && cookie_name_ok(text + 7)) {
		v->n = RL_KEY_COOKIE;
		v->s = xstrdup(text + 7);
		return 0;
	}
	snprintf(why, whylen, "expected client, route, \"header:NAME\" or \"cookie:NAME\"");
	return -1;
}

/* Index of text in names[0..n) (NULL entries: enum values without a name), or -1. */
static int
word_index(const char *text, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] != NULL && strcmp(text, names[i]) == 0)
			return (int)i;
	return -1;
}

/* A value that must be one of names[0..n): its index in v->n, or -1 with expected in why. */
static int
keyword(const char *text, const char *const *names, size_t n, struct opt_value *v,
		const char *expected, char *why, size_t whylen)
{
	int k = word_index(text, names, n);

	if (k < 0) {
		snprintf(why, whylen, "%s", expected);
		return -1;
	}
	v->n = (unsigned)k;
	return 0;
}

/* "a b,c": names separated by spaces or commas, each a valid name. */
static int
parse_names(const char *s, char *why, size_t whylen)
{
	char name[MAX_NAME_LEN + 1];
	size_t count = 0;

	while (*s) {
		size_t n = strcspn(s, " \t,");

		if (n == 0) {
			s++;
			continue;
		}
		if (n > MAX_NAME_LEN) {
			snprintf(why, whylen, "expected names of " NAME_RULE);
			return -1;
		}
		memcpy(name, s, n);
		name[n] = '\0';
		if (!config_value_name_ok(name)) {
			snprintf(why, whylen, "\"%s\" is not a name (" NAME_RULE ")", name);
			return -1;
		}
		count++;
		s += n;
	}
	if (count == 0) {
		snprintf(why, whylen, "expected one or more names");
		return -1;
	}
	return 0;
}

int
config_value_parse_cidr(const char *s, size_t len, struct config_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	unsigned long long bits;
	const char *bp;

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, c->addr) == 1)
		c->family = AF_INET6;
	else
		return -1;
	c->bits = c->family == AF_INET ? 32 : 128;
	if (slash == NULL)
		return 0;
	if (len - alen - 1 == 0 || len - alen - 1 > 3)
		return -1;
	memcpy(buf, slash + 1, len - alen - 1);
	buf[len - alen - 1] = '\0';
	bp = buf;
	if (parse_digits(&bp, &bits) < 0 || *bp != '\0' || bits > c->bits)
		return -1;
	c->bits = (unsigned)bits;
	/* Host bits set ("10.1.2.3/8") are cleared: the network is meant. */
	for (unsigned i = c->bits; i < (c->family == AF_INET ? 32u : 128u); i++)
		c->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
	return 0;
}

/* "10.0.0.0/8 ::1/128": parse into *out (NULL: only check). Returns the count or -1. */
static long
parse_cidrs(const char *s, struct config_cidr *out, char *why, size_t whylen)
{
	long count = 0;

	while (*s) {
		size_t n = strcspn(s, " \t,");
		struct config_cidr c;

		if (n == 0) {
			s++;
			continue;
		}
		if (config_value_parse_cidr(s, n, &c) < 0) {
			snprintf(why, whylen, "\"%.*s\" is not an address or ADDRESS/BITS",
				(int)(n < 64 ? n : 64), s);
			return -1;
		}
		if (out != NULL)
			out[count] = c;
		count++;
		s += n;
	}
	if (count == 0) {
		snprintf(why, whylen, "expected one or more CIDRs such as 10.0.0.0/8");
		return -1;
	}
	return count;
}

/* "200-399" or "200": HTTP status codes 100..599, low first. */
static int
parse_status_range(const char *s, unsigned long long *lo, unsigned long long *hi)
{
	if (parse_digits(&s, lo) < 0)
		return -1;
	if (*s == '-') {
		s++;
		if (parse_digits(&s, hi) < 0)
			return -1;
	} else {
		*hi = *lo;
	}
	if (*s != '\0' || *lo < 100 || *hi > 599 || *lo > *hi)
		return -1;
	return 0;
}

/* "50%" or "50". */
static int
parse_percent(const char *s, unsigned long long *out)
{
	if (parse_digits(&s, out) < 0)
		return -1;
	if (*s == '%')
		s++;
	return *s == '\0' ? 0 : -1;
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

/* A DNS name, not an IP address: a label that is not all digits ends it. */
static bool
dns_name_ok(const char *s)
{
	const char *last = strrchr(s, '.');

	if (!hostname_ok(s))
		return false;
	for (last = last ? last + 1 : s; *last; last++)
		if (!isdigit((unsigned char)*last))
			return true;
	return false;
}

/*
 * A server address naming a host, "HOST:PORT", which DNS discovery resolves.
 * Returns 0; 1 when s does not name a host, so that the message of the IP
 * parser stands; -1 with why when it names one badly.
 */
static int
parse_name_port(const char *s, char *why, size_t whylen)
{
	const char *sep = strrchr(s, ':'), *port;
	char host[MAX_HOST_LEN + 1];
	size_t hlen = sep != NULL ? (size_t)(sep - s) : strlen(s);
	unsigned long long p;

	if (hlen == 0 || hlen > MAX_HOST_LEN)
		return 1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (!dns_name_ok(host))
		return 1;
	if (sep == NULL) {
		snprintf(why, whylen, "a host name needs a port, as in \"%s:3000\"", host);
		return -1;
	}
	port = sep + 1;
	if (parse_digits(&port, &p) < 0 || *port != '\0') {
		snprintf(why, whylen, "expected HOST:PORT or IP:PORT");
		return -1;
	}
	if (p < 1 || p > 65535) {
		snprintf(why, whylen, "port must be 1..65535");
		return -1;
	}
	return 0;
}

/* resolvers: IP, IP:PORT or [IPv6]:PORT, separated by spaces or commas. */
static int
parse_resolvers(const char *s, char *why, size_t whylen)
{
	static const char sep[] = " \t,";
	size_t count = 0;

	for (s += strspn(s, sep); *s != '\0'; s += strspn(s, sep)) {
		size_t n = strcspn(s, sep);
		char tok[INET6_ADDRSTRLEN + 16], w[128];
		struct sockaddr_storage ss;
		struct in6_addr a6;
		socklen_t len;

		if (n >= sizeof(tok))
			goto bad;
		memcpy(tok, s, n);
		tok[n] = '\0';
		if (inet_pton(AF_INET, tok, &a6) != 1 && inet_pton(AF_INET6, tok, &a6) != 1 &&
		    parse_address(tok, &ss, &len, w, sizeof(w)) < 0)
			goto bad;
		if (tok[0] == '*')
			goto bad;
		count++;
		s += n;
	}
	if (count > 0)
		return 0;
bad:
	snprintf(why, whylen, "expected IP or IP:PORT addresses separated by spaces");
	return -1;
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
		return keyword(text, log_level_names, ARRAY_LEN(log_level_names), v,
			"expected error, warn, info or debug", why, whylen);
	case OPT_LOG_TARGET:
		if (text[0] == '\0') {
			snprintf(why, whylen, "expected \"-\", \"off\" or a file path");
			return -1;
		}
		v->s = strcmp(text, "off") == 0 ? NULL : xstrdup(text);
		return 0;
	case OPT_ADDRESS:
		if (parse_address(text, &v->ss, &v->sslen, why, whylen) < 0) {
			int named = (d->flags & OPT_NAME_OK) ? parse_name_port(text, why, whylen) : 1;

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
		if (!config_value_name_ok(text)) {
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
	case OPT_BOOL: {
		bool b;

		if (parse_bool(text, &b) < 0) {
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
		if (parse_seconds(text, &v->n) < 0) {
			snprintf(why, whylen, "expected a duration such as 30s, 5m, 1h or 7d");
			return -1;
		}
		break;
	case OPT_TLS_VERSION: {
		unsigned ver;

		if (parse_tls_version(text, &ver) < 0) {
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
		} else if (parse_digits(&p, &v->n) < 0 || *p != '\0' || v->n < 1 || v->n > 65535) {
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
		if (!hostname_ok(text)) {
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
		return parse_hash_key(text, v, why, whylen);
	case OPT_RESOLVERS:
		if (parse_resolvers(text, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_FAMILY:
		return keyword(text, family_names, ARRAY_LEN(family_names), v,
			"expected any, ipv4 or ipv6", why, whylen);
	case OPT_CHECK_TYPE:
		return keyword(text, check_type_names, ARRAY_LEN(check_type_names), v,
			"expected http, socketio or tcp", why, whylen);
	case OPT_REDIS_ERROR:
		return keyword(text, redis_error_names, ARRAY_LEN(redis_error_names), v,
			"expected allow, deny or local", why, whylen);
	case OPT_RL_KEY:
		return parse_rl_key(text, v, why, whylen);
	case OPT_RL_KIND: {
		static const char *const kinds[] = {
			[RL_KIND_REQUESTS] = "requests", [RL_KIND_UPGRADES] = "upgrades",
			[RL_KIND_MESSAGES] = "messages", [RL_KIND_CONNECTIONS] = "connections",
		};
		return keyword(text, kinds, ARRAY_LEN(kinds), v,
			"expected requests, upgrades, messages or connections", why, whylen);
	}
	case OPT_RL_EXCEED: {
		static const char *const acts[] = {
			[RL_EXCEED_CLOSE] = "close", [RL_EXCEED_DROP] = "drop",
		};
		return keyword(text, acts, ARRAY_LEN(acts), v, "expected close or drop", why, whylen);
	}
	case OPT_NAMES:
		if (parse_names(text, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_CIDRS:
		if (parse_cidrs(text, NULL, why, whylen) < 0)
			return -1;
		v->s = xstrdup(text);
		return 0;
	case OPT_STATUS_RANGE: {
		unsigned long long lo, hi;

		if (parse_status_range(text, &lo, &hi) < 0) {
			snprintf(why, whylen, "expected a status such as 200, or a range "
				"such as 200-399, within 100..599");
			return -1;
		}
		/* Both ends in one number until config_value_store(). */
		v->n = lo * 1000 + hi;
		return 0;
	}
	case OPT_PERCENT:
		if (parse_percent(text, &v->n) < 0) {
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
		long n = parse_cidrs(v->s, NULL, why, sizeof(why));
		struct config_cidr *arr = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*arr));

		/* Checked by config_value_convert(): it parses again, the same. */
		n = parse_cidrs(v->s, arr, why, sizeof(why));
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

