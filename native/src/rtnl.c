#define _GNU_SOURCE
#include "rtnl.h"

#include <errno.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "netns.h"

// Requests per send: the acks of one window (36 bytes each, more with an error message) fit the receive buffer
// many times over, so none is dropped.
#define WINDOW_BYTES (32 * 1024)
#define RECV_BYTES (64 * 1024)
#define SOCKET_BUFFER (1024 * 1024)
#define ACK_TIMEOUT_S 10

struct transact_call {
  uint8_t *buf;
  size_t len;
  uint32_t count;
  struct rtnl_ack *acks;
  char *err;
  size_t err_len;
};

static void fail_unacked(struct rtnl_ack *acks, uint32_t from, uint32_t to, int error) {
  for (uint32_t i = from; i < to; i++) {
    if (acks[i].acked) continue;
    acks[i].acked = 1;
    acks[i].error = error;
    acks[i].message[0] = 0;
  }
}

static int open_socket(char *err, size_t err_len) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    snprintf(err, err_len, "cannot open a NETLINK_ROUTE socket: %s", strerror(errno));
    return -1;
  }
  int one = 1, size = SOCKET_BUFFER;
  // Extended acks carry the kernel's message ("Nexthop has invalid gateway"); capped acks do not echo requests.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  struct timeval timeout = {.tv_sec = ACK_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
    snprintf(err, err_len, "cannot bind a NETLINK_ROUTE socket: %s", strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int transact(void *arg) {
  struct transact_call *call = arg;
  int fd = open_socket(call->err, call->err_len);
  if (fd < 0) return -1;
  uint8_t *rbuf = malloc(RECV_BYTES);
  if (!rbuf) {
    snprintf(call->err, call->err_len, "out of memory");
    close(fd);
    return -1;
  }
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  size_t offset = 0;
  uint32_t first = 0;
  while (first < call->count) {
    // One window: whole messages up to WINDOW_BYTES (at least one).
    size_t end = offset;
    uint32_t last = first;
    while (last < call->count && (last == first || rtnl_next(call->buf, end) - offset <= WINDOW_BYTES)) {
      end = rtnl_next(call->buf, end);
      last++;
    }
    if (end > call->len) end = call->len;  // an unpadded last message
    ssize_t sent;
    do {
      sent = sendto(fd, call->buf + offset, end - offset, 0, (struct sockaddr *)&kernel, sizeof(kernel));
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
      fail_unacked(call->acks, first, last, errno);
    } else {
      uint32_t pending = last - first;
      while (pending > 0) {
        ssize_t n = recv(fd, rbuf, RECV_BYTES, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          // EAGAIN: no answer within ACK_TIMEOUT_S; ENOBUFS: acks were dropped. Either way, unconfirmed.
          fail_unacked(call->acks, first, last, errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno);
          break;
        }
        int got = rtnl_read_acks(rbuf, (size_t)n, 1, call->count, call->acks);
        if (got < 0) {
          fail_unacked(call->acks, first, last, EPROTO);
          break;
        }
        pending = 0;
        for (uint32_t i = first; i < last; i++) pending += call->acks[i].acked ? 0 : 1;
      }
    }
    offset = end;
    first = last;
  }
  free(rbuf);
  close(fd);
  return 0;
}

int rtnl_transact(const char *netns_path, uint8_t *buf, size_t len, uint32_t count, struct rtnl_ack *acks,
                  char *err, size_t err_len) {
  struct transact_call call = {
      .buf = buf, .len = len, .count = count, .acks = acks, .err = err, .err_len = err_len};
  return netns_run(netns_path, transact, &call, err, err_len);
}

struct ifindex_call {
  const char *const *names;
  size_t n;
  uint32_t *indexes;
};

static int ifindexes(void *arg) {
  struct ifindex_call *call = arg;
  for (size_t i = 0; i < call->n; i++) call->indexes[i] = if_nametoindex(call->names[i]);
  return 0;
}

int rtnl_ifindexes(const char *netns_path, const char *const *names, size_t n, uint32_t *indexes, char *err,
                   size_t err_len) {
  struct ifindex_call call = {.names = names, .n = n, .indexes = indexes};
  return netns_run(netns_path, ifindexes, &call, err, err_len);
}
