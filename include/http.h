/*
 * HTTP/1.1 message heads and body framing (RFC 9110, 9112). http_head.c finds
 * a head in an evbuffer, http_parse.c parses it with llhttp plus the strict
 * checks that llhttp 8.1 lacks, http_body.c moves bodies between evbuffers
 * without copying their payload, http.c holds the small helpers. They own
 * no connection and do no I/O.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define HTTP_WUR __attribute__((warn_unused_result))

/*
 * llhttp's numbers (llhttp_method_t) for the methods other modules test, so
 * that they need not include llhttp.h; http_parse.c asserts that they agree.
 * struct http_head.method is -1 in a response head.
 */
enum http_method {
	HTTP_M_DELETE = 0,
	HTTP_M_GET = 1,
	HTTP_M_HEAD = 2,
	HTTP_M_POST = 3,
	HTTP_M_PUT = 4,
	HTTP_M_CONNECT = 5,
	HTTP_M_OPTIONS = 6,
	HTTP_M_TRACE = 7,
};

/* Longest chunk-size or trailer line, CRLF included. */
#define HTTP_CHUNK_LINE_MAX 4096
/* Most bytes of trailer section accepted after the last chunk. */
#define HTTP_TRAILER_MAX 16384

/* Outcome of scanning or parsing a head. */
enum http_status {
	HTTP_OK = 0,
	HTTP_INCOMPLETE,	/* need more bytes */
	HTTP_BAD,		/* malformed: 400 (request) or 502 (response) */
	HTTP_HEAD_TOO_LARGE,	/* 431 */
	HTTP_TOO_MANY_HEADERS,	/* 431 */
	HTTP_URI_TOO_LONG,	/* 414 */
	HTTP_NOT_IMPLEMENTED,	/* 501: a transfer coding we do not know */
};

/*
 * Field names the proxy acts on, recognised once while parsing so that later
 * steps switch on a number instead of comparing names again.
 */
enum http_field {
	HTTP_F_OTHER = 0,
	HTTP_F_HOST,
	HTTP_F_CONNECTION,
	HTTP_F_KEEP_ALIVE,
	HTTP_F_TE,
	HTTP_F_TRAILER,
	HTTP_F_UPGRADE,
	HTTP_F_PROXY,			/* any "Proxy-*" */
	HTTP_F_CONTENT_LENGTH,
	HTTP_F_TRANSFER_ENCODING,
	HTTP_F_EXPECT,
	HTTP_F_X_FORWARDED_FOR,
	HTTP_F_X_FORWARDED_HOST,
	HTTP_F_X_FORWARDED_PROTO,
	HTTP_F_X_REQUEST_ID,
	HTTP_F_STS,			/* Strict-Transport-Security */
};

struct http_header {
	const char *name;
	size_t name_len;
	const char *value;	/* leading and trailing SP/HTAB removed */
	size_t value_len;
	enum http_field id;	/* set by the parsers */
};

enum http_body {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,	/* content_length bytes */
	HTTP_BODY_CHUNKED,
	HTTP_BODY_UNTIL_CLOSE,	/* responses only: read until the server closes */
};

/*
 * A parsed head. Every pointer points into the bytes given to the parse
 * call, which the caller keeps alive and unmodified while it uses the head.
 */
struct http_head {
	/* request */
	int method;			/* llhttp_method_t value (HTTP_GET ...) */
	const char *method_str;
	size_t method_len;
	const char *uri;
	size_t uri_len;
	/* response */
	int status;
	const char *reason;
	size_t reason_len;
	/* both */
	int version_major;
	int version_minor;
	struct http_header *headers;	/* caller's array */
	size_t nheaders;
	size_t head_len;		/* bytes of the head, final CRLF included */

	/* derived from the headers */
	enum http_body body;
	uint64_t content_length;
	bool keep_alive;		/* version default, then Connection: close / keep-alive */
	bool expect_continue;		/* Expect: 100-continue */
	bool upgrade;			/* Connection lists "upgrade" and Upgrade is present */
	bool upgrade_field;		/* an Upgrade field is present (any version) */
	bool conn_lists_fields;		/* Connection lists more than close, keep-alive, upgrade */
	const char *host;		/* Host value, or NULL */
	size_t host_len;
	const char *error;		/* static text saying what was wrong, on failure */
};

/*
 * Incremental search for the end of a head in buf, from *scan (0 on the
 * first call; the function keeps it so a head trickling in is not rescanned).
 * On HTTP_OK, *head_len is the length of the head including the empty line.
 * Fails with HTTP_BAD on a bare LF or NUL, HTTP_HEAD_TOO_LARGE when max bytes
 * pass without the end. Empty lines (CRLF) before the start line are
 * drained from buf while *scan is 0 (RFC 9112 2.2), so the head always
 * begins at the start of buf; a lone CR there waits for the next byte.
 * Bytes after the head (body, next request) are not looked at.
 */
enum http_status http_head_find(struct evbuffer *buf, size_t *scan, size_t max,
		size_t *head_len) HTTP_WUR;

struct http_limits {
	unsigned max_headers;
	size_t max_uri;
};

