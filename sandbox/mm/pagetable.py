"""x86-64 4-level page tables (PML4 -> PDPT -> PD -> PT) written into guest-physical RAM.

These are the tables the emulated CPU's own MMU walks (Intel SDM vol. 3, ch. 4.5, "4-level
paging"). One `PageTable` owns the tables reachable from its root for the user half (PML4
slots 0..255); the kernel half (slots 256..511) is shared with the kernel address space and
never freed here.

Owns: the table frames it created, and a count of present entries per table so that a table
that becomes empty on unmap is freed at once (xv6 `uvmunmap` + `freewalk`, done eagerly).
Does not own: the leaf frames. `unmap` returns what was mapped; the caller drops the frame.

Containment: the tables are the guest's view of guest-physical RAM, so no user leaf may ever
point at a frame that is not the guest's (a table page of any address space, the GDT, the
trampoline, the kernel stack: the frames `FrameAllocator.alloc_kernel` marks), and a leaf
lives only at its own level (a 4 KiB page in a PT, a 2 MiB page with PS in a PD). Had a data
frame sat in a PD slot without PS, the CPU would walk the guest's bytes as a page table and
the guest would reach all of RAM. Every user leaf is written through `map`, `fill_slot` or
`set_entry`, which check both (a violation is a sandbox bug: `InvariantError`), and
`check_invariants` checks the whole tree.

Nothing here flushes the TLB: the address space batches one flush per operation.
"""

from __future__ import annotations

import itertools
from array import array

from sandbox.errors import InvariantError
from sandbox.mm import HUGE_PAGE_SIZE, KERNEL_BASE, PAGE_SHIFT, PAGE_SIZE, USER_END
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.vma import PROT_EXEC, PROT_NONE, PROT_WRITE

# Page-table entry bits, Intel SDM vol. 3 §4.5, tables 4-15 .. 4-20.
PTE_PRESENT = 1 << 0  # P: the entry maps something
PTE_WRITABLE = 1 << 1  # R/W: writes allowed (CR0.WP makes this bind at CPL 0 too)
PTE_USER = 1 << 2  # U/S: accessible at CPL 3
PTE_PWT = 1 << 3  # page-level write-through
PTE_PCD = 1 << 4  # page-level cache disable
PTE_ACCESSED = 1 << 5  # A: set by the CPU on any access
PTE_DIRTY = 1 << 6  # D: set by the CPU on a write (leaf entries only)
PTE_HUGE = 1 << 7  # PS: in a PD entry, maps a 2 MiB page; in a PDPT entry, 1 GiB
PTE_GLOBAL = 1 << 8  # G: survives CR3 reloads when CR4.PGE is set
PTE_NX = 1 << 63  # XD: no instruction fetch (needs EFER.NXE)
PTE_ADDR_MASK = 0x000F_FFFF_FFFF_F000  # bits 51:12, the next table's or the page's address
PTE_HUGE_ADDR_MASK = 0x000F_FFFF_FFE0_0000  # bits 51:21 of a 2 MiB page's address

ENTRIES_PER_TABLE = 512
PML4_SHIFT, PDPT_SHIFT, PD_SHIFT, PT_SHIFT = 39, 30, 21, 12
LEVEL_SHIFTS = (PML4_SHIFT, PDPT_SHIFT, PD_SHIFT, PT_SHIFT)
LEVEL_NAMES = {PML4_SHIFT: "PML4", PDPT_SHIFT: "PDPT", PD_SHIFT: "PD", PT_SHIFT: "PT"}
#: The leaf level for each supported page size.
LEAF_SHIFT = {PAGE_SIZE: PT_SHIFT, HUGE_PAGE_SIZE: PD_SHIFT}
KERNEL_PML4_FIRST = 256  # PML4 slots 256..511 map the kernel half

_TABLE_FLAGS_USER = PTE_PRESENT | PTE_WRITABLE | PTE_USER
_TABLE_FLAGS_KERNEL = PTE_PRESENT | PTE_WRITABLE
#: Values of `PageTable.shape`, unique across every page table of the process.
_SHAPES = itertools.count(1)


