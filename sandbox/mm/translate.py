"""One virtual address walked through the 4-level tables, step by step, for teaching.

`translate_va(space, va, cpu)` splits `va` into its PML4, PDPT, PD and PT indices and page
offset (Intel SDM vol. 3 §4.5, figure 4-8: bits 47:39, 38:30, 29:21, 20:12, 11:0), reads
each entry from guest-physical RAM as the CPU's MMU would, and stops at a not-present entry
or at a large page (PS in a PD entry: 2 MiB; in a PDPT entry: 1 GiB). The result is a
`Translation` record; `format_translation` prints it. Nothing here writes guest memory or
imports the machine: the CPU's own answer comes in as a callable (`Machine`'s Unicorn
`vmem_translate`), so that the two can be shown side by side and checked to agree.

`parse_va` turns the user's text (hex, decimal, or an ELF symbol) into a canonical address,
raising `ValueError` with the bad text in the message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from sandbox.mm import PAGE_SHIFT
from sandbox.mm.pagetable import (
    LEVEL_NAMES,
    LEVEL_SHIFTS,
    PD_SHIFT,
    PDPT_SHIFT,
    PT_SHIFT,
    PTE_ACCESSED,
    PTE_ADDR_MASK,
    PTE_DIRTY,
    PTE_GLOBAL,
    PTE_HUGE,
    PTE_NX,
    PTE_PCD,
    PTE_PRESENT,
    PTE_PWT,
    PTE_USER,
    PTE_WRITABLE,
)

#: Every bit the walk names, in the order the SDM's entry tables list them.
PTE_BIT_NAMES = (
    (PTE_PRESENT, "P"), (PTE_WRITABLE, "RW"), (PTE_USER, "US"), (PTE_PWT, "PWT"), (PTE_PCD, "PCD"),
    (PTE_ACCESSED, "A"), (PTE_DIRTY, "D"), (PTE_HUGE, "PS"), (PTE_GLOBAL, "G"), (PTE_NX, "NX"),
)
#: Bits 63:47 of a canonical address all equal bit 47 (SDM vol. 1 §3.3.7.1).
CANONICAL_SHIFT = 47
VA_BITS = 64
INDEX_MASK = 511
OFFSET_MASK = (1 << PAGE_SHIFT) - 1
#: What a present entry at each level points at when it is not a leaf.
_CHILD = {LEVEL_SHIFTS[i]: LEVEL_NAMES[LEVEL_SHIFTS[i + 1]] for i in range(len(LEVEL_SHIFTS) - 1)}
#: The page a leaf at each level maps.
_PAGE_KIND = {PT_SHIFT: "4 KiB page", PD_SHIFT: "2 MiB page", PDPT_SHIFT: "1 GiB page"}


class Step(NamedTuple):
    """One entry read on the walk: where the table is, the index taken, the entry."""

    level: str  # "PML4", "PDPT", "PD" or "PT"
    shift: int  # the address bits this level's index takes start here
    table: int  # physical address of the table
    index: int
    entry: int  # the raw 64-bit entry

    @property
    def slot(self) -> int:
        """Physical address of the entry itself."""
        return self.table + self.index * 8

    @property
    def present(self) -> bool:
        return bool(self.entry & PTE_PRESENT)

    @property
    def is_leaf(self) -> bool:
        """True if this entry maps a page (a PT entry, or PS above it) rather than a table."""
        return self.present and (self.shift == PT_SHIFT or bool(self.entry & PTE_HUGE))

    @property
    def bits(self) -> tuple[str, ...]:
        """The names of the bits set (P, RW, US, PWT, PCD, A, D, PS, G, NX)."""
        return tuple(name for bit, name in PTE_BIT_NAMES if self.entry & bit)

    @property
    def target(self) -> int:
        """The next table's or the page's physical address (bits 51:12; a large page's low
        bits below its size are its PAT and reserved bits, not address: SDM table 4-17)."""
        mask = PTE_ADDR_MASK & ~((1 << self.shift) - 1) if self.is_leaf else PTE_ADDR_MASK
        return self.entry & mask

    @property
    def target_kind(self) -> str:
        """What `target` is: the next table's level name, or the page's size."""
        return _PAGE_KIND[self.shift] if self.is_leaf else _CHILD[self.shift]


@dataclass(frozen=True)
class Translation:
    """The whole story of one address: indices, the entries read, where it stopped, the
    physical address found, the CPU's own answer, and the region (or None) it lies in."""

    va: int
    cr3: int
    steps: tuple[Step, ...]
    pa: int | None  # None when the walk met a not-present entry
    cpu_pa: int | None  # the CPU's answer; None if it has none (or no CPU was asked)
    cpu_asked: bool
    region: object | None  # sandbox.mm.vma.Region

    @property
    def indices(self) -> tuple[int, int, int, int]:
        """The PML4, PDPT, PD and PT indices of `va`."""
        return tuple((self.va >> shift) & INDEX_MASK for shift in LEVEL_SHIFTS)

    @property
    def offset(self) -> int:
        """The low 12 bits of `va`: the byte within a 4 KiB page."""
        return self.va & OFFSET_MASK

    @property
    def page_size(self) -> int | None:
        """The size of the page that maps `va`, or None."""
        last = self.steps[-1]
        return 1 << last.shift if last.is_leaf else None

    @property
    def stopped_at(self) -> Step | None:
        """The not-present entry the walk ended at, or None if it reached a page."""
        last = self.steps[-1]
        return None if last.present else last

    @property
    def agrees(self) -> bool:
        """True if the CPU's answer is the walk's (both None counts: neither translates)."""
        return not self.cpu_asked or self.cpu_pa == self.pa


