/*
 * floor: the "floor" reference target of benchmark 1 (tests/bench/http.sh),
 * a proxy that does nothing per request but find where each HTTP/1.1
 * message ends and pass its bytes on unchanged. It owns one epoll loop on
 * one thread, the listening socket and, per client, one upstream connection
 * kept for the client's lifetime. It parses no more than framing, rewrites
 * no header and has no timeouts, pools or logs per request: a measuring
 * tool, not product code, so anything it does not expect closes.
 *
 * Why it exists: HAProxy is saturated in the benchmark, so its CPU per
 * request is one CPU divided by its throughput and drifts with the state of
 * the machine. The CPU per request of this loop drifts with the machine as
 * sluice's does, so sluice / floor is a steady ratio, and what it shows
 * above 1 is the price of everything sluice does beyond relaying bytes.
 *
 * Framing: a request is a GET head up to CRLFCRLF, HTTP/1.1, without body
 * (no Content-Length or Transfer-Encoding); HEAD is refused because its
 * response carries a Content-Length without the body. A response must be
 * framed by Content-Length. Either must fit in FLOOR_BUF.
 *
 * Usage: floor LISTEN_PORT ORIGIN_PORT, both on 127.0.0.1. SIGTERM or
 * SIGINT exits 0. Linux only (epoll, signalfd, accept4); libc only, built
 * by "make bench" and not by "make all". tests/bench/lib.sh starts it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* accept4, memmem */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest request head, and largest response (head and body), held. The
 * benchmark's are about 80 and 150 bytes. */
#define FLOOR_BUF 16384
#define FLOOR_EVENTS 256
/* Accepting pauses this long when out of descriptors or memory: with a
 * level-triggered listener, retrying at once would spin. */
#define FLOOR_ACCEPT_PAUSE_MS 100

/* epoll tags of the loop's own descriptors. A connection's sides are tagged
 * with its address plus the side (0 client, 1 upstream); malloc never
 * returns an address this low. */
#define FLOOR_TAG_LISTEN 0
#define FLOOR_TAG_SIGNAL 2

enum floor_state {
	FLOOR_REQ = 0,		/* reading a request head from the client */
	FLOOR_SEND_REQ,		/* writing it to the upstream */
	FLOOR_RESP,		/* reading the whole response */
	FLOOR_SEND_RESP,	/* writing it to the client */
};

/*
 * A client and its upstream. Owned by the loop from accept until
 * floor_close(), which puts it on the dead list; the loop frees that list
 * after each batch of events, since a later event of the same batch may
 * still name it.
 */
struct floor_conn {
	int cfd;
	/* -1 once the origin closed while its response was still being
	 * written to the client: the client is closed when it is out. */
	int ufd;
	enum floor_state state;
	int dead;
	size_t req_len;		/* bytes in req, a pipelined request included */
	size_t req_msg;		/* length of the request being proxied */
	size_t resp_len;
	/* The write waiting for EPOLLOUT, only after a short send. */
	int wfd;
	const char *wptr;
	size_t wleft;
	struct floor_conn *next_dead;
	char req[FLOOR_BUF];
	char resp[FLOOR_BUF];
};

/* The loop's state; one loop per process. */
static struct {
	int epfd;
	int lfd;
	int sfd;
	struct sockaddr_in origin;
	struct floor_conn *dead;
	/* Accepting is paused until this time (CLOCK_MONOTONIC) when set. */
	int accept_paused;
	struct timespec accept_resume;
	/* Set while connections to the origin fail, so that it is logged
	 * once per change and not once per client. */
	int origin_down;
	unsigned long conns, requests;
} loop;

/* ------------------------------------------------------------ framing */

/* Offset just past "\r\n\r\n" in p[0..n), or 0 when the head is not whole. */
static size_t
floor_head_end(const char *p, size_t n)
{
	const char *e = memmem(p, n, "\r\n\r\n", 4);

	return e ? (size_t)(e - p) + 4 : 0;
}

