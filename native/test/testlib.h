// Packet builders and checks shared by the unit runner (unit.c) and the fuzz targets (fuzz_*.c).
#ifndef WEFT_TESTLIB_H
#define WEFT_TESTLIB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "packet.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

// An IPv4 header (IHL 5) with a valid checksum; payload_len bytes after it are left as they are.
static inline void build_ipv4(uint8_t *p, uint32_t src, uint32_t dst, uint8_t protocol, uint8_t ttl,
                              size_t payload_len) {
  memset(p, 0, IPV4_MIN_HEADER);
  p[0] = 0x45;
  store_be16(p + 2, (uint16_t)(IPV4_MIN_HEADER + payload_len));
  store_be16(p + 4, 0x1234);
  store_be16(p + 6, 0x4000);  // DF
  p[8] = ttl;
  p[9] = protocol;
  store_be32(p + 12, src);
  store_be32(p + 16, dst);
  ipv4_set_header_checksum(p, IPV4_MIN_HEADER);
}

// The TCP checksum of an IPv4 packet (IHL 5) is right.
static inline int tcp4_checksum_valid(const uint8_t *ip, size_t total_len) {
  uint64_t sum = pseudo_header_sum(ip, IPPROTO_TCP_, (uint32_t)(total_len - 20));
  return csum_fold(csum_partial(ip + 20, total_len - 20, sum)) == 0xffff;
}

// A TCPv4 packet: 20-byte IP header, 20 + options_len TCP header, payload filled with (seq + i) & 0xff,
// valid checksums. Returns its length.
static inline size_t build_tcp4(uint8_t *p, uint32_t src, uint32_t dst, uint32_t seq, uint8_t flags,
                                size_t options_len, size_t payload_len) {
  size_t tcp_len = 20 + options_len;
  build_ipv4(p, src, dst, IPPROTO_TCP_, 64, tcp_len + payload_len);
  uint8_t *t = p + 20;
  memset(t, 0, tcp_len);
  store_be16(t, 40000);
  store_be16(t + 2, 5201);
  store_be32(t + 4, seq);
  store_be32(t + 8, 777);
  t[12] = (uint8_t)((tcp_len / 4) << 4);
  t[13] = flags;
  store_be16(t + 14, 512);
  for (size_t i = 0; i < options_len; i++) t[20 + i] = 1;  // NOP options
  for (size_t i = 0; i < payload_len; i++) t[tcp_len + i] = (uint8_t)(seq + i);
  uint64_t sum = pseudo_header_sum(p, IPPROTO_TCP_, (uint32_t)(tcp_len + payload_len));
  store_csum(t + 16, (uint16_t)~csum_fold(csum_partial(t, tcp_len + payload_len, sum)));
  return 20 + tcp_len + payload_len;
}

#endif
