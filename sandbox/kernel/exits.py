"""How processes end: signals that kill, exit and exit_group, zombies and reaping, the
address spaces and page cache they leave, limits reached. A part of `Kernel`
(sandbox/kernel/kernel.py), split out by concern as gVisor splits its Task across files.
"""

from __future__ import annotations

import signal

from sandbox import abi
from sandbox.kernel import futex, signal_delivery, sys_mm
from sandbox.kernel.process import Death, State, ThreadGroup
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.task import Task
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagecache import CachedFile


class ProcessEnds:
    """`Kernel`'s part that ends tasks and processes (a mixin: the state is the Kernel's)."""

    def limit_reached(self, what: str) -> None:
        """A sandbox limit ends every process with SIGKILL, saying which limit."""
        self.limit_hit = what
        for group in [g for g in self.processes.values() if g.alive]:
            self.kill(group, signal.SIGKILL, f"killed: {what}")
        self.machine.stop()

    def _instruction_budget(self, executed: int) -> None:
        """Called by the machine's block counter (only with --max-instructions)."""
        self.instructions += executed
        if self.instructions > self.options.max_instructions and self.limit_hit is None:
            self.limit_reached(f"instruction limit of {self.options.max_instructions} reached")

    def kill(self, group: ThreadGroup, signo: int, message: str) -> None:
        """The default action of a fatal signal: end the process, every thread, say why."""
        self.terminate(group, death=Death(signo, message))

    def send_signal(self, target: ThreadGroup, signo: int, sender: Task | None = None) -> None:
        """Generate the process-directed `signo` for `target` (see signal_delivery.send)."""
        pid = sender.pid if sender is not None else 0
        signal_delivery.send(self, target, signo, pack_siginfo(signo, abi.SI_USER, pid=pid, uid=self.identity.uid))

    def exit_task(self, task: Task, code: int) -> None:
        """exit(2): end one thread; the process ends with its last thread."""
        if not task.alive:
            return
        if sum(1 for t in task.group.tasks if t.alive) <= 1:
            self.terminate(task.group, code=code)
            return
        if self.tracer is not None:
            self.tracer.thread_ended(task.tid, f"exited with {code & 0xFF}")
        self._end_task(task)
        task.group.tasks.remove(task)
        if task is self.current:
            self.machine.stop()

    def _end_task(self, task: Task, in_memory: bool = True) -> None:
        """A thread's end (Linux's exit_mm/mm_release): its robust futexes are marked
        OWNER_DIED, its clear_child_tid word is zeroed and one waiter woken (pthread_join);
        not `in_memory` when its memory is gone already (an execve replaced it)."""
        task.state, task.blocked = State.ZOMBIE, None
        self.tasks.pop(task.tid, None)
        self.futexes.forget(task)
        if in_memory and task.group.space is not None:
            futex.release_robust_list(self, task)
            futex.clear_child_tid(self, task)
        self.release_vfork_parent(task)

    def become_only_thread(self, task: Task) -> None:
        """execve from any thread: the others end (their memory was replaced), and the
        caller goes on as the leader, with the process's pid as its tid (de_thread)."""
        group = task.group
        for other in [t for t in group.tasks if t is not task]:
            if other.alive:
                self._end_task(other, in_memory=False)
            group.tasks.remove(other)
        if task.tid != group.pid:
            self.tasks.pop(task.tid, None)
            task.tid = group.pid
            self.tasks[task.tid] = task

    def terminate(self, group: ThreadGroup, code: int = 0, death: Death | None = None) -> None:
        """End process `group` and every thread of it: a zombie until its parent reaps it.
        Its memory and files go now (the first process keeps its memory until `release`,
        for inspection)."""
        if not group.alive:
            return
        group.exit_code, group.death = code, death
        if self.tracer is not None:
            self.tracer.ended(group)
        for task in group.tasks:
            if task.alive:
                self._end_task(task)
        group.state = State.ZOMBIE
        if (ipc := self.sysv_ipc()) is not None:
            ipc.process_exit(self, group)  # SEM_UNDO adjustments (exit_sem)
        if not self._held_elsewhere(group, "files", group.files):  # CLONE_FILES: the last user closes
            group.files.close_all()
        if group is not self.init:
            self.retire_space(group, group.space)
            group.space = None
        self._orphan_children(group)
        parent = self.processes.get(group.ppid)
        signo = group.exit_signal
        if parent is not None and parent.alive:
            if signo == signal.SIGCHLD and signal_delivery.action_of(parent, signo).handler == abi.SIG_IGN:
                self.reap(group)  # nobody will wait (man 2 sigaction: SIGCHLD ignored)
            elif signo:
                killed = abi.CLD_DUMPED if group.core_dumped else abi.CLD_KILLED
                code, status = (killed, death.signo) if death else (abi.CLD_EXITED, code)
                info = pack_siginfo(signo, code, pid=group.pid, uid=self.identity.uid, status=status)
                signal_delivery.send(self, parent, signo, info)
        elif group is not self.init:
            self.reap(group)
        if self.current is not None and self.current.group is group:
            self.machine.stop()

    def _orphan_children(self, group: ThreadGroup) -> None:
        """`group`'s children go to the sandbox's init (pid 1), which reaps each as it ends,
        as a container's init does: a zombie now, the others when they end (`terminate`
        finds no parent process for them)."""
        for child in group.children:
            child.ppid = abi.INIT_PID
            if child.state is State.ZOMBIE:
                self.reap(child)
        group.children = []

    def reap(self, group: ThreadGroup) -> None:
        """Forget a zombie (wait4 collected it, or nobody will)."""
        group.state = State.REAPED
        parent = self.processes.get(group.ppid)
        if parent is not None and group in parent.children:
            parent.children.remove(group)
        if group is not self.init:
            self.processes.pop(group.pid, None)

    def release_vfork_parent(self, task: Task) -> None:
        """A vfork child exec'd or ended: its parent may go on (mm_release)."""
        if task.vfork_parent is not None and self.debugger is not None:
            self.debugger.vfork_done(task.vfork_parent)  # gdb's vforkdone event
        task.vfork_parent = None

    def _held_elsewhere(self, group: ThreadGroup, what: str, value: object) -> bool:
        """Whether a process other than `group`, live or the first one (which keeps its
        space after it ends, for inspection), holds `value` as its `what`: an address
        space or descriptor table shared by clone with CLONE_VM or CLONE_FILES."""
        return any(g is not group and getattr(g, what) is value and (g.alive or g is self.init)
                   for g in self.processes.values())

    def retire_space(self, group: ThreadGroup, space: AddressSpace | None) -> None:
        """`group` no longer uses `space`: unless another process shares it (clone with
        CLONE_VM but not CLONE_THREAD), write back its shared file mappings, then free it
        and its frames."""
        if space is None:
            return
        if self._held_elsewhere(group, "space", space):
            return
        for listener in self.space_listeners:
            listener(group, space)
        for region in space.regions:
            sys_mm.writeback(space, region, region.start, region.end)
        self.fault_counts.update(space.fault_counts)
        if self.machine.cr3 == space.cr3:
            self.machine.kernel_space.switch_to()  # never leave CR3 on a freed PML4
        space.destroy()
        self.trim_page_cache()

    def trim_page_cache(self) -> None:
        """Free cached file pages and files that no region of any process maps any more."""
        mapped = {id(r.file) for p in self.processes.values() if p.space is not None
                  for r in p.space.regions if isinstance(r.file, CachedFile)}
        if (ipc := self.sysv_ipc()) is not None:
            mapped |= ipc.pinned_files(self, mapped)  # System V shm segments keep their pages
        freed = self.page_cache.trim(mapped)
        if freed:  # any of them may have held code, mapped executable by some process
            self.machine.code_changed(freed)

    def release(self, init: ThreadGroup) -> None:
        """Free everything left: the first process's memory and every other process."""
        spaces = {}
        for other in list(self.processes.values()):
            if other.alive:
                self.kill(other, signal.SIGKILL, "sandbox released")
            if other.space is not None:  # each space once, however many processes shared it
                spaces[id(other.space)] = (other, other.space)
                other.space = None
        for other, space in spaces.values():
            self.retire_space(other, space)
        self.processes.clear()
        self.tasks.clear()
        self.sched.on_cpu = None
