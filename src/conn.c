/*
 * The socket transport: non-blocking reads into and writes from evbuffers,
 * readiness from the worker's event_base. Writes go out at once and only a
 * backlog registers for writability; reads fill reserved evbuffer space with
 * recv(). With an SSL attached, the same paths go through SSL_read() and
 * SSL_write() on the socket, after a handshake driven by the same events.
 * Knows nothing of HTTP.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/err.h>

#include "conn.h"
#include "tls.h"
#include "util.h"

/*
 * Bytes asked of the kernel per read: the size adapts between the two
 * bounds, doubling after a read that filled it and halving after one that
 * used little. Small peers (heads, chat messages, idle WebSockets) then cost
 * small evbuffer chains, and a bulk transfer still reads 64 KiB at a time.
 * evbuffer rounds a chain up to a power of two including its own header,
 * hence the 64 bytes left for it. The smallest chain is a 1 KiB block:
 * glibc recycles blocks up to that size through its per-thread cache, so
 * the chain a request or response head is read into and freed after costs
 * a few dozen instructions instead of a trip through the arena.
 */
#define CONN_READ_MIN (1024 - 64)
#define CONN_READ_MAX (64 * 1024 - 64)
/* At most this much per readiness event, so that one busy peer does not
 * starve the others on the loop. */
#define CONN_READ_BURST (256 * 1024)
/* Chains handed to one sendmsg(): a head and a body part or two. */
#define CONN_WRITE_IOV 16
/* Plaintext per SSL_write(): one full TLS record. */
#define CONN_TLS_RECORD 16384

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

static void
conn_destroy(struct conn *c)
{
	UTIL_ASSERT(!c->busy);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	free(c->tls_reason);
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	free(c);
}

/* Reading stopped at read_hwm resumes once the owner takes bytes out. */
static void
in_watch_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	if (info->n_deleted == 0 || evbuffer_get_length(buf) >= c->read_hwm)
		return;
	evbuffer_cb_clear_flags(buf, c->in_watch, EVBUFFER_CB_ENABLED);
	if (c->want_read && !c->rev_added && !c->eof && !c->failed && !c->connecting && c->fd >= 0) {
		event_add(&c->rev, c->has_read_timeout ? &c->read_timeout : NULL);
		c->rev_added = true;
	}
}

/* Add or remove the read event to match what the owner wants and the room. */
static void
conn_update_read(struct conn *c)
{
	bool full = evbuffer_get_length(c->in) >= c->read_hwm && !c->handshaking &&
		!c->tls_write_wants_read;
	bool want = (c->want_read || c->handshaking || c->tls_write_wants_read) &&
		!c->eof && !c->failed && !c->connecting && c->fd >= 0;

	if (want && !full) {
		if (!c->rev_added) {
			event_add(&c->rev, c->has_read_timeout ? &c->read_timeout : NULL);
			c->rev_added = true;
		}
		return;
	}
	if (c->rev_added) {
		event_del(&c->rev);
		c->rev_added = false;
	}
	if (want && full) {
		/* Made on first need: most conns never fill their input, and an
		 * idle WebSocket should not carry one. */
		if (c->in_watch == NULL)
			c->in_watch = evbuffer_add_cb(c->in, in_watch_cb, c);
		if (c->in_watch != NULL)
			evbuffer_cb_set_flags(c->in, c->in_watch, EVBUFFER_CB_ENABLED);
	}
}