class Mapping:
    """A leaf translation found by `lookup`: its entry, where it lives, and its size."""

    __slots__ = ("slot", "entry", "size")

    def __init__(self, slot: int, entry: int, size: int) -> None:
        self.slot = slot  # physical address of the leaf entry
        self.entry = entry
        self.size = size  # PAGE_SIZE or HUGE_PAGE_SIZE

    @property
    def pa(self) -> int:
        """Physical address of the mapped page."""
        mask = PTE_HUGE_ADDR_MASK if self.size == HUGE_PAGE_SIZE else PTE_ADDR_MASK
        return self.entry & mask


class Level:
    """One step of a page walk, for printing: the table, the index used, the entry read."""

    __slots__ = ("name", "table", "index", "entry")

    def __init__(self, name: str, table: int, index: int, entry: int) -> None:
        self.name = name
        self.table = table
        self.index = index
        self.entry = entry


def user_pte_flags(prot: int) -> int:
    """Leaf-entry flags for a user page with protection `prot`.

    PROT_NONE keeps the page present but supervisor-only, so a CPL-3 access faults while
    the contents survive a later mprotect (Linux's _PAGE_PROTNONE plays the same role).
    """
    flags = PTE_PRESENT
    if prot != PROT_NONE:
        flags |= PTE_USER
    if prot & PROT_WRITE:
        flags |= PTE_WRITABLE
    if not prot & PROT_EXEC:
        flags |= PTE_NX
    return flags


def format_pte(entry: int) -> str:
    """Render an entry as its address and the names of its set bits."""
    if not entry & PTE_PRESENT:
        return f"{entry:#018x} (not present)"
    bits = [
        name
        for bit, name in (
            (PTE_WRITABLE, "RW"), (PTE_USER, "US"), (PTE_PWT, "PWT"), (PTE_PCD, "PCD"),
            (PTE_ACCESSED, "A"), (PTE_DIRTY, "D"), (PTE_HUGE, "PS"), (PTE_GLOBAL, "G"),
            (PTE_NX, "NX"),
        )
        if entry & bit
    ]
    return f"{entry & PTE_ADDR_MASK:#014x} P {' '.join(bits)}".rstrip()


