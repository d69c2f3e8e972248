"""Guest-physical RAM: one host buffer, seen as bytes and as little-endian u64 words.

The machine maps this same buffer into Unicorn with `mem_map_ptr`, so page-table entries and
frame contents written here are what the emulated CPU's MMU reads, with no binding call per
access. Unit tests use it alone, on a plain bytearray.
"""

from __future__ import annotations

import mmap

from sandbox.mm import PAGE_SIZE

_ZERO_PAGE = bytes(PAGE_SIZE)
#: Guest RAM when a run does not say (--memory): 4 GiB, so that what runs natively in a few
#: GiB runs with defaults. Reserved lazily: RAM the guest never touches costs the host nothing.
DEFAULT_MEMORY = 4 << 30
#: MAP_NORESERVE as Linux defines it (include/uapi/asm-generic/mman.h, x86 included); the
#: mmap module names it only from Python 3.13, and passes any flag through to mmap(2).
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
RAM_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
#: From this size on, zeroing is a madvise call rather than a copy.
MADVISE_MIN = 16 * PAGE_SIZE


class PhysicalMemory:
    """`size` bytes of guest-physical RAM starting at physical address 0."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"RAM size {size:#x} is not a positive multiple of {PAGE_SIZE}")
        self.size = size
        # Private anonymous mmap: host pages stay untouched (and cost nothing) until the guest
        # uses them, and MADV_DONTNEED reads back as zeros (on a shared mapping it would not).
        # MAP_NORESERVE: no swap reserved up front (man 2 mmap), so gigabytes of guest RAM
        # are only address space until touched, whatever the host's overcommit accounting.
        self.buffer = mmap.mmap(-1, size, flags=RAM_MAP_FLAGS)
        self.bytes = memoryview(self.buffer)
        #: The same RAM as u64 words: `words[pa >> 3]` is the entry at physical address `pa`.
        self.words = self.bytes.cast("Q")

    def read(self, pa: int, n: int) -> bytes:
        """Return `n` bytes at physical address `pa`."""
        return bytes(self.bytes[pa : pa + n])

    def write(self, pa: int, data: bytes | memoryview) -> None:
        """Store `data` at physical address `pa`."""
        self.bytes[pa : pa + len(data)] = data

    def zero(self, pa: int, n: int = PAGE_SIZE) -> None:
        """Zero `n` bytes (a multiple of the page size) at `pa`.

        Large ranges are handed back to the host (MADV_DONTNEED on a private anonymous
        mapping reads back as zeros), which also returns their memory.
        """
        if n >= MADVISE_MIN:
            self.discard(pa, n)
            return
        mv = self.bytes
        for off in range(pa, pa + n, PAGE_SIZE):
            mv[off : off + PAGE_SIZE] = _ZERO_PAGE

    def discard(self, pa: int, n: int) -> None:
        """Hand `n` bytes at `pa` (page multiples) back to the host: MADV_DONTNEED, after
        which they read as zeros and cost no host memory until touched again."""
        self.buffer.madvise(mmap.MADV_DONTNEED, pa, n)

    def copy(self, dst_pa: int, src_pa: int, n: int = PAGE_SIZE) -> None:
        """Copy `n` bytes from `src_pa` to `dst_pa` (non-overlapping frames)."""
        self.bytes[dst_pa : dst_pa + n] = self.bytes[src_pa : src_pa + n]

    def close(self) -> None:
        """Release the host buffer (views first, or mmap refuses)."""
        self.words.release()
        self.bytes.release()
        self.buffer.close()
