/*
 * accept-server: TCP listener for connect-rate. Accepts connections and closes each one at once
 * (the server sends the first FIN and holds TIME_WAIT, so the client's ports stay free).
 * Prints {"listening":true,"port":P} once bound, and {"accepted":N} on SIGTERM/SIGINT.
 *
 * Usage: accept-server BIND_ADDR PORT      (BIND_ADDR "::" accepts IPv4 and IPv6)
 * Build: gcc -O2 -Wall -o accept-server accept-server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s BIND_ADDR PORT\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[2]);
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, argv[1], &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, argv[1], &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof *a6;
  } else {
    fprintf(stderr, "accept-server: bad address %s\n", argv[1]);
    return 2;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
    perror("bind");
    return 1;
  }
  if (listen(fd, 4096) < 0) {
    perror("listen");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: accept() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("{\"listening\":true,\"port\":%d}\n", port);
  fflush(stdout);
  long accepted = 0;
  while (!stop) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      perror("accept");
      break;
    }
    accepted++;
    close(c);
  }
  printf("{\"accepted\":%ld}\n", accepted);
  fflush(stdout);
  return 0;
}
