/*
 * Helpers without state of their own, except the per-thread random
 * generator used for request ids (xoshiro256**, seeded by getrandom).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util.h"

static _Thread_local uint64_t rng[4];

void
util_assert_fail(const char *cond, const char *file, int line)
{
	fprintf(stderr, "sluice: assertion \"%s\" failed at %s:%d\n", cond, file, line);
	abort();
}

char *
util_addr_format(const struct sockaddr *sa, char *buf, size_t len, int with_port)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
		else
			snprintf(buf, len, "%s", ip);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
		else
			snprintf(buf, len, "%s", ip);
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(buf, len, "unix");
	} else {
		snprintf(buf, len, "?");
	}
	return buf;
}

bool
util_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family != AF_INET6)
		return false;
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
		memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

int
util_rand_seed(void)
{
	size_t got = 0;

	while (got < sizeof(rng)) {
		ssize_t n = getrandom((char *)rng + got, sizeof(rng) - got, 0);
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	/* The all-zero state would repeat zero forever. */
	if ((rng[0] | rng[1] | rng[2] | rng[3]) == 0)
		rng[0] = 0x9e3779b97f4a7c15ULL;
	return 0;
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
util_rand64(void)
{
	uint64_t result = rotl(rng[1] * 5, 7) * 9;
	uint64_t t = rng[1] << 17;

	rng[2] ^= rng[0];
	rng[3] ^= rng[1];
	rng[1] ^= rng[2];
	rng[0] ^= rng[3];
	rng[2] ^= t;
	rng[3] = rotl(rng[3], 45);
	return result;
}

/*
 * Eight lower-case hex digits of v, the most significant first, worked out
 * a word at a time: each nibble is spread into a byte of its own, then
 * turned into its digit without a table or a branch.
 */
static void
hex8(char out[8], uint32_t v)
{
	uint64_t x = v;

	x = ((x & 0xffff0000u) << 16) | (x & 0xffffu);
	x = ((x & 0x0000ff000000ff00ULL) << 8) | (x & 0x000000ff000000ffULL);
	x = ((x & 0x00f000f000f000f0ULL) << 4) | (x & 0x000f000f000f000fULL);
	/* A byte of 10 or more gets 'a' - '0' - 10 on top of '0'. */
	x += 0x3030303030303030ULL +
		(((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL) * ('a' - '0' - 10);
	/* The most significant nibble is in the top byte: it goes first. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	x = __builtin_bswap64(x);
	memcpy(out, &x, 8);
#else
	memcpy(out, &x, 8);
#endif
}

void
util_request_id(char out[33])
{
	uint64_t a = util_rand64(), b = util_rand64();

	hex8(out, (uint32_t)(a >> 32));
	hex8(out + 8, (uint32_t)a);
	hex8(out + 16, (uint32_t)(b >> 32));
	hex8(out + 24, (uint32_t)b);
	out[32] = '\0';
}

size_t
util_json_escape(char *dst, size_t cap, size_t len, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		char esc[7];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			/* Bytes past ASCII are escaped too, so that a line is valid JSON
			 * whatever a client put in its request line. */
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (len + n >= cap)
			break;
		memcpy(dst + len, esc, n);
		len += n;
	}
	dst[len] = '\0';
	return len;
}

static _Thread_local unsigned clock_holds;
static _Thread_local uint64_t clock_held;	/* 0: not read in this hold yet */

uint64_t
util_now_us(void)
{
	struct timespec ts;
	uint64_t now;

	if (clock_held != 0)
		return clock_held;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	if (clock_holds > 0)
		clock_held = now;
	return now;
}

void
util_clock_hold(void)
{
	clock_holds++;
}

void
util_clock_release(void)
{
	UTIL_ASSERT(clock_holds > 0);
	if (--clock_holds == 0)
		clock_held = 0;
}

struct timeval
util_tv_until(uint64_t deadline)
{
	uint64_t now = util_now_us(), d = deadline > now ? deadline - now : 0;

	return (struct timeval){
		.tv_sec = (time_t)(d / 1000000), .tv_usec = (suseconds_t)(d % 1000000),
	};
}
