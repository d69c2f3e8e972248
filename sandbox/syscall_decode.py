"""System-call arguments decoded by type, as strace decodes them: one table of signatures.

`SIGNATURES` names each argument's type: "fd", "path", "oflags", ">stat"... A leading ">"
marks an argument the call fills in: it is decoded at exit, when the result is known (and
shown as a pointer if the call failed), as strace does. Arguments before the first output
argument are decoded at entry, so a call that sleeps shows them at once (`read(3, ` then
`<unfinished ...>`), and execve shows the strings its image replacement destroys.

A decoder returns None to omit its argument and the ones after it (open's mode without
O_CREAT, fcntl's third argument for F_GETFD). `CLASSES` gives strace's `-e trace=%class`
sets; `parse_trace_filter` reads a `-e trace=` expression.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from sandbox import strace_flags as F
from sandbox import strace_format as S
from sandbox.kernel.syscall_names import SYSCALL_NAMES

if TYPE_CHECKING:
    from sandbox.kernel.task import Task
    from sandbox.mm.aspace import AddressSpace
    from sandbox.trace import Tracer


class Call(NamedTuple):
    """What a decoder sees: the caller's memory, the raw arguments, the result (None at entry)."""

    space: AddressSpace | None
    args: tuple[int, ...]
    result: int | None


class Param(NamedTuple):
    """One argument of a signature: its decoder, a parameter for it, and whether the call
    writes it (decoded at exit)."""

    kind: str
    param: str
    out: bool


