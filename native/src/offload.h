// TUN offloads (IFF_VNET_HDR): the kernel hands the engine TCP super-packets (TSO) with partial checksums,
// and accepts coalesced TCP super-packets back (GRO-like). Every UDP datagram still carries exactly one
// ordinary inner IPv4 packet: super-packets are segmented before sending and only built for the TUN.
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdint.h>

#include "packet.h"

#define VNET_HDR_LEN ((size_t)sizeof(struct virtio_net_hdr))

// Completes a partial (NEEDS_CSUM) checksum: the field at csum_start+csum_offset holds the pseudo-header
// sum. Returns 0 when the offsets do not fit the packet.
int offload_complete_checksum(uint8_t *packet, size_t len, uint16_t csum_start, uint16_t csum_offset);

// Segments a TCPv4 super-packet (valid IPv4 header already TTL-decremented; TCP header at header_len)
// into ordinary packets of at most gso_size payload bytes each, written back to back into `out`.
// Returns the number of segments (0 when the packet is not a valid TCP packet or `out` is too small);
// *segment_len is the length of every segment but the last, *out_len the bytes written.
size_t offload_segment_tcp4(const uint8_t *packet, const struct ipv4_info *info, uint16_t gso_size, uint8_t *out,
                            size_t out_cap, size_t *segment_len, size_t *out_len);

// What the TX path does with one TUN read after its virtio header (offload_tx_prepare).
struct offload_tx_result {
  int segmented;       // 0: send `packet` as it is; 1: send the `segments` back-to-back segments in the arena
  size_t segments;
  size_t segment_len;  // every segment's length but the last's
  size_t total;        // bytes of segments in the arena
};

// Applies the virtio header `vnet` (VNET_HDR_LEN bytes, as read from the TUN) to the packet after it (valid
// IPv4 per `info`, TTL already decremented): completes a partial checksum in place, or segments a TSO
// super-packet into `arena` (at most max_segments). Returns DROP_NONE, DROP_MALFORMED (offsets or
// segmentation do not fit) or DROP_UNSUPPORTED_OFFLOAD (a GSO type the engine did not ask for).
int offload_tx_prepare(const uint8_t *vnet, uint8_t *packet, const struct ipv4_info *info, uint8_t *arena,
                       size_t arena_cap, size_t max_segments, struct offload_tx_result *out);

// A TCPv4 packet that may be merged with its neighbours before being written to the TUN.
struct tcp4_segment {
  uint8_t *ip;
  uint16_t header_len;  // IP + TCP header
  uint16_t payload_len;
  uint32_t seq;
  uint8_t flags;
};

// Fills `seg` and returns 1 when `ip` (a valid IPv4 packet of total_len bytes) is a coalescable TCP
// segment: no IP options, not a fragment, only ACK (+PSH) set, payload present, TCP checksum valid.
int offload_tcp4_coalescable(uint8_t *ip, size_t total_len, struct tcp4_segment *seg);

// Whether `next` continues the run that starts at `first` and currently ends at `last`.
int offload_tcp4_can_follow(const struct tcp4_segment *first, const struct tcp4_segment *last,
                            const struct tcp4_segment *next, size_t run_payload);

// Builds the super-packet of segs[0..count) (count >= 2) after a virtio_net_hdr in `out`
// (cap >= VNET_HDR_LEN + 65535). Returns the total length including the virtio header.
size_t offload_build_tcp4_super(const struct tcp4_segment *segs, size_t count, uint8_t *out);

#endif
