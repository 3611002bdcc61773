/*
 * Body framing: moving a body of a known length, a chunked body (parsed
 * strictly to find its end, optionally de-chunked) or one that runs until
 * close from one evbuffer to another without copying large payloads. It
 * knows nothing of heads but the framing http_parse.c derived from them.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <event2/buffer.h>

#include "http.h"
#include "http-int.h"

static inline unsigned hexval(unsigned char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

void http_body_init(struct http_body_state *st, enum http_body kind, uint64_t content_length,
		bool dechunk)
{
	memset(st, 0, sizeof(*st));
	st->kind = kind;
	st->remaining = kind == HTTP_BODY_LENGTH ? content_length : 0;
	st->chunk = HTTP_CHUNK_SIZE;
	st->dechunk = dechunk;
}

static enum http_body_result body_fail(struct http_body_state *st, const char *error)
{
	st->error = error;
	return HTTP_BODY_ERROR;
}

/* evbuffer_remove_buffer() takes an int-sized count at most. */
/*
 * Small pieces are copied rather than moved: they then share the chain that
 * holds the rewritten head (which has room to spare), and the whole answer
 * leaves in one send() of one buffer instead of a sendmsg() of several.
 */
#define MOVE_COPY_MAX 1024

static int move_bytes(struct http_body_state *st, struct evbuffer *src, struct evbuffer *dst,
		size_t n)
{
	if (n > 0 && n <= MOVE_COPY_MAX) {
		char tmp[MOVE_COPY_MAX];

		if (evbuffer_remove(src, tmp, n) != (int)n || evbuffer_add(dst, tmp, n) < 0)
			return -1;
		st->moved += n;
		return 0;
	}
	while (n > 0) {
		size_t part = n > INT_MAX / 2 ? INT_MAX / 2 : n;
		int got = evbuffer_remove_buffer(src, dst, part);

		if (got < 0 || (size_t)got != part)
			return -1;
		st->moved += part;
		n -= part;
	}
	return 0;
}

/* Framing bytes go on unless the body is being dechunked. */
static int pass_framing(struct http_body_state *st, struct evbuffer *src, struct evbuffer *dst,
		size_t n)
{
	if (st->dechunk)
		return evbuffer_drain(src, n);
	return move_bytes(st, src, dst, n);
}

/*
 * Length of the first line of src, LF included; 0 while no LF has come;
 * -1 when HTTP_CHUNK_LINE_MAX bytes hold none.
 */
static ssize_t line_length(struct evbuffer *src, size_t avail)
{
	struct evbuffer_iovec vec[8];
	size_t lim = avail < HTTP_CHUNK_LINE_MAX ? avail : HTTP_CHUNK_LINE_MAX;
	size_t off = 0;
	int n = evbuffer_peek(src, lim, NULL, vec, 8);

	for (int i = 0; i < n && i < 8 && off < lim; i++) {
		size_t l = vec[i].iov_len < lim - off ? vec[i].iov_len : lim - off;
		const char *lf = memchr(vec[i].iov_base, '\n', l);

		if (lf)
			return (ssize_t)(off + (size_t)(lf - (const char *)vec[i].iov_base) + 1);
		off += l;
	}
	if (off < lim) {
		/* More than eight chains before the limit: rare, copy once. */
		const char *b = (const char *)evbuffer_pullup(src, (ev_ssize_t)lim);
		const char *lf = b ? memchr(b, '\n', lim) : NULL;

		if (lf)
			return lf - b + 1;
	}
	return lim == HTTP_CHUNK_LINE_MAX ? -1 : 0;
}

/*
 * chunk-size [chunk-ext] per RFC 9112 7.1 and 7.1.1, line without CRLF:
 * HEXDIG+ *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
 */
static const char *chunk_size_parse(const unsigned char *p, const unsigned char *e,
		uint64_t *size)
{
	const unsigned char *s = p;
	uint64_t v = 0;

	while (p < e && IS(*p, C_HEX)) {
		if (v > (UINT64_C(1) << 56))
			return "chunk size too large";
		v = v << 4 | hexval(*p++);
	}
	if (p == s)
		return "invalid chunk size";
	if (v > (UINT64_C(1) << 60))
		return "chunk size too large";
	while (p < e) {
		const unsigned char *q;

		while (p < e && IS(*p, C_OWS))
			p++;
		if (p == e || *p != ';')
			return "invalid chunk size line";
		p++;
		while (p < e && IS(*p, C_OWS))
			p++;
		s = p;
		while (p < e && IS(*p, C_TCHAR))
			p++;
		if (p == s)
			return "invalid chunk extension name";
		for (q = p; q < e && IS(*q, C_OWS); q++)
			;
		if (q == e || *q != '=')
			continue;
		p = q + 1;
		while (p < e && IS(*p, C_OWS))
			p++;
		if (p < e && *p == '"') {
			for (p++;; p++) {
				if (p == e)
					return "unterminated chunk extension value";
				if (*p == '"')
					break;
				if (*p == '\\') {
					if (++p == e || !IS(*p, C_FVCHAR))
						return "invalid quoted-pair in chunk extension";
				} else if (!IS(*p, C_QDTEXT)) {
					return "invalid chunk extension value";
				}
			}
			p++;
		} else {
			s = p;
			while (p < e && IS(*p, C_TCHAR))
				p++;
			if (p == s)
				return "invalid chunk extension value";
		}
	}
	*size = v;
	return NULL;
}

