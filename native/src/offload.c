#include "offload.h"

#include <string.h>

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

int offload_complete_checksum(uint8_t *packet, size_t len, uint16_t csum_start, uint16_t csum_offset) {
  if ((csum_start & 1) || (size_t)csum_start + csum_offset + 2 > len) return 0;
  uint16_t folded = (uint16_t)~csum_fold(csum_partial(packet + csum_start, len - csum_start, 0));
  // As the kernel's skb_checksum_help: 0 is sent as 0xffff (required for UDP, equivalent for TCP).
  store_csum(packet + csum_start + csum_offset, folded ? folded : 0xffff);
  return 1;
}

size_t offload_segment_tcp4(const uint8_t *packet, const struct ipv4_info *info, uint16_t gso_size, uint8_t *out,
                            size_t out_cap, size_t *segment_len, size_t *out_len) {
  if (info->protocol != IPPROTO_TCP_ || gso_size == 0) return 0;
  size_t ip_len = info->header_len;
  size_t total = info->total_len;
  if (total < ip_len + 20) return 0;
  const uint8_t *tcp = packet + ip_len;
  size_t tcp_len = (size_t)(tcp[12] >> 4) * 4;
  if (tcp_len < 20 || ip_len + tcp_len > total) return 0;
  size_t headers = ip_len + tcp_len;
  size_t payload = total - headers;
  size_t count = payload == 0 ? 1 : (payload + gso_size - 1) / gso_size;
  if (count * headers + payload > out_cap) return 0;

  uint16_t id = load_be16(packet + 4);
  uint32_t seq = load_be32(tcp + 4);
  uint8_t flags = tcp[13];
  size_t written = 0;
  size_t taken = 0;
  for (size_t k = 0; k < count; k++) {
    size_t chunk = payload - taken < gso_size ? payload - taken : gso_size;
    uint8_t *segment = out + written;
    size_t segment_total = headers + chunk;
    memcpy(segment, packet, headers);
    memcpy(segment + headers, packet + headers + taken, chunk);
    store_be16(segment + 2, (uint16_t)segment_total);
    store_be16(segment + 4, (uint16_t)(id + k));
    ipv4_set_header_checksum(segment, ip_len);
    uint8_t *t = segment + ip_len;
    store_be32(t + 4, seq + (uint32_t)taken);
    uint8_t f = flags;
    // As the kernel's tcp_gso_segment: FIN and PSH only on the last segment, CWR only on the first.
    if (k + 1 < count) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (k > 0) f &= (uint8_t)~TCP_CWR;
    t[13] = f;
    t[16] = 0;
    t[17] = 0;
    uint64_t sum = pseudo_header_sum(segment, IPPROTO_TCP_, (uint32_t)(tcp_len + chunk));
    store_csum(t + 16, (uint16_t)~csum_fold(csum_partial(t, tcp_len + chunk, sum)));
    written += segment_total;
    taken += chunk;
  }
  *segment_len = headers + (count > 1 ? gso_size : payload);
  *out_len = written;
  return count;
}

int offload_tx_prepare(const uint8_t *vnet, uint8_t *packet, const struct ipv4_info *info, uint8_t *arena,
                       size_t arena_cap, size_t max_segments, struct offload_tx_result *out) {
  struct virtio_net_hdr vh;
  memcpy(&vh, vnet, VNET_HDR_LEN);
  memset(out, 0, sizeof(*out));
  uint8_t gso_type = vh.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
  if (gso_type == VIRTIO_NET_HDR_GSO_NONE) {
    if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        !offload_complete_checksum(packet, info->total_len, vh.csum_start, vh.csum_offset)) {
      return DROP_MALFORMED;
    }
    return DROP_NONE;
  }
  if (gso_type != VIRTIO_NET_HDR_GSO_TCPV4) return DROP_UNSUPPORTED_OFFLOAD;
  size_t segments =
      offload_segment_tcp4(packet, info, vh.gso_size, arena, arena_cap, &out->segment_len, &out->total);
  if (segments == 0 || segments > max_segments) return DROP_MALFORMED;
  out->segmented = 1;
  out->segments = segments;
  return DROP_NONE;
}

