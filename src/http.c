/*
 * The small HTTP helpers other modules call on a parsed head: where a
 * request goes, header name and list matching, reason phrases. Finding a
 * head is http_head.c's, parsing it http_parse.c's, bodies http_body.c's.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "http-int.h"

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
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
