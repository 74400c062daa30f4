// Unit tests of the engine's pure parts (packet.h, datapath.c, offload.c, peer_table.c, gso_backoff.h), built
// with ASan and UBSan by `make -C native/test unit` and run by src/backend/udp/native.test.ts.
// Output: one line per case, "ok <name>" or "not ok <name>: <file>:<line> <failed check>", then
// "# passed N failed M". Exit status 1 when a case failed.
#include <errno.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>

#include "datapath.h"
#include "gso_backoff.h"
#include "offload.h"
#include "packet.h"
#include "peer_table.h"
#include "rtnl_msg.h"
#include "testlib.h"

static char failure[512];

#define CHECK(cond)                                                                            \
  do {                                                                                         \
    if (!(cond) && !failure[0]) snprintf(failure, sizeof(failure), "%s:%d %s", __FILE__, __LINE__, #cond); \
  } while (0)

static uint8_t buf[70000];
static uint8_t out[200000];

// ---------------------------------------------------------------------------------------------------------
// ipv4_parse

static void ipv4_parse_accepts_a_valid_header_and_reads_its_fields(void) {
  build_ipv4(buf, IP(10, 1, 2, 3), IP(10, 4, 5, 6), 17, 9, 12);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, 32, &info) == DROP_NONE);
  CHECK(info.src == IP(10, 1, 2, 3) && info.dst == IP(10, 4, 5, 6));
  CHECK(info.header_len == 20 && info.total_len == 32 && info.protocol == 17 && info.ttl == 9);
  CHECK(info.frag == 0x4000);
  // Bytes past the total length are padding, allowed.
  CHECK(ipv4_parse(buf, 60, &info) == DROP_NONE && info.total_len == 32);
}

static void ipv4_parse_rejects_short_wrong_version_and_bad_lengths(void) {
  struct ipv4_info info;
  build_ipv4(buf, IP(10, 1, 2, 3), IP(10, 4, 5, 6), 17, 64, 0);
  CHECK(ipv4_parse(buf, 19, &info) == DROP_MALFORMED);
  CHECK(ipv4_parse(buf, 0, &info) == DROP_MALFORMED);
  buf[0] = 0x65;
  CHECK(ipv4_parse(buf, 20, &info) == DROP_NOT_IPV4);
  buf[0] = 0x44;  // IHL 4: below the minimum
  CHECK(ipv4_parse(buf, 20, &info) == DROP_MALFORMED);
  buf[0] = 0x46;  // IHL 6: 24 bytes of header in a 20-byte packet
  CHECK(ipv4_parse(buf, 20, &info) == DROP_MALFORMED);
  buf[0] = 0x45;
  store_be16(buf + 2, 19);  // total length shorter than the header
  CHECK(ipv4_parse(buf, 20, &info) == DROP_MALFORMED);
  store_be16(buf + 2, 21);  // total length past the bytes given
  CHECK(ipv4_parse(buf, 20, &info) == DROP_MALFORMED);
}

static void ipv4_parse_accepts_options(void) {
  memset(buf, 0, 64);
  buf[0] = 0x4f;  // IHL 15: 60-byte header
  store_be16(buf + 2, 60);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, 60, &info) == DROP_NONE && info.header_len == 60);
  CHECK(ipv4_parse(buf, 59, &info) == DROP_MALFORMED);
}

// ---------------------------------------------------------------------------------------------------------
// checksums and TTL

