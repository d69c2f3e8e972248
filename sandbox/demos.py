"""The fault-handling demos behind `sandbox demo NAME` (guests in examples/, built by
`make guests` as guests/build/demo-NAME).

Each demo runs its guest through the Python API with a fault recorder, then tells what
happened with the figures it measured: faults by kind, page-table entries before and after a
fault, the frames involved, each figure explained where it is first shown. `run_demo` returns
those figures, so the tests assert the story rather than just print it.

A demo takes the run options a learner wants beside it (`sandbox demo NAME --trace-faults
--fault-log FILE --memory SIZE --step-faults`): they go to the guest's `Sandbox`. The story
is wrapped to the terminal's width (COLUMNS, else the terminal's, else 80); the indented lines
that show page-table entries are never wrapped. Frames are said as `pfn 0x...`, entries as
sandbox/mm/dump.py says them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sandbox.errors import SandboxError
from sandbox.mm import PAGE_SIZE
from sandbox.mm.dump import describe_pte, entry_pfn, name_bits, pte_bits
from sandbox.mm.fault import FaultRecord
from sandbox.mm.pagetable import PTE_HUGE, PTE_PRESENT

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests" / "build"
#: Memory a demo's guest gets unless --memory says otherwise.
DEMO_MEMORY = 128 << 20
#: Lines that start with this are shown as they are (page-table entries), never wrapped.
VERBATIM = "    "


class DemoStopped(SandboxError):
    """The demo's guest did not finish (killed: out of memory, `q` at --step-faults...), so
    there is no story to tell; `status` is the run's exit status."""

    def __init__(self, guest: str, status: int, message: str | None) -> None:
        super().__init__(f"{guest}: {message or f'exited with status {status}'}")
        self.status = status


class Story:
    """Where a demo tells its story (wrapped to `width` columns, unless None) and how its
    guest runs (`options`: Sandbox options from the command line, such as memory,
    trace_faults, fault_log, step_faults)."""

    def __init__(self, out: TextIO, width: int | None = None, options: dict | None = None) -> None:
        self.out = out
        self.width = width
        self.options = dict(options or {})

    def write(self, text: str) -> None:
        """Write `text`, each line wrapped to the width unless it is VERBATIM."""
        if self.width is None:
            self.out.write(text)
            return
        lines = text.split("\n")
        wrapped = [line if line.startswith(VERBATIM) or not line else
                   textwrap.fill(line, self.width, break_on_hyphens=False, break_long_words=False)
                   for line in lines]
        self.out.write("\n".join(wrapped))

    def flush(self) -> None:
        self.out.flush()


@dataclass
class Seen:
    pid: int
    record: FaultRecord
    rip: int | None


class Recorder:
    """A fault listener that keeps every fault, for the narrative."""

    def __init__(self) -> None:
        self.faults: list[Seen] = []

    def __call__(self, pid, space, record, rip) -> None:
        self.faults.append(Seen(pid, record, rip))

    def where(self, kind: str | None = None, start: int = 0, end: int = 1 << 64, pid: int | None = None) -> list[Seen]:
        return [s for s in self.faults if (kind is None or s.record.kind == kind)
                and start <= s.record.va < end and (pid is None or s.pid == pid)]


@dataclass
class Demo:
    name: str
    title: str
    run: Callable[[Demo, Story], dict]

    @property
    def guest(self) -> str:
        path = GUESTS / f"demo-{self.name}"
        if not path.exists():
            raise SandboxError(f"{path} is not built: run `make guests`")
        return str(path)

    @property
    def source(self) -> str:
        """The guest's C source, from the repository's top: examples/demand_paging.c."""
        return f"examples/{self.name.replace('-', '_')}.c"


def _entry_change(seen: Seen) -> str:
    """The leaf entry a fault changed, before -> after, on a verbatim line; then what its
    figures mean."""
    r = seen.record
    names = {name for entry in (r.old_entry, r.new_entry) if entry & PTE_PRESENT for name in pte_bits(entry).split()}
    return (f"{VERBATIM}{describe_pte(r.old_entry)}  ->  {describe_pte(r.new_entry)}\n"
            f"(An entry is shown as the frame it points at -- pfn, the page frame number: the frame's "
            f"physical address divided by 4096 -- then its set bits: {name_bits(sorted(names))}.)\n")


