"""gdb's packets, one handler each (GDB manual, "Packets", "General Query Packets").

`handle(stub, payload)` answers one packet: the reply's payload, or RESUME when the packet
let the guest go on (c, s, C, S, vCont), DETACH for D (answered OK, then the stub lets go),
or GONE when gdb killed it (no answer). Every
argument is parsed defensively: a malformed packet is answered `E01`, an unknown one with
the empty reply (what gdb takes as "not supported"), never an exception.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.gdbstub.memory import read_memory, write_memory
from sandbox.gdbstub.points import Watch
from sandbox.gdbstub.protocol import MAX_PACKET, unescape
from sandbox.gdbstub.registers import G_PACKET_SIZE, REGISTERS, TaskRegisters, target_xml
from sandbox.gdbstub.xfer import libraries_svr4

if TYPE_CHECKING:
    from sandbox.gdbstub.inferiors import Stop
    from sandbox.gdbstub.stub import GdbStub
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

RESUME, GONE, DETACH = object(), object(), object()
OK, ERROR, EMPTY = b"OK", b"E01", b""
E_FAULT = b"E14"  # an unreadable address (EFAULT), as the issue asks
#: Bytes one m packet may ask for: two hex digits each must fit in a packet.
MAX_READ = (MAX_PACKET - 4) // 2
#: Bytes one vFile:pread answers at most: escaped, each may take two (and `F<n>;` leads).
MAX_PREAD = (MAX_PACKET - 32) // 2

SUPPORTED = (b"PacketSize=%x;qXfer:features:read+;qXfer:auxv:read+;qXfer:exec-file:read+;"
             b"qXfer:libraries-svr4:read+;swbreak+;vContSupported+" % MAX_PACKET)
#: Features answered only when gdb offers them (qSupported): multiprocess thread ids
#: (`p<pid>.<tid>`), fork, vfork and exec stop replies.
OFFERED = (b"multiprocess", b"fork-events", b"vfork-events", b"exec-events")

#: gdb's own signal numbers (gdb/signals.def) differ from Linux's past 6.
_GDB_SIGNALS = {"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGFPE": 8,
                "SIGKILL": 9, "SIGBUS": 10, "SIGSEGV": 11, "SIGSYS": 12, "SIGPIPE": 13, "SIGALRM": 14,
                "SIGTERM": 15, "SIGURG": 16, "SIGSTOP": 17, "SIGTSTP": 18, "SIGCONT": 19, "SIGCHLD": 20,
                "SIGTTIN": 21, "SIGTTOU": 22, "SIGIO": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26,
                "SIGPROF": 27, "SIGWINCH": 28, "SIGUSR1": 30, "SIGUSR2": 31, "SIGPWR": 32}
_LINUX_SIGNALS = {number: getattr(signal, name) for name, number in _GDB_SIGNALS.items()}
GDB_SIGNAL_UNKNOWN = 143


class BadPacket(Exception):
    """A packet whose arguments do not parse."""


def gdb_signal(signo: int) -> int:
    """Linux signal `signo` as gdb numbers it."""
    try:
        return _GDB_SIGNALS.get(signal.Signals(signo).name, GDB_SIGNAL_UNKNOWN)
    except ValueError:
        return GDB_SIGNAL_UNKNOWN


def linux_signal(number: int) -> int | None:
    """gdb's signal `number` as Linux numbers it (None: none we know)."""
    return _LINUX_SIGNALS.get(number)


def stop_reply(stub: GdbStub, stop: Stop) -> bytes:
    """`T<sig>thread:<tid>;<extra>` (the thread `p<pid>.<tid>` with multiprocess)."""
    return b"T%02xthread:%s;%s" % (gdb_signal(stop.signo), stub.ptid(stop.task), stop.extra.encode())


def _hex(text: bytes) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise BadPacket(text) from None
    if value < 0:
        raise BadPacket(text)
    return value


def _addr_len(text: bytes) -> tuple[int, int]:
    """`ADDR,LENGTH`, both hex."""
    addr, sep, length = text.partition(b",")
    if not sep:
        raise BadPacket(text)
    return _hex(addr), _hex(length)


def _unhex(text: bytes) -> bytes:
    try:
        return bytes.fromhex(text.decode("ascii"))
    except ValueError:
        raise BadPacket(text) from None


