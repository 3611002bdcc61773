/*
 * The registry of balancers and what they share. Each algorithm lives in
 * its own lb_<name>.c behind struct lb_ops.
 */
#include <string.h>

#include "lb.h"

static const struct lb_ops *const balancers[] = {
	&lb_rr_ops,
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