static void checksum_matches_rfc1071_example_and_odd_lengths(void) {
  // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (network order value).
  const uint8_t words[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint16_t folded = csum_fold(csum_partial(words, sizeof(words), 0));
  uint8_t stored[2];
  memcpy(stored, &folded, 2);
  CHECK(load_be16(stored) == 0xddf2);
  // An odd trailing byte counts as the high byte of a zero-padded word.
  const uint8_t odd[] = {0x12, 0x34, 0x56};
  folded = csum_fold(csum_partial(odd, sizeof(odd), 0));
  memcpy(stored, &folded, 2);
  CHECK(load_be16(stored) == 0x1234 + 0x5600);
  // Summing in pieces at even offsets equals summing at once.
  for (size_t i = 0; i < 1001; i++) buf[i] = (uint8_t)(i * 7 + 3);
  CHECK(csum_fold(csum_partial(buf, 1001, 0)) == csum_fold(csum_partial(buf + 600, 401, csum_partial(buf, 600, 0))));
}

static void header_checksum_set_then_valid_and_detects_a_flip(void) {
  build_ipv4(buf, IP(192, 168, 0, 1), IP(192, 168, 0, 199), 6, 64, 0);
  CHECK(ipv4_header_checksum_valid(buf, 20));
  // Known value: 4500 0014 1234 4000 4006 ---- c0a8 0001 c0a8 00c7 -> checksum b8f1 (by hand, RFC 1071).
  buf[10] = buf[11] = 0;
  uint32_t sum = 0x4500 + 0x0014 + 0x1234 + 0x4000 + 0x4006 + 0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ipv4_set_header_checksum(buf, 20);
  CHECK(load_be16(buf + 10) == (uint16_t)~sum);
  buf[15] ^= 1;
  CHECK(!ipv4_header_checksum_valid(buf, 20));
}

static void ttl_decrement_updates_the_checksum_incrementally_for_every_ttl(void) {
  for (int ttl = 2; ttl <= 255; ttl++) {
    build_ipv4(buf, IP(10, 0, 0, 1), IP(10, 0, 1, 1), 1, (uint8_t)ttl, 0);
    CHECK(ipv4_decrement_ttl(buf) == 1);
    CHECK(buf[8] == ttl - 1);
    CHECK(ipv4_header_checksum_valid(buf, 20));
  }
  build_ipv4(buf, IP(10, 0, 0, 1), IP(10, 0, 1, 1), 1, 1, 0);
  uint8_t copy[20];
  memcpy(copy, buf, 20);
  CHECK(ipv4_decrement_ttl(buf) == 0);
  CHECK(memcmp(copy, buf, 20) == 0);  // untouched
  build_ipv4(buf, IP(10, 0, 0, 1), IP(10, 0, 1, 1), 1, 0, 0);
  CHECK(ipv4_decrement_ttl(buf) == 0);
}

// ---------------------------------------------------------------------------------------------------------
// ICMP net-unreachable

static size_t icmp_reply_to(uint8_t *packet, uint8_t *reply) {
  struct ipv4_info info;
  if (ipv4_parse(packet, load_be16(packet + 2), &info) != DROP_NONE) return (size_t)-1;
  return icmp_build_net_unreachable(packet, &info, IP(10, 5, 1, 0), reply);
}

static void icmp_answers_an_echo_request_with_net_unreachable(void) {
  build_ipv4(buf, IP(10, 5, 1, 7), IP(10, 5, 9, 1), IPPROTO_ICMP_, 64, 64);
  buf[20] = 8;  // echo request
  for (int i = 1; i < 64; i++) buf[20 + i] = (uint8_t)i;
  uint8_t reply[ICMP_REPLY_MAX];
  size_t len = icmp_reply_to(buf, reply);
  CHECK(len == 20 + 8 + 28);
  struct ipv4_info info;
  CHECK(ipv4_parse(reply, len, &info) == DROP_NONE);
  CHECK(ipv4_header_checksum_valid(reply, 20));
  CHECK(info.src == IP(10, 5, 1, 0) && info.dst == IP(10, 5, 1, 7) && info.protocol == IPPROTO_ICMP_);
  CHECK(info.ttl == ICMP_REPLY_TTL);
  CHECK(reply[20] == 3 && reply[21] == 0);  // destination unreachable, net unreachable
  CHECK(csum_fold(csum_partial(reply + 20, len - 20, 0)) == 0xffff);
  CHECK(memcmp(reply + 28, buf, 28) == 0);  // quotes the header and 8 bytes
  buf[20] = 0;  // an echo reply is no error either
  CHECK(icmp_reply_to(buf, reply) > 0);
  buf[20] = 13;  // timestamp
  CHECK(icmp_reply_to(buf, reply) > 0);
}

static void icmp_never_answers_icmp_errors_or_unknown_types(void) {
  uint8_t reply[ICMP_REPLY_MAX];
  const uint8_t errors[] = {3, 4, 5, 11, 12};
  for (size_t i = 0; i < sizeof(errors); i++) {
    build_ipv4(buf, IP(10, 5, 1, 7), IP(10, 5, 9, 1), IPPROTO_ICMP_, 64, 36);
    buf[20] = errors[i];
    CHECK(icmp_reply_to(buf, reply) == 0);
  }
  build_ipv4(buf, IP(10, 5, 1, 7), IP(10, 5, 9, 1), IPPROTO_ICMP_, 64, 8);
  buf[20] = 42;  // unassigned: might be an error
  CHECK(icmp_reply_to(buf, reply) == 0);
  build_ipv4(buf, IP(10, 5, 1, 7), IP(10, 5, 9, 1), IPPROTO_ICMP_, 64, 0);  // no ICMP header at all
  CHECK(icmp_reply_to(buf, reply) == 0);
}

static void icmp_answers_first_fragments_only_and_single_hosts_only(void) {
  uint8_t reply[ICMP_REPLY_MAX];
  build_ipv4(buf, IP(10, 5, 1, 7), IP(10, 5, 9, 1), 17, 64, 100);
  CHECK(icmp_reply_to(buf, reply) > 0);
  store_be16(buf + 6, 0x2000);  // MF, offset 0: the first fragment
  ipv4_set_header_checksum(buf, 20);
  CHECK(icmp_reply_to(buf, reply) > 0);
  store_be16(buf + 6, 0x0010);  // offset 16: not the first
  ipv4_set_header_checksum(buf, 20);
  CHECK(icmp_reply_to(buf, reply) == 0);
  store_be16(buf + 6, 0x2010);
  ipv4_set_header_checksum(buf, 20);
  CHECK(icmp_reply_to(buf, reply) == 0);
  const uint32_t sources[] = {0, IP(224, 0, 0, 5), IP(239, 1, 1, 1), 0xffffffffu};
  for (size_t i = 0; i < 4; i++) {
    build_ipv4(buf, sources[i], IP(10, 5, 9, 1), 17, 64, 100);
    CHECK(icmp_reply_to(buf, reply) == 0);
  }
}

static void icmp_quotes_less_when_the_packet_is_shorter(void) {
  uint8_t reply[ICMP_REPLY_MAX];
  build_ipv4(buf, IP(10, 5, 1, 7), IP(10, 5, 9, 1), 17, 64, 3);
  size_t len = icmp_reply_to(buf, reply);
  CHECK(len == 20 + 8 + 23);
  CHECK(csum_fold(csum_partial(reply + 20, len - 20, 0)) == 0xffff);  // odd length checksummed right
  CHECK(load_be16(reply + 2) == len);
}

// ---------------------------------------------------------------------------------------------------------
// virtio header (TX offloads) and segmentation

static struct virtio_net_hdr vnet(uint8_t gso_type, uint16_t gso_size, int needs_csum) {
  struct virtio_net_hdr h;
  memset(&h, 0, sizeof(h));
  h.gso_type = gso_type;
  h.gso_size = gso_size;
  if (needs_csum) {
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 20;
    h.csum_offset = 16;
  }
  return h;
}

static void vnet_plain_packet_is_sent_as_it_is(void) {
  size_t len = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1000, 0x18, 0, 100);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, len, &info) == DROP_NONE);
  struct virtio_net_hdr h = vnet(VIRTIO_NET_HDR_GSO_NONE, 0, 0);
  struct offload_tx_result r;
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_NONE);
  CHECK(r.segmented == 0);
}