def _run(demo: Demo, story: Story, argv: list[str] | None = None, **options):
    """Run the demo's guest with a recorder and the story's run options; returns (result,
    recorder, the sandbox's stats, the last process's regions). `after(sb)`, if given, is
    called once the guest ended, while its memory can still be read. Raises DemoStopped if
    the guest did not exit with status 0."""
    from sandbox.api import Sandbox

    recorder = Recorder()
    listeners = options.pop("listeners", [])
    after = options.pop("after", None)
    options = {"memory": DEMO_MEMORY, **story.options, **options}
    step = options.pop("step_faults", False)
    with Sandbox(**options) as sb:
        sb.add_fault_listener(recorder)
        for listener in listeners:
            sb.add_fault_listener(listener)
        stepper = _stepper(sb) if step else None
        story.flush()
        try:
            result = sb.run(demo.guest, argv or [demo.guest])
        finally:
            if stepper is not None:
                stepper.close()
        sys.stdout.flush()
        stats = dict(sb.kernel.stats)
        regions = list(sb.process.space.regions) if sb.process.space else []
        if after is not None and result.status == 0:
            after(sb)
    if result.status != 0:
        raise DemoStopped(demo.guest, result.status, result.message)
    return result, recorder, stats, regions


def _stepper(sb):  # noqa: ANN001, ANN202 - a Sandbox; a FaultStepper
    """--step-faults: a panel per fault on stderr, pausing on a terminal."""
    from sandbox.stepper import FaultStepper

    stepper = FaultStepper(sb)
    sb.add_fault_listener(stepper)
    return stepper


def demand_paging(demo: Demo, out: Story) -> dict:
    result, rec, _, regions = _run(demo, out)
    heap = next(r for r in regions if r.size == 64 << 20)
    bss = max((r for r in regions if r.kind.value == "bss"), key=lambda r: r.size)
    heap_faults = rec.where("demand-zero", heap.start, heap.end)
    in_bss = rec.where("demand-zero", bss.start, bss.end)
    loop_rip = Counter(s.rip for s in in_bss).most_common(1)[0][0]  # the array's store instruction
    bss_faults = [s for s in in_bss if s.rip == loop_rip]
    out.write(f"The guest reserved {heap.size >> 20} MiB with mmap and has {bss.size >> 20} MiB of bss (its "
              f"zero-filled static data): {(heap.size + bss.size) >> 12} pages of 4 KiB, none of them backed "
              f"by a frame (4 KiB of guest-physical RAM) yet.\n"
              f"It touched 1000 mmap pages and 200 pages of its bss array, and took exactly {len(heap_faults)} "
              f"and {len(bss_faults)} demand-zero faults there (the latter all at rip {loop_rip:#x}: rip is the "
              f"address of the instruction that faulted, here the loop's store): one per page touched, each "
              f"mapping one fresh, zeroed frame. The C library's own bss took "
              f"{len(in_bss) - len(bss_faults)} more.\n"
              f"The first mmap fault, at {heap_faults[0].record.va:#x} (rip {heap_faults[0].rip:#x}), changed "
              f"the page's page-table entry, before -> after:\n{_entry_change(heap_faults[0])}")
    return {"status": result.status, "mmap_faults": len(heap_faults), "bss_faults": len(bss_faults)}


