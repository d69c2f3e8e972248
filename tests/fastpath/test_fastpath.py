"""The system-call gate in C (sandbox/native/fastpath.c, sandbox/fastpath.py): the getters it
answers without Python give what Linux gives in every situation where a stale answer would
show (tests/fastpath/getters.c), and everything that watches calls still sees each one:
the trace, api hooks (also installed mid-run), the counts of --stats, signals, limits. The
pure-Python gate (SANDBOX_FAST_PATH=0) is checked against the same programs.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from sandbox import fastpath
from tests.conftest import IN_CI, ROOT, assert_as_natively, build_c, guest, run_native, run_sandbox

SOURCE = ROOT / "tests" / "fastpath" / "getters.c"
#: Each as natively: ids keep their relations, fork and threads see their own, orphans and
#: reaped children see their new parent, signals interrupt a loop of answered getters.
COMMANDS = ["same 3000", "fork 3000", "threads 4 100000", "orphan 2000", "reaped 200000000", "alarm",
            "blocked 2000", "hostile"]
#: ELF64 header and program header fields the code-hook test reads (elf(5)).
ELF_PHOFF, ELF_PHENTSIZE, PT_LOAD, PF_X = 32, 54, 1, 1
PYTHON_GATE = {**os.environ, fastpath.SWITCH_VARIABLE: "0"}


@pytest.fixture(scope="module")
def getters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(SOURCE, tmp_path_factory.mktemp("fastpath"), "-pthread")


def boxed(program: Path, command: str, *options: str, env: dict | None = None):
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{program.parent}:{program.parent}:ro", *options,
                        str(program), *command.split()], env=env)


def test_the_c_gate_is_built_in_ci() -> None:
    if IN_CI:
        assert fastpath.built(), "sandbox/native/_fastpath.so is not built (`make compile`)"
    assert fastpath.state() == "on" or fastpath.state().startswith("off (")


@pytest.mark.parametrize("command", COMMANDS)
def test_as_natively(getters: Path, command: str) -> None:
    assert_as_natively(run_native([str(getters), *command.split()]), boxed(getters, command))


@pytest.mark.parametrize("command", ["same 500", "fork 500", "threads 3 2000", "orphan 500", "hostile"])
def test_the_python_gate_gives_the_same(getters: Path, command: str) -> None:
    assert_as_natively(run_native([str(getters), *command.split()]), boxed(getters, command, env=PYTHON_GATE))


def test_deterministic_interleaving_keeps_each_threads_ids(getters: Path) -> None:
    done = boxed(getters, "threads 4 100000", "--deterministic")  # past one quantum
    assert done.stdout == b"threads: 4, changed 0, tids distinct 1\n" and done.returncode == 0


def test_counts_are_exact_and_most_calls_never_reach_python() -> None:
    from sandbox.api import Sandbox

    with Sandbox() as sb:
        taken = []
        take = sb.machine.take_answered_counts
        sb.machine.take_answered_counts = lambda: taken.append(take()) or taken[-1]
        assert sb.run(guest("getppid"), ["getppid", "20000"], capture=True).status == 0
        assert sb.kernel.syscall_counts["getppid"] == 20000
        assert sb.kernel.syscall_counts["getppid"] == 20000  # folded once, not twice
        answered_in_c = sum(counts[list(fastpath.GETTERS.values()).index("getppid")] for counts in taken)
        assert answered_in_c > 19000 if fastpath.state() == "on" else answered_in_c == 0


def test_stats_json_counts_every_call(tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    done = run_sandbox(["run", "--stats-json", str(out), guest("getppid"), "54321"])
    assert done.returncode == 0
    assert json.loads(out.read_text())["syscalls"]["getppid"] == 54321


def test_calls_answered_before_a_timeout_are_counted(getters: Path, tmp_path: Path) -> None:
    """The guest never makes another call Python handles: the counts are folded when read."""
    out = tmp_path / "stats.json"
    done = run_sandbox(["run", "--timeout", "1", "--stats-json", str(out), "--mount",
                        f"{getters.parent}:{getters.parent}:ro", str(getters), "spin"])
    assert b"time limit" in done.stderr
    assert json.loads(out.read_text())["syscalls"]["getppid"] > 1000


def test_the_trace_shows_every_call() -> None:
    done = run_sandbox(["run", "--trace-syscalls", guest("getppid"), "777"])
    assert done.returncode == 0
    assert done.stderr.count(b"getppid()") == 777


def test_a_hook_sees_every_call_and_its_answer_is_the_guests() -> None:
    from sandbox.api import Sandbox

    seen = []

    def answer_42(call) -> None:
        seen.append(call.nr)
        call.result = 42

    with Sandbox() as sb:
        assert sb.run(guest("getppid"), ["getppid", "3000"], capture=True).status == 0  # publishes
        sb.hook_syscall("getppid", on_enter=answer_42)
        result = sb.run(guest("getppid"), ["getppid", "3000"], capture=True)
        assert result.status == 0 and len(seen) == 3000
        sb.unhook_syscall("getppid")
        assert sb.run(guest("getppid"), ["getppid", "3000"], capture=True).status == 0
        assert len(seen) == 3000
        assert sb.kernel.syscall_counts["getppid"] == 9000


def test_a_hook_installed_mid_run_sees_every_later_call(getters: Path) -> None:
    """A write's hook hooks getppid: the answers published in phase one must not survive."""
    from sandbox.api import Sandbox

    later = []

    def on_write(_call) -> None:
        if not later and not sb.kernel.syscall_hooks.get(110):
            sb.hook_syscall("getppid", on_enter=lambda call: later.append(call.tid))

    with Sandbox(mounts=[f"{getters.parent}:{getters.parent}:ro"]) as sb:
        sb.hook_syscall("write", on_enter=on_write)
        result = sb.run(str(getters), ["getters", "phases", "2500"], capture=True)
        assert result.stdout == b"phase one: 2500\nphase two: 5000\n"
        assert len(later) == 2500


