#include "datapath.h"

int datapath_decide_tun_packet(const struct peer_table *table, const uint8_t *packet, size_t len,
                               struct ipv4_info *info, const struct peer **peer) {
  *peer = NULL;
  int verdict = ipv4_parse(packet, len, info);
  if (verdict != DROP_NONE) return verdict;
  *peer = table ? peer_table_route(table, info->dst) : NULL;
  return *peer ? DROP_NONE : DROP_NO_ROUTE;
}

int datapath_decide_peer_packet(const struct peer_table *table, uint32_t sender, uint8_t *packet, size_t len,
                                uint32_t own_network, uint8_t own_prefix_len, struct ipv4_info *info) {
  int verdict = ipv4_parse(packet, len, info);
  if (verdict != DROP_NONE) return verdict;
  if (!ipv4_header_checksum_valid(packet, info->header_len)) return DROP_MALFORMED;
  // The inner source must belong to a subnet of a peer at the sender's address: a peer cannot send for
  // another peer's pods, NAT or not.
  const struct peer *owner = table ? peer_table_route(table, info->src) : NULL;
  if (!owner || owner->address != sender) return DROP_SPOOFED_SOURCE;
  if (!prefix_contains(own_network, own_prefix_len, info->dst)) return DROP_WRONG_DESTINATION;
  if (!ipv4_decrement_ttl(packet)) return DROP_TTL_EXPIRED;
  return DROP_NONE;
}
