/*
 * The heads of an exchange on the server side: the request head rewritten
 * for the server (hop-by-hop fields dropped, X-Forwarded-* and X-Request-ID
 * added), and the response head read from the server, checked and rewritten
 * for the client (sticky cookie, HSTS, RateLimit); a 101 hands the exchange
 * to tunnel.c. The bodies that follow are forward_body.c's.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "forward-int.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "ratelimit.h"
#include "session.h"
#include "sticky.h"
#include "tunnel.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

/* Largest response head accepted from a server. */
#define RESPONSE_HEAD_MAX (64 * 1024)
/* At most this many Connection fields are honoured when stripping. */
#define MAX_CONNECTION_FIELDS 8

enum hdr_class {
	HDR_PLAIN = 0,
	HDR_HOP,		/* hop-by-hop: never forwarded */
	HDR_FRAMING,		/* Content-Length, Transfer-Encoding: ours to keep */
	HDR_HOST,
	HDR_XFF,
	HDR_XFP,
	HDR_XFH,
	HDR_XRID,
};

/* What the proxy does with each well-known field the parser recognised. */
static const unsigned char field_class[] = {
	[HTTP_F_OTHER] = HDR_PLAIN,
	[HTTP_F_HOST] = HDR_HOST,
	[HTTP_F_CONNECTION] = HDR_HOP,
	[HTTP_F_KEEP_ALIVE] = HDR_HOP,
	[HTTP_F_TE] = HDR_HOP,
	[HTTP_F_TRAILER] = HDR_HOP,
	[HTTP_F_UPGRADE] = HDR_HOP,
	[HTTP_F_PROXY] = HDR_HOP,
	[HTTP_F_CONTENT_LENGTH] = HDR_FRAMING,
	[HTTP_F_TRANSFER_ENCODING] = HDR_FRAMING,
	[HTTP_F_EXPECT] = HDR_PLAIN,
	[HTTP_F_X_FORWARDED_FOR] = HDR_XFF,
	[HTTP_F_X_FORWARDED_HOST] = HDR_XFH,
	[HTTP_F_X_FORWARDED_PROTO] = HDR_XFP,
	[HTTP_F_X_REQUEST_ID] = HDR_XRID,
	[HTTP_F_STS] = HDR_PLAIN,
};

static inline enum hdr_class
classify(const struct http_header *h)
{
	return (enum hdr_class)field_class[h->id];
}

/*
 * The next element of a comma-separated list value from *i on, without its
 * surrounding whitespace, in [*start, *end); false at the end of the value.
 */
static bool
list_next(const char *v, size_t vlen, size_t *i, size_t *start, size_t *end)
{
	for (;;) {
		while (*i < vlen && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ','))
			(*i)++;
		if (*i >= vlen)
			return false;
		*start = *i;
		while (*i < vlen && v[*i] != ',')
			(*i)++;
		*end = *i;
		while (*end > *start && (v[*end - 1] == ' ' || v[*end - 1] == '\t'))
			(*end)--;
		if (*end > *start)
			return true;
	}
}

static bool
span_is(const char *v, size_t start, size_t end, const char *lit, size_t n)
{
	return end - start == n && util_eq_lower(v + start, lit, n);
}

/* Whether the comma-separated list value names the header name. */
static bool
token_listed(const char *v, size_t vlen, const char *name, size_t nlen)
{
	size_t i = 0, start, end;

	while (list_next(v, vlen, &i, &start, &end))
		if (end - start == nlen && util_eq_nocase(v + start, name, nlen))
			return true;
	return false;
}

/* The Connection fields of a head, for stripping the names they list. */
struct conn_fields {
	const struct http_header *f[MAX_CONNECTION_FIELDS];
	size_t n;
};

/* Whether a Connection value lists only the options every peer uses
 * (close, keep-alive, upgrade): then it names no field to strip. */