def walk_steps(words, root: int, va: int) -> tuple[Step, ...]:
    """The entries the MMU reads for `va` from the PML4 at `root`, down to the leaf or the
    first not-present entry. `words` is guest RAM as u64 words (`PhysicalMemory.words`)."""
    steps = []
    table = root
    for shift in LEVEL_SHIFTS:
        index = (va >> shift) & INDEX_MASK
        step = Step(LEVEL_NAMES[shift], shift, table, index, words[(table >> 3) + index])
        steps.append(step)
        if not step.present or step.is_leaf:
            break
        table = step.target
    return tuple(steps)


def translate_va(space, va: int, cpu: Callable[[int], int | None] | None = None) -> Translation:
    """Walk `va` through `space`'s tables (an `AddressSpace`); `cpu(va)`, if given, is the
    CPU's own translation for the same tables. Precondition: `va` is canonical (`parse_va`)."""
    root = space.pagetable.root
    steps = walk_steps(space.mem.words, root, va)
    last = steps[-1]
    pa = last.target | (va & ((1 << last.shift) - 1)) if last.is_leaf else None
    cpu_pa = cpu(va) if cpu is not None else None
    return Translation(va, root, steps, pa, cpu_pa, cpu is not None, space.find_region(va))


def is_canonical(va: int) -> bool:
    """True if `va` is a 64-bit value whose bits 63:47 are all equal."""
    if not 0 <= va < 1 << VA_BITS:
        return False
    high = va >> CANONICAL_SHIFT
    return high in (0, (1 << (VA_BITS - CANONICAL_SHIFT)) - 1)


def parse_va(text: str, symbols: Callable[[str], int | None] | None = None) -> int:
    """A virtual address from `text`: 0x-hex, decimal, or a name `symbols` knows. Raises
    ValueError naming the text if it is none of those or not canonical."""
    text = text.strip()
    try:
        va = int(text, 0)
    except ValueError:
        va = symbols(text) if symbols is not None and text else None
        if va is None:
            raise ValueError(f"{text!r} is not an address (0x..., decimal, or a symbol of the program)") from None
    if not is_canonical(va):
        raise ValueError(f"{text!r} ({va:#x}) is not a canonical x86-64 address "
                         "(bits 63:47 must all equal bit 47)" if va >= 0 else f"{text!r} is negative: not an address")
    return va


