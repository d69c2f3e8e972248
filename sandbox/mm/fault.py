"""The page-fault ladder, modelled on Linux `handle_mm_fault` / `handle_pte_fault`.

A fault is decoded once (address + access kind) and walks these cases in order:

1. no region contains the address  -> grow a stack just above it, or SIGSEGV (SEGV_MAPERR)
2. the region forbids the access    -> SIGSEGV (SEGV_ACCERR)
3. no page is mapped                -> demand-zero or file fill: allocate, fill, map
4. write to a read-only private page -> copy-on-write (copy, or reuse if sole owner)
5. otherwise the entry already allows it -> a stale TLB entry: flush ("spurious")

Each handled fault returns a `FaultRecord` that tracing and statistics read. This is the
hottest Python path in the sandbox: one page walk per fault (which also builds missing
tables), access kinds as plain ints, no allocation beyond the record.

`demand_zero_fault` is case 3 alone, for the kernel's #PF hook: the first touch of a page of
anonymous memory is nearly every fault a program takes, and without a record, policy or
listener to serve it costs half as much Python (bench/RESULTS.md). The machine's exception
hook in C (sandbox/native/faultpath.c) handles the same case before Python is called, with
the same tests (in another order: none changes anything) and the same changes (the entry
with `LEAF_FLAGS`, the table's live count, the "demand-zero" count, a frame counted in use):
a change to one of the two is a change to both.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, NamedTuple

from sandbox.abi import BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, STACK_GUARD_GAP
from sandbox.errors import GuestFault, OutOfMemory
from sandbox.mm import HUGE_PAGE_SIZE, PAGE_SHIFT, PAGE_SIZE, page_down
from sandbox.mm.frames import HUGE_ORDER
from sandbox.mm.pagecache import CachedFile
from sandbox.mm.pagetable import (
    ENTRIES_PER_TABLE,
    LEAF_SHIFT,
    PTE_ADDR_MASK,
    PTE_HUGE,
    PTE_PRESENT,
    PTE_WRITABLE,
    Mapping,
    user_pte_flags,
)
from sandbox.mm.vma import PROT_WRITE, Access, Region, RegionFlag, prot_allows

if TYPE_CHECKING:
    from sandbox.mm.aspace import AddressSpace

DEMAND_ZERO = "demand-zero"
FILE = "file"
COPY_ON_WRITE = "copy-on-write"
WRITE_REUSE = "cow-reuse"
SPURIOUS = "spurious"
#: Not a fault: pages a fault mapped beside its own (fault-around), counted for --stats.
MAPPED_AROUND = "mapped-around"


def faults_taken(counts: dict[str, int]) -> int:
    """The faults in a `fault_counts` tally, without the pages mapped around them."""
    return sum(n for kind, n in counts.items() if kind != MAPPED_AROUND)


class FaultRecord(NamedTuple):
    """What one handled fault did: for `--trace-faults`, `--stats` and fault policies."""

    kind: str
    va: int
    access: int  # Access bits
    region: Region
    pfn: int
    tables_created: int
    stack_grown: bool = False
    old_entry: int = 0  # the leaf entry before the fault (0: not present)
    new_entry: int = 0  # and after it
    around: int = 0  # neighbouring pages a fault-around policy mapped too

    @property
    def access_name(self) -> str:
        """'read', 'write' or 'exec'."""
        return (Access(self.access).name or "read").lower()


#: Leaf-entry flags for each protection (PROT_READ | PROT_WRITE | PROT_EXEC: 3 bits).
LEAF_FLAGS = tuple(user_pte_flags(prot) for prot in range(8))


def demand_zero_fault(space: AddressSpace, va: int, access: int) -> bool:
    """Map a zeroed frame for a first touch of anonymous 4 KiB memory and return True, if
    that is all this fault is: a region allows the access, its leaf table exists, the entry
    is empty, and no policy or listener wants to see the fault. Otherwise change nothing and
    return False: `handle_page_fault` decides. May raise `OutOfMemory`, with nothing mapped.
    """
    if space.fault_policies or space.on_fault is not None:
        return False
    region = space.regions.find(va)
    if region is None or region.file is not None or region.page_size != PAGE_SIZE \
            or not prot_allows(region.prot, access):
        return False
    pagetable = space.pagetable
    slot = pagetable.walk(va)
    if slot is None or pagetable.mem.words[slot >> 3]:
        return False
    pagetable.fill_slot(slot, (space.frames.alloc() << PAGE_SHIFT) | LEAF_FLAGS[region.prot])
    space.fault_counts[DEMAND_ZERO] += 1
    return True


def handle_page_fault(space: AddressSpace, va: int, access: int) -> FaultRecord:
    """Resolve a fault at `va`, or raise `GuestFault`. May raise `OutOfMemory`."""
    region = space.regions.find(va)
    grown = False
    if region is None:
        region = grow_stack(space, va)
        grown = True
    if not prot_allows(region.prot, access):
        raise GuestFault(signal.SIGSEGV, SEGV_ACCERR, va, f"{Access(access).name.lower()} not allowed")
    pagetable = space.pagetable
    tables = len(pagetable.live)
    try:
        slot = pagetable.walk(va, LEAF_SHIFT[region.page_size], create=True)
    except BaseException:
        pagetable.prune(va)
        raise
    entry = pagetable.mem.words[slot >> 3]
    around = 0
    if not entry & PTE_PRESENT:
        decision = consult_policies(space, region, va, access) if space.fault_policies else None
        if decision is not None:
            kind, pfn, around, region, slot = apply_decision(space, region, va, access, slot, decision)
        elif isinstance(region.file, CachedFile):
            kind, pfn, around = fault_file_page(space, region, va, slot, access)
        else:
            kind, pfn = fault_in_page(space, region, va, slot)
    elif access & PROT_WRITE and not entry & PTE_WRITABLE:
        kind, pfn = copy_on_write(space, region, pagetable.lookup(va), va)
    else:
        space.mmu.flush_tlb()
        kind, pfn = SPURIOUS, (entry & PTE_ADDR_MASK) >> PAGE_SHIFT
    space.fault_counts[kind] += 1
    new_entry = pagetable.mem.words[slot >> 3]
    record = FaultRecord(kind, va, access, region, pfn, len(pagetable.live) - tables, grown, entry, new_entry, around)
    if space.on_fault is not None:
        space.on_fault(record)
    return record


def consult_policies(space: AddressSpace, region: Region, va: int, access: int):
    """The first decision a registered fault policy makes about this not-present page."""
    from sandbox.mm.policy import FaultContext, access_name  # only runs with policies need it

    context = FaultContext(space.owner_pid, va, access_name(access), region, space)
    for policy in space.fault_policies:
        decision = policy(context)
        if decision is not None:
            return decision
    return None


def apply_decision(space: AddressSpace, region: Region, va: int, access: int, slot: int, decision):
    """Carry out a policy's decision; returns (kind, pfn, pages mapped around, region, slot)."""
    from sandbox.mm.policy import Deny, FaultAround, HugePage, Supply

    if isinstance(decision, Deny):
        space.pagetable.prune(va)
        raise GuestFault(signal.SIGSEGV, SEGV_ACCERR, va, decision.reason)
    if isinstance(decision, HugePage):
        huge = make_huge(space, region, va)
        if huge is not None:
            space.pagetable.prune(va)
            slot = space.pagetable.walk(va, LEAF_SHIFT[HUGE_PAGE_SIZE], create=True)
            kind, pfn = fault_in_page(space, huge, va, slot)
            return "huge-page", pfn, 0, huge, slot
        decision = None
    if isinstance(decision, Supply):
        pfn = space.frames.alloc()
        space.mem.write(pfn << PAGE_SHIFT, decision.data[:PAGE_SIZE])
        space.pagetable.fill_slot(slot, (pfn << PAGE_SHIFT) | user_pte_flags(region.prot))
        return "supplied", pfn, 0, region, slot
    kind, pfn = fault_in_page(space, region, va, slot)
    around = fault_around(space, region, va, decision.pages) if isinstance(decision, FaultAround) else 0
    return kind, pfn, around, region, slot


