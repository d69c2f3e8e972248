"""inotify: events about files, for changes the guest's own system calls make (man 7 inotify;
Linux fs/notify/fsnotify.c, fs/notify/inotify/*.c, include/linux/fsnotify.h).

One `Notifier` per sandbox holds every watch, keyed by the watched node's identity: the host
inode (st_dev, st_ino) of a host node, or ("made-up", dev, ino) of a node the sandbox makes up
(those never change, so they never report). The places where system calls read, change,
create, remove or rename files call the hooks at the end of this module; each returns at once
while nobody watches. An `InotifyFile` is one instance: its watches by descriptor (wd,
allocated cyclically from 1 as idr_alloc_cyclic does) and its queue of unread events.

As Linux (fsnotify_parent, fsnotify_handle_event): an event on a file goes first to a watch
on the directory holding it (with the file's name and IN_ISDIR for a directory), then to a
watch on the file itself (without a name). A watched inode that loses its last link reports
IN_DELETE_SELF and IN_IGNORED at once, or at its last close while the guest holds it open
(dentry_unlink_inode). A new event identical to the last unread one (wd, mask, name) is
merged with it (inotify_merge); past max_queued_events, or past the sandbox's byte budget for
queued events, one IN_Q_OVERFLOW takes the place of what is lost (fsnotify_add_event).

Limits: a host node's parent is found from the guest path the file was opened by, checked
against the open file's identity, and followed across renames and unlinks made inside the
sandbox; changes made by the host, and writes through shared mappings, report nothing.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import struct
import weakref
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import SyscallError
from sandbox.kernel.eventfiles import AnonFile
from sandbox.kernel.files import O_ACCMODE, O_NONBLOCK, O_PATH, O_RDONLY, POLLIN
from sandbox.kernel.hostfiles import HostFile

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.vfs_nodes import Node

# Event bits (include/uapi/linux/inotify.h), one per line as the header has them.
IN_ACCESS = 0x00000001  # file was read
IN_MODIFY = 0x00000002  # file was written or truncated
IN_ATTRIB = 0x00000004  # metadata changed: mode, owner, times, link count
IN_CLOSE_WRITE = 0x00000008  # a file opened for writing was closed
IN_CLOSE_NOWRITE = 0x00000010  # a file not opened for writing was closed
IN_OPEN = 0x00000020  # file was opened
IN_MOVED_FROM = 0x00000040  # a name left the watched directory
IN_MOVED_TO = 0x00000080  # a name came into the watched directory
IN_CREATE = 0x00000100  # a name was created in the watched directory
IN_DELETE = 0x00000200  # a name was removed from the watched directory
IN_DELETE_SELF = 0x00000400  # the watched inode itself was deleted
IN_MOVE_SELF = 0x00000800  # the watched inode itself was moved
IN_UNMOUNT = 0x00002000  # its file system was unmounted (never here)
IN_Q_OVERFLOW = 0x00004000  # events were lost
IN_IGNORED = 0x00008000  # the watch went away
IN_ONLYDIR = 0x01000000  # add_watch: only if the path is a directory
IN_DONT_FOLLOW = 0x02000000  # add_watch: do not follow a final symlink
IN_EXCL_UNLINK = 0x04000000  # no events for children once they are unlinked
IN_MASK_CREATE = 0x10000000  # add_watch: EEXIST if the inode is already watched
IN_MASK_ADD = 0x20000000  # add_watch: add to the watch's mask instead of replacing it
IN_ISDIR = 0x40000000  # the subject of the event is a directory
IN_ONESHOT = 0x80000000  # the watch goes after one event
IN_ALL_EVENTS = 0x00000FFF
IN_CLOSE = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE
#: Every bit inotify_add_watch knows (ALL_INOTIFY_BITS): a mask with none of them is EINVAL.
ALL_INOTIFY_BITS = (IN_ALL_EVENTS | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED | IN_ONLYDIR | IN_DONT_FOLLOW
                    | IN_EXCL_UNLINK | IN_MASK_ADD | IN_MASK_CREATE | IN_ISDIR | IN_ONESHOT)
#: What a directory watch hears about the files in it (FS_EVENTS_POSS_ON_CHILD).
ON_CHILD = IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE | IN_OPEN
WD_MAX = 0x7FFF_FFFF
EVENT_HEADER = struct.Struct("<iIII")  # struct inotify_event {wd, mask, cookie, len}; name follows
#: Host bytes one queued event takes besides its name (the record, its ints, the deque slot).
EVENT_COST = 128

Key = tuple


class Event(NamedTuple):
    """One queued event; `name` is the bare name (padded only when read)."""

    wd: int
    mask: int
    cookie: int
    name: bytes

    @property
    def size(self) -> int:
        """Bytes the record takes when read: the name NUL-padded to a multiple of 16
        (round_event_name_len: len counts the padding)."""
        return EVENT_HEADER.size + padded_len(self.name)

    def pack(self) -> bytes:
        length = padded_len(self.name)
        return EVENT_HEADER.pack(self.wd, self.mask, self.cookie, length) + self.name.ljust(length, b"\0")


def padded_len(name: bytes) -> int:
    return 0 if not name else (len(name) + 1 + EVENT_HEADER.size - 1) // EVENT_HEADER.size * EVENT_HEADER.size


OVERFLOW = Event(-1, IN_Q_OVERFLOW, 0, b"")


class Watch:
    """One instance's watch on one inode: the events it wants and its flags."""

    __slots__ = ("group", "wd", "key", "mask")

    def __init__(self, group: InotifyFile, wd: int, key: Key, mask: int) -> None:
        self.group, self.wd, self.key, self.mask = group, wd, key, mask

    @property
    def oneshot(self) -> bool:
        return bool(self.mask & IN_ONESHOT)

    @property
    def excl_unlink(self) -> bool:
        return bool(self.mask & IN_EXCL_UNLINK)


