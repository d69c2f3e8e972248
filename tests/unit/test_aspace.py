"""AddressSpace and the fault ladder on plain RAM (no CPU): every rung, and accounting."""

from __future__ import annotations

import errno
import os
import signal

import pytest

from sandbox import abi
from sandbox.errors import GuestFault, OutOfMemory, SyscallError
from sandbox.mm.aspace import Access, AddressSpace, NoMmu
from sandbox.mm.fault import demand_zero_fault
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.pagetable import PTE_HUGE, PTE_NX, PTE_USER, PTE_WRITABLE
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring
from sandbox.mm.vma import PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE, RegionFlag, RegionKind

RW = PROT_READ | PROT_WRITE
P = 4096


class Blob:
    """A FileSource over bytes."""

    name = "blob"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset : offset + n]


@pytest.fixture
def space() -> AddressSpace:
    mem = PhysicalMemory(32 << 20)
    kernel = AddressSpace.new_kernel(mem, FrameAllocator(mem), NoMmu())
    user = AddressSpace.new_user(kernel)
    user.mmu.load_cr3(user.cr3)
    return user


def test_no_region_is_maperr(space: AddressSpace) -> None:
    with pytest.raises(GuestFault) as info:
        space.handle_page_fault(0x1234, Access.READ)
    assert (info.value.signo, info.value.code, info.value.addr) == (signal.SIGSEGV, abi.SEGV_MAPERR, 0x1234)


@pytest.mark.parametrize(("prot", "access"), [
    (PROT_READ, Access.WRITE), (RW, Access.EXEC), (PROT_NONE, Access.READ),
])
def test_forbidden_access_is_accerr(space: AddressSpace, prot: int, access: Access) -> None:
    space.reserve_region(0x10000, 1, prot)
    with pytest.raises(GuestFault) as info:
        space.handle_page_fault(0x10000, access)
    assert info.value.code == abi.SEGV_ACCERR


def test_demand_zero_maps_one_page_with_region_bits(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 4, RW)
    record = space.handle_page_fault(0x11008, Access.WRITE)
    assert record.kind == "demand-zero" and record.tables_created == 3
    m = space.pagetable.lookup(0x11000)
    assert m.entry & (PTE_USER | PTE_WRITABLE | PTE_NX) == PTE_USER | PTE_WRITABLE | PTE_NX
    assert space.pagetable.lookup(0x10000) is None
    assert space.fault_counts == {"demand-zero": 1}
    space.check_invariants()


@pytest.mark.parametrize("prot", [PROT_READ, RW, PROT_READ | PROT_EXEC, RW | PROT_EXEC])
def test_demand_zero_fast_path_matches_the_ladder(space: AddressSpace, prot: int) -> None:
    """The kernel's fast path maps exactly what the full ladder maps for a first touch."""
    space.reserve_region(0x10000, 2, prot)
    space.handle_page_fault(0x10000, Access.READ)  # builds the tables the fast path needs
    assert demand_zero_fault(space, 0x11008, Access.READ)
    fast = space.pagetable.lookup(0x11000).entry
    space.pagetable.unmap(0x11000)
    space.handle_page_fault(0x11008, Access.READ)
    assert space.pagetable.lookup(0x11000).entry & 0xFFF == fast & 0xFFF
    assert fast >> 63 == space.pagetable.lookup(0x11000).entry >> 63  # NX
    assert space.fault_counts == {"demand-zero": 3}


def test_demand_zero_fast_path_declines_everything_else(space: AddressSpace) -> None:
    """Anything but a plain first touch is left, unchanged, to the full ladder."""
    space.reserve_region(0x10000, 4, RW)
    space.reserve_region(0x20000, 1, PROT_READ)
    space.reserve_region(0x30000, 1, PROT_READ, file=Blob(b"x" * P))
    assert not demand_zero_fault(space, 0x10000, Access.READ)  # no leaf table yet
    space.handle_page_fault(0x10000, Access.READ)
    assert not demand_zero_fault(space, 0x10000, Access.WRITE)  # already mapped
    assert not demand_zero_fault(space, 0x20000, Access.WRITE)  # forbidden: SIGSEGV's job
    assert not demand_zero_fault(space, 0x30000, Access.READ)  # file-backed
    assert not demand_zero_fault(space, 0x50000, Access.READ)  # no region
    space.on_fault = lambda record: None
    assert not demand_zero_fault(space, 0x11000, Access.READ)  # a listener wants a record
    space.on_fault = None
    assert demand_zero_fault(space, 0x11000, Access.READ)
    assert space.fault_counts == {"demand-zero": 2}
    space.check_invariants()


