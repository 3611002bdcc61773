/*
 * HTTP/1.1 heads and body framing: finding the end of a head in an evbuffer,
 * parsing request and response heads (llhttp tokenizes, our own checks close
 * the gaps that allow request smuggling), and streaming bodies between
 * evbuffers. No I/O, no allocation, no connection state.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <llhttp.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "http.h"
#include "util.h"

#define SAME(a, b)	((int)(a) == (int)(b))
_Static_assert(SAME(HTTP_M_DELETE, HTTP_DELETE) && SAME(HTTP_M_GET, HTTP_GET) &&
		SAME(HTTP_M_HEAD, HTTP_HEAD) && SAME(HTTP_M_POST, HTTP_POST) &&
		SAME(HTTP_M_PUT, HTTP_PUT) && SAME(HTTP_M_CONNECT, HTTP_CONNECT) &&
		SAME(HTTP_M_OPTIONS, HTTP_OPTIONS) && SAME(HTTP_M_TRACE, HTTP_TRACE),
		"enum http_method must follow llhttp_method_t");
#undef SAME

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/*
 * Byte classes, one table lookup per byte. Generated from the RFC 9110/9112
 * grammar: tchar, request-target (printable ASCII but '#'), Host characters
 * (reg-name, IP-literal, port), HEXDIG, the control characters a head must
 * not carry (every CTL but HTAB, so CR and LF too: the line scan treats
 * them), field content (HTAB, SP, VCHAR, obs-text), qdtext and OWS.
 */
#define C_TCHAR		0x01
#define C_URI		0x02
#define C_HOST		0x04
#define C_HEX		0x08
#define C_SPECIAL	0x10
#define C_FVCHAR	0x20
#define C_QDTEXT	0x40
#define C_OWS		0x80

static const uint8_t cls[256] = {
	/* 00 */ 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0xe0, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
	/* 10 */ 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
	/* 20 */ 0xe0, 0x67, 0x22, 0x61, 0x67, 0x67, 0x67, 0x67, 0x66, 0x66, 0x67, 0x67, 0x66, 0x67, 0x67, 0x62,
	/* 30 */ 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x66, 0x66, 0x62, 0x66, 0x62, 0x62,
	/* 40 */ 0x62, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
	/* 50 */ 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x66, 0x22, 0x66, 0x63, 0x67,
	/* 60 */ 0x63, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
	/* 70 */ 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x62, 0x63, 0x62, 0x67, 0x10,
	/* 80 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* 90 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* a0 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* b0 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* c0 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* d0 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* e0 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
	/* f0 */ 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60,
};

#define IS(c, what)	(cls[(unsigned char)(c)] & (what))

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* Case-insensitive equality of s[0..n) with a lowercase literal. */
#define IEQ(s, n, lit)	((n) == sizeof(lit) - 1 && util_eq_lower((s), lit, sizeof(lit) - 1))

static inline unsigned hexval(unsigned char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* ------------------------------------------------------------------ */
/* Finding the end of a head                                           */

/*
 * Empty lines before a request line are tolerated as RFC 9112 section 2.2
 * allows (old clients sent CRLF after a POST body): they are drained, so the
 * head the caller parses starts with the start line.
 */
static enum http_status drain_leading_crlf(struct evbuffer *buf)
{
	unsigned char two[2];

	for (;;) {
		ev_ssize_t n = evbuffer_copyout(buf, two, 2);

		if (n <= 0 || two[0] != '\r')
			return HTTP_OK;
		if (n == 1)
			return HTTP_INCOMPLETE;
		if (two[1] != '\n')
			return HTTP_OK;
		if (evbuffer_drain(buf, 2) < 0)
			return HTTP_BAD;
	}
}

/*
 * Bit 7 of each byte of the eight at p that is zero or equals x, and maybe
 * of bytes above the first such one (a borrow): the lowest set bit is exact.
 */
static inline uint64_t word_match(const unsigned char *p, uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t w, e;

	memcpy(&w, p, sizeof(w));
	e = w ^ (ones * x);
	return (((w - ones) & ~w) | ((e - ones) & ~e)) & highs;
}

/*
 * Index of the first LF or NUL in b[j..l), or l. Heads are short lines: a
 * word at a time beats a libc call per line and per byte class.
 */
static size_t find_lf_or_nul(const unsigned char *b, size_t j, size_t l)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (l - j >= 8) {
		uint64_t m = word_match(b + j, '\n');

		if (m != 0)
			return j + (size_t)__builtin_ctzll(m) / 8;
		j += 8;
	}
#endif
	while (j < l && b[j] != '\n' && b[j] != 0)
		j++;
	return j;
}

#ifdef __SSE2__
/*
 * The common case of http_head_find(): a head looked at for the first time,
 * not starting with CR, every byte up to the limit in one contiguous piece
 * b[0..limit). Sixteen bytes at a time give a mask of their LF and NUL
 * bytes, and only those are looked at, in order, with the same verdicts as
 * the general scan: NUL or a bare LF before the end is BAD, CRLF CRLF ends
 * the head.
 */