def cow_fork(demo: Demo, out: Story) -> dict:
    result, rec, stats, regions = _run(demo, out)
    data = next(r for r in regions if r.size == 64 * 4096)
    parent, child = min(s.pid for s in rec.faults), max(s.pid for s in rec.faults)
    child_copies = rec.where("copy-on-write", data.start, data.end, pid=child)
    parent_copies = rec.where("copy-on-write", data.start, data.end, pid=parent)
    others = len(rec.where("copy-on-write")) - len(child_copies) - len(parent_copies)
    first = child_copies[0]
    old_pfn, new_pfn = entry_pfn(first.record.old_entry), first.record.pfn
    out.write(f"fork shared {stats['pages_shared_at_fork']} pages between parent and child: both page tables "
              f"point at the same frames, read-only (RW clear), each frame's reference count (the entries "
              f"that map it) raised to 2.\n"
              f"The child (pid {child}) wrote 16 pages of the 64-page buffer: {len(child_copies)} copy-on-write "
              f"faults there, each copying a shared frame to a new one. The parent (pid {parent}) wrote 8 "
              f"other pages while the child still lived: {len(parent_copies)} more copies. (The C library's "
              f"own data, stdio buffers and the stacks took {others} copies besides.)\n"
              f"The child's first write, at {first.record.va:#x}, before -> after:\n{_entry_change(first)}"
              f"The entry now points at a new frame (pfn {new_pfn:#x} instead of pfn {old_pfn:#x}) and is "
              f"writable; the old frame stays the parent's, "
              f"and the page the child wrote is private to it.\n")
    return {"status": result.status, "child_copies": len(child_copies), "parent_copies": len(parent_copies),
            "shared_at_fork": stats["pages_shared_at_fork"]}


def stack_growth(demo: Demo, out: Story) -> dict:
    result, rec, stats, _ = _run(demo, out)
    grown = [s for s in rec.faults if s.record.stack_grown]
    lowest = min(s.record.va for s in grown)
    signals = stats.get("signals_delivered", 0)
    out.write(f"Each recursion level uses about 1 KiB of stack. Touching the page just below the stack "
              f"region grows it (Linux's expand_stack): {len(grown)} faults grew the stack, one page each, "
              f"down to {lowest:#x} ({(0x7FFF_FFFF_F000 - (lowest & ~0xFFF)) >> 10} KiB below its top).\n"
              f"At the 8 MiB limit (RLIMIT_STACK) the next fault was refused: SIGSEGV, delivered on the "
              f"alternate stack ({signals} signal{'s' if signals != 1 else ''} delivered), whose handler "
              f"exited.\n")
    return {"status": result.status, "growth_faults": len(grown), "signals": signals,
            "stack_bytes": 0x7FFF_FFFF_F000 - (lowest & ~0xFFF)}


def write_barrier(demo: Demo, out: Story) -> dict:
    result, rec, stats, _ = _run(demo, out)
    signals = stats.get("signals_delivered", 0)
    out.write(f"The heap was filled, then made read-only with mprotect. Each first write to a page "
              f"faulted (a protection fault on a present page), became a SIGSEGV whose si_addr is the "
              f"address written, and the handler recorded the page and made it writable again: {signals} "
              f"signals for the 4 distinct pages written (6 writes). Later writes to a dirty page cost "
              f"nothing.\n")
    return {"status": result.status, "signals": signals}


def shared_memory(demo: Demo, out: Story) -> dict:
    result, rec, _, _ = _run(demo, out)
    shared = [s for s in rec.faults if s.record.region.shared]
    frames = {}
    for seen in shared:
        frames.setdefault(seen.record.pfn, set()).add(seen.pid)
    both = [pfn for pfn, pids in frames.items() if len(pids) > 1]
    out.write(f"The shared anonymous page and the memfd page are backed by page-cache frames. The child "
              f"faulted them in and wrote; when the parent touched them, its faults mapped the very same "
              f"frames ({', '.join(f'pfn {p:#x}' for p in both)}; a pfn, page frame number, is the frame's "
              f"physical address divided by 4096): no copy, so it read what the child wrote.\n")
    return {"status": result.status, "frames_mapped_by_both": len(both)}


def huge_pages(demo: Demo, out: Story) -> dict:
    result, rec, _, _ = _run(demo, out)
    huge = [s for s in rec.faults if s.record.region.page_size == 2 << 20]
    out.write(f"The guest wrote one byte in each of 1024 small pages of a 4 MiB MAP_HUGETLB region, "
              f"and took {len(huge)} faults: each mapped a whole 2 MiB frame (512 frames of 4 KiB in a row, "
              f"an order-9 buddy block) with one page-directory entry, PS set:\n{_entry_change(huge[0])}")
    return {"status": result.status, "huge_faults": len(huge),
            "ps_set": all(s.record.new_entry & PTE_HUGE for s in huge)}


