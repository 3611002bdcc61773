/*
 * Extracting a request's hash key for balance = hash: the client's IP
 * address, or the raw value of a header, a cookie or a query parameter.
 * Only pools whose balancer is keyed call it (config_pool.keyed).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "config-t.h"
#include "http.h"
#include "lb.h"
#include "lb_key.h"
#include "sticky.h"

/* Any fixed value: it decides how long values are shortened, and thereby
 * which server their key maps to. */
#define KEY_SHORTEN_SEED	0x6c622d6b65792d31ULL

/* Copy value into out, shortening it past LB_KEY_MAX (see lb_key.h). */
static size_t
key_put(const char *value, size_t len, char out[LB_KEY_MAX])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h;

	if (len <= LB_KEY_MAX) {
		memcpy(out, value, len);
		return len;
	}
	memcpy(out, value, LB_KEY_MAX - 16);
	h = lb_hash64(value, len, KEY_SHORTEN_SEED);
	for (int k = 0; k < 16; k++)
		out[LB_KEY_MAX - 16 + k] = hex[(h >> (60 - 4 * k)) & 0xf];
	return LB_KEY_MAX;
}

/* The address part of "ip:port" or "[ipv6]:port". */
static size_t
key_client(const char *client, char out[LB_KEY_MAX])
{
	const char *start = client, *end;

	if (client[0] == '[' && (end = strchr(client, ']')) != NULL)
		start++;
	else if ((end = strrchr(client, ':')) == NULL)
		end = client + strlen(client);
	return key_put(start, (size_t)(end - start), out);
}

/* The first header called name that has a value. */
static size_t
key_header(const struct http_head *h, const char *name, char out[LB_KEY_MAX])
{
	for (size_t i = 0; i < h->nheaders; i++)
		if (h->headers[i].value_len > 0 && http_header_is(&h->headers[i], name))
			return key_put(h->headers[i].value, h->headers[i].value_len, out);
	return 0;
}

/* The first cookie called name, in any Cookie field, that has a value. */
static size_t
key_cookie(const struct http_head *h, const char *name, char out[LB_KEY_MAX])
{
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http_header *hd = &h->headers[i];
		const char *v;
		size_t vlen;

		if (http_header_is(hd, "cookie") &&
		    sticky_cookie_find(hd->value, hd->value_len, name, &v, &vlen) && vlen > 0)
			return key_put(v, vlen, out);
	}
	return 0;
}

/*
 * The first parameter called name in the query of target that has a
 * value: "a=1&name=v&b" gives "v". Names and values compare and go raw,
 * percent-encoded as the client sent them.
 */
static size_t
key_query(const char *target, size_t len, const char *name, char out[LB_KEY_MAX])
{
	const char *q = memchr(target, '?', len), *end = target + len;
	size_t nlen = strlen(name);

	if (q == NULL)
		return 0;
	for (const char *p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp != NULL ? amp : end;

		if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=' &&
		    stop > p + nlen + 1)
			return key_put(p + nlen + 1, (size_t)(stop - p - nlen - 1), out);
		p = stop + 1;
	}
	return 0;
}

size_t
lb_key_extract(const struct config_pool *pool, const struct http_head *h,
		const char *target, size_t target_len, const char *client,
		char out[LB_KEY_MAX])
{
	switch (pool->hash_key) {
	case CONFIG_HASH_CLIENT:
		return key_client(client, out);
	case CONFIG_HASH_HEADER:
		return key_header(h, pool->hash_key_name, out);
	case CONFIG_HASH_COOKIE:
		return key_cookie(h, pool->hash_key_name, out);
	case CONFIG_HASH_QUERY:
		return key_query(target, target_len, pool->hash_key_name, out);
	}
	return 0;
}