static enum http_status head_find_flat(const unsigned char *b, size_t limit, size_t *scan,
		size_t *head_len)
{
	const __m128i lf = _mm_set1_epi8('\n'), nul = _mm_setzero_si128();

	for (size_t k = 0; k < limit; k += 16) {
		unsigned m;

		/* The last piece is read as the sixteen bytes ending at limit,
		 * those already seen shifted out; only a head shorter than
		 * sixteen bytes is looked at byte by byte. */
		if (limit - k >= 16 || limit >= 16) {
			size_t at = limit - k >= 16 ? k : limit - 16;
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + at));

			m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf),
					_mm_cmpeq_epi8(v, nul))) >> (k - at);
		} else {
			m = 0;
			for (size_t i = k; i < limit; i++)
				if (b[i] == '\n' || b[i] == 0)
					m |= 1u << (i - k);
		}
		while (m != 0) {
			size_t i = k + (size_t)__builtin_ctz(m);

			m &= m - 1;
			if (b[i] == 0 || i == 0 || b[i - 1] != '\r')
				return HTTP_BAD;
			if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r') {
				*head_len = i + 1;
				*scan = i + 1;
				return HTTP_OK;
			}
		}
	}
	*scan = limit;
	return HTTP_INCOMPLETE;
}
#endif

enum http_status http_head_find(struct evbuffer *buf, size_t *scan, size_t max,
		size_t *head_len)
{
	struct evbuffer_iovec vec[8];
	struct evbuffer_ptr ptr;
	size_t buflen, limit, pos, start;
	uint32_t win = 0;	/* last bytes seen, the newest in the low byte */

	buflen = evbuffer_get_length(buf);
	limit = buflen < max ? buflen : max;
#ifdef __SSE2__
	if (*scan == 0 && limit > 0 && evbuffer_peek(buf, -1, NULL, vec, 1) >= 1 &&
			vec[0].iov_len >= limit && *(const unsigned char *)vec[0].iov_base != '\r') {
		enum http_status st = head_find_flat(vec[0].iov_base, limit, scan, head_len);

		if (st != HTTP_INCOMPLETE)
			return st;
		return buflen >= max ? HTTP_HEAD_TOO_LARGE : HTTP_INCOMPLETE;
	}
#endif
	if (*scan == 0) {
		enum http_status st = drain_leading_crlf(buf);

		if (st != HTTP_OK)
			return st;
		buflen = evbuffer_get_length(buf);
		limit = buflen < max ? buflen : max;
	}
	if (*scan >= limit)
		goto not_found;

	/*
	 * Restart three bytes back so that the window holds what precedes
	 * the first unchecked byte; those bytes are not checked twice.
	 */
	start = *scan > 3 ? *scan - 3 : 0;
	if (evbuffer_ptr_set(buf, &ptr, start, EVBUFFER_PTR_SET) < 0)
		return HTTP_BAD;
	pos = start;
	while (pos < limit) {
		int n = evbuffer_peek(buf, limit - pos, &ptr, vec, 8);
		size_t advanced = 0;

		if (n <= 0)
			break;
		if (n > 8)
			n = 8;
		for (int i = 0; i < n && pos < limit; i++) {
			const unsigned char *b = vec[i].iov_base;
			size_t l = vec[i].iov_len < limit - pos ? vec[i].iov_len : limit - pos;
			size_t j = 0;

			for (; j < l && pos + j < *scan; j++)
				win = win << 8 | b[j];
			while (j < l) {
				size_t hit = find_lf_or_nul(b, j, l);
				size_t end = hit < l ? hit + 1 : l;

				/* NUL is checked only up to the end of the head: a body may follow. */
				if (unlikely(hit < l && b[hit] == 0))
					return HTTP_BAD;
				if (hit < l && hit >= 3) {
					win = (uint32_t)b[hit - 3] << 24 | (uint32_t)b[hit - 2] << 16 |
						(uint32_t)b[hit - 1] << 8 | b[hit];
				} else {
					for (size_t k = end - j > 4 ? end - 4 : j; k < end; k++)
						win = win << 8 | b[k];
				}
				j = end;
				if (hit == l)
					break;
				if ((win & 0xff00) != ('\r' << 8))
					return HTTP_BAD;
				if (win == 0x0d0a0d0a) {
					*head_len = pos + j;
					*scan = pos + j;
					return HTTP_OK;
				}
			}
			pos += l;
			advanced += l;
		}
		if (evbuffer_ptr_set(buf, &ptr, advanced, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	*scan = limit;
not_found:
	if (buflen >= max)
		return HTTP_HEAD_TOO_LARGE;
	return HTTP_INCOMPLETE;
}

/* ------------------------------------------------------------------ */
/* Parsing heads                                                       */

struct parse_ctx {
	struct http_head *h;
	unsigned max_headers;
	bool pending;			/* headers[nheaders] is being filled */
	bool in_value;			/* and its value has begun */
	bool is_request;
	bool direct;			/* a request split without llhttp */
	bool name_checked;		/* split_fields() saw the name is tchar up to ':' */
	enum http_status status;	/* set by a callback that stops llhttp */
	const char *error;

	/* Derived while headers complete, so the list is walked only once. */
	unsigned n_cl, n_te, n_host;
	bool te_seen_chunked, te_last_chunked, te_other, te_empty;
	bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade;
};

static int fail(struct parse_ctx *c, enum http_status st, const char *error)
{
	c->status = st;
	c->error = error;
	return HPE_USER;
}

/* Digits only, no sign, no list, no overflow. */
static int parse_content_length(struct parse_ctx *c, const char *v, size_t n)
{
	uint64_t x = 0;

	if (n == 0)
		return fail(c, HTTP_BAD, "empty Content-Length");
	for (size_t i = 0; i < n; i++) {
		unsigned char d = (unsigned char)v[i];

		if (d < '0' || d > '9')
			return fail(c, HTTP_BAD, "invalid Content-Length");
		if (x > (UINT64_MAX - (d - '0')) / 10)
			return fail(c, HTTP_BAD, "Content-Length too large");
		x = x * 10 + (d - '0');
	}
	c->h->content_length = x;
	return 0;
}

/*
 * Transfer-Encoding fields form one list across fields, in order. Only
 * "chunked" as the final coding, applied once, frames a body we can
 * delimit; what that means for other shapes is decided by the caller.
 */
static int parse_transfer_encoding(struct parse_ctx *c, const char *v, size_t n)
{
	size_t i = 0;
	bool any = false;

	while (i < n) {
		size_t s;

		while (i < n && (v[i] == ',' || IS(v[i], C_OWS)))
			i++;
		if (i == n)
			break;
		s = i;
		while (i < n && IS(v[i], C_TCHAR))
			i++;
		if (i == s)
			return fail(c, HTTP_BAD, "invalid Transfer-Encoding");
		any = true;
		if (IEQ(v + s, i - s, "chunked")) {
			if (c->te_seen_chunked)
				return fail(c, HTTP_BAD, "chunked applied more than once");
			c->te_seen_chunked = true;
			c->te_last_chunked = true;
		} else {
			c->te_last_chunked = false;
			c->te_other = true;
		}
		while (i < n && IS(v[i], C_OWS))
			i++;
		if (i < n && v[i] != ',')
			return fail(c, HTTP_BAD, "invalid Transfer-Encoding");
	}
	if (!any)
		c->te_empty = true;
	return 0;
}

/* One pass over a Connection value for the three options that matter. */
static void parse_connection(struct parse_ctx *c, const char *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ',' || IS(v[i], C_OWS)))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && IS(v[e - 1], C_OWS))
			e--;
		if (IEQ(v + s, e - s, "close"))
			c->conn_close = true;
		else if (IEQ(v + s, e - s, "keep-alive"))
			c->conn_keep_alive = true;
		else if (IEQ(v + s, e - s, "upgrade"))
			c->conn_upgrade = true;
	}
}

