"""The guest's file view: it reaches what was exposed and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from tests.conftest import guest, run_native, run_sandbox

BUSYBOX = "/bin/busybox"
SECRET = "host secret 7f3a"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A guest root inside tmp_path, with a secret next to it (outside) and traps inside."""
    (tmp_path / "secret.txt").write_text(SECRET)
    box = tmp_path / "root"
    (box / "tmp").mkdir(parents=True)
    (box / "inside.txt").write_text("inside\n")
    (box / "abs-link").symlink_to(tmp_path / "secret.txt")
    (box / "rel-link").symlink_to("../../../../../../../../" + str(tmp_path / "secret.txt"))
    (box / "up-link").symlink_to("..")
    (box / "loop").symlink_to("loop")
    return box


@pytest.mark.parametrize("path", [
    "../secret.txt", "/../secret.txt", "../../../../../../../etc/shadow", "abs-link", "rel-link",
    "up-link/secret.txt", "up-link/up-link/secret.txt", "/proc/self/root/etc/shadow", "/proc/1/cwd/secret.txt",
])
def test_no_path_reaches_outside(root: Path, path: str) -> None:
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "cat", path])
    assert SECRET.encode() not in result.stdout
    assert result.returncode == 1 and b"No such file or directory" in result.stderr


def test_dotdot_at_the_root_stays_at_the_root(root: Path) -> None:
    result = run_sandbox(["run", "--root", str(root), "--cwd", "/tmp", BUSYBOX, "cat", "../../../inside.txt"])
    assert result.stdout == b"inside\n"


def test_symlink_loop_is_eloop(root: Path) -> None:
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "cat", "loop"])
    assert b"Symbolic link loop" in result.stderr or b"Too many levels" in result.stderr


def test_read_only_mount_refuses_writes(root: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "keep.txt").write_text("keep")
    result = run_sandbox(["run", "--root", str(root), "--mount", f"{shared}:/ro:ro", BUSYBOX, "rm", "/ro/keep.txt"])
    assert result.returncode == 1 and b"Read-only file system" in result.stderr
    assert (shared / "keep.txt").exists()
    result = run_sandbox(["run", "--root", str(root), "--mount", f"{shared}:/rw", BUSYBOX, "touch", "/rw/new"])
    assert result.returncode == 0 and (shared / "new").exists()


def test_program_file_is_visible_but_read_only(root: Path) -> None:
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "rm", BUSYBOX])
    assert b"Read-only file system" in result.stderr and os.path.exists(BUSYBOX)
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "readlink", "/proc/self/exe"])
    assert result.stdout == os.path.realpath(BUSYBOX).encode() + b"\n"  # the file, as Linux's d_path


def test_proc_self_maps_is_the_vma_tree(root: Path) -> None:
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "cat", "/proc/self/maps"])
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("00400000-") and lines[0].endswith(BUSYBOX)
    assert lines[-1].endswith("[stack]") and any(line.endswith("[heap]") for line in lines)


def test_devices(root: Path) -> None:
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "od", "-An", "-N8", "-tx1", "/dev/zero"])
    assert result.stdout.split() == [b"00"] * 8
    listing = run_sandbox(["run", "--root", str(root), BUSYBOX, "ls", "/dev"]).stdout.split()
    assert listing == [b"fd", b"full", b"null", b"ptmx", b"pts", b"random", b"stderr", b"stdin", b"stdout", b"tty",
                       b"urandom", b"zero"]
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "cat", "/dev/tty"])
    assert result.returncode == 1 and b"No such device or address" in result.stderr


def test_missing_root_or_cwd_is_a_one_line_error(root: Path) -> None:
    result = run_sandbox(["run", "--root", str(root), "--cwd", "/nowhere", BUSYBOX, "true"])
    assert result.returncode == 126 and result.stderr.count(b"\n") == 1 and b"--cwd /nowhere" in result.stderr
    result = run_sandbox(["run", "--mount", "relative:/x", BUSYBOX, "true"])
    assert result.returncode == 2 and b"--mount" in result.stderr  # a usage mistake


def test_environment_is_fixed_unless_inherited() -> None:
    env = dict(os.environ, SANDBOX_TEST_MARKER="visible")
    fixed = run_sandbox(["run", "--env", "EXTRA=1", BUSYBOX, "env"], env=env)
    assert b"SANDBOX_TEST_MARKER" not in fixed.stdout and b"EXTRA=1\n" in fixed.stdout
    inherited = run_sandbox(["run", "--inherit-env", BUSYBOX, "env"], env=env)
    assert b"SANDBOX_TEST_MARKER=visible\n" in inherited.stdout


def test_inherited_environment_is_the_one_the_sandbox_was_given() -> None:
    """Under LANG=C CPython coerces its own locale by setting LC_CTYPE=C.UTF-8 (PEP 538);
    the guest must not inherit that (natively `wc -m` and error quotes stay in the C
    locale). An LC_CTYPE the user set is passed on."""
    native = run_native(["/usr/bin/env"], env={"LANG": "C"})
    inherited = run_sandbox(["run", "--inherit-env", "/usr/bin/env"], env={"LANG": "C"})
    assert inherited.stdout == native.stdout == b"LANG=C\n"
    given = {"LANG": "C", "LC_CTYPE": "C.UTF-8"}
    assert run_sandbox(["run", "--inherit-env", "/usr/bin/env"], env=given).stdout == b"LANG=C\nLC_CTYPE=C.UTF-8\n"


def test_deterministic_runs_repeat_exactly() -> None:
    def once(seed: str) -> bytes:
        out = b""
        for command in (["date", "+%s"], ["od", "-An", "-N16", "-tx1", "/dev/urandom"]):
            result = run_sandbox(["run", "--deterministic", "--seed", seed, "--trace-syscalls", BUSYBOX, *command])
            assert result.returncode == 0
            out += result.stdout + result.stderr
        return out

    assert once("1") == once("1")
    assert once("1") != once("2")


def test_private_file_pages_share_one_frame_until_written(root: Path) -> None:
    (root / "data.bin").write_bytes(b"A" * 4096 + b"B" * 4096)
    with Sandbox(memory=64 << 20, root=str(root)) as sb:
        result = sb.run(guest("mapfile-glibc"), ["mapfile", "/data.bin", "share"])
        assert result.status == 0, result.message
        space = sb.process.space
        first, second = [r for r in space.regions if r.name == "/data.bin"]
        assert space.translate(first.start + 4096) == space.translate(second.start + 4096)
        assert space.translate(first.start) != space.translate(second.start)
        shared_pfn = space.translate(first.start + 4096) >> 12
        assert sb.machine.frames.refcount(shared_pfn) == 3  # the page cache + two mappings


def test_sigbus_past_end_of_file_names_the_signal(root: Path) -> None:
    (root / "short.txt").write_text("short")
    result = run_sandbox(["run", "--root", str(root), guest("mapfile-musl"), "/short.txt", "sigbus"])
    assert result.returncode == 128 + 7 and b"killed by SIGBUS (BUS_ADRERR)" in result.stderr