/* The header line after offset *pos in a head of length hlen: sets *line
 * and *len (without CRLF) and returns 1; 0 at the blank line ending it. */
static int
floor_next_line(const char *p, size_t hlen, size_t *pos, const char **line, size_t *len)
{
	const char *e = memmem(p + *pos, hlen - *pos, "\r\n", 2);

	if (!e || e == p + *pos)
		return 0;
	*line = p + *pos;
	*len = (size_t)(e - *line);
	*pos += *len + 2;
	return 1;
}

static int
floor_is_header(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name);

	return len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0;
}

/* A request in p[0..n): its length when a whole GET head is there, 0 when
 * more bytes are needed, -1 for anything not handled (another method, a
 * body, not HTTP/1.1, a head that does not fit the buffer). */
static long
floor_request_len(const char *p, size_t n)
{
	size_t hlen = floor_head_end(p, n), pos, len;
	const char *line;

	if (n >= 4 && memcmp(p, "GET ", 4) != 0)
		return -1;
	if (!hlen)
		return n >= FLOOR_BUF ? -1 : 0;
	line = memmem(p, hlen, "\r\n", 2);
	if ((size_t)(line - p) < 14 || memcmp(line - 9, " HTTP/1.1", 9) != 0)
		return -1;
	pos = (size_t)(line - p) + 2;
	while (floor_next_line(p, hlen, &pos, &line, &len))
		if (floor_is_header(line, len, "content-length") ||
		    floor_is_header(line, len, "transfer-encoding"))
			return -1;
	return (long)hlen;
}

/* The value of a Content-Length line of length len, or -1 when it is not
 * a number that fits the buffer. */
static long
floor_content_length(const char *line, size_t len)
{
	const char *v = line + strlen("content-length:"), *end = line + len;
	long x = 0;

	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if (v == end)
		return -1;
	for (; v < end && *v >= '0' && *v <= '9'; v++) {
		x = x * 10 + (*v - '0');
		/* Checked per digit, so that a long value cannot overflow. */
		if (x > FLOOR_BUF)
			return -1;
	}
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	return v == end ? x : -1;
}

/* A response in p[0..n): head plus Content-Length bytes when all are
 * there, 0 when more are needed, -1 when it is not framed by one
 * Content-Length (chunked, read to close, 1xx, too large). */
static long
floor_response_len(const char *p, size_t n)
{
	size_t hlen = floor_head_end(p, n), pos, len;
	const char *line;
	long clen = -1;

	if (!hlen)
		return n >= FLOOR_BUF ? -1 : 0;
	if (hlen < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] == '1')
		return -1;
	line = memmem(p, hlen, "\r\n", 2);
	pos = (size_t)(line - p) + 2;
	while (floor_next_line(p, hlen, &pos, &line, &len)) {
		if (floor_is_header(line, len, "transfer-encoding"))
			return -1;
		if (floor_is_header(line, len, "content-length")) {
			if (clen >= 0)
				return -1;
			clen = floor_content_length(line, len);
			if (clen < 0)
				return -1;
		}
	}
	if (clen < 0 || hlen + (size_t)clen > FLOOR_BUF)
		return -1;
	return n >= hlen + (size_t)clen ? (long)(hlen + (size_t)clen) : 0;
}

/* ------------------------------------------------------------ connections */

static void
floor_close(struct floor_conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	/* close() also takes the descriptors out of the epoll set. */
	close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	c->next_dead = loop.dead;
	loop.dead = c;
}

static void
floor_origin_state(int down, int err)
{
	if (down == loop.origin_down)
		return;
	loop.origin_down = down;
	if (down)
		fprintf(stderr, "floor: origin 127.0.0.1:%u failed: %s\n",
			ntohs(loop.origin.sin_port), strerror(err));
	else
		fprintf(stderr, "floor: origin 127.0.0.1:%u answers again\n",
			ntohs(loop.origin.sin_port));
}

