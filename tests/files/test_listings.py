"""Directory listings and /proc files as Linux gives them: listings.c's cases run natively
and in the sandbox must print the same.

Each was a difference found by a differential run of 503 Debian command lines: rewinddir
kept the listing of the open (entries made since never showed), the old getdents(2) was
ENOSYS (ASan's leak checker lists /proc/PID/task with it), /proc/self/fd was listed at the
open (without the descriptor listing it), stat and fstat of a /proc file disagreed on the
inode (cp refused to copy /proc/self/status), /proc/PID/auxv was missing, and
/proc/self/environ opened before an execve read the new image's stack after it; and
moved.c's: a renamed working directory or directory descriptor lost its place, and a removed
one still answered getcwd; and tmpfile.c's: O_TMPFILE was EOPNOTSUPP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import build_c, run_native, run_sandbox

HERE = Path(__file__).parent
CASES = ["rewind", "old", "fds", "inodes", "auxv", "exec"]
MOVED = ["cwd", "dirfd", "exchange", "removed"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("listings")
    for name in ("listings", "moved", "tmpfile", "tmpquota"):
        build_c(HERE / f"{name}.c", out)
    return out


def compare(program: Path, tmp_path: Path, case: str) -> None:
    """`program case` in a fresh directory natively, and in another in the sandbox."""
    native_dir, boxed_dir = tmp_path / "native", tmp_path / "boxed"
    native_dir.mkdir()
    boxed_dir.mkdir()
    native = run_native([str(program), case], cwd=native_dir)
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{boxed_dir}:{boxed_dir}",
                         "--mount", f"{program}:{program}:ro", "--cwd", str(boxed_dir), str(program), case])
    assert native.returncode == 0 and native.stdout, native.stderr
    assert (boxed.returncode, boxed.stdout.replace(str(boxed_dir).encode(), b"DIR"), boxed.stderr) == (
        native.returncode, native.stdout.replace(str(native_dir).encode(), b"DIR"), native.stderr)


@pytest.mark.parametrize("case", CASES)
def test_as_natively(built: Path, tmp_path: Path, case: str) -> None:
    compare(built / "listings", tmp_path, case)


@pytest.mark.parametrize("case", MOVED)
def test_moved_and_removed_directories_as_natively(built: Path, tmp_path: Path, case: str) -> None:
    """A cwd and a directory descriptor follow a rename (Linux holds them by dentry; the
    sandbox by guest path, rewritten at the rename); a removed cwd finds nothing, even once
    a directory is made at its path again."""
    compare(built / "moved", tmp_path, case)


def test_tmpfile_as_natively(built: Path, tmp_path: Path) -> None:
    """O_TMPFILE makes an unnamed file that linkat through /proc/self/fd names (it was
    EOPNOTSUPP); a file unlinked after its open and a pipe are refused as Linux refuses them."""
    compare(built / "tmpfile", tmp_path, "-")


def test_tmpfiles_count_against_the_disk_quota(built: Path) -> None:
    """200 MiB through unnamed files closed one by one fit --disk 16M; 40 MiB held open do
    not: the writes past 16 MiB are ENOSPC."""
    result = run_sandbox(["run", "--disk", "16M", "--mount", f"{built}:{built}:ro", str(built / "tmpquota")])
    assert result.stdout.decode().splitlines() == ["closed each: 0 failed",
                                                   "held open: 24 short (No space left on device)"]


def test_listing_order_is_the_hosts_unless_deterministic(tmp_path: Path) -> None:
    """Names come in the host file system's order (as `ls -f` natively shows them; `.` and
    `..` first, where a hashed directory may put them elsewhere), and sorted under
    --deterministic, whose runs must repeat on any machine."""
    for name in ("b", "c", "a", "zz", "m"):
        (tmp_path / name).touch()
    native = run_native(["/bin/ls", "-f", str(tmp_path)]).stdout.split()
    boxed = run_sandbox(["run", "--mount", f"{tmp_path}:{tmp_path}:ro", "/bin/ls", "-f", str(tmp_path)]).stdout.split()
    assert boxed[:2] == [b".", b".."] and boxed[2:] == [name for name in native if name not in (b".", b"..")]
    fixed = run_sandbox(["run", "--deterministic", "--mount", f"{tmp_path}:{tmp_path}:ro", "/bin/ls", "-f",
                         str(tmp_path)]).stdout
    assert fixed == b".\n..\na\nb\nc\nm\nzz\n"
