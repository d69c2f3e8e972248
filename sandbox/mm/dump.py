"""A printer for a live 4-level page-table tree (`sandbox pagetable`, `--dump-pagetables`).

Each table is shown with its physical address, each present entry with its index, the bits
it has set and what it points to. Runs of leaf entries whose frames are consecutive and whose
bits are equal are collapsed into one line, so a 60,000-page heap takes a few lines.
"""

from __future__ import annotations

from sandbox.mm.pagetable import (
    KERNEL_PML4_FIRST,
    PTE_ADDR_MASK,
    PTE_HUGE,
    PTE_PRESENT,
    PageTable,
    format_pte,
)

LEVELS = ((39, "PML4", "PDPT"), (30, "PDPT", "PD"), (21, "PD", "PT"), (12, "PT", "page"))


def _bits(entry: int) -> str:
    return format_pte(entry).split(" ", 1)[1]


def dump_pagetables(pagetable: PageTable) -> str:
    """The user half of the tree in full (runs collapsed), the kernel half summarized."""
    words = pagetable.mem.words
    root = pagetable.root
    lines = [f"PML4 @ {root:#x} (CR3)"]
    _dump_table(words, root, 0, 0, 0, KERNEL_PML4_FIRST, lines)
    kernel = [i for i in range(KERNEL_PML4_FIRST, 512) if words[(root >> 3) + i] & PTE_PRESENT]
    lines.append(f"  PML4[{KERNEL_PML4_FIRST}..511]: kernel half, {len(kernel)} present "
                 f"(supervisor-only, shared with every process)")
    return "\n".join(lines) + "\n"


def _dump_table(words, table: int, level: int, base: int, first: int, last: int, lines: list[str]) -> None:
    shift, name, child = LEVELS[level]
    indent = "  " * (level + 1)
    index = first
    while index < last:
        entry = words[(table >> 3) + index]
        if not entry & PTE_PRESENT:
            index += 1
            continue
        va = base | (index << shift)
        if level == 3 or entry & PTE_HUGE:
            run = _run_length(words, table, index, last, entry, 1 << shift)
            size = 1 << shift
            end_va = va + run * size
            frames = f"frame {entry & PTE_ADDR_MASK:#x}" if run == 1 else \
                f"frames {entry & PTE_ADDR_MASK:#x}..{(entry & PTE_ADDR_MASK) + (run - 1) * size:#x}"
            label = f"[{index}]" if run == 1 else f"[{index}..{index + run - 1}]"
            kind = "2 MiB page" if entry & PTE_HUGE else "page"
            plural = "s" if run > 1 else ""
            lines.append(f"{indent}{name}{label} {_bits(entry)}: {run} {kind}{plural} "
                         f"va {va:#x}-{end_va:#x}, {frames}")
            index += run
            continue
        lines.append(f"{indent}{name}[{index}] {_bits(entry)} -> {child} @ {entry & PTE_ADDR_MASK:#x} (va {va:#x})")
        _dump_table(words, entry & PTE_ADDR_MASK, level + 1, va, 0, 512, lines)
        index += 1


def _run_length(words, table: int, index: int, last: int, entry: int, size: int) -> int:
    """How many entries from `index` continue `entry`: same bits, next frame each."""
    flags = entry & ~PTE_ADDR_MASK
    run = 1
    while index + run < last:
        other = words[(table >> 3) + index + run]
        if other & ~PTE_ADDR_MASK != flags or (other & PTE_ADDR_MASK) != (entry & PTE_ADDR_MASK) + run * size:
            break
        run += 1
    return run
