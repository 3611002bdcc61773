/*
 * WebSocket (RFC 6455): checking an upgrade request, and the tunnel a
 * session becomes after 101 Switching Protocols. The tunnel relays bytes
 * both ways between the client and server conns with backpressure, reading
 * frame headers only: it counts messages, enforces masking and
 * ws_max_message, and never copies or changes a payload.
 */
#ifndef SLUICE_TUNNEL_H
#define SLUICE_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

struct http_head;
struct session;

/* Frame-header state of one direction of a tunnel. */
enum ws_state {
	WS_HEADER = 0,		/* at a frame boundary, waiting for a header */
	WS_PAYLOAD,		/* moving the payload of the current frame */
	WS_BROKEN,		/* stopped after a violation: nothing more moves */
};

struct ws_dir {
	enum ws_state state;
	bool from_client;	/* frames must be masked (client) or not (server) */
	bool in_message;	/* a fragmented data message is open */
	bool dropping;		/* the open message is dropped (a messages limit, drop) */
	bool drop_frame;	/* the current frame's payload is dropped, not relayed */
	bool eof;		/* the source closed its side */
	bool shut;		/* ...and that was passed on to the destination */
	uint64_t remaining;	/* payload bytes left in the current frame */
	uint64_t message;	/* payload bytes of the open data message so far */
	uint64_t messages;	/* complete data messages */
	uint64_t dropped;	/* data messages dropped by a messages limit */
};

/* What is wrong with an upgrade request; NULL when it is a valid one. */
enum tunnel_upgrade {
	TUNNEL_NOT_WEBSOCKET = 0,	/* no Upgrade: websocket: plain HTTP */
	TUNNEL_UPGRADE_OK,
	TUNNEL_UPGRADE_BAD,		/* says websocket but breaks RFC 6455 4.1: 400 */
};

/*
 * Classify a parsed request head. On TUNNEL_UPGRADE_BAD, *why says what was
 * wrong (static text).
 */
enum tunnel_upgrade tunnel_check_upgrade(const struct http_head *h, const char **why);

/*
 * The server answered 101 to a WebSocket upgrade and the 101 head is on its
 * way to the client: from now on the session relays frames. Bytes the server
 * sent after its head are relayed at once.
 */
void tunnel_start(struct session *s);

/* Client-side events, forwarded by session.c and session_head.c while the
 * session tunnels. */
void tunnel_client_readable(struct session *s);
void tunnel_client_drained(struct session *s);
void tunnel_client_eof(struct session *s);

/* tunnel_idle passed, or the idle timer fired early (re-armed inside). */
void tunnel_timeout(struct session *s);

#endif
