"""Threads: CLONE_THREAD tasks sharing one address space, futexes, per-thread signals.

Differential: each program runs natively and under `sandbox run`, and prints only what is
the same on every run (counts, sums, yes/no), so stdout, stderr and status must be equal.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from tests.conftest import GUESTS, ROOT, guest, require_tool, run_native, run_sandbox

VARIANTS = ("glibc", "musl", "pie")


def same(argv: list[str], options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    native = run_native(argv)
    boxed = run_sandbox(["run", *options, *argv])
    assert boxed.stderr.decode() == native.stderr.decode()
    assert boxed.stdout.decode() == native.stdout.decode()
    assert boxed.returncode == native.returncode
    return boxed


@pytest.mark.parametrize("variant", VARIANTS)
def test_pthreads(variant: str) -> None:
    """Mutexes, condition variables, a barrier, rwlocks, TLS, thread-specific data with
    destructors, join values, a detached thread and cancellation (which is a tgkill)."""
    result = same([guest(f"threads-{variant}")])
    assert b"counter 80000 of 80000" in result.stdout and b"cancelled: yes" in result.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_threads_and_the_process_model(variant: str) -> None:
    """fork and execve from a thread, pthread_kill and kill choosing the thread, robust and
    priority-inheritance mutexes, and the main thread leaving first."""
    result = same([guest(f"threadsys-{variant}")])
    assert b"robust mutex after its owner died: EOWNERDEAD" in result.stdout
    assert b"execve from a thread: 1 thread(s) now, the same pid: yes" in result.stdout


def test_sixty_four_threads_share_a_counter_and_give_their_frames_back() -> None:
    """64 threads x 10,000 increments under one mutex; the sandbox checks at release that
    every frame is back (SANDBOX_CHECK_INVARIANTS, tests/conftest.py)."""
    with Sandbox() as sb:
        result = sb.run(guest("threads-glibc"), ["threads", "64", "10000"])
    assert result.status == 0
    assert result.stats["processes"] == 1  # threads are no processes
    assert result.stats["syscalls"]["clone3"] >= 64


def test_cxx_threads() -> None:
    same([guest("thr-cxx")])


def test_rust_threads(tmp_path: Path) -> None:
    rustc = require_tool("rustc")
    program = tmp_path / "rust_threads"
    subprocess.run([rustc, "-O", "-o", str(program), str(ROOT / "guests/threads/rust_threads.rs")], check=True,
                   capture_output=True)
    same([str(program)], ("--mount", f"{tmp_path}:{tmp_path}:ro"))


def test_go_goroutines_channels_timers_json_and_gc(tmp_path: Path) -> None:
    """A static Go program (CGO off, as `go build` makes by default without a C compiler):
    goroutines on the runtime's OS threads, channels, WaitGroup, a ticker, JSON, and
    runtime.GC() under load, whose stop-the-world needs a woken thread to run promptly."""
    go = require_tool("go")
    program = tmp_path / "go_threads"
    env = {**os.environ, "CGO_ENABLED": "0", "GOCACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    subprocess.run([go, "build", "-o", str(program), str(ROOT / "guests/threads/go_threads.go")], check=True,
                   capture_output=True, env=env, cwd=tmp_path)
    same([str(program)], ("--mount", f"{tmp_path}:{tmp_path}:ro"))


def test_python_threading() -> None:
    script = str(ROOT / "guests/threads/python_threads.py")
    same(["/usr/bin/python3", script], ("--mount", f"{script}:{script}:ro"))


def test_each_thread_is_traced_by_its_own_id() -> None:
    result = run_sandbox(["run", "--trace-syscalls", guest("threads-musl"), "4", "100"])
    tids = set(re.findall(r"^\[pid +(\d+)\]", result.stderr.decode(), re.MULTILINE))
    assert result.returncode == 0 and len(tids) >= 5, tids


def test_the_same_interleaving_from_the_same_seed() -> None:
    """--deterministic: tasks switch only where they block or yield, so two runs make the
    same system calls in the same order, thread by thread."""
    runs = [run_sandbox(["run", "--deterministic", "--trace-syscalls", guest("threads-glibc"), "8", "2000"])
            for _ in range(2)]
    assert runs[0].returncode == 0 and runs[0].stdout == runs[1].stdout
    assert runs[0].stderr == runs[1].stderr


def test_a_wait_nobody_can_end_is_a_deadlock() -> None:
    """A thread waits on a lock it holds (a futex wait with no other task to wake it):
    natively it hangs for ever; the sandbox says so and ends it."""
    result = run_sandbox(["run", "/usr/bin/python3", "-c",
                          "import threading; lock = threading.Lock(); lock.acquire(); lock.acquire()"])
    assert result.returncode == 137
    assert "deadlock: futex wait" in result.stderr.decode()


CLONE_PROBE = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
SYS_clone, SYS_clone3 = 56, 435
def clone(flags):
    result = libc.syscall(SYS_clone, ctypes.c_ulong(flags), None, None, None, None)
    return errno.errorcode.get(ctypes.get_errno(), "?") if result == -1 else "created?"
CLONE_VM, CLONE_SIGHAND, CLONE_THREAD, CLONE_FS, CLONE_NEWNS = 0x100, 0x800, 0x10000, 0x200, 0x20000
print("THREAD without SIGHAND", clone(CLONE_THREAD | CLONE_VM))
print("SIGHAND without VM", clone(CLONE_SIGHAND))
print("NEWNS with FS", clone(CLONE_NEWNS | CLONE_FS))
def clone3(flags, exit_signal, size=64):
    args = (ctypes.c_ulonglong * 8)(flags, 0, 0, 0, exit_signal)
    result = libc.syscall(SYS_clone3, args, ctypes.c_ulong(size))
    return errno.errorcode.get(ctypes.get_errno(), "?") if result == -1 else "created?"
print("clone3: a thread with an exit signal", clone3(CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, 17))
print("clone3: too small", clone3(0, 17, 32))
"""


def test_clone_refuses_what_linux_refuses() -> None:
    """The flag combinations copy_process refuses are EINVAL, before anything is made."""
    result = same(["/usr/bin/python3", "-c", CLONE_PROBE])
    assert result.stdout.decode().count("EINVAL") == 5, result.stdout


def test_threads_share_one_page_table(tmp_path: Path) -> None:
    """Two threads, one CR3: their faults are attributed to their own tids, and each has a
    stack region of its own in maps."""
    seen: list[tuple[int, int]] = []
    with Sandbox() as sb:
        sb.add_fault_listener(lambda tid, space, record, rip: seen.append((tid, id(space))))
        result = sb.run(guest("threads-glibc"), ["threads", "2", "10"])
    assert result.status == 0
    spaces_of = {}
    for tid, space in seen:
        spaces_of.setdefault(tid, set()).add(space)
    leader = min(spaces_of)  # the program's pid (its first thread's tid)
    threads = [tid for tid in spaces_of if tid != leader]
    assert len(threads) >= 2 and all(spaces_of[tid] <= spaces_of[leader] for tid in threads)


def test_guest_binaries_are_built() -> None:
    for name in ("threads-glibc", "threads-musl", "threads-pie", "threadsys-glibc", "thr-cxx"):
        assert (GUESTS / name).exists()
