"""`AddressSpace`: one process's regions and page tables, kept in step.

Joins the two reference APIs: the VMM's region map (overlap-checked and fixed inserts,
lookup, free-range search, coalescing, statistics, an ASID) and the x86-64 address space
(`reserve_region`, `map_region`, `map_shared_frames`, `unmap_range`, `protect_range`,
`translate`, `cr3`, `switch_to`, `clone_cow`, ...).

Invariants (checked by `check_invariants`): every present user leaf entry lies inside a
region whose protection it does not exceed; the region tree and page tables check their own.
A page is mapped only after a fault or an eager `map_region`; unmapping or narrowing any
mapping flushes the CPU's TLB before returning.

Guest-caused failures raise `SyscallError` (the syscall layer) or `GuestFault` (the fault
ladder in `fault.py`); `OutOfMemory` propagates from the frame allocator untouched.
"""

from __future__ import annotations

import errno
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from sandbox.abi import STACK_LIMIT
from sandbox.errors import GuestFault, InvariantError, SyscallError
from sandbox.mm import FILE_FAULT_AROUND_PAGES, KERNEL_BASE, PAGE_SHIFT, PAGE_SIZE, USER_END, page_up
from sandbox.mm.fault import fault_in_page, handle_page_fault
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.pagetable import (
    PTE_ADDR_MASK,
    PTE_HUGE,
    PTE_NX,
    PTE_USER,
    PTE_WRITABLE,
    PageTable,
    user_pte_flags,
)
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.vma import (  # noqa: F401 - Access and prot_allows re-exported
    PROT_ALL,
    PROT_NONE,
    Access,
    FileSource,
    Region,
    RegionFlag,
    RegionKind,
    RegionOverlap,
    VmaTree,
    prot_allows,
)

#: Where top-down mmap placement starts: Linux's mmap_base without randomization, TASK_SIZE
#: less the minimum 128 MiB gap it keeps for the stack (arch/x86/mm/mmap.c).
DEFAULT_MMAP_BASE = 0x7FFF_F7FF_F000
#: Lowest address mmap hands out without MAP_FIXED (Linux's default vm.mmap_min_addr).
MMAP_MIN_ADDR = 0x10000
#: Frames given back per call to the allocator when a range is unmapped: a 256 MiB region's
#: 65,536 frames would otherwise be listed, and set, all at once (megabytes of peak memory).
DROP_BATCH = 4096

_asids = itertools.count(1)


class Mmu(Protocol):
    """What an address space needs from the CPU it runs on."""

    def load_cr3(self, cr3: int) -> None:
        """Make `cr3` the active root (flushes the TLB)."""

    def flush_tlb(self) -> None:
        """Drop every cached translation."""

    @property
    def cr3(self) -> int:
        """The active root."""
        ...

    def code_changed(self, pfns: Iterable[int] | None = None) -> None:
        """Executable memory changed behind the CPU's back (in frames `pfns`, or None if
        not known): drop its translated code."""


class NoMmu:
    """An `Mmu` for address spaces not yet (or never) run on a CPU, e.g. in unit tests."""

    def __init__(self) -> None:
        self.cr3 = 0
        self.flushes = 0

    def load_cr3(self, cr3: int) -> None:
        self.cr3 = cr3
        self.flushes += 1

    def flush_tlb(self) -> None:
        self.flushes += 1

    def code_changed(self, pfns: Iterable[int] | None = None) -> None:
        """No translated code to forget without a CPU."""


#: Kept under the reference API's name; see pagetable.user_pte_flags.
pte_flags = user_pte_flags


