/*
 * PROXY protocol header parser, v1 and v2, fed a byte stream in pieces of
 * any size. Strict: anything the specification does not allow is an error,
 * since the header decides which client address we trust. Reading the
 * socket (without taking bytes past the header) is session.c's job.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static const unsigned char v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};
static const char v1_sig[] = "PROXY ";

#define V2_FIXED 16		/* signature, version/command, family, length */
#define V2_INET_LEN 12		/* two IPv4 addresses, two ports */
#define V2_INET6_LEN 36		/* two IPv6 addresses, two ports */

enum pp_state {
	PP_START = 0,		/* first byte: 'P' is v1, CR is v2 */
	PP_V1,			/* collecting the line up to LF */
	PP_V2_FIXED,		/* collecting the 16 fixed bytes */
	PP_V2_ADDR,		/* collecting the address block */
	PP_V2_TLV_HEAD,		/* collecting a TLV's type and length */
	PP_V2_SKIP,		/* skipping a TLV value, or a LOCAL header's body */
	PP_DONE,
	PP_ERROR,
};

/* Owned by whoever called proxy_parser_new(). */
struct proxy_parser {
	enum pp_state state;
	/* The v1 line, or the v2 fixed part followed by its address block:
	 * TLV values are never kept. */
	unsigned char buf[PROXY_V1_MAX + 1];
	size_t have;			/* bytes in buf */
	size_t consumed;		/* header bytes taken in all */
	size_t v2_left;			/* v2 bytes still to come after the fixed part */
	size_t addr_len;		/* size of the v2 address block we keep */
	size_t skip;			/* bytes of the current TLV value still to skip */
	unsigned char tlv[3];
	size_t tlv_have;
	struct proxy_result res;
	const char *error;
};

struct proxy_parser *
proxy_parser_new(void)
{
	return calloc(1, sizeof(struct proxy_parser));
}

void
proxy_parser_free(struct proxy_parser *p)
{
	free(p);
}

const struct proxy_result *
proxy_parser_result(const struct proxy_parser *p)
{
	return p->state == PP_DONE ? &p->res : NULL;
}

const char *
proxy_parser_error(const struct proxy_parser *p)
{
	return p->state == PP_ERROR ? p->error : NULL;
}

size_t
proxy_parser_consumed(const struct proxy_parser *p)
{
	return p->consumed;
}

static enum pp_state
fail(struct proxy_parser *p, const char *why)
{
	p->error = why;
	return PP_ERROR;
}

/* A decimal port: 1 to 5 digits, no leading zero, at most 65535. */
static int
parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* One v1 address of family af into ss, with its port set later. */
static int
parse_v1_addr(int af, const char *s, size_t n, struct sockaddr_storage *ss, socklen_t *len)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		/* inet_pton() takes only four dotted decimals, no leading zeros. */
		if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, tmp, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		*len = sizeof(*sin6);
	}
	return 0;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/*
 * The complete v1 line without its CRLF: "PROXY UNKNOWN[ anything]" or
 * "PROXY TCP4|TCP6 SRC DST SPORT DPORT", fields split by single spaces.
 */