def fault_around(space: AddressSpace, region: Region, va: int, pages: int) -> int:
    """Map up to `pages` pages after `va`'s that are not mapped yet, inside the region and
    inside `va`'s leaf table (whose consecutive slots are filled directly, one walk for all).
    A 2 MiB-page region has no neighbouring 4 KiB slots: nothing to do."""
    if region.page_size != PAGE_SIZE:
        return 0
    start = (va & ~(PAGE_SIZE - 1)) + PAGE_SIZE
    end = min(region.end, start + pages * PAGE_SIZE, (va & ~(HUGE_PAGE_SIZE - 1)) + HUGE_PAGE_SIZE)
    if start >= end:
        return 0
    pagetable = space.pagetable
    words = pagetable.mem.words
    first = pagetable.walk(start, LEAF_SHIFT[PAGE_SIZE], create=True)
    flags = user_pte_flags(region.prot)
    file_size = region.file.size if isinstance(region.file, CachedFile) else 0
    done = 0
    for index, page in enumerate(range(start, end, PAGE_SIZE)):
        slot = first + 8 * index
        if words[slot >> 3] & PTE_PRESENT:
            continue
        if isinstance(region.file, CachedFile):
            fault_cached_page(space, region, page, slot, Access.READ, file_size)
        elif region.file is not None:
            fault_in_page(space, region, page, slot)
        else:  # anonymous: a zero frame, mapped in place
            pagetable.fill_slot(slot, (space.frames.alloc() << PAGE_SHIFT) | flags)
        done += 1
    space.fault_counts[MAPPED_AROUND] += done
    return done


