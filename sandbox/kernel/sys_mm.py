"""Memory system calls: brk, mmap, munmap, mprotect, mremap, madvise, mincore, msync
(man 2 of each).

Thin handlers: decode and check arguments the way Linux does (same errno for the same
mistake), convert (addr, length) to a half-open range once, then call the address space.
The guest chooses sizes up to the whole 128 TiB user half: work here is proportional to the
regions and present page-table entries in a range, never to its pages (holes cost nothing),
and output proportional to pages (mincore) is copied out in bounded chunks.
"""

from __future__ import annotations

import errno
import stat

from sandbox import abi
from sandbox.errors import SyscallError
from sandbox.kernel import limits
from sandbox.kernel.files import O_PATH, DeviceFile
from sandbox.kernel.hostfiles import HostFile
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm import HUGE_PAGE_SIZE, PAGE_SHIFT, PAGE_SIZE, USER_END, align_up, page_up
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagecache import CachedFile
from sandbox.mm.uaccess import copy_out
from sandbox.mm.vma import PROT_ALL, PROT_READ, PROT_WRITE, Region, RegionFlag, RegionKind

PROT_GROWSDOWN = 0x0100_0000
PROT_GROWSUP = 0x0200_0000


@syscall("brk", "addr")
def sys_brk(proc: Task, addr: int) -> int:
    """Move the program break; on any failure return the old one (Linux semantics)."""
    if addr < proc.brk_start or addr >= USER_END:
        return proc.brk
    old_end, new_end = page_up(proc.brk), page_up(addr)
    space = proc.space
    if new_end > old_end:
        if not space.regions.is_free(old_end, new_end) or not _may_grow(proc, new_end - old_end, True):
            return proc.brk
        heap = space.regions.find(old_end - 1) if old_end > proc.brk_start else None
        if heap is not None and heap.kind is RegionKind.HEAP:
            space.regions.resize(heap, heap.start, new_end)
        else:
            space.reserve_region(old_end, (new_end - old_end) // PAGE_SIZE, PROT_READ | PROT_WRITE,
                                 kind=RegionKind.HEAP, name="[heap]")
    elif new_end < old_end:
        space.unmap_range(new_end, old_end - new_end)
    proc.brk = addr
    return addr