/*
 * Whether the field name s (tchar only, already checked) equals the
 * lower-case literal lit of the same length n. OR-ing 0x20 lowers the
 * letters and changes no other tchar into a letter, digit or '-', which is
 * all the literals hold: eight bytes compare at a time.
 */
static inline bool name_eq(const char *s, const char *lit, size_t n)
{
	const uint64_t m = 0x2020202020202020ULL;
	uint64_t a, b;

	for (; n >= 8; s += 8, lit += 8, n -= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, lit, 8);
		if ((a | m) != b)
			return false;
	}
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return true;
}

#define NAME_IS(s, lit)	name_eq((s), lit, sizeof(lit) - 1)

/* The well-known field a checked name is, by length first. */
static enum http_field field_id(const char *name, size_t n)
{
	switch (n) {
	case 2:
		return NAME_IS(name, "te") ? HTTP_F_TE : HTTP_F_OTHER;
	case 4:
		return NAME_IS(name, "host") ? HTTP_F_HOST : HTTP_F_OTHER;
	case 6:
		return NAME_IS(name, "expect") ? HTTP_F_EXPECT : HTTP_F_OTHER;
	case 7:
		if (NAME_IS(name, "upgrade"))
			return HTTP_F_UPGRADE;
		return NAME_IS(name, "trailer") ? HTTP_F_TRAILER : HTTP_F_OTHER;
	case 10:
		if (NAME_IS(name, "connection"))
			return HTTP_F_CONNECTION;
		if (NAME_IS(name, "keep-alive"))
			return HTTP_F_KEEP_ALIVE;
		break;
	case 12:
		if (NAME_IS(name, "x-request-id"))
			return HTTP_F_X_REQUEST_ID;
		break;
	case 14:
		if (NAME_IS(name, "content-length"))
			return HTTP_F_CONTENT_LENGTH;
		break;
	case 15:
		if (NAME_IS(name, "x-forwarded-for"))
			return HTTP_F_X_FORWARDED_FOR;
		break;
	case 16:
		if (NAME_IS(name, "x-forwarded-host"))
			return HTTP_F_X_FORWARDED_HOST;
		break;
	case 17:
		if (NAME_IS(name, "transfer-encoding"))
			return HTTP_F_TRANSFER_ENCODING;
		if (NAME_IS(name, "x-forwarded-proto"))
			return HTTP_F_X_FORWARDED_PROTO;
		break;
	case 25:
		if (NAME_IS(name, "strict-transport-security"))
			return HTTP_F_STS;
		break;
	default:
		break;
	}
	if (n > 6 && NAME_IS(name, "proxy-"))
		return HTTP_F_PROXY;
	return HTTP_F_OTHER;
}