def make_huge(space: AddressSpace, region: Region, va: int) -> Region | None:
    """Carve the 2 MiB block around `va` out of a 4 KiB region as a 2 MiB-page region, if
    the block lies inside the region and nothing in it is mapped; else None."""
    block = va & ~(HUGE_PAGE_SIZE - 1)
    if region.page_size != PAGE_SIZE or block < region.start or block + HUGE_PAGE_SIZE > region.end:
        return None
    if any(True for _ in space.pagetable.iter_leaves(block, block + HUGE_PAGE_SIZE)) or region.file is not None:
        return None
    space.regions.split_at(block)
    space.regions.split_at(block + HUGE_PAGE_SIZE)
    middle = space.regions.find(block)
    huge = middle.replaced(page_size=HUGE_PAGE_SIZE)
    space.regions.replace(middle, huge)
    return huge


def grow_stack(space: AddressSpace, va: int) -> Region:
    """Extend the grows-down region just above `va` down to cover it (Linux `expand_stack`).

    Refused (SIGSEGV, SEGV_MAPERR) when no stack is above, when the stack would pass its
    limit (RLIMIT_STACK, read through the space's `stack_limit`), or when it would come
    within the guard gap of the region below.
    """
    above = space.regions.next_after(va)
    if above is None or not above.flags & RegionFlag.GROWSDOWN:
        raise GuestFault(signal.SIGSEGV, SEGV_MAPERR, va, "no mapping")
    new_start = page_down(va)
    below = space.regions.prev_before(va)
    if above.end - new_start > space.stack_limit():
        raise GuestFault(signal.SIGSEGV, SEGV_MAPERR, va, "stack limit reached")
    if below is not None and new_start - below.end < STACK_GUARD_GAP:
        raise GuestFault(signal.SIGSEGV, SEGV_MAPERR, va, "stack guard gap")
    return space.regions.resize(above, new_start, above.end)


