"""The memory manager: frames, page tables, regions, and the address space that joins them.

Files follow gVisor's `pkg/sentry/mm` split, one concern each:
- `physmem.py`  guest-physical RAM as a host buffer (bytes and u64 views)
- `frames.py`   the buddy frame allocator with reference counts
- `pagetable.py` x86-64 4-level page tables written into that RAM
- `vma.py`      the ordered tree of virtual memory regions
- `aspace.py`   `AddressSpace`: regions and page tables kept in step (mmap, munmap, mprotect)
- `fault.py`    the page-fault ladder (Linux `handle_pte_fault`)
- `uaccess.py`  copy-in / copy-out of guest virtual memory for system calls
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT  # 4 KiB, Intel SDM vol. 3 §4.5
HUGE_PAGE_SHIFT = 21
HUGE_PAGE_SIZE = 1 << HUGE_PAGE_SHIFT  # 2 MiB, a PDE with PS set
GIANT_PAGE_SIZE = 1 << 30  # 1 GiB, a PDPTE with PS set (not backed here)

#: Pages a read fault on a file mapping maps at once: Linux's default fault_around_bytes
#: (64 KiB, mm/memory.c since 3.15) over the page size.
FILE_FAULT_AROUND_PAGES = 16

#: Lowest kernel-half address: PML4 slots 256..511 (canonical upper half).
KERNEL_BASE = 0xFFFF_8000_0000_0000
#: One past the highest user address (canonical lower half, 47 bits).
USER_END = 0x0000_8000_0000_0000


def page_down(addr: int) -> int:
    """Round `addr` down to a 4 KiB page boundary."""
    return addr & ~(PAGE_SIZE - 1)


def page_up(addr: int) -> int:
    """Round `addr` up to a 4 KiB page boundary."""
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def align_up(addr: int, align: int) -> int:
    """Round `addr` up to a multiple of `align` (a power of two)."""
    return (addr + align - 1) & ~(align - 1)
