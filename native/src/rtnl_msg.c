#include "rtnl_msg.h"

#include <limits.h>
#include <linux/netlink.h>
#include <string.h>

long rtnl_number(uint8_t *buf, size_t len, uint32_t first_seq) {
  size_t offset = 0;
  long count = 0;
  while (offset < len) {
    if (len - offset < sizeof(struct nlmsghdr)) return -1;
    struct nlmsghdr hdr;
    memcpy(&hdr, buf + offset, sizeof(hdr));
    if (hdr.nlmsg_len < sizeof(struct nlmsghdr) || hdr.nlmsg_len > len - offset) return -1;
    // Padding after a message must be in the buffer, except after the last one.
    if (NLMSG_ALIGN(hdr.nlmsg_len) > len - offset && offset + hdr.nlmsg_len != len) return -1;
    hdr.nlmsg_seq = first_seq + (uint32_t)count;
    hdr.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    hdr.nlmsg_pid = 0;
    memcpy(buf + offset, &hdr, sizeof(hdr));
    offset += NLMSG_ALIGN(hdr.nlmsg_len);
    count++;
  }
  return count;
}

size_t rtnl_next(const uint8_t *buf, size_t offset) {
  struct nlmsghdr hdr;
  memcpy(&hdr, buf + offset, sizeof(hdr));
  return offset + NLMSG_ALIGN(hdr.nlmsg_len);
}

// Copies NLMSGERR_ATTR_MSG from the TLVs in tlv[0..len) into out (always terminated).
static void read_ext_ack(const uint8_t *tlv, size_t len, char *out, size_t out_len) {
  size_t offset = 0;
  while (len - offset >= sizeof(struct nlattr)) {
    struct nlattr attr;
    memcpy(&attr, tlv + offset, sizeof(attr));
    if (attr.nla_len < sizeof(struct nlattr) || attr.nla_len > len - offset) return;
    if ((attr.nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      size_t n = attr.nla_len - sizeof(struct nlattr);
      if (n >= out_len) n = out_len - 1;
      memcpy(out, tlv + offset + sizeof(struct nlattr), n);
      out[n] = 0;
      out[strnlen(out, n)] = 0;
      // The kernel's messages have no trailing newline; strip one should it come.
      size_t l = strlen(out);
      while (l > 0 && (out[l - 1] == '\n' || out[l - 1] == ' ')) out[--l] = 0;
      return;
    }
    size_t step = NLA_ALIGN(attr.nla_len);
    if (step > len - offset) return;
    offset += step;
  }
}

int rtnl_read_acks(const uint8_t *buf, size_t len, uint32_t first_seq, uint32_t count, struct rtnl_ack *acks) {
  size_t offset = 0;
  int recorded = 0;
  while (offset < len) {
    if (len - offset < sizeof(struct nlmsghdr)) return -1;
    struct nlmsghdr hdr;
    memcpy(&hdr, buf + offset, sizeof(hdr));
    if (hdr.nlmsg_len < sizeof(struct nlmsghdr) || hdr.nlmsg_len > len - offset) return -1;
    uint32_t index = hdr.nlmsg_seq - first_seq;
    if (hdr.nlmsg_type == NLMSG_ERROR && hdr.nlmsg_seq >= first_seq && index < count && !acks[index].acked) {
      const uint8_t *payload = buf + offset + NLMSG_HDRLEN;
      size_t payload_len = hdr.nlmsg_len - NLMSG_HDRLEN;
      if (payload_len < sizeof(struct nlmsgerr)) return -1;
      struct nlmsgerr err;
      memcpy(&err, payload, sizeof(err));
      struct rtnl_ack *ack = &acks[index];
      ack->acked = 1;
      // A positive errno; INT_MIN (no kernel sends it) cannot be negated.
      ack->error = err.error >= 0 ? err.error : err.error == INT_MIN ? INT_MAX : -err.error;
      ack->message[0] = 0;
      if (hdr.nlmsg_flags & NLM_F_ACK_TLVS) {
        // Without NLM_F_CAPPED the whole request is echoed after the header copy in nlmsgerr.
        size_t tlv_offset = sizeof(struct nlmsgerr);
        if (!(hdr.nlmsg_flags & NLM_F_CAPPED) && err.msg.nlmsg_len > sizeof(struct nlmsghdr)) {
          tlv_offset += NLMSG_ALIGN(err.msg.nlmsg_len - sizeof(struct nlmsghdr));
        }
        if (tlv_offset < payload_len) {
          read_ext_ack(payload + tlv_offset, payload_len - tlv_offset, ack->message, sizeof(ack->message));
        }
      }
      recorded++;
    }
    size_t step = NLMSG_ALIGN(hdr.nlmsg_len);
    if (step > len - offset) break;
    offset += step;
  }
  return recorded;
}
