"""Guest integers checked as Linux checks them, before the host sees them.

A guest chooses every bit of a register and of the structures it points to; Python's struct,
select and float arithmetic raise on values past their range (struct.error, OverflowError)
where Linux answers with an errno or clamps. Every time, offset and count a handler takes
from the guest goes through these helpers: the result is Linux's errno (`SyscallError`) or
Linux's clamped value, never a host exception.

- Times: Linux converts a timespec/timeval to ktime_t, 64-bit nanoseconds, and saturates at
  KTIME_MAX (include/linux/ktime.h, ktime_set); negative or unnormalised values are EINVAL
  (timespec64_valid). So a guest may sleep "for ever", which here means KTIME_MAX ns.
- Offsets: loff_t is signed 64-bit; a transfer that would pass MAX_LFS_FILESIZE is EINVAL
  (rw_verify_area in fs/read_write.c).
"""

from __future__ import annotations

import errno
import struct

from sandbox.abi import MAX_LFS_FILESIZE
from sandbox.errors import SyscallError
from sandbox.kernel.structs import TIMESPEC
from sandbox.mm.uaccess import copy_in

NSEC_PER_SEC = 10**9
USEC_PER_SEC = 10**6
KTIME_MAX = (1 << 63) - 1  # include/linux/ktime.h: the longest time the kernel keeps, in ns
LOFF = struct.Struct("<q")  # loff_t


def time_ns(sec: int, frac: int, per_sec: int, what: str) -> int:
    """Nanoseconds of a (seconds, fraction) pair whose fraction counts 1/`per_sec` s: EINVAL
    if negative or unnormalised, saturated at KTIME_MAX (timespec64_valid, ktime_set)."""
    if sec < 0 or not 0 <= frac < per_sec:
        raise SyscallError(errno.EINVAL, f"bad {what}: {sec} s + {frac}/{per_sec}")
    return min(sec * NSEC_PER_SEC + frac * (NSEC_PER_SEC // per_sec), KTIME_MAX)


def read_timespec(space, addr: int) -> int:
    """The struct timespec at `addr` as nanoseconds (EFAULT, EINVAL; saturated)."""
    return timespec_ns(copy_in(space, addr, TIMESPEC.size))


def timespec_ns(raw: bytes) -> int:
    """A struct timespec already copied in, as nanoseconds (EINVAL; saturated)."""
    sec, nsec = TIMESPEC.unpack(raw)
    return time_ns(sec, nsec, NSEC_PER_SEC, "timespec")


def seconds_ns(seconds: float) -> int:
    """A duration in (float) seconds as nanoseconds in 0..KTIME_MAX."""
    return int(min(max(seconds, 0.0) * NSEC_PER_SEC, float(KTIME_MAX)))


def timespec_bytes(ns: int) -> bytes:
    """A struct timespec for `ns` nanoseconds (0..KTIME_MAX: always fits)."""
    ns = min(max(ns, 0), KTIME_MAX)
    return TIMESPEC.pack(ns // NSEC_PER_SEC, ns % NSEC_PER_SEC)


def timeval_fields(ns: int) -> tuple[int, int]:
    """(seconds, microseconds) of `ns` nanoseconds (0..KTIME_MAX), to the nearest microsecond."""
    ns = min(max(ns, 0), KTIME_MAX)
    usec = (ns + 500) // 1000
    return usec // USEC_PER_SEC, usec % USEC_PER_SEC


def verify_area(position: int, count: int) -> None:
    """A transfer of `count` bytes at `position` must stay within loff_t: EINVAL for a
    negative position, a count past SSIZE_MAX, or an end past it (rw_verify_area)."""
    if position < 0 or count > MAX_LFS_FILESIZE or position + count > MAX_LFS_FILESIZE:
        raise SyscallError(errno.EINVAL, f"{count} bytes at position {position} pass the largest position")
