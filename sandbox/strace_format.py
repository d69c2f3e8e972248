"""Values as strace prints them: strings, pointers, structures, signal sets, results.

Guest memory is read only through `sandbox.mm.uaccess` (copy_in, read_cstring), and a read
that fails never raises: the pointer is printed in hex instead, as strace does for an
address it cannot read (strace's umoven failure path). Layouts are the x86-64 kernel's
(arch/x86/include/uapi/asm/stat.h, include/uapi/asm-generic/signal.h, ...).
"""

from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING

from sandbox.errors import OutOfMemory, SyscallError
from sandbox.kernel.syscalls import MASK64
from sandbox.mm.uaccess import copy_in, read_cstring
from sandbox.strace_flags import (
    ADDRESS_FAMILIES,
    AF_INET,
    AF_INET6,
    AF_UNIX,
    CLD_CODES,
    FAULT_CODES,
    FILE_TYPES,
    MODE_SPECIAL,
    NSIG,
    POLL_BITS,
    RLIM_INFINITY,
    S_IFMT,
    SA_BITS,
    SI_CODES,
    SIG_HANDLERS,
    flags,
    signal_name,
)

if TYPE_CHECKING:
    from sandbox.mm.aspace import AddressSpace

STRING_LIMIT = 32  # strace -s 32: bytes of a string or buffer shown before "..."
PATH_LIMIT = 4095  # PATH_MAX - 1: paths are shown whole, as strace does (printpathn)
ARRAY_LIMIT = 32  # elements of an array (argv, iovecs, pollfds) shown before "..."
ERRNO_MAX = 4095  # results in [-4095, -1] are errors (IS_ERR_VALUE)
_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\f"): "\\f", ord("\n"): "\\n", ord("\r"): "\\r",
            ord("\t"): "\\t", ord("\v"): "\\v"}
STAT = struct.Struct("<QQQIII4xQqqq")  # dev ino nlink mode uid gid rdev size blksize blocks
SIGACTION = struct.Struct("<QQQQ")  # handler flags restorer mask (the kernel's struct sigaction)


# -- guest memory -------------------------------------------------------------------------------------

def read_mem(space: AddressSpace | None, va: int, n: int) -> bytes | None:
    """`n` bytes at `va`, or None if the guest could not read them either."""
    if space is None or va == 0:
        return None
    try:
        return copy_in(space, va, n)
    except (SyscallError, OutOfMemory):
        return None


def read_str(space: AddressSpace | None, va: int, limit: int) -> bytes | None:
    """The NUL-terminated string at `va`, or its first `limit` + 1 bytes when it is longer
    (or runs on into memory the guest cannot read past them), or None, as strace's umovestr."""
    if space is None or va == 0:
        return None
    try:
        return read_cstring(space, va, limit)
    except SyscallError:
        pass  # longer than `limit`, or unreadable somewhere: its first bytes may still be read
    except OutOfMemory:
        return None
    data = read_mem(space, va, limit + 1)
    return None if data is None or b"\0" in data else data


def pointer(va: int) -> str:
    """'NULL' or '0x7ffd1234', as strace prints an address."""
    return "NULL" if va == 0 else hex(va)


# -- strings --------------------------------------------------------------------------------------------

def quote(data: bytes, force_hex: bool = False) -> str:
    """`data` in double quotes with strace's escapes: \\n \\t ..., \\" and \\\\, other bytes
    outside ASCII 0x20..0x7e in octal (three digits when a digit follows), or every byte
    as \\xNN with `force_hex` (getrandom's buffer)."""
    if force_hex:
        return '"' + "".join(f"\\x{b:02x}" for b in data) + '"'
    out = []
    for i, b in enumerate(data):
        if b in _ESCAPES:
            out.append(_ESCAPES[b])
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif i + 1 < len(data) and 0x30 <= data[i + 1] <= 0x37:
            out.append(f"\\{b:03o}")
        else:
            out.append(f"\\{b:o}")
    return '"' + "".join(out) + '"'