static struct conn *
conn_alloc(struct event_base *base, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->base = base;
	c->read_hwm = SIZE_MAX;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (c->in == NULL || c->out == NULL)
		goto fail;
	event_assign(&c->rev, base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	event_assign(&c->wev, base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	return c;
fail:
	conn_destroy(c);
	return NULL;
}

struct conn *
conn_new(struct event_base *base, int fd)
{
	return conn_alloc(base, fd);
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len)
{
	struct conn *c;
	int fd, one = 1, err;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	/* Heads and bodies go out in separate writes; Nagle would hold the
	 * second behind the first's ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		err = errno;
		close(fd);
		errno = err;
		return NULL;
	}
	c = conn_alloc(base, fd);
	if (c == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	/* Even a connect that finished at once is reported from the loop, so
	 * the caller is never called back from inside this function. */
	c->connecting = true;
	event_add(&c->wev, NULL);
	c->wev_added = true;
	return c;
}

void
conn_setcb(struct conn *c, conn_data_cb readcb, conn_data_cb drainedcb,
		conn_event_cb eventcb, void *arg)
{
	c->readcb = readcb;
	c->drainedcb = drainedcb;
	c->eventcb = eventcb;
	c->arg = arg;
}

void
conn_free(struct conn *c)
{
	if (c == NULL || c->fd < 0)
		return;
	/*
	 * OpenSSL makes the session of an SSL freed without a close_notify
	 * sent unresumable. Send one on a clean close; after a transport
	 * error (a reset once the exchange was over, say) only mark it sent:
	 * the session is as good as it was. A TLS failure keeps OpenSSL's
	 * verdict.
	 */
	if (c->ssl != NULL && !c->handshaking && c->tls_reason == NULL) {
		ERR_clear_error();
		if (!c->failed)
			(void)SSL_shutdown(c->ssl);
		else
			SSL_set_shutdown(c->ssl, SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
	}
	event_del(&c->rev);
	event_del(&c->wev);
	close(c->fd);
	c->fd = -1;
	c->rev_added = c->wev_added = false;
	if (c->busy)
		c->dead = true;		/* freed when the callback returns */
	else
		conn_destroy(c);
}

void
conn_read_enable(struct conn *c)
{
	c->want_read = true;
	conn_update_read(c);
}

void
conn_read_disable(struct conn *c)
{
	c->want_read = false;
	conn_update_read(c);
}

void
conn_set_read_hwm(struct conn *c, size_t hwm)
{
	c->read_hwm = hwm ? hwm : SIZE_MAX;
	conn_update_read(c);
}

void
conn_set_read_timeout(struct conn *c, unsigned ms)
{
	c->has_read_timeout = ms > 0;
	c->read_timeout.tv_sec = ms / 1000;
	c->read_timeout.tv_usec = (ms % 1000) * 1000;
	if (c->rev_added) {
		event_del(&c->rev);
		c->rev_added = false;
	}
	conn_update_read(c);
}

void
conn_set_write_low(struct conn *c, size_t low)
{
	c->write_low = low;
}

int
conn_error(const struct conn *c)
{
	return c->err;
}

const char *
conn_strerror(const struct conn *c)
{
	if (c->tls_reason != NULL)
		return c->tls_reason;
	return strerror(c->err);
}

static void
tls_attach(struct conn *c, SSL *ssl)
{
	c->ssl = ssl;
	/* Writes come from evbuffer chains that a pull-up may move, and one
	 * record at a time is written as far as it goes. */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A peer that closes without close_notify ends the stream like a
	 * TCP close: HTTP framing, not TLS, says whether that was complete. */
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	c->handshaking = true;
}

int
conn_tls_accept(struct conn *c, SSL *ssl)
{
	if (c->ssl != NULL || SSL_set_fd(ssl, c->fd) != 1)
		return -1;
	tls_attach(c, ssl);
	conn_update_read(c);
	return 0;
}

int
conn_tls_connect(struct conn *c, SSL *ssl)
{
	if (c->ssl != NULL || SSL_set_fd(ssl, c->fd) != 1)
		return -1;
	SSL_set_connect_state(ssl);
	tls_attach(c, ssl);
	c->tls_client = true;
	return 0;
}

void
conn_set_raw(struct conn *c, bool raw)
{
	c->raw = raw;
	conn_update_read(c);
}

static ssize_t
raw_recv(struct conn *c, void *buf, size_t len, int flags)
{
	ssize_t n;

	do
		n = recv(c->fd, buf, len, flags);
	while (n < 0 && errno == EINTR);
	if (n > 0 && flags == 0)
		c->bytes_read += (unsigned long long)n;
	return n;
}

ssize_t
conn_peek(struct conn *c, void *buf, size_t len)
{
	return raw_recv(c, buf, len, MSG_PEEK);
}

ssize_t
conn_take(struct conn *c, void *buf, size_t len)
{
	return raw_recv(c, buf, len, 0);
}

/* Note why the TLS layer failed; the conn is failed from now on. */
static void
tls_fail(struct conn *c, int ssl_error)
{
	char buf[256];

	tls_error_reason(c->ssl, ssl_error, buf, sizeof(buf));
	free(c->tls_reason);
	c->tls_reason = strdup(buf);
	c->failed = true;
	c->err = EPROTO;
}

/* Watch for writability exactly when need says so. */
static void
wev_want(struct conn *c, bool need)
{
	if (need && !c->wev_added) {
		event_add(&c->wev, NULL);
		c->wev_added = true;
	} else if (!need && c->wev_added) {
		event_del(&c->wev);
		c->wev_added = false;
	}
}

/* One step of the handshake; c->handshaking clears when it is over. */
static void
tls_handshake(struct conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		c->hs_want_write = false;
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->hs_want_write = e == SSL_ERROR_WANT_WRITE;
		wev_want(c, c->hs_want_write);
		conn_update_read(c);
		return;
	}
	tls_fail(c, e);
}

/* Write through the TLS layer, a record at most per call. */
static void
tls_flush(struct conn *c, bool *need_wev)
{
	while (evbuffer_get_length(c->out) > 0) {
		size_t total = evbuffer_get_length(c->out);
		struct evbuffer_iovec v;
		size_t len;
		int r, e;

		/* Heads and small bodies sit in separate chains: one record
		 * (and one send) for all of them. */
		if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1)
			break;
		if (v.iov_len < CONN_TLS_RECORD && total > v.iov_len) {
			len = total < CONN_TLS_RECORD ? total : CONN_TLS_RECORD;
			v.iov_base = evbuffer_pullup(c->out, (ev_ssize_t)len);
			v.iov_len = len;
			if (v.iov_base == NULL) {
				c->failed = true;
				c->err = ENOMEM;
				return;
			}
		}
		len = v.iov_len < CONN_TLS_RECORD ? v.iov_len : CONN_TLS_RECORD;
		ERR_clear_error();
		r = SSL_write(c->ssl, v.iov_base, (int)len);
		if (r > 0) {
			evbuffer_drain(c->out, (size_t)r);
			c->bytes_written += (unsigned long long)r;
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE) {
			*need_wev = true;
		} else if (e == SSL_ERROR_WANT_READ) {
			c->tls_write_wants_read = true;
			conn_update_read(c);
		} else {
			tls_fail(c, e);
		}
		return;
	}
}

/* Send our close_notify (TLS) and shut the socket's write side. */
static void
shut_now(struct conn *c)
{
	if (c->ssl != NULL && !c->handshaking && !c->failed) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
	}
	shutdown(c->fd, SHUT_WR);
}

