// Per-packet IPv4 logic of the udp data path: parsing, checksums, TTL, the ICMP net-unreachable reply.
// Pure (no syscalls): unit tested by native/test/unit.c and fuzzed by native/test/fuzz_*.c.
#ifndef WEFT_PACKET_H
#define WEFT_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>

// Drop reasons; the order is the order of the names in addon.c (drop_reason_names).
enum drop_reason {
  DROP_MALFORMED = 0,
  DROP_NOT_IPV4,
  DROP_UNKNOWN_PEER,
  DROP_SPOOFED_SOURCE,
  DROP_WRONG_DESTINATION,
  DROP_NO_ROUTE,
  DROP_TTL_EXPIRED,
  DROP_UNSUPPORTED_OFFLOAD,
  DROP_SEND_FAILED,
  DROP_TUN_WRITE_FAILED,
  DROP_REASON_COUNT,
  DROP_NONE = -1,
};

#define IPV4_MIN_HEADER 20
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define ICMP_REPLY_TTL 64

struct ipv4_info {
  uint32_t src;  // host byte order
  uint32_t dst;  // host byte order
  uint16_t header_len;
  uint16_t total_len;
  uint16_t frag;  // flags + fragment offset, host order
  uint8_t protocol;
  uint8_t ttl;
};

static inline uint16_t load_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t load_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void store_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

// Parses and validates an IPv4 header: at least 20 bytes, version 4, IHL 5..15 within the bytes given, total
// length covering the header and within the bytes given (bytes past it are padding). Returns DROP_NONE when
// valid.
static inline int ipv4_parse(const uint8_t *p, size_t len, struct ipv4_info *out) {
  if (len < IPV4_MIN_HEADER) return DROP_MALFORMED;
  if ((p[0] >> 4) != 4) return DROP_NOT_IPV4;
  size_t header_len = (size_t)(p[0] & 0x0f) * 4;
  if (header_len < IPV4_MIN_HEADER || header_len > len) return DROP_MALFORMED;
  size_t total_len = load_be16(p + 2);
  if (total_len < header_len || total_len > len) return DROP_MALFORMED;
  out->header_len = (uint16_t)header_len;
  out->total_len = (uint16_t)total_len;
  out->frag = load_be16(p + 6);
  out->ttl = p[8];
  out->protocol = p[9];
  out->src = load_be32(p + 12);
  out->dst = load_be32(p + 16);
  return DROP_NONE;
}

// One's complement sum over memory in native byte order: store the folded result with a native 16-bit
// store (memcpy) and it is the right checksum in network order (RFC 1071, byte order independence).
// Start offsets must be even relative to the checksummed structure.
static inline uint64_t csum_add_carry(uint64_t a, uint64_t b) {
  a += b;
  return a + (a < b);
}

static inline uint64_t csum_partial(const void *buf, size_t len, uint64_t sum) {
  const uint8_t *p = (const uint8_t *)buf;
  // 32-bit words into 64-bit accumulators: no carries to track for up to 2^32 words, and the loop
  // vectorizes (the one's complement sum of 32-bit words folds to that of the 16-bit words).
  uint64_t acc = 0;
  size_t words = len / 4;
  for (size_t i = 0; i < words; i++) {
    uint32_t v;
    memcpy(&v, p + i * 4, 4);
    acc += v;
  }
  p += words * 4;
  len -= words * 4;
  if (len >= 2) {
    uint16_t v;
    memcpy(&v, p, 2);
    acc += v;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t v = 0;
    memcpy(&v, p, 1);  // the odd byte is the high-order byte of a zero-padded word in memory order
    acc += v;
  }
  return csum_add_carry(sum, acc);
}

// Folds to 16 bits, not inverted (native order).
static inline uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  return (uint16_t)sum;
}

static inline void store_csum(uint8_t *at, uint16_t native_value) { memcpy(at, &native_value, 2); }

static inline int ipv4_header_checksum_valid(const uint8_t *p, size_t header_len) {
  return csum_fold(csum_partial(p, header_len, 0)) == 0xffff;
}

static inline void ipv4_set_header_checksum(uint8_t *p, size_t header_len) {
  p[10] = 0;
  p[11] = 0;
  store_csum(p + 10, (uint16_t)~csum_fold(csum_partial(p, header_len, 0)));
}

