"""The processes a gdb session debugs: the stub's inferiors (the `GdbStub` mixin half).

gdb debugs the first process to begin with; breakpoints and watchpoints are per process
(`points_of`), and since they never patch memory, a forked child's copy of the text has
none until gdb inserts them there. When gdb offers `fork-events` (and `multiprocess`,
thread ids `p<pid>.<tid>`), a fork stops the parent as the call returns
(`T05fork:p<child>.<child>;`, as Linux's PTRACE_EVENT_FORK) and the child is attached too,
held: gdb detaches one of the two (`D;PID`: detaching the child follows the parent,
detaching the parent follows the child), or keeps both (`set detach-on-fork off`, two
inferiors). All-stop: while gdb looks, nothing it debugs runs; a resume names the
processes that go on (`running`: vCont per process, or all of them), and the others wait
(`resume` declines their turns) until one names them. A process gdb debugs ends with a
W or X naming it (`;process:PID`) and gdb goes on with the others; `vKill;PID` kills one.

With `exec-events`, an execve of a debugged process stops before the new image's first instruction with
`T05exec:<hex path>;`; its breakpoints and watchpoints went with the old image (as
Linux's do) and the auxv gdb reads is the new image's. With `vfork-events`, a vfork
stops the parent with `T05vfork:p<child>.<child>;` and holds the child: detaching the child
follows the parent, which stops again with `T05vforkdone:;` once the child exec'd or
ended (`vfork_done`, from Kernel.release_vfork_parent; gdb keeps its breakpoints out of
the shared memory until then); resuming the held child follows it: it becomes the
debugged process, with the breakpoints gdb set in what it takes for shared memory (the
kernel's vfork child has a copy: points never patch memory), and the parent is held
until gdb detaches it (after the child's exec or exit). A watchpoint does not see the
kernel's own writes (a read() into watched bytes): native Linux and gdb do not either.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, NamedTuple

from sandbox.gdbstub.points import Points
from sandbox.gdbstub.xfer import read_auxv

if TYPE_CHECKING:
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task


class Stop(NamedTuple):
    """Why the guest stopped: a Linux signal number, the thread, the reply's extra fields."""

    signo: int
    task: Task
    extra: str = ""