class Subject(NamedTuple):
    """What an event is about: the inode, the directory holding the name it was reached by
    (None if unknown), that name, and whether the name has been unlinked since."""

    key: Key
    parent: Key | None
    name: bytes
    isdir: bool
    unlinked: bool = False
    nlink: int = 1  # when found (a new name's: more than 1 if it links an inode again)


class InotifyFile(AnonFile):
    """An inotify instance (inotify_init1): watches by wd and a queue of unread events.
    Read-only (a write is EBADF), seekable to nowhere (noop_llseek), readable when an event
    is queued."""

    kind = "inotify"
    proc_link = "anon_inode:inotify"  # /proc/PID/fd/N, as Linux names it (no brackets)

    def __init__(self, notifier: Notifier, flags: int) -> None:
        super().__init__(flags)
        self.flags = O_RDONLY | (flags & O_NONBLOCK)
        self.name = self.proc_link
        self.notifier = notifier
        self.watches: dict[int, Watch] = {}
        self.by_key: dict[Key, Watch] = {}
        self.queue: deque[Event] = deque()
        self.pending = 0  # bytes a read of everything queued would return (FIONREAD)
        self.charged = 0  # host bytes charged to the event budget for the queue
        self.next_wd = 1
        self.added = 0  # events queued, ever: edge-triggered epoll's wake-ups
        self.closed = False

    # -- the queue ------------------------------------------------------------------------

    def queue_event(self, event: Event) -> None:
        """Queue `event` unless it repeats the last unread one; past the queue's bounds, one
        IN_Q_OVERFLOW instead (fsnotify_add_event, inotify_merge)."""
        if self.closed:
            return
        if len(self.queue) >= self.notifier.max_queued or not self._charge(event):
            if not self.queue or self.queue[-1] is not OVERFLOW:
                self._append(OVERFLOW, 0)
            return
        last = self.queue[-1] if self.queue else None
        if last is not None and not last.mask & IN_IGNORED and last[:2] == event[:2] and last.name == event.name:
            self.notifier.event_bytes.release(EVENT_COST + len(event.name))
            return
        self._append(event, EVENT_COST + len(event.name))

    def _charge(self, event: Event) -> bool:
        """Charge an event's host bytes; False past the budget (Linux: its kmalloc failed)."""
        try:
            self.notifier.event_bytes.charge(EVENT_COST + len(event.name))
        except SyscallError:
            return False
        return True

    def _append(self, event: Event, cost: int) -> None:
        self.queue.append(event)
        self.pending += event.size
        self.charged += cost
        self.added += 1

    def _take(self) -> Event:
        event = self.queue.popleft()
        self.pending -= event.size
        if event is not OVERFLOW:
            cost = EVENT_COST + len(event.name)
            self.charged -= cost
            self.notifier.event_bytes.release(cost)
        return event

    # -- the file -------------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        """Whole events, as many as fit in `n` bytes: EINVAL if not even the first fits,
        sleep (EAGAIN under O_NONBLOCK) while none is queued (inotify_read)."""
        if not self.queue:
            raise self._empty("no inotify event queued")
        out = bytearray()
        while self.queue and len(out) + self.queue[0].size <= n:
            out += self._take().pack()
        if not out:
            raise SyscallError(errno.EINVAL, f"read of {n} bytes: the next event takes {self.queue[0].size}")
        return bytes(out)

    def seek(self, offset: int, whence: int) -> int:
        return 0  # noop_llseek

    def poll(self, events: int) -> int:
        return POLLIN & events if self.queue else 0

    def wakeups(self) -> int:
        return self.added

    def queued_bytes(self) -> int:
        """FIONREAD: the bytes a read of every queued event would give (inotify_ioctl)."""
        return self.pending

    def close(self) -> None:
        """The last descriptor went: every watch goes, with no IN_IGNORED to anyone."""
        for watch in list(self.watches.values()):
            self.notifier.forget(watch)
        self.notifier.event_bytes.release(self.charged)
        self.notifier.instances.release(1)
        self.queue.clear()
        self.closed = True

    # -- watches --------------------------------------------------------------------------

    def add_watch(self, key: Key, mask: int) -> int:
        """inotify_update_watch: the wd of this instance's watch on `key`, created or with
        its mask replaced (IN_MASK_ADD: extended); EEXIST under IN_MASK_CREATE if it exists,
        ENOSPC past the sandbox's watches."""
        wanted = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK)
        watch = self.by_key.get(key)
        if watch is not None:
            if mask & IN_MASK_CREATE:
                raise SyscallError(errno.EEXIST, f"already watched as wd {watch.wd}")
            watch.mask = watch.mask | wanted if mask & IN_MASK_ADD else wanted
            return watch.wd
        self.notifier.watch_count.charge(1)
        watch = Watch(self, self._allocate_wd(), key, wanted)
        self.watches[watch.wd] = self.by_key[key] = watch
        self.notifier.marks.setdefault(key, []).append(watch)
        return watch.wd

    def _allocate_wd(self) -> int:
        """The next free wd from `next_wd` on, wrapping to 1 (idr_alloc_cyclic)."""
        wd = self.next_wd
        while wd in self.watches:
            wd = wd + 1 if wd < WD_MAX else 1
        self.next_wd = wd + 1 if wd < WD_MAX else 1
        return wd

    def remove_watch(self, wd: int) -> None:
        """inotify_rm_watch: EINVAL for a wd this instance does not have; IN_IGNORED queued."""
        watch = self.watches.get(wd)
        if watch is None:
            raise SyscallError(errno.EINVAL, f"no watch {wd}")
        self.notifier.drop(watch)


