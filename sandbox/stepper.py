"""--step-faults: show each page fault as a panel on stderr and, on a terminal, wait for Enter.

A `FaultStepper` is a fault listener (`Sandbox.add_fault_listener`): the kernel calls it
inside the fault path, after the fault was handled and before the guest's instruction is
retried, so a pause there holds the whole emulator still -- which is the point. Each panel
says the fault's number, the thread, the address and the access (read, write or exec; from
user mode or by the kernel for a system call), the kind of fault, the region as
`sandbox maps` names it, the rip and its instruction, the page-table walk, the leaf entry
before and after with its bits named, and the frame (`pfn 0x...`, as sandbox/mm/dump.py says
frames everywhere).

Answers come from the controlling terminal, /dev/tty, never from the guest's stdin (a guest
that reads stdin still gets all of it): Enter shows the next fault; `c` Enter runs on with no
more pauses and no more panels (--trace-faults gives a line per fault); `q` Enter ends the
run as Ctrl-C would (every guest process ends, status 130). End of input (Ctrl-D) is taken
as `c`. A host signal sent to the sandbox while it waits (Ctrl-C at the prompt) ends that
pause and stops the CPU, so the guest gets the signal at once, as it would without
--step-faults. While it waits the terminal is in line mode with echo, whatever modes the
guest set (a line editor's raw mode), and the guest's modes are put back after.

Pausing needs stderr to be a terminal and a controlling terminal to open; otherwise every
panel is printed without pausing, and that is said once (a log of every fault, readable).
"""

from __future__ import annotations

import os
import select
import shutil
import sys
import termios
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from sandbox.mm import PAGE_SHIFT, USER_END
from sandbox.mm.dump import describe_pte, name_bits
from sandbox.mm.fault import COPY_ON_WRITE, DEMAND_ZERO, FILE, SPURIOUS, WRITE_REUSE
from sandbox.mm.pagetable import PTE_HUGE, PTE_PRESENT
from sandbox.trace import disassemble, prot_string

if TYPE_CHECKING:
    from sandbox.api import Sandbox
    from sandbox.mm.aspace import AddressSpace
    from sandbox.mm.fault import FaultRecord
    from sandbox.mm.vma import Region

#: The terminal the answers are read from: the controlling one, whatever stdin is.
TTY_PATH = "/dev/tty"
#: How often a pause looks whether a host signal came for the guest (seconds).
SIGNAL_POLL_SECONDS = 0.1
#: The longest answer line read (the rest of a longer line is read as further answers).
ANSWER_MAX = 256
PROMPT = "[Enter] next fault   [c Enter] run on, no more stops   [q Enter] end the run (status 130) "
RULE_WIDTH = 72
#: The column a panel's values start in.
LABEL_WIDTH = 9
#: Each fault kind of sandbox/mm/fault.py (and of fault policies), said for a learner.
KIND_MEANINGS = {
    DEMAND_ZERO: "first touch of anonymous memory (bss, heap, stack, mmap): a fresh frame, zeroed, is mapped",
    FILE: "first touch of a file mapping: the page is read from the file (via the page cache) and mapped",
    COPY_ON_WRITE: "a write to a page shared read-only (after fork, or a private file page): "
                   "the frame is copied and the copy mapped writable",
    WRITE_REUSE: "a copy-on-write page no one else shares any more: the same frame is made writable, no copy",
    SPURIOUS: "the entry already allowed this access (a stale TLB entry): the TLB is flushed, nothing else",
    "supplied": "a fault policy (Python) supplied the page's contents",
    "huge-page": "a fault policy mapped a whole 2 MiB page with one PD entry",
}
#: Page-table levels, top down: (the address bits the index takes start at, the table's name).
WALK_LEVELS = ((39, "PML4"), (30, "PDPT"), (21, "PD"), (12, "PT"))
INDEX_MASK = 511


