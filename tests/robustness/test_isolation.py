"""Isolation: what one process leaves in memory, the next cannot see; the kernel half and
the page tables are out of reach (kernel-half accesses are in the differential cases)."""

from __future__ import annotations

from sandbox.api import Sandbox
from tests.conftest import guest


def frames_of(sb: Sandbox) -> set[int]:
    return {m.pa for _, m in sb.process.space.pagetable.iter_leaves()}


def test_freed_frames_are_zeroed_before_reuse(capfd) -> None:
    with Sandbox(memory=48 << 20) as sb:
        assert sb.run(guest("secret"), ["secret", "write"]).status == 0
        written = frames_of(sb)
        sb.release()
        assert sb.run(guest("secret"), ["secret", "scan"]).status == 0
        reused = written & frames_of(sb)
    assert len(reused) > 500, "the reader was given many of the writer's old frames"
    assert "secret words found: 0\n" in capfd.readouterr().out


def test_page_tables_and_gdt_are_supervisor_only() -> None:
    """No user-half entry points at a page-table frame, and the kernel half has no U/S bit."""
    with Sandbox(memory=32 << 20) as sb:
        sb.run(guest("mmaptest"))
        space = sb.process.space
        tables = set(space.pagetable.live) | set(sb.machine.kernel_space.pagetable.live)
        kernel_pages = {pfn << 12 for pfn in sb.machine.kernel_frames}
        for _, m in space.pagetable.iter_leaves():
            assert m.pa not in tables and m.pa not in kernel_pages
        for level in sb.machine.kernel_space.pagetable.levels(0xFFFF_FFFF_8000_0000):
            assert not level.entry & 4, f"{level.name} entry grants user access"


def test_reused_code_frames_never_run_stale_translations(tmp_path) -> None:
    """QEMU caches translated code by physical address and does not see the sandbox's own
    writes into RAM: a frame that held one program's text and now holds another's must not
    run the old translation. Programs at the same address exit with different codes."""
    from tests.robustness import corpus

    with Sandbox(memory=16 << 20) as sb:
        for code in (7, 42, 99, 7, 13):
            path = tmp_path / f"exit{code}.elf"
            text = bytes([0xBF, code, 0, 0, 0, 0xB8, 231, 0, 0, 0, 0x0F, 0x05])  # mov edi; mov eax, 231; syscall
            corpus.random_code_elf(path, text + bytes(4096 - len(text)))
            assert sb.run(str(path)).status == code
            sb.release()