static int
floor_watch(struct floor_conn *c, int fd, uint32_t events)
{
	struct epoll_event e = {
		.events = events,
		.data.u64 = (uint64_t)(uintptr_t)c | (fd == c->ufd),
	};

	return epoll_ctl(loop.epfd, EPOLL_CTL_MOD, fd, &e);
}

static int
floor_again(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static void floor_written(struct floor_conn *c);

/* Writes p[0..n) to fd. On a short write the rest waits for EPOLLOUT,
 * which is watched only then: level-triggered, a writable socket watched
 * for it would wake the loop at every turn. */
static void
floor_write(struct floor_conn *c, int fd, const char *p, size_t n)
{
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

	if (w < 0) {
		if (!floor_again()) {
			floor_close(c);
			return;
		}
		w = 0;
	}
	if ((size_t)w == n) {
		floor_written(c);
		return;
	}
	c->wfd = fd;
	c->wptr = p + w;
	c->wleft = n - (size_t)w;
	if (floor_watch(c, fd, EPOLLIN | EPOLLOUT) < 0)
		floor_close(c);
}

/* EPOLLOUT on the side with a pending write. */
static void
floor_flush(struct floor_conn *c)
{
	ssize_t w;

	if (!c->wleft)
		return;
	w = send(c->wfd, c->wptr, c->wleft, MSG_NOSIGNAL);
	if (w < 0) {
		if (!floor_again())
			floor_close(c);
		return;
	}
	c->wptr += w;
	c->wleft -= (size_t)w;
	if (c->wleft)
		return;
	if (floor_watch(c, c->wfd, EPOLLIN) < 0) {
		floor_close(c);
		return;
	}
	floor_written(c);
}

/* Starts proxying the request at the front of req once it is whole. */
static void
floor_try_request(struct floor_conn *c)
{
	long m = floor_request_len(c->req, c->req_len);

	if (m < 0) {
		floor_close(c);
		return;
	}
	if (m == 0)
		return;
	c->req_msg = (size_t)m;
	c->resp_len = 0;
	c->state = FLOOR_SEND_REQ;
	floor_write(c, c->ufd, c->req, c->req_msg);
}

static void
floor_written(struct floor_conn *c)
{
	if (c->state == FLOOR_SEND_REQ) {
		c->state = FLOOR_RESP;
		return;
	}
	loop.requests++;
	if (c->ufd < 0) {
		floor_close(c);
		return;
	}
	/* The request is done; a pipelined one may be waiting behind it. */
	c->req_len -= c->req_msg;
	memmove(c->req, c->req + c->req_msg, c->req_len);
	c->state = FLOOR_REQ;
	if (c->req_len)
		floor_try_request(c);
}

/* One read into buf[*len..FLOOR_BUF): 1 when bytes came, 0 when there were
 * none yet, -1 after closing the connection (end of stream, error, full
 * buffer). Level-triggered, one read per event is enough: what is left
 * wakes the loop again. */
static int
floor_read(struct floor_conn *c, int fd, char *buf, size_t *len)
{
	ssize_t n;

	if (*len == FLOOR_BUF) {
		floor_close(c);
		return -1;
	}
	n = recv(fd, buf + *len, FLOOR_BUF - *len, 0);
	if (n < 0 && floor_again())
		return 0;
	if (n <= 0) {
		if (n < 0 && fd == c->ufd)
			floor_origin_state(1, errno);
		floor_close(c);
		return -1;
	}
	*len += (size_t)n;
	return 1;
}

static void
floor_client_readable(struct floor_conn *c)
{
	if (floor_read(c, c->cfd, c->req, &c->req_len) > 0 && c->state == FLOOR_REQ)
		floor_try_request(c);
}

/*
 * The origin spoke while its whole response is still being written to the
 * client. The end of its stream (it closes after answering a request with
 * "Connection: close") lets that response finish first; bytes out of turn
 * close both sides.
 */
static void
floor_upstream_early(struct floor_conn *c)
{
	char b;
	ssize_t n = recv(c->ufd, &b, 1, 0);

	if (n < 0 && floor_again())
		return;
	if (n > 0) {
		floor_close(c);
		return;
	}
	/* Closing it also stops its end-of-stream from waking the loop. */
	close(c->ufd);
	c->ufd = -1;
}

static void
floor_upstream_readable(struct floor_conn *c)
{
	long m;

	if (c->state == FLOOR_SEND_RESP) {
		floor_upstream_early(c);
		return;
	}
	if (floor_read(c, c->ufd, c->resp, &c->resp_len) <= 0)
		return;
	if (c->state != FLOOR_RESP) {
		floor_close(c);
		return;
	}
	m = floor_response_len(c->resp, c->resp_len);
	/* Bytes after the response would be an answer to no request. */
	if (m < 0 || (m > 0 && (size_t)m != c->resp_len)) {
		floor_close(c);
		return;
	}
	if (m == 0)
		return;
	floor_origin_state(0, 0);
	c->state = FLOOR_SEND_RESP;
	floor_write(c, c->cfd, c->resp, (size_t)m);
}

/* Opens the upstream of client cfd and starts watching both; closes cfd
 * on failure. The connect does not block: a request that comes before it
 * completes gets EAGAIN and waits for EPOLLOUT like any short write. */
static void
floor_open(int cfd)
{
	struct floor_conn *c = malloc(sizeof(*c));
	int one = 1, ufd = -1;
	struct epoll_event e = { .events = EPOLLIN };

	if (!c)
		goto fail;
	ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ufd < 0)
		goto fail;
	if (connect(ufd, (struct sockaddr *)&loop.origin, sizeof(loop.origin)) < 0 &&
	    errno != EINPROGRESS) {
		floor_origin_state(1, errno);
		goto fail;
	}
	/* As every target of the benchmark: no Nagle delay on either side. */
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Only the fields read before being set; the buffers are not zeroed. */
	c->cfd = cfd;
	c->ufd = ufd;
	c->state = FLOOR_REQ;
	c->dead = 0;
	c->req_len = c->req_msg = c->resp_len = 0;
	c->wleft = 0;
	e.data.u64 = (uint64_t)(uintptr_t)c;
	if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, cfd, &e) < 0)
		goto fail;
	e.data.u64 = (uint64_t)(uintptr_t)c | 1;
	if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, ufd, &e) < 0)
		goto fail;
	loop.conns++;
	return;
