#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "datapath.h"
#include "gso_backoff.h"
#include "netns.h"
#include "offload.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

// Batch sizes: packets read from the TUN per pass, datagrams per recvmmsg.
#define TX_BATCH 64
#define RX_BATCH 32
#define PACKET_BUFFER (65536 + 64)
// Room for a segmented 64 KiB super-packet: every segment repeats up to 120 bytes of headers.
#define SEGMENT_ARENA (65536 + 128 * 120)
#define MAX_SEGMENTS_PER_PACKET 128
#define MAX_UNITS (TX_BATCH * MAX_SEGMENTS_PER_PACKET)
// UDP GSO: at most 64 segments and 64 KiB per send (the limits of older kernels, safe everywhere).
#define UDP_GSO_MAX_SEGMENTS 64
#define UDP_GSO_MAX_BYTES 65000
#define MAX_RX_PACKETS (RX_BATCH * 64)
#define MAX_COALESCED 64
#define SENDMMSG_MAX 1024

// One sendmsg: a single inner packet, or (with UDP GSO) several packets of `segment` bytes each (the last
// may be shorter), gathered from `iov_count` buffers. On the wire each is still one datagram per packet.
struct send_unit {
  struct sockaddr_in to;
  size_t iov_first;  // index into tx_state.iovs
  size_t iov_count;
  size_t len;
  uint16_t segment;  // 0: no GSO
  uint16_t packets;
  int closed;        // no further packet may join (a shorter last segment, or a pre-segmented run)
};

struct tx_packet_meta {
  int verdict;  // DROP_NONE or a drop reason
  struct ipv4_info info;
  struct sockaddr_in to;
};

struct rx_packet {
  uint8_t *data;
  uint16_t len;
};

struct worker {
  pthread_t thread;
  int started;
  int epoll_fd;
  uint64_t counters[COUNTER_COUNT];  // written by this worker only, read by stats with relaxed loads
  uint64_t drops[DROP_REASON_COUNT];
};

struct engine {
  int tun_fd;
  int udp_fd;
  int stop_fd;
  int vnet_hdr;
  int udp_gso;         // configured: try UDP GSO at all
  int udp_gso_active;  // atomic: GSO is tried now (udp_gso and not backing off), for stats
  struct gso_backoff gso_backoff;  // tx thread only
  int udp_gro;
  int coalesce;  // atomic: cleared when the kernel refuses a coalesced TUN write
  int stopping;
  int stopped;
  uint32_t own_network;
  uint8_t own_prefix_len;
  pthread_mutex_t table_lock;  // held only to swap or to look up a batch, never across a syscall
  struct peer_table *table;
  struct peer_table *spare;  // the table before the last swap, read by no one: reused by the next build
  pthread_mutex_t build_lock;  // one engine_set_peers at a time (it owns `spare`)
  struct worker tx;
  struct worker rx;
  pthread_mutex_t stop_lock;
};

static inline void count(uint64_t *counter, uint64_t n) {
  __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline int engine_stopping(struct engine *e) { return __atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE); }

// Waits up to `ms` for the stop signal (used to back off after persistent errors).
static void wait_for_stop(struct engine *e, int ms) {
  struct pollfd p = {.fd = e->stop_fd, .events = POLLIN};
  poll(&p, 1, ms);
}

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const uint8_t zero_vnet_hdr[VNET_HDR_LEN];

