// libFuzzer target: the RX path. The input is a sequence of inner packets (each a 2-byte big-endian length
// and that many bytes) as one peer's datagrams: each goes through datapath_decide_peer_packet against a small
// peer table, and the accepted ones through the TCP merging of TUN writes (offload_tcp4_coalescable,
// offload_tcp4_can_follow, offload_build_tcp4_super). Checks a merged packet is valid IPv4 whose payload is
// the parts' payloads in order, and that its partial checksum completes to the right one.
#include <stdlib.h>

#include "datapath.h"
#include "offload.h"
#include "testlib.h"

#define REQUIRE(cond) \
  do {                \
    if (!(cond)) abort(); \
  } while (0)

#define MAX_PACKETS 64
static uint8_t super[VNET_HDR_LEN + 65536];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct peer_table *table;
  if (!table) {
    struct peer peers[2];
    memset(peers, 0, sizeof(peers));
    peers[0].network = IP(10, 5, 2, 0);
    peers[0].prefix_len = 24;
    peers[0].address = IP(192, 168, 0, 2);
    peers[1].network = IP(10, 6, 0, 0);
    peers[1].prefix_len = 16;
    peers[1].address = IP(192, 168, 0, 3);
    table = peer_table_build(peers, 2);
  }
  uint8_t *packets[MAX_PACKETS];
  struct tcp4_segment run[MAX_PACKETS];
  size_t count = 0;
  size_t off = 0;
  while (count < MAX_PACKETS && off + 2 <= size) {
    size_t len = load_be16(data + off);
    off += 2;
    if (len > size - off) len = size - off;
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, data + off, len);
    off += len;
    struct ipv4_info info;
    int verdict = datapath_decide_peer_packet(table, IP(192, 168, 0, 2), p, len, IP(10, 5, 1, 0), 24, &info);
    if (verdict == DROP_NONE) {
      REQUIRE((info.src & 0xffffff00u) == IP(10, 5, 2, 0) && (info.dst & 0xffffff00u) == IP(10, 5, 1, 0));
      REQUIRE(ipv4_header_checksum_valid(p, info.header_len));
      if (offload_tcp4_coalescable(p, info.total_len, &run[count])) {
        packets[count++] = p;
        continue;
      }
    }
    free(p);
  }
  // Merge the longest run from the first coalescable packet, as rx_write does.
  if (count >= 2) {
    size_t n = 1;
    size_t payload = run[0].payload_len;
    while (n < count && offload_tcp4_can_follow(&run[0], &run[n - 1], &run[n], payload)) {
      payload += run[n].payload_len;
      n++;
    }
    if (n >= 2) {
      size_t len = offload_build_tcp4_super(run, n, super);
      uint8_t *ip = super + VNET_HDR_LEN;
      struct ipv4_info info;
      REQUIRE(len == VNET_HDR_LEN + run[0].header_len + payload);
      REQUIRE(ipv4_parse(ip, len - VNET_HDR_LEN, &info) == DROP_NONE && info.total_len == len - VNET_HDR_LEN);
      REQUIRE(ipv4_header_checksum_valid(ip, 20));
      size_t at = run[0].header_len;
      for (size_t k = 0; k < n; k++) {
        REQUIRE(memcmp(ip + at, run[k].ip + run[k].header_len, run[k].payload_len) == 0);
        at += run[k].payload_len;
      }
      REQUIRE(offload_complete_checksum(ip, info.total_len, 20, 16));
      REQUIRE(tcp4_checksum_valid(ip, info.total_len));
    }
  }
  for (size_t k = 0; k < count; k++) free(packets[k]);
  return 0;
}
