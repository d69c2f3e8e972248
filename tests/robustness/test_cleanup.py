"""Issue 12, finding 7 (and the cleanup half of 2): the private root leaves $TMPDIR on
every way out of a run, and the exit status stays the guest's.

Each CLI run gets its own empty TMPDIR (pytest's tmp_path): whatever the sandbox made there
(the private root, memfd scratch files) must be gone when the process has exited: after a
tree deeper than any path, after SIGTERM, SIGHUP or SIGINT sent to the sandbox itself, after
--timeout, after a guest killed by SIGSEGV, after an internal error.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from sandbox import hostfs
from sandbox.api import Sandbox
from sandbox.cli import EXIT_INTERNAL, EXIT_SIGNALLED
from sandbox.errors import InvariantError
from tests.conftest import ROOT, descend, guest, run_sandbox

DEEP = 5000  # levels the guest makes: five times what recursion survived
HOST_DEEP = 12_000  # levels remove_tree takes apart directly


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path):
    """After a failure, take apart what a run left (pytest's own rmtree recurses and would
    fail on the deep tree)."""
    yield
    for name in os.listdir(tmp_path):
        if name.startswith("sandbox-root-"):
            hostfs.remove_path(str(tmp_path / name))


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp_path)}


def _left(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path))


# -- through the CLI ------------------------------------------------------------------------


def test_tree_deeper_than_recursion_is_removed_and_status_is_the_guests(tmp_path: Path) -> None:
    done = run_sandbox(["run", guest("deeptree"), str(DEEP)], env=_env(tmp_path))
    assert done.stderr == b""
    assert (done.returncode, done.stdout) == (0, f"depth {DEEP + 1}\n".encode())
    assert _left(tmp_path) == []


@pytest.mark.parametrize(("signo", "how"), [
    (signal.SIGTERM, "sleep"), (signal.SIGTERM, "spin"), (signal.SIGTERM, "calls"),
    (signal.SIGHUP, "sleep"), (signal.SIGHUP, "calls"), (signal.SIGINT, "spin"), (signal.SIGINT, "sleep"),
])
def test_stop_signal_to_the_sandbox_ends_the_run_and_removes_the_root(tmp_path: Path, signo: int, how: str) -> None:
    with subprocess.Popen([sys.executable, "-m", "sandbox", "run", guest("linger"), how], env=_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout.readline() == b"ready\n"  # the guest runs: its root and data exist
        assert [name for name in _left(tmp_path) if name.startswith("sandbox-root-")]
        proc.send_signal(signo)
        out, err = proc.communicate(timeout=120)
    name = signal.Signals(signo).name
    assert proc.returncode == EXIT_SIGNALLED + signo
    assert err.decode().splitlines() == [f"sandbox: {guest('linger')}: killed by {name} sent to the sandbox"]
    assert out == b""
    assert _left(tmp_path) == []


def test_timeout_removes_the_root(tmp_path: Path) -> None:
    done = run_sandbox(["run", "--timeout", "1", guest("linger"), "spin"], env=_env(tmp_path))
    assert done.returncode == EXIT_SIGNALLED + signal.SIGKILL
    assert _left(tmp_path) == []


def test_guest_killed_by_sigsegv_removes_the_root(tmp_path: Path) -> None:
    done = run_sandbox(["run", guest("segv"), "null-read"], env=_env(tmp_path))
    assert done.returncode == EXIT_SIGNALLED + signal.SIGSEGV
    assert _left(tmp_path) == []


def _cli_with(tmp_path: Path, patch: str, *argv: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter, after `patch` (Python source) ran there."""
    script = textwrap.dedent(patch) + textwrap.dedent("""
        import sys
        from sandbox.cli import main
        sys.argv = ["sandbox", *sys.argv[1:]]
        main()
    """)
    return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, env=_env(tmp_path),
                          cwd=ROOT, timeout=600)


def test_internal_error_still_exits_70_and_removes_the_root(tmp_path: Path) -> None:
    done = _cli_with(tmp_path, """
        from sandbox.kernel.kernel import Kernel
        def broken(self):
            raise RuntimeError("a sandbox bug, injected")
        Kernel._on_syscall = broken
    """, "run", guest("linger"), "sleep")
    assert done.returncode == EXIT_INTERNAL
    assert b"internal error" in done.stderr and b"injected" in done.stderr
    assert _left(tmp_path) == []


def test_cleanup_failure_is_said_in_one_line_and_keeps_the_guests_status(tmp_path: Path) -> None:
    done = _cli_with(tmp_path, """
        import errno
        import sandbox.kernel.kernel as kernel
        def refuse(path, identity=None):
            raise PermissionError(errno.EPERM, "refused, injected", path)
        kernel.remove_path = refuse
    """, "run", guest("hello"))
    assert done.returncode == 0
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sandbox: cleanup: could not remove the private root ")
    # the root and the generated /etc files the injected failure left (removed after the test)
    assert sorted(name.split("-")[1] for name in _left(tmp_path)) == ["etc", "root"]