// Writes one ordinary packet to the TUN (with an empty virtio header when the device has them).
static int tun_write_packet(struct engine *e, const uint8_t *packet, size_t len) {
  ssize_t r;
  if (e->vnet_hdr) {
    struct iovec iov[2] = {{(void *)zero_vnet_hdr, VNET_HDR_LEN}, {(void *)packet, len}};
    r = writev(e->tun_fd, iov, 2);
  } else {
    r = write(e->tun_fd, packet, len);
  }
  return r < 0 ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------------------
// TUN -> UDP

struct tx_state {
  uint8_t *buffers;   // TX_BATCH x PACKET_BUFFER
  size_t lengths[TX_BATCH];
  struct tx_packet_meta meta[TX_BATCH];
  uint8_t *arenas;    // TX_BATCH x SEGMENT_ARENA (vnet_hdr only)
  struct send_unit *units;
  struct mmsghdr *msgs;
  struct iovec *iovs;  // MAX_UNITS: each unit's buffers, in unit order
  size_t iov_count;
  uint8_t (*controls)[CMSG_SPACE(sizeof(uint16_t))];
  size_t unit_count;
  int gso;  // this batch may use UDP GSO (decided once per batch, see gso_backoff.h)
};

static void tx_add_unit(struct tx_state *s, const struct sockaddr_in *to, uint8_t *data, size_t len,
                        uint16_t segment, uint16_t packets) {
  struct send_unit *u = &s->units[s->unit_count++];
  u->to = *to;
  u->iov_first = s->iov_count;
  u->iov_count = 1;
  s->iovs[s->iov_count].iov_base = data;
  s->iovs[s->iov_count].iov_len = len;
  s->iov_count++;
  u->len = len;
  u->segment = segment;
  u->packets = packets;
  u->closed = 1;
}

static inline int same_destination(const struct sockaddr_in *a, const struct sockaddr_in *b) {
  return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

// Queues one ordinary packet. With UDP GSO, consecutive packets to the same peer whose sizes allow it
// (equal, or a shorter last one) share one sendmsg: the kernel sends them as separate datagrams but
// pays its per-send cost once, and the receiver's UDP GRO hands them over together.
static void tx_add_packet(struct engine *e, struct tx_state *s, const struct sockaddr_in *to, uint8_t *data,
                          size_t len) {
  if (s->unit_count > 0 && s->gso) {
    struct send_unit *u = &s->units[s->unit_count - 1];
    size_t segment = u->segment ? u->segment : u->len;
    if (!u->closed && same_destination(&u->to, to) && len <= segment && u->packets < UDP_GSO_MAX_SEGMENTS &&
        u->len + len <= UDP_GSO_MAX_BYTES) {
      s->iovs[s->iov_count].iov_base = data;
      s->iovs[s->iov_count].iov_len = len;
      s->iov_count++;
      u->iov_count++;
      u->len += len;
      u->segment = (uint16_t)segment;
      u->packets++;
      u->closed = len < segment;
      return;
    }
  }
  tx_add_unit(s, to, data, len, 0, 1);
  s->units[s->unit_count - 1].closed = 0;
}

// Sends one unit's packets one datagram at a time (after the kernel refused UDP GSO).
static void tx_send_unsegmented(struct engine *e, struct tx_state *s, struct send_unit *u) {
  for (size_t i = 0; i < u->iov_count; i++) {
    const struct iovec *iov = &s->iovs[u->iov_first + i];
    for (size_t off = 0; off < iov->iov_len; off += u->segment) {
      size_t len = iov->iov_len - off < u->segment ? iov->iov_len - off : u->segment;
      ssize_t r = sendto(e->udp_fd, (uint8_t *)iov->iov_base + off, len, 0, (struct sockaddr *)&u->to, sizeof(u->to));
      count(&e->tx.counters[COUNTER_UDP_SENDS], 1);
      if (r < 0) {
        count(&e->tx.drops[DROP_SEND_FAILED], 1);
      } else {
        count(&e->tx.counters[COUNTER_TX_PACKETS], 1);
        count(&e->tx.counters[COUNTER_TX_BYTES], len);
      }
    }
  }
}

static void tx_flush(struct engine *e, struct tx_state *s) {
  size_t n = s->unit_count;
  for (size_t i = 0; i < n; i++) {
    struct send_unit *u = &s->units[i];
    struct msghdr *m = &s->msgs[i].msg_hdr;
    memset(m, 0, sizeof(*m));
    m->msg_name = &u->to;
    m->msg_namelen = sizeof(u->to);
    m->msg_iov = &s->iovs[u->iov_first];
    m->msg_iovlen = u->iov_count;
    if (u->segment) {
      struct cmsghdr *c = (struct cmsghdr *)s->controls[i];
      m->msg_control = c;
      m->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      memcpy(CMSG_DATA(c), &u->segment, sizeof(uint16_t));
    }
  }
  size_t done = 0;
  while (done < n) {
    size_t want = n - done < SENDMMSG_MAX ? n - done : SENDMMSG_MAX;
    int r = sendmmsg(e->udp_fd, &s->msgs[done], (unsigned)want, 0);
    count(&e->tx.counters[COUNTER_UDP_SENDS], 1);
    if (r < 0) {
      if (errno == EINTR) continue;
      struct send_unit *u = &s->units[done];
      // A GSO send the kernel refuses: EINVAL or EMSGSIZE (by kernel version) when a segment exceeds the
      // route's path MTU, EIO without checksum offload, ENOPROTOOPT/EOPNOTSUPP without UDP GSO at all.
      if (u->segment && (errno == EIO || errno == EINVAL || errno == EMSGSIZE || errno == ENOPROTOOPT ||
                         errno == EOPNOTSUPP)) {
        // This send only goes out datagram by datagram; GSO rests for a while (gso_backoff.h).
        gso_backoff_refused(&e->gso_backoff, monotonic_ms());
        __atomic_store_n(&e->udp_gso_active, 0, __ATOMIC_RELAXED);
        count(&e->tx.counters[COUNTER_GSO_FALLBACKS], 1);
        tx_send_unsegmented(e, s, u);
      } else {
        count(&e->tx.drops[DROP_SEND_FAILED], u->packets);
      }
      done++;
      continue;
    }
    for (int i = 0; i < r; i++) {
      if (s->units[done + i].segment) gso_backoff_succeeded(&e->gso_backoff);
      count(&e->tx.counters[COUNTER_TX_PACKETS], s->units[done + i].packets);
      count(&e->tx.counters[COUNTER_TX_BYTES], s->units[done + i].len);
    }
    done += (size_t)r;
  }
  s->unit_count = 0;
  s->iov_count = 0;
}

// Queues the segments of a segmented super-packet: UDP GSO sends when available, else one per segment.
static void tx_add_segments(struct engine *e, struct tx_state *s, const struct sockaddr_in *to, uint8_t *data,
                            size_t segments, size_t segment_len, size_t total) {
  size_t per_send = UDP_GSO_MAX_BYTES / segment_len;
  if (per_send > UDP_GSO_MAX_SEGMENTS) per_send = UDP_GSO_MAX_SEGMENTS;
  if (segments > 1 && per_send >= 2 && s->gso) {
    size_t off = 0;
    while (segments > 0) {
      size_t n = segments < per_send ? segments : per_send;
      size_t bytes = n == segments ? total - off : n * segment_len;
      tx_add_unit(s, to, data + off, bytes, n > 1 ? (uint16_t)segment_len : 0, (uint16_t)n);
      off += bytes;
      segments -= n;
    }
    return;
  }
  size_t off = 0;
  for (size_t k = 0; k < segments; k++) {
    size_t len = k + 1 == segments ? total - off : segment_len;
    tx_add_unit(s, to, data + off, len, 0, 1);
    off += len;
  }
}

static void tx_process_batch(struct engine *e, struct tx_state *s, size_t batch) {
  size_t header = e->vnet_hdr ? VNET_HDR_LEN : 0;
  s->gso = e->udp_gso && gso_backoff_allows(&e->gso_backoff, monotonic_ms());
  __atomic_store_n(&e->udp_gso_active, s->gso, __ATOMIC_RELAXED);

  // Routing decisions for the whole batch under the lock; everything slow happens after it.
  pthread_mutex_lock(&e->table_lock);
  const struct peer_table *table = e->table;
  for (size_t i = 0; i < batch; i++) {
    struct tx_packet_meta *m = &s->meta[i];
    if (s->lengths[i] < header) {
      m->verdict = DROP_MALFORMED;
      continue;
    }
    const struct peer *peer = NULL;
    m->verdict = datapath_decide_tun_packet(table, s->buffers + i * PACKET_BUFFER + header, s->lengths[i] - header,
                                            &m->info, &peer);
    if (peer) m->to = peer->sockaddr;
  }
  pthread_mutex_unlock(&e->table_lock);

  for (size_t i = 0; i < batch; i++) {
    struct tx_packet_meta *m = &s->meta[i];
    uint8_t *raw = s->buffers + i * PACKET_BUFFER;
    uint8_t *packet = raw + header;
    if (m->verdict == DROP_NO_ROUTE) {
      uint8_t reply[ICMP_REPLY_MAX];
      size_t len = icmp_build_net_unreachable(packet, &m->info, e->own_network, reply);
      if (len && tun_write_packet(e, reply, len) == 0) count(&e->tx.counters[COUNTER_ICMP_SENT], 1);
    }
    if (m->verdict != DROP_NONE) {
      count(&e->tx.drops[m->verdict], 1);
      continue;
    }
    if (!ipv4_decrement_ttl(packet)) {
      count(&e->tx.drops[DROP_TTL_EXPIRED], 1);
      continue;
    }
    if (!e->vnet_hdr) {
      tx_add_packet(e, s, &m->to, packet, m->info.total_len);
      continue;
    }
    uint8_t *arena = s->arenas + i * SEGMENT_ARENA;
    struct offload_tx_result r;
    int verdict = offload_tx_prepare(raw, packet, &m->info, arena, SEGMENT_ARENA, MAX_SEGMENTS_PER_PACKET, &r);
    if (verdict != DROP_NONE) {
      count(&e->tx.drops[verdict], 1);
    } else if (r.segmented) {
      tx_add_segments(e, s, &m->to, arena, r.segments, r.segment_len, r.total);
    } else {
      tx_add_packet(e, s, &m->to, packet, m->info.total_len);
    }
  }
  tx_flush(e, s);
}

static void *tx_main(void *arg) {
  struct engine *e = arg;
  struct tx_state s = {0};
  s.buffers = malloc((size_t)TX_BATCH * PACKET_BUFFER);
  s.arenas = e->vnet_hdr ? malloc((size_t)TX_BATCH * SEGMENT_ARENA) : NULL;
  s.units = calloc(MAX_UNITS, sizeof(*s.units));
  s.msgs = calloc(MAX_UNITS, sizeof(*s.msgs));
  s.iovs = calloc(MAX_UNITS, sizeof(*s.iovs));
  s.controls = calloc(MAX_UNITS, sizeof(*s.controls));
  if (!s.buffers || (e->vnet_hdr && !s.arenas) || !s.units || !s.msgs || !s.iovs || !s.controls) goto out;

  while (!engine_stopping(e)) {
    struct epoll_event events[2];
    int n = epoll_wait(e->tx.epoll_fd, events, 2, -1);
    if (n < 0 && errno != EINTR) break;
    if (engine_stopping(e)) break;
    // Drain the TUN: full batches until read() says EAGAIN.
    for (;;) {
      size_t batch = 0;
      int drained = 0;
      while (batch < TX_BATCH) {
        ssize_t r = read(e->tun_fd, s.buffers + batch * PACKET_BUFFER, PACKET_BUFFER);
        if (r < 0) {
          if (errno == EINTR) continue;
          drained = 1;
          if (errno != EAGAIN) {
            // e.g. the device was deleted under us: back off instead of spinning on a level-triggered fd.
            count(&e->tx.counters[COUNTER_TUN_READ_ERRORS], 1);
            wait_for_stop(e, 100);
          }
          break;
        }
        s.lengths[batch++] = (size_t)r;
      }
      if (batch) {
        count(&e->tx.counters[COUNTER_TUN_READS], batch);
        tx_process_batch(e, &s, batch);
      }
      if (drained || engine_stopping(e)) break;
    }
  }
out:
  free(s.buffers);
  free(s.arenas);
  free(s.units);
  free(s.msgs);
  free(s.iovs);
  free(s.controls);
  return NULL;
}

// ---------------------------------------------------------------------------------------------------------
// UDP -> TUN

struct rx_state {
  uint8_t *buffers;  // RX_BATCH x PACKET_BUFFER
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iovs[RX_BATCH];
  struct sockaddr_in senders[RX_BATCH];
  uint8_t controls[RX_BATCH][CMSG_SPACE(sizeof(int))];
  struct rx_packet accepted[MAX_RX_PACKETS];
  size_t accepted_count;
  uint8_t *super;  // VNET_HDR_LEN + 65535: one coalesced packet
  struct tcp4_segment run[MAX_COALESCED];
};

static int rx_gro_segment_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int size;
      memcpy(&size, CMSG_DATA(c), sizeof(size));
      return size;
    }
  }
  return 0;
}