def buffer(space: AddressSpace | None, va: int, n: int, force_hex: bool = False) -> str:
    """The first `n` bytes at `va` (at most STRING_LIMIT, then "..."), or the pointer."""
    n = max(n, 0)
    data = read_mem(space, va, min(n, STRING_LIMIT)) if n else b""
    if data is None:
        return pointer(va)
    return quote(data, force_hex) + ("..." if n > STRING_LIMIT else "")


def string(space: AddressSpace | None, va: int, limit: int | None = None) -> str:
    """The C string at `va`, cut after `limit` (default STRING_LIMIT, strace -s) bytes with
    "...", or the pointer."""
    limit = STRING_LIMIT if limit is None else limit
    data = read_str(space, va, limit)
    if data is None:
        return pointer(va)
    return quote(data[:limit]) + ("..." if len(data) > limit else "")


def path(space: AddressSpace | None, va: int) -> str:
    """A path argument, shown whole (strace's printpath)."""
    return string(space, va, PATH_LIMIT)


def string_array(space: AddressSpace | None, va: int) -> str:
    """execve's argv: ["prog", "arg", ...] (after ARRAY_LIMIT elements, "...")."""
    items = []
    for index in range(ARRAY_LIMIT + 1):
        raw = read_mem(space, va + 8 * index, 8)
        if raw is None:
            return pointer(va) if index == 0 else "[" + ", ".join(items) + ", ...]"
        item = int.from_bytes(raw, "little")
        if item == 0:
            return "[" + ", ".join(items) + "]"
        items.append(string(space, item) if index < ARRAY_LIMIT else "...")
    return "[" + ", ".join(items) + "]"


def env_count(space: AddressSpace | None, va: int) -> str:
    """execve's envp as strace shows it by default: '0x7ffc... /* 35 vars */'."""
    count = 0
    while count < 1 << 16:
        raw = read_mem(space, va + 8 * count, 8)
        if raw is None:
            return pointer(va)
        if not int.from_bytes(raw, "little"):
            break
        count += 1
    return f"{pointer(va)} /* {count} vars */"


# -- numbers ----------------------------------------------------------------------------------------------

def mode(value: int) -> str:
    """A mode_t as strace prints it (C's %#03o): '0644', '000'."""
    text = "0" + format(value, "o") if value else "0"
    return text.rjust(3, "0")


def file_mode(value: int) -> str:
    """st_mode: 'S_IFREG|0644', 'S_IFDIR|S_ISVTX|0777'."""
    parts = [FILE_TYPES.get(value & S_IFMT, mode(value & S_IFMT))] if value & S_IFMT else []
    special = flags(value & 0o7000, MODE_SPECIAL, "")
    parts += [special] if special else []
    return "|".join(parts + [mode(value & 0o777)])


def kilo(value: int) -> str:
    """An rlimit value: 'RLIM64_INFINITY', '8192*1024' or '1024'."""
    if value == RLIM_INFINITY:
        return "RLIM64_INFINITY"
    return f"{value // 1024}*1024" if value and value % 1024 == 0 else str(value)


def result(value: int, kind: str = "int") -> str:
    """A return value: '3', '0x4af000' (kind 'hex'), '022' ('oct'),
    '-1 ENOENT (No such file or directory)'."""
    value &= MASK64
    signed = value - (1 << 64) if value >> 63 else value
    if -ERRNO_MAX <= signed < 0:
        err = -signed
        return f"-1 {errno.errorcode.get(err, str(err))} ({os.strerror(err)})"
    if kind == "hex":
        return hex(value & MASK64)
    if kind == "oct":
        return mode(value)
    return str(signed)


# -- structures ---------------------------------------------------------------------------------------------

def stat(space: AddressSpace | None, va: int) -> str:
    """{st_mode=S_IFREG|0644, st_size=53, ...} (strace's abbreviated struct stat)."""
    raw = read_mem(space, va, STAT.size + 48)
    if raw is None:
        return pointer(va)
    _dev, _ino, _nlink, st_mode, _uid, _gid, rdev, size, _blksize, _blocks = STAT.unpack_from(raw)
    kind = st_mode & S_IFMT
    if kind in (0o20000, 0o60000):  # character and block devices show their numbers
        major, minor = (rdev >> 8) & 0xFFF, (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)
        return f"{{st_mode={file_mode(st_mode)}, st_rdev=makedev({major:#x}, {minor:#x}), ...}}"
    return f"{{st_mode={file_mode(st_mode)}, st_size={size}, ...}}"


