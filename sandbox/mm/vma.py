"""The VMA tree: the ordered, non-overlapping virtual memory regions of one address space.

Owns: the `Region` records, keyed by start address in a sorted list (O(log n) lookup of the
region containing an address by bisection, with a one-entry cache as the reference VMM keeps).

Invariants (checked by `check_invariants`): every region is page-aligned (to its page size),
non-empty, and ends at or before the next one starts. Ranges are half-open `[start, end)`.

This module knows nothing of page tables: removing a region here does not unmap its pages.
`AddressSpace` keeps the two in step.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from sandbox.errors import InvariantError
from sandbox.mm import PAGE_SIZE

# Protection bits as Linux defines them (man 2 mmap).
PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4
PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC


class Access(enum.IntFlag):
    """What an access tries to do; the values equal the PROT_* bit that permits it.

    The fault path passes these as plain ints (IntFlag arithmetic costs microseconds).
    """

    READ = PROT_READ
    WRITE = PROT_WRITE
    EXEC = PROT_EXEC


def prot_allows(prot: int, access: int) -> bool:
    """x86 semantics: any protection but PROT_NONE can be read; write and exec are checked."""
    return prot != PROT_NONE and not (access & ~prot & (PROT_WRITE | PROT_EXEC))


class RegionFlag(enum.IntFlag):
    """How a region behaves beyond its protection."""

    NONE = 0
    SHARED = 1  # writes are seen by every mapping of the same memory (MAP_SHARED)
    GROWSDOWN = 2  # a stack: faults just below it extend it (VM_GROWSDOWN)
    FIXED = 4  # placed at an address the caller chose (MAP_FIXED)
    DONTFORK = 8  # a fork's child does not get it (MADV_DONTFORK, VM_DONTCOPY)
    WIPEONFORK = 16  # a fork's child gets it empty: zeros on touch (MADV_WIPEONFORK, VM_WIPEONFORK)


class RegionKind(enum.Enum):
    """What a region holds, for statistics and /proc/PID/maps."""

    CODE = "code"
    DATA = "data"
    BSS = "bss"
    HEAP = "heap"
    STACK = "stack"
    MMAP = "mmap"


class FileSource(Protocol):
    """What a file-backed region reads its pages from."""

    name: str
    size: int

    def read(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes at `offset` (fewer at end of file)."""
        ...


class Region:
    """One virtual memory area `[start, end)`.

    A file-backed region maps file bytes from `offset` (the file offset of `start`) up to the
    virtual address `file_end`; pages or parts of pages beyond `file_end` read as zeros (the
    bss of an ELF segment). `file is None` means anonymous, zero-filled memory.

    `max_prot` is the most protection the region may ever get: what the descriptor it was
    mapped from allows (Linux's VM_MAYREAD / VM_MAYWRITE / VM_MAYEXEC). A shared mapping of a
    descriptor not open for writing may never become writable (man 2 mprotect, EACCES).

    Never changed once made (a change is a new region, `replaced`); compared by identity, as
    a tree holds each one once. Trees may share a record (fork copies the tree, not them).
    """

    __slots__ = ("start", "end", "prot", "flags", "kind", "page_size", "file", "offset", "file_end", "name",
                 "max_prot")

    def __init__(self, start: int, end: int, prot: int, flags: RegionFlag = RegionFlag.NONE,
                 kind: RegionKind = RegionKind.MMAP, page_size: int = PAGE_SIZE, file: FileSource | None = None,
                 offset: int = 0, file_end: int = 0, name: str = "", max_prot: int = PROT_ALL) -> None:
        self.start, self.end, self.prot, self.flags, self.kind = start, end, prot, flags, kind
        self.page_size, self.file, self.offset, self.file_end, self.name = page_size, file, offset, file_end, name
        self.max_prot = max_prot

    def __repr__(self) -> str:
        return (f"Region({self.start:#x}-{self.end:#x}, prot={self.prot}, {self.flags!r}, {self.kind.name}, "
                f"page_size={self.page_size:#x}, name={self.name!r})")

    def replaced(self, **changes: object) -> Region:
        """A copy with `changes` (field=value) applied."""
        fields = {name: getattr(self, name) for name in Region.__slots__}
        return Region(**{**fields, **changes})

    @property
    def size(self) -> int:
        """Length in bytes."""
        return self.end - self.start

    @property
    def label(self) -> str:
        """The region's one name in the sandbox's own tools (the plot and fault log,
        --trace-faults, the report, step-faults; `sandbox maps` keeps Linux's format, which
        leaves anonymous memory unnamed): its name ([heap], [stack], a file's path), "bss"
        for the zero-filled pages after a program's data segment (the loader's BSS region),
        and "anon@START" for other anonymous memory (START moves if the region is split)."""
        if self.name:
            return self.name
        return "bss" if self.kind is RegionKind.BSS else f"anon@{self.start:#x}"

    @property
    def shared(self) -> bool:
        """MAP_SHARED: no copy-on-write."""
        return bool(self.flags & RegionFlag.SHARED)

    def contains(self, va: int) -> bool:
        """True if `va` lies in `[start, end)`."""
        return self.start <= va < self.end

    def clipped(self, start: int, end: int) -> Region:
        """A copy limited to `[start, end)`, with the file offset moved to match."""
        return self.replaced(start=start, end=end, offset=self.offset + (start - self.start))

    def can_merge(self, right: Region) -> bool:
        """True if `right` begins where this ends and could be one region with it."""
        if self.end != right.start:
            return False
        same = (self.prot, self.flags, self.kind, self.page_size, self.name, self.file, self.max_prot)
        if same != (right.prot, right.flags, right.kind, right.page_size, right.name, right.file, right.max_prot):
            return False
        if self.file is None:
            return True
        return right.offset == self.offset + self.size and right.file_end == self.file_end


