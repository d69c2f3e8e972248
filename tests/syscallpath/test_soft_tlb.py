"""The software TLB of copy_in/copy_out (sandbox/mm/uaccess.py) on plain RAM, no CPU: a
cached walk is used only while every entry it read is unchanged, so each change of the
tables (unmap, mprotect, copy-on-write, fork, a freed table reused elsewhere, another space
on the same root) is seen at the next copy, with nobody telling the cache."""

from __future__ import annotations

import errno

import pytest

from sandbox.errors import SyscallError
from sandbox.mm import uaccess
from sandbox.mm.aspace import AddressSpace, NoMmu
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring, user_pa
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Access

RW = PROT_READ | PROT_WRITE
P = 4096
BASE = 0x10000


class CountingMmu(NoMmu):
    """NoMmu that counts code_changed calls."""

    def __init__(self) -> None:
        super().__init__()
        self.code_changes = 0

    def code_changed(self, pfns=None) -> None:
        self.code_changes += 1


@pytest.fixture
def space() -> AddressSpace:
    mem = PhysicalMemory(32 << 20)
    kernel = AddressSpace.new_kernel(mem, FrameAllocator(mem), CountingMmu())
    user = AddressSpace.new_user(kernel)
    user.mmu.load_cr3(user.cr3)
    return user


def efault(call, *args) -> None:
    with pytest.raises(SyscallError) as info:
        call(*args)
    assert info.value.errno == errno.EFAULT


def test_a_hit_reads_and_writes_the_page(space: AddressSpace) -> None:
    space.reserve_region(BASE, 2, RW)
    copy_out(space, BASE + 5, b"x")  # a fault, then cached
    assert (BASE + 5) >> 12 in uaccess._tlb
    copy_out(space, BASE + 6, b"yz")  # a hit
    assert copy_in(space, BASE + 5, 3) == b"xyz"
    assert space.mem.read(space.translate(BASE + 5), 3) == b"xyz"


def test_unmap_is_seen(space: AddressSpace) -> None:
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE, b"a")
    space.unmap_range(BASE, P)
    efault(copy_out, space, BASE, b"b")
    efault(copy_in, space, BASE, 1)


def test_a_freed_table_reused_elsewhere_is_seen(space: AddressSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's PT is freed at munmap and the same frame becomes the PT of another 2 MiB
    range, its entry at the same index mapping the same frame: the leaf alone would match."""
    space.reserve_region(BASE + (2 << 20), 1, RW)
    copy_out(space, BASE + (2 << 20), b"k")  # keeps the PD (and above) when the PT goes
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE, b"a")
    pfn = space.translate(BASE) >> 12
    space.frames.get(pfn)  # keep the frame for the second mapping
    table = space.pagetable.walk(BASE) & ~(P - 1)
    space.unmap_range(BASE, P)
    real, drained = space.frames.alloc_kernel, []

    def the_freed_table() -> int:  # the allocator's own answer, once it reaches that frame
        while (got := real()) != table >> 12:
            drained.append(got)
        return got

    monkeypatch.setattr(space.frames, "alloc_kernel", the_freed_table)
    other = BASE + (4 << 20)
    space.map_shared_frames(other, [pfn], RW)
    monkeypatch.undo()
    space.frames.put_many(drained)
    assert space.pagetable.walk(other) & ~(P - 1) == table  # the freed PT came back
    efault(copy_out, space, BASE, b"b")
    copy_out(space, other, b"c")
    assert copy_in(space, other, 1) == b"c"


def test_mprotect_is_seen(space: AddressSpace) -> None:
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE, b"a")
    space.protect_range(BASE, P, PROT_READ)
    efault(copy_out, space, BASE, b"b")
    assert copy_in(space, BASE, 1) == b"a"
    space.protect_range(BASE, P, 0)
    efault(copy_in, space, BASE, 1)
    space.protect_range(BASE, P, RW)
    copy_out(space, BASE, b"c")
    assert copy_in(space, BASE, 1) == b"c"


def test_copy_on_write_after_fork_is_seen(space: AddressSpace) -> None:
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE, b"parent")
    child = space.clone_cow()
    copy_out(child, BASE, b"child!")  # the child's walk: another root
    copy_out(space, BASE, b"again!")  # the parent's page is read-only now: copied, not shared
    assert copy_in(child, BASE, 6) == b"child!"
    assert copy_in(space, BASE, 6) == b"again!"


def test_a_destroyed_space_on_the_same_root(space: AddressSpace) -> None:
    """A new space may get the old one's PML4 frame: only its own tables count."""
    kernel_root = space.cr3
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE, b"a")
    fresh = AddressSpace.new_user_like(space)
    space.destroy()
    assert kernel_root  # (the root frame may or may not be reused: both must hold)
    efault(copy_in, fresh, BASE, 1)
    fresh.reserve_region(BASE, 1, RW)
    assert copy_in(fresh, BASE, 1) == b"\0"


