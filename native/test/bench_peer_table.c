// The peer table at scale (issue 16): build (every peer change rebuilds and swaps the whole table) and lookup
// costs for N peers (default 5000), one /24 each, medians of 51 samples, public addresses all distinct. Prints one JSON line:
// {"peers", "buildUs" (per build, wall), "buildCpuUs" (thread CPU), "routeHitNs", "routeMissNs", "senderNs" (per lookup), "tableBytes"}.
// Built with -O3 and no sanitizers by `make -C native/test bench`; run by bench/udp-peer-table.ts.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peer_table.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), compare_double);
  return v[n / 2];
}

static uint32_t xorshift(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 5000;
  if (n < 1 || n > 60000) {
    fprintf(stderr, "peers: expected 1..60000, got %s\n", argv[1]);
    return 2;
  }
  struct peer *peers = calloc((size_t)n, sizeof(*peers));
  for (long i = 0; i < n; i++) {
    peers[i].network = 0x0a000000u + ((uint32_t)i << 8);  // 10.x.y.0/24
    peers[i].prefix_len = 24;
    peers[i].address = 0xac100000u + (uint32_t)i;  // 172.16.x.y
    peers[i].port = 8285;
  }
  // The machine is shared: every figure is the median of many samples, so a preemption does not count.
  enum { SAMPLES = 51 };
  double samples[SAMPLES], cpu[SAMPLES];
  // As engine_set_peers does it: build into the table before the last swap, keep the new one.
  struct peer_table *current = peer_table_build(peers, (size_t)n), *spare = NULL;
  for (int k = 0; k < SAMPLES; k++) {
    double start = now_ns();
    double start_cpu = cpu_ns();
    struct peer_table *t = peer_table_rebuild(spare, peers, (size_t)n);
    samples[k] = now_ns() - start;
    cpu[k] = cpu_ns() - start_cpu;
    if (!t) return 1;
    spare = current;
    current = t;
  }
  peer_table_free(current);
  peer_table_free(spare);
  double build_us = median(samples, SAMPLES) / 1e3;
  double build_cpu_us = median(cpu, SAMPLES) / 1e3;

  struct peer_table *t = peer_table_build(peers, (size_t)n);
  enum { LOOKUPS = 20000 };
  uint32_t *hits = malloc(LOOKUPS * sizeof(uint32_t));
  uint32_t *misses = malloc(LOOKUPS * sizeof(uint32_t));
  uint32_t seed = 12345;
  for (int i = 0; i < LOOKUPS; i++) {
    hits[i] = 0x0a000000u + ((xorshift(&seed) % (uint32_t)n) << 8) + (xorshift(&seed) & 0xff);
    misses[i] = 0x0b000000u + (xorshift(&seed) & 0xffffff);
  }
  volatile uintptr_t sink = 0;
  double hit[SAMPLES], miss[SAMPLES], sender[SAMPLES];
  for (int k = 0; k < SAMPLES; k++) {
    double start = now_ns();
    for (int i = 0; i < LOOKUPS; i++) sink += (uintptr_t)peer_table_route(t, hits[i]);
    hit[k] = (now_ns() - start) / LOOKUPS;
    start = now_ns();
    for (int i = 0; i < LOOKUPS; i++) sink += (uintptr_t)peer_table_route(t, misses[i]);
    miss[k] = (now_ns() - start) / LOOKUPS;
    start = now_ns();
    for (int i = 0; i < LOOKUPS; i++) sink += (uintptr_t)peer_table_is_sender(t, 0xac100000u + (hits[i] >> 8 & 0xffff));
    sender[k] = (now_ns() - start) / LOOKUPS;
  }
  double hit_ns = median(hit, SAMPLES), miss_ns = median(miss, SAMPLES), sender_ns = median(sender, SAMPLES);
  // Two slot arrays of capacity entries plus the peer copies.
  size_t capacity = 16;
  while (capacity < (size_t)n * 2 + 1) capacity <<= 1;
  size_t bytes = (size_t)n * sizeof(struct peer) + capacity * (12 + 8);
  printf("{\"peers\":%ld,\"buildUs\":%.1f,\"buildCpuUs\":%.1f,\"routeHitNs\":%.1f,\"routeMissNs\":%.1f,\"senderNs\":%.1f,\"tableBytes\":%zu}\n", n,
         build_us, build_cpu_us, hit_ns, miss_ns, sender_ns, bytes);
  peer_table_free(t);
  free(peers);
  free(hits);
  free(misses);
  return sink == 1 ? 1 : 0;
}
