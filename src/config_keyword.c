/*
 * Directive values written as words: enumerated keywords (on/off, TLS
 * versions, sticky modes, hash and rate-limit keys), the header, cookie and
 * query names they carry, and object names.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config-int.h"

#define MAX_COOKIE_NAME	64

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

/*
 * A route's sticky modes: "off", or "cookie" and/or "socketio" separated by
 * spaces or commas, in any order.
 */
int
config_keyword_sticky(const char *s, unsigned *bits)
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

int
config_keyword_bool(const char *s, bool *b)
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
int
config_keyword_tls_version(const char *s, unsigned *v)
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

/* RFC 6265 cookie-name: an RFC 2616 token (no controls, spaces or separators). */
bool
config_keyword_cookie_name_ok(const char *s)
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
int
config_keyword_hash_key(const char *text, struct opt_value *v, char *why, size_t whylen)
{
	static const struct {
		const char *prefix;
		enum config_hash_key kind;
		bool (*ok)(const char *);
		const char *what;
	} kinds[] = {
		{ "header:", CONFIG_HASH_HEADER, field_name_ok, "a header field name" },
		{ "cookie:", CONFIG_HASH_COOKIE, config_keyword_cookie_name_ok, "a cookie name" },
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
int
config_keyword_rl_key(const char *text, struct opt_value *v, char *why, size_t whylen)
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
	if (strncmp(text, "cookie:", 7) == 0 && config_keyword_cookie_name_ok(text + 7)) {
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
int
config_keyword_match(const char *text, const char *const *names, size_t n, struct opt_value *v,
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
int
config_keyword_names(const char *s, char *why, size_t whylen)
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