# name -> argument types (see DECODERS); absent calls show their registered argument names.
SIGNATURES: dict[str, str] = {
    "read": "fd >buf:ret ulong", "write": "fd buf:2 ulong", "pread64": "fd >buf:ret ulong long",
    "pwrite64": "fd buf:2 ulong long", "readv": "fd >iov:2 int", "writev": "fd iov:2 int",
    "open": "path oflags omode:1", "openat": "dirfd path oflags omode:2", "creat": "path mode",
    "close": "fd", "stat": "path >stat", "lstat": "path >stat", "fstat": "fd >stat",
    "newfstatat": "dirfd path >stat atflags", "lseek": "fd long whence", "access": "path amode",
    "faccessat": "dirfd path amode", "faccessat2": "dirfd path amode atflags",
    "mmap": "ptr ulong prot mmapflags fd hex", "mprotect": "ptr ulong prot", "munmap": "ptr ulong",
    "brk": "ptr", "mremap": "ptr ulong ulong mremapflags ptr", "madvise": "ptr ulong madv",
    "msync": "ptr ulong int", "mlock": "ptr ulong", "munlock": "ptr ulong",
    "rt_sigaction": "signal sigaction >sigaction ulong", "rt_sigprocmask": "sighow sigset:3 >sigset:3 ulong",
    "rt_sigreturn": "", "rt_sigsuspend": "sigset:1 ulong", "rt_sigpending": ">sigset:1 ulong",
    "sigaltstack": "ptr >ptr", "kill": "int signal", "tkill": "int signal", "tgkill": "int int signal",
    "ioctl": "fd ioctl ptr", "pipe": ">pipefd", "pipe2": ">pipefd pipeflags", "dup": "fd", "dup2": "fd fd",
    "dup3": "fd fd pipeflags", "fcntl": "fd fcntl fcntlarg", "pause": "", "alarm": "uint",
    "nanosleep": "timespec >remaining", "clock_nanosleep": "clockid atflags timespec >remaining",
    "clock_gettime": "clockid >timespec", "clock_getres": "clockid >timespec", "getpid": "",
    "getppid": "", "gettid": "", "getuid": "", "geteuid": "", "getgid": "", "getegid": "",
    "clone": "clone", "fork": "", "vfork": "", "execve": "path argv envp",
    "exit": "int", "exit_group": "int", "wait4": "int >wstatus waitopt ptr",
    "uname": ">utsname", "getcwd": ">str ulong", "chdir": "path", "fchdir": "fd", "rename": "path path",
    "renameat": "dirfd path dirfd path", "renameat2": "dirfd path dirfd path uint", "mkdir": "path mode",
    "mkdirat": "dirfd path mode", "rmdir": "path", "unlink": "path", "unlinkat": "dirfd path atflags",
    "link": "path path", "linkat": "dirfd path dirfd path atflags", "symlink": "path path",
    "symlinkat": "path dirfd path", "readlink": "path >buf:ret ulong", "readlinkat": "dirfd path >buf:ret ulong",
    "chmod": "path mode", "fchmod": "fd mode", "fchmodat": "dirfd path mode", "umask": "mode",
    "chown": "path int int", "fchown": "fd int int", "fchownat": "dirfd path int int atflags",
    "truncate": "path long", "ftruncate": "fd long", "fsync": "fd", "fdatasync": "fd",
    "getdents64": "fd >dents:ret ulong", "arch_prctl": "arch ptr", "set_tid_address": "ptr",
    "set_robust_list": "ptr ulong", "rseq": "ptr hex int hex", "prlimit64": "int rlimitres rlimit >rlimit",
    "getrlimit": "rlimitres >rlimit", "setrlimit": "rlimitres rlimit", "getrandom": ">hexbuf:ret ulong grnd",
    "futex": "futex", "poll": "pollfd:1 uint int", "ppoll": "pollfd:1 uint timespec sigset:4 ulong",
    "sched_yield": "", "socket": "af socktype sockproto", "socketpair": "af socktype sockproto >pipefd",
    "bind": "fd sockaddr:2 int", "connect": "fd sockaddr:2 int", "listen": "fd int",
    "accept": "fd >sockaddrp:2 >ptr", "accept4": "fd >sockaddrp:2 >ptr sockflags",
    "getsockname": "fd >sockaddrp:2 >ptr", "getpeername": "fd >sockaddrp:2 >ptr",
    "sendto": "fd buf:2 ulong msgflags sockaddr:5 int", "recvfrom": "fd >buf:ret ulong msgflags >ptr >ptr",
    "shutdown": "fd shuthow", "setsockopt": "fd int int ptr int", "getsockopt": "fd int int >ptr >ptr",
    "sendmsg": "fd ptr msgflags", "recvmsg": "fd >ptr msgflags",
    "epoll_create": "int", "epoll_create1": "pipeflags", "epoll_ctl": "fd epollop fd ptr",
    "epoll_wait": "fd >ptr int int", "epoll_pwait": "fd >ptr int int sigset:5 ulong",
    "eventfd2": "uint pipeflags", "sendfile": "fd fd ptr ulong", "sync": "", "getpgrp": "",
    "setpgid": "int int", "getpgid": "int", "setsid": "", "getsid": "int", "sched_getaffinity": "int ulong >ptr",
    "statfs": "path >ptr", "fstatfs": "fd >ptr", "memfd_create": "str uint", "select": "int ptr ptr ptr ptr",
    "pselect6": "int ptr ptr ptr timespec ptr", "utimensat": "dirfd path ptr atflags",
    "statx": "dirfd path atflags hex >ptr", "gettimeofday": ">ptr ptr", "time": ">ptr",
    "sysinfo": ">ptr", "times": ">ptr", "getrusage": "int >ptr",
}

#: How a result is shown, when not as a signed decimal: 'hex' for addresses, 'oct' for
#: modes, 'none' for calls that do not return ('= ?').
RESULT_KINDS = {"brk": "hex", "mmap": "hex", "mremap": "hex", "shmat": "hex", "umask": "oct",
                "exit": "none", "exit_group": "none"}
NO_RETURN = frozenset(name for name, kind in RESULT_KINDS.items() if kind == "none")

