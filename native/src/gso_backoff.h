// When to try UDP GSO again after the kernel refused a GSO send (EINVAL or EMSGSIZE when a segment no longer
// fits a route's path MTU, EIO on a device without checksum offload, ...). The refused send is repeated without
// GSO; GSO is off for a delay that doubles while refusals continue (1 s up to 64 s) and is reset by a GSO
// send that succeeds. One peer's lowered path MTU costs GSO for a while, never until restart.
#ifndef WEFT_GSO_BACKOFF_H
#define WEFT_GSO_BACKOFF_H

#include <stdint.h>

#define GSO_BACKOFF_MIN_MS 1000u
#define GSO_BACKOFF_MAX_MS 64000u

struct gso_backoff {
  uint64_t resume_at_ms;  // GSO may be tried from this time on (monotonic ms)
  uint32_t delay_ms;      // the current delay; 0 when the last GSO send succeeded
};

static inline int gso_backoff_allows(const struct gso_backoff *b, uint64_t now_ms) { return now_ms >= b->resume_at_ms; }

static inline void gso_backoff_refused(struct gso_backoff *b, uint64_t now_ms) {
  if (b->delay_ms == 0) {
    b->delay_ms = GSO_BACKOFF_MIN_MS;
  } else if (now_ms >= b->resume_at_ms) {
    // Refused again after a retry: wait longer. Refusals of sends queued before the first one do not count.
    b->delay_ms = b->delay_ms * 2 > GSO_BACKOFF_MAX_MS ? GSO_BACKOFF_MAX_MS : b->delay_ms * 2;
  } else {
    return;
  }
  b->resume_at_ms = now_ms + b->delay_ms;
}

static inline void gso_backoff_succeeded(struct gso_backoff *b) { b->delay_ms = 0; }

#endif