def lazy_file(demo: Demo, out: Story) -> dict:
    with tempfile.TemporaryDirectory() as root:
        data = os.urandom(4 << 20)
        Path(root, "data.bin").write_bytes(data)
        result, rec, _, _ = _run(demo, out, [demo.guest, "/data.bin"], root=root)
    file_faults = [s for s in rec.faults if s.record.region.name == "/data.bin"]
    around = sum(s.record.around for s in file_faults)
    cached = len(file_faults) + around
    out.write(f"A 4 MiB file (1024 pages) was mapped whole, and the guest read every 64th page: "
              f"{len(file_faults)} faults. Each read the 64 KiB window around its page into the page "
              f"cache with one read and mapped all of it ({around} pages mapped around, as Linux's "
              f"fault_around_bytes does), so a sequential reader faults once per 16 pages. The other "
              f"{1024 - cached} pages were never read.\n")
    return {"status": result.status, "file_faults": len(file_faults), "pages_read": cached}


def python_pager(demo: Demo, out: Story) -> dict:
    from sandbox.mm.policy import FaultContext, Supply

    trace: list[int] = []

    def pager(fault: FaultContext):
        """Serve the guest's 64-page read-only mapping from Python, recording the order."""
        region = fault.region
        if region.size != 64 * 4096 or region.file is not None:
            return None
        index = (fault.page - region.start) // 4096
        trace.append(index)
        return Supply(f"hello from Python, page {index}".encode() + b"\0")

    result, rec, _, _ = _run(demo, out, fault_policies=[pager])
    supplied = rec.where("supplied")
    out.write(f"A Python function served the pages: the first touch of each page asked it for the "
              f"contents. Access trace (page indices, 0 to 63, in fault order): {trace}. "
              f"{len(supplied)} pages supplied; page 5 was read twice but faulted once.\n")
    return {"status": result.status, "supplied": len(supplied), "trace": trace}


def shared_libraries(demo: Demo, out: Story) -> dict:
    result, rec, _, _ = _run(demo, out)
    libc = [s for s in rec.faults if s.record.region.name.endswith("/libc.so.6")]
    parent = min(s.pid for s in rec.faults)  # the program (pids grow)
    children = sorted({s.pid for s in libc} - {parent})
    read = {pid: {s.record.va: s.record.pfn for s in libc if s.pid == pid and s.record.kind == "file"}
            for pid in (parent, *children)}
    copied = {pid: {s.record.pfn for s in libc if s.pid == pid and s.record.kind == "copy-on-write"}
              for pid in children}
    a, b = children[:2]
    both = sorted(set(read[a]) & set(read[b]))
    same = [va for va in both if read[a][va] == read[b][va]]
    with_parent = len(set(read[a].values()) & set(read[parent].values()))
    example = same[0] if same else 0
    out.write(f"One dynamically linked program ran as three processes: the parent and two children it "
              f"started with fork + execve, each with a fresh address space that ld.so filled by mapping "
              f"libc.so.6 from the file.\n"
              f"Child A (pid {a}) faulted {len(read[a])} libc pages in from the file, child B (pid {b}) "
              f"{len(read[b])}. Of the {len(both)} pages both touched, {len(same)} mapped the very same "
              f"physical frame in both (the page at {example & ~0xFFF:#x} is in frame pfn "
              f"{read[a].get(example, 0):#x} in each; a pfn is a frame's physical address divided by 4096): "
              f"the page cache read each page once, and {with_parent} of A's frames were the parent's too.\n"
              f"Writes are private: ld.so's relocations and libc's own data wrote {len(copied[a])} libc pages "
              f"in A and {len(copied[b])} in B, and each write copied its page to a frame of its own "
              f"(copy-on-write; {len(copied[a] & copied[b])} frames in common).\n")
    return {"status": result.status, "pages_both_touched": len(both), "same_frame": len(same),
            "shared_with_parent": with_parent, "copied": (len(copied[a]), len(copied[b])),
            "copies_in_common": len(copied[a] & copied[b])}