class Notifier:
    """Every watch of one sandbox, and what the hooks need to route events to them."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        budgets, options = kernel.budgets, kernel.options
        self.instances: Budget = budgets.inotify_instances
        self.watch_count: Budget = budgets.inotify_watches
        self.event_bytes: Budget = budgets.inotify_event_bytes
        self.max_queued = options.inotify_max_queued_events
        #: The watches on each inode, oldest first: the invariant is that a watch is here
        #: exactly when its instance's `watches` and `by_key` have it.
        self.marks: dict[Key, list[Watch]] = {}
        self.cookies = itertools.count(1)  # fsnotify_get_cookie
        #: Files the guest opened by path that are still open, and what each is about.
        self.open_files: weakref.WeakSet[HostFile] = weakref.WeakSet()
        self.subjects: weakref.WeakKeyDictionary[HostFile, Subject] = weakref.WeakKeyDictionary()
        #: Watched inodes unlinked while open: deleted at their last close.
        self.doomed: set[Key] = set()
        self.just_created: Key | None = None  # the inode the last IN_CREATE was for

    # -- delivering -----------------------------------------------------------------------

    def to_inode(self, key: Key, mask: int, name: bytes = b"", cookie: int = 0, unlinked: bool = False) -> None:
        """Queue the event for each watch on `key` that wants it; a one-shot watch goes."""
        if mask & (IN_MOVE_SELF | IN_DELETE_SELF):
            mask &= ~IN_ISDIR  # inotify never reported IN_ISDIR with these (inotify_fsnotify.c)
        for watch in list(self.marks.get(key, ())):
            if not watch.mask & mask & IN_ALL_EVENTS or (unlinked and watch.excl_unlink):
                continue
            watch.group.queue_event(Event(watch.wd, mask, cookie, name))
            if watch.oneshot:
                self.drop(watch)

    def to_subject(self, subject: Subject | None, mask: int) -> None:
        """An event on a file: to its directory's watches with its name, then to its own."""
        if subject is None:
            return
        mask |= IN_ISDIR if subject.isdir else 0
        if subject.parent is not None and mask & ON_CHILD:
            self.to_inode(subject.parent, mask, subject.name, unlinked=subject.unlinked)
        self.to_inode(subject.key, mask)

    def drop(self, watch: Watch) -> None:
        """The watch goes, and its instance hears IN_IGNORED."""
        self.forget(watch)
        watch.group.queue_event(Event(watch.wd, IN_IGNORED, 0, b""))

    def forget(self, watch: Watch) -> None:
        marks = self.marks.get(watch.key, [])
        if watch in marks:
            marks.remove(watch)
            if not marks:
                del self.marks[watch.key]
            del watch.group.watches[watch.wd]
            del watch.group.by_key[watch.key]
            self.watch_count.release(1)

    def inode_gone(self, key: Key) -> None:
        """The inode is deleted: IN_DELETE_SELF, then every watch on it goes (fsnotify_inoderemove)."""
        self.doomed.discard(key)
        self.to_inode(key, IN_DELETE_SELF)
        for watch in list(self.marks.get(key, ())):
            self.drop(watch)

    def lost_link(self, key: Key, st: os.stat_result, attrib: bool = True) -> None:
        """A name of the inode (whose lstat before was `st`) went: IN_ATTRIB for the link
        count (not for a directory: vfs_rmdir), and if it was the last, the inode is deleted
        now, or at the last close of the files the guest holds open on it."""
        isdir = stat.S_ISDIR(st.st_mode)
        if attrib and not isdir:
            self.to_inode(key, IN_ATTRIB)
        if key in self.marks and (isdir or st.st_nlink <= 1):
            if self.held_open(key):
                self.doomed.add(key)
            else:
                self.inode_gone(key)

    def held_open(self, key: Key, closing: HostFile | None = None) -> bool:
        """Whether a file the guest opened (other than `closing`) still holds the inode."""
        return any(f is not closing and f.refs > 0 and self.key_of(f) == key for f in list(self.open_files))

    def key_of(self, file: HostFile) -> Key | None:
        """The identity of an open file's inode (its subject's, if known)."""
        subject = self.subjects.get(file)
        if subject is not None:
            return subject.key
        try:
            st = os.fstat(file.fd)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    # -- subjects -------------------------------------------------------------------------

    def subject_of(self, file: HostFile) -> Subject | None:
        """What events on `file` are about, found once per file: its identity, and its
        directory and name from the guest path it was opened by (checked to still name it)."""
        subject = self.subjects.get(file)
        if subject is None:
            try:
                st = os.fstat(file.fd)
            except OSError:
                return None
            key = (st.st_dev, st.st_ino)
            parent, name = self.parent_by_path(file.guest, key)
            subject = self.subjects[file] = Subject(key, parent, name, stat.S_ISDIR(st.st_mode))
        return subject

    def parent_by_path(self, guest: str, key: Key) -> tuple[Key | None, bytes]:
        """The directory holding `guest` and its name there, if `guest` still names `key`."""
        fs = self.kernel.fs
        try:
            node = fs.lookup(guest)
            st = fs.lstat(node)
            if st is None or (st.st_dev, st.st_ino) != key:
                return None, b""
            return self.parent_key(node), os.fsencode(node.guest.rpartition("/")[2])
        except (SyscallError, OSError):
            return None, b""

    def parent_key(self, node: Node) -> Key | None:
        """The identity of the host directory holding `node`'s entry (None at the root)."""
        if node.name != ".":
            st = os.fstat(node.dirfd)
            return st.st_dev, st.st_ino
        head = node.guest.rpartition("/")[0]
        if node.guest == "/":
            return None
        st = self.kernel.fs.lstat(self.kernel.fs.lookup(head or "/"))
        return None if st is None else (st.st_dev, st.st_ino)

    def subject_of_node(self, node: Node) -> Subject | None:
        """What an event on a resolved host node is about (None if not a host entry)."""
        try:
            st = self.kernel.fs.lstat(node)
            if st is None:
                return None
            return Subject((st.st_dev, st.st_ino), self.parent_key(node), os.fsencode(node.guest.rpartition("/")[2]),
                           stat.S_ISDIR(st.st_mode), nlink=st.st_nlink)
        except (SyscallError, OSError):
            return None

    def renamed_entry(self, old: Subject, new_parent: Key | None, new_name: bytes) -> None:
        """Open files that reached the moved inode by its old name now have the new one."""
        for file, subject in list(self.subjects.items()):
            if subject.key == old.key and (subject.parent, subject.name) == (old.parent, old.name):
                self.subjects[file] = subject._replace(parent=new_parent, name=new_name)

    def unlinked_entry(self, key: Key, parent: Key | None, name: bytes) -> None:
        """Open files that reached `key` by that name: the name is unlinked (IN_EXCL_UNLINK)."""
        for file, subject in list(self.subjects.items()):
            if subject.key == key and (subject.parent, subject.name) == (parent, name):
                self.subjects[file] = subject._replace(unlinked=True)

    # -- what open files report (HostFile calls these) ---------------------------------

    def transferred(self, file: HostFile, writing: bool, done: bytes | int) -> None:
        """A read (IN_ACCESS) or write (IN_MODIFY) moved `done` bytes (none: no event)."""
        if self.marks and (done if writing else len(done)):
            self.to_subject(self.subject_of(file), IN_MODIFY if writing else IN_ACCESS)

    def truncated(self, file: HostFile) -> None:
        """ftruncate: IN_MODIFY (notify_change with ATTR_SIZE)."""
        if self.marks:
            self.to_subject(self.subject_of(file), IN_MODIFY)

    def closing(self, file: HostFile) -> None:
        """The last descriptor of an open file goes (__fput): IN_CLOSE_WRITE or
        IN_CLOSE_NOWRITE, then the deletion of an inode unlinked while it was open, if this
        was the last file holding it."""
        self.open_files.discard(file)
        if not self.marks:
            return
        writing = file.flags & O_ACCMODE != O_RDONLY
        self.to_subject(self.subject_of(file), IN_CLOSE_WRITE if writing else IN_CLOSE_NOWRITE)
        key = self.key_of(file)
        if key in self.doomed and not self.held_open(key, file):
            self.inode_gone(key)

    def check_invariants(self) -> None:
        """Every mark is its instance's watch and counted; no instance has another."""
        count = 0
        for key, watches in self.marks.items():
            for watch in watches:
                assert watch.key == key and watch.group.watches.get(watch.wd) is watch, watch.wd
                assert watch.group.by_key.get(key) is watch, key
                count += 1
        assert count == self.watch_count.used, (count, self.watch_count.used)


