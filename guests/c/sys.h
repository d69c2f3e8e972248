/* A freestanding runtime for the C guests: _start, raw system calls, a few helpers.
 * Built with gcc -static -nostdlib; runs natively and in the sandbox alike.
 * System call numbers: arch/x86/entry/syscalls/syscall_64.tbl. */
#ifndef GUEST_SYS_H
#define GUEST_SYS_H

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long uint64_t;

enum {
    SYS_read = 0, SYS_write = 1, SYS_mmap = 9, SYS_mprotect = 10, SYS_munmap = 11, SYS_brk = 12,
    SYS_writev = 20, SYS_getpid = 39, SYS_exit = 60, SYS_uname = 63, SYS_arch_prctl = 158,
    SYS_gettid = 186, SYS_clock_gettime = 228, SYS_exit_group = 231, SYS_getrandom = 318,
};
enum { PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4 };
enum { MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20,
       MAP_POPULATE = 0x8000, MAP_FIXED_NOREPLACE = 0x100000 };
#define MAP_FAILED ((void *)-1)

static inline long syscall6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define syscall3(n, a, b, c) syscall6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static inline __attribute__((noreturn)) void exit(int code) {
    for (;;) syscall3(SYS_exit_group, code, 0, 0);
}
static inline ssize_t write(int fd, const void *buf, size_t n) { return syscall3(SYS_write, fd, buf, n); }
static inline ssize_t read(int fd, void *buf, size_t n) { return syscall3(SYS_read, fd, buf, n); }
static inline void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off) {
    return (void *)syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off);
}
static inline long munmap(void *addr, size_t len) { return syscall3(SYS_munmap, addr, len, 0); }
static inline long mprotect(void *addr, size_t len, int prot) { return syscall3(SYS_mprotect, addr, len, prot); }
static inline long brk(void *addr) { return syscall3(SYS_brk, addr, 0, 0); }

/* gcc may emit calls to these even when freestanding. */
void *memset(void *d, int c, size_t n) { unsigned char *p = d; while (n--) *p++ = (unsigned char)c; return d; }
void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *p = d; const unsigned char *q = s; while (n--) *p++ = *q++; return d;
}
static inline size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static inline int streq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }
static inline void puts_fd(int fd, const char *s) { write(fd, s, strlen(s)); }
static inline void put(const char *s) { puts_fd(1, s); }
static inline void put_num(long v) {
    char buf[24]; int i = 23; unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    buf[i] = 0;
    do { buf[--i] = '0' + u % 10; u /= 10; } while (u);
    if (v < 0) buf[--i] = '-';
    put(buf + i);
}
static inline void put_hex(unsigned long v) {
    char buf[19]; int i = 18; buf[i] = 0;
    do { buf[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    buf[--i] = 'x'; buf[--i] = '0';
    put(buf + i);
}
static inline long atol(const char *s) { long v = 0; while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0'); return v; }

int main(int argc, char **argv, char **envp);

/* SysV x86-64 ABI §3.4.1: at _start, rsp points at argc, then argv[], NULL, envp[], NULL, auxv. */
__asm__(".globl _start\n_start:\n"
        "  xor %ebp, %ebp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n  hlt\n");
__attribute__((used, noreturn)) void start_c(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    exit(main(argc, argv, argv + argc + 1));
}

#endif
