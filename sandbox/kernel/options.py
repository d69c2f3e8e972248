"""What a run may be told: `Options`, shared by the Python API, the kernel and the CLI.

A module of its own, with nothing heavy imported, so that the command line can take its
defaults from here without loading the kernel (`sandbox.cli.RUN_DEFAULTS`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from sandbox.mm import FILE_FAULT_AROUND_PAGES
from sandbox.mm.physmem import DEFAULT_MEMORY

if TYPE_CHECKING:
    from sandbox.kernel.vfs_nodes import Mount

DEFAULT_ENV = [b"PATH=/usr/local/bin:/usr/bin:/bin", b"HOME=/", b"TERM=dumb", b"LANG=C"]


class Options:
    """What a run may be told from the command line or the Python API: keyword arguments
    named as the attributes below, each defaulting to the value given there."""

    # Guest-physical RAM. Reserved lazily (physmem.py): untouched RAM costs the host nothing,
    # so the default is what programs that run natively in a few GiB need.
    memory: int = DEFAULT_MEMORY
    trace_syscalls: bool = False
    trace_faults: bool = False
    trace_out: TextIO  # default: sys.stderr
    root: str | None = None  # None: a fresh private directory with /tmp, removed afterwards
    mounts: list[Mount]  # default: none
    system: bool = True  # the system view (sysview.py): read-only /usr, /bin, /lib..., some /etc
    sysroot: str = "/"  # the host directory the system view's trees come from (--sysroot)
    cwd: str = "/"
    env: list[str]  # K=V added to (or replacing in) the environment; default: none
    inherit_env: bool = False
    deterministic: bool = False
    seed: int = 0
    fault_policies: list  # default: none
    file_fault_around: int = FILE_FAULT_AROUND_PAGES  # pages per read fault on a file mapping
    fault_log: TextIO | None = None  # --fault-log: one JSON line per fault
    # Limits (None: none). Memory and time limits kill every process (exit 137, a message
    # naming the limit); the counts are Linux's own answers (EAGAIN, EMFILE, ENOMEM).
    max_resident: int | None = None  # bytes of frames in use across all processes
    timeout: float | None = None  # seconds of wall time
    max_instructions: int | None = None
    max_processes: int | None = 256  # live and zombie processes, as RLIMIT_NPROC (fork: EAGAIN)
    max_open_files: int = 1024
    max_map_count: int = 65530  # Linux's vm.max_map_count
    cpus: int = len(os.sched_getaffinity(0))  # CPUs the guest is told of (sched_getaffinity)
    # Guest AF_INET/AF_INET6 sockets: "loopback", a network inside the sandbox that reaches
    # nothing else (net/inet.py); "host", host sockets in the host's network namespace (net/host.py).
    net: str = "loopback"
    disk: int = 1 << 30  # bytes of host disk the guest may fill (quota.py); ENOSPC beyond
    # The guest's identity (identity.py): what getuid() answers; never host privilege.
    uid: int = os.getuid()
    gid: int = os.getgid()
    # Host memory the kernel holds for the guest besides its frames (sandbox.kernel.accounting).
    pipe_max_size: int = 1 << 20  # /proc/sys/fs/pipe-max-size: F_SETPIPE_SZ beyond is EPERM
    pipe_user_pages_soft: int = 16384  # /proc/sys/fs/pipe-user-pages-soft (64 MiB of buffers)
    pipe_user_pages_hard: int = 32768  # pipe-user-pages-hard (Linux: none): new pipes ENFILE
    proc_snapshot_bytes: int = 64 << 20  # /proc text held by open descriptors (ENOMEM beyond)
    dir_listing_bytes: int = 64 << 20  # directory listings held by open descriptors (ENOMEM beyond)
    host_files: int = 8192  # host files all processes may hold open together (ENFILE beyond)
    socket_buffer_bytes: int = 64 << 20  # bytes queued in all sockets, and the sockets (ENOBUFS beyond)
    epoll_watches: int = 65536  # items in all epoll interest lists together (ENOSPC beyond)
    inotify_instances: int = 128  # fs.inotify.max_user_instances: inotify_init beyond is EMFILE
    inotify_watches: int = 8192  # fs.inotify.max_user_watches, all instances together (ENOSPC beyond)
    inotify_max_queued_events: int = 16384  # fs.inotify.max_queued_events per instance (IN_Q_OVERFLOW)
    inotify_event_bytes: int = 16 << 20  # host bytes of queued events, all instances (IN_Q_OVERFLOW beyond)

    def __init__(self, **given: Any) -> None:
        unknown = sorted(set(given) - set(Options.__annotations__))
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        self.trace_out = sys.stderr
        self.mounts, self.env, self.fault_policies = [], [], []  # each run's own lists
        self.__dict__.update(given)

    def environment(self) -> list[bytes]:
        """The guest's environment: the fixed default (or the host's), then --env."""
        base = host_environment() if self.inherit_env else list(DEFAULT_ENV)
        merged = dict(item.split(b"=", 1) if b"=" in item else (item, b"") for item in base)
        for item in self.env:
            key, _, value = item.partition("=")
            merged[os.fsencode(key)] = os.fsencode(value)
        return [k + b"=" + v for k, v in merged.items()]


#: What CPython's locale coercion (PEP 538) sets LC_CTYPE to when it starts under the C
#: locale: the sandbox's own interpreter did that, not the user.
COERCED_LC_CTYPE = (b"C.UTF-8", b"C.utf8", b"UTF-8")


def host_environment() -> list[bytes]:
    """The host's environment for --inherit-env: os.environ, less an LC_CTYPE that the
    environment this process was started with lacked and CPython's locale coercion added
    (natively, under LANG=C, a program sees no LC_CTYPE and stays in the C locale). The
    starting environment is the block execve(2) gave us: /proc/self/environ (setenv(3)
    never writes there)."""
    items = [k + b"=" + v for k, v in os.environb.items()]
    coerced = os.environb.get(b"LC_CTYPE")
    if coerced in COERCED_LC_CTYPE:
        try:
            with open("/proc/self/environ", "rb") as initial:
                started_with = initial.read().split(b"\0")
        except OSError:
            return items
        if not any(item.startswith(b"LC_CTYPE=") for item in started_with):
            items.remove(b"LC_CTYPE=" + coerced)
    return items

