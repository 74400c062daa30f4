// weft's rtnetlink writer: sends pre-encoded route/neighbour/FDB requests (built in TypeScript,
// src/kernel/rtnl/encode.ts) over one NETLINK_ROUTE socket, optionally inside a named network namespace, and
// returns the kernel's answer per request. Interface names are resolved to indexes here too (in the namespace).
#ifndef WEFT_RTNL_H
#define WEFT_RTNL_H

#include <stddef.h>
#include <stdint.h>

#include "rtnl_msg.h"

// Sends the `count` messages in buf (numbered by rtnl_number) in windows of a few KiB, each followed by reading
// its acks; acks[i] is request i's answer. A request without an ack (socket error, timeout) gets that error.
// Returns 0, or -1 with a message in err when the socket (or the namespace) cannot be used at all.
int rtnl_transact(const char *netns_path, uint8_t *buf, size_t len, uint32_t count, struct rtnl_ack *acks,
                  char *err, size_t err_len);

// indexes[i] = the index of names[i] in the namespace, 0 when there is no such device.
int rtnl_ifindexes(const char *netns_path, const char *const *names, size_t n, uint32_t *indexes, char *err,
                   size_t err_len);

#endif
