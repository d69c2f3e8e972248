"""The kernel's half of a snapshot (sandbox/snapshot.py): a memento of every kernel object.

`Walker` visits what the kernel's guest state reaches -- processes, tasks, descriptor tables,
open file descriptions, pipes and their buffers, signal state, timers, futex waiters, the
scheduler, counters, closures of blocked calls -- and records each object's own state: an
object's attributes, a container's items, a closure cell's contents, a random generator's
state. `put_state` gives an object back the state recorded, in place, so that the object
keeps its identity (a blocked call's retry still names the same task).

What is the host's (the machine, options, the file system view, the page cache, the disk
quota, hooks and tracing) is never walked into: HOST_ATTRIBUTES of the kernel, the classes
of OPAQUE_NAMES, and objects of modules outside STATE_MODULES are kept as they are. Address
spaces and Unicorn contexts are collected for the caller, which copies them its own way.
"""

from __future__ import annotations

import collections
import enum
import random
import types
from typing import Any

from sandbox.kernel.files import File
from sandbox.kernel.task import Task
from sandbox.mm.aspace import AddressSpace

#: Kernel attributes that are the host's or the sandbox's own, never the guest's: kept as
#: they are by restore (the machine, options, host directories, hooks, tracing, the file
#: system view and page cache, handled apart, the disk quota that follows the host disk).
HOST_ATTRIBUTES = frozenset({
    "machine", "options", "tracer", "fault_policies", "fault_listeners", "space_listeners", "fs",
    "page_cache", "terminal", "identity", "quota", "syscall_hooks", "debugger", "check_every_switch",
    "_next_check", "_made", "private_root", "generated_dir", "boot_time", "boot_wall_ns", "cpu_counter",
    "at_safe_point", "space_holders", "proc_tree",
})
#: Types whose objects are never walked into: shared with the host, or handled apart.
ATOMS = (int, float, str, bytes, bool, type(None), complex, range, enum.Enum, type, types.ModuleType,
         types.BuiltinFunctionType, memoryview)
#: Modules whose objects are kernel state (walked); objects of other modules are kept as they are.
STATE_MODULES = ("sandbox.kernel.", "sandbox.api", "sandbox.guest_io", "sandbox.errors")
#: Kernel-module classes that are host-level (not walked).
OPAQUE_NAMES = frozenset({"Kernel", "Machine", "FileSystemView", "Options", "Terminal", "Tracer",
                          "Identity", "DiskQuota", "ProcTree", "PageCache", "CachedFile", "SyscallHook",
                          "Registers", "Journals", "FileJournal", "Saved", "Entry"})
#: Record kinds.
OBJECT, SLOTS, LIST, DICT, SET, BYTES, DEQUE, CELL, RANDOM = range(9)


class Walker:
    """Records every kernel object reachable from the kernel's state (iteratively: a long
    chain of objects must not hit Python's recursion limit)."""

    def __init__(self) -> None:
        #: (object, kind, its state) for each object recorded, in the order met.
        self.records: list[tuple[object, int, Any]] = []
        self.seen: set[int] = set()
        self.todo: list[object] = []
        self.spaces: dict[int, AddressSpace] = {}
        self.tasks: list[Task] = []
        self.files: list[File] = []

    def visit(self, obj: object) -> None:
        if isinstance(obj, ATOMS) or id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        self.todo.append(obj)

    def drain(self) -> None:
        while self.todo:
            self._record(self.todo.pop())

    def _record(self, obj: object) -> None:
        """One object: its state recorded (the kinds above), what it refers to visited."""
        records, kind = self.records, _kind(obj)
        if isinstance(obj, AddressSpace):
            self.spaces[id(obj)] = obj
            return
        if kind is None:
            self._visit_parts(obj)
            return
        state = _state_of(obj, kind)
        records.append((obj, kind, state))
        if isinstance(obj, Task):
            self.tasks.append(obj)
        if isinstance(obj, File):
            self.files.append(obj)
        for part in _parts(kind, state):
            self.visit(part)

    def _visit_parts(self, obj: object) -> None:
        """Immutable holders and callables: what they hold may be state."""
        if isinstance(obj, (tuple, frozenset)):
            for item in obj:
                self.visit(item)
        elif isinstance(obj, types.MethodType):
            self.visit(obj.__self__)
        elif isinstance(obj, types.FunctionType) and obj.__closure__ and _is_state_module(obj.__module__):
            for cell in obj.__closure__:
                self.visit(cell)


def _is_state_module(module: str | None) -> bool:
    return bool(module) and (module + ".").startswith(STATE_MODULES)


def _kind(obj: object) -> int | None:
    """How `obj`'s state is recorded, or None if it has none of its own to record."""
    if isinstance(obj, types.CellType):
        return CELL
    if isinstance(obj, list):
        return LIST
    if isinstance(obj, dict):
        return DICT
    if isinstance(obj, set):
        return SET
    if isinstance(obj, bytearray):
        return BYTES
    if isinstance(obj, collections.deque):
        return DEQUE
    if isinstance(obj, random.Random):
        return RANDOM
    cls = type(obj)
    if not _is_state_module(cls.__module__) or cls.__name__ in OPAQUE_NAMES:
        return None
    if hasattr(obj, "__dict__"):
        return OBJECT
    return SLOTS if _slot_names(cls) else None


def _slot_names(cls: type) -> tuple[str, ...]:
    return tuple(name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ()) if name != "__weakref__")


_EMPTY = object()


def _state_of(obj: Any, kind: int) -> Any:
    """A copy of `obj`'s own state, of the given kind."""
    if kind == OBJECT:
        state = dict(obj.__dict__)
        slots = _slot_names(type(obj))
        return (state, {n: getattr(obj, n, _EMPTY) for n in slots}) if slots else (state, None)
    if kind == SLOTS:
        return {n: getattr(obj, n, _EMPTY) for n in _slot_names(type(obj))}
    if kind == CELL:
        try:
            return obj.cell_contents
        except ValueError:
            return _EMPTY
    if kind == RANDOM:
        return obj.getstate()
    if kind == DICT:
        return dict(obj)
    if kind == BYTES:
        return bytes(obj)
    return list(obj) if kind in (LIST, DEQUE) else set(obj)


def _parts(kind: int, state: Any) -> list[object]:
    """What a recorded state refers to."""
    if kind == OBJECT:
        values = list(state[0].values())
        return values + (list(state[1].values()) if state[1] else [])
    if kind == SLOTS:
        return list(state.values())
    if kind == CELL:
        return [state]
    if kind == DICT:
        return [*state.keys(), *state.values()]
    if kind in (LIST, DEQUE, SET):
        return list(state)
    return []


def put_state(obj: Any, kind: int, state: Any) -> None:
    """Give `obj` back the state recorded (in place: the object keeps its identity)."""
    if kind == OBJECT:
        obj.__dict__.clear()
        obj.__dict__.update(state[0])
        if state[1]:
            _put_slots(obj, state[1])
    elif kind == SLOTS:
        _put_slots(obj, state)
    elif kind == DICT:
        obj.clear()
        obj.update(state)
    elif kind in (LIST, DEQUE):
        obj.clear()
        obj.extend(state)
    elif kind == SET:
        obj.clear()
        obj.update(state)
    elif kind == BYTES:
        obj[:] = state
    elif kind == RANDOM:
        obj.setstate(state)
    elif kind == CELL:
        if state is _EMPTY:
            del obj.cell_contents
        else:
            obj.cell_contents = state


def _put_slots(obj: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is _EMPTY:
            if hasattr(obj, name):
                delattr(obj, name)
        else:
            object.__setattr__(obj, name, value)
