/*
 * Sticky sessions, the parts that need no event loop: signing the cookie
 * token that names a server, reading Cookie fields, request targets and
 * Engine.IO open packets, and the in-process sid table. Choosing a server
 * with them is forward.c's business; a Redis-backed sid table would be
 * another struct sid_store_ops next to the local one here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "sticky.h"

/* ------------------------------------------------------------------ token */

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url of 16 bytes, no padding: 5 groups of 3 bytes, then 1 byte. */
static void
encode_token(const unsigned char in[16], char out[STICKY_TOKEN_LEN + 1])
{
	char *o = out;
	size_t i;

	for (i = 0; i + 3 <= 16; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
		*o++ = b64url[v >> 6 & 63];
		*o++ = b64url[v & 63];
	}
	*o++ = b64url[in[15] >> 2];
	*o++ = b64url[(in[15] & 3) << 4];
	*o = '\0';
}

int
sticky_token(const unsigned char *key, size_t keylen, const char *pool,
		const char *server, char out[STICKY_TOKEN_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int rc = -1;

	/* OpenSSL takes a NULL or empty key as "keep the previous one". */
	if (key == NULL || keylen == 0 || pool == NULL || server == NULL)
		return -1;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		return -1;
	ctx = EVP_MAC_CTX_new(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	/* The NUL between the names keeps ("ab", "c") and ("a", "bc")
	 * apart; names cannot contain one. */
	if (ctx != NULL &&
	    EVP_MAC_init(ctx, key, keylen, params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)pool, strlen(pool) + 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)server, strlen(server)) == 1 &&
	    EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) == 1 && mdlen >= 16) {
		encode_token(md, out);
		rc = 0;
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

/* ---------------------------------------------------------------- parsing */

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 6265 5.4 sends "a=1; b=2". Clients and intermediaries also send
 * "a=1;b=2" and stray blanks, so this reads each ';'-separated piece,
 * trims blanks around name and value (as the RFC 6265 5.2 algorithm does),
 * and skips pieces without '='. Names compare byte for byte: cookie names
 * are case-sensitive. The first match wins.
 */
bool
sticky_cookie_find(const char *header, size_t len, const char *name,
		const char **value, size_t *vlen)
{
	size_t nlen = name != NULL ? strlen(name) : 0;
	const char *p = header, *end = header + len;

	if (header == NULL || nlen == 0)
		return false;
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *stop = semi != NULL ? semi : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));

		if (eq != NULL) {
			const char *n = p, *ne = eq, *v = eq + 1, *ve = stop;

			while (n < ne && is_ows(*n))
				n++;
			while (ne > n && is_ows(ne[-1]))
				ne--;
			while (v < ve && is_ows(*v))
				v++;
			while (ve > v && is_ows(ve[-1]))
				ve--;
			if ((size_t)(ne - n) == nlen && memcmp(n, name, nlen) == 0) {
				if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
					v++;
					ve--;
				}
				*value = v;
				*vlen = (size_t)(ve - v);
				return true;
			}
		}
		if (semi == NULL)
			break;
		p = semi + 1;
	}
	return false;
}

/*
 * The query starts at the first '?' and ends at '#' (clients should not
 * send a fragment, but the target is peer input). Parameters are split on
 * '&'; the first one named exactly "sid" decides. Its value is returned
 * raw, without %-decoding: Engine.IO sids need none, and one sluice never
 * learned simply misses in the table.
 */