static void rx_write(struct engine *e, struct rx_state *s);

// Classifies every inner packet of the received datagrams (datapath_decide_peer_packet).
static void rx_classify_and_write(struct engine *e, struct rx_state *s, int received) {
  s->accepted_count = 0;
  pthread_mutex_lock(&e->table_lock);
  const struct peer_table *table = e->table;
  for (int i = 0; i < received; i++) {
    struct msghdr *m = &s->msgs[i].msg_hdr;
    size_t len = s->msgs[i].msg_len;
    uint8_t *data = s->buffers + (size_t)i * PACKET_BUFFER;
    int segment = rx_gro_segment_size(m);
    size_t step = segment > 0 ? (size_t)segment : (len ? len : 1);
    uint64_t packets = len ? (len + step - 1) / step : 1;
    const struct sockaddr_in *from = &s->senders[i];
    uint32_t sender = ntohl(from->sin_addr.s_addr);
    // Any source port of a peer's public address: port-translating NAT in front of a peer is allowed.
    if (m->msg_namelen < sizeof(struct sockaddr_in) || from->sin_family != AF_INET || !table ||
        !peer_table_is_sender(table, sender)) {
      count(&e->rx.drops[DROP_UNKNOWN_PEER], packets);
      continue;
    }
    if (m->msg_flags & MSG_TRUNC) {
      count(&e->rx.drops[DROP_MALFORMED], packets);
      continue;
    }
    for (size_t off = 0; off < len || (len == 0 && off == 0); off += step) {
      size_t chunk = len - off < step ? len - off : step;
      uint8_t *packet = data + off;
      struct ipv4_info info;
      int verdict = datapath_decide_peer_packet(table, sender, packet, chunk, e->own_network, e->own_prefix_len, &info);
      if (verdict != DROP_NONE) {
        count(&e->rx.drops[verdict], 1);
      } else {
        if (s->accepted_count == MAX_RX_PACKETS) {
          // Many tiny GRO segments: write what we have (without the lock), then go on with a fresh look
          // at the table, which may have been swapped meanwhile.
          pthread_mutex_unlock(&e->table_lock);
          rx_write(e, s);
          s->accepted_count = 0;
          pthread_mutex_lock(&e->table_lock);
          table = e->table;
        }
        s->accepted[s->accepted_count].data = packet;
        s->accepted[s->accepted_count].len = info.total_len;
        s->accepted_count++;
      }
      if (len == 0) break;
    }
  }
  pthread_mutex_unlock(&e->table_lock);
  rx_write(e, s);
}