/* Close the header being filled: trim, check the name, note what it means. */
static int header_finish(struct parse_ctx *c)
{
	struct http_head *h = c->h;
	struct http_header *hd = &h->headers[h->nheaders];
	const char *v, *name = hd->name;
	size_t n = hd->name_len;

	c->pending = false;
	if (!c->name_checked) {
		/* llhttp 8.1 tolerates some of these; a proxy must not. */
		if (n == 0)
			return fail(c, HTTP_BAD, "empty header name");
		/* llhttp 8.1 hands "Host " over as the name of "Host : x". */
		if (IS(name[n - 1], C_OWS) || name[n] != ':')
			return fail(c, HTTP_BAD, "whitespace before colon");
		for (size_t i = 0; i < n; i++)
			if (unlikely(!IS(name[i], C_TCHAR)))
				return fail(c, HTTP_BAD, "invalid character in header name");
	}
	if (hd->value == NULL)
		hd->value = name + n + 1;
	v = hd->value;
	while (hd->value_len > 0 && IS(v[hd->value_len - 1], C_OWS))
		hd->value_len--;
	h->nheaders++;

	switch ((hd->id = field_id(name, n))) {
	case HTTP_F_HOST:
		if (++c->n_host > 1)
			return fail(c, HTTP_BAD, "several Host fields");
		for (size_t i = 0; i < hd->value_len; i++)
			if (!IS(v[i], C_HOST))
				return fail(c, HTTP_BAD, "invalid Host");
		h->host = v;
		h->host_len = hd->value_len;
		break;
	case HTTP_F_EXPECT:
		if (IEQ(v, hd->value_len, "100-continue"))
			h->expect_continue = true;
		break;
	case HTTP_F_UPGRADE:
		if (hd->value_len > 0)
			c->has_upgrade = true;
		break;
	case HTTP_F_CONNECTION:
		parse_connection(c, v, hd->value_len);
		break;
	case HTTP_F_CONTENT_LENGTH:
		if (++c->n_cl > 1)
			return fail(c, HTTP_BAD, "several Content-Length fields");
		return parse_content_length(c, v, hd->value_len);
	case HTTP_F_TRANSFER_ENCODING:
		c->n_te++;
		return parse_transfer_encoding(c, v, hd->value_len);
	default:
		break;
	}
	return 0;
}

/*
 * The whole head is passed to llhttp at once, so a name or value comes in
 * one piece; should llhttp ever split one, the pieces are contiguous in the
 * same buffer and the length is simply extended.
 */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct parse_ctx *c = p->data;
	struct http_head *h = c->h;
	struct http_header *hd = &h->headers[h->nheaders];

	if (c->pending) {
		int rc;

		if (!c->in_value && at == hd->name + hd->name_len) {
			hd->name_len += len;
			return 0;
		}
		rc = header_finish(c);
		if (rc != 0)
			return rc;
		hd++;
	}
	if (h->nheaders >= c->max_headers)
		return fail(c, HTTP_TOO_MANY_HEADERS, "too many header fields");
	hd->name = at;
	hd->name_len = len;
	hd->value = NULL;
	hd->value_len = 0;
	c->pending = true;
	c->in_value = false;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct parse_ctx *c = p->data;
	struct http_header *hd = &c->h->headers[c->h->nheaders];

	if (!c->pending)
		return fail(c, HTTP_BAD, "header value without name");
	if (hd->value == NULL) {
		hd->value = at;
		hd->value_len = len;
	} else {
		hd->value_len = (size_t)(at + len - hd->value);
	}
	c->in_value = true;
	return 0;
}

/* Stop before any body: framing is ours (http_body_move). */
static int on_headers_complete(llhttp_t *p)
{
	struct parse_ctx *c = p->data;

	if (c->pending) {
		int rc = header_finish(c);

		if (rc != 0)
			return -1;
	}
	return HPE_PAUSED;
}

static const llhttp_settings_t parse_settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
};