static bool
connection_options_only(const char *v, size_t vlen)
{
	size_t i = 0, start, end;

	while (list_next(v, vlen, &i, &start, &end))
		if (!span_is(v, start, end, "close", 5) && !span_is(v, start, end, "keep-alive", 10) &&
		    !span_is(v, start, end, "upgrade", 7))
			return false;
	return true;
}

/* The Connection fields of h that name fields to strip. The parser has
 * said whether there is any, and in almost every message there is none. */
static void
conn_fields_collect(struct conn_fields *cf, const struct http_head *h)
{
	cf->n = 0;
	if (!h->conn_lists_fields)
		return;
	for (size_t i = 0; i < h->nheaders && cf->n < MAX_CONNECTION_FIELDS; i++)
		if (h->headers[i].id == HTTP_F_CONNECTION &&
		    !connection_options_only(h->headers[i].value, h->headers[i].value_len))
			cf->f[cf->n++] = &h->headers[i];
}

static bool
conn_fields_list(const struct conn_fields *cf, const struct http_header *hd)
{
	for (size_t i = 0; i < cf->n; i++)
		if (token_listed(cf->f[i]->value, cf->f[i]->value_len, hd->name, hd->name_len))
			return true;
	return false;
}

/* A bounded writer into space reserved in an evbuffer. */
struct wbuf {
	char *p;
	size_t len;
	size_t cap;
	bool overflow;
};

static inline void
put(struct wbuf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

static inline void
put_field(struct wbuf *b, const struct http_header *hd)
{
	put(b, hd->name, hd->name_len);
	PUTS(b, ": ");
	put(b, hd->value, hd->value_len);
	PUTS(b, "\r\n");
}

/*
 * A run of kept field lines already in the shape put_field() writes: they
 * leave as one copy of the head's own bytes.
 */
struct field_run {
	const char *start, *end;
};

/* "name: value" CRLF as received: one SP after the colon (which the parser
 * has checked follows the name) and no whitespace after the value. */
static inline bool
field_plain(const struct http_header *hd)
{
	return hd->value == hd->name + hd->name_len + 2 && hd->name[hd->name_len + 1] == ' ' &&
		hd->value[hd->value_len] == '\r';
}

static inline void
run_flush(struct wbuf *b, struct field_run *run)
{
	if (run->end != run->start)
		put(b, run->start, (size_t)(run->end - run->start));
	run->start = run->end = NULL;
}

/* Write a kept field: extend the run when it follows it in the head. */
static inline void
put_kept(struct wbuf *b, struct field_run *run, const struct http_header *hd)
{
	if (!field_plain(hd)) {
		run_flush(b, run);
		put_field(b, hd);
		return;
	}
	if (hd->name != run->end) {
		run_flush(b, run);
		run->start = hd->name;
	}
	run->end = hd->value + hd->value_len + 2;
}

static int
wbuf_reserve(struct wbuf *b, struct evbuffer *out, struct evbuffer_iovec *v, size_t cap)
{
	if (evbuffer_reserve_space(out, (ev_ssize_t)cap, v, 1) != 1)
		return -1;
	b->p = v->iov_base;
	b->len = 0;
	b->cap = cap;
	b->overflow = false;
	return 0;
}

static int
wbuf_commit(struct wbuf *b, struct evbuffer *out, struct evbuffer_iovec *v)
{
	if (b->overflow)
		return -1;
	v->iov_len = b->len;
	return evbuffer_commit_space(out, v, 1);
}

/*
 * The authority of a request that names none (HTTP/1.0 without Host), as
 * RFC 9112 3.3 has a server reconstruct it: the local address the client
 * connected to, "127.0.0.1:8080" or "[::1]:8443". RFC 9110 7.2 also allows
 * an empty Host, but common origins refuse it (nginx answers 400 and closes
 * the connection, so each such request cost a new upstream connection).
 * The listener's own address serves unless it is a wildcard; then the
 * socket says which one. Empty when neither is known.
 */
static size_t
local_authority(const struct session *s, char *buf, size_t len)
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->listener->addr;
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	bool wildcard;

	if (sa->sa_family == AF_INET)
		wildcard = ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	else if (sa->sa_family == AF_INET6)
		wildcard = IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	else
		wildcard = true;
	if (wildcard) {
		if (getsockname(s->c->fd, (struct sockaddr *)&local, &local_len) < 0 ||
		    (local.ss_family != AF_INET && local.ss_family != AF_INET6))
			return 0;
		sa = (const struct sockaddr *)&local;
	}
	util_addr_format(sa, buf, len, 1);
	return strlen(buf);
}

