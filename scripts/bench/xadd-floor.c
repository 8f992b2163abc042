// The floor for the emitter's job, as a yardstick: read stdin, send one XADD of it to a
// local Redis over TCP, wait for the reply, exit 0. No parsing, no envelope, no checks.
// Build: cc -O2 -static -o xadd-floor xadd-floor.c (scripts/bench-emitter does)
// Run: xadd-floor PORT < payload.json
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
  static char in[1 << 20], cmd[(1 << 20) + 256];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof in && (r = read(0, in + n, sizeof in - n)) > 0) n += (size_t)r;
  int port = argc > 1 ? atoi(argv[1]) : 6379;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) return 0;
  int h = snprintf(cmd, 256, "*5\r\n$4\r\nXADD\r\n$15\r\nhooktrail:floor\r\n$1\r\n*\r\n$5\r\nevent\r\n$%zu\r\n", n);
  memcpy(cmd + h, in, n);
  memcpy(cmd + h + n, "\r\n", 2);
  if (write(s, cmd, (size_t)h + n + 2) < 0) return 0;
  char buf[256];
  if (read(s, buf, sizeof buf) < 0) return 0;
  return 0;
}
