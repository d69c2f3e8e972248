"""The general system-call path (issue 17: a 1-byte read of /dev/zero): the lean entry of
`Kernel._on_syscall`, the software TLB of copy_in/copy_out, the /dev/zero and /dev/null
files. Programs here run natively and in the sandbox with the same output:

- guests/libc/zeroread.c: the benchmark's loop (reads from /dev/zero, writes to /dev/null), at sizes that
  stay in one page, cross pages and pass the sandbox's per-call transfer cap;
- tlbattack.c: buffers whose mappings change between calls (munmap, mprotect, fork and
  copy-on-write, mremap, MADV_DONTNEED, code read into an executable page, bad pointers),
  writes to /dev/null, /dev/zero and /dev/full, which never read their buffer, and device
  reads that run into an unmapped page (short, not EFAULT);

and every observer still sees each call: the counts (--stats), api hooks, the trace.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from tests.conftest import ROOT, assert_as_natively, build_c, run_native, run_sandbox

HERE = ROOT / "tests" / "syscallpath"
ZEROREAD = ["1000", "1000 4096", "300 5000", "20 65536", "2000 1 0", "0"]
ATTACKS = ["unmap", "protect", "fork", "remap", "dontneed", "jit", "bad", "write", "numbers", "partial"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("syscallpath")
    build_c(ROOT / "guests" / "libc" / "zeroread.c", out)  # also a `make bench` row
    build_c(HERE / "tlbattack.c", out)
    return out


def boxed(program: Path, command: str, *options: str):
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{program.parent}:{program.parent}:ro", *options,
                        str(program), *command.split()])


@pytest.mark.parametrize("command", ZEROREAD)
def test_zeroread_as_natively(built: Path, command: str) -> None:
    program = built / "zeroread"
    assert_as_natively(run_native([str(program), *command.split()]), boxed(program, command))


@pytest.mark.parametrize("mode", ATTACKS)
def test_attack_as_natively(built: Path, mode: str) -> None:
    program = built / "tlbattack"
    assert_as_natively(run_native([str(program), mode]), boxed(program, mode))


def in_process(program: Path, *args: str, hooks: dict | None = None) -> Sandbox:
    """Run `program` through the Python API; the sandbox, for its counts."""
    sb = Sandbox()
    for call, on_exit in (hooks or {}).items():
        sb.hook_syscall(call, on_exit=on_exit)
    sb.run(str(program), [str(program), *args], on_stdout=lambda data: None)
    return sb


def test_every_call_is_counted(built: Path) -> None:
    sb = in_process(built / "zeroread", "5000", "1", "3000")
    try:
        counts = sb.kernel.syscall_counts
        assert counts["read"] == 5000 and counts["write"] >= 3000
        assert sb.kernel.syscall_counts["read"] == 5000  # folded once, not twice
    finally:
        sb.close()


def test_odd_numbers_are_counted_by_linux_name(built: Path) -> None:
    sb = in_process(built / "tlbattack", "numbers")
    try:
        counts = sb.kernel.syscall_counts
        assert counts["getpid"] >= 2  # 1 << 32 | 39 is getpid (EAX is the number)
        assert counts["(not a system call)"] >= 4  # 100000, -1, 512, 1023 share one key
        assert not any(name.startswith("syscall_") for name in counts)
    finally:
        sb.close()


def test_hooks_see_every_call(built: Path) -> None:
    seen = []

    def on_exit(call) -> None:
        seen.append(call.result)
        if len(seen) == 3:
            call.result = -errno.EIO  # the guest's loop sums what read returns

    sb = in_process(built / "zeroread", "200", "1", "0", hooks={"read": on_exit})
    try:
        assert len(seen) == 200 and set(seen) == {1}
    finally:
        sb.close()


def test_the_trace_shows_every_call(built: Path) -> None:
    done = boxed(built / "zeroread", "7 1 5", "--trace-syscalls")
    lines = done.stderr.decode().splitlines()
    assert sum(line.startswith('read(3, "\\0", 1)') for line in lines) == 7
    assert sum(line.startswith('write(4, "\\0", 1)') for line in lines) == 5
    assert done.stdout == b"read 7 bytes, wrote 5, first byte 0\n"


def test_stats_json_counts(built: Path, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    done = boxed(built / "zeroread", "1234 1 0", "--stats-json", str(stats))
    assert done.returncode == 0
    assert json.loads(stats.read_text())["syscalls"]["read"] == 1234
