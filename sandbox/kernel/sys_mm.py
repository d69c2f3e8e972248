"""Memory system calls: brk, mmap, munmap, mprotect (man 2 brk, mmap, mprotect).

Thin handlers: decode and check arguments the way Linux does (same errno for the same
mistake), convert (addr, length) to a half-open range once, then call the address space.
"""

from __future__ import annotations

import errno

from sandbox import abi
from sandbox.errors import SyscallError
from sandbox.kernel.process import Process
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.mm import HUGE_PAGE_SIZE, PAGE_SIZE, USER_END, align_up, page_up
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, RegionFlag, RegionKind

PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC
PROT_GROWSDOWN = 0x0100_0000
PROT_GROWSUP = 0x0200_0000


@syscall("brk", "addr")
def sys_brk(proc: Process, addr: int) -> int:
    """Move the program break; on any failure return the old one (Linux semantics)."""
    if addr < proc.brk_start or addr >= USER_END:
        return proc.brk
    old_end, new_end = page_up(proc.brk), page_up(addr)
    space = proc.space
    if new_end > old_end:
        if not space.regions.is_free(old_end, new_end):
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
def sys_mmap(proc: Process, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    """Anonymous mappings, private or shared, placed at a hint, fixed, or top-down."""
    prot, flags, fd = to_int32(prot), to_int32(flags), to_int32(fd)
    kind = flags & abi.MAP_TYPE
    if kind not in (abi.MAP_PRIVATE, abi.MAP_SHARED, abi.MAP_SHARED_VALIDATE) or length == 0:
        raise SyscallError(errno.EINVAL, "bad map type or zero length")
    if offset % PAGE_SIZE or prot & ~PROT_ALL & ~(PROT_GROWSDOWN | PROT_GROWSUP):
        raise SyscallError(errno.EINVAL, "unaligned offset or unknown prot bits")
    if not flags & abi.MAP_ANONYMOUS:
        proc.files.get(fd)  # EBADF for a closed fd
        raise SyscallError(errno.ENODEV, "file mappings are not supported yet")
    page_size = HUGE_PAGE_SIZE if flags & abi.MAP_HUGETLB else PAGE_SIZE
    size = align_up(length, page_size)
    if size > USER_END:
        raise SyscallError(errno.ENOMEM, "length exceeds user space")
    start = _place(proc, addr, size, flags, page_size)
    region_flags = RegionFlag.NONE
    if kind != abi.MAP_PRIVATE:
        region_flags |= RegionFlag.SHARED
    if flags & abi.MAP_GROWSDOWN:
        region_flags |= RegionFlag.GROWSDOWN
    if flags & (abi.MAP_FIXED | abi.MAP_FIXED_NOREPLACE):
        region_flags |= RegionFlag.FIXED
    proc.space.reserve_region(start, size // page_size, prot & PROT_ALL, flags=region_flags,
                              kind=RegionKind.MMAP, page_size=page_size)
    if flags & abi.MAP_POPULATE:
        proc.space.populate(start, start + size)
    return start


def _place(proc: Process, addr: int, size: int, flags: int, page_size: int) -> int:
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
def sys_munmap(proc: Process, addr: int, length: int) -> int:
    """Remove mappings in [addr, addr + length); unmapped holes are not an error."""
    if addr % PAGE_SIZE or length == 0 or addr + page_up(length) > USER_END:
        raise SyscallError(errno.EINVAL, "unaligned address, zero length or beyond user space")
    proc.space.unmap_range(addr, length)
    return 0


@syscall("mprotect", "addr length prot")
def sys_mprotect(proc: Process, addr: int, length: int, prot: int) -> int:
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