def _any(text: bytes) -> bool:
    """Whether a thread-id field means "any" or "all" (0, -1 or absent)."""
    return text in (b"0", b"-1", b"")


def _ptid(text: bytes) -> tuple[int | None, int | None]:
    """A thread id, `TID` or `pPID.TID` (multiprocess), as (pid, tid); None for any/all."""
    if not text.startswith(b"p"):
        return None, None if _any(text) else _hex(text)
    pid, _, tid = text[1:].partition(b".")
    return None if _any(pid) else _hex(pid), None if _any(tid) else _hex(tid)


def _thread(stub: GdbStub, text: bytes) -> Task | None:
    """A thread id (see `_ptid`) among the live threads gdb knows: the debugged process's,
    and a forked child's held for gdb's decision."""
    pid, tid = _ptid(text)
    tasks = [t for t in stub.known_tasks() if pid is None or t.pid == pid]
    if tid is None:
        return stub.thread if stub.thread in tasks else (tasks[0] if tasks else None)
    return next((t for t in tasks if t.tid == tid), None)


# -- registers ------------------------------------------------------------------------------

def _read_registers(stub: GdbStub, _args: bytes) -> bytes:
    return TaskRegisters(stub.thread).read_all().hex().encode()


def _write_registers(stub: GdbStub, args: bytes) -> bytes:
    data = _unhex(args)
    if len(data) != G_PACKET_SIZE:
        return ERROR
    TaskRegisters(stub.thread).write_all(data)
    return OK


def _read_register(stub: GdbStub, args: bytes) -> bytes:
    number = _hex(args)
    if number >= len(REGISTERS):
        return ERROR
    return TaskRegisters(stub.thread).read(REGISTERS[number]).hex().encode()


def _write_register(stub: GdbStub, args: bytes) -> bytes:
    number, sep, value = args.partition(b"=")
    reg_number = _hex(number)
    data = _unhex(value)
    if not sep or reg_number >= len(REGISTERS) or len(data) != REGISTERS[reg_number].size:
        return ERROR
    TaskRegisters(stub.thread).write(REGISTERS[reg_number], data)
    return OK


# -- memory ---------------------------------------------------------------------------------

def _read_mem(stub: GdbStub, args: bytes) -> bytes:
    addr, length = _addr_len(args)
    if length > MAX_READ:
        return ERROR  # gdb never asks more than PacketSize allows; nothing is allocated for it
    data = read_memory(stub.thread.space, addr, length)
    return data.hex().encode() if data or not length else E_FAULT


def _write_mem(stub: GdbStub, args: bytes) -> bytes:
    """M addr,length:XX...: the bytes in hex."""
    return _write(stub, args, _unhex)


def _write_binary(stub: GdbStub, args: bytes) -> bytes:
    """X addr,length:data: the bytes binary, escaped as in packets."""
    return _write(stub, args, unescape)


def _write(stub: GdbStub, args: bytes, decode: Callable[[bytes], bytes]) -> bytes:
    where, sep, data = args.partition(b":")
    addr, length = _addr_len(where)
    payload = decode(data)
    if not sep or len(payload) != length:
        return ERROR
    return OK if write_memory(stub.thread.space, addr, payload) else E_FAULT


# -- breakpoints and watchpoints ------------------------------------------------------------

def _insert_point(stub: GdbStub, args: bytes) -> bytes:
    return _point(stub, args, True)


def _remove_point(stub: GdbStub, args: bytes) -> bytes:
    return _point(stub, args, False)


def _point(stub: GdbStub, args: bytes, insert: bool) -> bytes:
    """Z/z TYPE,ADDR,KIND[;cond...]: 0 and 1 breakpoints, 2-4 watchpoints."""
    kind, _, rest = args.partition(b",")
    addr, length = _addr_len(rest.split(b";", 1)[0])
    kind_number = _hex(kind)
    points = stub.points_of(stub.thread.group)  # the process of Hg's thread (each has its own)
    if kind_number in (0, 1):
        if insert:
            return OK if points.add_break(addr) else ERROR
        points.remove_break(addr)  # a forked child's copy has none: breakpoints never patch memory
        return OK
    if kind_number in (2, 3, 4):
        watch = Watch(kind_number, addr, length)
        if insert:
            return OK if points.add_watch(watch) else ERROR
        points.remove_watch(watch)
        return OK
    return EMPTY