/*
 * Bit 7 of each byte of the eight at p below 0x20 (HTAB included: the
 * caller sorts it out) or equal to DEL, and maybe of bytes above the first
 * one (a borrow): the lowest set bit is exact. Bytes of 0x80 and up are
 * obs-text, never flagged.
 */
static inline uint64_t word_special(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t w, del;

	memcpy(&w, p, sizeof(w));
	del = w ^ (ones * 0x7f);
	return (((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & highs;
}

/* The first byte of [p, end) of class C_SPECIAL or HTAB, or end. */
static const unsigned char *find_special(const unsigned char *p, const unsigned char *end)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (end - p >= 8) {
		uint64_t m = word_special(p);

		if (m != 0)
			return p + __builtin_ctzll(m) / 8;
		p += 8;
	}
#endif
	while (p < end && !IS(*p, C_SPECIAL) && *p != '\t')
		p++;
	return p;
}

/*
 * One pass over the field lines (everything after the start line): CRLF
 * line ends only, no NUL or other CTL but HTAB, no obs-fold, no empty line
 * before the final one. Field lines are then simple enough to be split
 * without a second parser (split_fields).
 */
static const char *check_field_block(const char *data, size_t off, size_t len)
{
	const unsigned char *p = (const unsigned char *)data + off;
	const unsigned char *end = (const unsigned char *)data + len - 2;

	if (p < end && IS(*p, C_OWS))
		return "whitespace before the first header field";
	while (p < end) {
		p = find_special(p, end);
		if (p == end)
			break;
		if (*p == '\t') {
			p++;
			continue;
		}
		if (*p == '\r') {
			if (p[1] != '\n')
				return "bare CR in head";
			p += 2;
			if (p < end) {
				if (IS(*p, C_OWS))
					return "obsolete line folding";
				if (*p == '\r')
					return "empty line inside head";
			}
			continue;
		}
		if (*p == '\n')
			return "bare LF in head";
		if (*p == 0)
			return "NUL in head";
		return "control character in head";
	}
	return NULL;
}

static void head_reset(struct http_head *h, struct http_header *headers, size_t len)
{
	memset(h, 0, sizeof(*h));
	h->method = -1;
	h->headers = headers;
	h->head_len = len;
}

static enum http_status head_fail(struct http_head *h, enum http_status st, const char *error)
{
	h->error = error;
	return st;
}

static bool ends_with_empty_line(const char *data, size_t len)
{
	return len >= 4 && memcmp(data + len - 4, "\r\n\r\n", 4) == 0;
}

/* "HTTP/1.0" or "HTTP/1.1" at p; anything else is refused. */
static bool version_parse(struct http_head *h, const char *p)
{
	if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return false;
	h->version_major = 1;
	h->version_minor = p[7] - '0';
	return true;
}

/*
 * method SP request-target SP HTTP-version CRLF, checked by hand so that the
 * target length is known first (414 before any other complaint) and the
 * target's bytes are looked at once. Returns the offset of the next line.
 */
static enum http_status request_line_parse(struct http_head *h, const char *data, size_t len,
		size_t max_uri, size_t *next)
{
	const char *p = data, *t, *e = data + len;

	/* The head ends with CRLF, which stops each loop below. */
	while (IS(*p, C_TCHAR))
		p++;
	if (p == data || *p != ' ')
		return head_fail(h, HTTP_BAD, "malformed request method");
	h->method_str = data;
	h->method_len = (size_t)(p - data);
	t = ++p;
	while (IS(*p, C_URI))
		p++;
	if ((size_t)(p - t) > max_uri)
		return head_fail(h, HTTP_URI_TOO_LONG, "request-target too long");
	if (p == t)
		return head_fail(h, HTTP_BAD, "empty request-target");
	if (*p != ' ')
		return head_fail(h, HTTP_BAD, "invalid character in request-target");
	h->uri = t;
	h->uri_len = (size_t)(p - t);
	p++;
	if (e - p < 10 || !version_parse(h, p))
		return head_fail(h, HTTP_BAD, "unsupported HTTP version");
	if (p[8] != '\r' || p[9] != '\n')
		return head_fail(h, HTTP_BAD, "malformed request line");
	*next = (size_t)(p + 10 - data);
	return HTTP_OK;
}

/* HTTP-version SP 3DIGIT [SP reason-phrase] CRLF; a missing SP is tolerated. */
static enum http_status status_line_parse(struct http_head *h, const char *data, size_t len,
		size_t *next)
{
	const char *p = data + 9;

	if (len < 16 || !version_parse(h, data) || data[8] != ' ')
		return head_fail(h, HTTP_BAD, "malformed status line");
	for (int i = 0; i < 3; i++)
		if (p[i] < '0' || p[i] > '9')
			return head_fail(h, HTTP_BAD, "malformed status code");
	h->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (h->status < 100 || h->status > 599)
		return head_fail(h, HTTP_BAD, "status code out of range");
	p += 3;
	if (*p == ' ') {
		h->reason = ++p;
		while (IS(*p, C_FVCHAR))
			p++;
		h->reason_len = (size_t)(p - h->reason);
	} else {
		h->reason = p;
	}
	if (p[0] != '\r' || p[1] != '\n')
		return head_fail(h, HTTP_BAD, "malformed status line");
	*next = (size_t)(p + 2 - data);
	return HTTP_OK;
}

/* Let llhttp tokenize the field lines; our callbacks collect and check them. */
static enum http_status run_llhttp(struct parse_ctx *c, llhttp_type_t type,
		const char *data, size_t len)
{
	llhttp_t parser;
	llhttp_errno_t err;

	llhttp_init(&parser, type, &parse_settings);
	parser.data = c;
	err = llhttp_execute(&parser, data, len);
	if (err == HPE_PAUSED) {
		if (c->is_request)
			c->h->method = parser.method;
		return HTTP_OK;
	}
	if (c->status != HTTP_OK)
		return head_fail(c->h, c->status, c->error);
	if (err == HPE_OK)
		return head_fail(c->h, HTTP_BAD, "incomplete head");
	/* Our line already passed as a token: llhttp does not know the method. */
	if (err == HPE_INVALID_METHOD && c->is_request)
		return head_fail(c->h, HTTP_NOT_IMPLEMENTED, "unknown method");
	return head_fail(c->h, HTTP_BAD, llhttp_get_error_reason(&parser));
}

/*
 * The fields llhttp reads itself (framing, Connection, Upgrade) are taken
 * past it only in their plain shape: SP before the value, tokens, commas and
 * SP in it (digits alone for Content-Length), nothing after it. Any other
 * spelling is left to llhttp, whose verdict on it stands.
 */
static bool plain_special(const struct http_header *hd, const char *colon, const char *eol)
{
	const char *p = colon + 1;

	while (p < eol && *p == ' ')
		p++;
	if (p != hd->value || hd->value + hd->value_len != eol || hd->value_len == 0)
		return false;
	if (hd->id == HTTP_F_CONTENT_LENGTH) {
		for (; p < eol; p++)
			if (*p < '0' || *p > '9')
				return false;
		return true;
	}
	/* token *( "," *SP token ) */
	for (;;) {
		const char *t = p;

		while (p < eol && IS(*p, C_TCHAR))
			p++;
		if (p == t)
			return false;
		if (p == eol)
			return true;
		if (*p++ != ',')
			return false;
		while (p < eol && *p == ' ')
			p++;
	}
}

/*
 * Cut the field lines of a head that check_field_block() accepted into
 * names and values: each line is "name:value" and ends with CRLF, with no
 * other CR, LF or CTL in it, so a line is everything up to the next CR.
 * header_finish() then checks the name and notes what the field means,
 * exactly as for the fields llhttp hands over.
 */
static enum http_status split_fields(struct parse_ctx *c, const char *data, size_t off,
		size_t len)
{
	const char *p = data + off, *end = data + len - 2;
	struct http_head *h = c->h;

	while (p < end) {
		const char *q = p, *eol, *colon;
		struct http_header *hd = &h->headers[h->nheaders];
		const char *v;

		/* Nearly every line is a tchar name and a colon: the name is
		 * checked as the colon is looked for. Other lines are cut as
		 * they come and header_finish() says what is wrong. */
		while (IS(*q, C_TCHAR))
			q++;
		c->name_checked = *q == ':' && q > p;
		if (c->name_checked) {
			colon = q;
			eol = memchr(colon + 1, '\r', (size_t)(end - colon - 1));
		} else {
			eol = memchr(p, '\r', (size_t)(end - p));
			colon = memchr(p, ':', (size_t)(eol - p));
		}

		if (colon == NULL)
			return head_fail(h, HTTP_BAD, "header line without colon");
		if (h->nheaders >= c->max_headers)
			return head_fail(h, HTTP_TOO_MANY_HEADERS, "too many header fields");
		v = colon + 1;
		while (v < eol && IS(*v, C_OWS))
			v++;
		hd->name = p;
		hd->name_len = (size_t)(colon - p);
		hd->value = v;
		hd->value_len = (size_t)(eol - v);
		if (header_finish(c) != 0)
			return head_fail(h, c->status, c->error);
		if (c->direct && (hd->id == HTTP_F_CONTENT_LENGTH ||
				hd->id == HTTP_F_TRANSFER_ENCODING || hd->id == HTTP_F_CONNECTION ||
				hd->id == HTTP_F_UPGRADE || hd->id == HTTP_F_PROXY) &&
				!plain_special(hd, colon, eol))
			return HTTP_BAD;
		p = eol + 2;
	}
	return HTTP_OK;
}

static void ctx_init(struct parse_ctx *c, struct http_head *h, unsigned max_headers,
		bool is_request)
{
	memset(c, 0, sizeof(*c));
	c->h = h;
	c->max_headers = max_headers;
	c->is_request = is_request;
}

/*
 * The llhttp method number of the common methods, spelled as llhttp takes
 * them (upper case), or -1 for any other token: those go through llhttp,
 * which knows the full list.
 */
static int common_method(const char *m, size_t n)
{
	switch (n) {
	case 3:
		if (memcmp(m, "GET", 3) == 0)
			return HTTP_GET;
		if (memcmp(m, "PUT", 3) == 0)
			return HTTP_PUT;
		break;
	case 4:
		if (memcmp(m, "POST", 4) == 0)
			return HTTP_POST;
		if (memcmp(m, "HEAD", 4) == 0)
			return HTTP_HEAD;
		break;
	case 5:
		if (memcmp(m, "PATCH", 5) == 0)
			return HTTP_PATCH;
		break;
	case 6:
		if (memcmp(m, "DELETE", 6) == 0)
			return HTTP_DELETE;
		break;
	case 7:
		if (memcmp(m, "OPTIONS", 7) == 0)
			return HTTP_OPTIONS;
		break;
	default:
		break;
	}
	return -1;
}

/*
 * One attempt at a request head. With direct set, a common method's field
 * lines are split without llhttp, as a response's are; the caller repeats
 * any head this refuses without direct, so that what is accepted, what is
 * refused and the words of every refusal stay llhttp's and ours together.
 */
static enum http_status parse_request(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, const struct http_limits *lim, bool direct)
{
	struct parse_ctx c;
	enum http_status st;
	const char *err;
	size_t off;
	int m = -1;

	head_reset(h, headers, len);
	if (!ends_with_empty_line(data, len))
		return head_fail(h, HTTP_BAD, "head does not end with an empty line");
	st = request_line_parse(h, data, len, lim->max_uri, &off);
	if (st != HTTP_OK)
		return st;
	/* Other request-target forms are left to llhttp's URL parser. */
	if (direct && (h->uri[0] != '/' ||
			(m = common_method(h->method_str, h->method_len)) < 0))
		return HTTP_BAD;
	err = check_field_block(data, off, len);
	if (err)
		return head_fail(h, HTTP_BAD, err);
	ctx_init(&c, h, lim->max_headers, true);
	if (direct) {
		c.direct = true;
		st = split_fields(&c, data, off, len);
		h->method = m;
	} else {
		st = run_llhttp(&c, HTTP_REQUEST, data, len);
	}
	if (st != HTTP_OK)
		return st;

	if (c.n_host == 0 && h->version_minor == 1)
		return head_fail(h, HTTP_BAD, "missing Host");
	if (c.n_te > 0) {
		/* RFC 9112 6.1: an HTTP/1.0 request cannot be chunked. */
		if (h->version_minor == 0)
			return head_fail(h, HTTP_BAD, "Transfer-Encoding in HTTP/1.0 request");
		if (c.n_cl > 0)
			return head_fail(h, HTTP_BAD, "Content-Length with Transfer-Encoding");
		if (c.te_empty)
			return head_fail(h, HTTP_BAD, "empty Transfer-Encoding");
		if (!c.te_last_chunked)
			return head_fail(h, HTTP_BAD, "chunked is not the final transfer coding");
		if (c.te_other)
			return head_fail(h, HTTP_NOT_IMPLEMENTED, "unsupported transfer coding");
		h->body = HTTP_BODY_CHUNKED;
	} else if (c.n_cl > 0) {
		h->body = HTTP_BODY_LENGTH;
	} else {
		h->body = HTTP_BODY_NONE;
	}
	h->upgrade_field = c.has_upgrade;
	if (h->version_minor == 1) {
		h->keep_alive = !c.conn_close;
		h->upgrade = c.conn_upgrade && c.has_upgrade;
	} else {
		/* HTTP/1.0 knows neither Upgrade (RFC 9110 7.8) nor Expect (10.1.1). */
		h->keep_alive = c.conn_keep_alive && !c.conn_close;
		h->expect_continue = false;
	}
	return HTTP_OK;
}

/*
 * llhttp re-cuts lines that check_field_block() has already made simple:
 * for the common methods it is skipped, and only a head refused that way
 * meets llhttp, for the final verdict.
 */
enum http_status http_parse_request(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, const struct http_limits *lim)
{
	if (parse_request(h, data, len, headers, lim, true) == HTTP_OK)
		return HTTP_OK;
	return parse_request(h, data, len, headers, lim, false);
}

enum http_status http_parse_request_llhttp(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, const struct http_limits *lim)
{
	return parse_request(h, data, len, headers, lim, false);
}

enum http_status http_parse_response(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, unsigned max_headers, int req_method)
{
	struct parse_ctx c;
	enum http_status st;
	const char *err;
	size_t off;

	head_reset(h, headers, len);
	if (!ends_with_empty_line(data, len))
		return head_fail(h, HTTP_BAD, "head does not end with an empty line");
	st = status_line_parse(h, data, len, &off);
	if (st != HTTP_OK)
		return st;
	err = check_field_block(data, off, len);
	if (err)
		return head_fail(h, HTTP_BAD, err);
	/* A server's head is split directly: llhttp would only cut the same
	 * lines again, at a quarter of the cost of a whole exchange's parsing. */
	ctx_init(&c, h, max_headers, false);
	st = split_fields(&c, data, off, len);
	if (st != HTTP_OK)
		return st;

	h->host = NULL;
	h->host_len = 0;
	h->expect_continue = false;
	/*
	 * A server may send both (RFC 9112 6.3 lets Transfer-Encoding win),
	 * but the message is suspect and the client side may disagree: refuse.
	 */
	if (c.n_te > 0 && c.n_cl > 0)
		return head_fail(h, HTTP_BAD, "Content-Length with Transfer-Encoding");
	if (c.n_te > 0 && h->version_minor == 0)
		return head_fail(h, HTTP_BAD, "Transfer-Encoding in HTTP/1.0 response");
	if (c.n_te > 0 && c.te_empty)
		return head_fail(h, HTTP_BAD, "empty Transfer-Encoding");

	h->keep_alive = h->version_minor == 1 ? !c.conn_close
			: c.conn_keep_alive && !c.conn_close;
	h->upgrade = h->version_minor == 1 && c.conn_upgrade && c.has_upgrade;
	h->upgrade_field = c.has_upgrade;

	if (req_method == HTTP_HEAD || h->status < 200 || h->status == 204 ||
			h->status == 304 ||
			(req_method == HTTP_CONNECT && h->status < 300)) {
		h->body = HTTP_BODY_NONE;
	} else if (c.n_te > 0) {
		if (c.te_last_chunked) {
			h->body = HTTP_BODY_CHUNKED;
		} else {
			h->body = HTTP_BODY_UNTIL_CLOSE;
			h->keep_alive = false;
		}
	} else if (c.n_cl > 0) {
		h->body = HTTP_BODY_LENGTH;
	} else {
		h->body = HTTP_BODY_UNTIL_CLOSE;
		h->keep_alive = false;
	}
	return HTTP_OK;
}

bool http_header_is(const struct http_header *hdr, const char *name)
{
	size_t n = strlen(name);

	if (hdr->name_len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)hdr->name[i]) != lower((unsigned char)name[i]))
			return false;
	return true;
}