static void vnet_partial_checksum_is_completed(void) {
  size_t len = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1000, 0x18, 12, 333);
  // As the kernel hands it over: the field holds the folded pseudo-header sum, not the checksum.
  store_csum(buf + 36, csum_fold(pseudo_header_sum(buf, IPPROTO_TCP_, (uint32_t)(len - 20))));
  CHECK(!tcp4_checksum_valid(buf, len));
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, len, &info) == DROP_NONE);
  struct virtio_net_hdr h = vnet(VIRTIO_NET_HDR_GSO_NONE, 0, 1);
  struct offload_tx_result r;
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_NONE);
  CHECK(tcp4_checksum_valid(buf, len));
}

static void vnet_bad_checksum_offsets_and_unknown_gso_types_are_dropped(void) {
  size_t len = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1000, 0x18, 0, 10);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, len, &info) == DROP_NONE);
  struct offload_tx_result r;
  struct virtio_net_hdr h = vnet(VIRTIO_NET_HDR_GSO_NONE, 0, 1);
  h.csum_start = 21;  // odd
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_MALFORMED);
  h.csum_start = (uint16_t)(len - 1);  // the field would end past the packet
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_MALFORMED);
  h = vnet(VIRTIO_NET_HDR_GSO_UDP, 1000, 1);
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_UNSUPPORTED_OFFLOAD);
  h = vnet(VIRTIO_NET_HDR_GSO_TCPV6, 1000, 1);
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_UNSUPPORTED_OFFLOAD);
}

static void gso_segments_a_tcp_super_packet_as_the_kernel_would(void) {
  // CWR | PSH | ACK | FIN on the super-packet, 3000 payload bytes in 1000-byte segments, 12 bytes of options.
  size_t len = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 0xfffffc00u, 0x80 | 0x18 | 0x01, 12, 3000);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, len, &info) == DROP_NONE);
  struct virtio_net_hdr h = vnet(VIRTIO_NET_HDR_GSO_TCPV4, 1000, 1);
  struct offload_tx_result r;
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_NONE);
  CHECK(r.segmented && r.segments == 3 && r.segment_len == 20 + 32 + 1000 && r.total == 3 * (52 + 1000));
  for (size_t k = 0; k < 3; k++) {
    uint8_t *seg = out + k * r.segment_len;
    struct ipv4_info s;
    CHECK(ipv4_parse(seg, r.segment_len, &s) == DROP_NONE && s.total_len == r.segment_len);
    CHECK(ipv4_header_checksum_valid(seg, 20));
    CHECK(tcp4_checksum_valid(seg, s.total_len));
    CHECK(load_be16(seg + 4) == 0x1234 + k);                             // IDs count up
    CHECK(load_be32(seg + 24) == (uint32_t)(0xfffffc00u + 1000 * k));  // sequence numbers wrap
    uint8_t flags = seg[33];
    CHECK(((flags & 0x80) != 0) == (k == 0));             // CWR on the first only
    CHECK(((flags & 0x09) != 0) == (k == 2));             // FIN, PSH on the last only
    CHECK(memcmp(seg + 52, buf + 52 + 1000 * k, 1000) == 0);  // the payload, in order
  }
}