# -- through the Python API -----------------------------------------------------------------


@pytest.fixture
def own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's directory, for this test only."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_api_close_removes_the_root_even_if_release_fails(own_tmpdir: Path) -> None:
    sb = Sandbox()
    sb.run(guest("hello"))
    assert _left(own_tmpdir)

    def broken(_proc) -> None:
        raise InvariantError("injected")

    sb.kernel.release = broken
    with pytest.raises(InvariantError, match="injected"):
        sb.close()
    assert _left(own_tmpdir) == []


def test_api_sandbox_never_closed_removes_its_root_when_collected(own_tmpdir: Path) -> None:
    sb = Sandbox()
    assert _left(own_tmpdir)
    del sb
    gc.collect()
    assert _left(own_tmpdir) == []


def test_api_context_manager_removes_the_root_after_an_error(own_tmpdir: Path) -> None:
    with pytest.raises(ZeroDivisionError), Sandbox() as sb:
        sb.run(guest("hello"))
        1 / 0  # noqa: B018 - the caller's own error, inside the block
    assert _left(own_tmpdir) == []


# -- hostfs.remove_tree on the host ---------------------------------------------------------


def _make_deep(parent: Path, levels: int) -> None:
    """parent/d/d/.../d, `levels` deep, by descriptors (the path is far past PATH_MAX)."""
    fd = descend(parent, "d", levels)
    with open(os.open("data", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
        f.write("at the bottom\n")
    os.close(fd)


def test_remove_tree_far_deeper_than_recursion_or_descriptors(tmp_path: Path) -> None:
    (tmp_path / "top").mkdir()
    _make_deep(tmp_path / "top", HOST_DEEP)
    hostfs.remove_path(str(tmp_path / "top"))
    assert _left(tmp_path) == []


def test_remove_tree_never_follows_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "canary").write_text("host data")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "to-dir").symlink_to(outside)
    (tree / "a" / "to-file").symlink_to(outside / "canary")
    (tree / "to-sub").symlink_to("../outside/sub")
    hostfs.remove_path(str(tree))
    assert _left(tmp_path) == ["outside"]
    assert sorted(os.listdir(outside)) == ["canary", "sub"] and (outside / "canary").read_text() == "host data"


def test_remove_tree_leaves_a_directory_that_is_not_the_one_made(tmp_path: Path) -> None:
    (tmp_path / "made").mkdir()
    made = hostfs.identity_of(os.stat(tmp_path / "made"))
    os.rename(tmp_path / "made", tmp_path / "moved")
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "someone-elses").write_text("keep")
    with pytest.raises(OSError) as caught:
        hostfs.remove_path(str(tmp_path / "made"), identity=made)
    assert caught.value.errno == errno.ESTALE
    assert (tmp_path / "made" / "someone-elses").read_text() == "keep"
    hostfs.remove_path(str(tmp_path / "moved"), identity=made)
    assert _left(tmp_path) == ["made"]


UNPRIVILEGED = 65534  # nobody: modes bind it, as they bind the sandbox's user


def test_remove_tree_opens_directories_the_guest_locked(tmp_path: Path) -> None:
    """Modes 000 and 0500 on the way down, removed by their unprivileged owner (as root, whom
    modes do not bind, the removal runs with nobody's effective ids)."""
    top = tmp_path / "top"
    (top / "a" / "b" / "c").mkdir(parents=True)
    (top / "a" / "b" / "c" / "file").write_text("x")
    (top / "a" / "b" / "file").write_text("x")
    privileged = os.geteuid() == 0
    if privileged:
        for path in (top, top / "a", top / "a" / "b", top / "a" / "b" / "c"):
            for name in os.listdir(path):
                os.lchown(path / name, UNPRIVILEGED, UNPRIVILEGED)
        os.lchown(top, UNPRIVILEGED, UNPRIVILEGED)
        os.lchown(tmp_path, UNPRIVILEGED, UNPRIVILEGED)  # nobody removes `top` from it
    (top / "a" / "b" / "c").chmod(0o000)
    (top / "a" / "b").chmod(0o500)
    (top / "a").chmod(0o000)
    parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if privileged:
            os.setegid(UNPRIVILEGED)
            os.seteuid(UNPRIVILEGED)
        with pytest.raises(PermissionError):
            os.open("top/a", os.O_RDONLY, dir_fd=parent)
        hostfs.remove_tree(parent, "top")
    finally:
        if privileged:
            os.seteuid(0)
            os.setegid(0)
        os.close(parent)
    assert _left(tmp_path) == []


def test_a_closed_sandbox_holds_no_host_descriptor() -> None:
    """close() closes the view's host directories too (a score of descriptors per mount
    table), not only when the Sandbox is collected: a script making sandboxes one after
    another holds none of them."""
    from sandbox.api import Sandbox

    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        sb = Sandbox(mounts=["/tmp:/tmp:ro"])
        assert sb.run(guest("hello"), capture=True).status == 0
        sb.close()
    assert set(os.listdir("/proc/self/fd")) <= before


