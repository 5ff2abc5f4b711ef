// SYN flood generator for the flood bench and its e2e test: raw IPv4 TCP SYNs from many source
// addresses, as fast as one core sends them (or paced to --pps), for a fixed time.
//
// Usage: syn-flood SRC_NET SRC_COUNT DST_ADDR DST_PORT SECONDS [PPS]
//   SRC_NET    first source address (e.g. 192.0.2.1); sources are SRC_NET .. SRC_NET+SRC_COUNT-1
//   PPS        0 or absent: no pacing
// Every SYN has its own (source address, source port) pair, enumerated in order, so each is a new
// flow to a stateful firewall until SRC_COUNT * 64512 SYNs were sent; then the enumeration wraps.
// Prints one JSON line on exit: {"sent":N,"failed":N,"seconds":S,"pps":R,"distinct":D}.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FIRST_PORT 1024
#define PORTS 64512

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t csum(const void *data, size_t len, uint32_t sum) {
  const uint8_t *p = data;
  for (; len > 1; len -= 2, p += 2) sum += (uint32_t)(p[0] << 8 | p[1]);
  if (len) sum += (uint32_t)(p[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

struct syn {
  struct iphdr ip;
  struct tcphdr tcp;
  uint8_t opts[4]; // MSS
} __attribute__((packed));

static void build(struct syn *s, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq) {
  memset(s, 0, sizeof *s);
  s->ip.version = 4;
  s->ip.ihl = 5;
  s->ip.ttl = 64;
  s->ip.protocol = IPPROTO_TCP;
  s->ip.tot_len = htons(sizeof *s);
  s->ip.id = htons((uint16_t)seq);
  s->ip.saddr = src;
  s->ip.daddr = dst;
  s->ip.check = htons(csum(&s->ip, sizeof s->ip, 0));
  s->tcp.source = htons(sport);
  s->tcp.dest = htons(dport);
  s->tcp.seq = htonl(seq * 2654435761u);
  s->tcp.doff = (sizeof s->tcp + sizeof s->opts) / 4;
  s->tcp.syn = 1;
  s->tcp.window = htons(64240);
  s->opts[0] = 2; s->opts[1] = 4; s->opts[2] = 0x05; s->opts[3] = 0xb4; // MSS 1460
  // TCP checksum over the pseudo header and the segment.
  uint32_t sum = 0;
  const uint8_t *a = (const uint8_t *)&s->ip.saddr;
  for (int i = 0; i < 8; i += 2) sum += (uint32_t)(a[i] << 8 | a[i + 1]);
  sum += IPPROTO_TCP + sizeof s->tcp + sizeof s->opts;
  s->tcp.check = htons(csum(&s->tcp, sizeof s->tcp + sizeof s->opts, sum));
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s SRC_NET SRC_COUNT DST_ADDR DST_PORT SECONDS [PPS]\n", argv[0]);
    return 2;
  }
  struct in_addr net, dst;
  if (!inet_pton(AF_INET, argv[1], &net) || !inet_pton(AF_INET, argv[3], &dst)) {
    fprintf(stderr, "syn-flood: bad address\n");
    return 2;
  }
  uint32_t nsrc = (uint32_t)strtoul(argv[2], NULL, 10);
  uint16_t dport = (uint16_t)atoi(argv[4]);
  double seconds = atof(argv[5]);
  double pps = argc > 6 ? atof(argv[6]) : 0;
  if (nsrc == 0 || nsrc > 65536 || seconds <= 0) {
    fprintf(stderr, "syn-flood: SRC_COUNT must be 1..65536 and SECONDS > 0\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) { perror("syn-flood: socket"); return 1; }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  static struct syn pkts[BATCH];
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = dst };
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = &pkts[i];
    iov[i].iov_len = sizeof pkts[i];
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0, failed = 0, next = 0;
  const uint64_t distinct = (uint64_t)nsrc * PORTS;
  const uint32_t base = ntohl(net.s_addr);
  const double t0 = now_s();
  double t = t0;
  while (!stop && t - t0 < seconds) {
    int n = BATCH;
    if (pps > 0) {
      // Paced: send what the elapsed time allows, in batches of at most BATCH.
      double due = (t - t0) * pps - (double)(sent + failed);
      if (due < 1) { usleep(200); t = now_s(); continue; }
      if (due < n) n = (int)due;
    }
    for (int i = 0; i < n; i++) {
      uint64_t k = next++ % distinct;
      build(&pkts[i], htonl(base + (uint32_t)(k % nsrc)), dst.s_addr, (uint16_t)(FIRST_PORT + k / nsrc), dport, (uint32_t)k);
    }
    int r = sendmmsg(fd, msgs, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      // A full device queue (ENOBUFS) drops the batch: counted, not retried.
      failed += n;
    } else {
      sent += r;
      failed += n - r;
    }
    t = now_s();
  }
  double el = now_s() - t0;
  printf("{\"sent\":%llu,\"failed\":%llu,\"seconds\":%.3f,\"pps\":%.0f,\"distinct\":%llu}\n",
    (unsigned long long)sent, (unsigned long long)failed, el, sent / el, (unsigned long long)(next < distinct ? next : distinct));
  return 0;
}