static void gso_segmentation_refuses_what_does_not_fit(void) {
  size_t len = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x10, 0, 3000);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, len, &info) == DROP_NONE);
  struct offload_tx_result r;
  struct virtio_net_hdr h = vnet(VIRTIO_NET_HDR_GSO_TCPV4, 0, 1);
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_MALFORMED);
  h = vnet(VIRTIO_NET_HDR_GSO_TCPV4, 10, 1);  // 300 segments, more than allowed
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_MALFORMED);
  h = vnet(VIRTIO_NET_HDR_GSO_TCPV4, 1000, 1);
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, 2000, 128, &r) == DROP_MALFORMED);  // arena too small
  build_ipv4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 17, 64, 3000);  // not TCP
  CHECK(ipv4_parse(buf, 3020, &info) == DROP_NONE);
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_MALFORMED);
  build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x10, 0, 10);
  buf[32] = 0xf0;  // TCP data offset 60: past the packet
  CHECK(ipv4_parse(buf, 50, &info) == DROP_NONE);
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, out, sizeof(out), 128, &r) == DROP_MALFORMED);
}

// ---------------------------------------------------------------------------------------------------------
// GRO (merging for TUN writes)

static void gro_merges_consecutive_segments_of_one_flow(void) {
  uint8_t *segs[3];
  struct tcp4_segment run[3];
  size_t payload = 0;
  for (int k = 0; k < 3; k++) {
    segs[k] = buf + k * 2000;
    size_t len = build_tcp4(segs[k], IP(10, 1, 0, 2), IP(10, 2, 0, 2), 5000 + 1400 * k, k == 2 ? 0x18 : 0x10, 12,
                            k == 2 ? 700 : 1400);
    CHECK(offload_tcp4_coalescable(segs[k], len, &run[k]));
    if (k > 0) CHECK(offload_tcp4_can_follow(&run[0], &run[k - 1], &run[k], payload));
    payload += run[k].payload_len;
  }
  size_t len = offload_build_tcp4_super(run, 3, out);
  CHECK(len == VNET_HDR_LEN + 20 + 32 + 3500);
  struct virtio_net_hdr h;
  memcpy(&h, out, VNET_HDR_LEN);
  CHECK(h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 && h.gso_size == 1400 && h.hdr_len == 52);
  CHECK(h.flags == VIRTIO_NET_HDR_F_NEEDS_CSUM && h.csum_start == 20 && h.csum_offset == 16);
  uint8_t *ip = out + VNET_HDR_LEN;
  struct ipv4_info info;
  CHECK(ipv4_parse(ip, len - VNET_HDR_LEN, &info) == DROP_NONE && info.total_len == 52 + 3500);
  CHECK(ipv4_header_checksum_valid(ip, 20));
  CHECK((ip[33] & 0x08) != 0);  // PSH of the last segment kept
  // The partial checksum, once completed, is the right one.
  CHECK(offload_complete_checksum(ip, info.total_len, 20, 16));
  CHECK(tcp4_checksum_valid(ip, info.total_len));
  CHECK(memcmp(ip + 52, segs[0] + 52, 1400) == 0 && memcmp(ip + 52 + 2800, segs[2] + 52, 700) == 0);
}

static void gro_keeps_apart_what_must_not_merge(void) {
  struct tcp4_segment a, b;
  size_t la = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 100, 0x10, 0, 500);
  CHECK(offload_tcp4_coalescable(buf, la, &a));
  uint8_t *next = buf + 4000;
  size_t lb = build_tcp4(next, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 700, 0x10, 0, 500);  // a gap in sequence
  CHECK(offload_tcp4_coalescable(next, lb, &b) && !offload_tcp4_can_follow(&a, &a, &b, 500));
  lb = build_tcp4(next, IP(10, 1, 0, 2), IP(10, 2, 0, 3), 600, 0x10, 0, 500);  // another destination
  CHECK(offload_tcp4_coalescable(next, lb, &b) && !offload_tcp4_can_follow(&a, &a, &b, 500));
  lb = build_tcp4(next, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 600, 0x10, 0, 600);  // longer than the first
  CHECK(offload_tcp4_coalescable(next, lb, &b) && !offload_tcp4_can_follow(&a, &a, &b, 500));
  la = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 100, 0x18, 0, 500);  // PSH ends a run
  CHECK(offload_tcp4_coalescable(buf, la, &a));
  lb = build_tcp4(next, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 600, 0x10, 0, 500);
  CHECK(offload_tcp4_coalescable(next, lb, &b) && !offload_tcp4_can_follow(&a, &a, &b, 500));
  // Not coalescable at all: SYN, no payload, a fragment, a bad TCP checksum, IP options.
  CHECK(!offload_tcp4_coalescable(buf, build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x12, 0, 10), &a));
  CHECK(!offload_tcp4_coalescable(buf, build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x10, 0, 0), &a));
  la = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x10, 0, 10);
  store_be16(buf + 6, 0x2000);
  CHECK(!offload_tcp4_coalescable(buf, la, &a));
  la = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x10, 0, 10);
  buf[45] ^= 0xff;
  CHECK(!offload_tcp4_coalescable(buf, la, &a));
  la = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 1, 0x10, 0, 10);
  buf[0] = 0x46;
  CHECK(!offload_tcp4_coalescable(buf, la, &a));
}