/*
 * Parse a request head of exactly len bytes (as found by http_head_find).
 * headers must have room for lim->max_headers entries. Returns HTTP_OK,
 * HTTP_URI_TOO_LONG (checked first, from the request line),
 * HTTP_TOO_MANY_HEADERS, HTTP_NOT_IMPLEMENTED (a method llhttp does not
 * know, or a transfer coding other than chunked before the final chunked)
 * or HTTP_BAD; h->error says why on failure. Strict: rejects
 * Content-Length with Transfer-Encoding, duplicate or malformed
 * Content-Length, any Transfer-Encoding other than a final "chunked" (and
 * chunked applied twice), obs-fold, bare LF, NUL and control characters in
 * names or values, whitespace before the colon, a missing Host on HTTP/1.1,
 * several Host fields, and versions other than 1.0 and 1.1; also Transfer-
 * Encoding in HTTP/1.0, a Host that is not an authority, and a request-target
 * with bytes other than printable ASCII or with '#'. A request without
 * Content-Length or Transfer-Encoding has HTTP_BODY_NONE.
 */
enum http_status http_parse_request(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, const struct http_limits *lim) HTTP_WUR;

/*
 * The same, with every head cut by llhttp: the reference that the direct
 * split of common heads must agree with (tests/unit/test_http_diff.c holds
 * them to it).
 */
enum http_status http_parse_request_llhttp(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, const struct http_limits *lim) HTTP_WUR;

/*
 * Parse a response head. req_method is the method of the request it
 * answers (HEAD and CONNECT change the framing). The framing rules of RFC
 * 9112 section 6.3 apply: HEAD, 1xx, 204 and 304 have no body, nor has a 2xx
 * to CONNECT; then a final chunked, then Content-Length, else the body runs
 * until close (keep_alive false). Content-Length with Transfer-Encoding,
 * duplicate Content-Length, chunked twice and Transfer-Encoding in an
 * HTTP/1.0 response are refused (HTTP_BAD). content_length holds the field's
 * value even where the body is NONE (HEAD). h->method is -1.
 */
enum http_status http_parse_response(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, unsigned max_headers, int req_method) HTTP_WUR;

/*
 * The same, with the field lines always checked and split in two passes:
 * the reference that the one-pass split of common heads must agree with
 * (tests/unit/test_http_diff.c holds them to it).
 */
enum http_status http_parse_response_split(struct http_head *h, const char *data, size_t len,
		struct http_header *headers, unsigned max_headers, int req_method) HTTP_WUR;

/*
 * Where a request goes (RFC 9112 3.2). For origin-form ("/p?q") host is the
 * Host field and path the target; for absolute-form ("http://h/p") host is
 * the authority, which replaces Host, and path the part from the first '/'
 * ("/" when there is none); "*" (OPTIONS) routes as "/".
 */
struct http_target {
	const char *host;	/* NULL when the request has no Host */
	size_t host_len;
	const char *path;	/* for routing and for the request line */
	size_t path_len;
	bool absolute;		/* absolute-form: forward path, and host as Host */
};

/*
 * Fill t from a parsed request. HTTP_NOT_IMPLEMENTED for CONNECT and
 * authority-form (sluice is not a forward proxy), HTTP_BAD for an
 * absolute-form scheme other than http or https or an empty authority.
 */
enum http_status http_request_target(const struct http_head *h, struct http_target *t) HTTP_WUR;

/* Case-insensitive header name comparison with a NUL-terminated name. */
bool http_header_is(const struct http_header *hdr, const char *name);

/*
 * Whether a comma-separated field value lists token (case-insensitive, OWS
 * around elements ignored, whole elements only).
 */
bool http_list_has(const char *value, size_t len, const char *token);

/*
 * Streaming body framing. A body is moved from src to dst as far as src
 * holds it; chunk data moves with evbuffer_remove_buffer(), never copied.
 */
enum http_body_result {
	HTTP_BODY_MORE = 0,	/* moved what there was; the body goes on */
	HTTP_BODY_DONE,		/* the body ended; src holds only what follows it */
	HTTP_BODY_ERROR,	/* malformed chunked framing */
};

enum http_chunk_state {
	HTTP_CHUNK_SIZE = 0,	/* reading a chunk-size line */
	HTTP_CHUNK_DATA,	/* copying chunk data */
	HTTP_CHUNK_DATA_CRLF,	/* expecting the CRLF after chunk data */
	HTTP_CHUNK_TRAILER,	/* reading trailer lines after the last chunk */
	HTTP_CHUNK_DONE,
};

struct http_body_state {
	enum http_body kind;
	uint64_t remaining;		/* LENGTH: bytes left; CHUNKED: data left in chunk */
	enum http_chunk_state chunk;
	size_t trailer_bytes;		/* guards against endless trailers */
	bool dechunk;			/* drop chunked framing: dst gets only the data */
	uint64_t moved;			/* bytes added to dst so far */
	const char *error;		/* what was wrong, on HTTP_BODY_ERROR */
};

/* Prepare st for a body of the given head's framing. */
void http_body_init(struct http_body_state *st, enum http_body kind, uint64_t content_length,
		bool dechunk);

/*
 * Move up to max bytes of body (counting framing) from src to dst. A chunked
 * framing line (at most HTTP_CHUNK_LINE_MAX bytes) is taken whole, and may
 * overshoot max when it is the first thing taken in the call, so any max > 0
 * makes progress; an incomplete line stays in src. With dechunk set, size
 * lines, CRLFs and the whole trailer section are dropped. Chunk-size
 * lines are checked strictly: hex digits without overflow, then optional
 * ";name[=value]" extensions (token or quoted-string), CRLF; chunk data must
 * be followed by CRLF; trailer fields obey the same rules as header fields
 * and are forwarded unless dechunk is set. UNTIL_CLOSE moves everything and
 * never returns DONE: the caller ends it at EOF.
 */
enum http_body_result http_body_move(struct http_body_state *st, struct evbuffer *src,
		struct evbuffer *dst, size_t max) HTTP_WUR;

/* Reason phrase of a status code ("Bad Request"), "" when unknown. */
const char *http_reason(int status);

#endif