int offload_tcp4_coalescable(uint8_t *ip, size_t total_len, struct tcp4_segment *seg) {
  if (ip[0] != 0x45 || ip[9] != IPPROTO_TCP_) return 0;
  if (load_be16(ip + 6) & 0x3fff) return 0;
  if (total_len < 40 || total_len > 65535) return 0;
  uint8_t *tcp = ip + 20;
  size_t tcp_len = (size_t)(tcp[12] >> 4) * 4;
  if (tcp_len < 20 || 20 + tcp_len >= total_len) return 0;
  uint8_t flags = tcp[13];
  if ((flags & (uint8_t)~TCP_PSH) != TCP_ACK) return 0;
  // A merged packet reaches the stack with CHECKSUM_PARTIAL (trusted), so verify each part here.
  uint64_t sum = pseudo_header_sum(ip, IPPROTO_TCP_, (uint32_t)(total_len - 20));
  if (csum_fold(csum_partial(tcp, total_len - 20, sum)) != 0xffff) return 0;
  seg->ip = ip;
  seg->header_len = (uint16_t)(20 + tcp_len);
  seg->payload_len = (uint16_t)(total_len - 20 - tcp_len);
  seg->seq = load_be32(tcp + 4);
  seg->flags = flags;
  return 1;
}

int offload_tcp4_can_follow(const struct tcp4_segment *first, const struct tcp4_segment *last,
                            const struct tcp4_segment *next, size_t run_payload) {
  if (last->flags & TCP_PSH) return 0;
  if (last->payload_len != first->payload_len || next->payload_len > first->payload_len) return 0;
  if (next->header_len != first->header_len) return 0;
  if (next->seq != last->seq + last->payload_len) return 0;
  if ((size_t)first->header_len + run_payload + next->payload_len > 65535) return 0;
  const uint8_t *a = first->ip;
  const uint8_t *b = next->ip;
  if (a[1] != b[1] || a[8] != b[8] || (a[6] & 0x40) != (b[6] & 0x40)) return 0;  // TOS/ECN, TTL, DF
  if (memcmp(a + 12, b + 12, 8) != 0) return 0;                                 // addresses
  const uint8_t *ta = a + 20;
  const uint8_t *tb = b + 20;
  if (memcmp(ta, tb, 4) != 0) return 0;                  // ports
  if (memcmp(ta + 8, tb + 8, 4) != 0) return 0;          // ack
  if (memcmp(ta + 14, tb + 14, 2) != 0) return 0;        // window
  if (memcmp(ta + 20, tb + 20, first->header_len - 40) != 0) return 0;  // options (timestamps)
  return 1;
}

size_t offload_build_tcp4_super(const struct tcp4_segment *segs, size_t count, uint8_t *out) {
  const struct tcp4_segment *first = &segs[0];
  uint8_t *ip = out + VNET_HDR_LEN;
  memcpy(ip, first->ip, first->header_len);
  size_t total = first->header_len;
  for (size_t i = 0; i < count; i++) {
    memcpy(ip + total, segs[i].ip + segs[i].header_len, segs[i].payload_len);
    total += segs[i].payload_len;
  }
  store_be16(ip + 2, (uint16_t)total);
  ipv4_set_header_checksum(ip, 20);
  uint8_t *tcp = ip + 20;
  tcp[13] = (uint8_t)(first->flags | (segs[count - 1].flags & TCP_PSH));
  tcp[16] = 0;
  tcp[17] = 0;
  // Partial checksum: the field holds the folded pseudo-header sum; the kernel (or the receiver's
  // CHECKSUM_PARTIAL handling) completes it from csum_start.
  store_csum(tcp + 16, csum_fold(pseudo_header_sum(ip, IPPROTO_TCP_, (uint32_t)(total - 20))));
  struct virtio_net_hdr hdr = {
      .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
      .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
      .hdr_len = first->header_len,
      .gso_size = first->payload_len,
      .csum_start = 20,
      .csum_offset = 16,
  };
  memcpy(out, &hdr, VNET_HDR_LEN);
  return VNET_HDR_LEN + total;
}