def test_file_fill_zeroes_the_bss_tail(space: AddressSpace) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    space.reserve_region(0x40_0000, 4, PROT_READ | PROT_EXEC, file=Blob(data), offset=0,
                         file_end=0x40_0000 + 5000)
    space.handle_page_fault(0x40_1000, Access.READ)
    page = space.mem.read(space.translate(0x40_1000), P)
    assert page[: 5000 - P] == data[P:5000] and page[5000 - P :] == bytes(2 * P - 5000)
    assert space.fault_counts == {"file": 1}
    space.handle_page_fault(0x40_2000, Access.READ)
    assert space.fault_counts["demand-zero"] == 1


def test_file_page_past_eof_is_sigbus(space: AddressSpace) -> None:
    space.reserve_region(0x50_0000, 3, PROT_READ, file=Blob(b"x" * 100))
    space.handle_page_fault(0x50_0000, Access.READ)
    with pytest.raises(GuestFault) as info:
        space.handle_page_fault(0x50_1000, Access.READ)
    assert (info.value.signo, info.value.code) == (signal.SIGBUS, abi.BUS_ADRERR)


def test_copy_on_write_copies_then_reuses(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 1, RW)
    copy_out(space, 0x10000, b"parent")
    child = space.clone_cow()
    shared = space.translate(0x10000)
    assert child.translate(0x10000) == shared
    assert not space.pagetable.lookup(0x10000).entry & PTE_WRITABLE
    assert child.handle_page_fault(0x10000, Access.WRITE).kind == "copy-on-write"
    assert child.translate(0x10000) != shared
    copy_out(child, 0x10000, b"child!")
    assert copy_in(space, 0x10000, 6) == b"parent"
    assert space.handle_page_fault(0x10000, Access.WRITE).kind == "cow-reuse"
    child.destroy()
    space.check_invariants()


def test_stack_grows_down_to_the_limit(space: AddressSpace) -> None:
    top = 0x7FFF_FFFF_F000
    space.reserve_region(top - 4 * P, 4, RW, flags=RegionFlag.GROWSDOWN, kind=RegionKind.STACK)
    record = space.handle_page_fault(top - 10 * P, Access.WRITE)
    assert record.stack_grown and space.find_region(top - 10 * P).start == top - 10 * P
    with pytest.raises(GuestFault, match="stack limit"):
        space.handle_page_fault(top - abi.STACK_LIMIT - P, Access.WRITE)


def test_stack_keeps_its_guard_gap(space: AddressSpace) -> None:
    top = 0x7FFF_FFFF_F000
    space.reserve_region(top - 4 * P, 4, RW, flags=RegionFlag.GROWSDOWN, kind=RegionKind.STACK)
    space.reserve_region(top - 4 * P - abi.STACK_GUARD_GAP - P, 1, RW)
    with pytest.raises(GuestFault, match="guard gap"):
        space.handle_page_fault(top - 5 * P, Access.WRITE)


def test_huge_region_faults_in_one_2mib_entry(space: AddressSpace) -> None:
    space.reserve_region(0x4000_0000, 1, RW, page_size=2 << 20)
    record = space.handle_page_fault(0x4012_3456, Access.WRITE)
    m = space.pagetable.lookup(0x4000_0000)
    assert m.size == 2 << 20 and m.entry & PTE_HUGE
    assert space.frames.order_of(record.pfn) == 9
    space.unmap_range(0x4000_0000, 2 << 20)
    space.check_invariants()


def test_protect_narrows_entries_and_flushes(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 3, RW)
    space.populate(0x10000, 0x13000)
    flushes = space.mmu.flushes
    space.protect_range(0x11000, P, PROT_READ)
    assert space.mmu.flushes == flushes + 1
    assert not space.pagetable.lookup(0x11000).entry & PTE_WRITABLE
    assert space.pagetable.lookup(0x12000).entry & PTE_WRITABLE
    assert [r.prot for r in space.regions] == [RW, PROT_READ, RW]
    space.protect_range(0x11000, P, RW)
    assert len(space.regions) == 1, "adjacent equal regions coalesce again"
    space.check_invariants()


