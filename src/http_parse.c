/*
 * Parsing request and response heads: a common request's field lines and
 * every response's are split directly, anything else goes through llhttp,
 * and our strict checks (Content-Length, Transfer-Encoding, Connection,
 * Host, the request-target) close the gaps that allow request smuggling.
 * Field names the proxy acts on get their id here. No I/O, no allocation.
 */
#include <stdint.h>
#include <string.h>

#include <llhttp.h>

#include "http.h"
#include "http-int.h"
#include "util.h"

/* Checked here, where llhttp's method numbers become h->method. */
#define SAME(a, b)	((int)(a) == (int)(b))
_Static_assert(SAME(HTTP_M_DELETE, HTTP_DELETE) && SAME(HTTP_M_GET, HTTP_GET) &&
		SAME(HTTP_M_HEAD, HTTP_HEAD) && SAME(HTTP_M_POST, HTTP_POST) &&
		SAME(HTTP_M_PUT, HTTP_PUT) && SAME(HTTP_M_CONNECT, HTTP_CONNECT) &&
		SAME(HTTP_M_OPTIONS, HTTP_OPTIONS) && SAME(HTTP_M_TRACE, HTTP_TRACE),
		"enum http_method must follow llhttp_method_t");
#undef SAME

/* Case-insensitive equality of s[0..n) with a lowercase literal. */
#define IEQ(s, n, lit)	((n) == sizeof(lit) - 1 && util_eq_lower((s), lit, sizeof(lit) - 1))

struct parse_ctx {
	struct http_head *h;
	unsigned max_headers;
	bool pending;			/* headers[nheaders] is being filled */
	bool in_value;			/* and its value has begun */
	bool is_request;
	bool direct;			/* a request split without llhttp */
	bool name_checked;		/* the splitter saw the name is tchar up to ':' */
	enum http_status status;	/* set by a callback that stops llhttp */
	const char *error;

	/* Derived while headers complete, so the list is walked only once. */
	unsigned n_cl, n_te, n_host;
	bool te_seen_chunked, te_last_chunked, te_other, te_empty;
	bool conn_close, conn_keep_alive, conn_upgrade, conn_other, has_upgrade;
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

/* One pass over a Connection value for the three options that matter, and
 * whether it lists anything else (field names the proxy must strip). */
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
		else if (e > s)
			c->conn_other = true;
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
		p = eol + 2;
	}
	return HTTP_OK;
}

/*
 * check_field_block() and split_fields() in one pass, for the shape nearly
 * every head has: each line a tchar name, a colon, optional whitespace, a
 * value with no CTL but HTAB, and CRLF. Each line's CR is found by the same
 * scan that refuses the bytes check_field_block() refuses, so the block is
 * read once. Whatever else this meets (a line not starting with a name and
 * a colon, a forbidden byte, too many fields, a field header_finish()
 * refuses, and on a request's direct path a framing, Connection, Upgrade
 * or Proxy- field not in its plain shape) makes it give up, and the caller
 * parses the head again the two-pass way (or through llhttp), which has
 * the final word and the exact error.
 */
static bool split_plain(struct parse_ctx *c, const char *data, size_t off, size_t len)
{
	const unsigned char *p = (const unsigned char *)data + off;
	const unsigned char *end = (const unsigned char *)data + len - 2;
	struct http_head *h = c->h;

	c->name_checked = true;
	while (p < end) {
		const unsigned char *q = p, *v, *eol;
		struct http_header *hd = &h->headers[h->nheaders];

		/* A line starting with whitespace (obs-fold) or CR (an empty
		 * line inside the head) has no name: given up here. */
		while (IS(*q, C_TCHAR))
			q++;
		if (*q != ':' || q == p || h->nheaders >= c->max_headers)
			return false;
		v = q + 1;
		while (IS(*v, C_OWS))
			v++;
		for (eol = v;; eol++) {
			eol = find_special(eol, end);
			if (eol == end || *eol != '\t')
				break;
		}
		if (eol == end || *eol != '\r' || eol[1] != '\n')
			return false;
		hd->name = (const char *)p;
		hd->name_len = (size_t)(q - p);
		hd->value = (const char *)v;
		hd->value_len = (size_t)(eol - v);
		if (header_finish(c) != 0)
			return false;
		if (c->direct && (hd->id == HTTP_F_CONTENT_LENGTH ||
				hd->id == HTTP_F_TRANSFER_ENCODING || hd->id == HTTP_F_CONNECTION ||
				hd->id == HTTP_F_UPGRADE || hd->id == HTTP_F_PROXY) &&
				!plain_special(hd, (const char *)q, (const char *)eol))
			return false;
		p = eol + 2;
	}
	return true;
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
	ctx_init(&c, h, lim->max_headers, true);
	if (direct) {
		c.direct = true;
		if (!split_plain(&c, data, off, len))
			return HTTP_BAD;
		h->method = m;
	} else {
		err = check_field_block(data, off, len);
		if (err)
			return head_fail(h, HTTP_BAD, err);
		st = run_llhttp(&c, HTTP_REQUEST, data, len);
		if (st != HTTP_OK)
			return st;
	}

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
	h->conn_lists_fields = c.conn_other;
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
 * llhttp would only re-cut the lines split_plain() cuts as it checks them:
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

/*
 * One attempt at a response head. A server's head is never given to
 * llhttp, which would only cut the same lines again: with plain set, the
 * field lines are checked and split in one pass (split_plain), and any head
 * that refuses is parsed again without it, in two passes that give the
 * verdict and the words of a refusal.
 */
static enum http_status parse_response(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, unsigned max_headers, int req_method, bool plain)
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
	ctx_init(&c, h, max_headers, false);
	if (plain) {
		if (!split_plain(&c, data, off, len))
			return HTTP_BAD;
	} else {
		err = check_field_block(data, off, len);
		if (err)
			return head_fail(h, HTTP_BAD, err);
		st = split_fields(&c, data, off, len);
		if (st != HTTP_OK)
			return st;
	}

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
	h->conn_lists_fields = c.conn_other;

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

enum http_status http_parse_response(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, unsigned max_headers, int req_method)
{
	if (parse_response(h, data, len, headers, max_headers, req_method, true) == HTTP_OK)
		return HTTP_OK;
	return parse_response(h, data, len, headers, max_headers, req_method, false);
}

enum http_status http_parse_response_split(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, unsigned max_headers, int req_method)
{
	return parse_response(h, data, len, headers, max_headers, req_method, false);
}
