/*
 * Sticky sessions: the signed cookie that names a server, and the Engine.IO
 * session id (sid) table that remembers which server holds a Socket.io
 * session. sticky.c holds the pure parsing and signing and the in-process
 * sid table; choosing a server with them is forward.c's business.
 */
#ifndef SLUICE_STICKY_H
#define SLUICE_STICKY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STICKY_WUR __attribute__((warn_unused_result))

/* Characters of a cookie token: base64url of 16 bytes of HMAC, no padding. */
#define STICKY_TOKEN_LEN 22

/*
 * The cookie value that names server of pool: base64url(HMAC-SHA256(key,
 * pool "\0" server))[0..22]. Opaque to clients, unforgeable without the
 * key, and the same in every replica that shares the key. out gets
 * STICKY_TOKEN_LEN characters and a NUL. Returns 0 or -1 (OpenSSL failure).
 */
int sticky_token(const unsigned char *key, size_t keylen, const char *pool,
		const char *server, char out[STICKY_TOKEN_LEN + 1]) STICKY_WUR;

/*
 * Find cookie name in a Cookie field value ("a=1; name=v; b=2"). Returns
 * true with the value (quotes removed) in *value, *vlen.
 */
bool sticky_cookie_find(const char *header, size_t len, const char *name,
		const char **value, size_t *vlen);

/*
 * The value of the "sid" query parameter of a request target
 * ("/socket.io/?EIO=4&transport=polling&sid=abc"), if any.
 */
bool sticky_sid_from_target(const char *target, size_t len, const char **sid, size_t *sidlen);

/* Longest sid sluice keeps (Engine.IO's are 20 characters). */
#define STICKY_SID_MAX 64

/*
 * Parse an Engine.IO open packet as it starts a polling handshake body or
 * the first websocket frame: `0{"sid":"...","upgrades":[...],
 * "pingInterval":25000,"pingTimeout":20000,...}`, also with an Engine.IO 3
 * length prefix ("96:0{...}"). data may be a prefix of the body; returns
 * true when the sid is complete in it. *ttl_ms is pingInterval +
 * pingTimeout, or 45000 when they are absent.
 */
bool sticky_parse_open_packet(const char *data, size_t len, char sid[STICKY_SID_MAX + 1],
		unsigned *ttl_ms);

/*
 * The sid table: sid -> (pool, server) with a time to live refreshed on
 * use. Behind an ops table so that a Redis-backed table shared by several
 * replicas can replace the in-process one. All calls are thread-safe.
 * Times are milliseconds of a monotonic clock, passed in for testability.
 */
struct sid_store_ops {
	const char *name;
	/* Remember sid (len bytes) -> pool/server for ttl_ms. 0 or -1. */
	int (*put)(void *st, const char *sid, size_t len, const char *pool, const char *server,
		unsigned ttl_ms, uint64_t now_ms);
	/*
	 * The server name remembered for sid in pool, copied into server
	 * (cap bytes), its TTL refreshed. Returns true when found and not
	 * expired.
	 */
	bool (*get)(void *st, const char *sid, size_t len, const char *pool, char *server,
		size_t cap, uint64_t now_ms);
	/* Forget sid (the session ended, or its server is gone). */
	void (*del)(void *st, const char *sid, size_t len);
	/* Drop expired entries; returns how many. */
	size_t (*expire)(void *st, uint64_t now_ms);
	size_t (*count)(void *st);
	void (*destroy)(void *st);
};

struct sid_store {
	const struct sid_store_ops *ops;
	void *st;
};

/* The in-process table (a hash table behind a mutex). NULL on failure. */
struct sid_store *sid_store_local_new(void);
void sid_store_free(struct sid_store *s);

#endif
