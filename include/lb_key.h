/*
 * The hash key of a request for a pool with a keyed balancer (balance =
 * hash): the client's address, or a header, cookie or query parameter, as
 * the pool's hash_key says. Pure: no state, no allocation.
 */
#ifndef SLUICE_LB_KEY_H
#define SLUICE_LB_KEY_H

#include <stddef.h>

struct config_pool;
struct http_head;

/* Longest key kept; longer values are shortened (see lb_key_extract). */
#define LB_KEY_MAX 256

/*
 * Write the key of a request into out and return its length, or 0 when
 * the request has none (the header, cookie or parameter is absent or
 * empty). h is the parsed request head, target the request-target with its
 * query ("/p?a=1"), client the client's address as "1.2.3.4:5555" or
 * "[::1]:5555" (its port is left out of the key). A value longer than
 * LB_KEY_MAX becomes its first LB_KEY_MAX - 16 bytes followed by 16 hex
 * digits of a hash of the whole value, so distinct long values stay
 * distinct keys. The value is used raw: no percent-decoding, no change of
 * case. Any thread.
 */
size_t lb_key_extract(const struct config_pool *pool, const struct http_head *h,
		const char *target, size_t target_len, const char *client,
		char out[LB_KEY_MAX]);

#endif