# -- running --------------------------------------------------------------------------------

def _resume(stub: GdbStub, step: bool, signo: int | None, thread: Task | None = None) -> object:
    task = thread or stub.thread
    signals = {task: signo} if signo else {}
    stub.go(task if step else None, signals)
    return RESUME


def _signal_arg(args: bytes) -> int | None:
    """`C sig[;addr]`: the Linux signal (None for 0 or one we do not know)."""
    number = _hex(args.split(b";", 1)[0][:2])
    return linux_signal(number)


def _continue(stub: GdbStub, args: bytes) -> object:
    _set_pc(stub, args)
    return _resume(stub, False, None)


def _step(stub: GdbStub, args: bytes) -> object:
    _set_pc(stub, args)
    return _resume(stub, True, None)


def _continue_signal(stub: GdbStub, args: bytes) -> object:
    return _resume(stub, False, _signal_arg(args))


def _step_signal(stub: GdbStub, args: bytes) -> object:
    return _resume(stub, True, _signal_arg(args))


def _set_pc(stub: GdbStub, args: bytes) -> None:
    if args:
        stub.thread.regs.rip = _hex(args)


def _vcont(stub: GdbStub, args: bytes) -> object:
    """vCont?  or  vCont;ACTION[:TID]...: each thread takes the first action naming it; the
    processes no action names wait (all-stop with several processes: gdb resumes only the
    current one unless `set schedule-multiple on`)."""
    if args == b"?":
        return b"vCont;c;C;s;S"
    if not args.startswith(b";"):
        return ERROR
    step, signals, groups = None, {}, []
    actions = [action.partition(b":") for action in args[1:].split(b";")]
    if not all(verb[:1] in (b"c", b"C", b"s", b"S") for verb, _, _ in actions):
        return ERROR
    # a default action, or one for all of a process's threads: the rest go on
    others_run = any(_any(tid) or tid.endswith(b".-1") for _, _, tid in actions)
    for verb, _, tid in actions:
        named = _resumed_groups(stub, tid)
        groups += [g for g in named if g not in groups]
        task = _thread(stub, tid) if tid else stub.thread
        if task is None or task.group not in named:
            continue
        if verb[:1] in (b"s", b"S") and step is None:
            step = task
        if verb[:1] in (b"C", b"S"):
            signo = linux_signal(_hex(verb[1:3]))
            if signo:
                signals.setdefault(task, signo)
    if not groups:
        return ERROR  # no process gdb debugs: nothing would run, and no stop would come
    running = stub.resume_groups(groups)
    if step is not None and step.group not in running:
        step = None
    stub.go(step, {t: n for t, n in signals.items() if t.group in running}, others_run, running)
    return RESUME


def _resumed_groups(stub: GdbStub, tid: bytes) -> list[ThreadGroup]:
    """The processes an action's thread id covers: every one gdb debugs for none, -1 or
    p-1.-1; else the one named (by pid, or by its thread)."""
    pid, thread = _ptid(tid)
    if pid is None and thread is None:
        return stub.attached_groups()
    task = _thread(stub, tid)
    return [task.group] if task is not None else []


def _detach(stub: GdbStub, args: bytes) -> object:
    """D, or D;PID (multiprocess): one process let go, the session going on while gdb
    still debugs another (a fork's child or parent)."""
    if args.startswith(b";"):
        pid = _hex(args[1:])
        if pid not in {t.pid for t in stub.known_tasks()}:
            return ERROR
        if stub.detach_process(pid):
            return OK
    return DETACH


def _kill(stub: GdbStub, _args: bytes) -> object:
    stub.kill()
    return GONE


def _vkill(stub: GdbStub, args: bytes) -> object:
    """vKill;PID: that process dies, and the session goes on if gdb debugs another; the
    last one (or a pid gdb does not debug) ends it all, as k."""
    try:
        pid = _hex(args[1:]) if args.startswith(b";") else None
    except BadPacket:
        return ERROR
    if pid is not None and stub.kill_process(pid):
        return OK
    return _kill(stub, b"")


# -- queries --------------------------------------------------------------------------------

