/* recvmmsg waits for every message unless MSG_WAITFORONE; a signal after the first ends it
 * with the count; sendmmsg sends each. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
static void h(int s) { (void)s; }
static int recv_n(int fd, int n, int flags) {
  struct mmsghdr m[8]; struct iovec io[8]; char buf[8][16];
  memset(m, 0, sizeof m);
  for (int i = 0; i < n; i++) { io[i].iov_base = buf[i]; io[i].iov_len = 16; m[i].msg_hdr.msg_iov = &io[i]; m[i].msg_hdr.msg_iovlen = 1; }
  int r = recvmmsg(fd, m, n, flags, NULL);
  if (r < 0) { printf("recvmmsg: %s\n", strerrorname_np(errno)); return r; }
  printf("recvmmsg got %d:", r);
  for (int i = 0; i < r; i++) printf(" %.*s", (int)m[i].msg_len, buf[i]);
  printf("\n");
  return r;
}
int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  int sv[2]; socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
  pid_t c = fork();
  if (c == 0) { for (int i = 0; i < 3; i++) { usleep(20000); char b[2] = {'a' + i, 0}; send(sv[1], b, 1, 0); } _exit(0); }
  recv_n(sv[0], 3, 0);
  waitpid(c, 0, 0);
  c = fork();
  /* x and y are queued before the call (a wait for the first would race the child's second
     send, natively too); MSG_WAITFORONE takes them and does not wait for z. */
  if (c == 0) { send(sv[1], "x", 1, 0); send(sv[1], "y", 1, 0); usleep(100000); send(sv[1], "z", 1, 0); _exit(0); }
  usleep(50000);
  recv_n(sv[0], 3, MSG_WAITFORONE);
  waitpid(c, 0, 0); recv_n(sv[0], 3, MSG_DONTWAIT);
  struct sigaction sa = {0}; sa.sa_handler = h; sigaction(SIGUSR1, &sa, 0);
  pid_t me = getpid(); c = fork();
  if (c == 0) { usleep(20000); send(sv[1], "p", 1, 0); usleep(30000); kill(me, SIGUSR1); _exit(0); }
  recv_n(sv[0], 3, 0);
  waitpid(c, 0, 0);
  /* (Linux then keeps -ERESTARTSYS as the socket's error for its next call: a kernel
   * quirk not copied; the rest uses a fresh pair) */
  close(sv[0]); close(sv[1]); socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
  struct mmsghdr out[3]; struct iovec io[3] = {{"one", 3}, {"two", 3}, {"six", 3}};
  memset(out, 0, sizeof out);
  for (int i = 0; i < 3; i++) { out[i].msg_hdr.msg_iov = &io[i]; out[i].msg_hdr.msg_iovlen = 1; }
  int sent = sendmmsg(sv[1], out, 3, 0);
  printf("sendmmsg: %d, lens %u %u %u\n", sent, out[0].msg_len, out[1].msg_len, out[2].msg_len);
  recv_n(sv[0], 3, 0);
  printf("recvmmsg vlen 0: %d\n", recvmmsg(sv[0], NULL, 0, 0, NULL));
  return 0;
}