def test_protect_none_keeps_contents_but_denies_user(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 1, RW)
    copy_out(space, 0x10000, b"kept")
    space.protect_range(0x10000, P, PROT_NONE)
    assert not space.pagetable.lookup(0x10000).entry & PTE_USER
    with pytest.raises(SyscallError):
        copy_in(space, 0x10000, 4)
    space.protect_range(0x10000, P, PROT_READ)
    assert copy_in(space, 0x10000, 4) == b"kept"


def test_protect_over_a_hole_is_enomem_and_changes_nothing(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 1, RW)
    space.reserve_region(0x12000, 1, RW)
    with pytest.raises(SyscallError) as info:
        space.protect_range(0x10000, 3 * P, PROT_READ)
    assert info.value.errno == errno.ENOMEM
    assert all(r.prot == RW for r in space.regions)


def test_unmap_returns_every_frame(space: AddressSpace) -> None:
    baseline = space.frames.used
    space.reserve_region(0x10000, 64, RW)
    space.populate(0x10000, 0x10000 + 64 * P)
    assert space.frames.used > baseline + 64
    space.unmap_range(0x18000, 8 * P)
    assert len(space.regions) == 2 and space.any_mapped_in_range(0x10000, P)
    assert not space.any_mapped_in_range(0x18000, 8 * P)
    space.unmap_all_user_regions()
    assert space.frames.used == baseline and not space.has_user_mappings()


def test_fixed_insert_unmaps_what_it_covers(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 4, RW)
    copy_out(space, 0x11000, b"old")
    space.reserve_region(0x11000, 1, RW, flags=RegionFlag.FIXED)
    assert copy_in(space, 0x11000, 3) == bytes(3)
    assert len(space.regions) == 3


def test_overlapping_insert_is_eexist(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 4, RW)
    with pytest.raises(SyscallError) as info:
        space.reserve_region(0x12000, 4, RW)
    assert info.value.errno == errno.EEXIST


def test_find_free_prefers_hint_then_top_down(space: AddressSpace) -> None:
    assert space.find_free_vma_range(0x6000_0000_0000, 4) == 0x6000_0000_0000
    top = space.find_free_vma_range(0, 4)
    assert top == space.mmap_base - 4 * P
    space.reserve_region(top, 4, RW)
    assert space.find_free_vma_range(0, 4) == top - 4 * P


def test_copy_across_pages_and_cstrings(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 2, RW)
    copy_out(space, 0x10FFC, b"abcdefgh\0tail")
    assert copy_in(space, 0x10FFC, 8) == b"abcdefgh"
    assert read_cstring(space, 0x10FFC) == b"abcdefgh"


@pytest.mark.parametrize("va", [0, 0xFFFF_8000_0000_0000, 0x0000_8000_0000_0000 - 2, 1 << 63])
def test_wild_pointers_are_efault(space: AddressSpace, va: int) -> None:
    with pytest.raises(SyscallError) as info:
        copy_in(space, va, 8)
    assert info.value.errno == errno.EFAULT


def test_copy_out_to_read_only_is_efault(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 1, PROT_READ)
    with pytest.raises(SyscallError) as info:
        copy_out(space, 0x10000, b"x")
    assert info.value.errno == errno.EFAULT


def test_out_of_memory_leaves_no_half_mapping() -> None:
    mem = PhysicalMemory(4 << 20)
    kernel = AddressSpace.new_kernel(mem, FrameAllocator(mem), NoMmu())
    space = AddressSpace.new_user(kernel)
    space.reserve_region(0x10000, 4096, RW)
    with pytest.raises(OutOfMemory):
        space.populate(0x10000, 0x10000 + 4096 * P)
    space.check_invariants()
    space.destroy()
    assert space.frames.used == kernel.pagetable.table_pages


def test_destroy_returns_to_baseline(space: AddressSpace) -> None:
    kernel_frames = space.frames.used - 1  # everything but this space's PML4
    space.reserve_region(0x10000, 10, RW)
    space.reserve_region(0x7000_0000_0000, 10, RW)
    space.populate(0x10000, 0x1A000)
    space.populate(0x7000_0000_0000, 0x7000_0000_A000)
    space.destroy()
    assert space.frames.used == kernel_frames
    space.frames.check_invariants()


def _cached_file(space: AddressSpace, tmp_path, pages: float, name: str = "data.bin"):
    """A page-cache entry over a host file of `pages` pages, page i filled with byte i + 1."""
    from sandbox.mm.pagecache import PageCache

    path = tmp_path / name
    path.write_bytes(b"".join(bytes([i + 1]) * P for i in range(int(pages))) + b"\xee" * int((pages % 1) * P))
    cache = PageCache(space.mem, space.frames)
    fd = os.open(path, os.O_RDWR)
    try:
        return cache.open(fd, name, writable=True)
    finally:
        os.close(fd)


