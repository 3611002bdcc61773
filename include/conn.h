/*
 * A non-blocking stream socket with an input and an output evbuffer: the
 * transport under sessions and upstream connections. Unlike a libevent
 * bufferevent it writes at once (registering for writability only when the
 * kernel pushes back) and reads without asking the kernel how much is there,
 * so a request/response costs no epoll_ctl or ioctl calls in the common case.
 * A conn belongs to one worker thread.
 */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>

struct evbuffer;
struct evbuffer_cb_entry;
struct conn;
struct ssl_st;			/* OpenSSL's SSL: only conn.c and tls*.c look inside */

/* What conn_event_cb reports. */
enum conn_event {
	CONN_CONNECTED = 0,	/* a conn_connect() finished */
	CONN_EOF,		/* the peer closed its side; input holds all it sent */
	CONN_ERROR,		/* connect or I/O failed: conn_error() says why */
	CONN_TIMEOUT,		/* the read timeout passed without a byte */
};

typedef void (*conn_data_cb)(struct conn *c, void *arg);
typedef void (*conn_event_cb)(struct conn *c, enum conn_event ev, void *arg);

/*
 * Owned by whoever created it (a session or an upstream connection).
 * Callbacks run only from the conn's own events, never from inside a conn_*
 * call, so a caller is never re-entered. conn_free() may be called from
 * anywhere, including the conn's own callbacks.
 */
struct conn {
	int fd;
	struct event_base *base;
	struct event rev;
	struct event wev;
	struct evbuffer *in;
	struct evbuffer *out;
	struct evbuffer_cb_entry *in_watch;	/* resumes reading below read_hwm */
	conn_data_cb readcb;		/* new bytes in c->in */
	conn_data_cb drainedcb;		/* backlogged output drained to <= write_low */
	conn_event_cb eventcb;
	void *arg;
	size_t read_hwm;		/* reading pauses while c->in holds this much */
	unsigned read_chunk;		/* bytes asked per read; adapts (conn.c) */
	size_t write_low;
	struct timeval read_timeout;
	bool has_read_timeout;
	bool want_read;			/* the owner's wish */
	bool rev_added;
	bool wev_added;
	bool connecting;
	bool eof;
	bool eof_reported;
	bool shut_pending;		/* shutdown(SHUT_WR) once c->out is empty */
	bool failed;			/* error seen; reported once from wev */
	bool error_reported;
	bool busy;			/* inside one of our callbacks */
	bool dead;			/* conn_free() called while busy */
	bool raw;			/* the owner reads the socket itself: conn_set_raw() */
	int err;			/* errno of the failure */
	/* TLS: the transport reads and writes through ssl when it is set. */
	struct ssl_st *ssl;
	char *tls_reason;		/* why the TLS layer failed, for the error log */
	bool tls_client;		/* we connected: CONN_CONNECTED follows the handshake */
	bool handshaking;
	bool hs_want_write;		/* the handshake waits for writability */
	bool tls_read_wants_write;	/* SSL_read needs the socket writable */
	bool tls_write_wants_read;	/* SSL_write needs the socket readable */
	unsigned long long bytes_read;
	unsigned long long bytes_written;
};

/* Adopt a connected non-blocking socket. NULL on allocation failure (fd left open). */
struct conn *conn_new(struct event_base *base, int fd);

/*
 * Start connecting to sa. NULL when the connect fails at once (errno set);
 * otherwise CONN_CONNECTED or CONN_ERROR follows.
 */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len);

void conn_setcb(struct conn *c, conn_data_cb readcb, conn_data_cb drainedcb,
		conn_event_cb eventcb, void *arg);

/* Close the socket and free, now or when the current callback returns. */
void conn_free(struct conn *c);

/* The owner wants input (or not). Reading also pauses at read_hwm. */
void conn_read_enable(struct conn *c);
void conn_read_disable(struct conn *c);
void conn_set_read_hwm(struct conn *c, size_t hwm);

/* CONN_TIMEOUT after ms without input (0: none). Re-armed by each read. */
void conn_set_read_timeout(struct conn *c, unsigned ms);

/*
 * Write what c->out holds, as far as the kernel takes it now; the rest goes
 * when the socket becomes writable, and drainedcb follows once c->out is at
 * or below write_low. Errors are reported later through eventcb.
 */
void conn_flush(struct conn *c);
void conn_set_write_low(struct conn *c, size_t low);

/*
 * Append len bytes at data to the output and write as conn_flush() does.
 * When nothing is queued on a plain socket the bytes go out with one send()
 * straight from data, and only what the kernel leaves is copied into
 * c->out. Returns -1 only when that copy fails (out of memory).
 */
int conn_write(struct conn *c, const void *data, size_t len) __attribute__((warn_unused_result));

/* Shut the write side once c->out is empty (lingering close). */
void conn_shutdown_write(struct conn *c);

/* errno of the failure reported as CONN_ERROR (EPROTO for a TLS failure). */
int conn_error(const struct conn *c);

/* What failed, in words: the TLS layer's reason, or strerror(). */
const char *conn_strerror(const struct conn *c);

/*
 * Run TLS over c with ssl (which c then owns): conn_tls_accept() for an
 * accepted connection, whose handshake runs as the client's bytes arrive
 * (reads start once the owner enables them); conn_tls_connect() right
 * after conn_connect(), so that CONN_CONNECTED is reported only once the
 * handshake is over. A failed handshake is a CONN_ERROR. Returns 0 or -1.
 */
int conn_tls_accept(struct conn *c, struct ssl_st *ssl) __attribute__((warn_unused_result));
int conn_tls_connect(struct conn *c, struct ssl_st *ssl) __attribute__((warn_unused_result));

/*
 * Raw mode, for a prefix that precedes the stream proper (a PROXY protocol
 * header, which comes before TLS): while it is on, readiness only calls
 * readcb, and the owner reads with conn_peek() and conn_take(), so that no
 * byte past the prefix is taken from the kernel (it may be a TLS
 * ClientHello, for conn_tls_accept() once raw mode is off). The owner must
 * take every byte it peeks unless it stops reading: the read event is
 * level-triggered. Off by default; a conn that never uses it pays nothing.
 */
void conn_set_raw(struct conn *c, bool raw);

/*
 * recv() up to len bytes into buf, leaving them in the socket (conn_peek)
 * or taking them (conn_take; after a peek of at least len bytes, exactly
 * len come). Returns the count, 0 at end of stream, -1 with errno set
 * (EAGAIN: nothing yet).
 */
ssize_t conn_peek(struct conn *c, void *buf, size_t len) __attribute__((warn_unused_result));
ssize_t conn_take(struct conn *c, void *buf, size_t len) __attribute__((warn_unused_result));

#endif