def fault_in_page(space: AddressSpace, region: Region, va: int, slot: int | None = None) -> tuple[str, int]:
    """Map a fresh frame for the page of `va`: zeroed, or filled from the region's file.

    `slot` is the empty leaf entry if the caller already walked to it. On failure nothing
    stays mapped and empty tables are pruned.
    """
    size = region.page_size
    page_va = va & ~(size - 1)
    pagetable = space.pagetable
    from_file = region.file is not None and page_va < region.file_end
    try:
        if from_file and region.offset + (page_va - region.start) >= region.file.size:
            raise GuestFault(signal.SIGBUS, BUS_ADRERR, va, "past end of file")
        pfn = space.frames.alloc(HUGE_ORDER if size == HUGE_PAGE_SIZE else 0)
    except BaseException:
        pagetable.prune(page_va)
        raise
    if from_file:
        fill_from_file(space, region, page_va, pfn << PAGE_SHIFT, size)
    flags = user_pte_flags(region.prot)
    if slot is None:
        pagetable.map(page_va, pfn << PAGE_SHIFT, flags, size)
    else:
        pagetable.fill_slot(slot, (pfn << PAGE_SHIFT) | flags | (PTE_HUGE if size == HUGE_PAGE_SIZE else 0))
    return (FILE if from_file else DEMAND_ZERO), pfn


def fault_file_page(space: AddressSpace, region: Region, va: int, slot: int, access: int) -> tuple[str, int, int]:
    """A not-present page of a page-cache mapping; returns (kind, pfn, pages mapped around).

    A read fault first brings the page's fault-around window into the cache with one host
    read, then maps the page and the window's other pages (Linux's `do_fault_around`), so a
    sequential reader faults once per window. Write faults map (or copy) the one page.
    """
    size = region.file.size
    window = None if access & PROT_WRITE else _around_window(space, region, va, size)
    if window is not None:
        start, end, first_index = window
        try:
            region.file.fill(first_index, (end - start) >> PAGE_SHIFT, space.mem, space.frames)
        except OutOfMemory:  # fault-around is opportunistic: the page itself decides below
            pass
    kind, pfn = fault_cached_page(space, region, va, slot, access, size)
    return kind, pfn, (_map_window(space, region, va, slot, window) if window is not None else 0)


def fault_cached_page(space: AddressSpace, region: Region, va: int, slot: int, access: int,
                      file_size: int) -> tuple[str, int]:
    """Map the page-cache frame of a file mapping (Linux `do_read_fault` / `do_shared_fault`).

    Private mappings get it read-only, so the first write copies; a write fault on a
    private mapping copies at once (`do_cow_fault`). `file_size` is the file's size now.
    """
    page_va = va & ~(PAGE_SIZE - 1)
    offset = region.offset + (page_va - region.start)
    try:
        if offset >= file_size:
            raise GuestFault(signal.SIGBUS, BUS_ADRERR, va, "past end of file")
        pfn = region.file.frame(offset, space.mem, space.frames)
    except BaseException:
        space.pagetable.prune(page_va)
        raise
    space.pagetable.fill_slot(slot, (pfn << PAGE_SHIFT) | _cached_pte_flags(region))
    if access & PROT_WRITE and not region.shared:
        return copy_on_write(space, region, space.pagetable.lookup(va), va)
    return FILE, pfn


def _cached_pte_flags(region: Region) -> int:
    """Leaf flags for a page-cache frame: the region's, read-only in a private mapping."""
    flags = LEAF_FLAGS[region.prot]
    return flags if region.shared else flags & ~PTE_WRITABLE


def _around_window(space: AddressSpace, region: Region, va: int, file_size: int) -> tuple[int, int, int] | None:
    """(start, end, first file page) of the aligned fault-around window around `va`, inside
    the region, its leaf table and the file; None if it holds no page besides `va`'s.
    The window is `space.file_fault_around` pages rounded down to a power of two, at most
    one table, as Linux rounds fault_around_bytes. Only 4 KiB-page regions have one."""
    pages = min(space.file_fault_around, ENTRIES_PER_TABLE)
    if pages < 2 or region.page_size != PAGE_SIZE:
        return None
    window = (1 << (pages.bit_length() - 1)) * PAGE_SIZE
    file_pages = (file_size - region.offset + PAGE_SIZE - 1) >> PAGE_SHIFT  # from region.start
    start = max(va & ~(window - 1), region.start)
    end = min((va & ~(window - 1)) + window, region.end, region.start + (file_pages << PAGE_SHIFT))
    if end - start <= PAGE_SIZE:
        return None
    return start, end, (region.offset + (start - region.start)) >> PAGE_SHIFT


