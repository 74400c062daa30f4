// One open-addressing hash per distinct prefix length, probed longest first:
// a lookup costs one probe per distinct length, and weft's peers usually share one length (SubnetLen).
#include "peer_table.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_SLOT UINT32_MAX

struct route_slot {
  uint32_t network;
  uint32_t peer_index;  // EMPTY_SLOT when free
  uint8_t prefix_len;
};

struct sender_slot {
  uint64_t key;  // address + 1; 0 when free
};

struct peer_table {
  struct peer *peers;
  size_t count;
  size_t peer_capacity;  // room in peers
  size_t slot_capacity;  // room in routes and senders (a power of two)
  uint8_t lengths[33];  // distinct prefix lengths, longest first
  uint8_t length_count;
  struct route_slot *routes;
  size_t route_mask;
  struct sender_slot *senders;
  size_t sender_mask;
};

static inline uint32_t mask_of(uint8_t prefix_len) { return prefix_len == 0 ? 0 : 0xffffffffu << (32 - prefix_len); }

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static size_t capacity_for(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2 + 1) capacity <<= 1;
  return capacity;
}

static void fill(struct peer_table *table, const struct peer *peers, size_t count) {
  size_t capacity = capacity_for(count);
  for (size_t i = 0; i < capacity; i++) table->routes[i].peer_index = EMPTY_SLOT;
  memset(table->senders, 0, capacity * sizeof(struct sender_slot));
  table->route_mask = capacity - 1;
  table->sender_mask = capacity - 1;
  if (count) memcpy(table->peers, peers, count * sizeof(struct peer));
  table->count = count;
  table->length_count = 0;

  int seen_length[33] = {0};
  for (size_t i = 0; i < count; i++) {
    const struct peer *peer = &table->peers[i];
    seen_length[peer->prefix_len] = 1;
    size_t slot = mix64(((uint64_t)peer->network << 8) | peer->prefix_len) & table->route_mask;
    for (;;) {
      struct route_slot *s = &table->routes[slot];
      if (s->peer_index == EMPTY_SLOT || (s->network == peer->network && s->prefix_len == peer->prefix_len)) {
        s->network = peer->network;
        s->prefix_len = peer->prefix_len;
        s->peer_index = (uint32_t)i;
        break;
      }
      slot = (slot + 1) & table->route_mask;
    }
    uint64_t key = (uint64_t)peer->address + 1;
    slot = mix64(key) & table->sender_mask;
    while (table->senders[slot].key != 0 && table->senders[slot].key != key) slot = (slot + 1) & table->sender_mask;
    table->senders[slot].key = key;
  }
  for (int len = 32; len >= 0; len--) {
    if (seen_length[len]) table->lengths[table->length_count++] = (uint8_t)len;
  }
}

struct peer_table *peer_table_rebuild(struct peer_table *spare, const struct peer *peers, size_t count) {
  size_t capacity = capacity_for(count);
  struct peer_table *table = spare;
  if (table && (table->peer_capacity < count || table->slot_capacity < capacity)) {
    peer_table_free(table);
    table = NULL;
  }
  if (!table) {
    table = calloc(1, sizeof(*table));
    if (!table) return NULL;
    table->peer_capacity = count ? count : 1;
    table->slot_capacity = capacity;
    table->peers = calloc(table->peer_capacity, sizeof(struct peer));
    table->routes = malloc(capacity * sizeof(struct route_slot));
    table->senders = malloc(capacity * sizeof(struct sender_slot));
    if (!table->peers || !table->routes || !table->senders) {
      peer_table_free(table);
      return NULL;
    }
  }
  fill(table, peers, count);
  return table;
}

struct peer_table *peer_table_build(const struct peer *peers, size_t count) {
  return peer_table_rebuild(NULL, peers, count);
}

void peer_table_free(struct peer_table *table) {
  if (!table) return;
  free(table->peers);
  free(table->routes);
  free(table->senders);
  free(table);
}

const struct peer *peer_table_route(const struct peer_table *table, uint32_t addr) {
  for (uint8_t i = 0; i < table->length_count; i++) {
    uint8_t len = table->lengths[i];
    uint32_t network = addr & mask_of(len);
    size_t slot = mix64(((uint64_t)network << 8) | len) & table->route_mask;
    for (;;) {
      const struct route_slot *s = &table->routes[slot];
      if (s->peer_index == EMPTY_SLOT) break;
      if (s->network == network && s->prefix_len == len) return &table->peers[s->peer_index];
      slot = (slot + 1) & table->route_mask;
    }
  }
  return NULL;
}

int peer_table_is_sender(const struct peer_table *table, uint32_t address) {
  uint64_t key = (uint64_t)address + 1;
  size_t slot = mix64(key) & table->sender_mask;
  for (;;) {
    uint64_t k = table->senders[slot].key;
    if (k == 0) return 0;
    if (k == key) return 1;
    slot = (slot + 1) & table->sender_mask;
  }
}

size_t peer_table_count(const struct peer_table *table) { return table->count; }
