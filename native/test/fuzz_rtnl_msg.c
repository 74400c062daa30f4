// libFuzzer target: the pure rtnetlink helpers (rtnl_msg.c) on arbitrary bytes. The first 4 bytes are the first
// sequence number and the next byte how many requests are awaited (0..63); the rest is read once as a receive
// buffer of acknowledgements (rtnl_read_acks) and once, copied, as a request buffer to number (rtnl_number).
// Both must stay inside their buffers (ASan), do no undefined arithmetic (UBSan) and keep their contracts:
// every ack recorded is for an awaited sequence number, its error is 0 or positive, its message terminated.
#include <stdlib.h>
#include <string.h>

#include "rtnl_msg.h"
#include "testlib.h"

#define REQUIRE(cond) \
  do {                \
    if (!(cond)) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 5) return 0;
  uint32_t first_seq = load_be32(data);
  uint32_t count = data[4] % 64;
  const uint8_t *body = data + 5;
  size_t len = size - 5;

  struct rtnl_ack acks[64];
  memset(acks, 0, sizeof(acks));
  int recorded = rtnl_read_acks(body, len, first_seq, count, acks);
  REQUIRE(recorded >= -1 && recorded <= (int)count);
  int acked = 0;
  for (uint32_t i = 0; i < 64; i++) {
    if (i >= count) REQUIRE(!acks[i].acked);
    if (!acks[i].acked) continue;
    acked++;
    REQUIRE(acks[i].error >= 0);
    REQUIRE(memchr(acks[i].message, 0, sizeof(acks[i].message)) != NULL);
  }
  if (recorded >= 0) REQUIRE(acked == recorded);

  // A copy, exactly as long as the input, so ASan sees any read or write past its end.
  uint8_t *copy = malloc(len ? len : 1);
  memcpy(copy, body, len);
  long n = rtnl_number(copy, len, first_seq);
  REQUIRE(n >= -1);
  if (n > 0) {
    // Every message numbered in order, and rtnl_next walks exactly n of them to the end of the buffer.
    size_t offset = 0;
    for (long i = 0; i < n; i++) {
      REQUIRE(offset < len);
      uint32_t seq;
      memcpy(&seq, copy + offset + 8, sizeof(seq));
      REQUIRE(seq == first_seq + (uint32_t)i);
      offset = rtnl_next(copy, offset);
    }
    REQUIRE(offset >= len);
  }
  free(copy);
  return 0;
}
