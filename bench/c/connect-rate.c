/*
 * connect-rate: open and close TCP connections to HOST:PORT as fast as possible, keeping
 * CONCURRENCY connection attempts in flight (non-blocking sockets + epoll), for at most
 * SECONDS seconds or MAX connections, whichever comes first. Prints one JSON line:
 *   {"completed":N,"failed":F,"timeouts":T,"elapsed_s":X,"per_second":R,
 *    "handshakes":H,"handshake_p50_us":P50,"handshake_p99_us":P99}
 * A connection counts as completed when the handshake finished and the server's FIN (the
 * accept-server closes right after accept) was read; the client then closes too, so the client
 * side never holds TIME_WAIT and the ephemeral ports do not run out.
 * An attempt that does not complete within 3 s is abandoned (counted in "timeouts").
 * Handshake latency is the time from just before connect() to the moment the loop sees the
 * socket writable without error (SYN, SYN-ACK, so it includes the router's decision on the
 * first packet); every completed handshake is kept, so the percentiles are exact (nearest rank).
 * An event loop running behind adds to it, as it does to a real client.
 *
 * Usage: connect-rate HOST PORT SECONDS [MAX] [CONCURRENCY]
 * Build: gcc -O2 -Wall -o connect-rate connect-rate.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC 1024
#define ATTEMPT_TIMEOUT_S 3.0

static struct sockaddr_storage dst;
static socklen_t dstlen;

struct slot {
  int fd;
  int connected;
  double started;
};

/* A few hundred thousand handshakes at most in a bench run: keeping them all is cheap. */
static uint32_t *hs_us;
static size_t hs_n, hs_cap;

static void record_handshake(double seconds) {
  if (hs_n == hs_cap) {
    size_t cap = hs_cap ? hs_cap * 2 : 65536;
    uint32_t *p = realloc(hs_us, cap * sizeof *p);
    if (p == NULL) return; /* percentiles then come from the samples kept so far */
    hs_us = p;
    hs_cap = cap;
  }
  double us = seconds * 1e6;
  hs_us[hs_n++] = us < 0 ? 0 : us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank of the sorted samples, as a JSON value (null without samples). */
static const char *percentile(double p, char *out, size_t len) {
  if (hs_n == 0) return "null";
  double want = p * (double)hs_n;
  size_t rank = (size_t)want;
  if ((double)rank < want) rank++;
  if (rank < 1) rank = 1;
  if (rank > hs_n) rank = hs_n;
  snprintf(out, len, "%u", hs_us[rank - 1]);
  return out;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(int ep, struct slot *s, int idx) {
  int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s->started = now();
  int r = connect(fd, (struct sockaddr *)&dst, dstlen);
  if (r < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)idx};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    close(fd);
    return -1;
  }
  s->fd = fd;
  s->connected = 0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s HOST PORT SECONDS [MAX] [CONCURRENCY]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  double seconds = atof(argv[3]);
  long max = argc > 4 ? atol(argv[4]) : 10000000L;
  int conc = argc > 5 ? atoi(argv[5]) : 16;
  if (conc < 1) conc = 1;
  if (conc > MAX_CONC) conc = MAX_CONC;
  if (seconds <= 0 || seconds > 600 || port <= 0 || port > 65535 || max < 1) {
    fprintf(stderr, "connect-rate: bad arguments\n");
    return 2;
  }

  memset(&dst, 0, sizeof dst);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&dst;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&dst;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    dstlen = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    dstlen = sizeof *a6;
  } else {
    fprintf(stderr, "connect-rate: bad address %s\n", host);
    return 2;
  }

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("epoll_create1");
    return 1;
  }
  struct slot slots[MAX_CONC];
  long started = 0, completed = 0, failed = 0, timeouts = 0;
  double t0 = now(), deadline = t0 + seconds;
  int active = 0;
  for (int i = 0; i < conc; i++) {
    slots[i].fd = -1;
    if (started < max) {
      if (open_conn(ep, &slots[i], i) == 0) {
        started++;
        active++;
      } else {
        failed++;
      }
    }
  }

  struct epoll_event evs[MAX_CONC];
  double last_sweep = t0;
  while (active > 0) {
    double t = now();
    int stopping = t >= deadline;
    if (stopping) break;
    int n = epoll_wait(ep, evs, MAX_CONC, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      break;
    }
    for (int k = 0; k < n; k++) {
      int i = (int)evs[k].data.u32;
      struct slot *s = &slots[i];
      if (s->fd < 0) continue;
      uint32_t e = evs[k].events;
      int done = 0, ok = 0;
      if (!s->connected && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          done = 1;
        } else {
          s->connected = 1;
          record_handshake(now() - s->started);
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
          epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        }
      }
      if (!done && s->connected && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        char buf[256];
        ssize_t r = read(s->fd, buf, sizeof buf);
        if (r == 0) {
          done = 1;
          ok = 1;
        } else if (r < 0 && errno != EAGAIN) {
          done = 1;
        }
      }
      if (done) {
        close(s->fd);
        s->fd = -1;
        active--;
        if (ok) completed++;
        else failed++;
        if (started < max && now() < deadline) {
          if (open_conn(ep, s, i) == 0) {
            started++;
            active++;
          } else {
            failed++;
          }
        }
      }
    }
    t = now();
    if (t - last_sweep > 0.5) {
      last_sweep = t;
      for (int i = 0; i < conc; i++) {
        struct slot *s = &slots[i];
        if (s->fd >= 0 && t - s->started > ATTEMPT_TIMEOUT_S) {
          close(s->fd);
          s->fd = -1;
          active--;
          timeouts++;
          if (started < max && t < deadline) {
            if (open_conn(ep, s, i) == 0) {
              started++;
              active++;
            } else {
              failed++;
            }
          }
        }
      }
    }
  }
  double elapsed = now() - t0;
  for (int i = 0; i < conc; i++)
    if (slots[i].fd >= 0) close(slots[i].fd);
  qsort(hs_us, hs_n, sizeof *hs_us, cmp_u32);
  char p50[16], p99[16];
  printf("{\"completed\":%ld,\"failed\":%ld,\"timeouts\":%ld,\"elapsed_s\":%.3f,\"per_second\":%.1f,"
         "\"handshakes\":%zu,\"handshake_p50_us\":%s,\"handshake_p99_us\":%s}\n",
         completed, failed, timeouts, elapsed, elapsed > 0 ? completed / elapsed : 0.0,
         hs_n, percentile(0.50, p50, sizeof p50), percentile(0.99, p99, sizeof p99));
  return 0;
}
