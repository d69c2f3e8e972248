"""Copy-in and copy-out of guest virtual memory on behalf of system calls.

Like Linux's `copy_from_user`/`copy_to_user`, every access goes through this address space's
page tables and faults missing pages in through the same ladder the CPU's faults take (so a
`read()` into fresh bss is one demand fault, and a write into a copy-on-write page copies it).
Any address the guest could not touch itself (unmapped, kernel half, non-canonical, wrong
protection) raises `SyscallError(EFAULT)`: the host never follows a wild guest pointer.

A software TLB keeps the walks of recently copied 4 KiB pages (issue 17: the walk and its
checks were half the cost of a 1-byte read). A cached walk names its page table's `shape`
(a value unique to one page table, replaced whenever it frees a table) and its leaf entry's
slot and value. While the shape is the same, the walk still ends at that slot (tables and
leaves are only ever added into empty slots); re-reading the leaf then sees every change of
it (munmap, mprotect, copy-on-write, fork's write protection, MADV_DONTNEED, the CPU's
accessed and dirty bits), whoever made it, the C fault path included. Nothing is flushed:
a stale walk is simply never used.
"""

from __future__ import annotations

import errno

from sandbox.errors import GuestFault, SyscallError
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE, USER_END
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagetable import (
    PD_SHIFT,
    PDPT_SHIFT,
    PML4_SHIFT,
    PT_SHIFT,
    PTE_ADDR_MASK,
    PTE_HUGE,
    PTE_NX,
    PTE_PRESENT,
    PTE_USER,
    PTE_WRITABLE,
)
from sandbox.mm.vma import PROT_EXEC, Access

ACCESS_READ, ACCESS_WRITE = int(Access.READ), int(Access.WRITE)  # IntFlag arithmetic costs ~0.6 us
PAGE_MASK = PAGE_SIZE - 1
INDEX_MASK = 511
#: The leaf bits a copy needs: a user page for reading, a writable user page for writing.
NEED_READ = PTE_PRESENT | PTE_USER
NEED_WRITE = PTE_PRESENT | PTE_USER | PTE_WRITABLE
#: Pages the software TLB holds (about 150 bytes of host memory each); when full it starts over.
TLB_PAGES = 1024

#: vpn -> (shape, slot, entry, pa): the walk of the page `vpn << 12` in the page table whose
#: `shape` it was: the word index of its leaf entry (into `PhysicalMemory.words`), that
#: entry, and the page's physical address. Only 4 KiB pages.
_tlb: dict[int, tuple[int, int, int, int]] = {}


def _check_span(va: int, n: int) -> None:
    """EFAULT unless `[va, va + n)` lies in the user half."""
    if n < 0 or va < 0 or va + n > USER_END:
        raise SyscallError(errno.EFAULT, f"{va:#x}+{n} is outside user space")


def access_ok(va: int, n: int) -> None:
    """EFAULT unless `[va, va + n)` lies in the user half: what Linux checks of a buffer
    before a transfer (access_ok), whatever part of it the call then touches."""
    if n < 0 or va < 0 or va + n > USER_END:
        raise SyscallError(errno.EFAULT, f"{va:#x}+{n} is outside user space")


def _cached(space: AddressSpace, vpn: int, need: int) -> tuple[int, int, int, int] | None:
    """The TLB's walk of page `vpn` if it is still the walk of `space`'s tables and its leaf
    has the bits `need`; else None."""
    hit = _tlb.get(vpn)
    if hit is None:
        return None
    shape, slot, entry, _ = hit
    if entry & need != need or shape != space.pagetable.shape or space.mem.words[slot] != entry:
        return None
    return hit


def _walk(space: AddressSpace, vpn: int) -> tuple[int, int, int, int] | None:
    """Walk page `vpn` through `space`'s tables into the TLB; the walk, or None if it meets
    a not-present entry or a large page (those are not cached)."""
    words, pagetable = space.mem.words, space.pagetable
    table, va = pagetable.root, vpn << PAGE_SHIFT
    for shift in (PML4_SHIFT, PDPT_SHIFT, PD_SHIFT, PT_SHIFT):
        slot = (table >> 3) + ((va >> shift) & INDEX_MASK)
        entry = words[slot]
        if not entry & PTE_PRESENT or (shift != PT_SHIFT and entry & PTE_HUGE):  # bit 7 in a PT is PAT
            return None
        table = entry & PTE_ADDR_MASK
    if len(_tlb) >= TLB_PAGES:
        _tlb.clear()
    _tlb[vpn] = hit = (pagetable.shape, slot, entry, table)
    return hit


def user_pa(space: AddressSpace, va: int, access: int) -> tuple[int, int]:
    """Physical address of user byte `va` for `access` (Access.READ or WRITE, as an int or
    not), faulting the page in if needed.

    Returns (pa, bytes left in that page). Raises SyscallError(EFAULT).
    """
    need = NEED_WRITE if access & ACCESS_WRITE else NEED_READ
    hit = _cached(space, va >> PAGE_SHIFT, need)
    if hit is None:
        hit = _walk(space, va >> PAGE_SHIFT)
        if hit is None or hit[2] & need != need:
            return _user_pa_slow(space, va, access, need)
    offset = va & PAGE_MASK
    return hit[3] | offset, PAGE_SIZE - offset


