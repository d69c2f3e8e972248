#include <sys/syscall.h>
static long sc3(long n, long a, long b, long c){ long r; asm volatile("syscall":"=a"(r):"a"(n),"D"(a),"S"(b),"d"(c):"rcx","r11","memory"); return r; }
static char buf[64];
void _start(void){ unsigned long head = 1, len = 0; sc3(SYS_get_robust_list, 0, (long)&head, (long)&len);
  int i = 0; const char *h="robust head after exec: 0x"; while (h[i]) { buf[i]=h[i]; i++; }
  for (int s = 60; s >= 0; s -= 4) buf[i++] = "0123456789abcdef"[(head >> s) & 15]; buf[i++]='\n';
  sc3(SYS_write, 1, (long)buf, i); sc3(SYS_exit_group, 0, 0, 0); }