#: strace's -e trace=%class sets; %file and %desc also take every call with a path or a
#: descriptor argument in SIGNATURES (see `_derived`).
CLASSES: dict[str, frozenset[str]] = {
    "process": frozenset("clone clone3 fork vfork execve execveat exit exit_group wait4 waitid kill tkill "
                         "tgkill rt_sigqueueinfo rt_tgsigqueueinfo unshare pidfd_open pidfd_send_signal".split()),
    "memory": frozenset("brk mmap munmap mprotect mremap madvise mlock munlock mlock2 mlockall munlockall msync "
                        "mincore remap_file_pages pkey_mprotect shmat shmdt get_mempolicy set_mempolicy mbind "
                        "process_madvise".split()),
    "network": frozenset("socket socketpair bind connect listen accept accept4 getsockname getpeername sendto "
                         "recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown setsockopt getsockopt".split()),
    "signal": frozenset("rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending rt_sigtimedwait "
                        "rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack kill tkill tgkill pause signalfd signalfd4 "
                        "pidfd_send_signal".split()),
    "ipc": frozenset("msgget msgsnd msgrcv msgctl semget semop semtimedop semctl shmget shmat shmdt "
                     "shmctl".split()),
    "file": frozenset("execveat".split()),
    "desc": frozenset("pipe pipe2 epoll_create epoll_create1 eventfd eventfd2 signalfd signalfd4 timerfd_create "
                      "inotify_init inotify_init1 memfd_create open creat select pselect6 poll ppoll "
                      "socket".split()),
}


def parse_signature(text: str) -> tuple[Param, ...]:
    """'fd >buf:ret ulong' -> its Params."""
    params = []
    for word in text.split():
        out = word.startswith(">")
        kind, _, param = word.lstrip(">").partition(":")
        params.append(Param(kind, param, out))
    return tuple(params)


PARSED: dict[str, tuple[Param, ...]] = {name: parse_signature(text) for name, text in SIGNATURES.items()}


def _derived(kinds: set[str]) -> frozenset[str]:
    return frozenset(name for name, params in PARSED.items() if any(p.kind in kinds for p in params))


CLASSES["file"] |= _derived({"path"})
CLASSES["desc"] |= _derived({"fd", "dirfd"})


def parse_trace_filter(text: str) -> frozenset[str]:
    """The calls `-e trace=EXPR` selects: names, %classes, /regex, 'all' or 'none', comma-
    separated; a leading '!' selects every other call. ValueError names a bad item, a bad
    regex, or an expression that names nothing ('', '!', ',')."""
    negate = text.startswith("!")
    chosen: set[str] = set()
    known = set(SYSCALL_NAMES.values())
    items = [item for item in text.removeprefix("!").split(",") if item]
    if not items:
        raise ValueError(f"{text!r} names no system call (e.g. 'openat,close', '%file', '/^read', 'none')")
    for item in items:
        if item.startswith("%"):
            if item[1:] not in CLASSES:
                raise ValueError(f"unknown class {item!r} (one of {', '.join('%' + c for c in CLASSES)})")
            chosen |= CLASSES[item[1:]]
        elif item.startswith("/"):
            chosen |= _matching(item[1:], known)
        elif item in ("all", "none"):
            chosen |= known if item == "all" else set()
        elif item in known:
            chosen.add(item)
        else:
            raise ValueError(f"unknown system call {item!r}")
    return frozenset(known - chosen if negate else chosen)


def _matching(pattern: str, names: set[str]) -> set[str]:
    """The names `pattern` (a Python regex, as strace's POSIX one) finds; ValueError if it
    is not a regex."""
    try:
        found = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"/{pattern}: not a regular expression ({error.msg})") from None
    return {name for name in names if found.search(name)}


# -- decoders ------------------------------------------------------------------------------------------

