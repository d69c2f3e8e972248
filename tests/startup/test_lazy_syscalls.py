"""System-call handler modules load on a call's first use (sandbox/kernel/syscalls.py):
the generated map is current, every call is in TABLE from the start, a plain run of hello
imports no module of a call it never makes, and calls from lazily loaded modules behave as
natively (including the IPC exit hook, which runs only once IPC objects exist)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.errors import InvariantError
from sandbox.kernel import syscalls
from sandbox.kernel.syscall_modules import SYSCALL_MODULES
from sandbox.kernel.syscall_names import SYSCALL_NUMBERS
from tests.conftest import ROOT, guest, require_tool, run_native, run_sandbox
from tools.gen_syscall_modules import TARGET, module_map

HERE = Path(__file__).resolve().parent

#: Modules of calls hello never makes (sockets, IPC, epoll and poll, inotify, splice, mounts).
NEVER_FOR_HELLO = {
    "sandbox.kernel.sys_net", "sandbox.kernel.net", "sandbox.kernel.net.base", "sandbox.kernel.net.unix",
    "sandbox.kernel.net.inet", "sandbox.kernel.net.host", "sandbox.kernel.sys_ipc", "sandbox.kernel.ipc",
    "sandbox.kernel.ipc_msg", "sandbox.kernel.ipc_sem", "sandbox.kernel.ipc_shm", "sandbox.kernel.sys_poll",
    "sandbox.kernel.epoll", "sandbox.kernel.sys_inotify", "sandbox.kernel.sys_splice", "sandbox.kernel.sys_mount",
    "sandbox.kernel.sys_signal", "sandbox.kernel.sys_sched", "sandbox.kernel.sys_memctl", "sandbox.kernel.sys_attr",
    "sandbox.kernel.sys_misc",
}

#: The plain `sandbox run PROG` path, writing the names of the loaded modules to argv[1]
#: as the command exits (it ends with os._exit, which skips atexit).
MODULES_AT_EXIT = """
import os, sys
out, real_exit = sys.argv.pop(1), os._exit
def record_and_exit(status):
    with open(out, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    real_exit(status)
os._exit = record_and_exit
from sandbox.cli import main
main()
"""


@pytest.fixture(scope="module")
def lazycalls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("lazy") / "lazycalls"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out), str(HERE / "lazycalls.c")], check=True)
    return out


def modules_after_run(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `sandbox ARGV` the plain way in a fresh interpreter; its result and loaded modules."""
    listing = tmp_path / "modules.txt"
    result = subprocess.run([sys.executable, "-c", MODULES_AT_EXIT, str(listing), *argv], capture_output=True,
                            cwd=ROOT, timeout=600)
    return result, set(listing.read_text().split())


def test_the_map_is_current() -> None:
    assert TARGET.read_text() == module_map(), "run: python tools/gen_syscall_modules.py"


def test_every_mapped_call_is_in_the_table_before_any_loads() -> None:
    """Names and argument lists (traces, --stats) are there whether or not a module loaded."""
    for name, (_, args) in SYSCALL_MODULES.items():
        entry = syscalls.TABLE[SYSCALL_NUMBERS[name]]
        assert (entry.name, entry.args) == (name, tuple(args.split()))


def test_load_all_replaces_every_standin_with_its_modules_handler() -> None:
    table = syscalls.load_all()
    assert len(table) == len(SYSCALL_MODULES)
    for name, (module, _) in SYSCALL_MODULES.items():
        nr = SYSCALL_NUMBERS[name]
        assert syscalls.is_loaded(nr) and table[nr].handler.__module__ == module


def test_a_second_real_handler_is_still_refused() -> None:
    syscalls.load_all()
    with pytest.raises(ValueError, match="registered twice"):
        syscalls.syscall("getpid")(lambda proc: 0)


def test_a_stale_map_is_a_host_error_not_a_loop() -> None:
    """A stand-in whose module does not register its call raises InvariantError."""
    nr = 100_000  # no such call: the TABLE is not touched
    syscalls._STANDINS.add(nr)
    try:
        with pytest.raises(InvariantError, match="did not register system call syscall_100000"):
            syscalls._standin(nr, "sandbox.kernel.sys_proc")(None)
    finally:
        syscalls._STANDINS.discard(nr)


def test_plain_hello_imports_no_module_of_calls_it_never_makes(tmp_path: Path) -> None:
    result, loaded = modules_after_run(tmp_path, "run", guest("hello"))
    assert result.returncode == 0 and b"Hello" in result.stdout, result.stderr
    assert "sandbox.kernel.sys_io" in loaded  # write: loaded on its first use
    assert not loaded & NEVER_FOR_HELLO, sorted(loaded & NEVER_FOR_HELLO)
    assert not loaded & {"click", "dataclasses"}


def test_lazily_loaded_calls_behave_as_natively(lazycalls: Path, tmp_path: Path) -> None:
    native = run_native([str(lazycalls)])
    boxed, loaded = modules_after_run(tmp_path, "run", "--timeout", "60", "--mount",
                                      f"{lazycalls.parent}:{lazycalls.parent}:ro", str(lazycalls))
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)
    assert b"after child's exit semval 0\n" in native.stdout  # the SEM_UNDO exit hook ran
    assert {"sandbox.kernel.sys_net", "sandbox.kernel.sys_ipc", "sandbox.kernel.sys_poll"} <= loaded


def test_the_trace_names_and_decodes_a_call_whose_module_loads_at_that_call(lazycalls: Path) -> None:
    boxed = run_sandbox(["run", "--trace-syscalls", "--mount", f"{lazycalls.parent}:{lazycalls.parent}:ro",
                         str(lazycalls)])
    trace = boxed.stderr.decode()
    assert boxed.returncode == 0
    for line in ("socketpair(AF_UNIX, SOCK_STREAM, 0, [3, 4]) = 0", "poll([{fd=4, events=POLLIN}], 1, 1000)",
                 "semget(0, 0x1, 0x180)"):
        assert line in trace