int
forward_build_request(struct session *s, const struct http_head *h,
		const struct http_target *t)
{
	struct exchange *ex = &s->ex;
	struct conn_fields cf;
	struct field_run run = { NULL, NULL };
	struct wbuf b;
	size_t cap;
	bool xff = false, xrid = false;
	const char *ip = s->addr;
	size_t ip_len;
	char authority[UTIL_ADDR_LEN];
	size_t authority_len = 0;

	/* The client's address without its port (and brackets), for
	 * X-Forwarded-For: derived from s->addr rather than kept twice. */
	if (ip[0] == '[' && strchr(ip, ']') != NULL) {
		ip++;
		ip_len = (size_t)(strchr(ip, ']') - ip);
	} else if (strrchr(ip, ':') != NULL) {
		ip_len = (size_t)(strrchr(ip, ':') - ip);
	} else {
		ip_len = strlen(ip);
	}
	if (!t->absolute && h->host == NULL)
		authority_len = local_authority(s, authority, sizeof(authority));
	conn_fields_collect(&cf, h);
	/* Our fields may be longer than the client's by ": " spacing, the
	 * ", " joining X-Forwarded-For values and the fields we add. */
	cap = h->head_len + 2 * h->nheaders + h->host_len + authority_len + ip_len + 256;
	if (cap > s->head_cap) {
		size_t want = (cap + 1023) & ~(size_t)1023;
		char *nb = realloc(s->head_buf, want);

		if (nb == NULL)
			return -1;
		s->head_buf = nb;
		s->head_cap = want;
	}
	b.p = s->head_buf;
	b.len = 0;
	b.cap = cap;
	b.overflow = false;
	put(&b, h->method_str, h->method_len);
	PUTS(&b, " ");
	if (t->absolute)
		put(&b, t->path, t->path_len);
	else
		put(&b, h->uri, h->uri_len);
	PUTS(&b, " HTTP/1.1\r\n");
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http_header *hd = &h->headers[i];

		switch (classify(hd)) {
		case HDR_HOP:
		case HDR_XFP:
		case HDR_XFH:
			continue;
		case HDR_XFF:
			xff = true;
			continue;
		case HDR_XRID:
			if (xrid)
				continue;
			xrid = true;
			{
				size_t n = hd->value_len < sizeof(ex->request_id) - 1 ?
					hd->value_len : sizeof(ex->request_id) - 1;
				memcpy(ex->request_id, hd->value, n);
				ex->request_id[n] = '\0';
			}
			break;
		case HDR_PLAIN:
			/* A client cannot make us drop the framing or the Host by
			 * listing them in Connection: those are not PLAIN. */
			if (cf.n > 0 && conn_fields_list(&cf, hd))
				continue;
			break;
		case HDR_HOST:
			/* An absolute-form target's authority replaces Host. */
			if (t->absolute)
				continue;
			break;
		case HDR_FRAMING:
			break;
		}
		put_kept(&b, &run, hd);
	}
	run_flush(&b, &run);
	if (t->absolute) {
		PUTS(&b, "Host: ");
		put(&b, t->host, t->host_len);
		PUTS(&b, "\r\n");
	} else if (h->host == NULL) {
		PUTS(&b, "Host: ");
		put(&b, authority, authority_len);
		PUTS(&b, "\r\n");
	}
	/* All X-Forwarded-For fields become one list with the client last. */
	PUTS(&b, "X-Forwarded-For: ");
	if (xff) {
		for (size_t i = 0; i < h->nheaders; i++) {
			const struct http_header *hd = &h->headers[i];

			if (hd->id == HTTP_F_X_FORWARDED_FOR && hd->value_len > 0) {
				put(&b, hd->value, hd->value_len);
				PUTS(&b, ", ");
			}
		}
	}
	put(&b, ip, ip_len);
	if (s->c->ssl != NULL)
		PUTS(&b, "\r\nX-Forwarded-Proto: https\r\n");
	else
		PUTS(&b, "\r\nX-Forwarded-Proto: http\r\n");
	if (t->host != NULL) {
		PUTS(&b, "X-Forwarded-Host: ");
		put(&b, t->host, t->host_len);
		PUTS(&b, "\r\n");
	}
	if (!xrid) {
		util_request_id(ex->request_id);
		PUTS(&b, "X-Request-ID: ");
		put(&b, ex->request_id, 32);
		PUTS(&b, "\r\n");
	}
	if (ex->ws_upgrade)
		PUTS(&b, "Upgrade: websocket\r\nConnection: upgrade\r\n");
	else if (ex->route->pool->keepalive_max == 0)
		PUTS(&b, "Connection: close\r\n");
	PUTS(&b, "\r\n");
	if (b.overflow)
		return -1;
	ex->head_len = b.len;
	return 0;
}

