// Runs a short piece of work on a helper thread that has joined another network namespace, so devices and
// sockets are created there while the calling (JavaScript) thread never changes namespace.
#ifndef WEFT_NETNS_H
#define WEFT_NETNS_H

#include <stddef.h>

// Calls fn(arg) inside the network namespace at `path` (e.g. /run/netns/NAME), or directly when path is
// NULL. Returns fn's result, or -1 with a message in err when the namespace cannot be entered.
int netns_run(const char *path, int (*fn)(void *arg), void *arg, char *err, size_t err_len);

#endif