def elf_symbol(path: str, name: str) -> int | None:
    """The value of symbol `name` in the ELF file at `path` (.symtab, else .dynsym), or None
    if the file cannot be read or has no such symbol. For a position-independent program
    this is an offset from its load address (see `symbol_va`)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section in (".symtab", ".dynsym"):
                table = elf.get_section_by_name(section)
                found = table.get_symbol_by_name(name) if table is not None else None
                if found:
                    return found[0]["st_value"]
    except (OSError, ELFError, ValueError):
        return None
    return None


def is_pie(path: str) -> bool:
    """True if the ELF at `path` is position-independent (ET_DYN): its symbols move."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            return ELFFile(f).header["e_type"] == "ET_DYN"
    except (OSError, ELFError, ValueError):
        return False


def load_base(space, path: str) -> int:
    """Where a position-independent program at `path` was loaded in `space`: the lowest
    region mapped from a file of its name, less its file offset (the first PT_LOAD segment
    maps offset 0). The region's name is the guest's path, so the base names are compared."""
    name = os.path.basename(path)
    starts = [r.start - r.offset for r in space.regions if r.file is not None and os.path.basename(r.name) == name]
    return min(starts, default=0)


def symbol_va(space, path: str, name: str) -> int | None:
    """The address of symbol `name` of the program at host path `path` as loaded in
    `space`, or None."""
    value = elf_symbol(path, name)
    if value is None:
        return None
    return value + load_base(space, path) if is_pie(path) else value


def format_translation(t: Translation) -> str:
    """The walk as text: the split, one block per entry, the result and the CPU's answer."""
    pml4, pdpt, pd, pt = t.indices
    lines = [f"virtual address {t.va:#018x}",
             f"  PML4 index {pml4} (bits 47-39), PDPT index {pdpt} (38-30), PD index {pd} (29-21), "
             f"PT index {pt} (20-12), offset {t.offset:#05x} (11-0)",
             f"  CR3 = {t.cr3:#x} (the PML4, pfn {t.cr3 >> PAGE_SHIFT:#x})"]
    for step in t.steps:
        lines += _format_step(step)
    lines.append(_format_result(t))
    if t.cpu_asked:
        cpu = f"{t.cpu_pa:#x}" if t.cpu_pa is not None else "no translation"
        lines.append(f"CPU (Unicorn vmem_translate): {cpu} -- {'agrees' if t.agrees else 'DISAGREES'}")
    lines.append(f"region: {_format_region(t.region)}")
    return "\n".join(lines) + "\n"


def _format_step(step: Step) -> list[str]:
    """One entry: the table, the index, the raw entry, its bits, what it points at."""
    head = f"{step.level}[{step.index}] in table at {step.table:#x}: entry {step.entry:#018x} @ {step.slot:#x}"
    if not step.present:
        return [head, "    not present (P clear): the walk stops here; an access page-faults"]
    lines = [head, f"    bits: {' '.join(step.bits)}",
             f"    -> {step.target_kind} at {step.target:#x} (pfn {step.target >> PAGE_SHIFT:#x})"]
    if step.is_leaf and step.shift != PT_SHIFT:
        lines.append(f"    PS set at the {step.level} level: a large page; the walk stops here")
    return lines


def _format_result(t: Translation) -> str:
    """The physical address, or where the walk stopped."""
    if t.pa is None:
        stop = t.stopped_at
        why = "inside a region: the first access faults it in" if t.region is not None else "no region either"
        return f"not mapped: the walk stopped at {stop.level}[{stop.index}] (not present; {why})"
    size = t.page_size
    return (f"physical address {t.pa:#x} (pfn {t.pa >> PAGE_SHIFT:#x}, offset {t.va & (size - 1):#x} "
            f"in a {_PAGE_KIND[size.bit_length() - 1]})")


def _format_region(region) -> str:
    """The region's range, protection and name, or that there is none."""
    if region is None:
        return "none (no region contains this address: an access is a SIGSEGV)"
    name = f" {region.name}" if region.name else ""
    return f"{region.start:#x}-{region.end:#x}{name} ({region.kind.name.lower()})"