class FaultStepper:
    """A fault listener that shows every fault and pauses after each (see the module)."""

    def __init__(self, sandbox: Sandbox, out: TextIO | None = None, tty_path: str = TTY_PATH) -> None:
        self.sandbox = sandbox
        self.out = out if out is not None else sys.stderr
        self.count = 0
        self.showing = True  # until c, q, or the end of the terminal's input
        self.tty = _open_terminal(self.out, tty_path)
        self.pausing = self.tty is not None
        self.width = shutil.get_terminal_size().columns
        if not self.pausing:
            self._say("sandbox: --step-faults: stderr is not a terminal, so every fault is shown without pausing")

    def __call__(self, pid: int, space: AddressSpace, record: FaultRecord, rip: int | None) -> None:
        if not self.showing:
            return
        self.count += 1
        self._say(format_panel(self.count, pid, space, record, rip, self.width))
        if self.pausing:
            self._pause()

    def close(self) -> None:
        """Close the terminal descriptor (the listener shows nothing more)."""
        self.showing = self.pausing = False
        if self.tty is not None:
            os.close(self.tty)
            self.tty = None

    def _pause(self) -> None:
        """Wait for an answer and act on it."""
        self._say(PROMPT, end="")
        answer = self._answer()
        if answer in ("c", None):
            self.showing = self.pausing = False
            why = "" if answer == "c" else "no more answers from the terminal: "
            self._say(f"sandbox: --step-faults: {why}running on, no more faults shown")
        elif answer == "q":
            self._quit()
        elif self._signal_posted():  # the CPU stops when the hook returns: the run loop delivers it
            self._say("(a signal came for the guest)")
            self.sandbox.machine.stop()

    def _answer(self) -> str | None:
        """'' (Enter, or a host signal came: go on), 'c', 'q', or None when the terminal
        gives no more input. Anything else asks again."""
        with _line_mode(self.tty):
            while True:
                line = _read_line(self.tty, self._signal_posted)
                if line is None or line.strip().lower() in ("", "c", "q"):
                    return line if line is None else line.strip().lower()
                self._say(f"? {line.strip()[:20]!r}: {PROMPT}", end="")

    def _signal_posted(self) -> bool:
        """True if a host signal (Ctrl-C...) waits to go to the guest."""
        return bool(self.sandbox.kernel.terminal.posted)

    def _quit(self) -> None:
        """End the run as Ctrl-C does, with no kernel operation cut in half: the CPU stops
        once the hook that faulted returns, and the run loop ends every process. A fault the
        kernel took outside the CPU (exec setting up the first stack) has no CPU to stop: a
        code hook over all of user space stops it at the guest's next instruction."""
        self.showing = self.pausing = False
        self._say(f"sandbox: --step-faults: q at fault {self.count}: ending the run, as Ctrl-C would")
        machine = self.sandbox.machine
        if machine.pending_error is None:
            machine.pending_error = KeyboardInterrupt()
        machine.stop()
        self.sandbox.hook_code(0, USER_END, _interrupt)

    def _say(self, text: str, end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()


def _interrupt(_address: int, _size: int) -> None:
    """A code hook that ends the run (see FaultStepper._quit)."""
    raise KeyboardInterrupt


def _open_terminal(out: TextIO, path: str) -> int | None:
    """A descriptor of the controlling terminal if `out` is a terminal too, else None."""
    try:
        if not os.isatty(out.fileno()):
            return None
        return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except (AttributeError, OSError, ValueError):  # not a host stream, or no controlling terminal
        return None


@contextmanager
def _line_mode(fd: int) -> Iterator[None]:
    """The terminal in line mode with echo and signals (ICANON, ECHO, ISIG, ICRNL) while
    the pause reads it; its modes before (the guest's, perhaps raw) given back after."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    mode = list(saved)
    mode[0] |= termios.ICRNL
    mode[3] |= termios.ICANON | termios.ECHO | termios.ISIG
    changed = mode != saved
    if changed:
        termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        if changed:
            termios.tcsetattr(fd, termios.TCSANOW, saved)


def _read_line(fd: int, interrupted) -> str | None:  # noqa: ANN001 - a () -> bool
    """One line typed at terminal `fd` (line mode: a read returns a line); '' as soon as
    `interrupted()` says a host signal came; None at end of input or if the terminal went."""
    while not interrupted():
        try:
            if not select.select([fd], [], [], SIGNAL_POLL_SECONDS)[0]:
                continue
            data = os.read(fd, ANSWER_MAX)
        except OSError:  # EIO: the terminal hung up
            return None
        return data.decode(errors="replace") if data else None
    return ""


def format_panel(number: int, pid: int, space: AddressSpace, record: FaultRecord, rip: int | None,
                 width: int = RULE_WIDTH) -> str:
    """The panel for fault `number`: what, where, why, and the entry before and after;
    each line wrapped to `width` columns but the entries'."""
    where = f"{rip:#x}: {disassemble(space, rip)}" if rip is not None else "none: the kernel touched the page"
    head = f"-- page fault {number} -- pid {pid} "
    rows = [("address", f"{record.va:#x}: {record.access_name}, {_mode(rip)}"), ("rip", where),
            ("kind", _kind(record)), ("region", _region(record.region)), ("walk", _walk(record))]
    entries = [f"{'entry':<{LABEL_WIDTH}}before: {describe_pte(record.old_entry)}",
               f"{'':<{LABEL_WIDTH}}after:  {describe_pte(record.new_entry)}   (raw {record.new_entry:#x})"]
    tail = [("frame", _frame(record))] + ([("bits", name_bits())] if number == 1 else [])
    lines = [head + "-" * max(0, min(width, RULE_WIDTH) - len(head))]
    lines += [_row(label, text, width) for label, text in rows]
    lines += entries + [_row(label, text, width) for label, text in tail]
    return "\n".join(lines)


def _row(label: str, text: str, width: int) -> str:
    """'label    text', wrapped under the text's first column."""
    return textwrap.fill(text, max(width, 2 * LABEL_WIDTH), initial_indent=f"{label:<{LABEL_WIDTH}}",
                         subsequent_indent=" " * LABEL_WIDTH, break_on_hyphens=False, break_long_words=False)


def _mode(rip: int | None) -> str:
    return "from user mode" if rip is not None else "by the kernel for the process (a system call, or exec)"


def _kind(record: FaultRecord) -> str:
    """The kind, what it means, and what else the fault did."""
    text = f"{record.kind}: {KIND_MEANINGS.get(record.kind, 'handled by a fault policy')}"
    if record.stack_grown:
        text += "; the stack region grew down to cover the address (Linux's expand_stack)"
    if record.around:
        text += f"; {record.around} neighbouring pages mapped too (fault-around)"
    return text


def _region(region: Region) -> str:
    """The region: range, permissions (as `sandbox maps` prints them) and its name (Region.label)."""
    name = _printable(region.label)
    perms = prot_string(region.prot) + ("s" if region.shared else "p")
    return f"{region.start:#x}-{region.end:#x} {perms} {name}"


def _walk(record: FaultRecord) -> str:
    """The entries the MMU reads for the address, the leaf last, and the tables made."""
    leaf = 21 if record.new_entry & PTE_HUGE else 12
    steps = " ".join(f"{name}[{(record.va >> shift) & INDEX_MASK}]" for shift, name in WALK_LEVELS if shift >= leaf)
    made = record.tables_created
    return f"{steps} (the last is the leaf entry){f'; {made} page-table page(s) created' if made else ''}"


def _frame(record: FaultRecord) -> str:
    """The frame the page now lives in."""
    if not record.new_entry & PTE_PRESENT:
        return f"pfn {record.pfn:#x}"
    size = "a 2 MiB page (512 frames)" if record.new_entry & PTE_HUGE else "the 4 KiB page"
    return f"pfn {record.pfn:#x}, at physical address {record.pfn << PAGE_SHIFT:#x}, holds {size}"


def _printable(text: str) -> str:
    """`text` with control characters escaped: a name the guest chose (a file it mapped)
    must not reach the user's terminal as escape sequences."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