#: examples/threads_share.c: `char shared[2 * PAGES * 4096]`, PAGES = 16 written by each thread,
#: which writes its index (0 or 1) at shared[(which * PAGES + i) * 4096]; main sums those bytes.
SHARED_SYMBOL, PAGES_EACH = "shared", 16


def threads_share(demo: Demo, out: Story) -> dict:
    """Two threads, one address space: faults by thread, each on its own stack, and the
    buffer pages each wrote explained fault by fault (a page may need none)."""
    from sandbox.mm.translate import elf_symbol

    spaces: dict[int, set[int]] = {}
    cr3s: set[int] = set()

    def note(tid: int, space, record, rip) -> None:
        spaces.setdefault(tid, set()).add(id(space))
        cr3s.add(space.cr3)

    buffer = elf_symbol(demo.guest, SHARED_SYMBOL)
    written = [buffer + n * PAGE_SIZE for n in range(2 * PAGES_EACH)]  # the bytes the threads write
    values: list[int] = []
    result, rec, _, regions = _run(demo, out, listeners=[note],
                                   after=lambda sb: values.extend(sb.read_memory(va, 1)[0] for va in written))
    main = min(spaces)
    threads = sorted(tid for tid in spaces if tid != main)
    pages = _pages_written(rec, threads, written)
    faulted = {tid: [s for s in rec.where(pid=tid) if s.record.va in pages[tid]] for tid in threads}
    present = {tid: [(va, _earlier_fault(rec, va, faulted[tid])) for va in pages[tid]
                     if not any(s.record.va == va for s in faulted[tid])] for tid in threads}
    stacks = _thread_stacks(rec, threads, regions)
    roots = ", ".join(f"{c:#x}, the PML4 in pfn {c >> 12:#x}" for c in cr3s)
    out.write(f"Two threads ran in one process (tids {', '.join(map(str, threads))}). Every fault of every "
              f"thread was handled in the same address space: one CR3, the register that holds the top "
              f"page table's physical address ({roots}), so the scheduler switched between them without "
              f"reloading CR3 or flushing the TLB.\n"
              + _buffer_story(buffer, pages, faulted, present, regions, main)
              + _sum_story(values, pages, written)
              + "Each ran on a stack of its own, an mmap region glibc made for it: "
              + "; ".join(f"tid {tid}: {r.start:#x}-{r.end:#x} ({r.size >> 20} MiB)"
                          for tid, r in stacks.items() if r is not None) + ".\n")
    return {"status": result.status, "threads": len(threads), "address_spaces": len(cr3s),
            "shared_faults": {tid: len(f) for tid, f in faulted.items()},
            "pages_written": {tid: len(p) for tid, p in pages.items()},
            "already_present": {tid: [(va, s and s.pid, s and s.record.kind) for va, s in p]
                                for tid, p in present.items()},
            "sum": sum(values), "own_stacks": len({r.start for r in stacks.values() if r is not None})}