def _user_pa_slow(space: AddressSpace, va: int, access: int, need: int) -> tuple[int, int]:
    """user_pa past the TLB: a fault for a page not mapped as `need` asks; large pages."""
    m = space.pagetable.lookup(va)
    if m is None or m.entry & need != need:
        try:
            space.handle_page_fault(va, access)
        except GuestFault as fault:
            raise SyscallError(errno.EFAULT, f"{va:#x}: {fault.why}") from None
        if m is None or m.size == PAGE_SIZE:
            hit = _walk(space, va >> PAGE_SHIFT)
            if hit is not None and hit[2] & need == need:
                offset = va & PAGE_MASK
                return hit[3] | offset, PAGE_SIZE - offset
        m = space.pagetable.lookup(va)
        if m is None:
            raise SyscallError(errno.EFAULT, f"{va:#x}: not mapped after its fault")
    offset = va & (m.size - 1)
    return m.pa + offset, m.size - offset


def copy_in(space: AddressSpace, va: int, n: int) -> bytes:
    """Read `n` bytes of guest memory at `va`."""
    hit = _tlb.get(va >> PAGE_SHIFT)
    if hit is not None and 0 < n <= PAGE_SIZE - (va & PAGE_MASK):  # one page: `_cached`, inline
        shape, slot, entry, pa = hit
        mem = space.mem
        if entry & NEED_READ == NEED_READ and shape == space.pagetable.shape and mem.words[slot] == entry:
            pa |= va & PAGE_MASK
            return mem.buffer[pa : pa + n]  # (the mmap's slice is bytes: no view to copy)
    _check_span(va, n)
    if n == 0:
        return b""
    ram = space.mem.buffer
    parts = []
    while n > 0:
        pa, room = user_pa(space, va, ACCESS_READ)
        take = min(room, n)
        parts.append(ram[pa : pa + take])
        va += take
        n -= take
    return parts[0] if len(parts) == 1 else b"".join(parts)


def copy_out(space: AddressSpace, va: int, data: bytes | bytearray | memoryview, partial: bool = False) -> int:
    """Write `data` into guest memory at `va`; the bytes written. With `partial`, a page that
    cannot be written after the first ends the copy short (the count so far), as Linux's
    copy_to_user and clear_user report it to read_iter_zero; else, or on the first page, it
    is EFAULT. Writing into an executable region (a JIT's buffer, say) makes the CPU's
    translated code stale (Mmu.code_changed); a cached page knows it by its leaf's NX bit,
    which mprotect keeps equal to the region's PROT_EXEC."""
    n = len(data)
    hit = _tlb.get(va >> PAGE_SHIFT)
    if hit is not None and 0 < n <= PAGE_SIZE - (va & PAGE_MASK):  # one page: `_cached`, inline
        shape, slot, entry, pa = hit
        mem = space.mem
        if entry & NEED_WRITE == NEED_WRITE and shape == space.pagetable.shape and mem.words[slot] == entry:
            if not entry & PTE_NX:
                space.mmu.code_changed((pa >> PAGE_SHIFT,))
            pa |= va & PAGE_MASK
            mem.buffer[pa : pa + n] = data  # (the mmap's slice assignment: cheaper than a view's)
            return n
    _check_span(va, n)
    if any(region.prot & PROT_EXEC for region in space.regions.overlapping(va, va + n)):
        space.mmu.code_changed()  # e.g. read() into a JIT's buffer: translated code goes stale
    ram = space.mem.buffer
    view = memoryview(data)
    done = 0
    while done < n:
        try:
            pa, room = user_pa(space, va + done, ACCESS_WRITE)
        except SyscallError:
            if partial and done:
                return done
            raise
        take = min(room, n - done)
        ram[pa : pa + take] = view[done : done + take]
        done += take
    return n


def read_cstring(space: AddressSpace, va: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string at `va` (without the NUL); ENAMETOOLONG past `limit` bytes.
    No byte past the string's `limit + 1` is read (strncpy_from_user): a string that runs
    on into an unmapped page is too long, not a fault, when its bytes up to there are."""
    _check_span(va, 1)
    ram = space.mem.buffer
    parts, got = [], 0
    while got <= limit:
        pa, room = user_pa(space, va, ACCESS_READ)
        room = min(room, limit + 1 - got)
        end = ram.find(b"\0", pa, pa + room)
        if end >= 0:
            parts.append(ram[pa:end])
            return parts[0] if len(parts) == 1 else b"".join(parts)
        parts.append(ram[pa : pa + room])
        got += room
        va += room
        _check_span(va, 1)
    raise SyscallError(errno.ENAMETOOLONG, f"string at {va:#x} is longer than {limit}")