static void rx_write_single(struct engine *e, const struct rx_packet *p) {
  count(&e->rx.counters[COUNTER_TUN_WRITES], 1);
  if (tun_write_packet(e, p->data, p->len) != 0) {
    count(&e->rx.drops[DROP_TUN_WRITE_FAILED], 1);
    return;
  }
  count(&e->rx.counters[COUNTER_RX_PACKETS], 1);
  count(&e->rx.counters[COUNTER_RX_BYTES], p->len);
}

// Writes the accepted packets; with virtio headers, runs of consecutive segments of one TCP flow are
// merged into one super-packet (one write instead of dozens, as the kernel's GRO would).
static void rx_write(struct engine *e, struct rx_state *s) {
  size_t i = 0;
  int coalesce = e->vnet_hdr && __atomic_load_n(&e->coalesce, __ATOMIC_RELAXED);
  while (i < s->accepted_count) {
    struct rx_packet *p = &s->accepted[i];
    if (!coalesce || !offload_tcp4_coalescable(p->data, p->len, &s->run[0])) {
      rx_write_single(e, p);
      i++;
      continue;
    }
    size_t run = 1;
    size_t payload = s->run[0].payload_len;
    size_t j = i + 1;
    while (j < s->accepted_count && run < MAX_COALESCED) {
      struct rx_packet *q = &s->accepted[j];
      if (!offload_tcp4_coalescable(q->data, q->len, &s->run[run])) break;
      if (!offload_tcp4_can_follow(&s->run[0], &s->run[run - 1], &s->run[run], payload)) break;
      payload += s->run[run].payload_len;
      run++;
      j++;
    }
    if (run == 1) {
      rx_write_single(e, p);
      i++;
      continue;
    }
    size_t len = offload_build_tcp4_super(s->run, run, s->super);
    count(&e->rx.counters[COUNTER_TUN_WRITES], 1);
    if (write(e->tun_fd, s->super, len) < 0) {
      if (errno == EINVAL) {
        // The kernel refuses our super-packets: stop merging, write these one by one.
        __atomic_store_n(&e->coalesce, 0, __ATOMIC_RELAXED);
        coalesce = 0;
        continue;  // restart at i without merging
      }
      count(&e->rx.drops[DROP_TUN_WRITE_FAILED], run);
    } else {
      count(&e->rx.counters[COUNTER_RX_PACKETS], run);
      for (size_t k = 0; k < run; k++) count(&e->rx.counters[COUNTER_RX_BYTES], s->accepted[i + k].len);
    }
    i = j;
  }
}