class AddressSpace:
    """A PML4 with its regions. Build with `new_kernel` or `new_user`."""

    def __init__(self, mem: PhysicalMemory, frames: FrameAllocator, mmu: Mmu, kernel_root: int | None) -> None:
        self.mem = mem
        self.frames = frames
        self.mmu = mmu
        self.asid = next(_asids)
        self.pagetable = PageTable(mem, frames)
        if kernel_root is not None:
            self.pagetable.copy_kernel_half(kernel_root)
        self.is_kernel = kernel_root is None
        self.regions = VmaTree()
        self.mmap_base = DEFAULT_MMAP_BASE
        #: Pages faulted in, by kind name ("demand-zero", "file", "copy-on-write", ...).
        self.fault_counts: Counter[str] = Counter()
        #: Pages this space shared with its parent when forked (copy-on-write statistics).
        self.pages_shared_at_fork = 0
        #: The most regions this space may have (Linux's vm.max_map_count).
        self.max_regions = 65530
        #: Whether the machine as a whole may hold one more region (set by the kernel: each
        #: region is host memory, and many processes multiply the per-space limit).
        self.may_add_region: Callable[[], bool] = lambda: True
        #: Pages one read fault on a file mapping maps (fault-around; 1 turns it off).
        self.file_fault_around = FILE_FAULT_AROUND_PAGES
        #: Fault policies consulted on not-present faults (see policy.py), in order.
        self.fault_policies: list = []
        #: The pid faults are reported under (set by the kernel).
        self.owner_pid = 0
        #: How far the stack may grow, in bytes: RLIMIT_STACK's soft limit as the fault
        #: happens (set by the kernel; Linux's acct_stack_growth reads it then too).
        self.stack_limit: Callable[[], int] = lambda: STACK_LIMIT
        #: Called after each handled fault with its `FaultRecord` (tracing); None when off.
        self.on_fault: Callable[..., None] | None = None
        frames.spaces[self.cr3] = self  # the C fault path's way from CR3 to this space

    @classmethod
    def new_kernel(cls, mem: PhysicalMemory, frames: FrameAllocator, mmu: Mmu) -> AddressSpace:
        """The kernel address space: owns PML4 slots 256..511, shared by every user space."""
        return cls(mem, frames, mmu, None)

    @classmethod
    def new_user(cls, kernel: AddressSpace) -> AddressSpace:
        """A fresh user address space: an empty lower half and the kernel's upper half."""
        return cls(kernel.mem, kernel.frames, kernel.mmu, kernel.cr3)

    # -- identity ---------------------------------------------------------------------------

    @property
    def cr3(self) -> int:
        """Physical address of this space's PML4."""
        return self.pagetable.root

    def switch_to(self) -> None:
        """Make this the CPU's address space; skips the CR3 write (and flush) if it already is."""
        if self.mmu.cr3 != self.cr3:
            self.mmu.load_cr3(self.cr3)

    def flush_tlb(self) -> None:
        """Drop stale translations, if this space is the one the CPU is using."""
        if self.mmu.cr3 == self.cr3:
            self.mmu.flush_tlb()

    # -- regions ----------------------------------------------------------------------------

    def add_region(self, region: Region, fixed: bool = False) -> None:
        """Insert `region`; with `fixed`, replace (and unmap) whatever it overlaps.

        Raises SyscallError(EEXIST) when not `fixed` and the range is taken, ENOMEM when the
        range is outside the user half.
        """
        self._check_user_range(region.start, region.end)
        if len(self.regions) >= self.max_regions:
            raise SyscallError(errno.ENOMEM, f"map count limit of {self.max_regions} reached")
        if not self.may_add_region():
            raise SyscallError(errno.ENOMEM, "the sandbox's region limit is reached")
        if fixed:
            self.unmap_range(region.start, region.end - region.start)
        try:
            self.regions.insert(region)
        except RegionOverlap:
            raise SyscallError(errno.EEXIST, f"{region.start:#x} overlaps a mapping") from None

    def reserve_region(
        self,
        start: int,
        npages: int,
        prot: int,
        flags: RegionFlag = RegionFlag.NONE,
        kind: RegionKind = RegionKind.MMAP,
        page_size: int = PAGE_SIZE,
        file: FileSource | None = None,
        offset: int = 0,
        file_end: int | None = None,
        name: str = "",
        max_prot: int = PROT_ALL,
    ) -> Region:
        """Reserve `npages` pages at `start` for demand paging: no frame until a fault.
        `max_prot` bounds every later mprotect (see Region)."""
        end = start + npages * page_size
        region = Region(
            start, end, prot, flags, kind, page_size, file, offset,
            end if file_end is None else file_end, name, max_prot,
        )
        self.add_region(region, fixed=bool(flags & RegionFlag.FIXED))
        return region

    def map_region(self, start: int, npages: int, prot: int, **kw) -> Region:
        """Reserve a region and fault every page in now (eager mapping, zero-filled or from file)."""
        region = self.reserve_region(start, npages, prot, **kw)
        try:
            self.populate(region.start, region.end)
        except BaseException:
            self.unmap_range(region.start, region.size)
            raise
        return region

    def populate(self, start: int, end: int) -> None:
        """Fault in every page of `[start, end)` that is not mapped yet (MAP_POPULATE, an eager
        `map_region`). Walks the regions, a step of their page size each: holes cost nothing,
        and each step maps a frame or finds one mapped. As Linux's populate_vma_page_range,
        PROT_NONE regions are skipped and a region's pages past the end of its file are left
        unmapped (the failure is ignored; a touch gets SIGBUS)."""
        for region in self.regions.overlapping(start, end):
            if region.prot == PROT_NONE:
                continue
            step = region.page_size
            for va in range(max(start, region.start) & ~(step - 1), min(end, region.end), step):
                if self.pagetable.lookup(va) is not None:
                    continue
                try:
                    fault_in_page(self, region, va)
                except GuestFault:
                    break

    def map_shared_frames(
        self, start: int, pfns: Iterable[int], prot: int, kind: RegionKind = RegionKind.MMAP
    ) -> Region:
        """Map existing frames (taking a reference on each) as one MAP_SHARED region."""
        pfns = list(pfns)
        region = Region(start, start + len(pfns) * PAGE_SIZE, prot, RegionFlag.SHARED, kind)
        self.add_region(region)
        flags = pte_flags(prot)
        for i, pfn in enumerate(pfns):
            self.frames.get(pfn)
            self.pagetable.map(start + i * PAGE_SIZE, pfn << PAGE_SHIFT, flags)
        return region

    def region_by_start(self, start: int) -> Region | None:
        """The region that begins exactly at `start`."""
        return self.regions.by_start(start)

    def find_region(self, va: int) -> Region | None:
        """The region containing `va`."""
        return self.regions.find(va)

    def has_mapping_in_range(self, addr: int, length: int) -> bool:
        """True if any region overlaps `[addr, addr + length)`."""
        return bool(self.regions.overlapping(addr, addr + length))

    def any_mapped_in_range(self, addr: int, length: int) -> bool:
        """True if any page of `[addr, addr + length)` has a present translation."""
        return any(True for _ in self._leaves(addr, addr + length))

    def has_user_mappings(self) -> bool:
        """True if any user region or user page-table entry exists."""
        return len(self.regions) > 0 or self.pagetable.table_pages > 1

    def find_free_vma_range(self, hint: int, npages: int, page_size: int = PAGE_SIZE) -> int | None:
        """A free range of `npages` pages: at `hint` if free, else top-down below the mmap base."""
        size = npages * page_size
        if hint and hint % page_size == 0 and MMAP_MIN_ADDR <= hint and hint + size <= USER_END:
            if self.regions.is_free(hint, hint + size):
                return hint
        return self.regions.find_free(size, MMAP_MIN_ADDR, self.mmap_base, page_size)

    # -- unmapping and protection ------------------------------------------------------------

    def unmap_range(self, addr: int, length: int) -> list[Region]:
        """Remove `[addr, addr + length)` from regions and page tables; drop the frames.

        Returns the removed region pieces. Flushes the TLB if anything was mapped.
        """
        end = addr + page_up(length)
        self._require_page_aligned(addr, end)
        removed = self.regions.remove_range(addr, end)
        if self._unmap_pages(addr, end):
            self.flush_tlb()
        return removed

    def unmap_region(self, start: int, npages: int, page_size: int = PAGE_SIZE) -> list[Region]:
        """Unmap `npages` pages of `page_size` at `start` and free their frames."""
        return self.unmap_range(start, npages * page_size)

    def _unmap_pages(self, start: int, end: int) -> int:
        """Clear the leaf entries in `[start, end)`; return how many were present."""
        entries = []
        for va, m in list(self._leaves(start, end)):
            self.pagetable.unmap(va)
            entries.append(m.entry)
        self._drop_frames(entries)
        return len(entries)

    def _drop_frames(self, entries: list[int]) -> None:
        """Drop the references the leaf `entries` held; if a frame that held code was freed,
        the CPU's translations of it are stale (see Mmu.code_changed)."""
        code_freed: list[int] = []
        for first in range(0, len(entries), DROP_BATCH):  # in batches: no list of every frame
            batch = entries[first:first + DROP_BATCH]
            pfns = [(entry & PTE_ADDR_MASK) >> PAGE_SHIFT for entry in batch]
            freed = set(self.frames.put_many(pfns))
            code_freed += [pfn for entry, pfn in zip(batch, pfns, strict=True) if pfn in freed and not entry & PTE_NX]
        if code_freed:
            self.mmu.code_changed(code_freed)

    def protect_range(self, addr: int, length: int, prot: int) -> None:
        """Give `[addr, addr + length)` protection `prot`, in regions and present entries.

        Raises SyscallError(ENOMEM) if part of the range is not mapped, EACCES if `prot`
        exceeds what a region may get (its `max_prot`), whichever comes first in address
        order (Linux's mprotect walks the regions so); nothing changes then.
        """
        end = addr + page_up(length)
        cursor = addr
        for region in self.regions.overlapping(addr, end):
            if region.start > cursor:
                break
            if prot & ~region.max_prot:
                raise SyscallError(errno.EACCES, f"{region.start:#x} may not get protection {prot}")
            cursor = region.end
        self.require_covered(addr, end)
        self._require_page_aligned(addr, end)
        self.regions.split_at(addr)
        self.regions.split_at(end)
        for region in self.regions.overlapping(addr, end):
            self.regions.replace(region, region.replaced(prot=prot))
        self._reprotect_pages(addr, end, prot)
        self.regions.coalesce(addr, end)
        self.flush_tlb()

    def _reprotect_pages(self, start: int, end: int, prot: int) -> None:
        """Rewrite present leaf entries with `prot`, keeping copy-on-write pages read-only."""
        flags = pte_flags(prot)
        for va, m in self._leaves(start, end):
            region = self.regions.find(va)
            new = flags
            if new & PTE_WRITABLE and not region.shared and self.frames.refcount(m.pa >> PAGE_SHIFT) > 1:
                new &= ~PTE_WRITABLE
            keep = m.entry & ~(PTE_USER | PTE_WRITABLE | PTE_NX)
            self.pagetable.set_entry(m.slot, keep | new)

    def discard_pages(self, addr: int, length: int) -> None:
        """Drop the pages of `[addr, addr + length)` but keep the regions (MADV_DONTNEED):
        the next touch faults in zeros, or the file's contents again."""
        end = addr + page_up(length)
        self.require_covered(addr, end)
        if self._unmap_pages(addr, end):
            self.flush_tlb()

    def set_fork_advice(self, addr: int, length: int, add: RegionFlag, remove: RegionFlag) -> None:
        """MADV_DONTFORK/DOFORK/WIPEONFORK/KEEPONFORK: what a fork's child gets of
        `[addr, addr + length)`. ENOMEM if part of it is unmapped; EINVAL for WIPEONFORK on
        anything but private anonymous memory (madvise_behavior_valid, as Linux's)."""
        end = addr + page_up(length)
        self.require_covered(addr, end)
        if add & RegionFlag.WIPEONFORK and any(r.shared or r.file is not None
                                               for r in self.regions.overlapping(addr, end)):
            raise SyscallError(errno.EINVAL, "MADV_WIPEONFORK needs private anonymous memory")
        self.regions.split_at(addr)
        self.regions.split_at(end)
        for region in self.regions.overlapping(addr, end):
            self.regions.replace(region, region.replaced(flags=(region.flags | add) & ~remove))
        self.regions.coalesce(addr, end)

    def move_range(self, old: int, old_size: int, new: int, new_size: int) -> None:
        """Move the mapping at `[old, old + old_size)` to `new` (mremap): the region piece
        and its present pages, frames untouched. Precondition: the target range is free and
        `new_size >= old_size`; pages beyond old_size arrive by faults later."""
        piece = self.regions.remove_range(old, old + old_size)[0]
        moved = piece.replaced(start=new, end=new + new_size, file_end=piece.file_end - old + new)
        self.regions.insert(moved)
        for va, m in list(self._leaves(old, old + old_size)):
            self.pagetable.unmap(va)
            self.pagetable.map(new + (va - old), m.pa, m.entry & ~(PTE_ADDR_MASK | PTE_HUGE), m.size)
        self.flush_tlb()

    def _require_page_aligned(self, start: int, end: int) -> None:
        """EINVAL if `[start, end)` would cut a huge-page region between its pages."""
        for region in self.regions.overlapping(start, end):
            mask = region.page_size - 1
            if (start > region.start and start & mask) or (end < region.end and end & mask):
                raise SyscallError(errno.EINVAL, f"{region.start:#x} is a {region.page_size >> 10} KiB-page region")

    def require_covered(self, start: int, end: int) -> None:
        """Raise ENOMEM unless regions cover `[start, end)` without a hole."""
        cursor = start
        for region in self.regions.overlapping(start, end):
            if region.start > cursor:
                break
            cursor = region.end
        if cursor < end:
            raise SyscallError(errno.ENOMEM, f"{cursor:#x} is not mapped")

    def unmap_all_user_regions(self) -> None:
        """Unmap every user region and free their frames; the kernel half is untouched."""
        self.regions.clear()
        self._drop_frames(self.pagetable.clear_user())
        self.flush_tlb()

    def destroy(self) -> None:
        """Free everything this space owns, its PML4 included. The object is dead after."""
        self.unmap_all_user_regions()
        if self.frames.spaces.get(self.cr3) is self:
            del self.frames.spaces[self.cr3]
        self.pagetable.release()

    # -- translation ------------------------------------------------------------------------

    def translate(self, va: int) -> int | None:
        """The physical address `va` maps to right now, or None."""
        return self.pagetable.translate(va)

    def _leaves(self, start: int, end: int):
        """(va, Mapping) for the present user leaves overlapping `[start, end)`."""
        return self.pagetable.iter_leaves(start, end)

    def handle_page_fault(self, va: int, access: Access):
        """Resolve a #PF at `va`; return a `FaultRecord` or raise `GuestFault`. See fault.py."""
        return handle_page_fault(self, va, access)

    # -- fork -------------------------------------------------------------------------------

    def clone_cow(self) -> AddressSpace:
        """A copy of this space sharing every frame: private writable pages become read-only
        in both, so the first write on either side copies (see fault.py's copy-on-write case).
        Tables are copied whole; each shared frame gains one reference."""
        child = AddressSpace.new_user_like(self)
        child.regions = self.regions.copy()
        leaves = self.pagetable.clone_into(child.pagetable, self._strip_on_fork)
        self.frames.get_many((entry & PTE_ADDR_MASK) >> PAGE_SHIFT for entry in leaves)
        child.pages_shared_at_fork = len(leaves)
        self.flush_tlb()
        for region in [r for r in self.regions if r.flags & (RegionFlag.DONTFORK | RegionFlag.WIPEONFORK)]:
            if region.flags & RegionFlag.DONTFORK:
                child.unmap_range(region.start, region.size)  # (dup_mmap skips VM_DONTCOPY)
            else:
                child.discard_pages(region.start, region.size)  # (VM_WIPEONFORK: empty in the child)
        return child

    def _strip_on_fork(self, lo: int, hi: int) -> bool | None:
        """Must the pages of [lo, hi) lose write access at fork? True if only private regions
        overlap it, False if only shared ones (or none), None if both do."""
        kinds = {region.shared for region in self.regions.overlapping(lo, hi)}
        if len(kinds) > 1:
            return None
        return not kinds.pop() if kinds else False

    @classmethod
    def new_user_like(cls, other: AddressSpace) -> AddressSpace:
        """An empty user space on the same RAM, kernel half and CPU as `other`."""
        kernel_root = None if other.is_kernel else other.cr3
        space = cls(other.mem, other.frames, other.mmu, kernel_root)
        space.mmap_base = other.mmap_base
        space.file_fault_around = other.file_fault_around
        return space

    # -- checks -----------------------------------------------------------------------------

    def _check_user_range(self, start: int, end: int) -> None:
        """Raise ENOMEM unless `[start, end)` lies in the user half."""
        if self.is_kernel:
            if start < KERNEL_BASE:
                raise SyscallError(errno.ENOMEM, "kernel mappings live in the upper half")
        elif not 0 <= start < end <= USER_END:
            raise SyscallError(errno.ENOMEM, f"[{start:#x}, {end:#x}) is outside user space")

    def check_invariants(self) -> None:
        """Regions and tables well-formed; every present user leaf inside a region it obeys."""
        self.regions.check_invariants()
        self.pagetable.check_invariants()
        for region in self.regions:
            if region.prot & ~region.max_prot:
                raise InvariantError(f"region {region.start:#x} has prot {region.prot} beyond {region.max_prot}")
        for va, m in self.pagetable.iter_leaves():
            region = self.regions.find(va)
            if region is None or va + m.size > region.end:
                raise InvariantError(f"page {va:#x} is mapped outside any region")
            allowed = pte_flags(region.prot)
            extra = (m.entry & (PTE_WRITABLE | PTE_USER)) & ~allowed
            if extra or (m.entry & PTE_NX) < (allowed & PTE_NX):
                raise InvariantError(f"page {va:#x} entry {m.entry:#x} exceeds region prot {region.prot}")
            if self.frames.refcount(m.pa >> PAGE_SHIFT) < 1:
                raise InvariantError(f"page {va:#x} maps free frame {m.pa:#x}")
