// Immutable routing state: peers by subnet (longest prefix match) and the set of their public addresses.
// Built off the data path, then swapped in whole under the engine's lock (see engine.c).
#ifndef WEFT_PEER_TABLE_H
#define WEFT_PEER_TABLE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct peer {
  uint32_t network;  // host order, host bits zero
  uint8_t prefix_len;
  uint32_t address;  // host order
  uint16_t port;
  struct sockaddr_in sockaddr;
};

struct peer_table;

// Builds a table; later entries with the same subnet replace earlier ones. Returns NULL when out of memory.
struct peer_table *peer_table_build(const struct peer *peers, size_t count);
// The same, reusing the memory of `spare` (a table no one reads any more, or NULL) when it is large enough:
// at thousands of peers, fresh allocations cost more in page faults than the build itself. On failure
// `spare` is freed and NULL returned.
struct peer_table *peer_table_rebuild(struct peer_table *spare, const struct peer *peers, size_t count);
void peer_table_free(struct peer_table *table);

// Longest-prefix match; NULL when no subnet holds the address.
const struct peer *peer_table_route(const struct peer_table *table, uint32_t addr);
// Whether some peer has this public address. The port is not part of it: a peer behind port-translating
// NAT sends from any port of its public address (see native/README.md, "What the outer checks stop").
int peer_table_is_sender(const struct peer_table *table, uint32_t address);
size_t peer_table_count(const struct peer_table *table);

#endif