def test_read_fault_on_a_file_maps_its_64k_window(space: AddressSpace, tmp_path) -> None:
    """Linux's fault-around: one read fault maps the aligned 16-page window, read-only in a
    private mapping, each page from the page cache (refcount: cache + one mapping)."""
    cached = _cached_file(space, tmp_path, 40)
    space.reserve_region(0x100000, 40, PROT_READ, file=cached, name="data.bin")
    record = space.handle_page_fault(0x105123, Access.READ)
    assert record.kind == "file" and record.around == 15
    mapped = [va for va, _ in space.pagetable.iter_leaves(0x100000, 0x128000)]
    assert mapped == list(range(0x100000, 0x110000, P))
    for va in mapped:
        m = space.pagetable.lookup(va)
        assert not m.entry & PTE_WRITABLE and space.frames.refcount(m.pa >> 12) == 2
        assert copy_in(space, va, 2) == bytes([(va - 0x100000) // P + 1]) * 2
    assert space.fault_counts == {"file": 1, "mapped-around": 15}
    space.check_invariants()


def test_fault_around_stops_at_end_of_file_and_region(space: AddressSpace, tmp_path) -> None:
    cached = _cached_file(space, tmp_path, 20.5)  # 21 pages, the last one partial
    space.reserve_region(0x200000, 30, PROT_READ, file=cached, name="data.bin")
    space.handle_page_fault(0x210000, Access.READ)
    mapped = [va for va, _ in space.pagetable.iter_leaves(0x200000, 0x220000)]
    assert mapped == list(range(0x210000, 0x215000, P))  # pages 16..20; 21+ is past EOF (SIGBUS)
    assert copy_in(space, 0x214000, 4) == b"\xee" * 4 and copy_in(space, 0x214800, 4) == bytes(4)
    with pytest.raises(GuestFault) as info:
        space.handle_page_fault(0x215000, Access.READ)
    assert info.value.signo == signal.SIGBUS
    space.check_invariants()


def test_write_faults_and_a_window_of_one_map_one_page(space: AddressSpace, tmp_path) -> None:
    """A write fault copies (do_cow_fault) with no fault-around; file_fault_around = 1 turns
    it off for reads too."""
    cached = _cached_file(space, tmp_path, 32)
    space.reserve_region(0x300000, 32, RW, file=cached, name="data.bin")
    assert space.handle_page_fault(0x300000, Access.WRITE).around == 0
    space.file_fault_around = 1
    assert space.handle_page_fault(0x310000, Access.READ).around == 0
    assert len(list(space.pagetable.iter_leaves(0x300000, 0x320000))) == 2
    space.check_invariants()


def test_fault_around_keeps_dirty_cached_pages(space: AddressSpace, tmp_path) -> None:
    """A shared mapping's page written before the window is read stays as written."""
    cached = _cached_file(space, tmp_path, 16)
    space.reserve_region(0x400000, 16, RW, flags=RegionFlag.SHARED, file=cached, name="data.bin")
    space.file_fault_around = 1
    copy_out(space, 0x403000, b"dirty")
    space.file_fault_around = 16
    space.handle_page_fault(0x400000, Access.READ)
    assert copy_in(space, 0x403000, 5) == b"dirty"
    assert copy_in(space, 0x404000, 1) == b"\x05"
    space.check_invariants()


def test_fault_around_window_rounds_down_to_a_power_of_two(space: AddressSpace, tmp_path) -> None:
    """As Linux's fault_around_bytes: 12 pages asked, an aligned window of 8 used."""
    cached = _cached_file(space, tmp_path, 32)
    space.reserve_region(0x500000, 32, PROT_READ, file=cached, name="data.bin")
    space.file_fault_around = 12
    assert space.handle_page_fault(0x50A000, Access.READ).around == 7
    assert [va for va, _ in space.pagetable.iter_leaves(0x500000, 0x520000)] == list(range(0x508000, 0x510000, P))


def test_a_write_spanning_cached_pages_lands_in_both(space: AddressSpace, tmp_path) -> None:
    """CachedFile.wrote: write() data reaches every cached page it covers, and only those."""
    cached = _cached_file(space, tmp_path, 16)
    space.reserve_region(0x600000, 16, PROT_READ, file=cached, name="data.bin")
    space.file_fault_around = 1
    space.handle_page_fault(0x600000, Access.READ)
    space.handle_page_fault(0x601000, Access.READ)
    assert cached.wrote(P - 4, b"01234567", space.mem) and not cached.wrote(5 * P, b"x", space.mem)
    assert copy_in(space, 0x600000 + P - 6, 12) == b"\x01\x01" + b"01234567" + b"\x02\x02"
    assert not cached.wrote(P, b"", space.mem)


# -- issue 12: maximum protection, fork's region records, work over holes -----------------


def test_protect_beyond_max_prot_is_eacces_and_changes_nothing(space: AddressSpace) -> None:
    """A shared mapping of a read-only descriptor (Linux: VM_MAYWRITE clear, man 2 mprotect)."""
    space.reserve_region(0x10000, 2, PROT_READ, flags=RegionFlag.SHARED, max_prot=PROT_READ | PROT_EXEC)
    space.reserve_region(0x12000, 1, PROT_READ)
    for start, length in ((0x10000, P), (0x11000, 2 * P), (0x10000, 3 * P)):
        with pytest.raises(SyscallError) as info:
            space.protect_range(start, length, RW)
        assert info.value.errno == errno.EACCES
    assert [r.prot for r in space.regions] == [PROT_READ, PROT_READ]
    space.protect_range(0x10000, P, PROT_READ | PROT_EXEC)  # exec stays allowed
    space.protect_range(0x12000, P, RW)
    assert [(r.prot, r.max_prot) for r in space.regions] == [
        (PROT_READ | PROT_EXEC, PROT_READ | PROT_EXEC), (PROT_READ, PROT_READ | PROT_EXEC), (RW, 7)]
    with pytest.raises(SyscallError) as info:  # the limit survives the split
        space.protect_range(0x11000, P, PROT_WRITE)
    assert info.value.errno == errno.EACCES
    space.check_invariants()


def test_protect_reports_the_first_problem_in_address_order(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 1, PROT_READ, max_prot=PROT_READ)
    with pytest.raises(SyscallError) as info:  # a refused region before a hole: EACCES
        space.protect_range(0x10000, 3 * P, RW)
    assert info.value.errno == errno.EACCES
    space.reserve_region(0x20000, 1, PROT_READ, max_prot=PROT_READ)
    with pytest.raises(SyscallError) as info:  # a hole before a refused region: ENOMEM
        space.protect_range(0x1F000, 2 * P, RW)
    assert info.value.errno == errno.ENOMEM


def test_fork_shares_region_records(space: AddressSpace) -> None:
    """Regions are immutable, so fork copies the tree, not the records (issue 12: a fork of
    a 65,000-region process held ~10 MB of copies)."""
    for i in range(100):
        space.reserve_region(0x10000 + 2 * i * P, 1, RW if i % 2 else PROT_READ)
    child = space.clone_cow()
    assert all(a is b for a, b in zip(space.regions, child.regions, strict=True))
    child.protect_range(0x10000, P, RW)  # a change in one is a new record there only
    assert space.find_region(0x10000).prot == PROT_READ and child.find_region(0x10000).prot == RW
    child.unmap_range(0x12000, P)
    assert space.find_region(0x12000) is not None
    space.check_invariants()
    child.check_invariants()
    child.destroy()


def test_populate_walks_regions_not_pages(space: AddressSpace) -> None:
    """MAP_POPULATE over a huge range with holes maps the regions' pages, one per step."""
    space.reserve_region(0x10000, 2, RW)
    space.reserve_region(0x7000_0000_0000, 1, RW)
    space.reserve_region(0x4000_0000, 1, RW, page_size=2 << 20)
    space.reserve_region(0x5000_0000, 1 << 28, PROT_NONE)  # 1 TiB: populate skips it
    space.populate(0, 0x7FFF_FFFF_F000)
    assert [va for va, _ in space.pagetable.iter_leaves()] == [0x10000, 0x11000, 0x4000_0000, 0x7000_0000_0000]
    space.check_invariants()


def test_populate_stops_at_the_end_of_the_file(space: AddressSpace) -> None:
    space.reserve_region(0x10000, 3, PROT_READ, file=Blob(b"x" * P))
    space.populate(0x10000, 0x13000)  # Linux's populate ignores the failure; a touch is SIGBUS
    assert [va for va, _ in space.pagetable.iter_leaves()] == [0x10000]
    space.check_invariants()