def _set_thread(stub: GdbStub, args: bytes) -> bytes:
    """Hg TID / Hc TID: the thread later packets mean (Hc is taken as Hg)."""
    task = _thread(stub, args[1:])
    if task is None:
        return ERROR
    stub.thread = task
    return OK


def _thread_alive(stub: GdbStub, args: bytes) -> bytes:
    return OK if args not in (b"0", b"-1") and _thread(stub, args) is not None else ERROR


def _query(stub: GdbStub, args: bytes) -> bytes:
    """q packets: by name."""
    name, _, rest = args.partition(b":")
    if name == b"Supported":
        return _supported(stub, rest)
    if name == b"Attached":
        return b"0"  # the sandbox created the process: gdb kills it when it quits
    if name == b"C":
        return b"QC%s" % stub.ptid(stub.last.task)
    if name == b"fThreadInfo":
        return b"m" + b",".join(stub.ptid(t) for t in stub.known_tasks())
    if name == b"sThreadInfo":
        return b"l"
    if name == b"Symbol":
        return OK
    if name == b"Xfer":
        return _xfer(stub, rest)
    return EMPTY


def _supported(stub: GdbStub, offered: bytes) -> bytes:
    """qSupported:FEATURES: ours, and those of OFFERED that gdb offers too."""
    agreed = [name for name in OFFERED if name + b"+" in offered.split(b";")]
    stub.features = set(agreed)
    return b";".join([SUPPORTED, *(name + b"+" for name in agreed)])


def _xfer(stub: GdbStub, args: bytes) -> bytes:
    """qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH."""
    parts = args.split(b":")
    if len(parts) != 4 or parts[1] != b"read":
        return EMPTY
    obj, annex = parts[0], parts[2]
    offset, length = _addr_len(parts[3])
    source = _XFER.get(obj)
    if source is None:
        return EMPTY
    data = source(stub, annex)
    if data is None:
        return ERROR
    chunk = data[offset : offset + min(length, MAX_READ)]
    return (b"l" if offset + len(chunk) >= len(data) else b"m") + chunk


def _exec_file(stub: GdbStub, annex: bytes) -> bytes | None:
    """The program of process `annex` (hex pid; empty: Hg's thread's), if gdb debugs it."""
    try:
        pid = _hex(annex) if annex else stub.thread.pid
    except BadPacket:
        return None
    group = next((g for g in stub.attached_groups() if g.pid == pid), None)
    return group.exe_guest.encode() if group is not None else None


_XFER: dict[bytes, Callable[[GdbStub, bytes], bytes | None]] = {
    b"features": lambda _stub, annex: target_xml() if annex == b"target.xml" else None,
    b"auxv": lambda stub, _annex: stub.auxv_of(stub.thread.group),
    b"exec-file": lambda stub, annex: _exec_file(stub, annex),
    b"libraries-svr4": lambda stub, _annex: libraries_svr4(stub.thread.space, stub.auxv_of(stub.thread.group)),
}

_HANDLERS: dict[bytes, Callable[[GdbStub, bytes], object]] = {
    b"g": _read_registers, b"G": _write_registers, b"p": _read_register, b"P": _write_register,
    b"m": _read_mem, b"M": _write_mem, b"X": _write_binary, b"Z": _insert_point, b"z": _remove_point,
    b"c": _continue, b"s": _step, b"C": _continue_signal, b"S": _step_signal, b"D": _detach, b"k": _kill,
    b"H": _set_thread, b"T": _thread_alive, b"q": _query,
}


def handle(stub: GdbStub, payload: bytes) -> object:
    """One packet's answer (see the module doc)."""
    if payload == b"?":
        return stop_reply(stub, stub.last)
    if payload.startswith(b"vCont"):
        return _vcont(stub, payload[5:])
    if payload.startswith(b"vKill"):
        return _vkill(stub, payload[5:])
    if payload.startswith(b"vFile:"):
        return stub.hostio.handle(payload[6:])
    handler = _HANDLERS.get(payload[:1])
    if handler is None:
        return EMPTY
    if stub.thread is None or not stub.thread.alive or stub.thread.space is None:
        stub.thread = _thread(stub, b"0")
        if stub.thread is None:
            return ERROR
    try:
        return handler(stub, payload[1:])
    except BadPacket:
        return ERROR