static enum pp_state
parse_v1_line(struct proxy_parser *p, const char *line, size_t n)
{
	const char *f[4];
	size_t fl[4], i, start, nf = 0;
	uint16_t sport, dport;
	int af;

	line += sizeof(v1_sig) - 1;
	n -= sizeof(v1_sig) - 1;
	p->res.version = 1;
	/* The sender did not know the addresses (or the protocol): whatever
	 * follows UNKNOWN is to be ignored. */
	if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
		p->res.has_addr = false;
		return PP_DONE;
	}
	if (n < 5 || (memcmp(line, "TCP4 ", 5) != 0 && memcmp(line, "TCP6 ", 5) != 0))
		return fail(p, "v1: unknown protocol (TCP4, TCP6 or UNKNOWN)");
	af = line[3] == '4' ? AF_INET : AF_INET6;
	line += 5;
	n -= 5;
	for (i = start = 0; i <= n; i++) {
		if (i < n && line[i] != ' ')
			continue;
		if (nf == 4)
			return fail(p, "v1: too many fields");
		f[nf] = line + start;
		fl[nf++] = i - start;
		start = i + 1;
	}
	if (nf != 4)
		return fail(p, "v1: missing fields");
	if (parse_v1_addr(af, f[0], fl[0], &p->res.src, &p->res.src_len) < 0)
		return fail(p, "v1: bad source address");
	if (parse_v1_addr(af, f[1], fl[1], &p->res.dst, &p->res.dst_len) < 0)
		return fail(p, "v1: bad destination address");
	if (parse_port(f[2], fl[2], &sport) < 0)
		return fail(p, "v1: bad source port");
	if (parse_port(f[3], fl[3], &dport) < 0)
		return fail(p, "v1: bad destination port");
	set_port(&p->res.src, sport);
	set_port(&p->res.dst, dport);
	p->res.has_addr = true;
	return PP_DONE;
}

/* One more byte of a v1 line. */
static enum pp_state
v1_byte(struct proxy_parser *p, unsigned char b)
{
	size_t i = p->have;

	p->buf[p->have++] = b;
	/* The fixed start: a stream that is not PROXY fails at its first
	 * wrong byte instead of after 107. */
	if (i < sizeof(v1_sig) - 1)
		return b == (unsigned char)v1_sig[i] ? PP_V1 :
			fail(p, "not a PROXY protocol header");
	if (b == '\n') {
		if (p->buf[i - 1] != '\r')
			return fail(p, "v1: line ends without CR");
		return parse_v1_line(p, (const char *)p->buf, i - 1);
	}
	if (i > 0 && p->buf[i - 1] == '\r')
		return fail(p, "v1: CR inside the line");
	if (b == '\0')
		return fail(p, "v1: NUL inside the line");
	if (p->have >= PROXY_V1_MAX)
		return fail(p, "v1: line longer than 107 bytes");
	return PP_V1;
}

/* The 16 fixed v2 bytes are in: check them and plan the rest. */
static enum pp_state
v2_fixed(struct proxy_parser *p)
{
	unsigned ver = p->buf[12] >> 4, cmd = p->buf[12] & 0x0f;
	unsigned fam = p->buf[13] >> 4, proto = p->buf[13] & 0x0f;
	size_t len = (size_t)p->buf[14] << 8 | p->buf[15];

	p->res.version = 2;
	if (ver != 2)
		return fail(p, "v2: version is not 2");
	if (cmd > 1)
		return fail(p, "v2: unknown command");
	if (len > PROXY_V2_MAX_LEN)
		return fail(p, "v2: header longer than 4096 bytes");
	p->v2_left = len;
	if (cmd == 0) {
		/* LOCAL: the balancer's own connection (a health check); the
		 * family and the body are to be ignored, TLVs unchecked, as
		 * nothing in them is used. */
		p->res.has_addr = false;
		p->skip = len;
		return len > 0 ? PP_V2_SKIP : PP_DONE;
	}
	if (fam == 0 && proto == 0) {
		/* PROXY with UNSPEC: addresses unknown, keep the peer's; the
		 * body can only hold TLVs. */
		p->res.has_addr = false;
		p->addr_len = 0;
		return len > 0 ? PP_V2_TLV_HEAD : PP_DONE;
	}
	if (proto != 1)
		return fail(p, "v2: transport is not STREAM");
	if (fam == 1)
		p->addr_len = V2_INET_LEN;
	else if (fam == 2)
		p->addr_len = V2_INET6_LEN;
	else
		return fail(p, "v2: address family is not INET or INET6");
	if (len < p->addr_len)
		return fail(p, "v2: length too short for its addresses");
	return PP_V2_ADDR;
}

