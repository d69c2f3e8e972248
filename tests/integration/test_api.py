"""The Python API: results, reading memory after the run, and exact frame accounting."""

from __future__ import annotations

import io
import signal

from sandbox.api import Sandbox, run
from tests.conftest import guest


def test_run_returns_status_and_stats() -> None:
    result = run(guest("exitcode"), memory=32 << 20)
    assert (result.status, result.exit_code, result.signal) == (42, 42, None)
    assert result.stats["faults_total"] == sum(result.stats["faults"].values())


def test_killed_process_reports_signal() -> None:
    result = run(guest("segv"), [guest("segv"), "null-write"])
    assert result.signal == signal.SIGSEGV and result.status == 139
    assert "SEGV_MAPERR" in result.message


def test_frames_return_to_baseline_after_every_guest() -> None:
    with Sandbox(memory=64 << 20) as sb:
        for name, args in [("hello", []), ("mmaptest", []), ("segv", ["overflow"]), ("pagetouch", ["3000"]),
                           ("traps", ["ud2"]), ("stackgrow", ["2000"]), ("args-pie", ["x"])]:
            sb.run(guest(name), [guest(name), *args])
            sb.release()
            assert sb.machine.frames.used == sb.baseline_frames, name
            sb.machine.frames.check_invariants()


def test_trace_goes_where_asked() -> None:
    out = io.StringIO()
    with Sandbox(trace_syscalls=True, trace_out=out) as sb:
        sb.run(guest("exitcode"))
    # Not stderr: every line is led by the task id, as strace -f -o FILE writes.
    lines = out.getvalue().splitlines()
    assert lines[0].startswith('2     execve("') and "], 0x" in lines[0] and lines[0].endswith(" = 0")
    assert lines[1:] == ["2     exit_group(42)                    = ?", "2     +++ exited with 42 +++"]


def test_ten_thousand_faults_in_one_run() -> None:
    result = run(guest("pagetouch"), [guest("pagetouch"), "12000"])
    assert result.status == 0 and result.stats["faults"]["demand-zero"] >= 12000