static void *rx_main(void *arg) {
  struct engine *e = arg;
  struct rx_state *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->buffers = malloc((size_t)RX_BATCH * PACKET_BUFFER);
  s->super = malloc(VNET_HDR_LEN + 65536);
  if (!s->buffers || !s->super) goto out;

  while (!engine_stopping(e)) {
    struct epoll_event events[2];
    int n = epoll_wait(e->rx.epoll_fd, events, 2, -1);
    if (n < 0 && errno != EINTR) break;
    if (engine_stopping(e)) break;
    for (;;) {
      for (int i = 0; i < RX_BATCH; i++) {
        s->iovs[i].iov_base = s->buffers + (size_t)i * PACKET_BUFFER;
        s->iovs[i].iov_len = PACKET_BUFFER;
        struct msghdr *m = &s->msgs[i].msg_hdr;
        m->msg_name = &s->senders[i];
        m->msg_namelen = sizeof(s->senders[i]);
        m->msg_iov = &s->iovs[i];
        m->msg_iovlen = 1;
        m->msg_control = s->controls[i];
        m->msg_controllen = sizeof(s->controls[i]);
        m->msg_flags = 0;
      }
      int received = recvmmsg(e->udp_fd, s->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
      if (received < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: drained (other errors, e.g. a queued ICMP error, are retried on the next wake-up)
      }
      count(&e->rx.counters[COUNTER_UDP_RECVS], 1);
      count(&e->rx.counters[COUNTER_UDP_DATAGRAMS_RECEIVED], (uint64_t)received);
      rx_classify_and_write(e, s, received);
      if (received < RX_BATCH || engine_stopping(e)) break;
    }
  }
out:
  free(s->buffers);
  free(s->super);
  free(s);
  return NULL;
}

// ---------------------------------------------------------------------------------------------------------
// Life cycle

struct socket_request {
  const struct engine_config *config;
  int fd;
  char *err;
  size_t err_len;
};

static int open_udp_socket(void *arg) {
  struct socket_request *req = arg;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(req->err, req->err_len, "socket(AF_INET, SOCK_DGRAM): %s", strerror(errno));
    return -1;
  }
  // No SO_REUSEADDR (nor SO_REUSEPORT): while the engine runs, no other socket can bind this address and port
  // and receive the node's tunnelled traffic. A restarted weftd binds again once the old socket is closed.
  // Large buffers absorb bursts between wake-ups; FORCE needs CAP_NET_ADMIN, so fall back quietly.
  int size = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  // Sends block when the socket buffer is full (back-pressure for inner TCP), but never for long, so a
  // stop request is seen promptly.
  struct timeval timeout = {.tv_sec = 0, .tv_usec = 200000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons(req->config->bind_port),
                             .sin_addr.s_addr = htonl(req->config->bind_address)};
  if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
    snprintf(req->err, req->err_len, "bind UDP %s:%u: %s", text, req->config->bind_port, strerror(errno));
    close(fd);
    return -1;
  }
  req->fd = fd;
  return 0;
}