def timespec(space: AddressSpace | None, va: int) -> str:
    """{tv_sec=1, tv_nsec=500000000}, or the pointer ('NULL')."""
    raw = read_mem(space, va, 16)
    if raw is None:
        return pointer(va)
    sec, nsec = struct.unpack("<qq", raw)
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def int_array(space: AddressSpace | None, va: int, n: int) -> str:
    """[3, 4]: pipe's descriptors, wait4's nothing else."""
    raw = read_mem(space, va, 4 * n)
    if raw is None:
        return pointer(va)
    return "[" + ", ".join(str(v) for v in struct.unpack(f"<{n}i", raw)) + "]"


def rlimit(space: AddressSpace | None, va: int) -> str:
    """{rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}."""
    raw = read_mem(space, va, 16)
    if raw is None:
        return pointer(va)
    cur, top = struct.unpack("<QQ", raw)
    return f"{{rlim_cur={kilo(cur)}, rlim_max={kilo(top)}}}"


def iovecs(space: AddressSpace | None, va: int, count: int, data_limit: int | None) -> str:
    """[{iov_base="hi", iov_len=2}, ...]; `data_limit` bytes of contents in all (None: each
    whole), as readv's result bounds what it filled."""
    if count < 0 or count > 1024:
        return pointer(va)
    items, left = [], data_limit
    for index in range(min(count, ARRAY_LIMIT)):
        raw = read_mem(space, va + 16 * index, 16)
        if raw is None:
            return pointer(va) if index == 0 else "[" + ", ".join(items) + ", ...]"
        base, length = struct.unpack("<QQ", raw)
        shown = length if left is None else min(length, left)
        left = None if left is None else left - shown
        items.append(f"{{iov_base={buffer(space, base, shown)}, iov_len={length}}}")
    return "[" + ", ".join(items) + (", ...]" if count > ARRAY_LIMIT else "]")


def pollfds(space: AddressSpace | None, va: int, count: int, revents: bool) -> str:
    """[{fd=3, events=POLLIN}], or at exit the ones with revents: [{fd=3, revents=POLLIN}]."""
    if count < 0 or count > 4096:
        return pointer(va)
    raw = read_mem(space, va, 8 * min(count, ARRAY_LIMIT)) if count else b""
    if raw is None:
        return pointer(va)
    items = []
    for fd, events, got in struct.iter_unpack("<ihh", raw):
        if revents and got:
            items.append(f"{{fd={fd}, revents={flags(got & 0xFFFF, POLL_BITS)}}}")
        elif not revents:
            items.append(f"{{fd={fd}, events={flags(events & 0xFFFF, POLL_BITS)}}}")
    return "[" + ", ".join(items) + (", ...]" if count > ARRAY_LIMIT and not revents else "]")


def sigset_bits(mask: int) -> str:
    """[INT CHLD], or ~[RTMIN RT_1] when more than half the signals are in the set."""
    members = [s for s in range(1, NSIG + 1) if mask >> (s - 1) & 1]
    if len(members) > NSIG // 2:
        absent = [s for s in range(1, NSIG + 1) if not mask >> (s - 1) & 1]
        return "~[" + " ".join(signal_name(s)[3:] for s in absent) + "]"
    return "[" + " ".join(signal_name(s)[3:] for s in members) + "]"


def sigset(space: AddressSpace | None, va: int, size: int = 8) -> str:
    """A sigset_t in guest memory (`size` bytes, 8 on x86-64)."""
    raw = read_mem(space, va, 8) if size == 8 else None
    return pointer(va) if raw is None else sigset_bits(int.from_bytes(raw, "little"))


def sigaction(space: AddressSpace | None, va: int) -> str:
    """{sa_handler=0x401000, sa_mask=[], sa_flags=SA_RESTORER, sa_restorer=0x402000}."""
    raw = read_mem(space, va, SIGACTION.size)
    if raw is None:
        return pointer(va)
    handler, sa_flags, restorer, mask = SIGACTION.unpack(raw)
    text = f"{{sa_handler={SIG_HANDLERS.get(handler) or hex(handler)}, sa_mask={sigset_bits(mask)}, " \
           f"sa_flags={flags(sa_flags, SA_BITS)}"
    return text + (f", sa_restorer={hex(restorer)}}}" if sa_flags & 0x04000000 else "}")


