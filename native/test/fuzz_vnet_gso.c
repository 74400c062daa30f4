// libFuzzer target: a TUN read with a virtio header (the first 10 bytes) in front of a packet, through the TX
// path's parse, TTL decrement and offload_tx_prepare (partial checksums, TSO segmentation). Checks every
// segment is a valid IPv4/TCP packet with right checksums and that the segments carry the payload in order.
#include <stdlib.h>

#include "datapath.h"
#include "offload.h"
#include "testlib.h"

#define REQUIRE(cond) \
  do {                \
    if (!(cond)) abort(); \
  } while (0)

#define ARENA (65536 + 128 * 120)
static uint8_t arena[ARENA];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < VNET_HDR_LEN) return 0;
  size_t len = size - VNET_HDR_LEN;
  uint8_t *raw = malloc(size);
  memcpy(raw, data, size);
  uint8_t *packet = raw + VNET_HDR_LEN;
  struct ipv4_info info;
  if (ipv4_parse(packet, len, &info) == DROP_NONE && ipv4_decrement_ttl(packet)) {
    struct offload_tx_result r;
    int verdict = offload_tx_prepare(raw, packet, &info, arena, ARENA, 128, &r);
    REQUIRE(verdict == DROP_NONE || verdict == DROP_MALFORMED || verdict == DROP_UNSUPPORTED_OFFLOAD);
    if (verdict == DROP_NONE && r.segmented) {
      REQUIRE(r.segments >= 1 && r.segments <= 128 && r.total <= ARENA);
      size_t tcp_header = (size_t)(packet[info.header_len + 12] >> 4) * 4;
      size_t headers = info.header_len + tcp_header;
      size_t off = 0;
      size_t payload = 0;
      for (size_t k = 0; k < r.segments; k++) {
        size_t seg_len = k + 1 == r.segments ? r.total - off : r.segment_len;
        struct ipv4_info s;
        REQUIRE(ipv4_parse(arena + off, seg_len, &s) == DROP_NONE && s.total_len == seg_len);
        REQUIRE(ipv4_header_checksum_valid(arena + off, s.header_len));
        uint64_t sum = pseudo_header_sum(arena + off, IPPROTO_TCP_, (uint32_t)(seg_len - s.header_len));
        REQUIRE(csum_fold(csum_partial(arena + off + s.header_len, seg_len - s.header_len, sum)) == 0xffff);
        REQUIRE(memcmp(arena + off + headers, packet + headers + payload, seg_len - headers) == 0);
        payload += seg_len - headers;
        off += seg_len;
      }
      REQUIRE(off == r.total && payload == info.total_len - headers);
    }
  }
  free(raw);
  return 0;
}
