#define _GNU_SOURCE
#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "netns.h"

struct tun_call {
  struct tun_request *req;
  char *err;
  size_t err_len;
};

static int tun_open_here(void *arg) {
  struct tun_call *call = arg;
  struct tun_request *req = call->req;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    snprintf(call->err, call->err_len, "open /dev/net/tun: %s", strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (req->vnet_hdr ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, req->name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    snprintf(call->err, call->err_len, "TUNSETIFF %s: %s (an existing device of that name must be a TUN device)",
             req->name, strerror(errno));
    close(fd);
    return -1;
  }
  // Offloads belong to the device and survive re-attaching: always set them to match how we read.
  unsigned int offloads = 0;
  if (req->vnet_hdr) {
    int size = (int)sizeof(struct virtio_net_hdr);
    if (ioctl(fd, TUNSETVNETHDRSZ, &size) != 0) {
      snprintf(call->err, call->err_len, "TUNSETVNETHDRSZ %s: %s", req->name, strerror(errno));
      close(fd);
      return -1;
    }
    offloads = TUN_F_CSUM | TUN_F_TSO4;
  }
  if (ioctl(fd, TUNSETOFFLOAD, offloads) != 0) {
    snprintf(call->err, call->err_len, "TUNSETOFFLOAD %s: %s", req->name, strerror(errno));
    close(fd);
    return -1;
  }
  if (ioctl(fd, TUNSETPERSIST, req->persist ? 1 : 0) != 0) {
    snprintf(call->err, call->err_len, "TUNSETPERSIST %s: %s", req->name, strerror(errno));
    close(fd);
    return -1;
  }
  req->fd = fd;
  memcpy(req->ifname, ifr.ifr_name, IFNAMSIZ);
  req->ifname[IFNAMSIZ - 1] = 0;
  return 0;
}

int tun_open(struct tun_request *req, char *err, size_t err_len) {
  size_t len = strlen(req->name);
  if (len == 0 || len >= IFNAMSIZ || strchr(req->name, '/') || strchr(req->name, ' ')) {
    snprintf(err, err_len, "invalid TUN device name \"%s\": expected 1 to %d characters, no '/' or spaces",
             req->name, IFNAMSIZ - 1);
    return -1;
  }
  struct tun_call call = {.req = req, .err = err, .err_len = err_len};
  req->fd = -1;
  return netns_run(req->netns_path, tun_open_here, &call, err, err_len);
}
