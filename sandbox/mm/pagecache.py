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
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from sandbox.errors import SyscallError
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory


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
        return os.pread(self.fd, n, offset)

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

    #: Told how many bytes of host disk a writeback added (the kernel's disk quota), if set.
    on_grow: Callable[[int], None] | None = None

    def writeback(self, mem: PhysicalMemory, first: int = 0, last: int | None = None) -> None:
        """Store cached pages [first, last] into the file, never past its current end. A page
        equal to the file's bytes is not written: a hole of a sparse file stays a hole, and
        the disk the writeback adds is what the guest changed (charged through `on_grow`)."""
        if not self.writable:
            return
        before = os.fstat(self.fd).st_blocks
        try:
            self._store(mem, first, last)
        finally:
            if self.on_grow is not None:
                self.on_grow((os.fstat(self.fd).st_blocks - before) * 512)

    def _store(self, mem: PhysicalMemory, first: int, last: int | None) -> None:
        size = self.size
        last_in_file = (size - 1) >> PAGE_SHIFT
        wanted = range(first, last_in_file + 1 if last is None else min(last, last_in_file) + 1)
        # walk whichever is shorter: the pages asked for (a read()) or those cached (exit)
        for index in wanted if len(wanted) < len(self.pages) else sorted(self.pages):
            pfn = self.pages.get(index)
            if pfn is None or index not in wanted:
                continue
            offset = index << PAGE_SHIFT
            data = mem.read(pfn << PAGE_SHIFT, min(PAGE_SIZE, size - offset))
            try:
                if os.pread(self.fd, len(data), offset) != data:
                    os.pwrite(self.fd, data, offset)
            except OSError as error:
                raise SyscallError(error.errno or errno.EIO, self.name) from None

    def trim(self, frames: FrameAllocator) -> int:
        """Drop cached pages that no mapping uses any more; return how many."""
        dropped = 0
        for index, pfn in list(self.pages.items()):
            if frames.refcount(pfn) == 1:
                frames.put(pfn)
                del self.pages[index]
                dropped += 1
        return dropped


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
        #: blocks) and of what writebacks add (`charge(nbytes)`). None: nobody counts.
        self.holder = None

    def open(self, host_fd: int, name: str, writable: bool) -> CachedFile:
        """The cache entry of the file behind `host_fd` (its own dup'd descriptor)."""
        st = os.fstat(host_fd)
        key = (st.st_dev, st.st_ino)
        cached = self.files.get(key)
        if cached is None or (writable and not cached.writable):
            if cached is not None:
                os.close(cached.fd)
            elif self.holder is not None:
                self.holder.opened(st)
            fd = os.dup(host_fd)
            pages = cached.pages if cached else {}
            cached = CachedFile(fd, name, writable, key)
            cached.pages = pages
            if self.holder is not None:
                cached.on_grow = self.holder.charge
            self.files[key] = cached
        return cached


    def trim(self, mapped: set[int]) -> int:
        """Forget the pages, and the file, of every file no region maps any more (`mapped`
        holds the ids of the CachedFile objects regions still refer to). A file still mapped
        keeps its pages, so later faults share the same frames (as shmem pages stay)."""
        dropped = 0
        for key, cached in list(self.files.items()):
            if id(cached) in mapped:
                continue
            dropped += cached.trim(self.frames)
            if not cached.pages:
                if self.holder is not None:
                    self.holder.closed(os.fstat(cached.fd))
                os.close(cached.fd)
                del self.files[key]
        return dropped
