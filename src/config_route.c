/*
 * Route lookup: which route of a generation serves a request, by host and
 * path prefix (config_route_match). Read-only on the generation, so any
 * thread; config_build.c sorts routes[] into the order this relies on.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "config-int.h"

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
