/*
 * One active health check (health_check.h): connect on the main thread's
 * loop through conn.c (TLS as the pool says), send one request with
 * Connection: close, read the answer's head and as much of its body as the
 * verdict needs, and report. It keeps no state between checks; counting
 * verdicts and acting on them is health.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config-t.h"
#include "conn.h"
#include "health_check.h"
#include "health_state.h"
#include "http.h"
#include "server.h"
#include "tls.h"
#include "util.h"

/* An answer head longer than this fails the check. */
#define CHECK_HEAD_MAX (16 * 1024)
/* Body bytes looked at for the verdict; the rest is not read. */
#define CHECK_BODY_MAX (64 * 1024)
#define CHECK_MAX_HEADERS 64

/* Owned by health.c's record of the server until it ends or is cancelled. */
struct health_check {
	const struct config_server *srv;
	const struct config_health *h;
	struct conn *c;
	struct event timer;		/* the check's timeout, or an immediate failure */
	health_check_cb cb;
	void *arg;
	char addr[UTIL_ADDR_LEN];	/* the address connected to, for messages */
	char early[160];		/* a failure found in health_check_start() */
	bool connected;
	bool head_done;
	bool want_body;			/* the verdict needs the body */
	int method;			/* HTTP_M_HEAD or HTTP_M_GET: framing of the answer */
	int status;
	size_t scan;			/* http_head_find() state */
	struct http_body_state body_st;
	struct evbuffer *body;
	struct http_header hdrs[CHECK_MAX_HEADERS];
};

static void
check_free(struct health_check *hc)
{
	event_del(&hc->timer);
	conn_free(hc->c);
	if (hc->body != NULL)
		evbuffer_free(hc->body);
	free(hc);
}

/* Report once and free: conn_free() is safe inside the conn's callbacks,
 * and the timer is a one-shot event that libevent no longer touches. */
static void
check_end(struct health_check *hc, bool passed, const char *why)
{
	hc->cb(hc->arg, passed, why);
	check_free(hc);
}

static void
check_verdict(struct health_check *hc)
{
	size_t len = evbuffer_get_length(hc->body);
	const char *body = len > 0 ? (const char *)evbuffer_pullup(hc->body, -1) : "";
	char why[160] = "";
	bool ok;

	if (body == NULL) {
		check_end(hc, false, "out of memory");
		return;
	}
	ok = health_answer_ok(hc->h, hc->status, body, len, why, sizeof(why));
	check_end(hc, ok, why);
}

/* The request: Connection: close, so the server's close ends any body. */
static int
check_send(struct health_check *hc)
{
	const struct config_health *h = hc->h;
	const struct config_server *srv = hc->srv;
	const char *host = h->host;

	if (host == NULL)
		host = srv->tls_server_name != NULL ? srv->tls_server_name :
			srv->pool->tls_server_name != NULL ? srv->pool->tls_server_name :
			srv->address;
	if (h->type == CONFIG_CHECK_SOCKETIO)
		return evbuffer_add_printf(hc->c->out,
			"GET %s%sEIO=4&transport=polling HTTP/1.1\r\n"
			"Host: %s\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\n"
			"Connection: close\r\n\r\n",
			h->path, strchr(h->path, '?') != NULL ? "&" : "?", host) < 0 ? -1 : 0;
	return evbuffer_add_printf(hc->c->out,
		"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\n"
		"Connection: close\r\n\r\n", h->method, h->path, host) < 0 ? -1 : 0;
}

/* Move what body there is; returns true when the verdict can be given. */
static bool
check_body(struct health_check *hc, bool *bad)
{
	size_t have = evbuffer_get_length(hc->body);
	enum http_body_result r;

	*bad = false;
	if (have >= CHECK_BODY_MAX)
		return true;
	r = http_body_move(&hc->body_st, hc->c->in, hc->body, CHECK_BODY_MAX - have);
	if (r == HTTP_BODY_ERROR) {
		*bad = true;
		return true;
	}
	return r == HTTP_BODY_DONE || evbuffer_get_length(hc->body) >= CHECK_BODY_MAX;
}

