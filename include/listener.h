/*
 * Listening sockets. Each worker gets its own socket per configured
 * listener, bound with SO_REUSEPORT, so the kernel spreads connections
 * across workers without a shared accept queue.
 */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stddef.h>

struct config_listener;

/*
 * A bound, listening, non-blocking socket for l, or -1 with a message
 * ("bind(0.0.0.0:80) failed: Permission denied") in err. Main thread.
 */
int listener_open(const struct config_listener *l, char *err, size_t errlen);

#endif
