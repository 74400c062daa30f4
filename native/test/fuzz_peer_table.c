// libFuzzer target: the peer table against a linear reference. The input is a peer count byte, that many
// 9-byte peers (network, prefix length, public address) and then 4-byte addresses to look up; every lookup
// and sender check must agree with a plain scan (longest prefix wins, a later duplicate subnet replaces an
// earlier one), also for a table rebuilt in the memory of an earlier one.
#include <stdlib.h>

#include "peer_table.h"
#include "testlib.h"

#define REQUIRE(cond) \
  do {                \
    if (!(cond)) abort(); \
  } while (0)

static uint32_t mask(uint8_t len) { return len == 0 ? 0 : 0xffffffffu << (32 - len); }

static const struct peer *reference_route(const struct peer *peers, size_t n, uint32_t addr) {
  const struct peer *best = NULL;
  for (size_t i = 0; i < n; i++) {
    if ((addr & mask(peers[i].prefix_len)) != peers[i].network) continue;
    if (!best || peers[i].prefix_len >= best->prefix_len) best = &peers[i];  // >=: the later duplicate
  }
  return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t n = data[0];
  if (1 + n * 9 > size) n = (size - 1) / 9;
  struct peer *peers = calloc(n ? n : 1, sizeof(*peers));
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = data + 1 + i * 9;
    uint8_t len = p[4] % 33;
    peers[i].prefix_len = len;
    peers[i].network = load_be32(p) & mask(len);
    peers[i].address = load_be32(p + 5);
    peers[i].port = 8285;
  }
  // Built as the engine does: into the memory of an earlier table (here one of the first half of the peers).
  struct peer_table *table = peer_table_rebuild(peer_table_build(peers, n / 2), peers, n);
  REQUIRE(table && peer_table_count(table) == n);
  for (size_t at = 1 + n * 9; at + 4 <= size; at += 4) {
    uint32_t addr = load_be32(data + at);
    const struct peer *want = reference_route(peers, n, addr);
    const struct peer *got = peer_table_route(table, addr);
    REQUIRE((want == NULL) == (got == NULL));
    if (want) REQUIRE(got->network == want->network && got->prefix_len == want->prefix_len &&
                      got->address == want->address);
    int sender = 0;
    for (size_t i = 0; i < n; i++) sender |= peers[i].address == addr;
    REQUIRE(peer_table_is_sender(table, addr) == sender);
  }
  // Every peer's own network routes to a peer of that exact subnet or a longer one.
  for (size_t i = 0; i < n; i++) {
    const struct peer *got = peer_table_route(table, peers[i].network);
    REQUIRE(got && got->prefix_len >= peers[i].prefix_len);
  }
  peer_table_free(table);
  free(peers);
  return 0;
}