_NOTIFIERS: weakref.WeakKeyDictionary[Kernel, Notifier] = weakref.WeakKeyDictionary()


def notifier_of(kernel: Kernel) -> Notifier:
    """The sandbox's notifier, made when first needed."""
    notifier = _NOTIFIERS.get(kernel)
    if notifier is None:
        notifier = _NOTIFIERS[kernel] = Notifier(kernel)
    return notifier


def _watched(kernel: Kernel) -> Notifier | None:
    """The notifier if anything is watched at all (the hooks' fast path), else None."""
    notifier = _NOTIFIERS.get(kernel)
    return notifier if notifier is not None and notifier.marks else None


# -- hooks: one call from each place a system call reads or changes files ---------------------


def opened(kernel: Kernel, file: object, flags: int) -> None:
    """open(2) of a host file by path (not O_PATH): it reports its reads, writes and close
    from now on; IN_OPEN, and IN_MODIFY after it if O_TRUNC cut an existing file."""
    if not isinstance(file, HostFile) or flags & O_PATH:
        return
    notifier = notifier_of(kernel)
    file.notify = notifier
    notifier.open_files.add(file)
    created, notifier.just_created = notifier.just_created, None
    if notifier.marks:
        subject = notifier.subject_of(file)
        notifier.to_subject(subject, IN_OPEN)
        if flags & os.O_TRUNC and subject is not None and not subject.isdir and subject.key != created:
            notifier.to_subject(subject, IN_MODIFY)


