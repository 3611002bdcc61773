/*
 * Small helpers without state of their own: address formatting, a fast
 * per-thread random generator for ids, JSON string escaping.
 */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/socket.h>

/*
 * Invariants. UTIL_ASSERT is always on: a broken invariant is a bug, and
 * going on would corrupt memory or traffic. UTIL_DEBUG_ASSERT guards costly
 * or hot-path checks and exists in --enable-debug builds only. Neither is
 * ever used on peer input.
 */
#define UTIL_ASSERT(cond) \
	do { if (__builtin_expect(!(cond), 0)) util_assert_fail(#cond, __FILE__, __LINE__); } while (0)
#ifdef SLUICE_DEBUG
#define UTIL_DEBUG_ASSERT(cond) UTIL_ASSERT(cond)
#else
#define UTIL_DEBUG_ASSERT(cond) do { } while (0)
#endif

/* Print the failed assertion to stderr and abort. */
void util_assert_fail(const char *cond, const char *file, int line)
	__attribute__((noreturn));

/* Longest text util_addr_format writes, NUL included: "[v6]:port". */
#define UTIL_ADDR_LEN 64

/*
 * "1.2.3.4:80" or "[::1]:80" into buf; with_port = 0 gives the bare address
 * ("::1"). Returns buf. Unknown families print "?".
 */
char *util_addr_format(const struct sockaddr *sa, char *buf, size_t len, int with_port);

/*
 * Whether a and b are the same IPv4 or IPv6 address and port (what a socket
 * binds or connects to; padding, flow labels and scope are not compared).
 */
bool util_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Seed the calling thread's generator from the kernel. Returns 0 or -1. */
int util_rand_seed(void) __attribute__((warn_unused_result));
/* Next 64 random bits of the calling thread's generator (not for secrets). */
uint64_t util_rand64(void);

/* 32 lower-case hex digits and a NUL into out (33 bytes). */
void util_request_id(char out[33]);

/*
 * Append src as the inside of a JSON string to dst (at most cap bytes,
 * always NUL-terminated). Returns the new length of dst.
 */
size_t util_json_escape(char *dst, size_t cap, size_t len, const char *src, size_t srclen);

/*
 * Whether s[0..n) equals the lower-case ASCII literal lit[0..n), ignoring the
 * case of s. Inline: header names are compared on every exchange, and a
 * libc strncasecmp call costs more than these few bytes.
 */
static inline bool
util_eq_lower(const char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c) != (unsigned char)lit[i])
			return false;
	}
	return true;
}

/* Whether a[0..n) and b[0..n) are equal ignoring ASCII case. */
static inline bool
util_eq_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x != y && ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z'))
			return false;
	}
	return true;
}

/*
 * Microseconds of CLOCK_MONOTONIC: precise timing of an exchange's steps.
 * Between util_clock_hold() and util_clock_release() (one I/O callback of a
 * conn, conn.c) the clock is read once, at the first call, and every later
 * call returns that instant: the steps of one callback take microseconds,
 * and reading the clock was a large share of sluice's user time per request
 * (docs/performance.md, fifth session).
 * Holds nest; they are per thread.
 */
uint64_t util_now_us(void);
void util_clock_hold(void);
void util_clock_release(void);

/* From now until deadline (util_now_us() time), 0 once past: for evtimer_add(). */
struct timeval util_tv_until(uint64_t deadline);


#endif
