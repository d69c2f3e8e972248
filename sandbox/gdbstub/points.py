"""Breakpoints and watchpoints, kept out of guest memory.

A breakpoint is a Unicorn code hook on its one address (Z0, and Z1 alike): the guest's text
is never patched, so what gdb reads back, what a forked child executes and what the page
cache holds stay the original bytes. A hit stops the CPU before the instruction runs (an
emu_stop inside a code hook skips the instruction; tests/gdb check it).

Watchpoints (Z2 write, Z3 read, Z4 access) are a Unicorn memory hook, installed only while
one is set. This Unicorn reports accesses by guest-physical address (cputlb.c hands the
hooks `paddr`), so the hook compares each access with where the watched bytes are now:
a code hook over all of user space, also only while a watchpoint is set, translates the
watched addresses through the process's page tables before every instruction (a page
faulted in, copied on write or unmapped moves them). x86 reports a data breakpoint after
the access completes (Intel SDM vol. 3 §17.3.1.2, trap-class), and gdb reads the new value
then: so the memory hook only notes the hit, and the code hook stops the CPU before that
task's next instruction.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import NamedTuple

from sandbox import engine as X
from sandbox.machine import Machine
from sandbox.mm import USER_END
from sandbox.mm.aspace import AddressSpace

UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE = 1 << 10, 1 << 11  # unicorn.h, uc_hook_type
UC_MEM_READ, UC_MEM_WRITE = 16, 17  # unicorn.h, uc_mem_type
#: Watchpoints at once (x86 has four debug registers; gdb never asks for more than a few).
MAX_WATCHPOINTS = 64
MAX_BREAKPOINTS = 4096
_MEM_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int,
                           ctypes.c_int64, ctypes.c_void_p)

#: Z packet type -> (stop-reply keyword, the access kinds that trigger it).
WATCH_KINDS = {2: ("watch", (UC_MEM_WRITE,)), 3: ("rwatch", (UC_MEM_READ,)), 4: ("awatch", (UC_MEM_READ, UC_MEM_WRITE))}


class Watch(NamedTuple):
    kind: int  # 2, 3 or 4 (Z packet type)
    addr: int
    length: int


class Points:
    """The breakpoints and watchpoints set in the process whose space `space()` gives, and
    their hooks. `on_break(address)` is called at a breakpoint (the caller decides whether
    it counts); `on_watch(watch, address)` at the instruction after an access to watched
    bytes (which happened in whichever process ran it: the caller checks)."""

    def __init__(self, machine: Machine, space: Callable[[], AddressSpace | None], on_break: Callable[[int], None],
                 on_watch: Callable[[Watch, int], None]) -> None:
        self.machine = machine
        self._space = space  # the debugged process's address space
        self.breakpoints: dict[int, object] = {}  # address -> code hook
        self.watches: dict[Watch, None] = {}  # in the order set
        self._on_break, self._on_watch = on_break, on_watch
        self._after: object | None = None  # the code hook that places watches and reports hits
        self._mem_hook: object | None = None
        self._mem_handle = 0
        self._where: list[tuple[Watch, int]] = []  # each watch and its physical address now
        self._hit: Watch | None = None

    def add_break(self, address: int) -> bool:
        """Z0: False if too many or outside user space."""
        if address in self.breakpoints:
            return True
        if not 0 <= address < USER_END or len(self.breakpoints) >= MAX_BREAKPOINTS:
            return False
        self.breakpoints[address] = self.machine.hook_code(address, address + 1, lambda a, _s: self._on_break(a))
        return True

    def remove_break(self, address: int) -> None:
        """z0 (removing one not set is no error, as gdbserver answers)."""
        hook = self.breakpoints.pop(address, None)
        if hook is not None:
            self.machine.unhook_code(hook)

    def add_watch(self, watch: Watch) -> bool:
        """Z2/Z3/Z4: False if too many, empty, or outside user space."""
        if watch in self.watches:
            return True
        if not (0 < watch.length <= 8 and 0 <= watch.addr and watch.addr + watch.length <= USER_END) \
                or len(self.watches) >= MAX_WATCHPOINTS:
            return False
        self.watches[watch] = None
        if self._after is None:
            self._mem_hook = _MEM_CB(lambda _uc, access, pa, size, _value, _data: self._access(access, pa, size))
            handle = ctypes.c_size_t()
            kinds = UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE
            X.check(X.lib.uc_hook_add(self.machine.uc.handle, ctypes.byref(handle), kinds, self._mem_hook, None, 1, 0))
            self._mem_handle = handle.value
            self._after = self.machine.hook_code(0, USER_END, lambda a, _s: self._before_insn(a))
        return True

    def remove_watch(self, watch: Watch) -> None:
        """z2/z3/z4; the last one takes the hooks with it."""
        self.watches.pop(watch, None)
        self._where = []
        if not self.watches and self._after is not None:
            X.check(X.lib.uc_hook_del(self.machine.uc.handle, self._mem_handle))
            self.machine.unhook_code(self._after)
            self._after = None

    def clear(self) -> None:
        """Remove everything (detach): the guest runs on without a hook."""
        for address in list(self.breakpoints):
            self.remove_break(address)
        for watch in list(self.watches):
            self.remove_watch(watch)
        self._hit = None

    def _access(self, access: int, pa: int, size: int) -> None:
        """The memory hook: note an access that overlaps watched bytes with a kind they watch."""
        for watch, start in self._where:
            if access in WATCH_KINDS[watch.kind][1] and pa < start + watch.length and start < pa + size \
                    and self._hit is None:
                self._hit = watch

    def _before_insn(self, address: int) -> None:
        """Before each instruction while watching: report a hit the last one made, and
        find where the watched bytes are now."""
        if self._hit is not None:
            watch, self._hit = self._hit, None
            self._on_watch(watch, address)
        space = self._space()
        self._where = [(w, pa) for w in self.watches if space is not None
                       and (pa := space.pagetable.translate(w.addr)) is not None]


class Stepper:
    """Single steps, by a code hook over user space installed only while a step is wanted
    (Unicorn's own instruction count is not used: an uncounted run after a counted one
    stalls at the next page fault in this Unicorn build).

    `start(task, rip)` lets `task` run the instruction at `rip` and calls `on_done(task)`
    before its next one; `rip` None stops before the first user instruction it runs (a
    fresh program's entry). An instruction that faults and is restarted after the kernel
    mapped the page is still the same step (its fault count moved)."""

    def __init__(self, machine: Machine, current: Callable[[], object], on_done: Callable[[object], None]) -> None:
        self.machine = machine
        self._current, self._on_done = current, on_done
        self._hook: object | None = None
        self.task: object | None = None
        self._rip: int | None = None
        self._seen = False
        self._faults = 0

    def start(self, task: object, rip: int | None) -> None:
        self.task, self._rip, self._seen = task, rip, False
        self._faults = _faults_of(task)
        if self._hook is None:
            self._hook = self.machine.hook_code(0, USER_END, self._on_insn)

    def cancel(self) -> None:
        """No step any more; the hook goes (translated code is flushed)."""
        self.task = None
        if self._hook is not None:
            self.machine.unhook_code(self._hook)
            self._hook = None

    def _on_insn(self, address: int, _size: int) -> None:
        task = self.task
        if task is None or self._current() is not task:
            return
        if not self._seen and self._rip is not None:
            self._seen = True
            return
        if address == self._rip and _faults_of(task) != self._faults:
            self._faults = _faults_of(task)  # the step's instruction again, after its fault
            return
        self.task = None
        self.machine.stop()
        self._on_done(task)


def _faults_of(task: object) -> int:
    """Page faults the task's address space has taken (they restart the instruction)."""
    space = task.space
    return sum(space.fault_counts.values()) if space is not None else 0