static void gso_then_gro_round_trips_the_payload(void) {
  static uint8_t arena[100000];
  size_t len = build_tcp4(buf, IP(10, 1, 0, 2), IP(10, 2, 0, 2), 42, 0x10, 12, 60000);
  struct ipv4_info info;
  CHECK(ipv4_parse(buf, len, &info) == DROP_NONE);
  struct virtio_net_hdr h = vnet(VIRTIO_NET_HDR_GSO_TCPV4, 1388, 1);
  struct offload_tx_result r;
  CHECK(offload_tx_prepare((uint8_t *)&h, buf, &info, arena, sizeof(arena), 128, &r) == DROP_NONE);
  CHECK(r.segments == 44);
  struct tcp4_segment run[64];
  size_t payload = 0;
  for (size_t k = 0; k < r.segments; k++) {
    size_t seg_len = k + 1 == r.segments ? r.total - k * r.segment_len : r.segment_len;
    CHECK(offload_tcp4_coalescable(arena + k * r.segment_len, seg_len, &run[k]));
    if (k > 0) CHECK(offload_tcp4_can_follow(&run[0], &run[k - 1], &run[k], payload));
    payload += run[k].payload_len;
  }
  size_t super = offload_build_tcp4_super(run, r.segments, out);
  CHECK(super == VNET_HDR_LEN + len);
  CHECK(memcmp(out + VNET_HDR_LEN + 52, buf + 52, 60000) == 0);
}

// ---------------------------------------------------------------------------------------------------------
// peer table

static struct peer make_peer(uint32_t network, uint8_t len, uint32_t address, uint16_t port) {
  struct peer p;
  memset(&p, 0, sizeof(p));
  p.network = network;
  p.prefix_len = len;
  p.address = address;
  p.port = port;
  return p;
}

static void peer_table_routes_by_longest_prefix(void) {
  struct peer peers[] = {
      make_peer(IP(10, 5, 0, 0), 16, IP(192, 168, 0, 1), 8285),
      make_peer(IP(10, 5, 7, 0), 24, IP(192, 168, 0, 2), 8285),
      make_peer(IP(10, 5, 7, 128), 25, IP(192, 168, 0, 3), 8285),
      make_peer(0, 0, IP(192, 168, 0, 4), 8285),
  };
  struct peer_table *t = peer_table_build(peers, 4);
  CHECK(t && peer_table_count(t) == 4);
  CHECK(peer_table_route(t, IP(10, 5, 7, 200))->address == IP(192, 168, 0, 3));
  CHECK(peer_table_route(t, IP(10, 5, 7, 1))->address == IP(192, 168, 0, 2));
  CHECK(peer_table_route(t, IP(10, 5, 8, 1))->address == IP(192, 168, 0, 1));
  CHECK(peer_table_route(t, IP(8, 8, 8, 8))->address == IP(192, 168, 0, 4));
  peer_table_free(t);
  t = peer_table_build(peers, 2);
  CHECK(peer_table_route(t, IP(10, 6, 0, 1)) == NULL);
  peer_table_free(t);
  t = peer_table_build(NULL, 0);
  CHECK(t && peer_table_count(t) == 0 && peer_table_route(t, IP(10, 5, 7, 1)) == NULL);
  CHECK(!peer_table_is_sender(t, IP(192, 168, 0, 1)));
  peer_table_free(t);
}

static void peer_table_later_duplicates_replace_and_senders_ignore_ports(void) {
  struct peer peers[] = {
      make_peer(IP(10, 5, 1, 0), 24, IP(192, 168, 0, 1), 8285),
      make_peer(IP(10, 5, 1, 0), 24, IP(192, 168, 0, 9), 8285),
  };
  struct peer_table *t = peer_table_build(peers, 2);
  CHECK(peer_table_route(t, IP(10, 5, 1, 1))->address == IP(192, 168, 0, 9));
  CHECK(peer_table_is_sender(t, IP(192, 168, 0, 9)));
  CHECK(!peer_table_is_sender(t, IP(192, 168, 0, 10)));
  peer_table_free(t);
}

static void peer_table_holds_5000_peers(void) {
  enum { N = 5000 };
  struct peer *peers = calloc(N, sizeof(*peers));
  for (uint32_t i = 0; i < N; i++) peers[i] = make_peer(IP(10, 0, 0, 0) + (i << 8), 24, IP(172, 16, 0, 0) + i, 8285);
  struct peer_table *t = peer_table_build(peers, N);
  CHECK(t && peer_table_count(t) == N);
  for (uint32_t i = 0; i < N; i++) {
    const struct peer *p = peer_table_route(t, IP(10, 0, 0, 77) + (i << 8));
    CHECK(p && p->address == IP(172, 16, 0, 0) + i);
    CHECK(peer_table_is_sender(t, IP(172, 16, 0, 0) + i));
  }
  CHECK(peer_table_route(t, IP(10, 0, 0, 0) + (N << 8)) == NULL);
  CHECK(!peer_table_is_sender(t, IP(172, 16, 0, 0) + N));
  peer_table_free(t);
  free(peers);
}

