/*
 * The registry of balancers and what they share: eligibility, the hash
 * that keyed balancers use. Each algorithm lives in its own lb_<name>.c
 * behind struct lb_ops.
 */
#include <string.h>

#include "lb.h"

static const struct lb_ops *const balancers[] = {
	&lb_rr_ops,
	&lb_leastconn_ops,
	&lb_hash_ops,
	&lb_random2_ops,
};

const struct lb_ops *
lb_find(const char *name)
{
	for (size_t i = 0; i < sizeof(balancers) / sizeof(balancers[0]); i++)
		if (strcmp(balancers[i]->name, name) == 0)
			return balancers[i];
	return NULL;
}

int
lb_eligible(const struct lb_request *req, unsigned i)
{
	return req->view[i].weight > 0 && !lb_was_tried(i, req->tried, req->ntried);
}

int
lb_was_tried(unsigned i, const unsigned *tried, size_t ntried)
{
	for (size_t k = 0; k < ntried; k++)
		if (tried[k] == i)
			return 1;
	return 0;
}

uint64_t
lb_mix64(uint64_t x)
{
	/* Xor-shifts and odd multipliers: each step is invertible, and two
	 * rounds make every input bit reach every output bit. */
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	return x;
}

uint64_t
lb_hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = lb_mix64(seed ^ (len * 0x9e3779b97f4a7c15ULL));

	/* Words are read byte by byte, little-endian, so that the result
	 * does not depend on the host. Keys are short (at most 256 bytes):
	 * a full mix per word is affordable and leaves no weak bits. */
	while (len > 0) {
		size_t n = len < 8 ? len : 8;
		uint64_t w = 0;

		for (size_t k = 0; k < n; k++)
			w |= (uint64_t)p[k] << (8 * k);
		h = lb_mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
		p += n;
		len -= n;
	}
	return lb_mix64(h);
}