/* Room for a response head and a small body built on the stack. */
#define RESPONSE_STACK 4096

/* Room write_response_head() needs for r, a bound on what it writes. */
static size_t
response_head_cap(const struct session *s, const struct http_head *r)
{
	const struct exchange *ex = &s->ex;
	size_t reason_len = r->reason_len;

	if (reason_len == 0)
		reason_len = strlen(http_reason(r->status));
	return r->head_len + 2 * r->nheaders + reason_len + 256 +
		(ex->route->sticky_cookie ? strlen(ex->route->sticky_cookie) : 0) +
		(ex->rl_hdr != NULL ? 100 : 0);
}

/*
 * Write a response head for the client: the server's status and fields less
 * hop-by-hop ones, then our own Connection field for a final response.
 * With body set, the body_len bytes there follow the head and the whole
 * answer is written at once (conn_write), which the caller has checked
 * fits RESPONSE_STACK; otherwise the head waits in the output for the
 * caller's flush, so that a body moved meanwhile leaves with it.
 */
static int
write_response_head(struct session *s, const struct http_head *r, bool final, bool close,
		bool dechunk, const char *body, size_t body_len)
{
	struct exchange *ex = &s->ex;
	struct evbuffer *out = s->c->out;
	struct conn_fields cf;
	struct field_run run = { NULL, NULL };
	struct evbuffer_iovec v;
	struct wbuf b;
	char status[8];
	const char *reason = r->reason;
	size_t reason_len = r->reason_len;
	/* Strict-Transport-Security only over TLS (RFC 6797 7.2). */
	unsigned hsts = final && s->listener->tls != NULL && s->c->ssl != NULL ?
		tls_server_hsts(s->listener->tls) : 0;
	size_t cap = response_head_cap(s, r);
	char stack[RESPONSE_STACK];

	if (reason_len == 0) {
		reason = http_reason(r->status);
		reason_len = strlen(reason);
	}
	conn_fields_collect(&cf, r);
	if (body != NULL) {
		/* Built here and sent from here when the output is empty: no
		 * evbuffer space is reserved, committed, sent and drained. */
		if (cap + body_len > sizeof(stack))
			return -1;
		b.p = stack;
		b.len = 0;
		b.cap = cap + body_len;
		b.overflow = false;
	} else if (wbuf_reserve(&b, out, &v, cap) < 0) {
		return -1;
	}
	PUTS(&b, "HTTP/1.1 ");
	/* The parser guarantees three digits. */
	status[0] = (char)('0' + r->status / 100);
	status[1] = (char)('0' + r->status / 10 % 10);
	status[2] = (char)('0' + r->status % 10);
	status[3] = ' ';
	put(&b, status, 4);
	put(&b, reason, reason_len);
	PUTS(&b, "\r\n");
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *hd = &r->headers[i];

		switch (classify(hd)) {
		case HDR_HOP:
			continue;
		case HDR_FRAMING:
			/* An HTTP/1.0 client gets the body without chunked
			 * framing, ended by our close. */
			if (dechunk && hd->id == HTTP_F_TRANSFER_ENCODING)
				continue;
			break;
		case HDR_PLAIN:
			if (cf.n > 0 && conn_fields_list(&cf, hd))
				continue;
			/* The listener's policy replaces the server's. */
			if (hsts > 0 && hd->id == HTTP_F_STS)
				continue;
			break;
		default:
			break;
		}
		put_kept(&b, &run, hd);
	}
	run_flush(&b, &run);
	if (hsts > 0) {
		char sts[64];
		int n = snprintf(sts, sizeof(sts), "Strict-Transport-Security: max-age=%u\r\n", hsts);

		put(&b, sts, (size_t)n);
	}
	if (final && (ex->route->sticky & CONFIG_STICKY_COOKIE) &&
	    (ex->set_cookie || ex->server != ex->sticky_server)) {
		/* The cookie names the server that answered, so the client's
		 * next requests come back to it. */
		PUTS(&b, "Set-Cookie: ");
		put(&b, ex->route->sticky_cookie, strlen(ex->route->sticky_cookie));
		PUTS(&b, "=");
		put(&b, ex->server->sticky_token, STICKY_TOKEN_LEN);
		PUTS(&b, "; Path=/; HttpOnly; SameSite=Lax\r\n");
	}
	if (final && ex->rl_hdr != NULL) {
		/* A limit with headers = on: how much of it is left. */
		char rl[96];
		size_t n = rl_format_state(ex->rl_hdr, &ex->rl_hdr_r, rl, sizeof(rl));

		PUTS(&b, "RateLimit: ");
		put(&b, rl, n);
		PUTS(&b, "\r\n");
	}
	if (final && r->status == 101) {
		PUTS(&b, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
	} else if (final) {
		if (close)
			PUTS(&b, "Connection: close\r\n");
		else if (ex->client_http10)
			PUTS(&b, "Connection: keep-alive\r\n");
	}
	PUTS(&b, "\r\n");
	if (body != NULL) {
		size_t head = b.len;

		put(&b, body, body_len);
		if (b.overflow || conn_write(s->c, b.p, b.len) < 0)
			return -1;
		ex->bytes_out += head + body_len;
		return 0;
	}
	if (wbuf_commit(&b, out, &v) < 0)
		return -1;
	ex->bytes_out += b.len;
	return 0;
}