static void peer_table_rebuild_reuses_a_spare_and_forgets_its_old_entries(void) {
  struct peer big[40];
  for (uint32_t i = 0; i < 40; i++) big[i] = make_peer(IP(10, 7, 0, 0) + (i << 8), 24, IP(172, 16, 1, 0) + i, 8285);
  struct peer_table *t = peer_table_build(big, 40);
  struct peer small[] = {make_peer(IP(10, 5, 0, 0), 16, IP(192, 168, 0, 1), 8285)};
  struct peer_table *r = peer_table_rebuild(t, small, 1);  // fits: the same memory, nothing of the old table
  CHECK(r == t && peer_table_count(r) == 1);
  CHECK(peer_table_route(r, IP(10, 5, 3, 3))->address == IP(192, 168, 0, 1));
  CHECK(peer_table_route(r, IP(10, 7, 3, 3)) == NULL && !peer_table_is_sender(r, IP(172, 16, 1, 3)));
  r = peer_table_rebuild(r, big, 40);
  CHECK(peer_table_route(r, IP(10, 7, 39, 1))->address == IP(172, 16, 1, 39));
  CHECK(peer_table_route(r, IP(10, 5, 3, 3)) == NULL && !peer_table_is_sender(r, IP(192, 168, 0, 1)));
  struct peer *huge = calloc(3000, sizeof(*huge));
  for (uint32_t i = 0; i < 3000; i++) huge[i] = make_peer(IP(10, 0, 0, 0) + (i << 8), 24, IP(172, 17, 0, 0) + i, 1);
  r = peer_table_rebuild(r, huge, 3000);  // does not fit: replaced
  CHECK(r && peer_table_count(r) == 3000 && peer_table_route(r, IP(10, 11, 183, 9))->address == IP(172, 17, 0, 0) + 2999);
  peer_table_free(r);
  free(huge);
}

// ---------------------------------------------------------------------------------------------------------
// per-packet decisions

static void decide_tun_packet_routes_or_reports_no_route(void) {
  struct peer peers[] = {make_peer(IP(10, 5, 2, 0), 24, IP(192, 168, 0, 2), 8285)};
  struct peer_table *t = peer_table_build(peers, 1);
  struct ipv4_info info;
  const struct peer *p;
  build_ipv4(buf, IP(10, 5, 1, 3), IP(10, 5, 2, 3), 17, 64, 8);
  CHECK(datapath_decide_tun_packet(t, buf, 28, &info, &p) == DROP_NONE && p->address == IP(192, 168, 0, 2));
  build_ipv4(buf, IP(10, 5, 1, 3), IP(10, 5, 3, 3), 17, 64, 8);
  CHECK(datapath_decide_tun_packet(t, buf, 28, &info, &p) == DROP_NO_ROUTE && p == NULL);
  buf[0] = 0x60;
  CHECK(datapath_decide_tun_packet(t, buf, 28, &info, &p) == DROP_NOT_IPV4);
  peer_table_free(t);
}

static void decide_peer_packet_checks_source_destination_and_ttl(void) {
  // Two peers share one public address (two nodes behind one NAT): each may send for both subnets.
  struct peer peers[] = {
      make_peer(IP(10, 5, 2, 0), 24, IP(203, 0, 113, 9), 8285),
      make_peer(IP(10, 5, 3, 0), 24, IP(203, 0, 113, 9), 8285),
      make_peer(IP(10, 5, 4, 0), 24, IP(192, 168, 0, 4), 8285),
  };
  struct peer_table *t = peer_table_build(peers, 3);
  const uint32_t own = IP(10, 5, 1, 0);
  struct ipv4_info info;
  build_ipv4(buf, IP(10, 5, 2, 3), IP(10, 5, 1, 3), 17, 64, 8);
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_NONE);
  CHECK(buf[8] == 63 && ipv4_header_checksum_valid(buf, 20));  // TTL decremented, checksum kept right
  build_ipv4(buf, IP(10, 5, 3, 3), IP(10, 5, 1, 3), 17, 64, 8);
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_NONE);
  build_ipv4(buf, IP(10, 5, 4, 3), IP(10, 5, 1, 3), 17, 64, 8);  // another peer's pod
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_SPOOFED_SOURCE);
  build_ipv4(buf, IP(172, 16, 0, 1), IP(10, 5, 1, 3), 17, 64, 8);  // no peer's pod
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_SPOOFED_SOURCE);
  build_ipv4(buf, IP(10, 5, 2, 3), IP(10, 5, 4, 3), 17, 64, 8);  // not for this node
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_WRONG_DESTINATION);
  build_ipv4(buf, IP(10, 5, 2, 3), IP(10, 5, 1, 3), 17, 1, 8);
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_TTL_EXPIRED);
  build_ipv4(buf, IP(10, 5, 2, 3), IP(10, 5, 1, 3), 17, 64, 8);
  buf[10] ^= 1;
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 28, own, 24, &info) == DROP_MALFORMED);
  CHECK(datapath_decide_peer_packet(t, IP(203, 0, 113, 9), buf, 10, own, 24, &info) == DROP_MALFORMED);
  peer_table_free(t);
}

// ---------------------------------------------------------------------------------------------------------
// UDP GSO back-off

