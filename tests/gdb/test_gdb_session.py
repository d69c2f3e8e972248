"""Debian's gdb, in batch mode, against `sandbox run --gdb 0`: breakpoints, steps, locals,
a watchpoint, exit status, a segfault stopped at its line, a backtrace from inside a
dynamic program's libc, fork followed in the parent. The guest's own output and status
must be what a native run gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool, run_native
from tests.gdb.stubrun import Stub, build, session


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tool("gdb")
    out = tmp_path_factory.mktemp("gdb")
    built = {name: build(out, name) for name in ("steps", "segv", "forker")}
    built["dyn"] = build(out, "dyn", static=False)
    return built


def test_break_next_print_watch_and_exit(progs: dict[str, Path]) -> None:
    output, status, out, _ = session(
        progs["steps"], "break add", "continue", "bt", "next", "print sum", "info args",
        "watch total_seen", "delete 1", "continue", "continue", "delete", "continue")
    assert "Breakpoint 1, add (a=0, b=0) at" in output
    assert "in main (argc=1, argv=" in output  # bt from inside add
    assert "$1 = 0" in output  # sum, after `next` computed it
    assert "Hardware watchpoint 2: total_seen" in output
    assert "Old value = 0\nNew value = 1" in output  # 0 -> 0 (the first call) is no change
    assert "Old value = 1\nNew value = 3" in output
    assert "exited with code 06" in output
    native = run_native([str(progs["steps"])])
    assert (status, out) == (native.returncode, native.stdout) == (6, b"total 6\n")


def test_stop_at_entry_stepi_and_registers(progs: dict[str, Path]) -> None:
    output, status, _, _ = session(
        progs["steps"], "print $pc == _start", "stepi", "print $pc != _start", "print (long)$rsp % 16",
        "print $fs_base", "print $mxcsr", "print $st0", "print $xmm0.uint128", "x/2xb add", "kill")
    assert "$1 = 1" in output  # stopped before the first instruction
    assert "$2 = 1" in output  # one instruction later
    assert "$3 = 0" in output  # the ABI's aligned stack at entry
    assert "$4 = 0" in output  # no TLS before libc sets it up
    assert "[ IM DM ZM OM UM PM ]" in output  # MXCSR's reset value, all exceptions masked
    assert "0x55\t0x48" in output  # push rbp; mov: the text as the file has it
    assert status == 137  # gdb's kill


def test_segfault_stops_at_its_line(progs: dict[str, Path]) -> None:
    output, status, out, err = session(progs["segv"], "continue", "bt", "continue")
    assert "Program received signal SIGSEGV, Segmentation fault." in output
    assert "FAULT HERE" in output  # the faulting line, before any handler
    assert "Program terminated with signal SIGSEGV" in output
    assert (status, out) == (139, b"before\n")
    assert b"killed by SIGSEGV" in err


def test_segfault_handler_runs_after_gdb_passes_it(progs: dict[str, Path]) -> None:
    output, status, out, _ = session(progs["segv"], "continue", "continue", args=("handle",))
    assert "Program received signal SIGSEGV" in output
    assert "exited with code 03" in output
    native = run_native([str(progs["segv"]), "handle"])
    assert (status, out) == (native.returncode, native.stdout) == (3, b"before\nhandled\n")


def test_dynamic_program_backtrace_inside_libc(progs: dict[str, Path]) -> None:
    output, status, out, _ = session(progs["dyn"], "break puts", "continue", "bt", "info sharedlibrary", "continue")
    assert "libc.so.6" in output
    assert "puts (str=" in output
    assert "in greet (who=" in output and "in main () at" in output
    assert "exited with code 04" in output
    assert "warning: while parsing target library list" not in output
    assert (status, out) == (4, b"hello from a dynamic program\n")


def test_fork_follows_the_parent(progs: dict[str, Path]) -> None:
    output, status, out, _ = session(progs["forker"], "break work", "continue", "print n", "continue")
    assert "Breakpoint 1, work (n=1)" in output  # the child's work(20) never stopped
    assert "exited normally" in output
    native = run_native([str(progs["forker"])])
    assert (status, out) == (native.returncode, native.stdout) == (0, b"child 40\nparent 2, child exited 5\n")


def test_threads_each_stop_at_the_breakpoint(progs: dict[str, Path], tmp_path: Path) -> None:
    program = build(tmp_path, "threads", flags=("-pthread",))
    output, status, out, _ = session(program, "break worker", "continue", "info threads", "continue", "continue")
    assert "hit Breakpoint 1, worker (arg=0x1)" in output
    assert "hit Breakpoint 1, worker (arg=0x2)" in output  # the second thread did not slip past
    assert "Thread 2.3" in output and "Thread 2.4" in output  # qfThreadInfo lists them (pid.tid: multiprocess)
    assert "exited normally" in output
    assert (status, out) == (0, b"hits 3\n")


def test_no_gdb_within_the_timeout_ends_the_run(progs: dict[str, Path]) -> None:
    stub = Stub(progs["steps"], options=("--timeout", "0.5"))
    status, out, err = stub.finish()
    assert (status, out) == (137, b"")
    assert b"no gdb connected" in err
