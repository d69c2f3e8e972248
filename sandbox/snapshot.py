"""Copy-on-write snapshots of the whole machine (issue 18): `Sandbox.snapshot()`, `restore()`.

A snapshot is taken at a stop during a run and holds:

- every address space, as a copy-on-write clone sharing its frames (what fork does: each
  frame gains a reference, private writable pages turn read-only in both trees, shared
  mappings stay shared);
- the kernel's guest state, as a *memento*: the attributes of every kernel object reachable
  from the kernel's state (processes, tasks, descriptor tables, open file descriptions,
  pipes and their buffers, signal state, timers, futex waiters, the scheduler, counters,
  the pid allocator), each object's own copy of its attributes and each container's items;
- each task's CPU context (the running task's read from the CPU itself);
- the page cache's pages (one reference each, so restore finds them) and host file offsets;
- the guest's files, copy-on-first-write: nothing is saved when the snapshot is taken; from
  then on the kernel's file-changing paths tell the snapshot's `FileJournal` before a path or
  a file first changes (sandbox/kernel/fsjournal.py), and restore puts back every path and
  file contents recorded, then refreshes the cached pages of those files and of every
  writable shared mapping (their dirty pages were stored when the snapshot was taken, so the
  files hold what the mappings showed): MAP_SHARED memory comes back too;
- the terminal's session state (owning session, foreground group, the guest's window size)
  and the modes (termios) of each host terminal the guest can reach.

Restore puts every recorded object back *in place*: the Python objects keep their identity,
so a closure that holds a task (a blocked call's retry) stays right. Address spaces get a
fresh clone of the snapshot's (so one snapshot restores any number of times), objects made
since are dropped, files opened since are closed, files closed since are reopened from the
snapshot's own host descriptor. Only frames written since cost anything: they were copied
by copy-on-write faults, and go back to the pool.

Inside a run the CPU is inside emu_start, perhaps in the middle of a system call: a
snapshot from a code hook or fault listener is taken at once (the running task's registers
are read through the machine); one from a system-call hook, and every restore made inside a
run, waits for the safe point after the CPU stopped (the call finished on the old state),
which the kernel's run loop offers through `Kernel.at_safe_point`. The kernel counts the
snapshots' address spaces as frame owners through `Kernel.space_holders`.

Not in a snapshot: host sockets, what the terminal queued, files outside the guest's
writable tree changed by others, the view's mounts. A snapshot counts against guest RAM as
its frames are held, and its file copies against the snapshots' budget (`Keeper.file_budget`,
--disk bytes; a guest's change past it fails with EDQUOT): `release()` gives them back.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import fcntl
import os
from typing import TYPE_CHECKING, Any

from sandbox.engine import Context
from sandbox.errors import SandboxError
from sandbox.kernel.accounting import Budget
from sandbox.kernel.files import FdTable, File
from sandbox.kernel.fsjournal import FileJournal, JournalError, Journals
from sandbox.kernel.hostfiles import HostFile, HostStream
from sandbox.kernel.snapshot_state import HOST_ATTRIBUTES, OBJECT, Walker, put_state
from sandbox.kernel.task import Task
from sandbox.kernel.tty import TCGETS, TCSETS, TERMIOS_SIZE
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagetable import PTE_ADDR_MASK

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel

class SnapshotError(SandboxError):
    """A snapshot cannot be taken or restored here (one line saying why)."""


class Snapshot:
    """The state of a machine at one stop (see the module docstring). Restore it with the
    Sandbox that took it, any number of times; `release()` gives its frames back."""

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.taken = False
        self.released = False
        self.records: list[tuple[object, int, Any]] = []
        self.kernel_state: dict[str, Any] = {}
        self.spaces: dict[int, tuple[AddressSpace, AddressSpace, dict[str, Any]]] = {}
        self.contexts: dict[int, tuple[Task, Context]] = {}
        self.files: dict[int, tuple[File, int]] = {}  # id -> (file, refs at the snapshot)
        self.host_fds: dict[int, tuple[int, int | None]] = {}  # id(HostFile) -> (our dup, offset)
        self.cache_pages: dict[int, dict[int, int]] = {}  # id(CachedFile) -> its pages
        self.cache_files: dict = {}
        self.frames_at_snapshot = 0
        self.restores = 0
        self.journal: FileJournal | None = None  # the files changed since (fsjournal.py)
        self.quota_used = 0  # the disk quota's count, which follows the files
        self.terminal: tuple[int | None, int, bytes | None] = (None, 0, None)  # sid, fg_pgrp, winsize
        self.tty_modes: dict[int, tuple[int, bytes]] = {}  # st_rdev -> (our dup, termios)

    @property
    def frames(self) -> int:
        """Frames this snapshot references (shared with the live machine until written)."""
        return sum(len(snap.pagetable.leaf_entries()) + len(snap.pagetable.live)
                   for _, snap, _ in self.spaces.values()) + sum(len(p) for p in self.cache_pages.values())

    def release(self) -> None:
        """Give back every frame and host descriptor the snapshot holds (idempotent)."""
        if self.released or not self.taken:
            self.released = True
            return
        self.released = True
        frames = self.owner.kernel.machine.frames
        for _, snap, _ in self.spaces.values():
            snap.destroy()
        for pages in self.cache_pages.values():
            frames.put_many(list(pages.values()))
        for dup, _ in [*self.host_fds.values(), *self.tty_modes.values()]:
            os.close(dup)
        self.spaces.clear()
        self.cache_pages.clear()
        self.host_fds.clear()
        self.tty_modes.clear()
        self.owner.removed(self)


# -- taking a snapshot ------------------------------------------------------------------------


def take(snap: Snapshot, kernel: Kernel) -> None:
    """Fill `snap` with the kernel's state now. Precondition: the CPU is stopped, or inside
    a code hook (the running task's registers are live in the CPU and read from it)."""
    walker = Walker()
    snap.kernel_state = {k: v for k, v in kernel.__dict__.items() if k not in HOST_ATTRIBUTES}
    for value in snap.kernel_state.values():
        walker.visit(value)
    walker.drain()
    snap.records = walker.records
    _take_spaces(snap, kernel, walker.spaces)
    _take_contexts(snap, kernel, walker.tasks)
    _take_files(snap, walker.files)
    _take_page_cache(snap, kernel)
    _take_terminal(snap, kernel, walker.files)
    _start_journal(snap, kernel, walker.records)
    snap.frames_at_snapshot = kernel.machine.frames.used
    snap.taken = True


def clone_space(space: AddressSpace) -> AddressSpace:
    """An exact copy-on-write copy of `space` (fork's, without MADV_DONTFORK/WIPEONFORK:
    a snapshot keeps every region). Every shared frame gains a reference."""
    copy = AddressSpace.new_user_like(space)
    copy.regions = space.regions.copy()
    leaves = space.pagetable.clone_into(copy.pagetable, space._strip_on_fork)
    space.frames.get_many((entry & PTE_ADDR_MASK) >> PAGE_SHIFT for entry in leaves)
    space.flush_tlb()
    return copy


#: Address-space attributes a clone has of its own (the rest are copied from the live one).
SPACE_OWN = ("pagetable", "regions", "asid")


def _take_spaces(snap: Snapshot, kernel: Kernel, spaces: dict[int, AddressSpace]) -> None:
    for key, space in spaces.items():
        if not space.pagetable.live:  # destroyed already (an exec replaced it): nothing to keep
            continue
        attributes = {k: v for k, v in space.__dict__.items() if k not in SPACE_OWN}
        attributes["fault_counts"] = collections.Counter(space.fault_counts)
        snap.spaces[key] = (space, clone_space(space), attributes)


def _take_contexts(snap: Snapshot, kernel: Kernel, tasks: list[Task]) -> None:
    """Each task's registers: the running one's from the CPU, the others' saved contexts."""
    machine, on_cpu = kernel.machine, kernel.sched.on_cpu
    for task in tasks:
        if task is on_cpu and task.fresh_entry is None:
            snap.contexts[id(task)] = (task, machine.save_context())
        elif task.context is not None:
            snap.contexts[id(task)] = (task, copy_context(machine, task.context))


def copy_context(machine: Any, context: Context) -> Context:
    """A new Unicorn context holding the same registers as `context`."""
    copy = Context(machine.uc)
    ctypes.memmove(copy.pointer, context.pointer, context.size)
    return copy


def _take_files(snap: Snapshot, files: list[File]) -> None:
    """Open descriptions: their reference counts, and for host files a descriptor of our own
    (a file closed since comes back through it) and the file offset."""
    for file in files:
        snap.files[id(file)] = (file, file.refs)
        if isinstance(file, HostFile) and file.refs > 0:  # (the host's streams are never closed)
            try:
                offset = os.lseek(file.fd, 0, os.SEEK_CUR)
            except OSError:
                offset = None  # a pipe, a terminal: no offset
            try:
                snap.host_fds[id(file)] = (os.dup(file.fd), offset)
            except OSError as error:
                raise SnapshotError(f"cannot keep {file.name}: {os.strerror(error.errno)}") from None


def _take_page_cache(snap: Snapshot, kernel: Kernel) -> None:
    """The cache's files and pages, each page held by one more reference."""
    cache = kernel.page_cache
    snap.cache_files = {k: c for k, c in cache.files.items() if not isinstance(c, Pins)}
    for cached in snap.cache_files.values():
        snap.cache_pages[id(cached)] = dict(cached.pages)
        kernel.machine.frames.get_many(list(cached.pages.values()))


def _take_terminal(snap: Snapshot, kernel: Kernel, files: list[File]) -> None:
    """The terminal's session state, and the modes of every host terminal a guest holds."""
    terminal = kernel.terminal
    snap.terminal = (terminal.sid, terminal.fg_pgrp, terminal.winsize)
    for file in files:
        if isinstance(file, HostStream) and file.refs > 0 and file.is_terminal:
            rdev = os.fstat(file.fd).st_rdev
            if rdev not in snap.tty_modes:
                snap.tty_modes[rdev] = (os.dup(file.fd), file.ioctl(TCGETS, bytes(TERMIOS_SIZE)))


def _start_journal(snap: Snapshot, kernel: Kernel, records: list[tuple[object, int, Any]]) -> None:
    """From now on the files' first changes are saved: shared mappings' pages are stored
    first (so the files hold what the guest sees), then the view, the open host files
    (their recorded state too: a restore keeps the hook) and the cached files are tied to
    the Keeper's journals, and this snapshot's journal joins them."""
    keeper = snap.owner
    journals = keeper.journals
    for cached in list(kernel.page_cache.files.values()):
        if not isinstance(cached, Pins):
            cached.writeback(kernel.machine.mem)
            cached.journal = journals
    kernel.fs.journal = journals
    for obj, kind, state in records:
        if isinstance(obj, HostFile) and kind == OBJECT:
            obj.journal = state[0]["journal"] = journals
    snap.quota_used = kernel.quota.used
    snap.journal = FileJournal(keeper.file_budget, kernel.budgets.host_files)
    journals.live.append(snap.journal)


# -- restoring --------------------------------------------------------------------------------


def restore(snap: Snapshot, kernel: Kernel) -> None:
    """Put the machine back as `snap` found it. Precondition: the CPU is stopped (outside
    emu_start, or at the run loop's safe point). SnapshotError, before anything changed,
    if a file change since could not be saved; after everything else was put back, if
    some paths could not be."""
    if snap.journal is not None and snap.journal.broken:
        raise SnapshotError(f"the files cannot be restored: {snap.journal.broken}")
    _close_new_files(snap, kernel)
    open_fds = {key: snap.files[key][0].fd for key in snap.host_fds if snap.files[key][0].refs > 0}
    _drop_spaces(snap, kernel)
    _restore_page_cache(snap, kernel)
    _restore_records(snap)
    _restore_kernel(snap, kernel)
    _restore_spaces(snap)
    _restore_host_files(snap, open_fds)
    for task, context in snap.contexts.values():
        task.context = copy_context(kernel.machine, context)
    kernel.sched.on_cpu = None  # every task's registers come from its context
    _restore_terminal(snap, kernel)
    snap.restores += 1
    _restore_files(snap, kernel)


def _live_files(kernel: Kernel) -> dict[int, File]:
    tables = {id(g.files): g.files for g in kernel.processes.values() if isinstance(g.files, FdTable)}
    return {id(e.file): e.file for t in tables.values() for e in t._fds.values()}


def _close_new_files(snap: Snapshot, kernel: Kernel) -> None:
    """Descriptions opened since the snapshot close (pipes, host files), as at exit."""
    for key, file in _live_files(kernel).items():
        if key not in snap.files and file.refs > 0:
            file.refs = 0
            file.close()


def _live_spaces(kernel: Kernel) -> dict[int, AddressSpace]:
    return {id(g.space): g.space for g in kernel.processes.values() if g.space is not None}


def _drop_spaces(snap: Snapshot, kernel: Kernel) -> None:
    """Every live address space's frames go back (those of the snapshot's spaces stay
    referenced by the snapshot's clones)."""
    if kernel.machine.cr3 != kernel.machine.kernel_space.cr3:
        kernel.machine.kernel_space.switch_to()  # never leave CR3 on a freed PML4
    spaces = _live_spaces(kernel)
    spaces.update({key: live for key, (live, _, _) in snap.spaces.items()})
    for space in spaces.values():
        if space.pagetable.live:
            space.destroy()


def _restore_page_cache(snap: Snapshot, kernel: Kernel) -> None:
    """Pages cached since are dropped, pages dropped since come back (the snapshot held them)."""
    cache, frames = kernel.page_cache, kernel.machine.frames
    for key, cached in list(cache.files.items()):
        if isinstance(cached, Pins):
            continue
        kept = snap.cache_pages.get(id(cached), {})
        for index, pfn in list(cached.pages.items()):
            if kept.get(index) != pfn:
                frames.put(pfn)
                del cached.pages[index]
        if id(cached) not in snap.cache_pages and not cached.pages:
            cache._forget(key, cached)
    for key, cached in snap.cache_files.items():
        if cache.files.get(key) is not cached:
            continue  # forgotten since: its regions read the file again (see the docstring)
        for index, pfn in snap.cache_pages[id(cached)].items():
            if index not in cached.pages:
                frames.get(pfn)
                cached.pages[index] = pfn


def _restore_records(snap: Snapshot) -> None:
    for obj, kind, state in snap.records:
        put_state(obj, kind, state)


def _restore_kernel(snap: Snapshot, kernel: Kernel) -> None:
    state = kernel.__dict__
    for key in [k for k in state if k not in HOST_ATTRIBUTES and k not in snap.kernel_state]:
        del state[key]  # made since (a System V IPC namespace, say)
    state.update(snap.kernel_state)


def _restore_spaces(snap: Snapshot) -> None:
    """Each live space object takes a fresh clone of the snapshot's tables and regions."""
    for live, saved, attributes in snap.spaces.values():
        fresh = clone_space(saved)
        live.__dict__.clear()
        live.__dict__.update(attributes)
        live.fault_counts = collections.Counter(attributes["fault_counts"])
        for name in SPACE_OWN:
            setattr(live, name, getattr(fresh, name))


def _restore_host_files(snap: Snapshot, open_fds: dict[int, int]) -> None:
    """Host files still open keep the descriptor they have now (a restore before may have
    given them a new one: the recorded number may be another file's by now); those closed
    since get a descriptor again; every host file its offset back."""
    for key, (dup, offset) in snap.host_fds.items():
        file = snap.files[key][0]
        if key in open_fds:
            file.fd = open_fds[key]
        else:
            file.fd = os.dup(dup)
            if file._held is not None:  # the disk quota counts it held again (HostFile.hold)
                file.quota.opened(file._held)
        if offset is not None:
            try:
                os.lseek(file.fd, offset, os.SEEK_SET)
            except OSError as error:
                if error.errno != errno.ESPIPE:
                    raise


def _restore_terminal(snap: Snapshot, kernel: Kernel) -> None:
    """The session state, kept by the next run's start too, and each terminal's modes (the
    modes before the change are the terminal's to give back at the run's end, tty.py)."""
    terminal = kernel.terminal
    terminal.sid, terminal.fg_pgrp, terminal.winsize = terminal.resumed = snap.terminal
    for rdev, (fd, modes) in snap.tty_modes.items():
        now = fcntl.ioctl(fd, TCGETS, bytes(TERMIOS_SIZE))
        if now != modes:
            if rdev not in terminal.saved:
                terminal.saved[rdev] = (os.dup(fd), now)
            fcntl.ioctl(fd, TCSETS, modes)


def _restore_files(snap: Snapshot, kernel: Kernel) -> None:
    """The journal's paths and contents back, the disk quota's count with them, and the
    cached pages of the files written and of shared mappings read again from the files."""
    if snap.journal is None:
        return
    others = [j for j in snap.owner.journals.live if j is not snap.journal]
    try:
        written = snap.journal.restore(kernel.fs, others)
    except JournalError as error:
        raise SnapshotError(str(error)) from None
    finally:
        kernel.quota.used = snap.quota_used
    _refresh_cached_pages(kernel, written)


def _refresh_cached_pages(kernel: Kernel, written: set[tuple[int, int]]) -> None:
    """Cached pages of the files in `written`, and of every writable (shared) one, read
    again from the file (zeros past its end): the frames mappings share show the file."""
    cache, mem = kernel.page_cache, kernel.machine.mem
    changed = False
    for key, cached in cache.files.items():
        if isinstance(cached, Pins) or not (cached.writable or key in written):
            continue
        for index, pfn in cached.pages.items():
            data = os.pread(cached.fd, PAGE_SIZE, index << PAGE_SHIFT)
            mem.write(pfn << PAGE_SHIFT, data.ljust(PAGE_SIZE, b"\0"))
            changed = True
    if changed:
        cache.on_change()


def leaf_frames(space: AddressSpace) -> set[int]:
    """The frames `space`'s user leaf entries map."""
    return {(entry & PTE_ADDR_MASK) >> PAGE_SHIFT for entry in space.pagetable.leaf_entries()}


def shared_frames(snap: Snapshot, kernel: Kernel) -> tuple[int, int]:
    """(frames the live processes share with `snap`, frames the snapshot maps): what the
    demo `snapshot-cow` counts as the guest writes."""
    mine = set().union(*(leaf_frames(saved) for _, saved, _ in snap.spaces.values()))
    live = set().union(*(leaf_frames(space) for space in _live_spaces(kernel).values() if space.pagetable.live))
    return len(mine & live), len(mine)


class Pins:
    """The page-cache references snapshots hold, shown to the kernel as one more cache entry
    (so its invariant check counts them as owners): never trimmed, never opened by key."""

    name = "(snapshots)"

    def __init__(self) -> None:
        self.pages: dict[int, int] = {}

    def trim(self, frames: object) -> list[int]:
        return []  # a snapshot's references go with the snapshot, not when unmapped


#: The page cache key of the snapshots' pins (no file has it: keys are (device, inode)).
PINS_KEY = ("snapshots", 0)


class Keeper:
    """A Sandbox's snapshots: the pending snapshot or restore of a run (taken at the next
    safe point, see the module docstring), and the accounting of what snapshots hold."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.snapshots: list[Snapshot] = []
        self.pending: list[tuple[str, Snapshot]] = []
        kernel.space_holders.append(self.spaces)
        #: The live snapshots' file journals, which the kernel's file hooks call.
        self.journals = Journals()
        #: Bytes of file copies (and records) all snapshots together may hold: --disk's.
        self.file_budget = Budget("snapshot file copies", kernel.options.disk, errno.EDQUOT)

    def spaces(self) -> list[AddressSpace]:
        """Snapshots' address spaces: the kernel counts their tables, frames and regions
        (the bound on regions of the whole machine) as a process's."""
        return [saved for snap in self.snapshots for _, saved, _ in snap.spaces.values()]

    def added(self, snap: Snapshot) -> None:
        self.snapshots.append(snap)
        self.update_pins()

    def removed(self, snap: Snapshot) -> None:
        if snap in self.snapshots:
            self.snapshots.remove(snap)
        if snap.journal is not None:
            if snap.journal in self.journals.live:
                self.journals.live.remove(snap.journal)
            snap.journal.release()
        self.update_pins()

    def update_pins(self) -> None:
        """The pins entry holds every snapshot's page-cache references (none: no entry)."""
        pins = Pins()
        for number, pfn in enumerate(p for s in self.snapshots for pages in s.cache_pages.values()
                                     for p in pages.values()):
            pins.pages[number] = pfn
        files = self.kernel.page_cache.files
        if pins.pages:
            files[PINS_KEY] = pins
        else:
            files.pop(PINS_KEY, None)

    def defer(self, action: str, snap: Snapshot) -> None:
        """Do `action` ("take" or "restore") at the run loop's next safe point."""
        if not self.pending:
            self.kernel.at_safe_point.append(self.at_safe_point)
        self.pending.append((action, snap))
        self.kernel.machine.stop()

    def cancel(self) -> None:
        """The run ended without reaching the safe point: forget what was pending."""
        if self.pending:
            self.pending = []
            if self.at_safe_point in self.kernel.at_safe_point:
                self.kernel.at_safe_point.remove(self.at_safe_point)

    def at_safe_point(self) -> None:
        """The CPU stopped and every kernel operation finished: do what was asked."""
        pending, self.pending = self.pending, []
        kernel = self.kernel
        for action, snap in pending:
            if action == "take":
                take(snap, kernel)
                self.added(snap)
            elif not snap.released:
                restore(snap, kernel)
                self.update_pins()


__all__ = ["Keeper", "Replay", "Snapshot", "SnapshotError", "clone_space", "restore", "take"]


# -- the command line: run --snapshot-at ADDR --replay N ----------------------------------------


def resolve_address(prog: str, text: str) -> int:
    """--snapshot-at's address: 0x-hex, decimal, or a symbol of PROG (moved by the fixed
    load address of a position-independent program). ValueError naming the text if none."""
    from sandbox.loader import PIE_LOAD_BIAS
    from sandbox.mm.translate import elf_symbol, is_pie, parse_va

    def symbol(name: str) -> int | None:
        value = elf_symbol(prog, name)
        return None if value is None else value + (PIE_LOAD_BIAS if is_pie(prog) else 0)

    return parse_va(text, symbol)


class Replay:
    """`run --snapshot-at ADDR --replay N`: the first run writes to the host's streams as
    usual (through pipes: the guest's stdout is not the terminal), and is snapshotted the
    first time the CPU reaches ADDR; then the machine runs on from that snapshot N times,
    each replay's output kept and compared with what the first run wrote after ADDR."""

    def __init__(self, sandbox: Any, address: int, count: int) -> None:
        self.sandbox, self.address, self.count = sandbox, address, count
        self.snap: Snapshot | None = None
        self.replaying = False
        self.first: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.marks = {1: 0, 2: 0}
        self.now: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        sandbox.hook_code(address, address + 1, self._at_address)

    def _at_address(self, _address: int, _size: int) -> None:
        if self.snap is None:
            self.snap = self.sandbox.snapshot()
            self.marks = {fd: len(data) for fd, data in self.first.items()}

    def writer(self, fd: int) -> Any:
        """The guest's fd `fd`: the host's during the first run, kept during replays."""
        def write(data: bytes) -> None:
            if self.replaying:
                self.now[fd] += data
                return
            self.first[fd] += data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        return write

    def replay(self) -> str:
        """Run the N replays; the one-line summary (said on stderr by the caller)."""
        import time

        if self.snap is None:
            return f"sandbox: replay: the program never reached {self.address:#x}: nothing replayed"
        tails = {fd: bytes(data[self.marks[fd]:]) for fd, data in self.first.items()}
        self.replaying, same, statuses = True, 0, collections.Counter()
        started = time.perf_counter()
        for _ in range(self.count):
            self.now = {1: bytearray(), 2: bytearray()}
            result = self.sandbox.run_from(self.snap)
            statuses[result.status] += 1
            same += all(bytes(self.now[fd]) == tails[fd] for fd in (1, 2))
        each = (time.perf_counter() - started) / max(1, self.count)
        exits = ", ".join(f"{status} x{n}" for status, n in sorted(statuses.items()))
        return (f"sandbox: replayed {self.count} times from {self.address:#x}: output identical to the first "
                f"run's in {same}/{self.count}; exit statuses {exits}; {each * 1e3:.2f} ms per replay")