def _int(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


def _long(value: int) -> int:
    value &= S.MASK64
    return value - (1 << 64) if value >> 63 else value


def _length(call: Call, param: str) -> int:
    """A buffer's length: the result ('ret') or another argument's value."""
    if param == "ret":
        return _long(call.result or 0)
    return _long(call.args[int(param)])


def _open_flags(value: int) -> str:
    value &= 0xFFFF_FFFF
    rest = F.flags(value & ~F.O_ACCMODE, F.OPEN_FLAGS, "")
    return F.ACCESS_MODES[value & F.O_ACCMODE] + ("|" + rest if rest else "")


def _open_mode(call: Call, value: int, param: str) -> str | None:
    wants = call.args[int(param)] & (F.O_CREAT | F.O_TMPFILE)
    return S.mode(value & 0o7777) if wants else None


def _dirfd(call: Call, value: int, param: str) -> str:
    fd = _int(value)
    return "AT_FDCWD" if fd == F.AT_FDCWD else str(fd)


def _fcntl_arg(call: Call, value: int, param: str) -> str | None:
    cmd = _int(call.args[1])
    if cmd in (1, 3, 9, 11, 1025, 1032, 1034):  # the F_GET* commands take nothing
        return None
    if cmd == 2:
        return F.flags(value & 0xFFFF_FFFF, F.FD_FLAGS)
    if cmd == 4:
        return _open_flags(value)
    return pointer_or_int(cmd, value)


def pointer_or_int(cmd: int, value: int) -> str:
    """fcntl's third argument: a struct flock pointer for the lock commands, else an int."""
    return S.pointer(value) if cmd in (5, 6, 7, 36, 37, 38) else str(_int(value))


def _socket_protocol(call: Call, value: int, param: str) -> str:
    family = _int(call.args[0])
    if family in (F.AF_INET, F.AF_INET6):
        return F.enum(_int(value), F.IP_PROTOCOLS, "{}")
    return str(_int(value))


def _socket_type(call: Call, value: int, param: str) -> str:
    value &= 0xFFFF_FFFF
    kind = F.enum(value & F.SOCK_TYPE_MASK, F.SOCKET_TYPES)
    extra = F.flags(value & ~F.SOCK_TYPE_MASK, F.SOCKET_FLAGS, "")
    return kind + ("|" + extra if extra else "")


def _mmap_flags(call: Call, value: int, param: str) -> str:
    value &= 0xFFFF_FFFF
    kind = F.enum(value & F.MAP_TYPE_MASK, F.MAP_TYPES)
    extra = F.flags(value & ~F.MAP_TYPE_MASK, F.MAP_BITS, "")
    return kind + ("|" + extra if extra else "")


def _sockaddr_out(call: Call, value: int, param: str) -> str:
    """accept/getsockname: the address, as long as *addrlen (read at exit) says."""
    raw = S.read_mem(call.space, call.args[int(param)], 4)
    return S.sockaddr(call.space, value, int.from_bytes(raw, "little")) if raw else S.pointer(value)


def _signal(call: Call, value: int, param: str) -> str:
    return F.signal_name(_int(value)) if 0 < _int(value) <= F.NSIG else str(_int(value))


UTS_FIELD = 65  # __NEW_UTS_LEN + 1: each string of struct new_utsname
DIRENT_RECLEN = struct.Struct("<H")  # linux_dirent64's d_reclen, after d_ino and d_off
DIRENT_RECLEN_AT = 16


def _utsname(call: Call, value: int, param: str) -> str:
    """uname's struct: {sysname="Linux", nodename="vm", ...} (strace's abbreviated form)."""
    sysname, nodename = (S.string(call.space, value + i * UTS_FIELD, UTS_FIELD - 1) for i in (0, 1))
    if sysname.startswith("0x") or sysname == "NULL":  # unreadable: the pointer
        return S.pointer(value)
    return f"{{sysname={sysname}, nodename={nodename}, ...}}"


def _dirents(call: Call, value: int, param: str) -> str:
    """getdents64's buffer: '0x5ed2f0 /* 29 entries */', the records the result covers."""
    size = _length(call, param)
    data = S.read_mem(call.space, value, size) if size > 0 else b""
    if data is None:
        return S.pointer(value)
    count, offset = 0, 0
    while offset + DIRENT_RECLEN_AT + DIRENT_RECLEN.size <= len(data):
        reclen = DIRENT_RECLEN.unpack_from(data, offset + DIRENT_RECLEN_AT)[0]
        if reclen == 0:
            break
        count, offset = count + 1, offset + reclen
    return f"{S.pointer(value)} /* {count} entries */"


DECODERS: dict[str, Callable[[Call, int, str], str | None]] = {
    "int": lambda c, v, p: str(_int(v)),
    "fd": lambda c, v, p: str(_int(v)),
    "uint": lambda c, v, p: str(v & 0xFFFF_FFFF),
    "long": lambda c, v, p: str(_long(v)),
    "ulong": lambda c, v, p: str(v),
    "hex": lambda c, v, p: hex(v) if v else "0",
    "ptr": lambda c, v, p: S.pointer(v),
    "path": lambda c, v, p: S.path(c.space, v),
    "str": lambda c, v, p: S.string(c.space, v),
    "buf": lambda c, v, p: S.buffer(c.space, v, _length(c, p)),
    "hexbuf": lambda c, v, p: S.buffer(c.space, v, _length(c, p), force_hex=True),
    "dirfd": _dirfd,
    "oflags": lambda c, v, p: _open_flags(v),
    "omode": _open_mode,
    "mode": lambda c, v, p: S.mode(v & 0o7777),
    "atflags": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.AT_FLAGS),
    "amode": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.ACCESS_BITS, "F_OK"),
    "pipeflags": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.OPEN_FLAGS),
    "sockflags": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.SOCKET_FLAGS),
    "prot": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.PROT_BITS, "PROT_NONE"),
    "mmapflags": _mmap_flags,
    "mremapflags": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.MREMAP_BITS),
    "madv": lambda c, v, p: F.enum(_int(v), F.MADVICE),
    "whence": lambda c, v, p: F.enum(_int(v), F.SEEK_WHENCE, "{:#x} /* SEEK_??? */"),
    "fcntl": lambda c, v, p: F.enum(_int(v), F.FCNTL_COMMANDS),
    "fcntlarg": _fcntl_arg,
    "ioctl": lambda c, v, p: F.enum(v & 0xFFFF_FFFF, F.IOCTL_REQUESTS),
    "epollop": lambda c, v, p: F.enum(_int(v), F.EPOLL_CTL_OPS),
    "af": lambda c, v, p: F.enum(_int(v), F.ADDRESS_FAMILIES, "{}"),
    "socktype": _socket_type,
    "sockproto": _socket_protocol,
    "msgflags": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.MSG_BITS),
    "shuthow": lambda c, v, p: F.enum(_int(v), F.SHUTDOWN_HOW, "{}"),
    "sockaddr": lambda c, v, p: S.sockaddr(c.space, v, _int(c.args[int(p)])),
    "sockaddrp": _sockaddr_out,
    "rlimitres": lambda c, v, p: F.enum(_int(v), F.RLIMIT_RESOURCES, "{}"),
    "rlimit": lambda c, v, p: S.rlimit(c.space, v),
    "arch": lambda c, v, p: F.enum(_int(v), F.ARCH_PRCTL_CODES),
    "clockid": lambda c, v, p: F.enum(_int(v), F.CLOCK_IDS, "{}"),
    "waitopt": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.WAIT_OPTIONS),
    "wstatus": lambda c, v, p: S.wait_status(c.space, v),
    "grnd": lambda c, v, p: F.flags(v & 0xFFFF_FFFF, F.GRND_BITS),
    "signal": _signal,
    "sighow": lambda c, v, p: F.enum(_int(v), F.SIGPROCMASK_HOW),
    "sigset": lambda c, v, p: S.sigset(c.space, v, c.args[int(p)]),
    "sigaction": lambda c, v, p: S.sigaction(c.space, v),
    "timespec": lambda c, v, p: S.timespec(c.space, v),
    # nanosleep's remaining time is written only when a signal cut the sleep short
    "remaining": lambda c, v, p: S.timespec(c.space, v) if c.result else S.pointer(v),
    "stat": lambda c, v, p: S.stat(c.space, v),
    "pipefd": lambda c, v, p: S.int_array(c.space, v, 2),
    "iov": lambda c, v, p: S.iovecs(c.space, v, _int(c.args[int(p)]),
                                    None if c.result is None else max(_long(c.result), 0)),
    "pollfd": lambda c, v, p: S.pollfds(c.space, v, _int(c.args[int(p)]), False),
    "argv": lambda c, v, p: S.string_array(c.space, v),
    "envp": lambda c, v, p: S.env_count(c.space, v),
    "utsname": _utsname,
    "dents": _dirents,
}


