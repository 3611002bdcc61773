/*
 * The access-log line: one JSON object per exchange, with its termination
 * and phase by name, written by session_exchange_end() (session.c). The log
 * file itself, its rotation and its clock are log.c's.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "session-int.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

static const char *const term_names[] = {
	[TERM_OK] = "ok",
	[TERM_CLIENT_CLOSED] = "client_closed",
	[TERM_CLIENT_TIMEOUT] = "client_timeout",
	[TERM_BAD_REQUEST] = "bad_request",
	[TERM_HEADER_TOO_LARGE] = "header_too_large",
	[TERM_URI_TOO_LONG] = "uri_too_long",
	[TERM_NOT_IMPLEMENTED] = "not_implemented",
	[TERM_NO_ROUTE] = "no_route",
	[TERM_NO_SERVER] = "no_server",
	[TERM_CONNECT_FAILED] = "connect_failed",
	[TERM_CONNECT_TIMEOUT] = "connect_timeout",
	[TERM_UPSTREAM_TIMEOUT] = "upstream_timeout",
	[TERM_UPSTREAM_CLOSED] = "upstream_closed",
	[TERM_BAD_RESPONSE] = "bad_response",
	[TERM_BODY_TIMEOUT] = "body_timeout",
	[TERM_SHUTDOWN] = "shutdown",
	[TERM_INTERNAL] = "internal",
	[TERM_TUNNEL_IDLE] = "tunnel_idle",
	[TERM_WS_PROTOCOL] = "ws_protocol",
	[TERM_WS_TOO_BIG] = "ws_too_big",
	[TERM_RATE_LIMITED] = "rate_limited",
};

static const char *const phase_names[] = {
	[PHASE_HEAD] = "head",
	[PHASE_CONNECT] = "connect",
	[PHASE_REQUEST] = "request",
	[PHASE_RESPONSE_HEAD] = "response_head",
	[PHASE_RESPONSE_BODY] = "response_body",
	[PHASE_TUNNEL] = "tunnel",
	[PHASE_DONE] = "done",
};

void
session_log_write(const struct session *s)
{
	const struct exchange *ex = &s->ex;
	char line[4096], when[40], server[256];
	size_t n = 0;
	int k;

	if (!log_access_enabled())
		return;
	log_format_time(when, sizeof(when));
	if (ex->server != NULL) {
		size_t m = 0;
		server[m++] = '"';
		m = util_json_escape(server, sizeof(server) - 1, m, ex->server->pool->name,
			strlen(ex->server->pool->name));
		m = util_json_escape(server, sizeof(server) - 1, m, "/", 1);
		m = util_json_escape(server, sizeof(server) - 1, m, ex->server->name,
			strlen(ex->server->name));
		server[m++] = '"';
		server[m] = '\0';
	} else {
		strcpy(server, "null");
	}
	k = snprintf(line, sizeof(line),
		"{\"time\":\"%s\",\"worker\":%u,\"session\":%llu,\"client\":\"%s\",\"method\":\"",
		when, s->w->id, (unsigned long long)s->id, s->addr);
	n = (size_t)k;
	n = util_json_escape(line, sizeof(line), n, ex->method_str, strlen(ex->method_str));
	n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"path\":\"");
	if (ex->uri != NULL)
		n = util_json_escape(line, sizeof(line) - 1024, n, ex->uri, strlen(ex->uri));
	else
		n = util_json_escape(line, sizeof(line), n, "-", 1);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
		"\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
		"\"connect_ms\":%.3f,\"first_byte_ms\":%.3f,\"total_ms\":%.3f,"
		"\"server\":%s,\"request_id\":\"",
		ex->status, (unsigned long long)ex->bytes_in, (unsigned long long)ex->bytes_out,
		ex->connect_ms, ex->have_first_byte ? ex->first_byte_ms : 0.0,
		(double)(util_now_us() - ex->t_start_us) / 1000.0, server);
	n = util_json_escape(line, sizeof(line), n, ex->request_id, strlen(ex->request_id));
	n += (size_t)snprintf(line + n, sizeof(line) - n,
		"\",\"termination\":\"%s\",\"phase\":\"%s\"",
		term_names[ex->term], phase_names[ex->phase]);
	if (s->c != NULL && s->c->ssl != NULL && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
			",\"tls_version\":\"%s\",\"tls_cipher\":\"%s\"",
			tls_version_name(s->c->ssl), tls_cipher_name(s->c->ssl));
	else if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
			",\"tls_version\":null,\"tls_cipher\":null");
	if (s->peer != NULL && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"peer\":\"%s\"", s->peer);
	if (ex->rl_denied != NULL && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"ratelimit\":\"%s\"",
			ex->rl_denied->name);
	if (ex->tunnel && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
			",\"ws_messages_in\":%llu,\"ws_messages_out\":%llu",
			(unsigned long long)ex->c2s.messages, (unsigned long long)ex->s2c.messages);
	if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, "}\n");
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	log_access_write(line, n);
}
