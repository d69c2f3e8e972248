"""--fault-log: every page fault as a JSON line, for `sandbox plot` and other tools.

Imported only with --fault-log: json's import is a measurable share of start-up.
"""

from __future__ import annotations

import json
import time
import weakref
from typing import TYPE_CHECKING, TextIO

from sandbox.mm import PAGE_SIZE
from sandbox.mm.pagetable import PTE_PRESENT
from sandbox.trace import write_or_fail

if TYPE_CHECKING:
    from sandbox.mm.aspace import AddressSpace
    from sandbox.mm.fault import FaultRecord


class FaultLog:
    """--fault-log: every fault as a JSON line: time, pid (the thread), address, kind, access,
    rip, frame, the region's name (Region.label: a path, [heap], bss, anon@0x...), and the
    resident pages of the faulting address space after the fault (`sandbox plot` draws them).

    The resident count costs O(1) per fault, amortized: it is recounted exactly from the page
    table's per-table entry counts (one visit per table) once the faults since the last count
    pay for it at TABLES_PER_FAULT visits each, and advanced in between by the pages each
    fault maps. A small process (a few tables) is recounted at every fault; in a large one,
    pages unmapped between faults (munmap, MADV_DONTNEED) show a few faults late.
    """

    #: Page-table visits one fault may cost, amortized, to recount resident pages exactly.
    TABLES_PER_FAULT = 8

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()
        self.dumps = json.dumps
        #: Per address space: [resident pages, faults since the last exact count]. Weak: a
        #: space that ends leaves the table with it.
        self.resident: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __call__(self, pid: int, space: AddressSpace, record: FaultRecord, rip: int | None) -> None:
        write_or_fail(self.out, self.dumps({
            "t": round(time.monotonic() - self.start, 6), "pid": pid, "address": record.va,
            "kind": record.kind, "access": record.access_name, "rip": rip, "frame": record.pfn,
            "region": self.region_name(record.region), "resident": self._resident(space, record),
        }) + "\n")  # a full disk or a closed pipe ends the run: OutputFailed (sandbox.cli)

    @staticmethod
    def region_name(region) -> str:
        """The region's name, as every tool names it (Region.label)."""
        return region.label

    def _resident(self, space: AddressSpace, record: FaultRecord) -> int:
        """Resident pages of `space` after `record`: counted exactly when the faults since
        the last count pay for it, else the last count plus the pages this fault made
        present (a copy-on-write replaces a page: none)."""
        state = self.resident.get(space)
        if state is None or state[1] * self.TABLES_PER_FAULT >= len(space.pagetable.live):
            state = self.resident[space] = [space.pagetable.resident_pages(), 0]
            return state[0]
        state[1] += 1
        if record.new_entry & PTE_PRESENT and not record.old_entry & PTE_PRESENT:
            state[0] += record.region.page_size // PAGE_SIZE
        state[0] += record.around
        return state[0]