static void gso_backoff_falls_back_for_a_while_then_retries(void) {
  struct gso_backoff b = {0};
  CHECK(gso_backoff_allows(&b, 5));
  gso_backoff_refused(&b, 10000);
  CHECK(!gso_backoff_allows(&b, 10001) && !gso_backoff_allows(&b, 10999) && gso_backoff_allows(&b, 11000));
  gso_backoff_refused(&b, 10500);  // a send queued before the first refusal: no longer wait
  CHECK(gso_backoff_allows(&b, 11000));
  gso_backoff_refused(&b, 11000);  // refused again on the retry: twice as long
  CHECK(!gso_backoff_allows(&b, 12999) && gso_backoff_allows(&b, 13000));
  for (int i = 0; i < 20; i++) gso_backoff_refused(&b, b.resume_at_ms);
  CHECK(b.delay_ms == GSO_BACKOFF_MAX_MS);
  gso_backoff_succeeded(&b);
  gso_backoff_refused(&b, b.resume_at_ms + 1);
  CHECK(b.delay_ms == GSO_BACKOFF_MIN_MS);
}

// ---------------------------------------------------------------------------------------------------------

struct test_case {
  const char *name;
  void (*run)(void);
};

// ---------------------------------------------------------------------------------------------------------
// rtnl_msg (the rtnetlink writer's numbering and ack parsing)

static size_t put_msg(uint8_t *at, uint16_t type, uint16_t flags, uint32_t seq, const void *payload, size_t len) {
  struct nlmsghdr hdr = {.nlmsg_len = (uint32_t)(NLMSG_HDRLEN + len), .nlmsg_type = type, .nlmsg_flags = flags,
                         .nlmsg_seq = seq};
  memcpy(at, &hdr, sizeof(hdr));
  if (len) memcpy(at + NLMSG_HDRLEN, payload, len);
  return NLMSG_ALIGN(hdr.nlmsg_len);
}

static void rtnl_number_numbers_whole_messages_and_rejects_torn_ones(void) {
  uint8_t msgs[128] = {0};
  uint8_t body[12] = {0};
  size_t len = put_msg(msgs, 24, NLM_F_REQUEST, 0, body, sizeof(body));
  len += put_msg(msgs + len, 29, NLM_F_REQUEST, 0, body, 10);  // 26 bytes, padded to 28
  CHECK(rtnl_number(msgs, len, 1) == 2);
  struct nlmsghdr a, b;
  memcpy(&a, msgs, sizeof(a));
  memcpy(&b, msgs + 28, sizeof(b));
  CHECK(a.nlmsg_seq == 1 && b.nlmsg_seq == 2);
  CHECK((a.nlmsg_flags & NLM_F_ACK) && (b.nlmsg_flags & NLM_F_ACK) && a.nlmsg_pid == 0);
  CHECK(rtnl_next(msgs, 0) == 28 && rtnl_next(msgs, 28) == 56);
  CHECK(rtnl_number(msgs, len - 1, 1) == -1);  // the second message runs past the end
  CHECK(rtnl_number(msgs, 8, 1) == -1);        // shorter than a header
  struct nlmsghdr tiny = {.nlmsg_len = 4};
  memcpy(msgs, &tiny, sizeof(tiny));
  CHECK(rtnl_number(msgs, len, 1) == -1);  // a length below the header's
}

// An ack for seq with `error` (negative errno or 0), capped, optionally with an extended ack message.
static size_t put_ack(uint8_t *at, uint32_t seq, int error, const char *ext) {
  uint8_t payload[256] = {0};
  struct nlmsgerr err = {.error = error, .msg = {.nlmsg_len = 28, .nlmsg_type = 24, .nlmsg_seq = seq}};
  memcpy(payload, &err, sizeof(err));
  size_t len = sizeof(err);
  uint16_t flags = NLM_F_CAPPED;
  if (ext) {
    struct nlattr attr = {.nla_len = (uint16_t)(NLA_HDRLEN + strlen(ext) + 1), .nla_type = NLMSGERR_ATTR_MSG};
    memcpy(payload + len, &attr, sizeof(attr));
    memcpy(payload + len + NLA_HDRLEN, ext, strlen(ext) + 1);
    len += NLA_ALIGN(attr.nla_len);
    flags |= NLM_F_ACK_TLVS;
  }
  return put_msg(at, NLMSG_ERROR, flags, seq, payload, len);
}