static void
bad_response(struct session *s, const char *why)
{
	struct exchange *ex = &s->ex;

	log_warn("s%llu %s: bad response head from server %s/%s: %s", SID(s),
		ex->server->pool->name, ex->server->name, why ? why : "malformed");
	session_fail(s, 502, TERM_BAD_RESPONSE);
}

/*
 * Whether a final response's Content-Length body is small and already
 * follows its head in the first chain of in, where the head was pulled up:
 * then head and body are written together.
 */
static bool
small_body_here(const struct session *s, const struct http_head *r, struct evbuffer *in,
		size_t head_len)
{
	return r->body == HTTP_BODY_LENGTH && r->content_length > 0 &&
		r->content_length <= RESPONSE_STACK / 4 && !s->ex.learn_sid_poll &&
		evbuffer_get_contiguous_space(in) >= head_len + (size_t)r->content_length &&
		response_head_cap(s, r) + (size_t)r->content_length <= RESPONSE_STACK;
}

static void
forward_response(struct session *s)
{
	struct exchange *ex = &s->ex;
	struct evbuffer *in = ex->up->c->in;

	if (!ex->have_first_byte && evbuffer_get_length(in) > 0) {
		ex->first_byte_ms = (double)(util_now_us() - ex->t_start_us) / 1000.0;
		ex->have_first_byte = true;
	}
	while (ex->phase != PHASE_RESPONSE_BODY) {
		struct http_head r;
		enum http_status st;
		size_t head_len;
		const char *data;
		bool dechunk, close;

		st = http_head_find(in, &ex->resp_scan, RESPONSE_HEAD_MAX, &head_len);
		if (st == HTTP_INCOMPLETE)
			return;
		if (st != HTTP_OK) {
			bad_response(s, st == HTTP_HEAD_TOO_LARGE ? "head too large" : "malformed head");
			return;
		}
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len);
		if (data == NULL) {
			session_fail(s, 500, TERM_INTERNAL);
			return;
		}
		memset(&r, 0, sizeof(r));
		st = http_parse_response(&r, data, head_len, s->w->hdrs, s->w->nhdrs, ex->method);
		ex->resp_scan = 0;
		if (st != HTTP_OK) {
			bad_response(s, r.error);
			return;
		}
		if (r.status == 101) {
			if (!ex->ws_upgrade) {
				/* Only WebSocket upgrades are forwarded. */
				bad_response(s, "101 Switching Protocols to a request without Upgrade");
				return;
			}
			ex->status = 101;
			ex->resp_head_sent = true;
			ex->up_reusable = false;
			if (write_response_head(s, &r, true, false, false, NULL, 0) < 0) {
				session_fail(s, 500, TERM_INTERNAL);
				return;
			}
			evbuffer_drain(in, head_len);
			conn_flush(s->c);
			tunnel_start(s);
			return;
		}
		if (r.status < 200) {
			/* Interim answers (100 Continue, 103 Early Hints) go on to
			 * an HTTP/1.1 client; HTTP/1.0 does not know them. */
			if (!ex->client_http10) {
				if (write_response_head(s, &r, false, false, false, NULL, 0) < 0) {
					session_fail(s, 500, TERM_INTERNAL);
					return;
				}
				conn_flush(s->c);
			}
			evbuffer_drain(in, head_len);
			continue;
		}
		ex->status = r.status;
		health_passive_status(ex->server, r.status);
		if (r.status != 200)
			ex->learn_sid_poll = false;
		dechunk = ex->client_http10 && r.body == HTTP_BODY_CHUNKED;
		ex->resp_close_delimited = r.body == HTTP_BODY_UNTIL_CLOSE || dechunk;
		close = !ex->client_keep_alive || ex->resp_close_delimited || !ex->req_read ||
			s->draining || (s->client_eof && evbuffer_get_length(s->c->in) == 0);
		ex->client_keep_alive = !close;
		ex->up_reusable = r.keep_alive && r.body != HTTP_BODY_UNTIL_CLOSE;
		if (small_body_here(s, &r, in, head_len)) {
			/* The whole answer is in: it leaves in one piece, and the
			 * body never passes through an evbuffer of ours. */
			size_t cl = (size_t)r.content_length;

			if (write_response_head(s, &r, true, close, false, data + head_len, cl) < 0) {
				session_fail(s, 500, TERM_INTERNAL);
				return;
			}
			evbuffer_drain(in, head_len + cl);
			ex->resp_head_sent = true;
			ex->phase = PHASE_RESPONSE_BODY;
			http_body_init(&ex->resp_body, HTTP_BODY_LENGTH, 0, false);
			ex->resp_body.moved = cl;
			forward_response_done(s);
			return;
		}
		if (write_response_head(s, &r, true, close, dechunk, NULL, 0) < 0) {
			session_fail(s, 500, TERM_INTERNAL);
			return;
		}
		evbuffer_drain(in, head_len);
		ex->resp_head_sent = true;
		ex->phase = PHASE_RESPONSE_BODY;
		http_body_init(&ex->resp_body, r.body, r.content_length, dechunk);
		if (r.body == HTTP_BODY_NONE) {
			conn_flush(s->c);
			forward_response_done(s);
			return;
		}
	}
	forward_response_body(s);
}

/*
 * Here rather than with the other callbacks in forward.c, so that
 * forward_response(), which runs on every read from the server, stays
 * static and is inlined into it.
 */
void
forward_up_read_cb(struct conn *c, void *arg)
{
	(void)c;
	forward_response(arg);
}