/* The address block is in: src address, dst address, src port, dst port. */
static void
v2_addresses(struct proxy_parser *p)
{
	const unsigned char *a = p->buf + V2_FIXED;
	struct proxy_result *r = &p->res;
	size_t al = p->addr_len == V2_INET_LEN ? 4 : 16;
	uint16_t sport = (uint16_t)(a[2 * al] << 8 | a[2 * al + 1]);
	uint16_t dport = (uint16_t)(a[2 * al + 2] << 8 | a[2 * al + 3]);

	memset(&r->src, 0, sizeof(r->src));
	memset(&r->dst, 0, sizeof(r->dst));
	if (al == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)&r->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&r->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		r->src_len = r->dst_len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&r->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&r->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		r->src_len = r->dst_len = sizeof(*s);
	}
	set_port(&r->src, sport);
	set_port(&r->dst, dport);
	r->has_addr = true;
}

/* After the addresses or a TLV: more TLVs, or the end. */
static enum pp_state
v2_next_tlv(struct proxy_parser *p)
{
	p->tlv_have = 0;
	return p->v2_left == 0 ? PP_DONE : PP_V2_TLV_HEAD;
}

/* One more byte of a v2 header. */
static enum pp_state
v2_byte(struct proxy_parser *p, unsigned char b)
{
	switch (p->state) {
	case PP_V2_FIXED:
		if (p->have < sizeof(v2_sig) && b != v2_sig[p->have])
			return fail(p, "not a PROXY protocol header");
		p->buf[p->have++] = b;
		return p->have == V2_FIXED ? v2_fixed(p) : PP_V2_FIXED;
	case PP_V2_ADDR:
		p->buf[p->have++] = b;
		p->v2_left--;
		if (p->have < V2_FIXED + p->addr_len)
			return PP_V2_ADDR;
		v2_addresses(p);
		return v2_next_tlv(p);
	case PP_V2_TLV_HEAD:
		/* A TLV must fit whole within the announced length. */
		if (p->tlv_have == 0 && p->v2_left < 3)
			return fail(p, "v2: truncated TLV");
		p->tlv[p->tlv_have++] = b;
		p->v2_left--;
		if (p->tlv_have < 3)
			return PP_V2_TLV_HEAD;
		p->skip = (size_t)p->tlv[1] << 8 | p->tlv[2];
		if (p->skip > p->v2_left)
			return fail(p, "v2: TLV longer than the header");
		return p->skip > 0 ? PP_V2_SKIP : v2_next_tlv(p);
	default:
		return fail(p, "internal parser state");
	}
}

enum proxy_status
proxy_parse(struct proxy_parser *p, const void *data, size_t len, size_t *used)
{
	const unsigned char *d = data;
	size_t i = 0;

	*used = 0;
	while (i < len && p->state != PP_DONE && p->state != PP_ERROR) {
		switch (p->state) {
		case PP_START:
			if (d[i] == v1_sig[0]) {
				p->state = PP_V1;
			} else if (d[i] == v2_sig[0]) {
				p->state = PP_V2_FIXED;
			} else {
				p->state = fail(p, "not a PROXY protocol header");
				break;
			}
			continue;	/* the byte is taken by the new state */
		case PP_V1:
			p->state = v1_byte(p, d[i++]);
			break;
		case PP_V2_SKIP: {
			/* TLV values (and LOCAL bodies) go by in bulk. */
			size_t n = len - i < p->skip ? len - i : p->skip;

			i += n;
			p->skip -= n;
			p->v2_left -= n;
			if (p->skip == 0)
				p->state = v2_next_tlv(p);
			break;
		}
		default:
			p->state = v2_byte(p, d[i++]);
			break;
		}
	}
	*used = i;
	p->consumed += i;
	switch (p->state) {
	case PP_DONE:
		return PROXY_DONE;
	case PP_ERROR:
		return PROXY_ERROR;
	default:
		return PROXY_INCOMPLETE;
	}
}
