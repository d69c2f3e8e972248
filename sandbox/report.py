"""`sandbox report PROG -o report.html`: an address-space explorer in one self-contained page.

A `Recorder` listens to every fault of every process of a run (`Kernel.fault_listeners`)
and snapshots each address space just before the kernel frees it (`Kernel.space_listeners`:
a process's exit or execve), and the first process's at the end of the run. A snapshot is
what the page shows: the regions as `sandbox maps` lists them, with their resident pages;
the page-table tree (PML4 -> PDPT -> PD -> PT, runs of leaves collapsed as `sandbox
pagetable` does); and, found at that moment among the spaces still alive, the frames it
shares with another process (after fork: copy-on-write, or read-only file pages).

The guest decides how much there is to show, so everything is capped (the `MAX_` constants;
the page says what was left out): a program touching 65,536 pages makes a page of well
under 5 MB. `sandbox.report_page` turns the data into HTML.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from sandbox.errors import LoadError, SandboxError
from sandbox.kernel.options import Options
from sandbox.kernel.procfs_pid import maps_header
from sandbox.mm import PAGE_SHIFT
from sandbox.mm.dump import LEVELS, run_length
from sandbox.mm.pagetable import (
    KERNEL_PML4_FIRST,
    PTE_ADDR_MASK,
    PTE_HUGE,
    PTE_HUGE_ADDR_MASK,
    PTE_PRESENT,
    PTE_WRITABLE,
    format_pte,
)
from sandbox.mm.vma import PROT_WRITE, RegionKind
from sandbox.trace import OutputFailed

if TYPE_CHECKING:
    from sandbox.api import RunResult, Sandbox
    from sandbox.kernel.process import ThreadGroup
    from sandbox.mm.aspace import AddressSpace
    from sandbox.mm.fault import FaultRecord
    from sandbox.mm.pagetable import PageTable
    from sandbox.mm.vma import Region

#: Faults drawn on the timeline (the rest are counted by kind, not drawn).
MAX_FAULTS = 10_000
#: Rows of the timeline (a region of a process each); faults beyond go to OTHER_ROW.
MAX_ROWS = 200
OTHER_ROW = "other regions"
#: Processes snapshotted as they end (a fork loop's later ones are counted only); the first
#: process, snapshotted at the end of the run, comes on top.
MAX_PROCESSES = 64
#: Regions listed per process.
MAX_REGIONS = 2_000
#: Page-table entries (a collapsed run is one) shown across the whole report, and for one
#: process (the first process's tree, drawn last, has its share kept for it).
MAX_TREE_NODES = 20_000
MAX_TREE_NODES_EACH = 5_000
#: Rows of the shared-frame table.
MAX_SHARED = 5_000
#: Processes listed for one shared frame (a fork loop's children all share the text).
MAX_SHARERS = 16
#: Leaf entries the search for shared frames may read over the run (each process's end
#: reads the tables of every live one): a fork loop must not make it quadratic without end.
MAX_SHARE_VISITS = 2_000_000
#: The run options `sandbox report` takes: the sandbox's own (`Options`) and those
#: `run_report` turns into them. The others (--stats, --translate ...) are `sandbox run`'s.
REPORT_OPTIONS = frozenset(Options.__annotations__) | {
    "mounts", "env", "fault_log", "fault_around", "keep_root", "trace_out", "trace_filter"}
LEAF = 3  # the PT level in dump.LEVELS


class Budget:
    """A count of things still allowed; `take` says whether one more fits."""

    def __init__(self, most: int) -> None:
        self.left = most
        self.exhausted = False

    def take(self, n: int = 1) -> bool:
        """Spend `n`; False (and exhausted) once there is not enough left."""
        if self.left < n:
            self.exhausted = True
            return False
        self.left -= n
        return True


class Recorder:
    """What the page needs, gathered during the run: faults, snapshots, shared frames."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox, self.kernel = sandbox, sandbox.kernel
        self.frames = sandbox.machine.frames
        self.faults: list[list] = []
        self.fault_counts: Counter[str] = Counter()
        self.total = 0
        self.rows: dict[tuple[int, str], int] = {}  # (pid, region key) -> timeline row
        self.row_starts: list[int] = []  # each row's region start, to sort the rows by
        self.processes: list[dict] = []
        self.processes_dropped = 0
        self.shared: dict[int, dict[int, dict]] = {}  # pfn -> pid -> how that process maps it
        self.sharers_dropped = 0  # processes not listed for a frame (MAX_SHARERS)
        self.tree_left = MAX_TREE_NODES - MAX_TREE_NODES_EACH  # for all but the final snapshot
        self.trees_capped = False
        self.share_budget = Budget(MAX_SHARE_VISITS)
        self.kinds: dict[str, int] = {}

    def attach(self) -> None:
        """Listen to every fault and every address space's end, from now on."""
        self.sandbox.add_fault_listener(self.on_fault)
        self.kernel.space_listeners.append(self.on_space_retired)

    def detach(self) -> None:
        """Stop listening (the sandbox's own teardown frees what is left)."""
        self.kernel.fault_listeners.remove(self.on_fault)
        self.kernel.space_listeners.remove(self.on_space_retired)

    def on_fault(self, _tid: int, space: AddressSpace, record: FaultRecord, rip: int | None) -> None:
        """A fault listener: count it; keep it for the timeline while there is room."""
        self.fault_counts[record.kind] += 1
        self.total += 1
        if len(self.faults) >= MAX_FAULTS:
            return
        key = (space.owner_pid, _region_key(record.region))
        if key not in self.rows and len(self.rows) >= MAX_ROWS:
            key = (space.owner_pid, OTHER_ROW)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = len(self.rows)
            self.row_starts.append(record.region.start)
        kind = self.kinds.setdefault(record.kind, len(self.kinds))
        self.faults.append([self.total, row, record.va, rip, kind, record.access_name,
                            record.pfn])

    def on_space_retired(self, group: ThreadGroup, space: AddressSpace) -> None:
        """A space listener: `space` is about to be freed (exit, or execve replaced it)."""
        event = "exit" if group.space is space else "execve"
        self.snapshot(group, space, event)

    def snapshot(self, group: ThreadGroup, space: AddressSpace, event: str, final: bool = False) -> None:
        """Keep `group`'s view of `space` now, and the frames it shares with live processes.
        `final`: the first process's at the end of the run (always kept)."""
        self.find_shared(group, space)
        if len(self.processes) >= MAX_PROCESSES and not final:
            self.processes_dropped += 1
            return
        budget = Budget(MAX_TREE_NODES_EACH if final else min(MAX_TREE_NODES_EACH, self.tree_left))
        most = budget.left
        regions = list(space.regions)
        self.processes.append({
            "pid": group.pid, "ppid": group.ppid, "exe": group.exe, "event": event,
            "ended": _how_ended(group) if event == "exit" else f"replaced by execve of {group.exe}",
            "cr3": space.cr3, "regions_total": len(regions),
            "regions": [_region(space.pagetable, r) for r in regions[:MAX_REGIONS]],
            "resident": sum(m.size for _, m in space.pagetable.iter_leaves()) >> PAGE_SHIFT,
            "table_pages": space.pagetable.table_pages,
            "tree": tree_of(space.pagetable, budget),
        })
        self.tree_left -= 0 if final else most - budget.left
        self.trees_capped |= budget.exhausted

    def find_shared(self, group: ThreadGroup, space: AddressSpace) -> None:
        """Record the frames of `space` that another live process maps too: its frames with
        more than one reference, looked up in every other live space's leaves."""
        mine = {}
        for va, mapping in space.pagetable.iter_leaves():
            pfn = mapping.pa >> PAGE_SHIFT
            if self.frames.refcount(pfn) > 1:
                mine[pfn] = (va, mapping.entry)
        if not mine:
            return
        for other in self._other_processes(space):
            for va, mapping in other.space.pagetable.iter_leaves():
                if not self.share_budget.take():
                    return
                pfn = mapping.pa >> PAGE_SHIFT
                if pfn in mine:
                    self._note_shared(pfn, group, space, *mine[pfn])
                    self._note_shared(pfn, other, other.space, va, mapping.entry)

    def _other_processes(self, space: AddressSpace) -> list[ThreadGroup]:
        """One process for each live address space other than `space`."""
        seen = {id(space)}
        others = []
        for group in self.kernel.processes.values():
            if group.space is not None and id(group.space) not in seen:
                seen.add(id(group.space))
                others.append(group)
        return others

    def _note_shared(self, pfn: int, group: ThreadGroup, space: AddressSpace, va: int, entry: int) -> None:
        """`group` maps frame `pfn` at `va` with `entry`."""
        if pfn not in self.shared and len(self.shared) >= MAX_SHARED:
            return
        sharers = self.shared.setdefault(pfn, {})
        if group.pid not in sharers and len(sharers) >= MAX_SHARERS:
            self.sharers_dropped += 1
            return
        region = space.regions.find(va)
        sharers[group.pid] = {
            "pid": group.pid, "va": va, "writable": bool(entry & PTE_WRITABLE), "kind": _share_kind(region, entry),
            "region": region.label if region is not None else "",
        }

    def data(self, prog: str, argv: list[str], result: RunResult) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready data. Each fault is a list: [its number
        in the run, its row in `rows`, va, rip (None: the kernel's own access), its kind's
        index in `kinds`, access, pfn]; `processes` are in pid order, `shared` frames
        copy-on-write first; `capped` says what a cap cut, `limits` what the caps are."""
        shared = [{"pfn": pfn, "kind": _row_kind(maps), "maps": sorted(maps.values(), key=lambda m: m["pid"])}
                  for pfn, maps in self.shared.items() if len(maps) > 1]
        shared.sort(key=lambda row: (row["kind"] != "copy-on-write", row["pfn"]))
        rows, faults = self._sorted_rows()
        return {
            "prog": prog, "argv": argv, "status": result.status, "ended": result.message or f"exit {result.status}",
            "faults_total": self.total, "fault_counts": dict(self.fault_counts), "kinds": list(self.kinds),
            "rows": rows, "faults": faults, "processes": sorted(self.processes, key=lambda p: p["pid"]),
            "shared": shared, "shared_by_kind": dict(Counter(row["kind"] for row in shared)),
            "capped": self._capped(), "limits": {
                "faults": MAX_FAULTS, "rows": MAX_ROWS, "processes": MAX_PROCESSES, "regions": MAX_REGIONS,
                "tree": MAX_TREE_NODES, "tree_each": MAX_TREE_NODES_EACH, "shared": MAX_SHARED,
                "sharers": MAX_SHARERS},
        }

    def _capped(self) -> dict[str, Any]:
        """What each cap left out: True where one was reached (processes: how many)."""
        return {
            "faults": self.total > len(self.faults), "rows": any(label == OTHER_ROW for _, label in self.rows),
            "tree": self.trees_capped, "processes": self.processes_dropped,
            "regions": any(p["regions_total"] > len(p["regions"]) for p in self.processes),
            "shared": len(self.shared) >= MAX_SHARED or self.share_budget.exhausted or self.sharers_dropped > 0,
        }

    def _sorted_rows(self) -> tuple[list[dict], list[list]]:
        """The timeline's rows by process, then address; the faults renumbered to match."""
        order = sorted(self.rows.items(), key=lambda item: (item[0][0], item[0][1] == OTHER_ROW,
                                                            self.row_starts[item[1]], item[0][1]))
        new_index = {old: new for new, (_, old) in enumerate(order)}
        rows = [{"pid": pid, "label": label, "start": self.row_starts[old]} for (pid, label), old in order]
        return rows, [[n, new_index[row], *rest] for n, row, *rest in self.faults]


def _region_key(region: Region) -> str:
    """A timeline row's label: the region's name (Region.label), a file's last component,
    with its start unless the name holds one (anon@...) or the region moves it (the stack
    keeps its row as it grows; a heap keeps its row as brk moves its end; an ELF's segments
    and bss get a row each)."""
    label = region.label
    if label == "[stack]" or not region.name and region.kind is not RegionKind.BSS:
        return label
    return f"{os.path.basename(label) or label} {region.start:#x}"


def _how_ended(group: ThreadGroup) -> str:
    """'exit 0' or why a signal killed it."""
    return group.death.message if group.death else f"exit {group.exit_code & 0xFF}"


def _region(pagetable: PageTable, region: Region) -> dict[str, Any]:
    """A region as the page lists it: its `sandbox maps` line, decoded, and its resident pages."""
    line = maps_header(region).rstrip("\n")
    return {"start": region.start, "end": region.end, "perms": line.split()[1], "name": region.label,
            "resident": sum(m.size for _, m in pagetable.iter_leaves(region.start, region.end)) >> PAGE_SHIFT,
            "line": line}


def _share_kind(region: Region | None, entry: int) -> str:
    """How a frame mapped by several processes is shared, as one process maps it."""
    if region is None:
        return "unknown"
    if region.shared:
        return "shared mapping"
    if region.prot & PROT_WRITE and not entry & PTE_WRITABLE:
        return "copy-on-write"
    return "read-only"


def _row_kind(maps: dict[int, dict]) -> str:
    """One kind for a shared frame: copy-on-write if any process would copy it on a write."""
    kinds = {m["kind"] for m in maps.values()}
    for kind in ("copy-on-write", "shared mapping", "read-only"):
        if kind in kinds:
            return kind
    return "unknown"


def tree_of(pagetable: PageTable, budget: Budget) -> dict[str, Any]:
    """The user half of `pagetable` as nested nodes (see `_table_nodes`), and a count of the
    kernel half's present PML4 entries (the same in every process)."""
    words, root = pagetable.mem.words, pagetable.root
    kernel = sum(1 for i in range(KERNEL_PML4_FIRST, 512) if words[(root >> 3) + i] & PTE_PRESENT)
    return {"root": root, "kernel_entries": kernel,
            "nodes": _table_nodes(words, root, 0, 0, KERNEL_PML4_FIRST, budget)}


def _table_nodes(words, table: int, level: int, base: int, last: int, budget: Budget) -> list[dict]:
    """The present entries of one table, each `{lv, i, n, bits, e, pfn, va, end}` plus
    `c` (the next table's entries) for a table entry or `page` ("4K", "2M") for a leaf.
    Runs of leaves with equal bits and consecutive frames are one node of `n` entries.
    When the budget runs out, a last node `{more: N}` counts the entries not shown."""
    shift, name, _ = LEVELS[level]
    nodes: list[dict] = []
    index = 0
    while index < last:
        entry = words[(table >> 3) + index]
        if not entry & PTE_PRESENT:
            index += 1
            continue
        if not budget.take():
            nodes.append({"more": sum(1 for i in range(index, last) if words[(table >> 3) + i] & PTE_PRESENT)})
            break
        leaf = level == LEAF or bool(entry & PTE_HUGE)
        run = run_length(words, table, index, last, entry, 1 << shift) if leaf else 1
        va = base | (index << shift)
        address = entry & (PTE_HUGE_ADDR_MASK if leaf and entry & PTE_HUGE else PTE_ADDR_MASK)  # SDM table 4-17
        node = {"lv": name, "i": index, "n": run, "bits": format_pte(entry).split(" ", 1)[1], "e": f"{entry:#018x}",
                "pfn": address >> PAGE_SHIFT, "va": va, "end": va + (run << shift)}
        if leaf:
            node["page"] = "2M" if entry & PTE_HUGE else "4K"
        else:
            node["c"] = _table_nodes(words, entry & PTE_ADDR_MASK, level + 1, va, 512, budget)
        nodes.append(node)
        index += run
    return nodes


# -- the command ------------------------------------------------------------------------------


def run_report(prog: str, args: tuple[str, ...], output: str, memory: int, trace_faults: bool,
               trace_syscalls: bool, mounts: tuple[str, ...], env: tuple[str, ...], fault_log: str | None,
               fault_around: int | None, keep_root: bool, **options: Any) -> int:
    """Run PROG with ARGS as `sandbox run` would (its stdout on the host's stderr: the
    page is the product), write the page to `output` and say so in one line on stdout;
    return the guest's exit status (or the sandbox's, as `sandbox run` reports it)."""
    from sandbox.cli import EXIT_IOERR, EXIT_USAGE, close_outputs, traced_calls

    if fault_around:
        from sandbox.mm.policy import fault_around as fault_around_policy

        options["fault_policies"] = [fault_around_policy(fault_around)]
    trace_out = options.pop("trace_out")
    options["trace_syscalls"] = traced_calls(trace_syscalls or bool(trace_out and not trace_faults),
                                              options.pop("trace_filter"))
    files: list = []
    try:
        options["trace_out"], options["fault_log"] = (_open_for(path, files) for path in (trace_out, fault_log))
    except OSError as error:
        close_outputs(files, None)
        say(f"sandbox: {error.filename}: {error.strerror}")
        return EXIT_USAGE
    failed = None
    try:
        status = _run_and_write(prog, args, output, keep_root, memory=memory, trace_faults=trace_faults,
                                mounts=list(mounts), env=list(env), **options)
    except OutputFailed as error:  # a trace or log the user named could not be written: the run ended
        failed = error
    finally:
        failed = close_outputs(files, failed)  # (a last buffer the disk refused, too)
    if failed is not None:
        say(f"sandbox: {failed}; the run was ended")
        return EXIT_IOERR
    return status


def _open_for(path: str | None, files: list) -> Any:
    """--trace-out's or --fault-log's file opened for writing and added to `files` (None
    if not given)."""
    if path is None:
        return None
    file = open(path, "w")  # noqa: SIM115 - run_report closes it
    files.append(file)
    return file


def _run_and_write(prog: str, args: tuple[str, ...], output: str, keep_root: bool, **sandbox_options: Any) -> int:
    """Run in a fresh sandbox with a Recorder; write the page from what it saw."""
    from sandbox.cli import EXIT_SIGNALLED, StopSignals, guest_stdout_to_stderr

    with StopSignals() as stop, guest_stdout_to_stderr(True):
        outcome = _record(prog, args, stop, keep_root, sandbox_options)
    if stop.signo is not None:
        say(f"sandbox: {prog}: killed by {signal.Signals(stop.signo).name} sent to the sandbox")
        return EXIT_SIGNALLED + stop.signo
    if isinstance(outcome, int):
        return outcome
    result, data = outcome
    message = stop.death_message(result)
    if message:
        say(f"sandbox: {prog}: {message}")
    return write_page(output, data) or result.status


def _record(prog: str, args: tuple[str, ...], stop: Any, keep_root: bool,
            sandbox_options: dict) -> tuple[RunResult, dict] | int:
    """(the result, the page's data), or the exit status when PROG could not run."""
    from sandbox.api import Sandbox, Stopped
    from sandbox.cli import (
        EXIT_CANNOT_EXECUTE,
        EXIT_INTERNAL,
        EXIT_NOT_FOUND,
        EXIT_SIGNALLED,
        close_sandbox,
        where,
    )

    try:
        sandbox = Sandbox(**sandbox_options)
        try:
            recorder = Recorder(sandbox)
            recorder.attach()
            try:
                with stop.running(sandbox):
                    result = sandbox.run(prog, [prog, *args])
                recorder.snapshot(sandbox.process, sandbox.process.space, "exit", final=True)
            finally:
                recorder.detach()  # the teardown's spaces are not the run's
            return result, recorder.data(prog, [prog, *args], result)
        finally:
            close_sandbox(sandbox, keep_root)
    except Stopped:
        return EXIT_SIGNALLED + stop.signo
    except SandboxError as error:
        say(f"sandbox: {error}")
        return EXIT_NOT_FOUND if isinstance(error, LoadError) and error.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
    except OutputFailed:  # the --trace-out or --fault-log the user named: not a sandbox bug (run_report)
        raise
    except Exception as error:  # noqa: BLE001 - reported as `sandbox run` reports a sandbox bug
        if os.environ.get("SANDBOX_DEBUG"):
            raise
        say(f"sandbox: internal error (a sandbox bug, not the guest's): {type(error).__name__}: "
             f"{error} at {where(error)}; SANDBOX_DEBUG=1 shows the traceback")
        return EXIT_INTERNAL


def write_page(output: str, data: dict) -> int:
    """Write the page; say what it holds on stdout. 0, or EXIT_CANNOT_EXECUTE if the file
    could not be written (its path was checked before the run, but a disk may fill)."""
    from sandbox.cli import EXIT_CANNOT_EXECUTE
    from sandbox.report_page import render

    try:
        with open(output, "w", encoding="utf-8", errors="replace") as f:  # argv may hold any bytes
            f.write(render(data))
    except OSError as error:
        say(f"sandbox: {output}: {error.strerror}")
        return EXIT_CANNOT_EXECUTE
    print(f"{output}: {summary(data)}")
    return 0


def summary(data: dict) -> str:
    """'2 processes, 131 faults, 37 frames shared between processes'."""
    count = len(data["processes"]) + data["capped"]["processes"]
    return (f"{count} process{'es' if count != 1 else ''}, {data['faults_total']} faults, "
            f"{len(data['shared'])} frames shared between processes")


def say(text: str) -> None:
    """One line on stderr (sandbox.cli's own, which never blocks for long)."""
    from sandbox.cli import say

    sys.stdout.flush()
    say(text)
