// The pure half of weft's rtnetlink writer: numbering a buffer of pre-encoded requests and reading the kernel's
// acknowledgements back into one result per request. No sockets here, so the unit build (ASan/UBSan) runs it.
#ifndef WEFT_RTNL_MSG_H
#define WEFT_RTNL_MSG_H

#include <stddef.h>
#include <stdint.h>

#define RTNL_MSG_LEN 160

struct rtnl_ack {
  // 0 while no ack has arrived, 1 once it has.
  int acked;
  // 0 or a positive errno.
  int error;
  // The kernel's extended ack message (NLMSGERR_ATTR_MSG), "" when it sent none.
  char message[RTNL_MSG_LEN];
};

// Checks that buf is a run of whole netlink messages (each at least a header long, 4-byte aligned lengths) and
// numbers them: message i gets nlmsg_seq = first_seq + i and NLM_F_REQUEST | NLM_F_ACK. Returns the number of
// messages, or -1 when the buffer is malformed.
long rtnl_number(uint8_t *buf, size_t len, uint32_t first_seq);

// Byte offset of the message after the one at `offset` (offset + its aligned length).
size_t rtnl_next(const uint8_t *buf, size_t offset);

// Reads one receive buffer of acknowledgements for the requests numbered first_seq .. first_seq + count - 1,
// filling acks[seq - first_seq]. Messages for other sequence numbers and non-error messages are skipped.
// Returns how many new acks were recorded, or -1 when the buffer is malformed.
int rtnl_read_acks(const uint8_t *buf, size_t len, uint32_t first_seq, uint32_t count, struct rtnl_ack *acks);

#endif