# -- what a killed sandbox left: swept by the next one --------------------------------------


def _sweep_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """One sweep of `tmp_path` in this process, taking any age (LEFTOVER_AGE is there only
    for the instant between a sandbox's mkdir and its lock)."""
    monkeypatch.setattr(hostfs, "LEFTOVER_AGE", -1.0)
    monkeypatch.setattr(hostfs, "_swept", set())
    return hostfs.sweep_leftovers(str(tmp_path))


def test_a_sigkilled_sandboxs_directories_are_swept_and_a_live_ones_are_not(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL leaves the root and the generated /etc behind; while another sandbox runs,
    its own (locked) directories survive a sweep, the dead one's go."""
    killed = subprocess.Popen([sys.executable, "-m", "sandbox", "run", guest("linger"), "sleep"],
                              env=_env(tmp_path), stdout=subprocess.PIPE)
    assert killed.stdout.readline() == b"ready\n"
    killed.kill()
    killed.wait()
    killed.stdout.close()
    dead = _left(tmp_path)
    assert sorted(name.split("-")[1] for name in dead) == ["etc", "root"]
    with subprocess.Popen([sys.executable, "-m", "sandbox", "run", guest("linger"), "sleep"], env=_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as live:
        assert live.stdout.readline() == b"ready\n"
        alive = sorted(set(_left(tmp_path)) - set(dead))
        assert len(alive) == 2
        assert _sweep_now(tmp_path, monkeypatch) == 2
        assert _left(tmp_path) == alive
        live.send_signal(signal.SIGTERM)
        live.communicate(timeout=120)
    assert _left(tmp_path) == []


def test_the_next_sandbox_sweeps_the_leftovers(tmp_path: Path) -> None:
    """A run's start-up sweeps its temporary directory (here with the age check off)."""
    leftover = tmp_path / "sandbox-root-abcdefgh"
    (leftover / "tmp").mkdir(parents=True)
    (leftover / "tmp" / "data").write_text("a killed guest's")
    done = _cli_with(tmp_path, "import sandbox.hostfs as h; h.LEFTOVER_AGE = -1.0", "run", guest("hello"))
    assert done.returncode == 0, done.stderr
    assert _left(tmp_path) == []


def test_a_kept_root_is_not_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = run_sandbox(["run", "--keep-root", guest("hello")], env=_env(tmp_path))
    kept = done.stderr.decode().split(" kept at ")[-1].strip()
    assert os.path.basename(kept).startswith("sandbox-kept-") and _left(tmp_path) == [os.path.basename(kept)]
    assert _sweep_now(tmp_path, monkeypatch) == 0
    assert _left(tmp_path) == [os.path.basename(kept)]
    hostfs.remove_path(kept)


def test_a_sweep_takes_only_what_a_sandbox_would_have_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack: names and things that look like leftovers. A symlink named as a root is
    not followed, a directory of another user is not touched, a name that is not a
    sandbox's (another prefix, another length) stays; a real leftover goes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("host data")
    (tmp_path / "sandbox-root-symlinks").symlink_to(outside)
    for name in ("sandbox-root-important-data", "sandbox-rootabcdefgh", "my-sandbox-root-abcdefgh"):
        (tmp_path / name).mkdir()
    theirs = tmp_path / "sandbox-etc-theirs00"
    theirs.mkdir()
    if os.geteuid() == 0:
        os.chown(theirs, UNPRIVILEGED, UNPRIVILEGED)
    (tmp_path / "sandbox-snapshot-leftover").mkdir()
    (tmp_path / "sandbox-snapshot-leftover" / "f").write_text("x")
    expected = sorted(set(_left(tmp_path)) - {"sandbox-snapshot-leftover"}
                      - ({"sandbox-etc-theirs00"} if os.geteuid() != 0 else set()))
    assert _sweep_now(tmp_path, monkeypatch) == 1
    assert _left(tmp_path) == expected
    assert (outside / "canary").read_text() == "host data"


def test_a_flood_of_look_alikes_costs_a_sweep_no_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack on a shared /tmp: another user's 500 directories named as leftovers. The
    sweep lstat-s at most SWEEP_LOOKS of them and opens none (they are not ours)."""
    if os.geteuid() != 0:
        pytest.skip("making another user's directories takes root")
    for i in range(500):
        (tmp_path / f"sandbox-root-{i:08d}").mkdir()
        os.chown(tmp_path / f"sandbox-root-{i:08d}", UNPRIVILEGED, UNPRIVILEGED)
    opened, looked = [], []
    real_open, real_lstat = os.open, os.lstat
    monkeypatch.setattr(hostfs.os, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    monkeypatch.setattr(hostfs.os, "lstat", lambda path, *a, **k: looked.append(path) or real_lstat(path, *a, **k))
    assert _sweep_now(tmp_path, monkeypatch) == 0
    assert opened == [str(tmp_path)] and len(looked) == hostfs.SWEEP_LOOKS
    assert len(_left(tmp_path)) == 500
