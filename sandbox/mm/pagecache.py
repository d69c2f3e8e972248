"""The page cache: one frame per file page, shared by every mapping of that page.

A `CachedFile` is the `FileSource` of a file-backed region made by mmap. It owns one
reference on each cached frame; every page-table entry that maps the frame owns another.
A private mapping maps the cached frame read-only and copies it on the first write
(copy-on-write, because the refcount is never 1 while the cache holds it); a shared mapping
maps it writable, and `writeback` stores it into the file (msync, munmap, exit).

Invariant: a cached frame's refcount is 1 + the number of entries mapping it.

On Linux one page cache serves read(), write() and mmap alike. Here the host file and the
cached frames are two copies, kept coherent at the system calls: a write() of a cached file
also lands in its cached frames (`CachedFile.wrote`), and a read() first stores the frames
that shared mappings may have dirtied (`CachedFile.writeback`).

Host resources are bounded: the cache holds at most MAX_CACHED_FILES files (one host
descriptor each; mmap answers ENFILE beyond, as Linux past fs.file-max), a host out of
descriptors is ENFILE for the guest, and a writeback adds host disk only while the disk
quota has room: past it, pages that would fill holes are lost, as on a full file system,
and msync reports ENOSPC.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from typing import Protocol

from sandbox.abi import BUS_ADRERR, MAX_LFS_FILESIZE
from sandbox.errors import GuestFault, SyscallError
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory

#: Files the cache may hold at once (each pins a host descriptor): Linux's fs.file-max in
#: miniature, so a guest that maps and closes file after file gets ENFILE, not the host's EMFILE.
MAX_CACHED_FILES = 4096


class DiskHolder(Protocol):
    """Who counts host disk (the kernel's disk quota, sandbox.kernel.quota)."""

    @property
    def free(self) -> int: ...

    def charge_blocks(self, nblocks: int) -> None: ...

    def opened(self, st: os.stat_result) -> None: ...

    def closed(self, st: os.stat_result) -> None: ...


def host_descriptor_error(error: OSError, what: str) -> SyscallError:
    """A host call that failed for want of descriptors (EMFILE, ENFILE) is ENFILE for the
    guest: the sandbox's table is the "system" its files come from (man 2 mmap, ENFILE)."""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        return SyscallError(errno.ENFILE, f"{what}: the host is out of file descriptors")
    return SyscallError(error.errno or errno.EIO, f"{what}: {error.strerror}")


class CachedFile:
    """A host file opened for mapping (its own descriptor), with its cached pages."""

    def __init__(self, fd: int, name: str, writable: bool, key: tuple[int, int]) -> None:
        self.fd = fd
        self.name = name
        self.writable = writable
        self.key = key
        self.pages: dict[int, int] = {}  # page index -> pfn

    @property
    def size(self) -> int:
        """The file's current size (mappings see growth, and SIGBUS past the end)."""
        return os.fstat(self.fd).st_size

    def read(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes of the file at `offset` (fewer past its end). Never past loff_t's
        end (the host answers EINVAL to a read that would cross it); a host read error is
        SIGBUS for the guest, as Linux's filemap_fault answers an I/O error."""
        n = max(0, min(n, MAX_LFS_FILESIZE - offset))
        try:
            return os.pread(self.fd, n, offset)
        except OSError as error:
            raise GuestFault(signal.SIGBUS, BUS_ADRERR, 0, f"{self.name}: {error.strerror}") from None

    def frame(self, offset: int, mem: PhysicalMemory, frames: FrameAllocator) -> int:
        """The cached frame of the page at file `offset`, with one new reference for the caller."""
        index = offset >> PAGE_SHIFT
        if index not in self.pages:
            self.fill(index, 1, mem, frames)
        pfn = self.pages[index]
        frames.get(pfn)
        return pfn

    def fill(self, first: int, count: int, mem: PhysicalMemory, frames: FrameAllocator) -> None:
        """Bring pages [first, first + count) into the cache, the missing ones read with one
        call (readahead for fault-around); cached pages, maybe dirty, are left as they are.
        On OutOfMemory the pages filled so far stay cached."""
        missing = [index for index in range(first, first + count) if index not in self.pages]
        if not missing:
            return
        lo = missing[0]
        data = self.read(lo << PAGE_SHIFT, (missing[-1] + 1 - lo) << PAGE_SHIFT)
        for index in missing:
            pfn = frames.alloc()
            chunk = data[(index - lo) << PAGE_SHIFT : (index - lo + 1) << PAGE_SHIFT]
            mem.write(pfn << PAGE_SHIFT, chunk)
            self.pages[index] = pfn

    def wrote(self, offset: int, data: bytes, mem: PhysicalMemory) -> bool:
        """`data` was written to the host file at `offset`: copy it into the cached pages it
        covers, so every mapping sees it. True if any cached page changed."""
        changed = False
        end = offset + len(data)
        for index in range(offset >> PAGE_SHIFT, ((end - 1) >> PAGE_SHIFT) + 1 if data else 0):
            pfn = self.pages.get(index)
            if pfn is None:
                continue
            lo, hi = max(offset, index << PAGE_SHIFT), min(end, (index + 1) << PAGE_SHIFT)
            mem.write((pfn << PAGE_SHIFT) + (lo & (PAGE_SIZE - 1)), data[lo - offset : hi - offset])
            changed = True
        return changed

    #: The disk quota a writeback is charged to and refused by (None: nobody counts).
    quota: DiskHolder | None = None
    #: The snapshots' file journal (sandbox.kernel.fsjournal.Journals), told before a
    #: writeback stores pages; set by a snapshot on the files cached then.
    journal = None

    def writeback(self, mem: PhysicalMemory, first: int = 0, last: int | None = None) -> int:
        """Store cached pages [first, last] into the file, never past its current end; return
        0, or the errno of the pages that could not be stored (ENOSPC) for msync to report.

        A page equal to the file's bytes is not written: a hole of a sparse file stays a
        hole, and the disk the writeback adds is what the guest changed, charged to the
        quota. Once the quota may be spent, a page that would fill a hole is dropped (it
        stays cached, but the file does not get it), as a full file system loses dirty
        pages at writeback (Linux reports that through msync and fsync, never munmap or
        exit); rewriting blocks the file has costs nothing and is always done.
        """
        if not self.writable:
            return 0
        if self.journal is not None:  # snapshots save the file's contents first
            self.journal.changing_fd(self.fd)
        before = os.fstat(self.fd).st_blocks
        try:
            return self._store(mem, first, last)
        finally:
            if self.quota is not None:
                self.quota.charge_blocks(os.fstat(self.fd).st_blocks - before)

    def _store(self, mem: PhysicalMemory, first: int, last: int | None) -> int:
        size = self.size
        last_in_file = (size - 1) >> PAGE_SHIFT
        wanted = range(first, last_in_file + 1 if last is None else min(last, last_in_file) + 1)
        # What this call may still add, counted as if every page stored filled a hole; below
        # a page of it, each page is first asked whether it would (so the quota is passed by
        # file-system metadata at most).
        budget = self.quota.free if self.quota is not None else None
        lost = 0
        # walk whichever is shorter: the pages asked for (a read()) or those cached (exit)
        for index in wanted if len(wanted) < len(self.pages) else sorted(self.pages):
            pfn = self.pages.get(index)
            if pfn is None or index not in wanted:
                continue
            offset = index << PAGE_SHIFT
            data = mem.read(pfn << PAGE_SHIFT, min(PAGE_SIZE, size - offset))
            try:
                if os.pread(self.fd, len(data), offset) == data:
                    continue
                if budget is not None:
                    if budget >= PAGE_SIZE:
                        budget -= PAGE_SIZE
                    elif self._in_hole(offset, len(data)):
                        lost = errno.ENOSPC
                        continue
                os.pwrite(self.fd, data, offset)
            except OSError as error:  # the host's own ENOSPC, EIO, EFBIG: this page is lost
                lost = error.errno or errno.EIO
        return lost

    def _in_hole(self, offset: int, n: int) -> bool:
        """Whether writing [offset, offset + n) would allocate blocks: part of it lies in a
        hole (lseek(2) SEEK_HOLE: the next hole at or after `offset`). The file position is
        put back: when the cache's descriptor is a dup (own_description), it is the guest's."""
        position = os.lseek(self.fd, 0, os.SEEK_CUR)
        try:
            return os.lseek(self.fd, offset, os.SEEK_HOLE) < offset + n
        finally:
            os.lseek(self.fd, position, os.SEEK_SET)

    def trim(self, frames: FrameAllocator) -> list[int]:
        """Drop cached pages that no mapping uses any more; return their frames."""
        dropped = []
        for index, pfn in list(self.pages.items()):
            if frames.refcount(pfn) == 1:
                frames.put(pfn)
                del self.pages[index]
                dropped.append(pfn)
        return dropped


def own_description(host_fd: int, writable: bool, name: str) -> int:
    """A descriptor of the file behind `host_fd` with its own open file description: a dup
    would share the guest's file position and its O_APPEND, with which pwrite appends
    whatever the offset (pwrite(2), BUGS), so writeback would land at the end. Re-opened
    through the process's own descriptor link (it names that very file, not a path the
    guest can change); a dup only if the host refuses (e.g. a mode set to 000 since).
    ENFILE when the host has no descriptor left."""
    try:
        try:
            return os.open(f"/proc/self/fd/{host_fd}", (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        except PermissionError:
            return os.dup(host_fd)
    except OSError as error:
        raise host_descriptor_error(error, name) from None


class PageCache:
    """All files mapped in this machine, by (device, inode)."""

    def __init__(self, mem: PhysicalMemory, frames: FrameAllocator) -> None:
        self.mem = mem
        self.frames = frames
        self.files: dict[tuple[int, int], CachedFile] = {}
        #: Called when a write() changed cached pages: they may hold code the CPU translated.
        self.on_change: Callable[[], None] = lambda: None
        #: Who counts host disk (the kernel's disk quota): told when the cache opens and
        #: closes a file (`opened(st)`, `closed(st)`: an unlinked file still mapped holds its
        #: blocks), charged what writebacks add, and asked how much room is left (`free`).
        #: None: nobody counts.
        self.holder: DiskHolder | None = None

    def open(self, host_fd: int, name: str, writable: bool) -> CachedFile:
        """The cache entry of the file behind `host_fd` (its own description of the file).
        ENFILE when the cache holds MAX_CACHED_FILES files or the host has no descriptor
        left; the entry is then as it was."""
        st = os.fstat(host_fd)
        key = (st.st_dev, st.st_ino)
        cached = self.files.get(key)
        if cached is not None and (cached.writable or not writable):
            return cached
        if cached is None and len(self.files) >= MAX_CACHED_FILES:
            raise SyscallError(errno.ENFILE, f"the page cache holds {MAX_CACHED_FILES} files")
        fd = own_description(host_fd, writable, name)
        if cached is not None:  # now writable: the same pages, a writable descriptor
            os.close(cached.fd)
        elif self.holder is not None:
            self.holder.opened(st)
        fresh = CachedFile(fd, name, writable, key)
        fresh.pages = cached.pages if cached is not None else {}
        fresh.quota = self.holder
        self.files[key] = fresh
        return fresh

    def trim(self, mapped: set[int]) -> list[int]:
        """Forget the pages, and the file, of every file no region maps any more (`mapped`
        holds the ids of the CachedFile objects regions still refer to); return the frames
        freed. A file still mapped keeps its pages, so later faults share the same frames
        (as shmem pages stay)."""
        dropped: list[int] = []
        for key, cached in list(self.files.items()):
            if id(cached) in mapped:
                continue
            dropped += cached.trim(self.frames)
            if not cached.pages:
                self._forget(key, cached)
        return dropped

    def _forget(self, key: tuple[int, int], cached: CachedFile) -> None:
        """Close a file nothing maps (shared anonymous memory's file goes with it: it was
        unlinked at birth and only the cache held it)."""
        if self.holder is not None:  # an unlinked file's blocks go back with its last holder
            self.holder.closed(os.fstat(cached.fd))
        os.close(cached.fd)
        del self.files[key]