fail:
	/* close() drops cfd from the epoll set if it was added. */
	if (ufd >= 0)
		close(ufd);
	close(cfd);
	free(c);
}

static void
floor_accept_pause(int err)
{
	struct epoll_event e = { .events = 0, .data.u64 = FLOOR_TAG_LISTEN };

	fprintf(stderr, "floor: accept failed: %s; pausing %d ms\n", strerror(err),
		FLOOR_ACCEPT_PAUSE_MS);
	if (epoll_ctl(loop.epfd, EPOLL_CTL_MOD, loop.lfd, &e) < 0)
		return;
	loop.accept_paused = 1;
	clock_gettime(CLOCK_MONOTONIC, &loop.accept_resume);
	loop.accept_resume.tv_nsec += FLOOR_ACCEPT_PAUSE_MS * 1000000L;
	if (loop.accept_resume.tv_nsec >= 1000000000L) {
		loop.accept_resume.tv_sec++;
		loop.accept_resume.tv_nsec -= 1000000000L;
	}
}

/* The epoll_wait timeout: none, or until accepting resumes (when that time
 * has come, accepting resumes here and there is no timeout). */
static int
floor_timeout(void)
{
	struct timespec now;
	long ms;
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = FLOOR_TAG_LISTEN };

	if (!loop.accept_paused)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (loop.accept_resume.tv_sec - now.tv_sec) * 1000L +
		(loop.accept_resume.tv_nsec - now.tv_nsec) / 1000000L;
	if (ms > 0)
		return (int)ms;
	if (epoll_ctl(loop.epfd, EPOLL_CTL_MOD, loop.lfd, &e) < 0)
		return FLOOR_ACCEPT_PAUSE_MS;
	loop.accept_paused = 0;
	return -1;
}

