// Opening (creating or re-attaching) the TUN device of the udp backend.
#ifndef WEFT_TUN_H
#define WEFT_TUN_H

#include <net/if.h>
#include <stddef.h>

struct tun_request {
  const char *name;
  int persist;   // TUNSETPERSIST: the device outlives the fd (a restarted weftd re-attaches)
  int vnet_hdr;  // IFF_VNET_HDR + TUNSETOFFLOAD(CSUM|TSO4): the kernel hands over TCP super-packets
  const char *netns_path;
  int fd;                   // out
  char ifname[IFNAMSIZ];    // out: the name the kernel gave
};

// Returns 0, or -1 with a message in err.
int tun_open(struct tun_request *req, char *err, size_t err_len);

#endif