def executable_segment(path: str) -> tuple[int, int]:
    """[start, end) of a static ELF64's executable PT_LOAD segment."""
    data = Path(path).read_bytes()
    phoff, = struct.unpack_from("<Q", data, ELF_PHOFF)
    phentsize, phnum = struct.unpack_from("<HH", data, ELF_PHENTSIZE)
    for i in range(phnum):
        kind, flags, _, vaddr, _, _, memsz = struct.unpack_from("<IIQQQQQ", data, phoff + i * phentsize)
        if kind == PT_LOAD and flags & PF_X:
            return vaddr, vaddr + memsz
    raise AssertionError(f"{path} has no executable segment")


def test_a_code_hook_that_hooks_getppid_mid_loop_sees_every_later_call() -> None:
    """Python run by a code hook mid-run, with no system call between, withdraws the answers."""
    from sandbox.api import Sandbox

    later, armed_at = [], []
    with Sandbox() as sb:
        def arm(_address: int, _size: int) -> None:
            if not armed_at and sb.kernel.syscall_counts["getppid"] >= 400:  # answered in C by now
                armed_at.append(sb.kernel.syscall_counts["getppid"])
                sb.hook_syscall("getppid", on_enter=lambda call: later.append(call.nr))

        sb.hook_code(*executable_segment(guest("getppid")), arm)
        assert sb.run(guest("getppid"), ["getppid", "1000"], capture=True).status == 0
        assert armed_at and len(later) == 1000 - armed_at[0]


def test_an_instruction_limit_still_ends_a_loop_of_answered_calls(getters: Path) -> None:
    done = boxed(getters, "spin", "--max-instructions", "2000000")
    assert done.returncode != 0 and b"instruction limit" in done.stderr


@pytest.mark.skipif(not fastpath.built(), reason="the C gate is not built")
def test_the_gate_refuses_bad_arguments() -> None:
    from sandbox.native import _fastpath

    gate = _fastpath.FastPath.__new__(_fastpath.FastPath)
    with pytest.raises((ValueError, TypeError)):
        _fastpath.FastPath(1, (1, 2), (0,) * 7, 2, 699, print, ())
    with pytest.raises(ValueError):
        _fastpath.FastPath(1, (1, 2, 3, 4, 5), (0,) * 6, 2, 699, print, ())
    with pytest.raises(ValueError):
        _fastpath.FastPath(1, (1, 2, 3, 4, 5), (0,) * 7, 2, 699, print, (512,))
    with pytest.raises(ValueError):
        _fastpath.FastPath(1, (1, 2, 3, 4, 5), (0,) * 7, 2, 699, print, (-1,))
    with pytest.raises(ValueError):
        _fastpath.FastPath(1, (1, 2, 3, 4, 5), (0,) * 7, 2, 699, print, tuple(range(17)))
    with pytest.raises(TypeError):
        _fastpath.FastPath(1, (1, 2, 3, 4, 5), (0,) * 7, 2, 699, "not callable", ())
    assert gate.args() == ()  # never hooked: nothing to show, nothing to crash on
    assert gate.take_counts() == ()


@pytest.mark.skipif(fastpath.state() != "on", reason=f"the C gate is {fastpath.state()}")
def test_publish_takes_only_getters_and_masks_answers() -> None:
    from sandbox.machine import Machine

    machine = Machine(16 << 20)
    try:
        gate = machine._gate
        with pytest.raises(ValueError):
            gate.publish(0, 1)  # read has no answer slot
        with pytest.raises(ValueError):
            gate.publish(1 << 40, 1)
        with pytest.raises(OverflowError):
            gate.publish(-(1 << 70), 1)
        gate.publish(110, -1)  # two's complement, as RAX holds it
        gate.publish(110, 1 << 80)  # masked to 64 bits, never an error
        gate.forget()
        gate.set_return(-(1 << 70))
        assert machine.reg_read(fastpath.SYSCALL_REGS[0]) == (-(1 << 70)) & (2**64 - 1)
        assert gate.take_counts() == (0,) * len(fastpath.GETTERS)
    finally:
        machine.close()


@pytest.mark.parametrize("switch", ["1", "0"])
def test_a_closed_machines_gate_refuses_rather_than_reach_a_freed_engine(monkeypatch, switch: str) -> None:
    from sandbox.machine import Machine

    monkeypatch.setenv(fastpath.SWITCH_VARIABLE, switch)
    machine = Machine(16 << 20)
    machine.set_return(3)
    machine.close()
    with pytest.raises(RuntimeError):
        machine.set_return(0)