class RegionOverlap(ValueError):
    """An insert would overlap an existing region."""


class VmaStats(NamedTuple):
    """Counts for `--stats`: regions, mapped bytes, holes between regions, largest hole."""

    count: int
    virtual_size: int
    gaps: int
    largest_gap: int


class VmaTree:
    """Ordered, non-overlapping regions keyed by start address.

    Two views of one set: `_starts`, the start addresses in ascending order (bisect finds the
    region around an address in O(log n)), and `_regions`, start -> region. An insert or
    removal also shifts the list's tail (one memmove): at Linux's 65,530-region limit an
    insert measured 7.3 us against sortedcontainers' 6.6, lookups were 2-3x faster at every
    size, and sortedcontainers' import (with traceback, tokenize and textwrap) cost ~4 ms of
    every run's start-up (bench/RESULTS.md).

    Invariant: `_starts == sorted(_regions)` and `_regions[s].start == s` for every s.
    """

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._regions: dict[int, Region] = {}
        self._cache: Region | None = None

    def __iter__(self) -> Iterator[Region]:
        return map(self._regions.__getitem__, self._starts)

    def __len__(self) -> int:
        return len(self._starts)

    def copy(self) -> VmaTree:
        """A tree of the same regions (fork). The records are immutable, so both trees share
        them: a copy costs a key and a reference per region, not a new record."""
        tree = VmaTree()
        tree._starts, tree._regions = self._starts.copy(), self._regions.copy()
        return tree

    # -- lookup -----------------------------------------------------------------------------

    def find(self, va: int) -> Region | None:
        """The region containing `va`, or None. O(log n); repeated hits are O(1)."""
        cached = self._cache
        if cached is not None and cached.start <= va < cached.end:
            return cached
        index = bisect_right(self._starts, va) - 1
        if index < 0:
            return None
        region = self._regions[self._starts[index]]
        if va < region.end:
            self._cache = region
            return region
        return None

    def by_start(self, start: int) -> Region | None:
        """The region that begins exactly at `start`."""
        return self._regions.get(start)

    def overlapping(self, start: int, end: int) -> list[Region]:
        """Regions that intersect `[start, end)`, in address order."""
        starts, regions = self._starts, self._regions
        first = max(bisect_right(starts, start) - 1, 0)
        found = [regions[key] for key in starts[first:bisect_left(starts, end, first)]]
        if found and found[0].end <= start:  # the one before `start` may end before it
            del found[0]
        return found

    def next_after(self, va: int) -> Region | None:
        """The first region that starts at or after `va`."""
        index = bisect_left(self._starts, va)
        return self._regions[self._starts[index]] if index < len(self._starts) else None

    def prev_before(self, va: int) -> Region | None:
        """The last region that ends at or before `va`."""
        index = bisect_left(self._starts, va) - 1
        return self._regions[self._starts[index]] if index >= 0 else None

    def _put(self, region: Region) -> None:
        """Key `region` by its start (replacing a region that starts there)."""
        if region.start not in self._regions:
            insort(self._starts, region.start)
        self._regions[region.start] = region

    def _drop(self, start: int) -> None:
        """Forget the region that starts at `start` (it must exist)."""
        del self._regions[start]
        del self._starts[bisect_left(self._starts, start)]

    # -- changing ---------------------------------------------------------------------------

    def insert(self, region: Region) -> None:
        """Add `region`; raise `RegionOverlap` if any existing region intersects it."""
        _check_shape(region)
        if self.overlapping(region.start, region.end):
            raise RegionOverlap(f"[{region.start:#x}, {region.end:#x}) overlaps a region")
        self._put(region)

    def insert_fixed(self, region: Region) -> list[Region]:
        """Add `region`, cutting away whatever it overlaps; return the overwritten pieces."""
        _check_shape(region)
        removed = self.remove_range(region.start, region.end)
        self._put(region)
        return removed

    def remove_range(self, start: int, end: int) -> list[Region]:
        """Remove `[start, end)` from every region, splitting those that stick out.

        Returns the removed pieces (each clipped to the range), in address order.
        """
        if start >= end:
            return []
        removed = []
        for region in self.overlapping(start, end):
            self._drop(region.start)
            lo, hi = max(region.start, start), min(region.end, end)
            if region.start < lo:
                self._put(region.clipped(region.start, lo))
            if hi < region.end:
                self._put(region.clipped(hi, region.end))
            removed.append(region.clipped(lo, hi))
        self._cache = None
        return removed

    def split_at(self, va: int) -> None:
        """Make `va` a region boundary if it falls inside a region."""
        region = self.find(va)
        if region is None or region.start == va:
            return
        self._put(region.clipped(region.start, va))
        self._put(region.clipped(va, region.end))
        self._cache = None

    def replace(self, old: Region, new: Region) -> None:
        """Swap `old` for `new`, which must cover the same range."""
        if (old.start, old.end) != (new.start, new.end) or self._regions.get(old.start) is not old:
            raise InvariantError(f"replace: {new.start:#x} does not match a region")
        self._regions[old.start] = new
        self._cache = None

    def resize(self, region: Region, start: int, end: int) -> Region:
        """Move the bounds of `region` (grow a stack or the heap); return the new record.

        Precondition: `[start, end)` overlaps no other region.
        """
        self._drop(region.start)
        grown = region.replaced(start=start, end=end, offset=region.offset - (region.start - start))
        _check_shape(grown)
        if self.overlapping(start, end):
            self._put(region)
            raise RegionOverlap(f"[{start:#x}, {end:#x}) overlaps a region")
        self._put(grown)
        self._cache = None
        return grown

    def coalesce(self, start: int | None = None, end: int | None = None) -> int:
        """Merge adjacent compatible regions touching `[start, end)` (all if omitted).

        Returns how many merges were made.
        """
        starts, regions = self._starts, self._regions
        lo = bisect_right(starts, start) - 2 if start is not None else 0
        index, merges = max(lo, 0), 0
        while index + 1 < len(starts):
            left, right = regions[starts[index]], regions[starts[index + 1]]
            if end is not None and left.start > end:
                break
            if left.can_merge(right):
                del regions[right.start], starts[index + 1]
                regions[left.start] = left.replaced(end=right.end)
                merges += 1
            else:
                index += 1
        self._cache = None
        return merges

    def clear(self) -> list[Region]:
        """Remove every region; return them."""
        regions = list(self)
        self._starts, self._regions = [], {}
        self._cache = None
        return regions

    # -- placement --------------------------------------------------------------------------

    def find_free(self, size: int, low: int, high: int, align: int = PAGE_SIZE) -> int | None:
        """The highest `align`-aligned start of a free `size`-byte range inside `[low, high)`.

        Searches top-down from `high`, as Linux's mmap does from its mmap base.
        """
        gap_end = high
        starts, regions = self._starts, self._regions
        index = bisect_left(starts, high) - 1
        while True:
            region = regions[starts[index]] if index >= 0 else None
            gap_start = max(region.end if region else low, low)
            if gap_end >= size:
                candidate = (gap_end - size) & ~(align - 1)
                if candidate >= gap_start:
                    return candidate
            if region is None or region.start <= low:
                return None
            gap_end = min(gap_end, region.start)
            index -= 1

    def is_free(self, start: int, end: int) -> bool:
        """True if no region intersects `[start, end)`."""
        return not self.overlapping(start, end)

    # -- reporting --------------------------------------------------------------------------

    def stats(self) -> VmaStats:
        """Region count, total mapped bytes, and the holes between regions."""
        regions = list(self)
        gaps = [b.start - a.end for a, b in zip(regions, regions[1:], strict=False) if b.start > a.end]
        return VmaStats(len(regions), sum(r.size for r in regions), len(gaps), max(gaps, default=0))

    def check_invariants(self) -> None:
        """Every region well-formed, keyed by its start, and before the next one."""
        if sorted(self._regions) != self._starts:
            raise InvariantError("the sorted starts and the regions disagree")
        previous_end = -1
        for key in self._starts:
            region = self._regions[key]
            _check_shape(region)
            if key != region.start or region.start < previous_end:
                raise InvariantError(f"region at {region.start:#x} misplaced or overlapping")
            previous_end = region.end


def _check_shape(region: Region) -> None:
    """A region is non-empty and aligned to its page size."""
    mask = region.page_size - 1
    if region.start >= region.end or region.start & mask or region.end & mask:
        raise InvariantError(f"bad region [{region.start:#x}, {region.end:#x})")