def sockaddr(space: AddressSpace | None, va: int, length: int) -> str:
    """{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, sockaddr_un
    and sockaddr_in6 alike; other families by their name only."""
    raw = read_mem(space, va, min(max(length, 0), 128)) if 2 <= length else None
    if raw is None:
        return pointer(va)
    family = int.from_bytes(raw[:2], "little")
    head = f"{{sa_family={ADDRESS_FAMILIES.get(family, str(family))}"
    if family == AF_UNIX:
        name = raw[2:].split(b"\0", 1)[0] if raw[2:3] != b"\0" else raw[2:]
        field = f"sun_path=@{quote(name[1:])}" if raw[2:3] == b"\0" and len(raw) > 2 else f"sun_path={quote(name)}"
        return f"{head}, {field}}}" if len(raw) > 2 else head + "}"
    if family == AF_INET and len(raw) >= 8:
        port, addr = int.from_bytes(raw[2:4], "big"), ".".join(str(b) for b in raw[4:8])
        return f'{head}, sin_port=htons({port}), sin_addr=inet_addr("{addr}")}}'
    if family == AF_INET6 and len(raw) >= 28:
        import ipaddress

        port, flow = int.from_bytes(raw[2:4], "big"), int.from_bytes(raw[4:8], "big")
        addr, scope = ipaddress.IPv6Address(raw[8:24]), int.from_bytes(raw[24:28], "little")
        return (f'{head}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), '
                f'inet_pton(AF_INET6, "{addr}", &sin6_addr), sin6_scope_id={scope}}}')
    return head + ", sa_data=...}"


def wait_status(space: AddressSpace | None, va: int) -> str:
    """[{WIFEXITED(s) && WEXITSTATUS(s) == 3}] and the other kinds of wait status."""
    raw = read_mem(space, va, 4)
    if raw is None:
        return pointer(va)
    status = int.from_bytes(raw, "little")
    if status & 0x7F == 0:
        text = f"WIFEXITED(s) && WEXITSTATUS(s) == {status >> 8 & 0xFF}"
    elif status == 0xFFFF:
        text = "WIFCONTINUED(s)"
    elif status & 0xFF == 0x7F:
        text = f"WIFSTOPPED(s) && WSTOPSIG(s) == {signal_name(status >> 8 & 0xFF)}"
    else:
        text = f"WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(status & 0x7F)}"
        text += " && WCOREDUMP(s)" if status & 0x80 else ""
    return f"[{{{text}}}]"


def siginfo(info: bytes) -> str:
    """A delivered signal's siginfo as strace's '--- SIG... {...} ---' line shows it."""
    signo, _err, code = struct.unpack_from("<iii", info)
    name = signal_name(signo)
    if code > 0 and signo == 17:  # SIGCHLD from the kernel: a child changed state
        pid, uid, status = struct.unpack_from("<iIi", info, 16)
        utime, stime = struct.unpack_from("<qq", info, 32)
        return (f"{{si_signo={name}, si_code={CLD_CODES.get(code, code)}, si_pid={pid}, si_uid={uid}, "
                f"si_status={signal_name(status) if code != 1 else status}, si_utime={utime}, si_stime={stime}}}")
    if code > 0 and signo in FAULT_CODES:
        addr = struct.unpack_from("<Q", info, 16)[0]
        return f"{{si_signo={name}, si_code={FAULT_CODES[signo].get(code, code)}, si_addr={pointer(addr)}}}"
    code_text = SI_CODES.get(code, str(code))
    if code in (0, -6, -1):  # SI_USER, SI_TKILL, SI_QUEUE: the sender
        pid, uid = struct.unpack_from("<iI", info, 16)
        return f"{{si_signo={name}, si_code={code_text}, si_pid={pid}, si_uid={uid}}}"
    return f"{{si_signo={name}, si_code={code_text}}}"
