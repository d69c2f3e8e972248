"""Binary layouts the x86-64 Linux ABI defines for system-call arguments and results."""

from __future__ import annotations

import struct

from sandbox.kernel.files import DirEntry, Stat

# struct stat, arch/x86/include/uapi/asm/stat.h (x86-64): 144 bytes.
STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
# struct statx, include/uapi/linux/stat.h: 256 bytes; timestamps are {s64 sec; u32 nsec; s32 pad}.
STATX_HEAD = struct.Struct("<IIQIIIHxxQQQQ")
STATX_TIME = struct.Struct("<qIi")
STATX_DEVS = struct.Struct("<IIII")
STATX_SIZE = 256
STATX_BASIC_STATS = 0x7FF
# struct linux_dirent64, include/linux/dirent.h: ino, off, reclen, type, name (NUL, 8-aligned).
DIRENT64_HEAD = struct.Struct("<QqHB")
DIRENT_HEAD = struct.Struct("<QqH")  # struct linux_dirent: d_ino, d_off, d_reclen (then the name)
# struct pollfd, include/uapi/asm-generic/poll.h.
POLLFD = struct.Struct("<ihh")
# struct timespec and struct timeval (x86-64: two longs each).
TIMESPEC = struct.Struct("<qq")
TIMEVAL = struct.Struct("<qq")
# struct rlimit64 {u64 cur, max}.
RLIMIT = struct.Struct("<QQ")
# struct statfs, include/uapi/asm-generic/statfs.h (x86-64 longs): 120 bytes.
STATFS = struct.Struct("<qqqqqqqiiqqq32x")
# struct sysinfo, include/uapi/linux/sysinfo.h, 112 bytes on x86-64: uptime, loads[3], totalram,
# freeram, sharedram, bufferram, totalswap, freeswap, procs (u16 + pad to 88), totalhigh,
# freehigh, mem_unit (u32), padding.
SYSINFO = struct.Struct("<q3Q6QH6x2QI4x")


def pack_stat(st: Stat) -> bytes:
    return STAT.pack(st.dev, st.ino, st.nlink, st.mode, st.uid, st.gid, 0, st.rdev, st.size, st.blksize,
                     st.blocks, *divmod(st.atime_ns, 10**9), *divmod(st.mtime_ns, 10**9),
                     *divmod(st.ctime_ns, 10**9))


def pack_statx(st: Stat) -> bytes:
    import os

    head = STATX_HEAD.pack(STATX_BASIC_STATS, st.blksize, 0, st.nlink, st.uid, st.gid, st.mode, st.ino,
                           st.size, st.blocks, 0)
    times = b"".join(STATX_TIME.pack(*divmod(ns, 10**9), 0)
                     for ns in (st.atime_ns, 0, st.ctime_ns, st.mtime_ns))  # atime, btime, ctime, mtime
    devs = STATX_DEVS.pack(os.major(st.rdev), os.minor(st.rdev), os.major(st.dev), os.minor(st.dev))
    out = head + times + devs
    return out + bytes(STATX_SIZE - len(out))


def pack_dirent(entry: DirEntry, next_offset: int) -> bytes:
    """One linux_dirent64 record, padded to 8 bytes."""
    size = (DIRENT64_HEAD.size + len(entry.name) + 1 + 7) & ~7
    record = DIRENT64_HEAD.pack(entry.ino, next_offset, size, entry.type) + entry.name
    return record + bytes(size - len(record))


def pack_old_dirent(entry: DirEntry, next_offset: int) -> bytes:
    """One record of the old getdents(2), struct linux_dirent: d_ino, d_off, d_reclen, the
    name and its NUL, padding, and d_type in the record's last byte (fs/readdir.c filldir:
    reclen = ALIGN(offsetof(d_name) + namelen + 2, sizeof(long)))."""
    size = (DIRENT_HEAD.size + len(entry.name) + 2 + 7) & ~7
    record = DIRENT_HEAD.pack(entry.ino, next_offset, size) + entry.name
    return record + bytes(size - len(record) - 1) + bytes((entry.type,))
