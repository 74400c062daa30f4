// libFuzzer target: ipv4_parse, the header checksum, the TTL decrement and the ICMP net-unreachable builder
// on arbitrary bytes. Checks, beyond "no crash, no UB": a reply is a valid IPv4/ICMP packet from our address
// to the sender that quotes the original, and no ICMP error is ever answered.
#include <stdlib.h>

#include "datapath.h"
#include "packet.h"
#include "testlib.h"

#define REQUIRE(cond) \
  do {                \
    if (!(cond)) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *packet = malloc(size ? size : 1);  // exact size: ASan sees any read past the input
  memcpy(packet, data, size);
  struct ipv4_info info;
  if (ipv4_parse(packet, size, &info) == DROP_NONE) {
    REQUIRE(info.header_len >= 20 && info.header_len <= info.total_len && info.total_len <= size);
    uint8_t reply[ICMP_REPLY_MAX];
    size_t len = icmp_build_net_unreachable(packet, &info, IP(10, 5, 1, 0), reply);
    if (info.protocol == IPPROTO_ICMP_ && info.total_len > info.header_len &&
        icmp_type_is_error(packet[info.header_len])) {
      REQUIRE(len == 0);
    }
    if (info.frag & 0x1fff) REQUIRE(len == 0);
    if (len) {
      struct ipv4_info r;
      REQUIRE(len <= ICMP_REPLY_MAX);
      REQUIRE(ipv4_parse(reply, len, &r) == DROP_NONE && r.total_len == len);
      REQUIRE(ipv4_header_checksum_valid(reply, 20));
      REQUIRE(r.src == IP(10, 5, 1, 0) && r.dst == info.src && r.protocol == IPPROTO_ICMP_);
      REQUIRE(reply[20] == 3 && reply[21] == 0);
      REQUIRE(csum_fold(csum_partial(reply + 20, len - 20, 0)) == 0xffff);
      REQUIRE(memcmp(reply + 28, packet, len - 28) == 0);
    }
    int valid = ipv4_header_checksum_valid(packet, info.header_len);
    uint8_t ttl = packet[8];
    if (ipv4_decrement_ttl(packet)) {
      REQUIRE(ttl > 1 && packet[8] == ttl - 1);
      // RFC 1624: the incremental update keeps a valid checksum valid.
      if (valid) REQUIRE(ipv4_header_checksum_valid(packet, info.header_len));
    } else {
      REQUIRE(ttl <= 1);
    }
    ipv4_set_header_checksum(packet, info.header_len);
    REQUIRE(ipv4_header_checksum_valid(packet, info.header_len));
  }
  free(packet);
  return 0;
}