static void
check_read_cb(struct conn *c, void *arg)
{
	struct health_check *hc = arg;
	bool bad;

	while (!hc->head_done) {
		struct http_head r;
		enum http_status st;
		size_t head_len;
		const char *data;

		st = http_head_find(c->in, &hc->scan, CHECK_HEAD_MAX, &head_len);
		if (st == HTTP_INCOMPLETE)
			return;
		if (st != HTTP_OK) {
			check_end(hc, false, st == HTTP_HEAD_TOO_LARGE ?
				"the answer's head is too large" : "malformed answer head");
			return;
		}
		data = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)head_len);
		memset(&r, 0, sizeof(r));
		if (data == NULL || http_parse_response(&r, data, head_len, hc->hdrs,
				CHECK_MAX_HEADERS, hc->method) != HTTP_OK) {
			check_end(hc, false, data == NULL ? "out of memory" : "malformed answer head");
			return;
		}
		evbuffer_drain(c->in, head_len);
		hc->scan = 0;
		if (r.status < 200)
			continue;	/* 100 Continue, 103 Early Hints */
		hc->status = r.status;
		if (!hc->want_body || r.body == HTTP_BODY_NONE) {
			check_verdict(hc);
			return;
		}
		http_body_init(&hc->body_st, r.body, r.content_length, true);
		hc->head_done = true;
	}
	if (check_body(hc, &bad)) {
		if (bad)
			check_end(hc, false, "malformed answer body");
		else
			check_verdict(hc);
	}
}

static void
check_event_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct health_check *hc = arg;
	char why[256];

	switch (ev) {
	case CONN_CONNECTED:
		hc->connected = true;
		if (hc->h->type == CONFIG_CHECK_TCP) {
			check_end(hc, true, "");
			return;
		}
		if (check_send(hc) < 0) {
			check_end(hc, false, "out of memory");
			return;
		}
		conn_read_enable(c);
		conn_flush(c);
		return;
	case CONN_EOF:
		if (hc->head_done) {
			/* A body delimited by the close, or cut short: judge
			 * what came. */
			check_verdict(hc);
			return;
		}
		check_end(hc, false, "the server closed the connection without an answer");
		return;
	case CONN_ERROR:
		if (hc->connected)
			snprintf(why, sizeof(why), "the connection failed: %s", conn_strerror(c));
		else
			snprintf(why, sizeof(why), "connect(%s) failed: %s", hc->addr, conn_strerror(c));
		check_end(hc, false, why);
		return;
	case CONN_TIMEOUT:
		break;
	}
}

static void
check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct health_check *hc = arg;
	char why[200];

	(void)fd;
	(void)what;
	if (hc->early[0] != '\0') {
		snprintf(why, sizeof(why), "%s", hc->early);
	} else {
		snprintf(why, sizeof(why), "timed out after %u ms %s", hc->h->timeout_ms,
			!hc->connected ? "connecting" : hc->head_done ? "reading the answer's body" :
			"waiting for an answer");
	}
	check_end(hc, false, why);
}

struct health_check *
health_check_start(struct event_base *base, const struct config_server *srv,
		health_check_cb cb, void *arg)
{
	struct health_check *hc = calloc(1, sizeof(*hc));
	struct timeval tv;
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (hc == NULL)
		return NULL;
	hc->srv = srv;
	hc->h = &srv->pool->health;
	hc->cb = cb;
	hc->arg = arg;
	hc->method = strcmp(hc->h->method, "HEAD") == 0 && hc->h->type == CONFIG_CHECK_HTTP ?
		HTTP_M_HEAD : HTTP_M_GET;
	hc->want_body = hc->h->type == CONFIG_CHECK_SOCKETIO || hc->h->body != NULL;
	hc->body = evbuffer_new();
	if (hc->body == NULL) {
		free(hc);
		return NULL;
	}
	evtimer_assign(&hc->timer, base, check_timer_cb, hc);
	(void)server_address(srv, &ss, &sslen);
	util_addr_format((const struct sockaddr *)&ss, hc->addr, sizeof(hc->addr), 1);
	hc->c = sslen > 0 ? conn_connect(base, (const struct sockaddr *)&ss, sslen) : NULL;
	if (hc->c == NULL) {
		/* Reported from the loop like any other failure. */
		snprintf(hc->early, sizeof(hc->early), "connect(%s) failed: %s", hc->addr,
			sslen > 0 ? strerror(errno) : "the server has no address");
		event_active(&hc->timer, EV_TIMEOUT, 0);
		return hc;
	}
	if (srv->pool->tls != NULL) {
		SSL *ssl = tls_client_session_new(srv->pool->tls, srv);

		if (ssl == NULL || conn_tls_connect(hc->c, ssl) < 0) {
			if (ssl != NULL)
				SSL_free(ssl);
			conn_free(hc->c);
			hc->c = NULL;
			snprintf(hc->early, sizeof(hc->early), "out of memory for TLS");
			event_active(&hc->timer, EV_TIMEOUT, 0);
			return hc;
		}
	}
	conn_setcb(hc->c, check_read_cb, NULL, check_event_cb, hc);
	tv.tv_sec = hc->h->timeout_ms / 1000;
	tv.tv_usec = (hc->h->timeout_ms % 1000) * 1000;
	evtimer_add(&hc->timer, &tv);
	return hc;
}

void
health_check_cancel(struct health_check *hc)
{
	if (hc != NULL)
		check_free(hc);
}
