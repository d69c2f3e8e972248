"""Processes through the API: exact frame accounting, copy-on-write statistics, traces."""

from __future__ import annotations

import io

from sandbox.api import Sandbox
from tests.conftest import guest, run_sandbox

BUSYBOX = "/bin/busybox"


def test_frames_return_to_baseline_after_500_fork_exit_cycles() -> None:
    script = "i=0; while [ $i -lt 500 ]; do /bin/busybox true; i=$((i+1)); done; echo $i"
    with Sandbox(memory=64 << 20) as sb:
        result = sb.run(BUSYBOX, [BUSYBOX, "sh", "-c", script])
        assert result.status == 0 and result.stats["processes"] >= 501
        assert len(sb.kernel.processes) == 1, "every child was reaped"
        sb.release()
        assert sb.machine.frames.used == sb.baseline_frames
        assert sb.kernel.page_cache.files == {}
        sb.machine.frames.check_invariants()


def test_copy_on_write_is_counted_and_traced() -> None:
    out = io.StringIO()
    with Sandbox(memory=64 << 20, trace_faults=True, trace_out=out,
                 mounts=[f"{BUSYBOX}:{BUSYBOX}:ro"]) as sb:
        result = sb.run(guest("procs-glibc"))
        assert result.status == 0
    stats = result.stats
    assert stats["faults"]["copy-on-write"] > 0 and stats["pages_shared_at_fork"] > 0
    assert stats["frames"]["peak"] > stats["frames"]["used"]
    pids = {line.split("]")[0] for line in out.getvalue().splitlines() if " fault " in line}
    assert len(pids) > 5, "faults are traced with the pid that took them"
    assert "fault copy-on-write write" in out.getvalue()


def test_deadlock_is_reported_not_hung() -> None:
    """Natively this read sleeps forever; the sandbox sees nobody can write and says so."""
    result = run_sandbox(["run", guest("blockers-musl"), "deadlock"])
    assert result.stdout == b"reading my own empty pipe\n"
    assert result.returncode == 128 + 9 and b"deadlock: empty pipe" in result.stderr
