"""The buddy frame allocator: guest-physical RAM handed out in blocks of 2**order frames.

Owns: which frames are free, the order of each allocated block, and a reference count per
allocated block (a frame shared by copy-on-write or by `map_shared_frames` is freed only when
its last user lets go).

Invariants (checked by `check_invariants`):
- free blocks are aligned to their size, disjoint, and never buddies of each other at the
  same order (they would have merged);
- every frame is either reserved, in exactly one free block, or in exactly one allocated block;
- free + used + reserved = total frames; an allocated block's reference count is >= 1;
- a frame marked as the sandbox's own (`alloc_kernel`: page tables, the GDT, the trampoline,
  the kernel stack) is allocated. The mark is what keeps such a frame from ever becoming a
  guest page: the page table refuses a user leaf that points at one (pagetable.py);
- a frame the fast fault path's reserve holds (`attach_reserve`) is allocated on its own with
  one reference, yet counted as free, not in `used`, until the reserve hands it out.

Free frames are always zero: RAM starts zeroed (a fresh anonymous host mapping) and a block
is zeroed when it is freed. So `alloc` hands out clean frames without touching them, and no
process ever sees another's old data. After `stop_zeroing` (a teardown whose RAM is unmapped
next) freed frames are left as they are.

The per-frame tables (reference counts, block orders, kernel marks) are flat arrays indexed
by pfn in anonymous host mappings, like the RAM itself: a 4 GiB guest has a million frames,
and the host supplies a table's pages only as frames are used, so RAM that is never touched
costs neither set-up time nor host memory.
"""

from __future__ import annotations

import mmap
from array import array
from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol

from sandbox.errors import InvariantError, OutOfMemory
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.physmem import MADVISE_MIN, PhysicalMemory

#: Largest block: 2**MAX_ORDER frames (4 MiB); order 9 is one 2 MiB huge frame.
MAX_ORDER = 10
HUGE_ORDER = 9


class FrameStats(NamedTuple):
    """A snapshot of the allocator's counters, in frames."""

    total: int
    reserved: int
    free: int
    used: int
    peak_used: int