static void
floor_accept(void)
{
	for (;;) {
		int cfd = accept4(loop.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd >= 0) {
			floor_open(cfd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			floor_accept_pause(errno);
		return;
	}
}

/* ------------------------------------------------------------ loop */

static int
floor_port(const char *s, unsigned short *port)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535)
		return -1;
	*port = (unsigned short)v;
	return 0;
}

/* The listening socket, the signal descriptor and the epoll set. SIGTERM
 * and SIGINT are read from a signalfd rather than caught, so that one
 * arriving just before epoll_wait cannot be missed. */
static int
floor_setup(unsigned short listen_port, unsigned short origin_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct epoll_event e = { .events = EPOLLIN };
	sigset_t set;
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	loop.origin = sa;
	loop.origin.sin_port = htons(origin_port);
	sa.sin_port = htons(listen_port);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		perror("floor: sigprocmask");
		return -1;
	}
	loop.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	loop.epfd = epoll_create1(EPOLL_CLOEXEC);
	loop.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (loop.sfd < 0 || loop.epfd < 0 || loop.lfd < 0) {
		perror("floor: setup");
		return -1;
	}
	setsockopt(loop.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(loop.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "floor: bind(127.0.0.1:%u) failed: %s\n", listen_port,
			strerror(errno));
		return -1;
	}
	if (listen(loop.lfd, 1024) < 0) {
		perror("floor: listen");
		return -1;
	}
	e.data.u64 = FLOOR_TAG_LISTEN;
	if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, loop.lfd, &e) < 0) {
		perror("floor: epoll_ctl");
		return -1;
	}
	e.data.u64 = FLOOR_TAG_SIGNAL;
	if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, loop.sfd, &e) < 0) {
		perror("floor: epoll_ctl");
		return -1;
	}
	return 0;
}

/* Runs until SIGTERM or SIGINT: 0 then, 1 when epoll_wait fails. */
static int
floor_run(void)
{
	struct epoll_event evs[FLOOR_EVENTS];

	for (;;) {
		int n = epoll_wait(loop.epfd, evs, FLOOR_EVENTS, floor_timeout());

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("floor: epoll_wait");
			return 1;
		}
		for (int k = 0; k < n; k++) {
			uint64_t tag = evs[k].data.u64;
			struct floor_conn *c = (struct floor_conn *)(uintptr_t)(tag & ~(uint64_t)1);
			uint32_t ev = evs[k].events;
			int upstream = (int)(tag & 1);

			if (tag == FLOOR_TAG_LISTEN) {
				floor_accept();
				continue;
			}
			if (tag == FLOOR_TAG_SIGNAL) {
				fprintf(stderr, "floor: %lu connections, %lu requests\n",
					loop.conns, loop.requests);
				return 0;
			}
			/* Closed earlier in this batch (the whole connection, or
			 * only its upstream after the origin's end of stream). */
			if (c->dead || (upstream && c->ufd < 0))
				continue;
			if (ev & EPOLLOUT)
				floor_flush(c);
			if (c->dead || (upstream && c->ufd < 0))
				continue;
			if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				if (upstream)
					floor_upstream_readable(c);
				else
					floor_client_readable(c);
			}
		}
		while (loop.dead) {
			struct floor_conn *c = loop.dead;

			loop.dead = c->next_dead;
			free(c);
		}
	}
}

int
main(int argc, char **argv)
{
	unsigned short listen_port, origin_port;

	if (argc != 3 || floor_port(argv[1], &listen_port) < 0 ||
	    floor_port(argv[2], &origin_port) < 0) {
		fprintf(stderr, "usage: %s LISTEN_PORT ORIGIN_PORT (both on 127.0.0.1)\n",
			argc > 0 ? argv[0] : "floor");
		return 2;
	}
	if (floor_setup(listen_port, origin_port) < 0)
		return 1;
	return floor_run();
}
