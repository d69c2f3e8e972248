/* A guest with a known, small number of page faults, for --step-faults: no C library, so
 * nothing but its own code, its stack and three pages of bss. With "read" it first copies
 * one read of stdin to stdout (the guest's stdin is not the pause's terminal); with "raw"
 * it first puts the terminal on fd 2 in raw mode (no ICANON, ECHO, ISIG) and leaves it so. */
static char pages[3 * 4096] __attribute__((aligned(4096)));

static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

__attribute__((noreturn, used)) void start_c(long *sp) {
    char buf[64];
    const char *arg = sp[0] > 1 ? (const char *)sp[2] : "";
    if (arg[0] == 'r' && arg[1] == 'a') {
        sys3(16, 2, 0x5401, (long)buf);             /* ioctl(2, TCGETS): 36 bytes */
        *(unsigned *)(buf + 12) &= ~0xbu;           /* c_lflag: ISIG 1, ICANON 2, ECHO 8 */
        sys3(16, 2, 0x5402, (long)buf);             /* ioctl(2, TCSETS) */
    } else if (arg[0] == 'r') {
        long n = sys3(0, 0, (long)buf, sizeof buf);  /* read(0, ...) */
        if (n > 0) sys3(1, 1, (long)buf, n);         /* write(1, ...) */
    }
    for (int i = 0; i < 3; i++) pages[i * 4096] = 'a' + i;
    sys3(1, 1, (long)"done\n", 5);
    sys3(231, pages[4096] - 'b', 0, 0);  /* exit_group(0) */
    for (;;) {}
}

__asm__(".globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n");