static void rtnl_read_acks_records_errors_and_extended_messages_per_sequence(void) {
  uint8_t acks_buf[1024] = {0};
  size_t len = put_ack(acks_buf, 2, -EINVAL, "Nexthop has invalid gateway");
  len += put_ack(acks_buf + len, 1, 0, NULL);
  len += put_ack(acks_buf + len, 99, -ENOENT, NULL);  // not ours: ignored
  len += put_ack(acks_buf + len, 3, -ESRCH, NULL);
  struct rtnl_ack acks[3];
  memset(acks, 0, sizeof(acks));
  CHECK(rtnl_read_acks(acks_buf, len, 1, 3, acks) == 3);
  CHECK(acks[0].acked && acks[0].error == 0 && acks[0].message[0] == 0);
  CHECK(acks[1].acked && acks[1].error == EINVAL && strcmp(acks[1].message, "Nexthop has invalid gateway") == 0);
  CHECK(acks[2].acked && acks[2].error == ESRCH);
  // A second copy of an ack is not counted again.
  CHECK(rtnl_read_acks(acks_buf, len, 1, 3, acks) == 0);
  // A torn buffer is an error, not a read past its end.
  struct rtnl_ack fresh[3];
  memset(fresh, 0, sizeof(fresh));
  CHECK(rtnl_read_acks(acks_buf, 20, 1, 3, fresh) == -1);
  CHECK(rtnl_read_acks(acks_buf, 10, 1, 3, fresh) == -1);
  // An error no kernel sends, INT_MIN, has no positive errno: read as INT_MAX, not negated (found by fuzz_rtnl_msg).
  uint8_t odd[64] = {0};
  size_t odd_len = put_ack(odd, 1, INT_MIN, NULL);
  struct rtnl_ack one[1];
  memset(one, 0, sizeof(one));
  CHECK(rtnl_read_acks(odd, odd_len, 1, 1, one) == 1);
  CHECK(one[0].acked && one[0].error == INT_MAX);
}

static void rtnl_read_acks_bounds_an_overlong_or_unterminated_message(void) {
  uint8_t acks_buf[1024] = {0};
  char longer[400];
  memset(longer, 'x', sizeof(longer) - 1);
  longer[sizeof(longer) - 1] = 0;
  // put_ack's payload is 256 bytes: build the oversize TLV by hand.
  struct nlmsgerr err = {.error = -EINVAL, .msg = {.nlmsg_len = 28, .nlmsg_seq = 1}};
  uint8_t payload[600] = {0};
  memcpy(payload, &err, sizeof(err));
  struct nlattr attr = {.nla_len = (uint16_t)(NLA_HDRLEN + 300), .nla_type = NLMSGERR_ATTR_MSG};
  memcpy(payload + sizeof(err), &attr, sizeof(attr));
  memcpy(payload + sizeof(err) + NLA_HDRLEN, longer, 300);  // no terminating NUL
  size_t len = put_msg(acks_buf, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 1, payload, sizeof(err) + NLA_HDRLEN + 300);
  struct rtnl_ack ack;
  memset(&ack, 0, sizeof(ack));
  CHECK(rtnl_read_acks(acks_buf, len, 1, 1, &ack) == 1);
  CHECK(ack.error == EINVAL && strlen(ack.message) == RTNL_MSG_LEN - 1);
}

#define TEST(fn) {#fn, fn}
static const struct test_case cases[] = {
    TEST(ipv4_parse_accepts_a_valid_header_and_reads_its_fields),
    TEST(ipv4_parse_rejects_short_wrong_version_and_bad_lengths),
    TEST(ipv4_parse_accepts_options),
    TEST(checksum_matches_rfc1071_example_and_odd_lengths),
    TEST(header_checksum_set_then_valid_and_detects_a_flip),
    TEST(ttl_decrement_updates_the_checksum_incrementally_for_every_ttl),
    TEST(icmp_answers_an_echo_request_with_net_unreachable),
    TEST(icmp_never_answers_icmp_errors_or_unknown_types),
    TEST(icmp_answers_first_fragments_only_and_single_hosts_only),
    TEST(icmp_quotes_less_when_the_packet_is_shorter),
    TEST(vnet_plain_packet_is_sent_as_it_is),
    TEST(vnet_partial_checksum_is_completed),
    TEST(vnet_bad_checksum_offsets_and_unknown_gso_types_are_dropped),
    TEST(gso_segments_a_tcp_super_packet_as_the_kernel_would),
    TEST(gso_segmentation_refuses_what_does_not_fit),
    TEST(gro_merges_consecutive_segments_of_one_flow),
    TEST(gro_keeps_apart_what_must_not_merge),
    TEST(gso_then_gro_round_trips_the_payload),
    TEST(peer_table_routes_by_longest_prefix),
    TEST(peer_table_later_duplicates_replace_and_senders_ignore_ports),
    TEST(peer_table_holds_5000_peers),
    TEST(peer_table_rebuild_reuses_a_spare_and_forgets_its_old_entries),
    TEST(decide_tun_packet_routes_or_reports_no_route),
    TEST(decide_peer_packet_checks_source_destination_and_ttl),
    TEST(gso_backoff_falls_back_for_a_while_then_retries),
    TEST(rtnl_number_numbers_whole_messages_and_rejects_torn_ones),
    TEST(rtnl_read_acks_records_errors_and_extended_messages_per_sequence),
    TEST(rtnl_read_acks_bounds_an_overlong_or_unterminated_message),
};

int main(void) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    failure[0] = 0;
    cases[i].run();
    if (failure[0]) {
      printf("not ok %s: %s\n", cases[i].name, failure);
      failed++;
    } else {
      printf("ok %s\n", cases[i].name);
      passed++;
    }
  }
  printf("# passed %d failed %d\n", passed, failed);
  return failed ? 1 : 0;
}