bool http_list_has(const char *value, size_t len, const char *token)
{
	size_t tlen = strlen(token);
	size_t i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (value[i] == ',' || IS(value[i], C_OWS)))
			i++;
		s = i;
		while (i < len && value[i] != ',')
			i++;
		e = i;
		while (e > s && IS(value[e - 1], C_OWS))
			e--;
		if (e - s == tlen) {
			size_t k = 0;

			while (k < tlen && lower((unsigned char)value[s + k]) ==
					lower((unsigned char)token[k]))
				k++;
			if (k == tlen)
				return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */

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

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 102: return "Processing";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 207: return "Multi-Status";
	case 208: return "Already Reported";
	case 226: return "IM Used";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 423: return "Locked";
	case 424: return "Failed Dependency";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 506: return "Variant Also Negotiates";
	case 507: return "Insufficient Storage";
	case 508: return "Loop Detected";
	case 510: return "Not Extended";
	case 511: return "Network Authentication Required";
	default: return "";
	}
}

enum http_status
http_request_target(const struct http_head *h, struct http_target *t)
{
	const char *u = h->uri, *end = h->uri + h->uri_len, *p;

	t->host = h->host;
	t->host_len = h->host_len;
	t->path = u;
	t->path_len = h->uri_len;
	t->absolute = false;
	if (h->method == HTTP_M_CONNECT)
		return HTTP_NOT_IMPLEMENTED;
	if (h->uri_len > 0 && u[0] == '/')
		return HTTP_OK;
	if (h->uri_len == 1 && u[0] == '*') {
		t->path = "/";
		t->path_len = 1;
		return HTTP_OK;
	}
	if (h->uri_len > 7 && strncasecmp(u, "http://", 7) == 0)
		p = u + 7;
	else if (h->uri_len > 8 && strncasecmp(u, "https://", 8) == 0)
		p = u + 8;
	else
		return memchr(u, '/', h->uri_len) == NULL ? HTTP_NOT_IMPLEMENTED : HTTP_BAD;
	t->host = p;
	while (p < end && *p != '/' && *p != '?')
		p++;
	t->host_len = (size_t)(p - t->host);
	/* userinfo ("user@host") is not allowed in an http(s) target. */
	if (t->host_len == 0 || memchr(t->host, '@', t->host_len) != NULL)
		return HTTP_BAD;
	t->absolute = true;
	if (p == end) {
		t->path = "/";
		t->path_len = 1;
		return HTTP_OK;
	}
	/* "http://h?q" would need a '/' inserted before its query: rare
	 * enough to refuse rather than to rewrite. */
	if (*p != '/')
		return HTTP_BAD;
	t->path = p;
	t->path_len = (size_t)(end - p);
	return HTTP_OK;
}