/*
 * One send of up to CONN_WRITE_IOV chains of out. send() and sendmsg() take
 * the socket path in the kernel; writev() goes through the file layer first
 * (position lock, iterator set-up), a measurable share of a small exchange.
 */
static ssize_t
send_some(struct conn *c, size_t *asked)
{
	struct evbuffer_iovec v[CONN_WRITE_IOV];
	int nv = evbuffer_peek(c->out, -1, NULL, v, CONN_WRITE_IOV);
	ssize_t n;

	if (nv > CONN_WRITE_IOV)
		nv = CONN_WRITE_IOV;
	*asked = 0;
	for (int i = 0; i < nv; i++)
		*asked += v[i].iov_len;
	if (nv == 1) {
		n = send(c->fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
	} else {
		struct msghdr msg = {
			.msg_iov = (struct iovec *)v,
			.msg_iovlen = (size_t)nv,
		};

		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	}
	if (n > 0)
		evbuffer_drain(c->out, (size_t)n);
	return n;
}

/* Write until the buffer is empty or the kernel pushes back. */
static void
flush_now(struct conn *c)
{
	if (c->ssl != NULL) {
		bool need_wev = false;

		/* Nothing goes out before the handshake is over. */
		if (c->handshaking)
			return;
		tls_flush(c, &need_wev);
		wev_want(c, need_wev && !c->failed);
		if (c->shut_pending && evbuffer_get_length(c->out) == 0 && !c->failed) {
			shut_now(c);
			c->shut_pending = false;
		}
		return;
	}
	while (evbuffer_get_length(c->out) > 0) {
		size_t asked;
		ssize_t n = send_some(c, &asked);

		if (n > 0) {
			c->bytes_written += (unsigned long long)n;
			/* A short write means the socket buffer is full: the
			 * next call would only say EAGAIN. */
			if ((size_t)n < asked)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->failed = true;
		c->err = n < 0 ? errno : EPIPE;
		break;
	}
	if (evbuffer_get_length(c->out) > 0 && !c->failed) {
		if (!c->wev_added) {
			event_add(&c->wev, NULL);
			c->wev_added = true;
		}
	} else if (c->wev_added) {
		event_del(&c->wev);
		c->wev_added = false;
	}
	if (c->shut_pending && evbuffer_get_length(c->out) == 0 && !c->failed) {
		shut_now(c);
		c->shut_pending = false;
	}
}

void
conn_flush(struct conn *c)
{
	if (c->fd < 0 || c->connecting || c->failed)
		return;
	flush_now(c);
	/* Report a failure from the loop, never from inside the caller. */
	if (c->failed)
		event_active(&c->wev, EV_WRITE, 0);
}

int
conn_write(struct conn *c, const void *data, size_t len)
{
	ssize_t n;

	/* Anything else (TLS, a backlog, a connect in progress) keeps the
	 * order and the paths of the buffer. */
	if (c->ssl != NULL || c->fd < 0 || c->connecting || c->failed || c->shut_pending ||
	    c->wev_added || len == 0 || evbuffer_get_length(c->out) > 0) {
		if (evbuffer_add(c->out, data, len) < 0)
			return -1;
		conn_flush(c);
		return 0;
	}
	do
		n = send(c->fd, data, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		c->failed = true;
		c->err = errno;
		/* Reported from the loop, as conn_flush() does. */
		event_active(&c->wev, EV_WRITE, 0);
		return 0;
	}
	if (n < 0)
		n = 0;
	c->bytes_written += (unsigned long long)n;
	if ((size_t)n == len)
		return 0;
	/* The kernel took part: the rest waits for writability. */
	if (evbuffer_add(c->out, (const char *)data + n, len - (size_t)n) < 0)
		return -1;
	event_add(&c->wev, NULL);
	c->wev_added = true;
	return 0;
}

void
conn_shutdown_write(struct conn *c)
{
	if (c->fd < 0)
		return;
	if (evbuffer_get_length(c->out) == 0 && !c->handshaking) {
		shut_now(c);
		return;
	}
	c->shut_pending = true;
}

/* Report a failure to the owner once. Called from our own callbacks. */
static void
report_error(struct conn *c)
{
	if (c->error_reported)
		return;
	c->error_reported = true;
	/* A failed socket stays writable (or in error) for ever: watching it
	 * would spin the loop until the owner frees the conn. */
	if (c->wev_added) {
		event_del(&c->wev);
		c->wev_added = false;
	}
	conn_update_read(c);
	if (c->eventcb != NULL)
		c->eventcb(c, CONN_ERROR, c->arg);
}

/* Grow the read size after a read that filled it, shrink it after a small one. */
static void
adapt_chunk(struct conn *c, size_t n, size_t chunk)
{
	if (n >= chunk && chunk < CONN_READ_MAX)
		c->read_chunk = (unsigned)(chunk * 2 + 64 > CONN_READ_MAX ?
			CONN_READ_MAX : chunk * 2 + 64);
	else if (n < chunk / 4 && chunk > CONN_READ_MIN)
		c->read_chunk = (unsigned)((chunk + 64) / 2 - 64);
}

/* Read from the socket into c->in; returns the bytes read. */
static size_t
sock_read(struct conn *c)
{
	size_t total = 0;

	while (total < CONN_READ_BURST && evbuffer_get_length(c->in) < c->read_hwm) {
		struct evbuffer_iovec v[2];
		size_t asked = 0;
		ssize_t n;
		size_t chunk = c->read_chunk ? c->read_chunk : CONN_READ_MIN;
		int nv = evbuffer_reserve_space(c->in, (ev_ssize_t)chunk, v, 2);

		if (nv <= 0) {
			c->failed = true;
			c->err = ENOMEM;
			break;
		}
		for (int i = 0; i < nv; i++)
			asked += v[i].iov_len;
		if (nv == 1) {
			n = recv(c->fd, v[0].iov_base, v[0].iov_len, 0);
		} else {
			struct msghdr msg = {
				.msg_iov = (struct iovec *)v,
				.msg_iovlen = (size_t)nv,
			};

			n = recvmsg(c->fd, &msg, 0);
		}
		if (n > 0) {
			size_t left = (size_t)n;

			for (int i = 0; i < nv; i++) {
				if (v[i].iov_len > left)
					v[i].iov_len = left;
				left -= v[i].iov_len;
			}
			evbuffer_commit_space(c->in, v, nv);
			total += (size_t)n;
			adapt_chunk(c, (size_t)n, chunk);
			/* Less than asked: the socket is empty for now. */
			if ((size_t)n < asked)
				break;
			continue;
		}
		if (n == 0) {
			c->eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		c->failed = true;
		c->err = errno;
		break;
	}
	return total;
}

/*
 * Read through the TLS layer into c->in. A record at most comes out of each
 * SSL_read(), and a short one says nothing of the socket: read until the
 * layer wants more bytes from the kernel.
 */
static size_t
tls_read(struct conn *c)
{
	size_t total = 0;

	while (total < CONN_READ_BURST && evbuffer_get_length(c->in) < c->read_hwm) {
		struct evbuffer_iovec v[2];
		size_t chunk = c->read_chunk ? c->read_chunk : CONN_READ_MIN;
		int nv = evbuffer_reserve_space(c->in, (ev_ssize_t)chunk, v, 2);
		int r, e;

		if (nv <= 0) {
			c->failed = true;
			c->err = ENOMEM;
			break;
		}
		ERR_clear_error();
		r = SSL_read(c->ssl, v[0].iov_base, v[0].iov_len > INT32_MAX ? INT32_MAX :
			(int)v[0].iov_len);
		if (r > 0) {
			v[0].iov_len = (size_t)r;
			evbuffer_commit_space(c->in, v, 1);
			total += (size_t)r;
			adapt_chunk(c, (size_t)r, chunk);
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			c->eof = true;
			break;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			c->tls_read_wants_write = true;
			wev_want(c, true);
			break;
		}
		if (e == SSL_ERROR_SYSCALL && errno != 0) {
			c->failed = true;
			c->err = errno;
			break;
		}
		tls_fail(c, e);
		break;
	}
	return total;
}

/*
 * One step of a handshake from either event. Returns true when it is over
 * and the caller may go on with the conn; false when it waits, failed (and
 * was reported) or the owner freed the conn.
 */
static bool
handshake_step(struct conn *c)
{
	tls_handshake(c);
	if (c->failed) {
		report_error(c);
		return false;
	}
	if (c->handshaking)
		return false;
	wev_want(c, false);
	if (c->tls_client && c->eventcb != NULL) {
		c->eventcb(c, CONN_CONNECTED, c->arg);
		if (c->dead)
			return false;
	}
	conn_update_read(c);
	flush_now(c);
	if (c->failed) {
		report_error(c);
		return false;
	}
	return true;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t total;

	(void)fd;
	util_clock_hold();
	c->busy = true;
	if (what & EV_TIMEOUT) {
		if (c->eventcb != NULL)
			c->eventcb(c, CONN_TIMEOUT, c->arg);
		goto out;
	}
	if (c->raw) {
		/* The owner reads a prefix itself (conn_set_raw). */
		if (c->readcb != NULL)
			c->readcb(c, c->arg);
		goto out;
	}
	if (c->ssl != NULL) {
		if (c->tls_write_wants_read) {
			c->tls_write_wants_read = false;
			flush_now(c);
			if (c->failed) {
				report_error(c);
				goto out;
			}
		}
		if (c->handshaking && !handshake_step(c))
			goto out;
		total = tls_read(c);
	} else {
		total = sock_read(c);
	}
	c->bytes_read += total;
	if (total > 0 && c->readcb != NULL) {
		c->readcb(c, c->arg);
		if (c->dead)
			goto out;
	}
	if (c->failed) {
		report_error(c);
		goto out;
	}
	conn_update_read(c);
	if (c->eof && !c->eof_reported) {
		c->eof_reported = true;
		if (c->eventcb != NULL)
			c->eventcb(c, CONN_EOF, c->arg);
	}
out:
	c->busy = false;
	if (c->dead)
		conn_destroy(c);
	util_clock_release();
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)what;
	util_clock_hold();
	c->busy = true;
	if (c->failed) {
		report_error(c);
		goto out;
	}
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		c->connecting = false;
		if (err != 0) {
			c->failed = true;
			c->err = err;
			report_error(c);
			goto out;
		}
		/* With TLS, connected means the handshake is over too. */
		if (c->ssl != NULL) {
			(void)handshake_step(c);
			goto out;
		}
		if (c->eventcb != NULL)
			c->eventcb(c, CONN_CONNECTED, c->arg);
		if (c->dead)
			goto out;
		conn_update_read(c);
		flush_now(c);
		if (c->failed)
			report_error(c);
		goto out;
	}
	if (c->handshaking) {
		/* Data the client sent with its Finished waits inside the SSL. */
		if (handshake_step(c) && !c->tls_client)
			event_active(&c->rev, EV_READ, 0);
		goto out;
	}
	if (c->tls_read_wants_write) {
		c->tls_read_wants_write = false;
		event_active(&c->rev, EV_READ, 0);
	}
	flush_now(c);
	if (c->failed) {
		report_error(c);
		goto out;
	}
	if (evbuffer_get_length(c->out) <= c->write_low && c->drainedcb != NULL)
		c->drainedcb(c, c->arg);
out:
	c->busy = false;
	if (c->dead)
		conn_destroy(c);
	util_clock_release();
}