class Inferiors:
    """`GdbStub`'s processes: which it debugs, their breakpoints and auxv, and the fork,
    vfork and exec events that add and replace them (a mixin: the state is the stub's)."""

    def attached(self, group: ThreadGroup | None) -> bool:
        """Whether gdb debugs `group` (the first process, or a forked child it kept)."""
        return group is not None and (group is self.group or group in self.held)

    def forked(self, parent: Task, child: Task) -> None:
        """`child` is a new process of `parent` (fork, vfork, clone): if gdb follows forks,
        the parent stops as the call returns (see `_fork_stop`)."""
        wanted = self.features & {b"fork-events", b"vfork-events"}
        if self.conn is not None and self.attached(parent.group) and wanted:
            self._new_child = child
            self.machine.stop()

    def _fork_stop(self, parent: Task) -> None:
        """Report the fork or vfork and hold the child (one gdb did not ask to hear of runs
        on, undebugged)."""
        child, self._new_child = self._new_child, None
        kind = "vfork" if child.vfork_parent is not None else "fork"
        if f"{kind}-events".encode() not in self.features or not child.alive or self.stop is not None:
            return
        self.held.append(child.group)  # attached, waiting: gdb detaches it, or keeps it
        self._auxv[child.group] = self.auxv_of(parent.group)
        if kind == "vfork":
            self._vforks.add(parent)
        self.stop = Stop(signal.SIGTRAP, parent, f"{kind}:{self.ptid(child).decode()};")

    def vfork_done(self, parent: Task) -> None:
        """`parent`'s vfork child exec'd or ended (Linux's PTRACE_EVENT_VFORK_DONE): when gdb
        follows the parent, it stops before the call returns, and gdb puts its breakpoints
        back; when gdb follows the child, the parent stays held for gdb's D;PID."""
        if parent not in self._vforks:
            return
        self._vforks.discard(parent)
        if self.conn is None or not self._lets_run(parent.group) or not parent.alive:
            return
        if self.stop is None:
            self.stop = Stop(signal.SIGTRAP, parent, "vforkdone:;")
        self.machine.stop()

    def execed(self, task: Task) -> None:
        """`task` replaced its image (execve; its new entry and stack in `fresh_entry`):
        the old image's breakpoints and watchpoints go, the auxv is the new one's, and
        with exec-events gdb hears of it before the first new instruction."""
        if not self.started or not self.attached(task.group) or task.fresh_entry is None:
            return
        self.points_of(task.group).clear()
        self._skip = {}
        self._auxv[task.group] = read_auxv(task.space, task.fresh_entry[1])
        if self.conn is not None and b"exec-events" in self.features:
            self._exec_task = task

    def release(self, group: ThreadGroup) -> None:
        """An attached process runs on, undebugged: its breakpoints and watchpoints go."""
        if group in self.held:
            self.held.remove(group)
        self.running.discard(group)
        self._displaced.discard(group)
        self._auxv.pop(group, None)
        points = self._points.pop(group, None)
        heir = next((g for g in self.attached_groups() if _vfork_parent(g) is group), None)
        if heir is not None and points is not None:
            self._points[heir] = points  # its vfork child's, to gdb in the same memory
        elif points is not None:
            points.clear()

    def resume_groups(self, groups: list[ThreadGroup]) -> set[ThreadGroup]:
        """The processes to run when gdb resumes `groups` (attached ones; held children too:
        they stay debugged, as with `set detach-on-fork off`). Resuming a held vfork child
        of the first process follows it: it becomes the first, and its parent, asleep in
        vfork, waits for gdb's D;PID, whatever later resumes say (`_displaced`)."""
        for group in groups:
            if group in self.held and self.is_vfork_child(group):
                self.held.remove(group)
                self.held.append(self.group)
                self._displaced.add(self.group)
                self.group = group
                self._skip = {}
        return {g for g in groups if self.attached(g)} - self._displaced

    def attached_groups(self) -> list[ThreadGroup]:
        """The processes gdb debugs, the first one first."""
        return [self.group, *self.held] if self.group is not None else []

    def is_vfork_child(self, group: ThreadGroup) -> bool:
        """Whether `group` is a vfork child of the debugged process, not yet exec'd or ended:
        to gdb their memory is one (CLONE_VM), so are their breakpoints."""
        return self.group is not None and _vfork_parent(group) is self.group

    def points_of(self, group: ThreadGroup) -> Points:
        """`group`'s breakpoints and watchpoints (made on first use); a vfork child not yet
        exec'd or ended shares its attached parent's, as gdb takes their memory for one."""
        parent = _vfork_parent(group)
        owner = parent if parent is not None and self.attached(parent) else group
        points = self._points.get(owner)
        if points is None:
            points = self._points[owner] = Points(self.machine, lambda: owner.space,
                                                  lambda address: self._on_break(points, address),
                                                  lambda watch, address: self._on_watch(points, watch, address))
        return points

    def auxv_of(self, group: ThreadGroup) -> bytes:
        """The auxv of `group`'s image (its parent's, for a forked child)."""
        return self._auxv.get(group, b"")

    def detach_process(self, pid: int) -> bool:
        """gdb's D;PID: a held process is let go (after a fork gdb follows the parent), or
        the first one is and the next held one becomes the first (gdb follows the child).
        False when `pid` is the only process gdb debugs: the whole session ends."""
        child = next((g for g in self.held if g.pid == pid), None)
        if child is not None:
            self.release(child)
            return True
        if self.group is None or pid != self.group.pid or not self.held:
            return False
        self._debug_next_held()
        return True

    def kill_process(self, pid: int) -> bool:
        """gdb's vKill;PID while it debugs others too: that process dies of SIGKILL, and
        gdb hears nothing more of it. False if it is the only one (the session ends)."""
        groups = self.attached_groups()
        victim = next((g for g in groups if g.pid == pid), None)
        if victim is None or len(groups) < 2:
            return False
        if victim is self.group:
            self._debug_next_held()
        self.release(victim)
        self.kernel.kill(victim, signal.SIGKILL, "killed by gdb")
        return True

    def _debug_next_held(self) -> None:
        """The first held process becomes the first one; the old one is let go (its
        breakpoints, step and skips go with it)."""
        old = self.group
        self.stepper.cancel()
        self._skip = {}
        self.group = self.held.pop(0)
        if old is not None:
            self.release(old)
        self.thread = self._main_task()
        self.last = Stop(signal.SIGTRAP, self.thread)

    def known_tasks(self) -> list[Task]:
        """The live threads gdb may name: those of every process it debugs."""
        return [t for g in self.attached_groups() for t in g.tasks if t.alive]

    def ptid(self, task: Task) -> bytes:
        """`task` as gdb names threads: `p<pid>.<tid>` with multiprocess, else `<tid>`."""
        if b"multiprocess" in self.features:
            return b"p%x.%x" % (task.pid, task.tid)
        return b"%x" % task.tid



def _vfork_parent(group: ThreadGroup) -> ThreadGroup | None:
    """The process `group` is a vfork child of, until it exec'd or ended; else None."""
    return next((t.vfork_parent.group for t in group.tasks if t.vfork_parent is not None), None)