def _map_window(space: AddressSpace, region: Region, va: int, slot: int, window: tuple[int, int, int]) -> int:
    """Map the cached pages of `window` that are not mapped yet, beside `va`'s page (whose
    leaf entry is `slot`, in the PT that also holds the whole window: `_around_window` keeps
    it inside one PT, and `fill_slot` refuses any other level). Returns how many."""
    start, end, first_index = window
    page_va = va & ~(PAGE_SIZE - 1)
    flags = _cached_pte_flags(region)
    words, pagetable, pages = space.mem.words, space.pagetable, region.file.pages
    table = slot & ~(PAGE_SIZE - 1)
    done = 0
    for page in range(start, end, PAGE_SIZE):
        page_slot = table + (((page >> PAGE_SHIFT) & (ENTRIES_PER_TABLE - 1)) << 3)
        pfn = pages.get(first_index + ((page - start) >> PAGE_SHIFT))
        if page == page_va or words[page_slot >> 3] or pfn is None:
            continue
        space.frames.get(pfn)
        pagetable.fill_slot(page_slot, (pfn << PAGE_SHIFT) | flags)
        done += 1
    space.fault_counts[MAPPED_AROUND] += done
    return done


def fill_from_file(space: AddressSpace, region: Region, page_va: int, pa: int, size: int) -> None:
    """Copy the file bytes that belong at `[page_va, page_va + size)` into the frame at `pa`.

    Bytes at or past `region.file_end` stay zero (an ELF segment's bss tail).
    """
    n = min(size, region.file_end - page_va)
    data = region.file.read(region.offset + (page_va - region.start), n)
    space.mem.write(pa, data)


def copy_on_write(space: AddressSpace, region: Region, m: Mapping, va: int | None = None) -> tuple[str, int]:
    """A write hit a read-only entry in a writable region: give the writer its own frame.

    If this space holds the only reference, write access is simply restored. With the
    faulting `va`, only that page's cached translations are dropped (`flush_tlb_page`);
    without, the whole TLB is.
    """
    old_pfn = m.pa >> PAGE_SHIFT
    if region.shared or space.frames.refcount(old_pfn) == 1:
        space.pagetable.set_entry(m.slot, m.entry | PTE_WRITABLE)
        return WRITE_REUSE, old_pfn
    new_pfn = space.frames.alloc(HUGE_ORDER if m.size == HUGE_PAGE_SIZE else 0)
    space.mem.copy(new_pfn << PAGE_SHIFT, m.pa, m.size)
    space.pagetable.set_entry(m.slot, (m.entry & ~m.pa) | (new_pfn << PAGE_SHIFT) | PTE_WRITABLE)
    space.frames.put(old_pfn)
    flush_tlb_page(space, va)
    return COPY_ON_WRITE, new_pfn


def flush_tlb_page(space: AddressSpace, va: int | None) -> None:
    """Drop the CPU's cached translation of `va`'s page (the stale read-only entry to the
    old frame, which a kernel copy_out would otherwise leave for the guest's next read) if
    `space` is the one the CPU runs, as Linux's flush_tlb_page does after a COW fault
    (mm/memory.c, wp_page_copy -> ptep_clear_flush): a full flush per COW fault cost a
    fork-heavy run 8% (issue 17). An Mmu with no per-page flush, or no `va`, flushes all."""
    mmu = space.mmu
    if mmu.cr3 != space.cr3:
        return  # another space's: its switch_to writes CR3, which flushes
    flush_page = getattr(mmu, "flush_tlb_page", None)
    if va is None or flush_page is None:
        mmu.flush_tlb()
    else:
        flush_page(va)
