"""Issue 16, items 5 and 6: where the CLI's output goes, and what happens to the files a
guest writes in its throwaway root.

- `sandbox maps PROG > f` and `sandbox pagetable PROG > f` capture the maps or the table
  (stdout); the guest's own stdout goes to stderr. `run --maps` keeps the guest's stdout.
- Files the guest wrote in its private root are counted in one line at exit when stderr
  is a terminal (scripts comparing output see nothing); `--keep-root` keeps the root and
  says where.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sandbox.cli import count_files
from tests.conftest import ROOT, run_sandbox


def run_on_terminal(args: list[str]) -> tuple[int, bytes, bytes]:
    """`sandbox ARGS` with stderr on a pseudo-terminal: (status, stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "sandbox", *args], stdout=subprocess.PIPE, stderr=terminal,
                              stdin=subprocess.DEVNULL, cwd=ROOT, timeout=600)
    finally:
        os.close(terminal)
    shown = b""
    try:
        while chunk := os.read(controller, 4096):
            shown += chunk
    except OSError:  # EIO: the terminal's other side is closed and drained
        pass
    os.close(controller)
    return done.returncode, done.stdout, shown


def test_maps_go_to_stdout_and_the_guests_output_to_stderr(writer: str) -> None:
    result = run_sandbox(["maps", writer, "0"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("00400000-") and lines[0].endswith(writer)
    assert any(line.endswith("[stack]") for line in lines)
    assert result.stderr == b"wrote 0\n"


def test_pagetable_goes_to_stdout(writer: str) -> None:
    result = run_sandbox(["pagetable", writer, "0"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"PML4 @ ") and b"wrote" not in result.stdout
    assert result.stderr == b"wrote 0\n"


def test_run_maps_leaves_stdout_to_the_guest(writer: str) -> None:
    result = run_sandbox(["run", "--maps", writer, "0"])
    assert result.stdout == b"wrote 0\n" and b"[stack]" in result.stderr


def test_a_failing_guest_keeps_its_status_and_messages_under_maps(writer: str, tmp_path: Path) -> None:
    """A root without a writable /tmp: the guest fails; its status and its own message
    are kept, and the maps still print on stdout."""
    result = run_sandbox(["maps", "--no-system", "--root", str(tmp_path), writer, "1"])
    assert result.returncode == 1
    assert result.stderr.startswith(b"/tmp/result-0.txt: ") and result.stderr.count(b"\n") == 1
    assert b"[stack]" in result.stdout


def test_files_left_in_the_private_root_are_counted_on_a_terminal(writer: str) -> None:
    status, out, shown = run_on_terminal(["run", writer, "3"])
    assert status == 0 and out == b"wrote 3\n"
    assert shown.count(b"\n") == 1 and b"the guest wrote 3 files in its private root" in shown, shown
    assert b"--keep-root" in shown


def test_nothing_written_nothing_said(writer: str) -> None:
    status, out, shown = run_on_terminal(["run", writer, "0"])
    assert (status, out, shown) == (0, b"wrote 0\n", b"")


def test_no_note_when_stderr_is_not_a_terminal(writer: str) -> None:
    """Scripts (and the differential tests) see exactly the guest's output."""
    result = run_sandbox(["run", writer, "2"])
    assert (result.returncode, result.stdout, result.stderr) == (0, b"wrote 2\n", b"")


def test_keep_root_keeps_the_files_and_says_where(writer: str) -> None:
    result = run_sandbox(["run", "--keep-root", writer, "2"])
    assert result.returncode == 0 and result.stdout == b"wrote 2\n"
    match = re.fullmatch(rb"sandbox: the guest's private root \(its / and /tmp\) is kept at (\S+)\n", result.stderr)
    assert match, result.stderr
    root = Path(os.fsdecode(match.group(1)))
    try:
        assert (root / "tmp" / "result-1.txt").read_text() == "result 1\n"
    finally:
        shutil.rmtree(root)


def test_keep_root_with_root_says_nothing(writer: str, tmp_path: Path) -> None:
    """With --root DIR the guest's / is the user's own directory: nothing to keep."""
    (tmp_path / "tmp").mkdir()
    result = run_sandbox(["run", "--no-system", "--keep-root", "--root", str(tmp_path), writer, "1"])
    assert (result.returncode, result.stderr) == (0, b"")
    assert (tmp_path / "tmp" / "result-0.txt").exists()


def test_count_files_is_bounded_and_follows_no_link(tmp_path: Path) -> None:
    """The guest shaped the tree: the count stops at its bound, skips what it cannot read
    and never follows a symbolic link out of it."""
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    for i in range(5):
        (deep / f"f{i}").write_bytes(b"")
    (tmp_path / "out").symlink_to("/usr")
    assert count_files(str(tmp_path), 100) == (6, True)  # five files and the link
    assert count_files(str(tmp_path), 4) == (2, False)
    assert count_files(str(tmp_path / "missing"), 100) == (0, True)