# -- calls decoded as a whole ------------------------------------------------------------------------

def _clone(call: Call) -> list[str]:
    """clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, ...):
    x86-64's argument order is flags, stack, parent_tid, child_tid, tls."""
    value, stack, parent_tid, child_tid, tls = (call.args + (0,) * 5)[:5]
    value &= 0xFFFF_FFFF
    names = F.flags(value & ~F.CSIGNAL, F.CLONE_BITS, "")
    signo = value & F.CSIGNAL
    names = "|".join(filter(None, [names, F.signal_name(signo) if signo else ""])) or "0"
    parts = [f"child_stack={S.pointer(stack)}", f"flags={names}"]
    if value & F.CLONE_PARENT_SETTID:
        parts.append(f"parent_tid={S.pointer(parent_tid)}")
    if value & F.CLONE_SETTLS:
        parts.append(f"tls={hex(tls)}")
    if value & F.CLONE_CHILD_TIDS:
        parts.append(f"child_tidptr={hex(child_tid)}")
    return parts


def _futex(call: Call) -> list[str]:
    """futex(0x4c8a30, FUTEX_WAIT_PRIVATE, 2, NULL): the arguments each operation uses."""
    uaddr, op, val, arg4, uaddr2, val3 = (call.args + (0,) * 6)[:6]
    cmd = op & F.FUTEX_CMD_MASK
    name = F.FUTEX_OPS.get(cmd, hex(cmd)) + ("_PRIVATE" if op & F.FUTEX_PRIVATE_FLAG else "")
    name += "|FUTEX_CLOCK_REALTIME" if op & F.FUTEX_CLOCK_REALTIME else ""
    parts = [S.pointer(uaddr), name, str(_int(val))]
    bitset = "FUTEX_BITSET_MATCH_ANY" if val3 & 0xFFFF_FFFF == 0xFFFF_FFFF else hex(val3 & 0xFFFF_FFFF)
    if cmd in (0, 6, 11, 13):  # WAIT, LOCK_PI, WAIT_REQUEUE_PI, LOCK_PI2: a timeout
        parts.append(S.timespec(call.space, arg4))
    elif cmd == 9:  # WAIT_BITSET
        parts += [S.timespec(call.space, arg4), bitset]
    elif cmd == 10:  # WAKE_BITSET
        parts.append(bitset)
    elif cmd in (3, 4, 5, 12):  # REQUEUE, CMP_REQUEUE, WAKE_OP, CMP_REQUEUE_PI
        parts += [str(_int(arg4)), S.pointer(uaddr2)] + ([] if cmd == 3 else [str(_int(val3))])
    return parts


