"""inotify (issue 15, part B): ino.c's scenarios run natively and in the sandbox print the
same events (masks, names, wds, which cookies match) and the same errors.

The watched directory is a writable --mount at the same path as natively, or /tmp (the
sandbox's own); each run makes a fresh directory of its own inside it. Limits the host
sets otherwise (fs.inotify.max_user_watches, max_user_instances) are checked against the
sandbox's own bounds, and the byte budget and queue bound through the Python API.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, python_as_natively, require_tool, run_native, run_sandbox

SOURCE = ROOT / "tests" / "inotify" / "ino.c"
SCENARIOS = ["dir", "file", "unlinked", "oneshot", "rmwatch", "flags", "coalesce", "small", "readiness",
             "blocking", "interrupted", "overflow", "same", "io"]


@pytest.fixture(scope="module")
def ino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("inotify") / "ino"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out), str(SOURCE)], check=True)
    return out


def boxed(ino: Path, scenario: str, where: Path | str, **kw) -> subprocess.CompletedProcess:
    mounts = ["--mount", f"{ino}:{ino}:ro"]
    if isinstance(where, Path):
        mounts += ["--mount", f"{where}:{where}"]
    return run_sandbox(["run", "--timeout", "60", *mounts, str(ino), scenario, str(where)], **kw)


def assert_same(native: subprocess.CompletedProcess, sandboxed: subprocess.CompletedProcess) -> None:
    assert sandboxed.stderr == native.stderr
    assert sandboxed.stdout.decode() == native.stdout.decode()
    assert sandboxed.returncode == native.returncode == 0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_as_natively_in_a_mounted_directory(ino: Path, tmp_path: Path, scenario: str) -> None:
    assert_same(run_native([str(ino), scenario, str(tmp_path)]), boxed(ino, scenario, tmp_path))


@pytest.mark.parametrize("scenario", ["dir", "file", "unlinked"])
def test_as_natively_in_tmp(ino: Path, scenario: str) -> None:
    """The sandbox's /tmp (its private root's) against the host's: a fresh directory each."""
    native = run_native([str(ino), scenario, "/tmp"])
    assert_same(native, boxed(ino, scenario, "/tmp"))


def test_watches_end_at_max_user_watches(ino: Path, tmp_path: Path) -> None:
    """A watch per file: ENOSPC after fs.inotify.max_user_watches (8192) in the sandbox; the
    instance's close gives them all back."""
    sandboxed = boxed(ino, "many", tmp_path)
    assert sandboxed.stdout.decode().splitlines() == ["watch 8192: No space left on device", "after close: wd 1"]


def test_instances_end_at_max_user_instances(ino: Path, tmp_path: Path) -> None:
    sandboxed = boxed(ino, "instances", tmp_path)
    assert sandboxed.stdout.decode() == "128 instances, then Too many open files\n"


def _api_run(ino: Path, scenario: str, where: Path, capfd, **options) -> tuple[str, object]:
    """Run a scenario in-process; its output and the sandbox's notifier (invariants checked,
    every watch and queued byte given back)."""
    from sandbox.api import Sandbox
    from sandbox.kernel.inotify import notifier_of

    with Sandbox(mounts=[f"{ino}:{ino}:ro", f"{where}:{where}"], **options) as sb:
        result = sb.run(str(ino), [str(ino), scenario, str(where)])
        assert result.status == 0
        notifier = notifier_of(sb.kernel)
        notifier.check_invariants()
        budgets = sb.kernel.budgets
        assert (budgets.inotify_watches.used, budgets.inotify_event_bytes.used, budgets.inotify_instances.used) == \
            (0, 0, 0), "what the instances held is given back at exit"
        assert not notifier.marks
    return capfd.readouterr().out, budgets


def test_queue_bound_is_an_option(ino: Path, tmp_path: Path, capfd) -> None:
    """max_queued_events of 100: one IN_Q_OVERFLOW after the 100th event, as Linux's 16384."""
    out, _ = _api_run(ino, "overflow", tmp_path, capfd, inotify_max_queued_events=100)
    assert out.splitlines()[:3] == [f"FIONREAD {100 * 32 + 16}", "overflow at 101 wd -1 len 0",
                                    "events 101 overflows 1 last 4000"]


def test_queued_bytes_are_bounded(ino: Path, tmp_path: Path, capfd) -> None:
    """Past the sandbox's byte budget for queued events, events are lost as on overflow."""
    from sandbox.kernel.inotify import EVENT_COST

    out, budgets = _api_run(ino, "overflow", tmp_path, capfd, inotify_event_bytes=50 * (EVENT_COST + 1))
    assert out.splitlines()[1:3] == ["overflow at 51 wd -1 len 0", "events 51 overflows 1 last 4000"]
    assert budgets.inotify_event_bytes.peak == 50 * (EVENT_COST + 1)


def test_watch_limit_is_an_option(ino: Path, tmp_path: Path, capfd) -> None:
    out, budgets = _api_run(ino, "many", tmp_path, capfd, inotify_watches=40)
    assert out.splitlines() == ["watch 40: No space left on device", "after close: wd 1"]
    assert budgets.inotify_watches.peak == 40


PYTHON_WATCHER = '''
import ctypes, os, select, struct, tempfile
libc = ctypes.CDLL(None, use_errno=True)
top = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(__file__)))
fd = libc.inotify_init1(os.O_NONBLOCK)
wd = libc.inotify_add_watch(fd, top.encode(), 0xFFF)
with open(os.path.join(top, "note.txt"), "w") as f:
    f.write("hello")
os.rename(os.path.join(top, "note.txt"), os.path.join(top, "kept.txt"))
os.remove(os.path.join(top, "kept.txt"))
print("readable:", bool(select.select([fd], [], [], 0)[0]))
data = os.read(fd, 4096)
while data:
    wd_, mask, cookie, length = struct.unpack_from("iIII", data)
    name = data[16:16 + length].rstrip(b"\\0").decode()
    print(wd_, hex(mask), bool(cookie), name)
    data = data[16 + length:]
'''


def test_a_python_program_watching_a_directory(tmp_path: Path) -> None:
    """Debian's dynamic python3 calls inotify through ctypes and reads the events."""
    require_tool("python3")
    python_as_natively(tmp_path / "watch.py", PYTHON_WATCHER, mount=tmp_path)
