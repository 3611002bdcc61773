/*
 * The answers sluice writes itself instead of a server's: error statuses
 * (session_fail), the 301 of a redirect_https listener and the 429 of a
 * rate limit, each ending its exchange and keeping the connection or
 * closing it. Relayed responses are forward_head.c's and forward_body.c's.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "ratelimit.h"
#include "session-int.h"
#include "tls.h"
#include "util.h"

/* Answer status with a short text body. close: say so and end the session. */
static void
send_error(struct session *s, int status, bool close)
{
	struct evbuffer *out = s->c->out;
	const char *reason = http_reason(status);
	char head[384], sts[96] = "";
	int n, blen;
	unsigned hsts = s->listener->tls != NULL && s->c->ssl != NULL ?
		tls_server_hsts(s->listener->tls) : 0;

	/* Our own answers carry the listener's HSTS policy too. */
	if (hsts > 0)
		snprintf(sts, sizeof(sts), "Strict-Transport-Security: max-age=%u\r\n", hsts);
	/* No usable server: when to come back (as long as health checks
	 * take to bring one back). */
	if (status == 503)
		snprintf(sts + strlen(sts), sizeof(sts) - strlen(sts), "Retry-After: %u\r\n",
			health_retry_after_s(s->ex.route != NULL ? s->ex.route->pool : NULL));
	blen = (int)strlen(reason) + 5;		/* "502 " + reason + "\n" */
	n = snprintf(head, sizeof(head),
		"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s%s\r\n"
		"%d %s\n",
		status, reason, blen, sts, close ? "Connection: close\r\n" : "", status, reason);
	evbuffer_add(out, head, (size_t)n);
	conn_flush(s->c);
	s->ex.bytes_out += (uint64_t)n;
	s->ex.status = status;
	s->ex.resp_head_sent = true;
}

void
session_fail(struct session *s, int status, enum session_term term)
{
	struct exchange *ex = &s->ex;
	bool close;

	if (status == 0 || ex->resp_head_sent) {
		/* Nothing sensible can be said in the middle of a response. */
		session_abort(s, term);
		return;
	}
	/* The connection can go on only if the request was read to its end and
	 * nothing in it was wrong. */
	close = !ex->client_keep_alive || !ex->req_read || s->draining ||
		(s->client_eof && evbuffer_get_length(s->c->in) == 0) ||
		status == 400 || status == 408 || status == 414 || status == 431 ||
		status == 501;
	send_error(s, status, close);
	session_exchange_end(s, term);
	if (close)
		session_close(s, true);
	else
		session_client_read(s);
}

/*
 * A plain listener with redirect_https: 301 to the same host and path over
 * https. The host loses its port; the listener's redirect port is added
 * unless it is 443. A request with a body is not read: the connection
 * closes after the answer. Drops the request head from the input.
 */
void
session_answer_redirect(struct session *s, const struct http_target *t, size_t head_len)
{
	struct exchange *ex = &s->ex;
	const char *host = t->host != NULL ? t->host : "";
	size_t hlen = t->host != NULL ? t->host_len : 0, i = hlen;
	unsigned port = s->listener->redirect_https;
	char portbuf[16] = "";
	struct evbuffer *out = s->c->out;
	bool close = !ex->client_keep_alive || !ex->req_read || s->draining;
	int n;

	/* Strip ":port", but not the colons of an IPv6 literal. */
	while (i > 0 && host[i - 1] >= '0' && host[i - 1] <= '9')
		i--;
	if (i > 0 && i < hlen + 1 && host[i - 1] == ':' && (host[0] != '[' || host[i - 2] == ']'))
		hlen = i - 1;
	if (port != 443)
		snprintf(portbuf, sizeof(portbuf), ":%u", port);
	n = evbuffer_add_printf(out, "HTTP/1.1 301 Moved Permanently\r\nLocation: https://%.*s%s%.*s\r\n"
		"Content-Length: 0\r\n%s\r\n", (int)hlen, host, portbuf, (int)t->path_len, t->path,
		close ? "Connection: close\r\n" : "");
	/* t points into the head: drop it only now. */
	evbuffer_drain(s->c->in, head_len);
	conn_flush(s->c);
	ex->bytes_out += n > 0 ? (uint64_t)n : 0;
	ex->status = 301;
	ex->resp_head_sent = true;
	session_exchange_end(s, TERM_OK);
	if (close)
		session_close(s, true);
	else
		session_client_read(s);
}

/*
 * 429 for the denial rs holds: Retry-After, RateLimit-Policy, RateLimit and
 * a problem+json body. The connection closes after it when the request's
 * body was not read, or always (close, for kind = connections).
 */
void
session_answer_rate_limited(struct session *s, bool close)
{
	struct exchange *ex = &s->ex;
	struct rl_result r = { 0 };
	const struct rl_policy *p = rl_denial(s->rl, &r);
	char head[768], body[384], pol[100], state[100], sts[96] = "";
	unsigned hsts = s->listener->tls != NULL && s->c->ssl != NULL ?
		tls_server_hsts(s->listener->tls) : 0;
	int n, blen;

	UTIL_ASSERT(p != NULL);
	close = close || !ex->client_keep_alive || !ex->req_read || s->draining ||
		(s->client_eof && evbuffer_get_length(s->c->in) == 0);
	if (hsts > 0)
		snprintf(sts, sizeof(sts), "Strict-Transport-Security: max-age=%u\r\n", hsts);
	rl_format_policy(p, pol, sizeof(pol));
	rl_format_state(p, &r, state, sizeof(state));
	/* Policy names are NAME_RULE characters: nothing to escape. */
	blen = snprintf(body, sizeof(body), "{\"type\":\"about:blank\",\"title\":\"Too Many Requests\","
		"\"status\":429,\"detail\":\"rate limit \\\"%s\\\" exceeded\",\"policy\":\"%s\","
		"\"retry_after\":%u}\n", p->name, p->name, r.retry_after_s);
	n = snprintf(head, sizeof(head), "HTTP/1.1 429 Too Many Requests\r\n"
		"Content-Type: application/problem+json\r\nContent-Length: %d\r\n"
		"Retry-After: %u\r\nRateLimit-Policy: %s\r\nRateLimit: %s\r\n%s%s\r\n",
		blen, r.retry_after_s, pol, state, sts, close ? "Connection: close\r\n" : "");
	evbuffer_add(s->c->out, head, (size_t)n);
	evbuffer_add(s->c->out, body, (size_t)blen);
	conn_flush(s->c);
	ex->bytes_out += (uint64_t)(n + blen);
	ex->status = 429;
	ex->resp_head_sent = true;
	ex->rl_denied = p;
	log_debug("s%llu %s: rate limit \"%s\" exceeded", (unsigned long long)s->id, s->addr,
		p->name);
	session_exchange_end(s, TERM_RATE_LIMITED);
	if (close)
		session_close(s, true);
	else
		session_client_read(s);
}