bool
sticky_sid_from_target(const char *target, size_t len, const char **sid, size_t *sidlen)
{
	const char *q, *end, *hash;

	if (target == NULL)
		return false;
	end = target + len;
	if ((hash = memchr(target, '#', len)) != NULL)
		end = hash;
	if ((q = memchr(target, '?', (size_t)(end - target))) == NULL)
		return false;
	for (const char *p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp != NULL ? amp : end;

		if (stop - p >= 4 && memcmp(p, "sid=", 4) == 0) {
			size_t n = (size_t)(stop - p - 4);

			if (n == 0 || n > STICKY_SID_MAX)
				return false;
			*sid = p + 4;
			*sidlen = n;
			return true;
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return false;
}

/* Engine.IO's ping defaults, used when the open packet lacks them. */
#define EIO_PING_INTERVAL_MS	25000u
#define EIO_PING_TIMEOUT_MS	20000u
/* A larger heartbeat value is clamped: it only sets how long a sid is kept. */
#define EIO_PING_MAX_MS		(24u * 3600 * 1000)
/* Nesting the value skipper follows; the open packet has depth 2. */
#define JSON_MAX_DEPTH		16

/* A cursor over data that may stop anywhere, truncated or not. */
struct scan {
	const char *p, *end;
};

static void
skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n'))
		s->p++;
}

/*
 * A JSON string at s->p (which is '"'): on success s->p is past the closing
 * quote and [*start, *stop) is the raw content, escapes untouched. -1 when
 * it does not end within the data.
 */
static int
scan_string(struct scan *s, const char **start, const char **stop)
{
	const char *p = s->p + 1;

	while (p < s->end && *p != '"') {
		if (*p == '\\')
			p++;
		p++;
	}
	if (p >= s->end)
		return -1;
	*start = s->p + 1;
	*stop = p;
	s->p = p + 1;
	return 0;
}

/* Skip one JSON value of any kind; -1 when malformed or cut short. */
static int
skip_value(struct scan *s, int depth)
{
	const char *a, *b;

	skip_ws(s);
	if (s->p >= s->end || depth > JSON_MAX_DEPTH)
		return -1;
	switch (*s->p) {
	case '"':
		return scan_string(s, &a, &b);
	case '{':
	case '[': {
		char close = *s->p == '{' ? '}' : ']';

		s->p++;
		for (;;) {
			skip_ws(s);
			if (s->p >= s->end)
				return -1;
			if (*s->p == close) {
				s->p++;
				return 0;
			}
			if (close == '}') {
				if (*s->p != '"' || scan_string(s, &a, &b) < 0)
					return -1;
				skip_ws(s);
				if (s->p >= s->end || *s->p != ':')
					return -1;
				s->p++;
			}
			if (skip_value(s, depth + 1) < 0)
				return -1;
			skip_ws(s);
			if (s->p < s->end && *s->p == ',')
				s->p++;
			else if (s->p >= s->end || *s->p != close)
				return -1;
		}
	}
	default:
		/* Numbers, true, false, null: up to a delimiter. */
		while (s->p < s->end && strchr(",}] \t\r\n", *s->p) == NULL)
			s->p++;
		return s->p < s->end ? 0 : -1;
	}
}

/* A non-negative integer number (milliseconds), clamped; false otherwise. */
static bool
number_value(const char *a, const char *b, unsigned *out)
{
	unsigned long long n = 0;

	if (a == b)
		return false;
	for (const char *c = a; c < b; c++) {
		if (*c < '0' || *c > '9')
			return false;
		if (n <= EIO_PING_MAX_MS)
			n = n * 10 + (unsigned)(*c - '0');
	}
	*out = n > EIO_PING_MAX_MS ? EIO_PING_MAX_MS : (unsigned)n;
	return true;
}

static bool
sid_chars_ok(const char *a, size_t n)
{
	if (n == 0 || n > STICKY_SID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = a[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool
key_is(const char *a, const char *b, const char *key)
{
	size_t n = strlen(key);

	return (size_t)(b - a) == n && memcmp(a, key, n) == 0;
}

/*
 * A top-level scan of the open packet's object: "sid", "pingInterval" and
 * "pingTimeout" are read, other members skipped whatever they hold. The
 * scan stops at the end of the data or at anything malformed; what was
 * read by then counts. A sid with anything but [A-Za-z0-9_-] (Engine.IO's
 * base64id alphabet, which also covers UUIDs) is refused rather than
 * unescaped, so that the key stored is the one clients send in queries.
 */
bool
sticky_parse_open_packet(const char *data, size_t len, char sid[STICKY_SID_MAX + 1],
		unsigned *ttl_ms)
{
	struct scan s = { data, data + len };
	unsigned interval = EIO_PING_INTERVAL_MS, timeout = EIO_PING_TIMEOUT_MS;
	bool have_sid = false;
	const char *p = data;

	if (data == NULL)
		return false;
	/* Engine.IO 3 polling frames a packet as "<length>:<packet>"; an
	 * Engine.IO 4 open packet starts with the digit '0' itself. */
	while (p < s.end && *p >= '0' && *p <= '9')
		p++;
	if (p == s.end)
		return false;	/* only digits so far: either form, cut short */
	if (*p == ':' && p > data)
		s.p = p + 1;
	if (s.end - s.p < 2 || s.p[0] != '0' || s.p[1] != '{')
		return false;
	s.p += 2;
	for (;;) {
		const char *ka, *kb, *va, *vb;

		skip_ws(&s);
		if (s.p >= s.end || *s.p != '"' || scan_string(&s, &ka, &kb) < 0)
			break;
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			break;
		s.p++;
		skip_ws(&s);
		if (s.p >= s.end)
			break;
		va = s.p;
		if (key_is(ka, kb, "sid")) {
			if (*s.p != '"' || scan_string(&s, &va, &vb) < 0 ||
			    !sid_chars_ok(va, (size_t)(vb - va)))
				return false;
			memcpy(sid, va, (size_t)(vb - va));
			sid[vb - va] = '\0';
			have_sid = true;
		} else {
			if (skip_value(&s, 1) < 0)
				break;
			vb = s.p;
			while (vb > va && strchr(" \t\r\n", vb[-1]) != NULL)
				vb--;
			if (key_is(ka, kb, "pingInterval"))
				(void)number_value(va, vb, &interval);
			else if (key_is(ka, kb, "pingTimeout"))
				(void)number_value(va, vb, &timeout);
		}
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ',')
			break;
		s.p++;
	}
	if (have_sid)
		*ttl_ms = interval + timeout;
	return have_sid;
}

/* ------------------------------------------------------------ sid table */

/*
 * The in-process table: separate chaining, one mutex. Entries are single
 * allocations sized to their strings. The table doubles when it holds as
 * many entries as buckets; the doubling relinks every entry under the lock,
 * which happens about twenty times over the table's life and costs a few
 * milliseconds at the largest sizes.
 */
#define SID_NAME_MAX		64		/* pool and server names, as config_keyword.c allows */
#define SID_INITIAL_BUCKETS	1024u
/* An upper bound on memory (roughly 100 bytes an entry): past it, put()
 * fails until expire() or del() makes room. */
#define SID_STORE_MAX		1000000u
/* expire() lets go of the lock between chunks of buckets, so that a
 * sweep of a large table does not stall the workers' lookups. */
#define SID_SWEEP_CHUNK		4096u

/* Owned by its bucket chain; freed by del, expire, a replacing put or destroy. */
struct sid_entry {
	struct sid_entry *next;
	uint64_t expires_ms;
	uint64_t hash;
	unsigned ttl_ms;
	uint8_t sid_len, pool_len, server_len;
	char data[];			/* sid, pool "\0", server "\0" */
};

/* Owned by the struct sid_store that sid_store_local_new() returns. */
struct sid_local {
	pthread_mutex_t lock;
	struct sid_entry **buckets;
	size_t nbuckets;		/* a power of two */
	size_t count;
	uint64_t seed;			/* per table, so chains cannot be planned */
};

static const char *
entry_pool(const struct sid_entry *e)
{
	return e->data + e->sid_len;
}

static const char *
entry_server(const struct sid_entry *e)
{
	return e->data + e->sid_len + e->pool_len + 1;
}

/* FNV-1a, 64 bits, started from the table's random seed. */
static uint64_t
sid_hash(const struct sid_local *t, const char *sid, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)sid[i];
		h *= 0x100000001b3ULL;
	}
	/* FNV's low bits mix poorly; fold the high ones in for the mask. */
	return h ^ (h >> 32);
}

static struct sid_entry **
find_slot(struct sid_local *t, const char *sid, size_t len, uint64_t h)
{
	struct sid_entry **pp = &t->buckets[h & (t->nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->sid_len == len && memcmp((*pp)->data, sid, len) == 0)
			return pp;
	return pp;
}

static void
unlink_free(struct sid_local *t, struct sid_entry **pp)
{
	struct sid_entry *e = *pp;

	*pp = e->next;
	free(e);
	t->count--;
}

/* Double the bucket array; on allocation failure keep the longer chains. */
static void
grow(struct sid_local *t)
{
	size_t n = t->nbuckets * 2;
	struct sid_entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct sid_entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static bool
key_ok(const char *sid, size_t len)
{
	return sid != NULL && len > 0 && len <= STICKY_SID_MAX;
}

static int
local_put(void *st, const char *sid, size_t len, const char *pool, const char *server,
		unsigned ttl_ms, uint64_t now_ms)
{
	struct sid_local *t = st;
	size_t plen, slen;
	struct sid_entry *e, **pp;
	uint64_t h;

	if (!key_ok(sid, len) || pool == NULL || server == NULL)
		return -1;
	plen = strlen(pool);
	slen = strlen(server);
	if (plen > SID_NAME_MAX || slen > SID_NAME_MAX)
		return -1;
	/* Allocate before locking: malloc can be slow, the lock is shared. */
	e = malloc(sizeof(*e) + len + plen + 1 + slen + 1);
	if (e == NULL)
		return -1;
	h = sid_hash(t, sid, len);
	e->hash = h;
	e->expires_ms = now_ms + ttl_ms;
	e->ttl_ms = ttl_ms;
	e->sid_len = (uint8_t)len;
	e->pool_len = (uint8_t)plen;
	e->server_len = (uint8_t)slen;
	memcpy(e->data, sid, len);
	memcpy(e->data + len, pool, plen + 1);
	memcpy(e->data + len + plen + 1, server, slen + 1);

	pthread_mutex_lock(&t->lock);
	pp = find_slot(t, sid, len, h);
	if (*pp != NULL) {
		/* A sid seen again (a new handshake reusing it is unlikely,
		 * a second open packet on the websocket is not): replace. */
		unlink_free(t, pp);
	} else if (t->count >= SID_STORE_MAX) {
		pthread_mutex_unlock(&t->lock);
		free(e);
		return -1;
	}
	if (t->count >= t->nbuckets)
		grow(t);
	pp = &t->buckets[h & (t->nbuckets - 1)];
	e->next = *pp;
	*pp = e;
	t->count++;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static bool
local_get(void *st, const char *sid, size_t len, const char *pool, char *server,
		size_t cap, uint64_t now_ms)
{
	struct sid_local *t = st;
	struct sid_entry **pp, *e;
	bool found = false;

	if (!key_ok(sid, len) || pool == NULL || server == NULL)
		return false;
	pthread_mutex_lock(&t->lock);
	pp = find_slot(t, sid, len, sid_hash(t, sid, len));
	e = *pp;
	if (e != NULL && e->expires_ms <= now_ms) {
		unlink_free(t, pp);
	} else if (e != NULL && strcmp(entry_pool(e), pool) == 0 && (size_t)e->server_len < cap) {
		memcpy(server, entry_server(e), (size_t)e->server_len + 1);
		e->expires_ms = now_ms + e->ttl_ms;
		found = true;
	}
	pthread_mutex_unlock(&t->lock);
	return found;
}

static void
local_del(void *st, const char *sid, size_t len)
{
	struct sid_local *t = st;
	struct sid_entry **pp;

	if (!key_ok(sid, len))
		return;
	pthread_mutex_lock(&t->lock);
	pp = find_slot(t, sid, len, sid_hash(t, sid, len));
	if (*pp != NULL)
		unlink_free(t, pp);
	pthread_mutex_unlock(&t->lock);
}

static size_t
local_expire(void *st, uint64_t now_ms)
{
	struct sid_local *t = st;
	size_t dropped = 0, i = 0;

	pthread_mutex_lock(&t->lock);
	while (i < t->nbuckets) {
		size_t stop = i + SID_SWEEP_CHUNK < t->nbuckets ? i + SID_SWEEP_CHUNK : t->nbuckets;
		size_t nbuckets = t->nbuckets;

		for (; i < stop; i++) {
			struct sid_entry **pp = &t->buckets[i];

			while (*pp != NULL) {
				if ((*pp)->expires_ms <= now_ms) {
					unlink_free(t, pp);
					dropped++;
				} else {
					pp = &(*pp)->next;
				}
			}
		}
		pthread_mutex_unlock(&t->lock);
		pthread_mutex_lock(&t->lock);
		/* A put() may have doubled the table meanwhile: entries
		 * moved, so sweep the new one from the start. Doublings are
		 * few, so this ends. */
		if (t->nbuckets != nbuckets)
			i = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return dropped;
}

static size_t
local_count(void *st)
{
	struct sid_local *t = st;
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static void
local_destroy(void *st)
{
	struct sid_local *t = st;

	for (size_t i = 0; i < t->nbuckets; i++) {
		struct sid_entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static const struct sid_store_ops local_ops = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.del = local_del,
	.expire = local_expire,
	.count = local_count,
	.destroy = local_destroy,
};

static uint64_t
random_seed(void)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* Early at boot the pool may not be ready; a weaker seed only
	 * makes chains easier to predict, never wrong. */
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts;
}

struct sid_store *
sid_store_local_new(void)
{
	struct sid_store *s = calloc(1, sizeof(*s));
	struct sid_local *t = calloc(1, sizeof(*t));

	if (s == NULL || t == NULL)
		goto fail;
	t->nbuckets = SID_INITIAL_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL)
		goto fail;
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		goto fail_buckets;
	t->seed = random_seed();
	s->ops = &local_ops;
	s->st = t;
	return s;

fail_buckets:
	free(t->buckets);
fail:
	free(t);
	free(s);
	return NULL;
}

void
sid_store_free(struct sid_store *s)
{
	if (s == NULL)
		return;
	s->ops->destroy(s->st);
	free(s);
}