/* A trailer field line without its CRLF: same rules as a header field. */
static const char *trailer_line_check(const unsigned char *p, const unsigned char *e)
{
	const unsigned char *s = p;

	while (p < e && IS(*p, C_TCHAR))
		p++;
	if (p == s)
		return "invalid trailer field name";
	if (p == e || *p != ':')
		return "invalid trailer field";
	for (p++; p < e; p++)
		if (!IS(*p, C_FVCHAR))
			return "invalid character in trailer field";
	return NULL;
}

/* One framing line (chunk size or trailer) at the front of src. */
static enum http_body_result chunk_line(struct http_body_state *st, struct evbuffer *src,
		struct evbuffer *dst, size_t avail, size_t budget, size_t *taken)
{
	const unsigned char *line;
	const char *err;
	ssize_t ll = line_length(src, avail);
	uint64_t size = 0;
	size_t n;

	if (ll < 0)
		return body_fail(st, st->chunk == HTTP_CHUNK_SIZE ? "chunk size line too long"
				: "trailer line too long");
	if (ll == 0)
		return HTTP_BODY_MORE;
	n = (size_t)ll;
	/* A line is taken whole; the budget may be exceeded only to make progress. */
	if (*taken > 0 && n > budget)
		return HTTP_BODY_MORE;
	line = evbuffer_pullup(src, ll);
	if (line == NULL)
		return body_fail(st, "out of memory");
	if (n < 2 || line[n - 2] != '\r')
		return body_fail(st, "bare LF in chunked framing");

	if (st->chunk == HTTP_CHUNK_SIZE) {
		err = chunk_size_parse(line, line + n - 2, &size);
		if (err)
			return body_fail(st, err);
		st->remaining = size;
		st->chunk = size == 0 ? HTTP_CHUNK_TRAILER : HTTP_CHUNK_DATA;
	} else if (n == 2) {
		st->chunk = HTTP_CHUNK_DONE;
	} else {
		err = trailer_line_check(line, line + n - 2);
		if (err)
			return body_fail(st, err);
		st->trailer_bytes += n;
		if (st->trailer_bytes > HTTP_TRAILER_MAX)
			return body_fail(st, "trailer section too large");
	}
	if (pass_framing(st, src, dst, n) < 0)
		return body_fail(st, "evbuffer move failed");
	*taken += n;
	return HTTP_BODY_MORE;
}

static enum http_body_result chunked_move(struct http_body_state *st, struct evbuffer *src,
		struct evbuffer *dst, size_t max)
{
	size_t taken = 0;

	for (;;) {
		size_t avail = evbuffer_get_length(src);
		size_t budget = max - taken;
		enum http_body_result r;
		unsigned char crlf[2];
		size_t n;

		if (st->chunk == HTTP_CHUNK_DONE)
			return HTTP_BODY_DONE;
		if (avail == 0 || budget == 0)
			return HTTP_BODY_MORE;
		switch (st->chunk) {
		case HTTP_CHUNK_SIZE:
		case HTTP_CHUNK_TRAILER: {
			size_t before = taken;

			r = chunk_line(st, src, dst, avail, budget, &taken);
			if (r != HTTP_BODY_MORE || taken == before)
				return r;
			break;
		}
		case HTTP_CHUNK_DATA:
			n = st->remaining;
			if (n > avail)
				n = avail;
			if (n > budget)
				n = budget;
			if (move_bytes(st, src, dst, n) < 0)
				return body_fail(st, "evbuffer move failed");
			st->remaining -= n;
			taken += n;
			if (st->remaining == 0)
				st->chunk = HTTP_CHUNK_DATA_CRLF;
			break;
		case HTTP_CHUNK_DATA_CRLF:
			n = (size_t)evbuffer_copyout(src, crlf, 2);
			if (crlf[0] != '\r' || (n == 2 && crlf[1] != '\n'))
				return body_fail(st, "chunk data not followed by CRLF");
			if (n < 2 || (taken > 0 && budget < 2))
				return HTTP_BODY_MORE;
			if (pass_framing(st, src, dst, 2) < 0)
				return body_fail(st, "evbuffer move failed");
			taken += 2;
			st->chunk = HTTP_CHUNK_SIZE;
			break;
		default:
			return body_fail(st, "bad chunk state");
		}
	}
}

enum http_body_result http_body_move(struct http_body_state *st, struct evbuffer *src,
		struct evbuffer *dst, size_t max)
{
	size_t avail, n;

	if (st->error)
		return HTTP_BODY_ERROR;
	switch (st->kind) {
	case HTTP_BODY_NONE:
		return HTTP_BODY_DONE;
	case HTTP_BODY_LENGTH:
		avail = evbuffer_get_length(src);
		n = st->remaining < avail ? (size_t)st->remaining : avail;
		if (n > max)
			n = max;
		if (move_bytes(st, src, dst, n) < 0)
			return body_fail(st, "evbuffer move failed");
		st->remaining -= n;
		return st->remaining == 0 ? HTTP_BODY_DONE : HTTP_BODY_MORE;
	case HTTP_BODY_CHUNKED:
		return chunked_move(st, src, dst, max);
	case HTTP_BODY_UNTIL_CLOSE:
		avail = evbuffer_get_length(src);
		n = avail < max ? avail : max;
		if (move_bytes(st, src, dst, n) < 0)
			return body_fail(st, "evbuffer move failed");
		return HTTP_BODY_MORE;
	}
	return body_fail(st, "bad body kind");
}
