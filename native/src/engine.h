// The udp backend's data path: two threads (TUN -> UDP and UDP -> TUN) off the JavaScript thread, each
// woken by epoll, each moving a batch of packets per wake-up.
#ifndef WEFT_ENGINE_H
#define WEFT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"
#include "peer_table.h"

struct engine_config {
  int tun_fd;    // taken over by the engine; closed by engine_stop
  int vnet_hdr;  // the TUN fd was opened with IFF_VNET_HDR (and TUNSETOFFLOAD)
  uint32_t bind_address;  // host order
  uint16_t bind_port;
  uint32_t own_network;  // this node's subnet, host order
  uint8_t own_prefix_len;
  int udp_gso;             // try UDP_SEGMENT on sends
  int udp_gro;             // try UDP_GRO on receives
  const char *netns_path;  // create the UDP socket in this network namespace (NULL: the caller's)
};

enum engine_counter {
  COUNTER_TX_PACKETS = 0,  // inner packets sent to peers
  COUNTER_TX_BYTES,
  COUNTER_RX_PACKETS,  // inner packets from peers written to the TUN
  COUNTER_RX_BYTES,
  COUNTER_ICMP_SENT,    // net-unreachable replies written to the TUN
  COUNTER_TUN_READS,    // read() calls that returned a packet
  COUNTER_TUN_WRITES,   // write() calls (one may carry a coalesced super-packet)
  COUNTER_UDP_SENDS,    // sendmmsg() calls
  COUNTER_UDP_RECVS,    // recvmmsg() calls that returned datagrams
  COUNTER_UDP_DATAGRAMS_RECEIVED,
  COUNTER_TUN_READ_ERRORS,
  COUNTER_GSO_FALLBACKS,  // GSO sends the kernel refused, repeated datagram by datagram (gso_backoff.h)
  COUNTER_COUNT,
};

struct engine_stats {
  uint64_t counters[COUNTER_COUNT];
  uint64_t drops[DROP_REASON_COUNT];
  int vnet_hdr;
  int udp_gso;
  int udp_gro;
  int running;
  size_t peers;
};

struct engine;

// Returns 0, or -1 with a message in err.
int engine_create(const struct engine_config *config, struct engine **out, char *err, size_t err_len);
// Swaps in a new peer table; the data path sees it from its next batch. Returns -1 when out of memory.
int engine_set_peers(struct engine *engine, const struct peer *peers, size_t count);
void engine_read_stats(struct engine *engine, struct engine_stats *out);
// Stops and joins the threads, closes the socket and the TUN fd (a persistent device stays). Idempotent.
void engine_stop(struct engine *engine);
void engine_free(struct engine *engine);

#endif
