"""The stub's memory access on plain address spaces (no CPU run): a debugger's write into
read-only text copies the page first, so neither a forked copy of the space nor the page
cache (every other process mapping the program) sees it; reads never fault outside a region."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import api
from sandbox.gdbstub.memory import read_memory, write_memory
from sandbox.gdbstub.xfer import read_auxv
from tests.gdb.stubrun import build


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gdbmem"), "steps")


def _text_va(space) -> int:
    region = next(r for r in space.regions if r.prot & 4 and r.file is not None)  # PROT_EXEC, file-backed
    return region.start


def test_write_into_text_copies_the_page_for_this_space_only(program: Path) -> None:
    with api.Sandbox(memory=32 << 20) as sb:
        group = sb.kernel.spawn(str(program), [str(program)])
        space = group.space
        va = _text_va(space)
        original = read_memory(space, va, 16)
        assert len(original) == 16
        shared_pa = space.pagetable.lookup(va).pa  # the page cache's frame, mapped by both
        child = space.clone_cow()  # what fork does
        try:
            assert write_memory(space, va, b"\xcc")
            assert read_memory(space, va, 2) == b"\xcc" + original[1:2]
            assert read_memory(child, va, 16) == original  # the forked copy keeps its text
            assert sb.machine.mem.read(shared_pa, 16) == original  # and so does the page cache
            assert space.pagetable.lookup(va).pa != shared_pa
            assert not space.pagetable.lookup(va).entry & 2  # PTE_WRITABLE: still read-only to the guest
        finally:
            child.destroy()
        sb.kernel.check_invariants()
        sb._last = group  # noqa: SLF001 - let close() release it


def test_reads_stop_where_memory_ends(program: Path) -> None:
    with api.Sandbox(memory=32 << 20) as sb:
        group = sb.kernel.spawn(str(program), [str(program)])
        space = group.space
        assert read_memory(space, 0, 8) == b""
        assert read_memory(space, 0xFFFF_FFFF_8000_0000, 8) == b""
        assert read_memory(space, (1 << 47) - 4, 8) == b""
        assert not write_memory(space, 0, b"x")
        assert not write_memory(space, (1 << 47) - 1, b"xy")
        rsp = group.tasks[0].fresh_entry[1]
        auxv = read_auxv(space, rsp)
        assert len(auxv) % 16 == 0 and auxv[-16:] == bytes(16)  # ends with AT_NULL
        sb.kernel.check_invariants()
        sb._last = group  # noqa: SLF001 - let close() release it