#: prctl options shown by name alone (strace's prctl.c: RVAL_DECODED after the option).
PRCTL_BARE = frozenset({3, 7, 13, 21, 27, 30, 31, 32})  # GET_DUMPABLE, GET_KEEPCAPS, GET_TIMING...
#: prctl options whose second argument is an unsigned number, shown alone.
PRCTL_NUMBER = frozenset({8, 14, 29, F.PR_SET_CHILD_SUBREAPER})  # SET_KEEPCAPS, SET_TIMING...
#: prctl options whose arguments are all four shown, the first in decimal.
PRCTL_FLAG_ARGS = frozenset({38, 39, 41, 42})  # SET/GET_NO_NEW_PRIVS, SET/GET_THP_DISABLE
#: prctl options that write an int the caller gave: shown at exit as '[value]'.
PRCTL_INT_OUT = frozenset({F.PR_GET_PDEATHSIG, F.PR_GET_CHILD_SUBREAPER})
PR_GET_TID_ADDRESS = 40  # writes a pointer: '[0x4ac650]'


def _prctl(call: Call) -> list[str]:
    """prctl(PR_SET_NAME, "sh"), prctl(PR_GET_PDEATHSIG, [SIGTERM]): each option's arguments
    as strace's prctl.c shows them; other options show the four arguments in hex."""
    option, arg2 = call.args[0] & 0xFFFF_FFFF, (call.args + (0,))[1]
    head = [F.enum(option, F.PRCTL_OPTIONS, "{:#x} /* PR_??? */")]
    if option in PRCTL_BARE:
        return head
    if option in PRCTL_NUMBER:
        return [*head, str(arg2)]
    if option in PRCTL_FLAG_ARGS:
        return [*head, str(arg2), *(_hex(v) for v in call.args[2:5])]
    shown = _prctl_arg(call, option, arg2)
    if shown is not None:
        return [*head, shown]
    return [head[0], *(_hex(v) for v in call.args[1:5])]


