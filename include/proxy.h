/*
 * The PROXY protocol (v1 text and v2 binary, as HAProxy specifies it): a
 * pure, incremental parser of the header a load balancer puts in front of
 * a connection's first bytes. It does no I/O; session.c feeds it.
 */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A v1 header is one line of at most this many bytes, CRLF included. */
#define PROXY_V1_MAX 107
/* Bytes a v2 header may announce after its 16 fixed ones: room for the
 * addresses and the TLVs load balancers add (cloud endpoint ids, TLS
 * details), without letting a peer make us read kilobytes of nothing. */
#define PROXY_V2_MAX_LEN 4096

struct proxy_parser;

enum proxy_status {
	PROXY_INCOMPLETE = 0,	/* every byte given was part of the header; more needed */
	PROXY_DONE,		/* the header is complete: see proxy_parser_result() */
	PROXY_ERROR,		/* malformed: see proxy_parser_error(); close the connection */
};

/* What a complete header said. */
struct proxy_result {
	int version;			/* 1 or 2 */
	/* false for v1 UNKNOWN, v2 LOCAL and v2 UNSPEC: the connection's own
	 * peer is the client, src and dst are unset. */
	bool has_addr;
	struct sockaddr_storage src;	/* the client: AF_INET or AF_INET6 with its port */
	struct sockaddr_storage dst;	/* the address the client connected to */
	socklen_t src_len;
	socklen_t dst_len;
};

/* A parser at the start of a header; NULL on allocation failure. Owned by the caller. */
struct proxy_parser *proxy_parser_new(void);

/* Free p; NULL is fine. */
void proxy_parser_free(struct proxy_parser *p);

/*
 * Feed the next len bytes of the connection. *used is set to how many of
 * them belong to the header: all of them on PROXY_INCOMPLETE, the header's
 * last ones on PROXY_DONE (the bytes after are the application's), and
 * those read up to the fault on PROXY_ERROR. Once done or failed, the parser
 * keeps answering the same with *used = 0.
 */
enum proxy_status proxy_parse(struct proxy_parser *p, const void *data, size_t len,
		size_t *used);

/* The header's contents, valid after PROXY_DONE and while p lives. */
const struct proxy_result *proxy_parser_result(const struct proxy_parser *p);

/* Why the header was refused (a static string), after PROXY_ERROR; else NULL. */
const char *proxy_parser_error(const struct proxy_parser *p);

/* Header bytes taken so far. */
size_t proxy_parser_consumed(const struct proxy_parser *p);

#endif