// Sum of the TCP/UDP pseudo-header (native order), for l4_len bytes of transport header + payload.
static inline uint64_t pseudo_header_sum(const uint8_t *ip, uint8_t protocol, uint32_t l4_len) {
  uint64_t sum = csum_partial(ip + 12, 8, 0);
  sum += htons(protocol);
  sum += htons((uint16_t)l4_len);
  return sum;
}

// RFC 1624 equation 3, in network-order values.
static inline uint16_t checksum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = (uint32_t)(uint16_t)~checksum + (uint16_t)~old_word + new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

// Decrements the TTL in place with an incremental checksum update. Returns 0 (packet untouched) when the
// TTL would reach 0.
static inline int ipv4_decrement_ttl(uint8_t *p) {
  uint8_t ttl = p[8];
  if (ttl <= 1) return 0;
  uint16_t old_word = (uint16_t)((ttl << 8) | p[9]);
  uint16_t new_word = (uint16_t)(((ttl - 1) << 8) | p[9]);
  p[8] = (uint8_t)(ttl - 1);
  store_be16(p + 10, checksum_update16(load_be16(p + 10), old_word, new_word));
  return 1;
}

static inline int prefix_contains(uint32_t network, uint8_t prefix_len, uint32_t addr) {
  uint32_t mask = prefix_len == 0 ? 0 : 0xffffffffu << (32 - prefix_len);
  return (addr & mask) == network;
}

// ICMP types that report an error (RFC 792, RFC 1122 3.2.2): never answered with another error.
static inline int icmp_type_is_error(uint8_t type) {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

// ICMP types known to be queries or informational (echo, router advertisement/solicitation, timestamp,
// information, address mask): answerable. Unknown types are not answered (they might be errors).
static inline int icmp_type_is_query(uint8_t type) {
  return type == 0 || type == 8 || type == 9 || type == 10 || (type >= 13 && type <= 18);
}

// Whether a dropped packet may be answered with ICMP net-unreachable (RFC 1122 3.2.2, RFC 1812 4.3.2.7):
// not a non-first fragment, not from an address that is no single host (0, multicast, broadcast), and, for
// ICMP, only a query such as an echo request, never an error message (so `ping` to a subnet no peer holds
// reports "Destination Net Unreachable" at once). `packet` holds info->total_len valid bytes.
static inline int may_answer_with_icmp(const uint8_t *packet, const struct ipv4_info *info) {
  if (info->frag & 0x1fff) return 0;  // a non-first fragment (the first, MF set and offset 0, may be answered)
  if (info->src == 0 || (info->src >> 28) == 0xe || info->src == 0xffffffffu) return 0;
  if (info->protocol == IPPROTO_ICMP_) {
    if (info->total_len < (size_t)info->header_len + 1) return 0;  // no type: cannot tell it is no error
    uint8_t type = packet[info->header_len];
    if (icmp_type_is_error(type) || !icmp_type_is_query(type)) return 0;
  }
  return 1;
}

#define ICMP_REPLY_MAX (IPV4_MIN_HEADER + 8 + 60 + 8)

// Builds an ICMP net-unreachable reply (from own_addr, quoting the header + 8 bytes) to a valid packet into
// `out` (at least ICMP_REPLY_MAX bytes). Returns its length, or 0 when the packet must not be answered.
static inline size_t icmp_build_net_unreachable(const uint8_t *orig, const struct ipv4_info *info,
                                                uint32_t own_addr, uint8_t *out) {
  if (!may_answer_with_icmp(orig, info)) return 0;
  size_t quoted = info->total_len < (size_t)info->header_len + 8 ? info->total_len : (size_t)info->header_len + 8;
  size_t icmp_len = 8 + quoted;
  size_t total = IPV4_MIN_HEADER + icmp_len;
  memset(out, 0, IPV4_MIN_HEADER + 8);
  out[0] = 0x45;
  store_be16(out + 2, (uint16_t)total);
  out[8] = ICMP_REPLY_TTL;
  out[9] = IPPROTO_ICMP_;
  store_be32(out + 12, own_addr);
  store_be32(out + 16, info->src);
  ipv4_set_header_checksum(out, IPV4_MIN_HEADER);
  uint8_t *icmp = out + IPV4_MIN_HEADER;
  icmp[0] = 3;  // destination unreachable
  icmp[1] = 0;  // net unreachable
  memcpy(icmp + 8, orig, quoted);
  store_csum(icmp + 2, (uint16_t)~csum_fold(csum_partial(icmp, icmp_len, 0)));
  return total;
}

#endif
