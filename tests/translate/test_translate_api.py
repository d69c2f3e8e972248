"""`translate_va` from the Python API: the walk equals the CPU's own translation for every
present user page of a finished guest (4 KiB and 2 MiB), and for holes both say none."""

from __future__ import annotations

from sandbox.api import Sandbox
from sandbox.engine import UC_PROT_READ
from sandbox.mm.translate import translate_va
from tests.conftest import guest


def test_every_mapped_page_agrees_with_the_cpu() -> None:
    with Sandbox() as sb:
        sb.run(guest("demo-huge-pages"))
        space = sb.process.space
        space.switch_to()
        cpu = lambda va: sb.machine.uc.vmem_translate(va, UC_PROT_READ)  # noqa: E731
        sizes = set()
        for va, mapping in space.pagetable.iter_leaves():
            probe = va + mapping.size // 2 + 0x123
            t = translate_va(space, probe, cpu)
            assert t.pa is not None and t.pa == t.cpu_pa == space.pagetable.translate(probe), hex(probe)
            assert t.page_size == mapping.size and t.region is not None
            sizes.add(mapping.size)
        assert sizes == {4096, 2 << 20}
        hole = translate_va(space, 0x1234_5000, cpu)
        assert hole.pa is None and hole.cpu_pa is None and hole.agrees and hole.region is None