def _prctl_arg(call: Call, option: int, arg2: int) -> str | None:
    """The one argument of the options strace decodes by type (None for the others)."""
    if option == F.PR_SET_NAME:  # printstr_ex(..., TASK_COMM_LEN - 1, QUOTE_0_TERMINATED)
        return S.string(call.space, arg2, F.TASK_COMM_LEN - 1)
    if option == F.PR_SET_PDEATHSIG:
        return str(arg2) if arg2 > F.NSIG else F.signal_name(arg2)
    if option == F.PR_SET_DUMPABLE:
        return F.enum(arg2, F.SUID_DUMP, "{:#x} /* SUID_DUMP_??? */")
    if option in (F.PR_CAPBSET_READ, F.PR_CAPBSET_DROP):
        return F.enum(arg2, F.CAPABILITIES, "{:#x} /* CAP_??? */")
    if option not in PRCTL_INT_OUT and option not in (F.PR_GET_NAME, PR_GET_TID_ADDRESS):
        return None
    if call.result is None or is_error(call.result):  # (at entry: never shown)
        return S.pointer(arg2)
    if option == F.PR_GET_NAME:
        return S.string(call.space, arg2, F.TASK_COMM_LEN)
    if option == PR_GET_TID_ADDRESS:
        raw = S.read_mem(call.space, arg2, 8)
        return S.pointer(arg2) if raw is None else f"[{S.pointer(int.from_bytes(raw, 'little'))}]"
    raw = S.read_mem(call.space, arg2, 4)
    if raw is None:
        return S.pointer(arg2)
    value = _int(int.from_bytes(raw, "little"))
    return f"[{F.signal_name(value) if option == F.PR_GET_PDEATHSIG else value}]"


def _hex(value: int) -> str:
    return hex(value) if value else "0"


WHOLE_CALLS: dict[str, Callable[[Call], list[str]]] = {"clone": _clone, "futex": _futex, "prctl": _prctl}


def _decoded_at_exit(name: str, args: tuple[int, ...]) -> bool:
    """Whether a call decoded as a whole shows what it writes, so waits for its end."""
    return name == "prctl" and args[0] & 0xFFFF_FFFF in (F.PR_GET_NAME, PR_GET_TID_ADDRESS, *PRCTL_INT_OUT)


def _guess(names: tuple[str, ...], args: tuple[int, ...]) -> list[str]:
    """A call without a signature: counts and descriptors in decimal, the rest in hex."""
    decimal = {"fd", "dirfd", "status", "code", "count", "len", "length", "size", "pid", "tid", "sig"}
    return [str(_long(v)) if n in decimal else (hex(v) if v else "0") for n, v in zip(names, args, strict=False)]