def test_discarded_page_reads_zero(space: AddressSpace) -> None:
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE, b"a")
    space.discard_pages(BASE, P)
    assert copy_in(space, BASE, 1) == b"\0"


def test_executable_pages_drop_translated_code(space: AddressSpace) -> None:
    space.reserve_region(BASE, 1, RW | PROT_EXEC)
    space.reserve_region(BASE + P, 1, RW)
    copy_out(space, BASE + P, b"d")
    copy_out(space, BASE + P, b"d")
    assert space.mmu.code_changes == 0
    copy_out(space, BASE, b"\xc3")  # the slow path: by the region
    copy_out(space, BASE, b"\xc3")  # a hit: by the leaf's NX bit
    assert space.mmu.code_changes == 2
    copy_out(space, BASE + P - 1, b"\x90\x90")  # across both pages
    assert space.mmu.code_changes == 3


def test_spans_and_bad_addresses(space: AddressSpace) -> None:
    space.reserve_region(BASE, 3, RW)
    data = bytes(range(256)) * 40  # 10,240 bytes over three pages
    copy_out(space, BASE + 100, data)
    assert copy_in(space, BASE + 100, len(data)) == data
    assert copy_in(space, BASE, 0) == b""
    copy_out(space, BASE, b"")
    for va in (-1, 1 << 47, (1 << 64) - 4096, 0):
        efault(copy_in, space, va, 1)
        efault(copy_out, space, va, b"x")
    efault(copy_in, space, BASE, 1 << 62)
    efault(copy_out, space, BASE + 3 * P - 1, b"xy")  # runs off the region


def test_cstring_and_user_pa(space: AddressSpace) -> None:
    space.reserve_region(BASE, 2, RW)
    copy_out(space, BASE + P - 3, b"abcdef\0")
    assert read_cstring(space, BASE + P - 3) == b"abcdef"
    pa, room = user_pa(space, BASE + 7, Access.WRITE)
    assert (pa, room) == (space.translate(BASE + 7), P - 7)
    pa, room = user_pa(space, BASE + 8, int(Access.READ))
    assert room == P - 8


def test_the_cache_is_bounded(space: AddressSpace) -> None:
    pages = uaccess.TLB_PAGES + 10
    space.reserve_region(BASE, pages, RW)
    for i in range(pages):
        copy_out(space, BASE + i * P, b"p")
    assert len(uaccess._tlb) <= uaccess.TLB_PAGES
    assert all(copy_in(space, BASE + i * P, 1) == b"p" for i in range(pages))


def test_cstring_limits(space: AddressSpace) -> None:
    space.reserve_region(BASE, 1, RW)
    copy_out(space, BASE + P - 8, b"12345678")  # runs on into the unmapped page after
    with pytest.raises(SyscallError) as info:
        read_cstring(space, BASE + P - 8, limit=7)
    assert info.value.errno == errno.ENAMETOOLONG  # 8 bytes read, none NUL: too long, not a fault
    efault(read_cstring, space, BASE + P - 8, 8)  # the ninth byte is unmapped
    copy_out(space, BASE + P - 4, b"\0")
    assert read_cstring(space, BASE + P - 8, limit=4) == b"1234"
    with pytest.raises(SyscallError) as info:
        read_cstring(space, BASE + P - 8, limit=3)
    assert info.value.errno == errno.ENAMETOOLONG
    assert read_cstring(space, BASE + P - 4) == b""