class PageTable:
    """The 4-level tables of one address space, rooted at the PML4 frame `root`."""

    def __init__(self, mem: PhysicalMemory, frames: FrameAllocator, root: int | None = None) -> None:
        self.mem = mem
        self.frames = frames
        self._words = mem.words
        self.root = root if root is not None else frames.alloc_kernel() << PAGE_SHIFT
        #: Present entries per table this object created (root included).
        self.live: dict[int, int] = {self.root: 0}
        #: The level of each table in `live`: the shift of the address bits its index takes.
        self.level: dict[int, int] = {self.root: PML4_SHIFT}
        self._kernel_use = frames.kernel_use
        #: The last leaf table walked to: (va >> 21, its physical address). Consecutive
        #: faults share one PT for 512 pages; reset whenever any table is freed.
        self._last_pt: tuple[int, int] = (-1, 0)
        #: A new value (unique across page tables) whenever a table is freed; between two
        #: changes every walk that reached a present leaf still reaches the same slot (only
        #: empty slots get tables or leaves), so a cached walk needs only its leaf re-read
        #: (sandbox/mm/uaccess.py's software TLB).
        self.shape = next(_SHAPES)

    @property
    def table_pages(self) -> int:
        """Page-table frames owned here, root included."""
        return len(self.live)

    # -- walking ----------------------------------------------------------------------------

    def walk(self, va: int, leaf_shift: int = PT_SHIFT, create: bool = False) -> int | None:
        """Return the physical address of the entry for `va` at the level `leaf_shift`.

        With `create`, missing intermediate tables are allocated (may raise OutOfMemory;
        tables created before the failure stay, empty, and are freed by `prune`). Returns
        None when a table on the way is missing and `create` is false, or when a huge page
        already covers `va` above the requested level.
        """
        key, cached = self._last_pt
        if leaf_shift == PT_SHIFT and key == va >> PD_SHIFT:
            return cached + (((va >> PT_SHIFT) & 511) << 3)
        words = self._words
        table = self.root
        for shift in LEVEL_SHIFTS:
            slot = table + (((va >> shift) & 511) << 3)
            if shift == leaf_shift:
                if shift == PT_SHIFT:
                    self._last_pt = (va >> PD_SHIFT, table)
                return slot
            entry = words[slot >> 3]
            if not entry & PTE_PRESENT:
                if not create:
                    return None
                entry = self._new_table(table, slot, va, shift - 9)
            elif entry & PTE_HUGE:
                return None
            table = entry & PTE_ADDR_MASK
        raise InvariantError(f"bad leaf level {leaf_shift}")

    def _new_table(self, parent: int, slot: int, va: int, shift: int) -> int:
        """Allocate a zeroed table of level `shift` and link it from `slot` of `parent`;
        return the entry."""
        table = self.frames.alloc_kernel() << PAGE_SHIFT
        flags = _TABLE_FLAGS_KERNEL if va >= KERNEL_BASE else _TABLE_FLAGS_USER
        entry = table | flags
        self._words[slot >> 3] = entry
        self.live[table] = 0
        self.level[table] = shift
        self.live[parent] += 1
        return entry

    def lookup(self, va: int) -> Mapping | None:
        """The leaf mapping that translates `va` (4 KiB or 2 MiB), or None."""
        words = self._words
        table = self.root
        for shift in LEVEL_SHIFTS:
            slot = table + (((va >> shift) & 511) << 3)
            entry = words[slot >> 3]
            if not entry & PTE_PRESENT:
                return None
            if shift == PT_SHIFT or (shift == PD_SHIFT and entry & PTE_HUGE):
                return Mapping(slot, entry, 1 << shift)
            table = entry & PTE_ADDR_MASK
        return None

    def translate(self, va: int) -> int | None:
        """The physical address that `va` maps to, or None."""
        m = self.lookup(va)
        return None if m is None else m.pa | (va & (m.size - 1))

    def levels(self, va: int) -> list[Level]:
        """Each step of the walk for `va`, from the PML4 down to the leaf or the first hole."""
        out = []
        table = self.root
        for shift in LEVEL_SHIFTS:
            index = (va >> shift) & 511
            entry = self._words[(table >> 3) + index]
            out.append(Level(LEVEL_NAMES[shift], table, index, entry))
            if not entry & PTE_PRESENT or shift == PT_SHIFT or entry & PTE_HUGE:
                break
            table = entry & PTE_ADDR_MASK
        return out

    # -- changing ---------------------------------------------------------------------------

    def map(self, va: int, pa: int, flags: int, size: int = PAGE_SIZE) -> int:
        """Map the page at `va` to `pa` with `flags` (PTE_PRESENT implied); return the entry.

        Precondition: nothing maps `va` yet. May raise OutOfMemory while building tables.
        """
        leaf = LEAF_SHIFT[size]
        slot = self.walk(va, leaf, create=True)
        if slot is None or self._words[slot >> 3] & PTE_PRESENT:
            raise InvariantError(f"map: {va:#x} is already mapped")
        entry = pa | flags | PTE_PRESENT | (PTE_HUGE if leaf == PD_SHIFT else 0)
        table = slot & ~(PAGE_SIZE - 1)
        if va < KERNEL_BASE:  # the kernel half maps the kernel's own frames
            self._check_leaf(table, entry)
        self._words[slot >> 3] = entry
        self.live[table] += 1
        return entry

    def set_entry(self, slot: int, entry: int) -> None:
        """Rewrite a present user leaf entry in place (protection change, copy-on-write)."""
        self._guard_leaf(slot & ~(PAGE_SIZE - 1), entry)
        self._words[slot >> 3] = entry

    def fill_slot(self, slot: int, entry: int) -> None:
        """Make the empty user leaf `slot` (from `walk(..., create=True)`) present with `entry`."""
        table = slot & ~(PAGE_SIZE - 1)
        self._guard_leaf(table, entry)
        self._words[slot >> 3] = entry
        self.live[table] += 1

    def _guard_leaf(self, table: int, entry: int) -> None:
        """The cheap test of every user leaf written through a slot: a PT slot, a frame that
        is the guest's; anything else goes to the full `_check_leaf` (InvariantError)."""
        if self.level.get(table) != PT_SHIFT or self._kernel_use[(entry & PTE_ADDR_MASK) >> PAGE_SHIFT]:
            self._check_leaf(table, entry)

    def _check_leaf(self, table: int, entry: int) -> None:
        """Refuse a user leaf `entry` in `table` unless it is a 4 KiB page in a PT or a 2 MiB
        page (PS set) in a PD, of frames that are the guest's: never a table page or a frame
        of the kernel half. The fast paths above call this only when their one-lookup test
        fails; a refusal is a sandbox bug (the kernel must never try), never the guest's."""
        level = self.level.get(table)
        if level == PT_SHIFT:
            pfn, count = (entry & PTE_ADDR_MASK) >> PAGE_SHIFT, 1
        elif level == PD_SHIFT and entry & PTE_HUGE:
            pfn, count = (entry & PTE_HUGE_ADDR_MASK) >> PAGE_SHIFT, HUGE_PAGE_SIZE >> PAGE_SHIFT
        else:
            raise InvariantError(f"leaf {entry:#x} written into a {LEVEL_NAMES.get(level, 'foreign')} "
                                 f"table at {table:#x}")
        if self.frames.is_kernel(pfn, count):
            raise InvariantError(f"leaf {entry:#x} would map the kernel's frame {pfn:#x} into user space")

    def unmap(self, va: int) -> Mapping | None:
        """Clear the leaf mapping of `va` and free tables left empty; return what it was."""
        m = self.lookup(va)
        if m is None:
            return None
        self._words[m.slot >> 3] = 0
        self._drop_entry(m.slot & ~(PAGE_SIZE - 1), va)
        return m

    def _drop_entry(self, table: int, va: int) -> None:
        """Count one entry fewer in `table`; free the table, and its parents, once empty."""
        self.live[table] -= 1
        while table != self.root and self.live[table] == 0:
            self._last_pt, self.shape = (-1, 0), next(_SHAPES)
            parent_slot = self._parent_slot(table, va)
            self._words[parent_slot >> 3] = 0
            del self.live[table], self.level[table]
            self.frames.put(table >> PAGE_SHIFT)
            table = parent_slot & ~(PAGE_SIZE - 1)
            self.live[table] -= 1

    def _parent_slot(self, table: int, va: int) -> int:
        """The entry that points at `table` on the walk for `va`."""
        parent = self.root
        for shift in LEVEL_SHIFTS:
            slot = parent + (((va >> shift) & 511) << 3)
            child = self._words[slot >> 3] & PTE_ADDR_MASK
            if child == table:
                return slot
            parent = child
        raise InvariantError(f"table {table:#x} is not on the walk of {va:#x}")

    def prune(self, va: int) -> None:
        """Free empty tables left on the walk of `va` by a failed `map`."""
        for shift in (PD_SHIFT, PDPT_SHIFT, PML4_SHIFT):
            slot = self.walk(va, shift)
            if slot is None:
                continue
            entry = self._words[slot >> 3]
            child = entry & PTE_ADDR_MASK
            if entry & PTE_PRESENT and not entry & PTE_HUGE and self.live.get(child) == 0:
                self._last_pt, self.shape = (-1, 0), next(_SHAPES)
                self._words[slot >> 3] = 0
                del self.live[child], self.level[child]
                self.frames.put(child >> PAGE_SHIFT)
                self.live[slot & ~(PAGE_SIZE - 1)] -= 1

    def copy_kernel_half(self, kernel_root: int) -> None:
        """Share the kernel's PML4 slots 256..511 (new user address spaces start so)."""
        base = self.root >> 3
        kbase = kernel_root >> 3
        first, last = KERNEL_PML4_FIRST, ENTRIES_PER_TABLE
        self._words[base + first : base + last] = self._words[kbase + first : kbase + last]

    def leaf_entries(self) -> list[int]:
        """Every present user-half leaf entry, read table by table (no per-entry objects)."""
        out: list[int] = []
        self._collect(self.root, PML4_SHIFT, out)
        return out

    def _collect(self, table: int, shift: int, out: list[int]) -> None:
        count = KERNEL_PML4_FIRST if shift == PML4_SHIFT else ENTRIES_PER_TABLE
        entries = [e for e in self._words[table >> 3 : (table >> 3) + count] if e & PTE_PRESENT]
        if shift == PT_SHIFT:
            out.extend(entries)
            return
        for entry in entries:
            if entry & PTE_HUGE:
                out.append(entry)
            else:
                self._collect(entry & PTE_ADDR_MASK, shift - 9, out)

    def clone_into(self, other: PageTable, write_policy) -> list[int]:
        """Copy this user half into `other`'s (fork), table by table; return the copied
        leaf entries. `write_policy(lo, hi)` says whether the pages of [lo, hi) must lose
        write access (True), keep it (False), or be asked one by one (None, then it is
        called with one-page ranges). Stripped entries are stripped in both trees."""
        leaves: list[int] = []
        self._clone(self.root, other.root, other, PML4_SHIFT, 0, write_policy, leaves)
        return leaves

    def _clone(self, src: int, dst: int, other: PageTable, shift: int, base: int, policy, leaves) -> None:
        words = self._words
        count = KERNEL_PML4_FIRST if shift == PML4_SHIFT else ENTRIES_PER_TABLE
        s, d = src >> 3, dst >> 3
        if shift == PT_SHIFT:
            entries = list(words[s : s + count])
            strip = policy(base, base + (ENTRIES_PER_TABLE << PT_SHIFT))
            if strip is None:
                entries = [e & ~PTE_WRITABLE if e & PTE_WRITABLE and policy(base + (i << 12), base + (i << 12) + 4096)
                           else e for i, e in enumerate(entries)]
            elif strip:
                entries = [e & ~PTE_WRITABLE for e in entries]
            words[s : s + count] = memoryview(array("Q", entries)).cast("B").cast("Q")
            words[d : d + count] = words[s : s + count]
            present = [e for e in entries if e & PTE_PRESENT]
            other.live[dst] += len(present)
            leaves.extend(present)
            return
        for index in range(count):
            entry = words[s + index]
            if not entry & PTE_PRESENT:
                continue
            va = base | (index << shift)
            if entry & PTE_HUGE:
                if entry & PTE_WRITABLE and policy(va, va + (1 << shift)):
                    entry &= ~PTE_WRITABLE
                    words[s + index] = entry
                words[d + index] = entry
                other.live[dst] += 1
                leaves.append(entry)
                continue
            table = other.frames.alloc_kernel() << PAGE_SHIFT
            other.live[table] = 0
            other.level[table] = shift - 9
            words[d + index] = table | (entry & ~PTE_ADDR_MASK & ~(PTE_ACCESSED | PTE_DIRTY))
            other.live[dst] += 1
            self._clone(entry & PTE_ADDR_MASK, table, other, shift - 9, va, policy, leaves)

    def clear_user(self) -> list[int]:
        """Drop every user-half mapping and table at once (teardown); return the leaf entries.

        Cheaper than unmapping page by page: no per-entry bookkeeping, one pass. The caller
        drops the leaf frames.
        """
        leaves = self.leaf_entries()
        base = self.root >> 3
        self._words[base : base + KERNEL_PML4_FIRST] = memoryview(bytes(8 * KERNEL_PML4_FIRST)).cast("Q")
        self.frames.put_many([table >> PAGE_SHIFT for table in self.live if table != self.root])
        self.live = {self.root: 0}
        self.level = {self.root: PML4_SHIFT}
        self._last_pt, self.shape = (-1, 0), next(_SHAPES)
        return leaves

    def release(self) -> None:
        """Free the root. Precondition: no user mapping is left (tables were pruned)."""
        if len(self.live) != 1 or self.live[self.root]:
            raise InvariantError(f"release with {len(self.live) - 1} user tables still live")
        self.frames.put(self.root >> PAGE_SHIFT)
        self.live.clear()
        self.level.clear()
        self.shape = next(_SHAPES)

    def resident_pages(self) -> int:
        """The 4 KiB pages the user half maps (a 2 MiB leaf counts 512), from the present
        entries `live` counts per table: O(tables), not O(pages). Every PT is one present
        PD entry; the PD's other present entries are 2 MiB leaves."""
        small = pd_entries = page_tables = 0
        level = self.level
        for table, present in self.live.items():
            shift = level[table]
            if shift == PT_SHIFT:
                small += present
                page_tables += 1
            elif shift == PD_SHIFT:
                pd_entries += present
        return small + (pd_entries - page_tables) * (HUGE_PAGE_SIZE >> PAGE_SHIFT)

    # -- checking ---------------------------------------------------------------------------

    def iter_leaves(self, start: int = 0, end: int = USER_END):
        """Yield (va, Mapping) for every present user leaf overlapping `[start, end)`,
        in address order, descending only into tables that overlap the range."""
        yield from self._iter_table(self.root, PML4_SHIFT, 0, start, min(end, USER_END))

    def _iter_table(self, table: int, shift: int, base: int, start: int, end: int):
        """The leaves under `table` (which maps from `base`, each entry 2**shift bytes)."""
        if end <= start:
            return
        words = self._words
        first = max((start - base) >> shift, 0)
        last = min((end - 1 - base) >> shift, ENTRIES_PER_TABLE - 1)
        for index in range(first, last + 1):
            entry = words[(table >> 3) + index]
            if not entry & PTE_PRESENT:
                continue
            va = base + (index << shift)
            if shift == PT_SHIFT or entry & PTE_HUGE:
                yield va, Mapping(table + index * 8, entry, 1 << shift)
            else:
                yield from self._iter_table(entry & PTE_ADDR_MASK, shift - 9, va, start, end)

    def check_invariants(self) -> None:
        """Recount present entries of every owned table and compare with `live`; every table
        page is marked the kernel's; every non-leaf entry points at a table this page table
        owns, one level down; every leaf is at its level (PS only in a PD) and maps only
        frames that are the guest's (see the module doc)."""
        kernel_use = self._kernel_use
        for table, count in self.live.items():
            level = self.level[table]
            if not kernel_use[table >> PAGE_SHIFT]:
                raise InvariantError(f"table {table:#x} is not marked as a kernel frame")
            start = table >> 3
            end = start + (KERNEL_PML4_FIRST if table == self.root else ENTRIES_PER_TABLE)
            present = [e for e in self._words[start:end] if e & PTE_PRESENT]
            if len(present) != count:
                raise InvariantError(f"table {table:#x}: {len(present)} present entries, counted {count}")
            if level == PT_SHIFT:
                if any(kernel_use[(e & PTE_ADDR_MASK) >> PAGE_SHIFT] for e in present):
                    raise InvariantError(f"table {table:#x} maps a kernel frame into user space")
                continue
            for entry in present:
                if entry & PTE_HUGE and level == PD_SHIFT:
                    self._check_leaf(table, entry)
                elif entry & PTE_HUGE or self.level.get(entry & PTE_ADDR_MASK) != level - 9:
                    raise InvariantError(f"{LEVEL_NAMES[level]} entry {entry:#x} in {table:#x} does not "
                                         f"point at a {LEVEL_NAMES.get(level - 9)} table of this page table")