def decode_entry(space: AddressSpace | None, name: str, args: tuple[int, ...],
                 registered: tuple[str, ...] | None) -> tuple[list[str], int | None]:
    """The arguments shown at entry, and the index of the first one decoded at exit (None:
    all are shown). `registered` are the handler's argument names, for calls not in
    SIGNATURES (None: unknown to the sandbox; all six registers are shown)."""
    call = Call(space, args, None)
    if name in WHOLE_CALLS:
        if _decoded_at_exit(name, args):
            return [], 0
        return WHOLE_CALLS[name](call), None
    params = PARSED.get(name)
    if params is None:
        return _guess(registered or ("arg",) * 6, args), None
    texts: list[str] = []
    for index, param in enumerate(params):
        if param.out:
            return texts, index
        text = DECODERS[param.kind](call, args[index], param.param)
        if text is None:
            return texts, None
        texts.append(text)
    return texts, None


def decode_exit(space: AddressSpace | None, name: str, args: tuple[int, ...], result: int,
                start: int | None) -> list[str]:
    """The arguments from `start` on, now that the call returned `result`; an output
    argument of a failed call is shown as its address, as strace does."""
    if start is None:
        return []
    call, failed = Call(space, args, result), is_error(result)
    if name in WHOLE_CALLS:
        return WHOLE_CALLS[name](call)
    texts: list[str] = []
    for index, param in enumerate(PARSED[name][start:], start):
        if param.out and failed:
            texts.append(S.pointer(args[index]))
            continue
        text = DECODERS[param.kind](call, args[index], param.param)
        if text is None:
            break
        texts.append(text)
    return texts


def is_error(result: int) -> bool:
    """Whether a result is -errno."""
    return -S.ERRNO_MAX <= _long(result) < 0


def result_text(space: AddressSpace | None, name: str, args: tuple[int, ...], result: int) -> str:
    """What follows '= ': '3', '-1 ENOENT (No such file or directory)', '?', and the notes
    strace adds: fcntl's flags, poll's ready descriptors."""
    kind = RESULT_KINDS.get(name, "int")
    if kind == "none":
        return "?"
    text = S.result(result, kind)
    if is_error(result):
        return text
    if name == "fcntl" and _int(args[1]) in (1, 3) and result:
        table = F.FD_FLAGS if _int(args[1]) == 1 else None
        names = F.flags(result, table) if table else _open_flags(result)
        return f"{hex(result)} (flags {names})"
    if name == "prctl" and args[0] & 0xFFFF_FFFF == F.PR_GET_DUMPABLE and result in F.SUID_DUMP:
        return f"{text} ({F.SUID_DUMP[result]})"
    if name in ("poll", "ppoll"):
        if result == 0:
            return "0 (Timeout)"
        return f"{text} ({S.pollfds(space, args[0], _int(args[1]), True)})"
    return text


# -- the first program ---------------------------------------------------------------------------------

EXECVE_NR = 59  # x86-64's execve
AT_EXECFN = 31  # include/uapi/linux/auxvec.h: the path execve was given
AUXV_PAIR = struct.Struct("<QQ")


def trace_first_exec(tracer: Tracer, task: Task) -> None:
    """The trace's first line, as strace's for the program it starts: execve(path, argv,
    envp) = 0, read from the new stack the sandbox built (argc, argv[], NULL, envp[]) and
    its auxv's AT_EXECFN, before the program's first call."""
    from sandbox.kernel.syscalls import TABLE  # (the kernel's table; this module is the trace's)

    space, rsp = task.space, task.fresh_entry[1]
    argc = int.from_bytes(S.read_mem(space, rsp, 8) or bytes(8), "little")
    path = next((value for key, value in AUXV_PAIR.iter_unpack(task.group.auxv) if key == AT_EXECFN), 0)
    args = (path, rsp + 8, rsp + 8 * (argc + 2), 0, 0, 0)
    entry = TABLE[EXECVE_NR]
    tracer.enter(task.tid, space, EXECVE_NR, entry, args)
    tracer.syscall(task.tid, EXECVE_NR, entry, args, 0, space)