def file_changed(file: object, mask: int) -> None:
    """An event on an open file (IN_ACCESS for getdents, IN_ATTRIB for fchmod, IN_MODIFY for
    fallocate...); nothing for a file the guest did not open by path."""
    notifier = getattr(file, "notify", None)
    if notifier is not None and notifier.marks:
        notifier.to_subject(notifier.subject_of(file), mask)


def node_changed(kernel: Kernel, node: Node, mask: int) -> None:
    """An event on a node changed by path: chmod, chown, utimensat (IN_ATTRIB), truncate
    (IN_MODIFY)."""
    notifier = _watched(kernel)
    if notifier is not None:
        notifier.to_subject(notifier.subject_of_node(node), mask)


def created(kernel: Kernel, node: Node) -> None:
    """A name was made (open O_CREAT, mkdir, mknod, symlink, link): IN_ATTRIB for the link
    count of an inode it links again (fsnotify_link), then IN_CREATE in its directory."""
    notifier = _watched(kernel)
    if notifier is None:
        return
    subject = notifier.subject_of_node(node)
    if subject is None:
        return
    notifier.just_created = subject.key
    if not subject.isdir and subject.nlink > 1:
        notifier.to_inode(subject.key, IN_ATTRIB)
    if subject.parent is not None:
        notifier.to_inode(subject.parent, IN_CREATE | (IN_ISDIR if subject.isdir else 0), subject.name)