static int start_worker(struct engine *e, struct worker *w, int watched_fd, void *(*main)(void *), char *err,
                        size_t err_len, const char *name) {
  w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epoll_fd < 0) {
    snprintf(err, err_len, "epoll_create1: %s", strerror(errno));
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = watched_fd};
  struct epoll_event stop = {.events = EPOLLIN, .data.fd = e->stop_fd};
  if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, watched_fd, &ev) != 0 ||
      epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, e->stop_fd, &stop) != 0) {
    snprintf(err, err_len, "epoll_ctl (%s): %s", name, strerror(errno));
    return -1;
  }
  // The workers take no signals: Node's main thread handles them.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int rc = pthread_create(&w->thread, NULL, main, e);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (rc != 0) {
    snprintf(err, err_len, "pthread_create (%s): %s", name, strerror(rc));
    return -1;
  }
  pthread_setname_np(w->thread, name);
  w->started = 1;
  return 0;
}

int engine_create(const struct engine_config *config, struct engine **out, char *err, size_t err_len) {
  struct engine *e = calloc(1, sizeof(*e));
  if (!e) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  e->tun_fd = -1;
  e->udp_fd = -1;
  e->stop_fd = -1;
  e->tx.epoll_fd = -1;
  e->rx.epoll_fd = -1;
  e->vnet_hdr = config->vnet_hdr;
  e->coalesce = 1;
  e->own_network = config->own_network;
  e->own_prefix_len = config->own_prefix_len;
  pthread_mutex_init(&e->table_lock, NULL);
  pthread_mutex_init(&e->stop_lock, NULL);
  pthread_mutex_init(&e->build_lock, NULL);
  e->table = peer_table_build(NULL, 0);

  struct socket_request req = {.config = config, .fd = -1, .err = err, .err_len = err_len};
  if (netns_run(config->netns_path, open_udp_socket, &req, err, err_len) != 0) goto fail;
  e->udp_fd = req.fd;
  if (config->udp_gro) {
    int one = 1;
    e->udp_gro = setsockopt(e->udp_fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  }
  e->udp_gso = config->udp_gso ? 1 : 0;
  e->udp_gso_active = e->udp_gso;

  e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->stop_fd < 0) {
    snprintf(err, err_len, "eventfd: %s", strerror(errno));
    goto fail;
  }
  int flags = fcntl(config->tun_fd, F_GETFL);
  if (flags < 0 || fcntl(config->tun_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    snprintf(err, err_len, "TUN fd %d is not usable: %s", config->tun_fd, strerror(errno));
    goto fail;
  }
  e->tun_fd = config->tun_fd;
  if (!e->table) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  if (start_worker(e, &e->tx, e->tun_fd, tx_main, err, err_len, "weft-tun-to-udp") != 0) goto fail;
  if (start_worker(e, &e->rx, e->udp_fd, rx_main, err, err_len, "weft-udp-to-tun") != 0) goto fail;
  *out = e;
  return 0;

fail:
  e->tun_fd = -1;  // not taken over when creation fails: the caller still owns it
  engine_stop(e);
  engine_free(e);
  return -1;
}

int engine_set_peers(struct engine *e, const struct peer *peers, size_t n) {
  pthread_mutex_lock(&e->build_lock);
  struct peer_table *next = peer_table_rebuild(e->spare, peers, n);
  e->spare = NULL;
  if (!next) {
    pthread_mutex_unlock(&e->build_lock);
    return -1;
  }
  pthread_mutex_lock(&e->table_lock);
  // No worker holds the previous table after this: they only use the table under the lock.
  e->spare = e->table;
  e->table = next;
  pthread_mutex_unlock(&e->table_lock);
  pthread_mutex_unlock(&e->build_lock);
  return 0;
}

void engine_read_stats(struct engine *e, struct engine_stats *out) {
  memset(out, 0, sizeof(*out));
  for (int i = 0; i < COUNTER_COUNT; i++) {
    out->counters[i] = __atomic_load_n(&e->tx.counters[i], __ATOMIC_RELAXED) +
                       __atomic_load_n(&e->rx.counters[i], __ATOMIC_RELAXED);
  }
  for (int i = 0; i < DROP_REASON_COUNT; i++) {
    out->drops[i] =
        __atomic_load_n(&e->tx.drops[i], __ATOMIC_RELAXED) + __atomic_load_n(&e->rx.drops[i], __ATOMIC_RELAXED);
  }
  out->vnet_hdr = e->vnet_hdr;
  out->udp_gso = __atomic_load_n(&e->udp_gso_active, __ATOMIC_RELAXED);
  out->udp_gro = e->udp_gro;
  out->running = !__atomic_load_n(&e->stopped, __ATOMIC_ACQUIRE);
  pthread_mutex_lock(&e->table_lock);
  out->peers = e->table ? peer_table_count(e->table) : 0;
  pthread_mutex_unlock(&e->table_lock);
}

void engine_stop(struct engine *e) {
  pthread_mutex_lock(&e->stop_lock);
  if (e->stopped) {
    pthread_mutex_unlock(&e->stop_lock);
    return;
  }
  __atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
  if (e->stop_fd >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(e->stop_fd, &one, sizeof(one));
    (void)ignored;
  }
  if (e->tx.started) pthread_join(e->tx.thread, NULL);
  if (e->rx.started) pthread_join(e->rx.thread, NULL);
  e->tx.started = e->rx.started = 0;
  if (e->tx.epoll_fd >= 0) close(e->tx.epoll_fd);
  if (e->rx.epoll_fd >= 0) close(e->rx.epoll_fd);
  if (e->udp_fd >= 0) close(e->udp_fd);
  if (e->tun_fd >= 0) close(e->tun_fd);
  if (e->stop_fd >= 0) close(e->stop_fd);
  e->tx.epoll_fd = e->rx.epoll_fd = e->udp_fd = e->tun_fd = e->stop_fd = -1;
  __atomic_store_n(&e->stopped, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&e->stop_lock);
}

void engine_free(struct engine *e) {
  if (!e) return;
  engine_stop(e);
  peer_table_free(e->table);
  peer_table_free(e->spare);
  pthread_mutex_destroy(&e->table_lock);
  pthread_mutex_destroy(&e->build_lock);
  pthread_mutex_destroy(&e->stop_lock);
  free(e);
}
