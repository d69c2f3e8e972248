"""Task, identity and time system calls: exit, getpid, arch_prctl, uname, getrandom,
clock_gettime, set_tid_address (man 2 of each)."""

from __future__ import annotations

import errno
import struct
import time

from sandbox import abi
from sandbox.errors import SyscallError
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.sysview import HOSTNAME
from sandbox.kernel.task import Task
from sandbox.mm import USER_END
from sandbox.mm.uaccess import copy_out

#: struct utsname: six fields of 65 bytes (include/uapi/linux/utsname.h, __NEW_UTS_LEN + 1).
UTS_FIELD = 65
UTSNAME = (b"Linux", HOSTNAME.encode(), b"6.1.0-sandbox", b"#1 SMP PREEMPT_DYNAMIC", b"x86_64", b"(none)")
TIMESPEC = struct.Struct("<qq")  # struct timespec { time_t tv_sec; long tv_nsec; }
MAX_RANDOM = 33_554_431  # getrandom returns at most this many bytes per call (man 2 getrandom)
DETERMINISTIC_EPOCH_NS = 1_700_000_000 * 10**9  # CLOCK_REALTIME's start in --deterministic runs

_CLOCKS = {
    abi.CLOCK_REALTIME: time.time_ns,
    abi.CLOCK_REALTIME_COARSE: time.time_ns,
    abi.CLOCK_MONOTONIC: time.monotonic_ns,
    abi.CLOCK_MONOTONIC_RAW: time.monotonic_ns,
    abi.CLOCK_MONOTONIC_COARSE: time.monotonic_ns,
    abi.CLOCK_BOOTTIME: time.monotonic_ns,
    abi.CLOCK_PROCESS_CPUTIME_ID: time.process_time_ns,
    abi.CLOCK_THREAD_CPUTIME_ID: time.thread_time_ns,
}


@syscall("getpid")
def sys_getpid(proc: Task) -> int:
    return proc.pid


@syscall("gettid")
def sys_gettid(proc: Task) -> int:
    return proc.tid


@syscall("getppid")
def sys_getppid(proc: Task) -> int:
    return proc.ppid


@syscall("set_tid_address", "tidptr")
def sys_set_tid_address(proc: Task, tidptr: int) -> int:
    """Remember where to clear the tid at exit; return the caller's tid."""
    proc.clear_child_tid = tidptr
    return proc.tid


@syscall("arch_prctl", "code addr")
def sys_arch_prctl(proc: Task, code: int, addr: int) -> int:
    """Set or get the calling thread's FS/GS base (thread-local storage)."""
    code = to_int32(code)
    bases = {abi.ARCH_SET_FS: "fs_base", abi.ARCH_SET_GS: "gs_base", abi.ARCH_GET_FS: "fs_base",
             abi.ARCH_GET_GS: "gs_base"}
    if code not in bases:
        raise SyscallError(errno.EINVAL, f"arch_prctl code {code:#x}")
    if code in (abi.ARCH_SET_FS, abi.ARCH_SET_GS):
        if addr >= USER_END:
            raise SyscallError(errno.EPERM, f"base {addr:#x} is not a user address")
        setattr(proc.regs, bases[code], addr)
    else:
        copy_out(proc.space, addr, struct.pack("<Q", getattr(proc.regs, bases[code])))
    return 0


@syscall("uname", "buf")
def sys_uname(proc: Task, buf: int) -> int:
    copy_out(proc.space, buf, b"".join(f.ljust(UTS_FIELD, b"\0") for f in UTSNAME))
    return 0


@syscall("getrandom", "buf buflen flags")
def sys_getrandom(proc: Task, buf: int, buflen: int, flags: int) -> int:
    if to_int32(flags) & ~(abi.GRND_NONBLOCK | abi.GRND_RANDOM | abi.GRND_INSECURE):
        raise SyscallError(errno.EINVAL, f"getrandom flags {flags:#x}")
    n = min(buflen, MAX_RANDOM)
    copy_out(proc.space, buf, proc.kernel.random_bytes(n))
    return n


def clock_source(proc: Task, clockid: int):
    """A function giving clock `clockid` in ns; EINVAL for unknown clocks.

    In deterministic mode every clock reads a fixed start plus 1 us per reading plus time
    slept, so two runs see the same times.
    """
    clock = _CLOCKS.get(clockid)
    if clock is None:
        raise SyscallError(errno.EINVAL, f"clock {clockid}")
    kernel = proc.kernel
    if not kernel.options.deterministic:
        return clock

    def fixed() -> int:
        kernel.clock_offset += 1000
        return DETERMINISTIC_EPOCH_NS + kernel.clock_offset

    return fixed


@syscall("clock_gettime", "clockid tp")
def sys_clock_gettime(proc: Task, clockid: int, tp: int) -> int:
    ns = clock_source(proc, to_int32(clockid))()
    copy_out(proc.space, tp, TIMESPEC.pack(ns // 1_000_000_000, ns % 1_000_000_000))
    return 0