def unlinked(kernel: Kernel, node: Node, st: os.stat_result) -> None:
    """unlink or rmdir removed `node`, whose lstat before was `st` (vfs_unlink, vfs_rmdir):
    IN_ATTRIB and perhaps IN_DELETE_SELF for the inode, then IN_DELETE in its directory."""
    notifier = _watched(kernel)
    if notifier is None:
        return
    key, isdir = (st.st_dev, st.st_ino), stat.S_ISDIR(st.st_mode)
    parent, name = notifier.parent_key(node), os.fsencode(node.name)
    notifier.unlinked_entry(key, parent, name)
    notifier.lost_link(key, st)
    if parent is not None:
        notifier.to_inode(parent, IN_DELETE | (IN_ISDIR if isdir else 0), name)


def renamed(kernel: Kernel, old: Node, new: Node, replaced: os.stat_result | None, exchange: bool) -> None:
    """rename moved `old` to `new`, replacing the inode whose lstat was `replaced` or
    exchanging the two (vfs_rename, fsnotify_move): IN_MOVED_FROM and IN_MOVED_TO with one
    cookie, IN_ATTRIB for a replaced inode's link count, IN_MOVE_SELF; a replaced inode
    that lost its last link is deleted."""
    notifier = _watched(kernel)
    if notifier is None:
        return
    moved = notifier.subject_of_node(new)
    replaced_key = None if replaced is None or exchange else (replaced.st_dev, replaced.st_ino)
    if moved is None or replaced_key == moved.key:
        return  # the same inode under both names: rename does nothing (vfs_rename)
    source = moved._replace(parent=notifier.parent_key(old), name=os.fsencode(old.name))
    _move_names(notifier, source, moved)
    if replaced_key is not None and not stat.S_ISDIR(replaced.st_mode):
        notifier.to_inode(replaced_key, IN_ATTRIB)
    notifier.to_inode(moved.key, IN_MOVE_SELF)
    other = notifier.subject_of_node(old) if exchange else None
    if other is not None:
        _move_names(notifier, other._replace(parent=moved.parent, name=moved.name), other)
        notifier.to_inode(other.key, IN_MOVE_SELF)
    if replaced_key is not None:
        notifier.unlinked_entry(replaced_key, moved.parent, moved.name)
        notifier.lost_link(replaced_key, replaced, attrib=False)


def _move_names(notifier: Notifier, source: Subject, target: Subject) -> None:
    """IN_MOVED_FROM in the old directory and IN_MOVED_TO in the new, with one cookie; open
    files that reached the inode by its old name now have the new one."""
    cookie = next(notifier.cookies) & 0xFFFF_FFFF
    isdir = IN_ISDIR if source.isdir else 0
    if source.parent is not None:
        notifier.to_inode(source.parent, IN_MOVED_FROM | isdir, source.name, cookie)
    if target.parent is not None:
        notifier.to_inode(target.parent, IN_MOVED_TO | isdir, target.name, cookie)
    notifier.renamed_entry(source, target.parent, target.name)