class FrameAllocator:
    """Buddy allocator over the frames of `mem`; frames below `first_pfn` are reserved."""

    def __init__(self, mem: PhysicalMemory, first_pfn: int = 1, limit: int | None = None) -> None:
        self.mem = mem
        self.nframes = mem.size >> PAGE_SHIFT
        self.first_pfn = first_pfn
        #: A cap on frames in use (below RAM size); None means all of RAM.
        self.limit = limit
        self._free: list[set[int]] = [set() for _ in range(MAX_ORDER + 1)]
        #: refcount[pfn] of a block's head frame; 0 for free, reserved and tail frames.
        self._refcount = memoryview(_zeroed_table(4 * self.nframes)).cast("I")
        #: 1 + the order of the allocated block headed by pfn; 0 for any other frame.
        self._order = _zeroed_table(self.nframes)
        #: 1 for a frame the sandbox itself uses (see `alloc_kernel`), 0 for any other.
        self.kernel_use = _zeroed_table(self.nframes)
        self.used = 0
        self.peak_used = 0
        #: Whether freed frames are zeroed (see `stop_zeroing`).
        self.zero_freed = True
        #: Address spaces by the physical address of their PML4 (each registers itself):
        #: the C fault path finds the space the CPU runs from CR3 (sandbox/fastpath.py).
        self.spaces: dict[int, object] = {}
        #: The fast fault path's reserve, if one is attached (`attach_reserve`).
        self._reserve: Reserve | None = None
        self._add_free_range(first_pfn, self.nframes)

    def _add_free_range(self, lo: int, hi: int) -> None:
        """Cover frames [lo, hi) with the largest aligned free blocks that fit."""
        for pfn, order in _aligned_blocks(lo, hi):
            self._free[order].add(pfn)

    # -- allocation -------------------------------------------------------------------------

    def alloc(self, order: int = 0) -> int:
        """Allocate a zeroed block of 2**order frames with reference count 1; return its pfn.

        Fast: free frames are already zero (see module doc).

        Raises `OutOfMemory` when no block is large enough or the resident cap is reached;
        nothing is changed then.
        """
        npages = 1 << order
        if self.limit is not None and self.used + npages > self.limit:
            raise OutOfMemory("the --max-resident cap is reached")
        exact = self._free[order]
        pfn = exact.pop() if exact else self._take_block_or_reclaim(order)
        self._refcount[pfn] = 1
        self._order[pfn] = order + 1
        self.used += npages
        if self.used > self.peak_used:
            self.peak_used = self.used
        return pfn

    def alloc_kernel(self) -> int:
        """Allocate one frame for the sandbox's own use (a page table, the GDT, ...), marked
        so that no user leaf may ever map it; freeing it clears the mark."""
        pfn = self.alloc()
        self.kernel_use[pfn] = 1
        return pfn

    def is_kernel(self, pfn: int, count: int = 1) -> bool:
        """True if any of frames [pfn, pfn + count) is the sandbox's own, or is not RAM."""
        if pfn < 0 or pfn + count > self.nframes:
            return True
        return self.kernel_use.find(_MARK, pfn, pfn + count) >= 0

    def kernel_frames(self) -> set[int]:
        """Every frame marked by `alloc_kernel` and not freed since."""
        marks, found = self.kernel_use, set()
        pfn = marks.find(_MARK)
        while pfn >= 0:
            found.add(pfn)
            pfn = marks.find(_MARK, pfn + 1)
        return found

    def _take_block(self, order: int) -> int:
        """Remove a free block of exactly `order` from the free lists, splitting a larger one."""
        found = order
        while found <= MAX_ORDER and not self._free[found]:
            found += 1
        if found > MAX_ORDER:
            raise OutOfMemory(f"no free block of order {order} in guest RAM")
        pfn = self._free[found].pop()
        while found > order:  # give back the upper halves
            found -= 1
            self._free[found].add(pfn + (1 << found))
        return pfn

    # -- the fast fault path's reserve (sandbox/fastpath.py) ---------------------------------

    def attach_reserve(self, reserve: Reserve) -> None:
        """Let `reserve` hold frames from `alloc_reserve`: allocated single frames with
        reference count 1, zero, counted in `used` only once the reserve hands one out
        (whoever takes one counts it, as `alloc` would). `check_invariants` counts the held
        ones apart, and an allocation that finds no block takes them back first."""
        self._reserve = reserve

    def alloc_reserve(self, order: int) -> int:
        """Allocate the 2**order frames of one free block as single frames with reference
        count 1, not counted in `used`; return the first pfn. For the attached reserve only
        (its `held` must list them next). Raises `OutOfMemory` with nothing changed."""
        n = 1 << order
        exact = self._free[order]
        pfn = exact.pop() if exact else self._take_block(order)
        self._refcount[pfn : pfn + n] = array("I", [1]) * n
        self._order[pfn : pfn + n] = b"\x01" * n
        return pfn

    def free_reserve(self, first: int, count: int) -> None:
        """Free frames [first, first + count) that a reserve held and never handed out."""
        self.used += count  # put_many counts them off again
        self.put_many(range(first, first + count))

    def _take_block_or_reclaim(self, order: int) -> int:
        """`_take_block`; if no block is free, the reserve's frames are taken back and the
        allocation tried once more, so a reserve never makes an allocation fail."""
        try:
            return self._take_block(order)
        except OutOfMemory:
            if self._reserve is None or not self._reserve.reclaim():
                raise
        return self._take_block(order)

    def _reserved(self) -> range:
        """The frames the reserve holds, not handed out."""
        return self._reserve.held() if self._reserve is not None else range(0)

    def get(self, pfn: int) -> None:
        """Take one more reference on the allocated block headed by `pfn`."""
        if not self._refcount[pfn]:
            raise InvariantError(f"get() on frame {pfn:#x}, which is not allocated")
        self._refcount[pfn] += 1

    def get_many(self, pfns) -> None:
        """One more reference on each block headed by `pfns` (fork shares thousands at once).
        Precondition: every one is allocated (checked by `check_invariants`, not here)."""
        refcount = self._refcount
        for pfn in pfns:
            refcount[pfn] += 1

    def put(self, pfn: int) -> bool:
        """Drop one reference on the block headed by `pfn`; free it at zero. True if freed."""
        count = self._refcount[pfn]
        if not count:
            raise InvariantError(f"put() on frame {pfn:#x}, which is not allocated")
        self._refcount[pfn] = count - 1
        if count > 1:
            return False
        self._release(pfn, self._take_order(pfn))
        return True

    def put_many(self, pfns: Iterable[int]) -> list[int]:
        """Drop one reference on each block headed by `pfns` (a head may repeat); free those
        that reach zero. Teardown frees thousands at once: freed frames that are contiguous
        are zeroed by one call and return to the free lists as the largest blocks that fit.
        Returns the freed heads, in order."""
        refcount = self._refcount
        freed = []
        for pfn in pfns:
            count = refcount[pfn]
            if not count:
                raise InvariantError(f"put() on frame {pfn:#x}, which is not allocated")
            refcount[pfn] = count - 1
            if count == 1:
                freed.append(pfn)
        freed.sort()
        orders = self._order  # cleared run by run, in _release_run
        run_start = run_end = -1
        for pfn in freed:
            end = pfn + (1 << (orders[pfn] - 1))
            if pfn != run_end:
                self._release_run(run_start, run_end)
                run_start = pfn
            run_end = end
        self._release_run(run_start, run_end)
        return freed

    def stop_zeroing(self) -> None:
        """From now on, freed frames are not scrubbed: for a teardown whose RAM is unmapped
        next (the CLI's exit), where zeroing would be work for nobody. Runs of MADVISE_MIN
        frames or more are still handed back to the host (`PhysicalMemory.discard`), which
        costs what unmapping them would and keeps the teardown's peak host memory down.
        Precondition: no guest runs again on this RAM (a frame allocated afterwards may hold
        old data)."""
        self.zero_freed = False

    def _take_order(self, pfn: int) -> int:
        """The order of the allocated block headed by `pfn`, forgotten (it is being freed)."""
        order = self._order[pfn] - 1
        self._order[pfn] = 0
        return order

    def _release_run(self, lo: int, hi: int) -> None:
        """Zero the freed blocks that cover frames [lo, hi) at once (see `stop_zeroing`),
        forget their orders, and hand them to the buddy lists."""
        if lo >= hi:
            return
        if self.zero_freed:
            self.mem.zero(lo << PAGE_SHIFT, (hi - lo) << PAGE_SHIFT)
        elif hi - lo >= MADVISE_MIN >> PAGE_SHIFT:
            self.mem.discard(lo << PAGE_SHIFT, (hi - lo) << PAGE_SHIFT)
        zeros = bytes(hi - lo)
        self._order[lo:hi] = zeros  # the heads' orders (tail frames' are 0 already)
        self.kernel_use[lo:hi] = zeros
        self.used -= hi - lo
        for pfn, order in _aligned_blocks(lo, hi):
            self._merge_free(pfn, order)

    def _release(self, pfn: int, order: int) -> None:
        """Zero a block (see `stop_zeroing`) and return it to the free lists, merging with
        free buddies."""
        if self.zero_freed:
            self.mem.zero(pfn << PAGE_SHIFT, PAGE_SIZE << order)
        elif PAGE_SIZE << order >= MADVISE_MIN:
            self.mem.discard(pfn << PAGE_SHIFT, PAGE_SIZE << order)
        if order:
            self.kernel_use[pfn : pfn + (1 << order)] = bytes(1 << order)
        else:
            self.kernel_use[pfn] = 0
        self.used -= 1 << order
        self._merge_free(pfn, order)

    def _merge_free(self, pfn: int, order: int) -> None:
        """Put the free block (pfn, order) on its list, merged with any free buddies."""
        while order < MAX_ORDER:
            buddy = pfn ^ (1 << order)
            if buddy not in self._free[order]:
                break
            self._free[order].remove(buddy)
            pfn = min(pfn, buddy)
            order += 1
        self._free[order].add(pfn)

    # -- queries ----------------------------------------------------------------------------

    def refcount(self, pfn: int) -> int:
        """References held on the block headed by `pfn` (0 if it is not allocated)."""
        return self._refcount[pfn]

    def order_of(self, pfn: int) -> int:
        """The order of the allocated block headed by `pfn`; KeyError if none is."""
        order = self._order[pfn] - 1
        if order < 0:
            raise KeyError(pfn)
        return order

    def allocated_heads(self) -> list[int]:
        """The head pfn of every allocated block, in ascending order."""
        import re  # only invariant checks and reports ask

        held = self._reserved()
        return [match.start() for match in re.finditer(rb"[^\x00]", self._order) if match.start() not in held]

    @property
    def free(self) -> int:
        """Free frames."""
        return self.nframes - self.first_pfn - self.used

    def stats(self) -> FrameStats:
        """Counters in frames: total, reserved, free, used, peak."""
        return FrameStats(self.nframes, self.first_pfn, self.free, self.used, self.peak_used)

    def check_invariants(self) -> None:
        """Recompute the free/used picture from scratch and compare with the counters."""
        owner = bytearray(self.nframes)  # 0 unseen, 1 free, 2 allocated
        for order, blocks in enumerate(self._free):
            for pfn in blocks:
                self._claim(owner, pfn, order, 1)
                if order < MAX_ORDER and pfn ^ (1 << order) in blocks:
                    raise InvariantError(f"free buddies {pfn:#x} and {pfn ^ (1 << order):#x} unmerged")
        used = 0
        for pfn in self.allocated_heads():
            order = self.order_of(pfn)
            self._claim(owner, pfn, order, 2)
            if self._refcount[pfn] < 1:
                raise InvariantError(f"allocated block {pfn:#x} has refcount 0")
            used += 1 << order
        for pfn in self._reserved():  # allocated, owned by the reserve, not in `used`
            self._claim(owner, pfn, 0, 2)
            if self._refcount[pfn] != 1 or self._order[pfn] != 1:
                raise InvariantError(f"reserved frame {pfn:#x} is not a single frame with one reference")
        unseen = owner.count(0, self.first_pfn)
        if used != self.used or unseen:
            raise InvariantError(f"used {self.used} (recounted {used}), {unseen} frames lost")
        stray = [pfn for pfn in self.kernel_frames() if owner[pfn] != 2]
        if stray:
            raise InvariantError(f"frames {[hex(p) for p in stray[:8]]} are marked the kernel's but not allocated")

    def _claim(self, owner: bytearray, pfn: int, order: int, kind: int) -> None:
        """Mark a block's frames as seen by `check_invariants`, refusing overlaps."""
        n = 1 << order
        if pfn & (n - 1) or pfn < self.first_pfn or pfn + n > self.nframes:
            raise InvariantError(f"block {pfn:#x} of order {order} misaligned or out of range")
        if owner[pfn : pfn + n].count(0) != n:
            raise InvariantError(f"block {pfn:#x} of order {order} overlaps another")
        owner[pfn : pfn + n] = bytes([kind]) * n


class Reserve(Protocol):
    """A holder of frames from `alloc_reserve` (sandbox/fastpath.py's)."""

    def held(self) -> range:
        """The frames it holds, not handed out yet."""
        ...

    def reclaim(self) -> bool:
        """Give every held frame back (`free_reserve`); True if there were any."""
        ...


#: What `kernel_use` holds for a marked frame, as `find` takes it.
_MARK = b"\x01"


def _zeroed_table(nbytes: int) -> mmap.mmap:
    """A zero-filled table of `nbytes` in an anonymous host mapping: the host supplies its
    pages on first write, so a table for frames never used costs no host memory."""
    return mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _aligned_blocks(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """(pfn, order) of the largest size-aligned blocks that exactly cover frames [lo, hi)."""
    pfn = lo
    while pfn < hi:
        order = MAX_ORDER
        while order and (pfn & ((1 << order) - 1) or pfn + (1 << order) > hi):
            order -= 1
        yield pfn, order
        pfn += 1 << order