def _pages_written(rec: Recorder, threads: list[int], written: list[int]) -> dict[int, list[int]]:
    """The buffer bytes each thread wrote: the half of `written` where its faults lie (the
    guest's thread `which` writes half `which`; which thread got which is the scheduler's)."""
    halves = {}
    for tid in threads:
        hits = Counter(written.index(s.record.va) // PAGES_EACH for s in rec.where(pid=tid) if s.record.va in written)
        halves[tid] = hits.most_common(1)[0][0] if hits else threads.index(tid)
    return {tid: written[half * PAGES_EACH:(half + 1) * PAGES_EACH] for tid, half in halves.items()}


def _earlier_fault(rec: Recorder, va: int, after: list[Seen]) -> Seen | None:
    """The last fault on `va`'s page before the first of `after` (a thread's own faults):
    why that thread's write there found the page present. None if there was none."""
    page = va & ~(PAGE_SIZE - 1)
    first = rec.faults.index(after[0]) if after else len(rec.faults)
    before = [s for s in rec.faults[:first] if s.record.va & ~(PAGE_SIZE - 1) == page]
    return before[-1] if before else None


def _buffer_story(buffer: int, pages: dict[int, list[int]], faulted: dict[int, list[Seen]],
                  present: dict[int, list[tuple[int, Seen | None]]], regions: list, main: int) -> str:
    """Each thread's writes to the shared buffer: its faults, and why a page took none."""
    counts = ", ".join(f"tid {tid}: {len(f)} {_kinds(f)}" for tid, f in faulted.items())
    text = (f"Each thread wrote one byte into each of {PAGES_EACH} pages of the shared buffer (`{SHARED_SYMBOL}` "
            f"at {buffer:#x}) and took a fault for each page it was first to touch ({counts}), attributed to "
            f"the thread that took it.")
    for tid, missed in present.items():
        if missed:
            text += (f" So tid {tid} took {len(faulted[tid])} faults for {len(pages[tid])} pages: "
                     + " ".join(_no_fault(va, earlier, buffer, regions, main) for va, earlier in missed))
    return text + "\n"


def _no_fault(va: int, earlier: Seen | None, buffer: int, regions: list, main: int) -> str:
    """Why a write at `va` took no fault: who had faulted its page in before."""
    page = va & ~(PAGE_SIZE - 1)
    if earlier is None:
        return f"its write at {va:#x} found page {page:#x} present already."
    region = next((r for r in regions if r.start <= page < r.end), None)
    why = (f" That page is the last of the program's data segment ({os.path.basename(region.label)}): the "
           f"bss begins inside it, after the initialized data, and the buffer starts at {buffer:#x}, not on a "
           f"page boundary, so its first page holds other variables too." if region is not None
           and page <= buffer and region.kind.value == "data" else "")
    who = "the main thread" if earlier.pid == main else "thread"
    return (f"its write at {va:#x} found page {page:#x} present, because {who} (tid {earlier.pid}) had faulted "
            f"it in before ({earlier.record.kind} fault, {earlier.record.access_name} at "
            f"{earlier.record.va:#x}).{why}")


def _kinds(seen: list[Seen]) -> str:
    """'demand-zero faults', or the kinds counted if they differ."""
    kinds = Counter(s.record.kind for s in seen)
    if len(kinds) == 1:
        return f"{next(iter(kinds))} fault{'s' if len(seen) != 1 else ''}"
    return "faults: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())


def _sum_story(values: list[int], pages: dict[int, list[int]], written: list[int]) -> str:
    """The guest's "(sum N)", from the bytes left in the buffer."""
    byte = {va: value for va, value in zip(written, values, strict=True)}
    each = "; ".join(f"tid {tid} wrote {' or '.join(map(str, sorted({byte[va] for va in p})))} in each of its {len(p)}"
                     for tid, p in pages.items())
    return (f"The guest's own line ends \"(sum {sum(values)})\": after both threads ended, main added up the "
            f"bytes they had written, one in each of the {len(written)} pages (each thread writes its index: "
            f"{each}), so the sum is {' + '.join(f'{sum(byte[va] for va in p)}' for p in pages.values())}: "
            f"both threads' writes are in the one buffer.\n")


def _thread_stacks(rec: Recorder, threads: list[int], regions: list) -> dict:
    """Each thread's stack: the large mmap region most of its faults hit."""
    stacks = {}
    for tid in threads:
        own = Counter(s.record.region.start for s in rec.where(pid=tid) if s.record.region.size >= 1 << 20
                      and s.record.region.kind.value == "mmap")
        stacks[tid] = next(r for r in regions if r.start == own.most_common(1)[0][0]) if own else None
    return stacks


def snapshot_cow(demo: Demo, out: Story) -> dict:
    """Count the frames the live machine shares with a snapshot as the guest writes."""
    from sandbox.api import Sandbox
    from sandbox.mm.translate import elf_symbol
    from sandbox.snapshot import shared_frames

    options = {"memory": DEMO_MEMORY, **out.options}
    options.pop("step_faults", None)
    seen: list[tuple[int, int, int]] = []  # (pages written, frames shared, frames the snapshot maps)
    with Sandbox(**options) as sb:
        snaps: list = []

        def at_snapshot(_address: int, _size: int) -> None:
            if not snaps:
                snaps.append(sb.snapshot())
                seen.append((0, *shared_frames(snaps[0], sb.kernel)))

        def at_step(_address: int, _size: int) -> None:
            seen.append((sb.kernel.current.regs.rdi, *shared_frames(snaps[0], sb.kernel)))

        for name, hook in (("snapshot_point", at_snapshot), ("step", at_step)):
            address = elf_symbol(demo.guest, name)
            sb.hook_code(address, address + 1, hook)
        out.flush()
        result = sb.run(demo.guest, [demo.guest])
        sys.stdout.flush()
        sb.restore(snaps[0])
        after_restore = shared_frames(snaps[0], sb.kernel)
        snaps[0].release()
    if result.status != 0:
        raise DemoStopped(demo.guest, result.status, result.message)
    _, shared0, total = seen[0]
    steps = "; ".join(f"after {w} pages written, {s} shared ({shared0 - s} copied: those pages and the stack's)"
                      for w, s, _ in seen[1:])
    out.write(f"At snapshot_point() the sandbox took a snapshot of the whole machine: a copy-on-write clone "
              f"of the address space, as fork makes, plus the registers and the kernel's state. The snapshot "
              f"maps {total} frames, and the live process shares all {shared0} of them: both page tables point "
              f"at the same frames, read-only, each frame's reference count raised by one.\n"
              f"Then the guest wrote one byte into each of 8, 16 and 32 more pages of its 64-page buffer: {steps}. "
              f"Each first write took a copy-on-write fault that gave the live process a frame of its own; the "
              f"snapshot kept the old one, so it still holds the buffer as it was.\n"
              f"Restoring the snapshot gave back every copied frame and shared the snapshot's frames again: "
              f"{after_restore[0]} of {after_restore[1]} shared. A restore costs only what changed.\n")
    return {"status": result.status, "snapshot_frames": total, "steps": seen, "after_restore": after_restore}


DEMOS = {demo.name: demo for demo in (
    Demo("demand-paging", "demand paging: nothing is mapped until touched", demand_paging),
    Demo("cow-fork", "copy-on-write after fork", cow_fork),
    Demo("stack-growth", "stack growth and the guard page", stack_growth),
    Demo("write-barrier", "a user-level write barrier (mprotect + SIGSEGV handler)", write_barrier),
    Demo("shared-memory", "shared memory between processes (MAP_SHARED anonymous, memfd)", shared_memory),
    Demo("huge-pages", "huge pages: one 2 MiB entry per fault", huge_pages),
    Demo("lazy-file", "lazy file mapping: pages read only when touched", lazy_file),
    Demo("python-pager", "a pager written in Python (a fault policy)", python_pager),
    Demo("shared-libraries", "shared libraries share frames through the page cache", shared_libraries),
    Demo("threads-share", "threads share one page table", threads_share),
    Demo("snapshot-cow", "a snapshot is copy-on-write too", snapshot_cow),
)}


def run_demo(name: str, out: TextIO = sys.stdout, width: int | None = None, **options) -> dict:
    """Run demo `name`, tell its story on `out` (wrapped to `width` columns if given; the
    command gives the terminal's), return its figures. `options` are Sandbox options for
    its guest (memory, trace_faults, fault_log: an open file, step_faults). Raises
    DemoStopped if the guest did not finish."""
    demo = DEMOS.get(name)
    if demo is None:
        raise SandboxError(f"no demo {name!r}; `sandbox demo --list` names them")
    story = Story(out, width, options)
    story.write(f"== {demo.name}: {demo.title}\nguest: {demo.source} (built as guests/build/demo-{demo.name})\n")
    return demo.run(demo, story)
