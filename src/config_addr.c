/*
 * Addresses in directive values: IP:PORT, HOST:PORT for DNS discovery,
 * resolver lists, CIDRs and host names. Only checks and converts text;
 * nothing is resolved or bound here.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config-int.h"

/* Host name syntax: dot-separated labels of letters, digits, '-' or '_'. */
bool
config_addr_hostname_ok(const char *s)
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
	if (config_number_digits(&bp, &bits) < 0 || *bp != '\0' || bits > c->bits)
		return -1;
	c->bits = (unsigned)bits;
	/* Host bits set ("10.1.2.3/8") are cleared: the network is meant. */
	for (unsigned i = c->bits; i < (c->family == AF_INET ? 32u : 128u); i++)
		c->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
	return 0;
}

/* "10.0.0.0/8 ::1/128": parse into *out (NULL: only check). Returns the count or -1. */
long
config_addr_cidrs(const char *s, struct config_cidr *out, char *why, size_t whylen)
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

/* Like config_parse_address(), saying in why what is wrong. */
int
config_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
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
	if (config_number_digits(&port, &p) < 0 || *port != '\0') {
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
	return config_addr_parse(s, ss, len, why, sizeof(why));
}

/* A DNS name, not an IP address: a label that is not all digits ends it. */
static bool
dns_name_ok(const char *s)
{
	const char *last = strrchr(s, '.');

	if (!config_addr_hostname_ok(s))
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
int
config_addr_name_port(const char *s, char *why, size_t whylen)
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
	if (config_number_digits(&port, &p) < 0 || *port != '\0') {
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
int
config_addr_resolvers(const char *s, char *why, size_t whylen)
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
		    config_addr_parse(tok, &ss, &len, w, sizeof(w)) < 0)
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
