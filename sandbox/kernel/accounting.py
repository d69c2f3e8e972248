"""Counted host resources: what a guest can make the sandbox hold besides its frames.

Emulated RAM is bounded by --memory and --max-resident; everything else a guest can make
the host keep (pipe buffers, /proc snapshots) is charged to a sandbox-wide `Budget`, so no
number of processes or descriptors multiplies it past a fixed bound. Linux bounds the same
things per user: pipe buffers by /proc/sys/fs/pipe-user-pages-soft and -hard (fs/pipe.c,
`account_pipe_buffers`), seq_file buffers by the memory they take.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError

if TYPE_CHECKING:
    from sandbox.kernel.options import Options


class Budget:
    """A count of units held (bytes or pages) with a soft and a hard bound.

    `charge` raises `SyscallError(errno)` past the hard bound and changes nothing then;
    `over_soft` lets a caller choose a smaller grant first, as Linux gives a new pipe one
    small buffer when the user is past pipe-user-pages-soft.
    """

    def __init__(self, what: str, hard: int, error: int, soft: int | None = None) -> None:
        self.what = what
        self.hard = hard
        self.soft = hard if soft is None else soft
        self.error = error
        self.used = 0
        self.peak = 0

    def over_soft(self, more: int) -> bool:
        """Would holding `more` units pass the soft bound?"""
        return self.used + more > self.soft

    def check(self, more: int) -> None:
        """Raise what `charge(more)` would, without charging: a caller refuses before it
        spends host time making what it could not hold."""
        if self.used + more > self.hard:
            raise SyscallError(self.error, f"{self.what}: {self.used} + {more} is past {self.hard}")

    def charge(self, more: int) -> None:
        """Hold `more` units, or raise SyscallError(self.error) past the hard bound."""
        if self.used + more > self.hard:
            raise SyscallError(self.error, f"{self.what}: the limit of {self.hard} is reached")
        self.used += more
        self.peak = max(self.peak, self.used)

    def release(self, less: int) -> None:
        """Give back `less` units charged before."""
        self.used -= less


class HostBudgets:
    """The budgets of one sandbox, sized from its options."""

    def __init__(self, options: Options) -> None:
        #: Pipe buffer pages: Linux's pipe-user-pages-soft, and a hard bound Linux leaves
        #: unset (0) but a sandbox needs, since fds x processes pipes could be made.
        self.pipe_pages = Budget("pipe buffer pages", options.pipe_user_pages_hard, errno.ENFILE,
                                 soft=options.pipe_user_pages_soft)
        #: Bytes of /proc snapshots held by open descriptors.
        self.proc_snapshots = Budget("/proc snapshot bytes", options.proc_snapshot_bytes, errno.ENOMEM)
        #: Bytes of directory listings held by open descriptors (getdents reads a listing once
        #: per open, so its positions stay valid while the directory changes).
        self.dir_listings = Budget("directory listing bytes", options.dir_listing_bytes, errno.ENOMEM)
        #: Host descriptors of open host files, all processes together: each process may
        #: hold --max-open-files, but the host's descriptors are one pool (ENFILE, as
        #: Linux's file-max answers).
        self.host_files = Budget("open host files", options.host_files, errno.ENFILE)
        #: Bytes sockets hold for the guest: queued messages (data plus a fixed overhead
        #: each) and the sockets themselves, all sockets together (ENOBUFS beyond).
        self.socket_bytes = Budget("socket buffer bytes", options.socket_buffer_bytes, errno.ENOBUFS)
        #: epoll watches, all instances together (Linux's fs.epoll.max_user_watches: ENOSPC).
        self.epoll_watches = Budget("epoll watches", options.epoll_watches, errno.ENOSPC)
        #: inotify instances and watches (fs.inotify.max_user_instances, max_user_watches),
        #: and the host bytes of events queued in all instances (past them: IN_Q_OVERFLOW).
        self.inotify_instances = Budget("inotify instances", options.inotify_instances, errno.EMFILE)
        self.inotify_watches = Budget("inotify watches", options.inotify_watches, errno.ENOSPC)
        self.inotify_event_bytes = Budget("inotify event bytes", options.inotify_event_bytes, errno.ENOMEM)
