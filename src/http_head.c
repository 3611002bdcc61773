/*
 * Finding the end of an HTTP/1.1 head in an evbuffer, incrementally, with
 * the bare LF, NUL and size checks that can be made before parsing. It does
 * not parse the head (http_parse.c) nor look at the body that follows.
 */
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "http.h"
#include "http-int.h"

/*
 * Empty lines before a request line are tolerated as RFC 9112 section 2.2
 * allows (old clients sent CRLF after a POST body): they are drained, so the
 * head the caller parses starts with the start line.
 */
static enum http_status drain_leading_crlf(struct evbuffer *buf)
{
	unsigned char two[2];

	for (;;) {
		ev_ssize_t n = evbuffer_copyout(buf, two, 2);

		if (n <= 0 || two[0] != '\r')
			return HTTP_OK;
		if (n == 1)
			return HTTP_INCOMPLETE;
		if (two[1] != '\n')
			return HTTP_OK;
		if (evbuffer_drain(buf, 2) < 0)
			return HTTP_BAD;
	}
}

/*
 * Bit 7 of each byte of the eight at p that is zero or equals x, and maybe
 * of bytes above the first such one (a borrow): the lowest set bit is exact.
 */
static inline uint64_t word_match(const unsigned char *p, uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t w, e;

	memcpy(&w, p, sizeof(w));
	e = w ^ (ones * x);
	return (((w - ones) & ~w) | ((e - ones) & ~e)) & highs;
}

/*
 * Index of the first LF or NUL in b[j..l), or l. Heads are short lines: a
 * word at a time beats a libc call per line and per byte class.
 */
static size_t find_lf_or_nul(const unsigned char *b, size_t j, size_t l)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (l - j >= 8) {
		uint64_t m = word_match(b + j, '\n');

		if (m != 0)
			return j + (size_t)__builtin_ctzll(m) / 8;
		j += 8;
	}
#endif
	while (j < l && b[j] != '\n' && b[j] != 0)
		j++;
	return j;
}

#ifdef __SSE2__
/*
 * The common case of http_head_find(): a head looked at for the first time,
 * not starting with CR, every byte up to the limit in one contiguous piece
 * b[0..limit). Sixteen bytes at a time give a mask of their LF and NUL
 * bytes, and only those are looked at, in order, with the same verdicts as
 * the general scan: NUL or a bare LF before the end is BAD, CRLF CRLF ends
 * the head.
 */
static enum http_status head_find_flat(const unsigned char *b, size_t limit, size_t *scan,
		size_t *head_len)
{
	const __m128i lf = _mm_set1_epi8('\n'), nul = _mm_setzero_si128();

	for (size_t k = 0; k < limit; k += 16) {
		unsigned m;

		/* The last piece is read as the sixteen bytes ending at limit,
		 * those already seen shifted out; only a head shorter than
		 * sixteen bytes is looked at byte by byte. */
		if (limit - k >= 16 || limit >= 16) {
			size_t at = limit - k >= 16 ? k : limit - 16;
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + at));

			m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf),
					_mm_cmpeq_epi8(v, nul))) >> (k - at);
		} else {
			m = 0;
			for (size_t i = k; i < limit; i++)
				if (b[i] == '\n' || b[i] == 0)
					m |= 1u << (i - k);
		}
		while (m != 0) {
			size_t i = k + (size_t)__builtin_ctz(m);

			m &= m - 1;
			if (b[i] == 0 || i == 0 || b[i - 1] != '\r')
				return HTTP_BAD;
			if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r') {
				*head_len = i + 1;
				*scan = i + 1;
				return HTTP_OK;
			}
		}
	}
	*scan = limit;
	return HTTP_INCOMPLETE;
}
#endif

enum http_status http_head_find(struct evbuffer *buf, size_t *scan, size_t max,
		size_t *head_len)
{
	struct evbuffer_iovec vec[8];
	struct evbuffer_ptr ptr;
	size_t buflen, limit, pos, start;
	uint32_t win = 0;	/* last bytes seen, the newest in the low byte */

	buflen = evbuffer_get_length(buf);
	limit = buflen < max ? buflen : max;
#ifdef __SSE2__
	if (*scan == 0 && limit > 0 && evbuffer_peek(buf, -1, NULL, vec, 1) >= 1 &&
			vec[0].iov_len >= limit && *(const unsigned char *)vec[0].iov_base != '\r') {
		enum http_status st = head_find_flat(vec[0].iov_base, limit, scan, head_len);

		if (st != HTTP_INCOMPLETE)
			return st;
		return buflen >= max ? HTTP_HEAD_TOO_LARGE : HTTP_INCOMPLETE;
	}
#endif
	if (*scan == 0) {
		enum http_status st = drain_leading_crlf(buf);

		if (st != HTTP_OK)
			return st;
		buflen = evbuffer_get_length(buf);
		limit = buflen < max ? buflen : max;
	}
	if (*scan >= limit)
		goto not_found;

	/*
	 * Restart three bytes back so that the window holds what precedes
	 * the first unchecked byte; those bytes are not checked twice.
	 */
	start = *scan > 3 ? *scan - 3 : 0;
	if (evbuffer_ptr_set(buf, &ptr, start, EVBUFFER_PTR_SET) < 0)
		return HTTP_BAD;
	pos = start;
	while (pos < limit) {
		int n = evbuffer_peek(buf, limit - pos, &ptr, vec, 8);
		size_t advanced = 0;

		if (n <= 0)
			break;
		if (n > 8)
			n = 8;
		for (int i = 0; i < n && pos < limit; i++) {
			const unsigned char *b = vec[i].iov_base;
			size_t l = vec[i].iov_len < limit - pos ? vec[i].iov_len : limit - pos;
			size_t j = 0;

			for (; j < l && pos + j < *scan; j++)
				win = win << 8 | b[j];
			while (j < l) {
				size_t hit = find_lf_or_nul(b, j, l);
				size_t end = hit < l ? hit + 1 : l;

				/* NUL is checked only up to the end of the head: a body may follow. */
				if (unlikely(hit < l && b[hit] == 0))
					return HTTP_BAD;
				if (hit < l && hit >= 3) {
					win = (uint32_t)b[hit - 3] << 24 | (uint32_t)b[hit - 2] << 16 |
						(uint32_t)b[hit - 1] << 8 | b[hit];
				} else {
					for (size_t k = end - j > 4 ? end - 4 : j; k < end; k++)
						win = win << 8 | b[k];
				}
				j = end;
				if (hit == l)
					break;
				if ((win & 0xff00) != ('\r' << 8))
					return HTTP_BAD;
				if (win == 0x0d0a0d0a) {
					*head_len = pos + j;
					*scan = pos + j;
					return HTTP_OK;
				}
			}
			pos += l;
			advanced += l;
		}
		if (evbuffer_ptr_set(buf, &ptr, advanced, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	*scan = limit;
not_found:
	if (buflen >= max)
		return HTTP_HEAD_TOO_LARGE;
	return HTTP_INCOMPLETE;
}
