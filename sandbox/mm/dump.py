"""A printer for a live 4-level page-table tree (`sandbox pagetable`, `--dump-pagetables`),
and the one way the teaching tools name an entry and a frame.

Each table is shown with the frame it lives in, each present entry with its index, the bits
it has set and what it points to. Runs of leaf entries whose frames are consecutive and whose
bits are equal are collapsed into one line, so a 60,000-page heap takes a few lines. A legend
of the bits the tree shows, and of the units, ends the printout.

Frames are always said in one unit, the page frame number: `pfn 0x1a3` is the 4 KiB frame at
guest-physical address 0x1a3000 (pfn = physical address >> 12), as Linux's `page_to_pfn`
counts them and as `FaultRecord.pfn`, `--fault-log` and `sandbox translate` say. An entry is
said as `pfn 0x1a3 P RW US A D NX`: the frame it points at, then the names `format_pte`
gives its set bits (Intel SDM vol. 3 §4.5, tables 4-15 to 4-20).
"""

from __future__ import annotations

from sandbox.mm import PAGE_SHIFT
from sandbox.mm.pagetable import (
    KERNEL_PML4_FIRST,
    PTE_ADDR_MASK,
    PTE_HUGE,
    PTE_HUGE_ADDR_MASK,
    PTE_PRESENT,
    PageTable,
    format_pte,
)

LEVELS = ((39, "PML4", "PDPT"), (30, "PDPT", "PD"), (21, "PD", "PT"), (12, "PT", "page"))

#: What each bit name `format_pte` prints means, in its order (SDM vol. 3 tables 4-15..4-20).
BIT_MEANINGS = (
    ("P", "present: the entry maps a table or a page (clear: any access faults)"),
    ("RW", "writable (clear: read-only, a write faults; copy-on-write relies on it)"),
    ("US", "user: reachable from user mode, CPL 3 (clear: the kernel's only)"),
    ("PWT", "page-level write-through caching"),
    ("PCD", "page-level cache disable"),
    ("A", "accessed: the CPU set it when it used the entry"),
    ("D", "dirty: the CPU set it on a write to the page"),
    ("PS", "page size: maps a 2 MiB (PD) or 1 GiB (PDPT) page instead of pointing at a table"),
    ("G", "global: the TLB keeps it across CR3 loads"),
    ("NX", "no-execute: fetching an instruction from the page faults"),
)
#: The units the tree's lines use, said once under it.
UNITS_LEGEND = (
    ("pfn N", "page frame number: the 4 KiB frame of guest RAM at physical address N << 12"),
    ("X @ pfn N", "table X (PML4, PDPT, PD or PT: 512 entries of 8 bytes) lives in frame N"),
    ("X[i]", "entry i of table X; [i..j]: a run of entries, same bits, consecutive frames"),
)


def pte_bits(entry: int) -> str:
    """The names of a present entry's set bits, as `format_pte` gives them ('P RW US A')."""
    return format_pte(entry).split(" ", 1)[1]


def entry_pfn(entry: int) -> int:
    """The frame a present entry points at (a 2 MiB page's bits 20:12 are PAT and reserved
    bits, not address: SDM table 4-17)."""
    return (entry & (PTE_HUGE_ADDR_MASK if entry & PTE_HUGE else PTE_ADDR_MASK)) >> PAGE_SHIFT


def describe_pte(entry: int) -> str:
    """An entry in the teaching tools' unit: 'pfn 0x1a3 P RW US A D NX', 'empty (not
    present)' for 0, or the raw value of another not-present entry."""
    if not entry & PTE_PRESENT:
        return "empty (not present)" if entry == 0 else f"{entry:#x} (not present)"
    return f"pfn {entry_pfn(entry):#x} {pte_bits(entry)}"


def name_bits(names: list[str] | None = None) -> str:
    """'P present, RW writable, ...': the bits in `names` (all if None), a word for each."""
    return ", ".join(f"{name} {meaning.split(':')[0].split(' (')[0]}" for name, meaning in BIT_MEANINGS
                     if names is None or name in names)


def pte_legend(names: set[str] | None = None) -> list[str]:
    """The legend lines for the bits in `names` (all of them if None), after the units."""
    terms = [*UNITS_LEGEND, *((name, meaning) for name, meaning in BIT_MEANINGS if names is None or name in names)]
    width = max(len(term) for term, _ in terms)
    return ["legend:", *(f"  {term:<{width}}  {meaning}" for term, meaning in terms)]


def dump_pagetables(pagetable: PageTable) -> str:
    """The user half of the tree in full (runs collapsed), the kernel half summarized, then
    the legend of what it showed."""
    words = pagetable.mem.words
    root = pagetable.root
    lines = [f"PML4 @ pfn {root >> PAGE_SHIFT:#x} (CR3 {root:#x})"]
    names: set[str] = set()
    _dump_table(words, root, 0, 0, 0, KERNEL_PML4_FIRST, lines, names)
    kernel = [i for i in range(KERNEL_PML4_FIRST, 512) if words[(root >> 3) + i] & PTE_PRESENT]
    lines.append(f"  PML4[{KERNEL_PML4_FIRST}..511]: kernel half, {len(kernel)} present "
                 f"(supervisor-only, shared with every process)")
    return "\n".join(lines + pte_legend(names)) + "\n"


def _dump_table(words, table: int, level: int, base: int, first: int, last: int, lines: list[str],
                names: set[str]) -> None:
    """Lines for table `table`'s present entries in [first, last), and below them; the bit
    names used go into `names`."""
    shift, name, child = LEVELS[level]
    indent = "  " * (level + 1)
    index = first
    while index < last:
        entry = words[(table >> 3) + index]
        if not entry & PTE_PRESENT:
            index += 1
            continue
        va = base | (index << shift)
        bits = pte_bits(entry)
        names.update(bits.split())
        if level == 3 or entry & PTE_HUGE:
            run = run_length(words, table, index, last, entry, 1 << shift)
            lines.append(f"{indent}{name}{_label(index, run)} {bits}: {_leaf_text(entry, va, run, 1 << shift)}")
            index += run
            continue
        lines.append(f"{indent}{name}[{index}] {bits} -> {child} @ pfn {entry_pfn(entry):#x} (va {va:#x})")
        _dump_table(words, entry & PTE_ADDR_MASK, level + 1, va, 0, 512, lines, names)
        index += 1


def _label(index: int, run: int) -> str:
    return f"[{index}]" if run == 1 else f"[{index}..{index + run - 1}]"


def _leaf_text(entry: int, va: int, run: int, size: int) -> str:
    """'3 pages va 0x400000-0x403000, pfn 0x10..0x12': what a run of leaves maps. A run
    (or one 2 MiB page) names its first and last frame."""
    kind = "2 MiB page" if entry & PTE_HUGE else "page"
    first = entry_pfn(entry)
    last = first + ((run * size) >> PAGE_SHIFT) - 1
    frames = f"pfn {first:#x}" if last == first else f"pfn {first:#x}..{last:#x}"
    return f"{run} {kind}{'s' if run > 1 else ''} va {va:#x}-{va + run * size:#x}, {frames}"


def run_length(words, table: int, index: int, last: int, entry: int, size: int) -> int:
    """How many entries from `index` continue `entry`: same bits, next frame each."""
    flags = entry & ~PTE_ADDR_MASK
    run = 1
    while index + run < last:
        other = words[(table >> 3) + index + run]
        if other & ~PTE_ADDR_MASK != flags or (other & PTE_ADDR_MASK) != (entry & PTE_ADDR_MASK) + run * size:
            break
        run += 1
    return run
