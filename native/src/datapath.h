// The per-packet decisions of the two directions, pure (no syscalls, no locks): the engine threads call them
// under the table lock; native/test/ unit-tests and fuzzes them.
#ifndef WEFT_DATAPATH_H
#define WEFT_DATAPATH_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"
#include "peer_table.h"

// TUN -> UDP: parses the packet and finds the peer whose subnet holds its destination. Returns DROP_NONE
// (with *peer set), a parse failure, or DROP_NO_ROUTE (answer with icmp_build_net_unreachable).
int datapath_decide_tun_packet(const struct peer_table *table, const uint8_t *packet, size_t len,
                               struct ipv4_info *info, const struct peer **peer);

// UDP -> TUN, for one inner packet of a datagram from `sender` (a peer's public address, host order):
// valid IPv4 with a valid header checksum, inner source inside a subnet of a peer with that public address
// (whatever the source port: NAT may translate it), destination inside this node's subnet, TTL > 1.
// Decrements the TTL in place when accepted. Returns DROP_NONE or the drop reason.
int datapath_decide_peer_packet(const struct peer_table *table, uint32_t sender, uint8_t *packet, size_t len,
                                uint32_t own_network, uint8_t own_prefix_len, struct ipv4_info *info);

#endif
