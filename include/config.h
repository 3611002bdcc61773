/*
 * Loading, checking and sharing configuration generations. Only config.c,
 * config_check.c and config_build.c include <confuse.h>; the rest of sluice
 * sees struct config.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>

#include "config-t.h"

#define SLUICE_WUR __attribute__((warn_unused_result))

/*
 * Parse and validate FILE. Returns a new generation with refcnt 1, or NULL
 * with "FILE:LINE: message" (or "FILE: message" when no line applies) in
 * err. Main thread only.
 */
struct config *config_load(const char *file, char *err, size_t errlen) SLUICE_WUR;

/* Take and drop a reference; the last unref frees. Any thread. */
struct config *config_ref(struct config *cfg);
void config_unref(struct config *cfg);

/* The pool named NAME in CFG (NULL allowed: no generation), or NULL. Any thread. */
struct config_pool *config_pool_find(const struct config *cfg, const char *name);

/*
 * The route for a request: the most specific host match (exact, then the
 * longest "*.suffix", then "*"), and within it the longest path prefix. host
 * may carry a ":port", which is ignored; it is compared case-insensitively.
 * Returns NULL when nothing matches.
 * When no route of the most specific matching host class matches the path,
 * the next less specific class is tried (docs/configuration.md). A path
 * prefix matches on whole segments ("/api": "/api", "/api/x", "/api?x", not
 * "/apix"); "/" matches every path. Any thread.
 */
const struct config_route *config_route_match(const struct config *cfg,
		const char *host, size_t host_len, const char *path, size_t path_len);

/*
 * Parse "10s", "500ms", "2m", "1h" or a bare number of seconds into
 * milliseconds. Returns 0 or -1.
 */
int config_parse_duration(const char *s, unsigned *ms) SLUICE_WUR;

/* Parse "16k", "1m", "512" (bytes; k/m/g are powers of 1024). Returns 0 or -1. */
int config_parse_size(const char *s, size_t *bytes) SLUICE_WUR;

/*
 * Parse "1.2.3.4:80", "[::1]:80", "*:80" (any IPv4) or "[::]:80". Returns 0 or
 * -1.
 */
int config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len) SLUICE_WUR;

/*
 * Call fn for every directive of the file format, depth first in file order.
 * d and its strings are valid during the call only. Any thread.
 */
typedef void (*config_directive_fn)(const struct config_directive *d, void *arg);
void config_foreach_directive(config_directive_fn fn, void *arg);

#endif
