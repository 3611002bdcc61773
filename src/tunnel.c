/*
 * WebSocket tunnels (RFC 6455): the upgrade check, then the relay a session
 * becomes after 101. Frames are followed header by header so that messages
 * can be counted and masking and ws_max_message enforced; payloads move
 * between evbuffers untouched. Learning a Socket.io sid from the first
 * server frame is the one place a payload is looked at (never copied out).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "config-t.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "session.h"
#include "sticky.h"
#include "tunnel.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

/* Bytes queued towards one side before reading from the other pauses. */
#define TUNNEL_HWM (128 * 1024)
/* A first server frame this small is read whole to learn the sid. */
#define TUNNEL_SID_FRAME_MAX 4096
/* After a violation, how long the peers get to answer our close. */
#define TUNNEL_CLOSE_MS 2000

#define SID(s) (unsigned long long)(s)->id, (s)->addr

static bool
value_is(const struct http_header *hd, const char *lit)
{
	size_t n = strlen(lit);

	return hd->value_len == n && util_eq_lower(hd->value, lit, n);
}

static bool
ws_key_valid(const char *v, size_t len)
{
	/* base64 of 16 bytes: 22 significant characters and "==". */
	if (len != 24 || v[22] != '=' || v[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++) {
		char c = v[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return false;
	}
	/* The last significant character carries 2 bits: its low 4 are 0. */
	return strchr("AQgw", v[21]) != NULL;
}

enum tunnel_upgrade
tunnel_check_upgrade(const struct http_head *h, const char **why)
{
	const struct http_header *key = NULL, *version = NULL;
	bool websocket = false, conn_upgrade = false;

	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http_header *hd = &h->headers[i];

		if (http_header_is(hd, "upgrade") &&
		    http_list_has(hd->value, hd->value_len, "websocket"))
			websocket = true;
		else if (http_header_is(hd, "connection") &&
			 http_list_has(hd->value, hd->value_len, "upgrade"))
			conn_upgrade = true;
		else if (http_header_is(hd, "sec-websocket-key"))
			key = key == NULL ? hd : key;
		else if (http_header_is(hd, "sec-websocket-version"))
			version = version == NULL ? hd : version;
	}
	/* Any request asking for websocket is held to RFC 6455 4.1, so a
	 * half-formed handshake is refused rather than forwarded without its
	 * Upgrade. (h->upgrade is not used: the parser ignores Upgrade on
	 * HTTP/1.0, which here must be refused too.) */
	if (!websocket)
		return TUNNEL_NOT_WEBSOCKET;
	*why = NULL;
	if (h->method != HTTP_M_GET)
		*why = "WebSocket upgrade with a method other than GET";
	else if (h->version_major != 1 || h->version_minor != 1)
		*why = "WebSocket upgrade on HTTP/1.0";
	else if (!conn_upgrade)
		*why = "WebSocket upgrade without Connection: upgrade";
	else if (key == NULL || !ws_key_valid(key->value, key->value_len))
		*why = "Sec-WebSocket-Key missing or not 16 bytes of base64";
	else if (version == NULL || !value_is(version, "13"))
		*why = "Sec-WebSocket-Version is not 13";
	return *why == NULL ? TUNNEL_UPGRADE_OK : TUNNEL_UPGRADE_BAD;
}

static void tunnel_up_read_cb(struct conn *c, void *arg);
static void tunnel_up_drained_cb(struct conn *c, void *arg);
static void tunnel_up_event_cb(struct conn *c, enum conn_event ev, void *arg);

/* Append a close frame with code to out; masked towards the server. */
static void
put_close_frame(struct evbuffer *out, uint16_t code, bool masked)
{
	unsigned char f[8];
	uint64_t r = util_rand64();

	f[0] = 0x88;
	if (!masked) {
		f[1] = 2;
		f[2] = (unsigned char)(code >> 8);
		f[3] = (unsigned char)code;
		evbuffer_add(out, f, 4);
		return;
	}
	f[1] = 0x80 | 2;
	memcpy(f + 2, &r, 4);
	f[6] = (unsigned char)(code >> 8) ^ f[2];
	f[7] = (unsigned char)code ^ f[3];
	evbuffer_add(out, f, 8);
}

/*
 * A frame broke the rules: tell both peers with a close frame where the
 * stream is at a frame boundary (a close frame in the middle of another
 * frame's payload would be garbage), then close.
 */
static void
tunnel_violation(struct session *s, uint16_t code, enum session_term term, const char *why)
{
	struct exchange *ex = &s->ex;

	log_info("s%llu %s: WebSocket %s: closing with %u", SID(s), why, code);
	if (ex->s2c.state == WS_HEADER)
		put_close_frame(s->c->out, code, false);
	if (ex->c2s.state == WS_HEADER && ex->up != NULL)
		put_close_frame(ex->up->c->out, code, true);
	ex->c2s.state = ex->s2c.state = WS_BROKEN;
	/*
	 * Close gracefully: the close frames, then our FIN, then discard what
	 * either side still sends until it closes too (or TUNNEL_CLOSE_MS).
	 * Closing at once, with their bytes unread, would reset the
	 * connections and the peers would see 1006 instead of the code.
	 */
	ex->ws_closing = true;
	ex->ws_close_term = term;
	conn_flush(s->c);
	conn_shutdown_write(s->c);
	conn_read_enable(s->c);
	if (ex->up != NULL) {
		conn_flush(ex->up->c);
		conn_shutdown_write(ex->up->c);
		conn_read_enable(ex->up->c);
	}
	s->timer_kind = TIMER_TUNNEL_IDLE;
	session_timer_rearm(s, TUNNEL_CLOSE_MS);
}

/* Learn the Engine.IO sid from the first frame of a direct websocket
 * session, whose payload is the open packet. */
static void
learn_sid(struct session *s, const unsigned char *payload, size_t len)
{
	struct exchange *ex = &s->ex;
	char sid[STICKY_SID_MAX + 1];
	unsigned ttl;

	ex->learn_sid_ws = false;
	if (!sticky_parse_open_packet((const char *)payload, len, sid, &ttl))
		return;
	if (s->w->sids->ops->put(s->w->sids->st, sid, strlen(sid), ex->server->pool->name,
			ex->server->name, ttl, util_now_us() / 1000) < 0)
		log_warn("s%llu %s: sid table full: Socket.io session %s not remembered", SID(s),
			sid);
}

/*
 * Move what src holds to dst, frame by frame. Returns false when the
 * session ended inside (a violation).
 */
/* Tunnel bytes count in the exchange's bytes_in and bytes_out. */
static inline void
count_bytes(struct session *s, const struct ws_dir *d, size_t n)
{
	if (d->from_client)
		s->ex.bytes_in += n;
	else
		s->ex.bytes_out += n;
}

/*
 * Walk the frames src holds, as far as dst has room, checking each header in
 * place, then move them all with one evbuffer_remove_buffer(): when that is
 * all src holds, its chains change hands without a byte copied. A violation
 * first moves the frames before it, so that both streams stand at a frame
 * boundary for the close frames. Returns false when the session ended.
 */
static bool
relay_frames(struct session *s, struct ws_dir *d, struct conn *src, struct conn *dst,
		bool *moved)
{
	struct exchange *ex = &s->ex;
	uint64_t max = s->cfg->limits.ws_max_message;
	size_t avail = evbuffer_get_length(src->in);
	size_t olen = evbuffer_get_length(dst->out);
	size_t room = olen < TUNNEL_HWM ? TUNNEL_HWM - olen : 0;
	size_t take = 0;
	const char *why = NULL;
	const struct rl_policy *which = NULL;
	uint16_t code = 1002;

	while (d->state != WS_BROKEN && take < avail && take < room) {
		unsigned char h[14];
		struct evbuffer_ptr at;
		size_t hlen, left = avail - take, n;
		uint64_t plen;
		unsigned opcode;
		bool fin, masked;

		if (d->state == WS_PAYLOAD && d->drop_frame) {
			/* take is 0 here: what came before went out first. */
			n = left < d->remaining ? left : (size_t)d->remaining;
			evbuffer_drain(src->in, n);
			count_bytes(s, d, n);
			avail -= n;
			d->remaining -= n;
			if (d->remaining == 0) {
				d->state = WS_HEADER;
				d->drop_frame = false;
			}
			*moved = true;
			continue;
		}
		if (d->state == WS_PAYLOAD) {
			n = left < d->remaining ? left : (size_t)d->remaining;
			if (n > room - take)
				n = room - take;
			take += n;
			d->remaining -= n;
			if (d->remaining == 0)
				d->state = WS_HEADER;
			continue;
		}
		if (left < 2)
			break;
		evbuffer_ptr_set(src->in, &at, take, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(src->in, &at, h, left < sizeof(h) ? left : sizeof(h));
		fin = h[0] & 0x80;
		opcode = h[0] & 0x0f;
		masked = h[1] & 0x80;
		plen = h[1] & 0x7f;
		hlen = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) + (masked ? 4 : 0);
		if (left < hlen)
			break;
		if (plen == 126) {
			plen = (uint64_t)h[2] << 8 | h[3];
		} else if (plen == 127) {
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = plen << 8 | h[2 + i];
			if (plen >> 63) {
				why = "frame length with the top bit set";
				break;
			}
		}
		if (masked != d->from_client) {
			why = d->from_client ? "unmasked frame from the client" :
				"masked frame from the server";
			break;
		}
		if (opcode >= 8) {
			if (opcode > 10 || !fin || plen > 125) {
				why = "bad control frame";
				break;
			}
		} else if (opcode <= 2) {
			if ((opcode == 0) != d->in_message) {
				why = opcode == 0 ? "continuation frame outside a message" :
					"new message inside a fragmented one";
				break;
			}
			if ((opcode == 0 ? d->message + plen : plen) > max) {
				why = "message over ws_max_message";
				code = 1009;
				break;
			}
			if (!d->from_client && ex->learn_sid_ws && opcode == 1) {
				const unsigned char *p;

				if (plen <= TUNNEL_SID_FRAME_MAX && left < hlen + plen)
					break;	/* wait for the whole open packet */
				if (plen <= TUNNEL_SID_FRAME_MAX &&
				    (p = evbuffer_pullup(src->in,
						(ev_ssize_t)(take + hlen + plen))) != NULL)
					learn_sid(s, p + take + hlen, (size_t)plen);
				ex->learn_sid_ws = false;
			}
			if (opcode != 0)
				d->dropping = false;
			if (opcode != 0 && d->from_client && s->rl != NULL &&
			    (ex->route->rl_kinds & RL_KINDS_BIT(RL_KIND_MESSAGES)) &&
			    !rl_message(s->rl, ex->route, util_now_us(), &which)) {
				ex->rl_denied = which;
				if (which->on_exceed == RL_EXCEED_CLOSE) {
					why = "message rate limit exceeded";
					code = 1008;
					break;
				}
				d->dropping = true;
				d->dropped++;
			}
			d->message = opcode == 0 ? d->message + plen : plen;
			d->in_message = !fin;
			if (d->dropping) {
				/* Send on what came before, then skip this frame:
				 * its header now, its payload as it arrives. */
				if (take > 0) {
					evbuffer_remove_buffer(src->in, dst->out, take);
					count_bytes(s, d, take);
					avail -= take;
					take = 0;
				}
				evbuffer_drain(src->in, hlen);
				count_bytes(s, d, hlen);
				avail -= hlen;
				d->remaining = plen;
				d->state = plen > 0 ? WS_PAYLOAD : WS_HEADER;
				d->drop_frame = plen > 0;
				if (fin)
					d->dropping = false;
				*moved = true;
				continue;
			}
			if (fin)
				d->messages++;
		} else {
			why = "reserved opcode";
			break;
		}
		take += hlen;
		d->remaining = plen;
		d->state = plen > 0 ? WS_PAYLOAD : WS_HEADER;
	}
	if (take > 0) {
		evbuffer_remove_buffer(src->in, dst->out, take);
		count_bytes(s, d, take);
		*moved = true;
	}
	if (why != NULL) {
		tunnel_violation(s, code, code == 1009 ? TERM_WS_TOO_BIG :
			code == 1008 ? TERM_RATE_LIMITED : TERM_WS_PROTOCOL, why);
		return false;
	}
	return true;
}

/*
 * Relay one direction. Reading from src pauses only while dst holds a
 * backlog the kernel would not take: a flush that empties dst brings no
 * drained callback, so the loop goes on rather than wait for one.
 */
static bool
relay(struct session *s, struct ws_dir *d, struct conn *src, struct conn *dst)
{
	bool any = false;

	if (s->ex.ws_closing) {
		/* Closing after a violation: nothing more goes through. */
		evbuffer_drain(src->in, evbuffer_get_length(src->in));
		return false;
	}

	for (;;) {
		bool moved = false;

		if (!relay_frames(s, d, src, dst, &moved))
			return false;
		if (!moved)
			break;
		any = true;
		conn_flush(dst);
		if (evbuffer_get_length(dst->out) >= TUNNEL_HWM)
			break;
	}
	if (any)
		session_progress(s);
	if (evbuffer_get_length(dst->out) >= TUNNEL_HWM)
		conn_read_disable(src);
	else
		conn_read_enable(src);
	/* A side that closed its write side, and all it sent is passed on:
	 * pass the half-close on too. */
	if (d->eof && evbuffer_get_length(src->in) == 0 && !d->shut) {
		d->shut = true;
		conn_shutdown_write(dst);
	}
	return true;
}

static void
relay_c2s(struct session *s)
{
	struct exchange *ex = &s->ex;

	if (ex->up != NULL)
		relay(s, &ex->c2s, s->c, ex->up->c);
}

static void
relay_s2c(struct session *s)
{
	struct exchange *ex = &s->ex;

	if (ex->up != NULL)
		relay(s, &ex->s2c, ex->up->c, s->c);
}

/* Both sides closed their write side: the tunnel ends normally. */
static void
maybe_done(struct session *s)
{
	struct exchange *ex = &s->ex;

	if (!ex->active)
		return;
	if (ex->ws_closing) {
		if (ex->c2s.eof && ex->s2c.eof)
			session_end_tunnel(s, ex->ws_close_term, false);
		return;
	}
	if (ex->c2s.shut && ex->s2c.shut)
		session_end_tunnel(s, TERM_OK, false);
}

void
tunnel_start(struct session *s)
{
	struct exchange *ex = &s->ex;
	struct upconn *up = ex->up;

	ex->tunnel = true;
	ex->phase = PHASE_TUNNEL;
	/* Kept for a retry until now; a tunnel never sends another head, and
	 * an idle tunnel should hold as little as possible. */
	free(s->head_buf);
	s->head_buf = NULL;
	s->head_cap = 0;
	ex->c2s.from_client = true;
	ex->s2c.from_client = false;
	ex->client_keep_alive = false;
	/* Both sides may now send at any time. */
	conn_setcb(up->c, tunnel_up_read_cb, tunnel_up_drained_cb, tunnel_up_event_cb, s);
	conn_set_write_low(up->c, TUNNEL_HWM / 4);
	conn_set_write_low(s->c, TUNNEL_HWM / 4);
	conn_read_enable(up->c);
	conn_read_enable(s->c);
	session_timer_set(s, TIMER_TUNNEL_IDLE);
	relay_s2c(s);
	if (!s->dead && s->ex.tunnel)
		relay_c2s(s);
}

void
tunnel_client_readable(struct session *s)
{
	relay_c2s(s);
}

void
tunnel_client_drained(struct session *s)
{
	struct exchange *ex = &s->ex;

	if (ex->up == NULL)
		return;
	conn_read_enable(ex->up->c);
	relay_s2c(s);
}

void
tunnel_client_eof(struct session *s)
{
	s->ex.c2s.eof = true;
	relay_c2s(s);
	if (!s->dead && s->ex.tunnel)
		maybe_done(s);
}

void
tunnel_timeout(struct session *s)
{
	uint64_t idle_ms = (util_now_us() - s->progress_us) / 1000;
	unsigned ms = s->cfg->timeouts.tunnel_idle_ms;

	if (s->ex.ws_closing) {
		session_end_tunnel(s, s->ex.ws_close_term, false);
		return;
	}
	if (idle_ms + 1 < ms) {
		session_timer_rearm(s, ms - (unsigned)idle_ms);
		return;
	}
	log_info("s%llu %s: WebSocket idle for %u ms, closing", SID(s), ms);
	session_end_tunnel(s, TERM_TUNNEL_IDLE, false);
}

static void
tunnel_up_read_cb(struct conn *c, void *arg)
{
	(void)c;
	relay_s2c(arg);
}

static void
tunnel_up_drained_cb(struct conn *c, void *arg)
{
	struct session *s = arg;

	(void)c;
	conn_read_enable(s->c);
	relay_c2s(s);
}

static void
tunnel_up_event_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;

	if (ev == CONN_EOF) {
		s->ex.s2c.eof = true;
		relay_s2c(s);
		if (!s->dead && s->ex.tunnel)
			maybe_done(s);
		return;
	}
	if (ev == CONN_ERROR) {
		log_info("s%llu %s: WebSocket server connection failed: %s", SID(s),
			conn_strerror(c));
		session_abort(s, s->ex.ws_closing ? s->ex.ws_close_term : TERM_UPSTREAM_CLOSED);
	}
}