@syscall("mmap", "addr length prot flags fd offset")
def sys_mmap(proc: Task, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    """Anonymous mappings, private or shared, placed at a hint, fixed, or top-down."""
    prot, flags, fd = to_int32(prot), to_int32(flags), to_int32(fd)
    kind = flags & abi.MAP_TYPE
    if kind not in (abi.MAP_PRIVATE, abi.MAP_SHARED, abi.MAP_SHARED_VALIDATE) or length == 0:
        raise SyscallError(errno.EINVAL, "bad map type or zero length")
    if offset % PAGE_SIZE or prot & ~PROT_ALL & ~(PROT_GROWSDOWN | PROT_GROWSUP):
        raise SyscallError(errno.EINVAL, "unaligned offset or unknown prot bits")
    if flags & abi.MAP_HUGETLB and not flags & abi.MAP_ANONYMOUS:
        proc.files.get(fd)  # EBADF comes first (Linux's ksys_mmap_pgoff)
        raise SyscallError(errno.EINVAL, "MAP_HUGETLB maps only anonymous memory (there is no hugetlbfs)")
    page_size = HUGE_PAGE_SIZE if flags & abi.MAP_HUGETLB else PAGE_SIZE
    size = align_up(length, page_size)
    if size > USER_END:
        raise SyscallError(errno.ENOMEM, "length exceeds user space")
    if not flags & abi.MAP_ANONYMOUS and offset + size > abi.MAX_LFS_FILESIZE:
        raise SyscallError(errno.EOVERFLOW, "the mapping would reach past loff_t (file_mmap_ok)")
    start = _place(proc, addr, size, flags, page_size)
    _check_map_limits(proc, start, size, prot, kind != abi.MAP_PRIVATE, bool(flags & abi.MAP_GROWSDOWN))
    max_prot = PROT_ALL
    if not flags & abi.MAP_ANONYMOUS:
        source, max_prot = _mapped_file(proc, fd, prot, kind != abi.MAP_PRIVATE)
    elif kind != abi.MAP_PRIVATE and page_size == PAGE_SIZE:
        source, offset = _shared_anonymous(proc, size), 0
    else:
        source = None
    region_flags = RegionFlag.NONE
    if kind != abi.MAP_PRIVATE:
        region_flags |= RegionFlag.SHARED
    if flags & abi.MAP_GROWSDOWN:
        region_flags |= RegionFlag.GROWSDOWN
    if flags & (abi.MAP_FIXED | abi.MAP_FIXED_NOREPLACE):
        region_flags |= RegionFlag.FIXED
    proc.space.reserve_region(start, size // page_size, prot & PROT_ALL, flags=region_flags,
                              kind=RegionKind.MMAP, page_size=page_size, file=source, offset=offset,
                              name=source.name if source else "", max_prot=max_prot)
    if flags & abi.MAP_POPULATE:
        proc.space.populate(start, start + size)
    return start


def _check_map_limits(proc: Task, start: int, size: int, prot: int, shared: bool, stack: bool) -> None:
    """ENOMEM if mapping [start, start + size) passes RLIMIT_AS or RLIMIT_DATA; what a
    MAP_FIXED mapping replaces does not count twice (mm/mmap.c mmap_region)."""
    freed = freed_data = 0
    for region in proc.space.regions.overlapping(start, start + size):
        part = min(region.end, start + size) - max(region.start, start)
        freed += part
        if limits.is_data(region.prot, region.shared, bool(region.flags & RegionFlag.GROWSDOWN)):
            freed_data += part
    limits.check_growth(proc, size, limits.is_data(prot, shared, stack), freed, freed_data)


def _may_grow(proc: Task, grow: int, data: bool) -> bool:
    """Whether RLIMIT_AS and RLIMIT_DATA leave room for `grow` more bytes (brk fails quietly)."""
    try:
        limits.check_growth(proc, grow, data)
    except SyscallError:
        return False
    return True


def _mapped_file(proc: Task, fd: int, prot: int, shared: bool) -> tuple[CachedFile | None, int]:
    """The page-cache entry for mapping `fd` (None for /dev/zero: an anonymous mapping) and
    the most protection the mapping may ever get. As Linux's do_mmap: any mapping needs a
    readable descriptor, and a shared one of a descriptor not open for writing may never
    be writable (VM_MAYWRITE cleared), so a later mprotect(PROT_WRITE) is EACCES too."""
    file = proc.files.get(fd)
    if file.flags & O_PATH:  # a handle only (open(2)): Linux's fdget refuses it
        raise SyscallError(errno.EBADF, f"{file.name} is an O_PATH descriptor")
    if isinstance(file, DeviceFile) and file.device == "zero":
        return None, PROT_ALL
    if not isinstance(file, HostFile) or not stat.S_ISREG(file.stat().mode):
        raise SyscallError(errno.ENODEV, f"{file.name} cannot be mapped")
    if not file.readable or (shared and prot & PROT_WRITE and not file.writable):
        raise SyscallError(errno.EACCES, f"{file.name} is not open for that access")
    max_prot = PROT_ALL & ~PROT_WRITE if shared and not file.writable else PROT_ALL
    return proc.kernel.page_cache.open(file.fd, file.guest, shared and file.writable), max_prot


def _shared_anonymous(proc: Task, size: int) -> CachedFile:
    """MAP_SHARED|MAP_ANONYMOUS memory, backed like Linux's shmem by an (unlinked) file, so a
    fork child and its parent see the same pages whenever either first touches them."""
    return proc.kernel.shmem_file(size, "/dev/zero (deleted)", "shared memory")


def _place(proc: Task, addr: int, size: int, flags: int, page_size: int) -> int:
    """Choose the start address: MAP_FIXED exactly, else the hint if free, else top-down."""
    if flags & (abi.MAP_FIXED | abi.MAP_FIXED_NOREPLACE):
        if addr % page_size:
            raise SyscallError(errno.EINVAL, f"MAP_FIXED address {addr:#x} is not aligned")
        if addr + size > USER_END or addr < PAGE_SIZE:
            raise SyscallError(errno.ENOMEM if addr else errno.EPERM, f"{addr:#x} is not a user address")
        if flags & abi.MAP_FIXED_NOREPLACE and not proc.space.regions.is_free(addr, addr + size):
            raise SyscallError(errno.EEXIST, f"{addr:#x} is already mapped")
        return addr
    hint = align_up(addr, page_size)
    start = proc.space.find_free_vma_range(hint, size // page_size, page_size)
    if start is None:
        raise SyscallError(errno.ENOMEM, "no free range large enough")
    return start


@syscall("munmap", "addr length")
def sys_munmap(proc: Task, addr: int, length: int) -> int:
    """Remove mappings in [addr, addr + length); unmapped holes are not an error.
    Shared file mappings are written back first; pages the disk quota has no room for are
    lost without an error (only msync and fsync report writeback errors)."""
    if addr % PAGE_SIZE or length == 0 or addr + page_up(length) > USER_END:
        raise SyscallError(errno.EINVAL, "unaligned address, zero length or beyond user space")
    for region in proc.space.unmap_range(addr, length):
        writeback(proc.space, region, region.start, region.end)
    proc.kernel.trim_page_cache()
    return 0


@syscall("mprotect", "addr length prot")
def sys_mprotect(proc: Task, addr: int, length: int, prot: int) -> int:
    """Change protection of [addr, addr + length); ENOMEM if part of it is unmapped."""
    prot = to_int32(prot)
    if addr % PAGE_SIZE or prot & ~(PROT_ALL | PROT_GROWSDOWN | PROT_GROWSUP):
        raise SyscallError(errno.EINVAL, "unaligned address or unknown prot bits")
    if length == 0:
        return 0
    if addr + page_up(length) > USER_END:
        raise SyscallError(errno.ENOMEM, "range beyond user space")
    proc.space.protect_range(addr, length, prot & PROT_ALL)
    return 0


MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
MADV_DONTNEED, MADV_FREE, MADV_REMOVE = 4, 8, 9
MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK = 10, 11, 18, 19
#: What each fork advice adds to and removes from the regions' flags.
_FORK_ADVICE = {MADV_DONTFORK: (RegionFlag.DONTFORK, RegionFlag.NONE),
                MADV_DOFORK: (RegionFlag.NONE, RegionFlag.DONTFORK),
                MADV_WIPEONFORK: (RegionFlag.WIPEONFORK, RegionFlag.NONE),
                MADV_KEEPONFORK: (RegionFlag.NONE, RegionFlag.WIPEONFORK)}
_KNOWN_ADVICE = {0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25}


@syscall("mremap", "old_address old_size new_size flags new_address")
def sys_mremap(proc: Task, old: int, old_size: int, new_size: int, flags: int, new_address: int) -> int:
    """Shrink in place, grow in place if the pages above are free, else move (MAYMOVE)."""
    flags = to_int32(flags)
    old_size, new_size = page_up(old_size), page_up(new_size)
    if old % PAGE_SIZE or not new_size or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED) or \
            (flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE):
        raise SyscallError(errno.EINVAL, "mremap arguments")
    space = proc.space
    region = space.find_region(old)
    if region is not None and region.page_size != PAGE_SIZE:
        old_size, new_size = _huge_sizes(region.page_size, old, old_size, new_size, new_address)
    if region is None or old + old_size > region.end or old_size == 0:
        raise SyscallError(errno.EFAULT, f"{old:#x}+{old_size:#x} is not one mapping")
    if flags & MREMAP_FIXED:
        if new_size > old_size:
            limits.check_growth(proc, new_size - old_size, limits.is_data(region.prot, region.shared, False))
        if new_address % PAGE_SIZE or new_address + new_size > USER_END or \
                max(old, new_address) < min(old + old_size, new_address + new_size):
            raise SyscallError(errno.EINVAL, "bad MREMAP_FIXED target")
        space.unmap_range(new_address, new_size)
        return _move(space, old, old_size, new_address, new_size)
    if new_size <= old_size:
        if new_size < old_size:
            space.unmap_range(old + new_size, old_size - new_size)
        return old
    limits.check_growth(proc, new_size - old_size, limits.is_data(region.prot, region.shared, False))
    end = old + old_size
    if end == region.end and end + new_size - old_size <= USER_END and \
            space.regions.is_free(end, old + new_size):
        space.regions.resize(region, region.start, old + new_size)
        return old
    if not flags & MREMAP_MAYMOVE:
        raise SyscallError(errno.ENOMEM, "cannot grow in place")
    target = space.find_free_vma_range(0, new_size // PAGE_SIZE)
    if target is None:
        raise SyscallError(errno.ENOMEM, "no room to move")
    return _move(space, old, old_size, target, new_size)


def _huge_sizes(page_size: int, old: int, old_size: int, new_size: int, new_address: int) -> tuple[int, int]:
    """The sizes of an mremap of a huge-page region, rounded up to its page size; EINVAL for
    what Linux's mremap refuses on hugetlb memory: an unaligned old or new address, and any
    growth (its huge-page reservation cannot be split)."""
    mask = page_size - 1
    old_size, new_size = align_up(old_size, page_size), align_up(new_size, page_size)
    if old & mask or new_address & mask or new_size > old_size:
        raise SyscallError(errno.EINVAL, f"mremap of {page_size >> 10} KiB pages: unaligned or growing")
    return old_size, new_size


def _move(space, old: int, old_size: int, new: int, new_size: int) -> int:
    if new_size < old_size:
        space.unmap_range(old + new_size, old_size - new_size)
        old_size = new_size
    space.move_range(old, old_size, new, new_size)
    return new


@syscall("madvise", "addr length advice")
def sys_madvise(proc: Task, addr: int, length: int, advice: int) -> int:
    """MADV_DONTNEED/FREE/REMOVE drop pages (zero or file contents on next touch);
    DONTFORK/DOFORK/WIPEONFORK/KEEPONFORK decide what a fork's child gets; other advice is
    accepted and changes nothing, as hints may."""
    advice = to_int32(advice)
    if addr % PAGE_SIZE or advice not in _KNOWN_ADVICE or addr + page_up(length) > USER_END:
        raise SyscallError(errno.EINVAL, "madvise arguments")
    if length and advice in (MADV_DONTNEED, MADV_FREE, MADV_REMOVE):
        proc.space.discard_pages(addr, length)
    elif length and advice in _FORK_ADVICE:
        proc.space.set_fork_advice(addr, length, *_FORK_ADVICE[advice])
    return 0


#: Pages mincore reports per copy-out: Linux fills one kernel page of the vector at a time.
MINCORE_CHUNK_PAGES = PAGE_SIZE


@syscall("mincore", "addr length vec")
def sys_mincore(proc: Task, addr: int, length: int, vec: int) -> int:
    """One byte per page: 1 if it is resident (mapped) now.

    As Linux: the vector is filled one chunk at a time, each inside one region, so a hole
    (ENOMEM) or a bad vector (EFAULT) ends the call where it is met, earlier chunks written.
    The host never holds more than one chunk, however large the range.
    """
    if addr % PAGE_SIZE:
        raise SyscallError(errno.EINVAL, "unaligned address")
    if length >= USER_END or addr + page_up(length) > USER_END:
        raise SyscallError(errno.ENOMEM, "beyond user space")
    end = addr + page_up(length)
    if vec + ((end - addr) >> PAGE_SHIFT) > USER_END:
        raise SyscallError(errno.EFAULT, "the vector is outside user space")
    space = proc.space
    while addr < end:
        region = space.find_region(addr)
        if region is None:
            raise SyscallError(errno.ENOMEM, f"{addr:#x} is not mapped")
        chunk_end = min(end, region.end, addr + MINCORE_CHUNK_PAGES * PAGE_SIZE)
        copy_out(space, vec, _residency(space, addr, chunk_end))
        vec += (chunk_end - addr) >> PAGE_SHIFT
        addr = chunk_end
    return 0


def _residency(space: AddressSpace, start: int, end: int) -> bytearray:
    """mincore's bytes for the pages of [start, end): 1 for each page a present leaf maps
    (every 4 KiB page of a 2 MiB one), from the leaves alone."""
    out = bytearray((end - start) >> PAGE_SHIFT)
    for va, m in space.pagetable.iter_leaves(start, end):
        first, last = max(va, start), min(va + m.size, end)
        out[(first - start) >> PAGE_SHIFT : (last - start) >> PAGE_SHIFT] = b"\x01" * ((last - first) >> PAGE_SHIFT)
    return out


@syscall("msync", "addr length flags")
def sys_msync(proc: Task, addr: int, length: int, flags: int) -> int:
    """Write shared file mappings in the range back to their files; ENOSPC (after storing
    all it could) if the disk quota left pages out, as Linux reports a writeback error."""
    flags = to_int32(flags)
    if addr % PAGE_SIZE or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or \
            (flags & MS_ASYNC and flags & MS_SYNC):
        raise SyscallError(errno.EINVAL, "msync arguments")
    end = addr + page_up(length)
    proc.space.require_covered(addr, end)
    lost = 0
    for region in proc.space.regions.overlapping(addr, end):
        lost = writeback(proc.space, region, max(addr, region.start), min(end, region.end)) or lost
    if lost:
        raise SyscallError(lost, "pages of the range could not be stored")
    return 0


def writeback(space: AddressSpace, region: Region, start: int, end: int) -> int:
    """Store a shared file region's pages in [start, end) of `space` into its file; the
    errno of pages that could not be stored (ENOSPC past the disk quota), else 0."""
    if region.shared and isinstance(region.file, CachedFile):
        first = (region.offset + start - region.start) >> PAGE_SHIFT
        last = (region.offset + end - 1 - region.start) >> PAGE_SHIFT
        return region.file.writeback(space.mem, first, last)
    return 0
