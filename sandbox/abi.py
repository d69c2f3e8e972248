"""Linux x86-64 ABI facts used across the sandbox, named as in the kernel headers.

Signal and errno numbers come from Python's `signal` and `errno` modules, which carry the
host's values; this sandbox runs on x86-64 Linux, whose values the guest expects too.
"""

from __future__ import annotations

# The largest file offset, loff_t's largest value (include/linux/fs.h MAX_LFS_FILESIZE): no
# file byte lies past it, and no position or mapping may reach beyond.
MAX_LFS_FILESIZE = (1 << 63) - 1
# The unit of st_blocks (stat(2)): what the disk quota counts host disk in.
ST_BLOCK_SIZE = 512

# si_code values for SIGSEGV and SIGBUS (include/uapi/asm-generic/siginfo.h).
SEGV_MAPERR = 1  # address not mapped to an object
SEGV_ACCERR = 2  # invalid permissions for a mapped object
BUS_ADRERR = 2  # non-existent physical address (access past end of a file mapping)
FPE_INTDIV = 1  # integer divide by zero
ILL_ILLOPN = 2  # illegal operand
TRAP_BRKPT = 1  # process breakpoint
SI_KERNEL = 0x80  # sent by the kernel (e.g. #GP on a non-canonical address)

# Signal dispositions and si_code values for kill and SIGCHLD (uapi/asm-generic/signal-defs.h,
# siginfo.h).
#: The sandbox's own init (a container's pid 1): it has no image; the program runs as its
#: child, orphans are re-parented to it and reaped as they end, and signals to it are dropped.
INIT_PID = 1
SIG_DFL = 0
SIG_IGN = 1
SI_USER = 0
SI_TKILL = -6
CLD_EXITED = 1
CLD_KILLED = 2
CLD_DUMPED = 3  # killed, and dumped core

#: `syscall` is 0F 05: after the hook RIP points past it; a restart backs up this far.
SYSCALL_INSN_LEN = 2

# mmap flags (include/uapi/asm-generic/mman-common.h, x86 mman.h).
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_32BIT = 0x40
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_FIXED_NOREPLACE = 0x100000

# arch_prctl codes (arch/x86/include/uapi/asm/prctl.h).
ARCH_SET_GS = 0x1001
ARCH_SET_FS = 0x1002
ARCH_GET_FS = 0x1003
ARCH_GET_GS = 0x1004

# Auxiliary vector types (include/uapi/linux/auxvec.h).
AT_NULL = 0
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_PAGESZ = 6
AT_BASE = 7
AT_FLAGS = 8
AT_ENTRY = 9
AT_UID = 11
AT_EUID = 12
AT_GID = 13
AT_EGID = 14
AT_PLATFORM = 15
AT_HWCAP = 16
AT_CLKTCK = 17
AT_SECURE = 23
AT_RANDOM = 25
AT_HWCAP2 = 26
AT_EXECFN = 31
AT_MINSIGSTKSZ = 51

# clock ids (include/uapi/linux/time.h).
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_PROCESS_CPUTIME_ID = 2
CLOCK_THREAD_CPUTIME_ID = 3
CLOCK_MONOTONIC_RAW = 4
CLOCK_REALTIME_COARSE = 5
CLOCK_MONOTONIC_COARSE = 6
CLOCK_BOOTTIME = 7

# getrandom flags.
GRND_NONBLOCK = 0x1
GRND_RANDOM = 0x2
GRND_INSECURE = 0x4

#: Linux's default stack rlimit (8 MiB) and the gap it keeps below a stack (mm/mmap.c).
STACK_LIMIT = 8 << 20
STACK_GUARD_GAP = 256 << 12
