"""mount(2)/umount2(2) of a tmpfs inside the view, bind mounts and remounts, and /dev/tty,
/dev/pts, /dev/ptmx as programs probe them (issue 15 B), and TCGETS's size (issue 16, 1).

Native runs of mount need privilege: they run under `unshare --user --map-root-user
--mount` (util-linux), in a user and mount namespace of their own, as an unprivileged user
could -- which is what the sandbox's guest root may do (sandbox/kernel/sys_mount.py).
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "mounts"
CASES = ["basics", "busy", "flags", "readonly", "bind", "share", "noexec", "size"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("mounts")
    for name in ("mnt", "mntatk", "tty"):
        subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out / name), str(SOURCES / f"{name}.c")], check=True)
    return out


@pytest.fixture(scope="module")
def unshare() -> list[str]:
    """The command that runs a program in a user and mount namespace of its own."""
    tool = require_tool("unshare")
    argv = [tool, "--user", "--map-root-user", "--mount"]
    if run_native([*argv, "true"]).returncode != 0:
        pytest.skip("user namespaces are not available here")
    return argv


def boxed(built: Path, *argv: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", *options, "--mount", f"{built}:{built}:ro", *argv])


def same(native: subprocess.CompletedProcess, sandboxed: subprocess.CompletedProcess) -> None:
    assert sandboxed.stderr.decode() == native.stderr.decode()
    assert sandboxed.stdout.decode() == native.stdout.decode()
    assert sandboxed.returncode == native.returncode


@pytest.mark.parametrize("case", CASES)
def test_as_natively(built: Path, unshare: list[str], tmp_path: Path, case: str) -> None:
    """Each group of calls, natively in a namespace of its own and in the sandbox: the same
    results, errors, /proc/self/mounts lines (paths shown relative to the work directory)."""
    native = run_native([*unshare, str(built / "mnt"), str(tmp_path / "w"), case])
    same(native, boxed(built, str(built / "mnt"), "/tmp/w", case))


BUSYBOX_SCRIPT = """mkdir -p {dir} && cd {dir} && mkdir x
mount -t tmpfs -o size=1m,mode=750 none x && echo hi > x/f && cat x/f && ls -ld x | cut -c1-10
grep " $PWD/x " /proc/mounts | sed "s#$PWD#D#"
mount | grep -c " $PWD/x "
mount -o remount,ro x && (echo no > x/g) 2>&1 | sed 's/.*: //'
umount x && ls x; echo "status $?"
"""


def test_busybox_mount_as_natively(unshare: list[str], tmp_path: Path) -> None:
    """busybox's mount and umount applets (and `mount` listing /proc/mounts)."""
    native = run_native([*unshare, "/bin/busybox", "sh", "-c", BUSYBOX_SCRIPT.format(dir=tmp_path / "w")])
    sandboxed = run_sandbox(["run", "--timeout", "60", "/bin/busybox", "sh", "-c", BUSYBOX_SCRIPT.format(dir="/tmp/w")])
    same(native, sandboxed)
    assert sandboxed.stdout.decode().startswith("hi\ndrwxr-x---\nnone D/x tmpfs rw,relatime,size=1024k,mode=750")


def test_mountinfo_shows_the_guest_mounts() -> None:
    """mountinfo: a new mount's parent is the mount below it; options and super options."""
    script = ("mkdir /tmp/m && mount -t tmpfs -o size=64k t1 /tmp/m && mount -t tmpfs -o ro t2 /tmp/m && "
              "grep /tmp/m /proc/self/mountinfo")
    result = run_sandbox(["run", "--timeout", "60", "/bin/busybox", "sh", "-c", script])
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0 and len(lines) == 2, result
    first, second = (line.split() for line in lines)
    assert first[4] == second[4] == "/tmp/m"
    assert second[1] == first[0]  # stacked on the first
    assert first[5:] == ["rw,relatime", "-", "tmpfs", "t1", "rw,size=64k"]
    assert second[5:] == ["ro,relatime", "-", "tmpfs", "t2", "ro"]


ATTACKS = {
    "many": "mounted 256: No space left on device\nunmounted 256: Invalid argument\n",
    "quota": "".join(f"round {n} mount: ok\n  wrote over 1 MiB, stopped by No space left on device\n  umount: ok\n"
                     for n in range(3)),
    "strings": """huge type: Invalid argument
huge data: Invalid argument
huge target: File name too long
no type: Invalid argument
size huge: Invalid argument
mode huge: Invalid argument
on /proc: Operation not permitted
on /dev/null: Not a directory
bind /: Invalid argument
bind /proc: Invalid argument
umount /: Invalid argument
umount /dev/shm: Invalid argument
remount / rw: Operation not permitted
move: No such file or directory
""",
    "locked": """root ro: ok
create in /tmp: Read-only file system
create in /dev/shm: ok
root rw: Operation not permitted
remount /dev/shm: Operation not permitted
""",
    "dev": """open /dev/tty: No such device or address
open /dev/ptmx: ok
stat /dev/pts: ok dir 1
entries in /dev/pts: 1
tmpfs on /dev/shm: ok
umount it: ok
/dev/shm back: ok
""",
}


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_attacks(built: Path, case: str) -> None:
    """Past the sandbox's bounds (256 mounts, the disk quota given back at each umount),
    strings longer than Linux copies, mounts on what the sandbox makes up or made, /dev.

    Where these differ from a native run as root in a namespace of its own: the mount
    limit (Linux's is 100000), a size that overflows (Linux wraps it), a tmpfs on /proc or
    a bind of /proc (the sandbox's /proc is made up), /dev/ptmx (no devpts here), the
    root made writable again after a read-only remount (Linux allows it; the sandbox
    never makes one of its own mounts writable once the guest made it read-only)."""
    result = boxed(built, str(built / "mntatk"), case, options=("--disk", "8M"))
    assert (result.stdout.decode(), result.stderr.decode(), result.returncode) == (ATTACKS[case], "", 0)


def test_only_the_guest_root_mounts(built: Path) -> None:
    result = boxed(built, str(built / "mntatk"), "rootonly", options=("--uid", "1000"))
    assert result.stdout.decode() == ("mount as uid 1000: Operation not permitted\n"
                                      "umount as uid 1000: Operation not permitted\n")


@pytest.mark.parametrize("own_root", [False, True])
def test_tmpfs_left_mounted_is_removed_at_exit(tmp_path: Path, own_root: bool) -> None:
    """A tmpfs still mounted (with files) when the guest ends leaves nothing on the host,
    with the private root or with --root."""
    scratch, root = tmp_path / "scratch", tmp_path / "root"
    scratch.mkdir()
    (root / "tmp").mkdir(parents=True)
    options = ["--root", str(root), "--no-system"] if own_root else []
    script = "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && mkdir /tmp/m/d && echo x > /tmp/m/d/f && echo done"
    result = run_sandbox(["run", "--timeout", "60", *options, "/bin/busybox", "sh", "-c", script],
                         env={**os.environ, "TMPDIR": str(scratch)})
    assert (result.stdout, result.returncode) == (b"done\n", 0), result.stderr
    assert os.listdir(scratch) == []
    if own_root:
        assert sorted(os.listdir(root / "tmp")) == ["m"] and os.listdir(root / "tmp" / "m") == []


# -- terminals ----------------------------------------------------------------------------


def on_pty(argv: list[str]) -> tuple[bytes, int]:
    """Run `argv` on a fresh pseudo-terminal (24x80) as its controlling terminal; what it
    wrote there and its status."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                               preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every end of the slave is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return bytes(out), process.wait(timeout=600)


def test_terminal_probes_on_a_pty_as_natively(built: Path) -> None:
    """isatty, tcgetattr (TCGETS: a 60-byte answer smashed glibc's stack), TIOCGWINSZ and
    /dev/tty as the controlling terminal, on a pseudo-terminal."""
    program = str(built / "tty")
    native = on_pty([program])
    sandboxed = on_pty([sys.executable, "-m", "sandbox", "run", "--timeout", "60", "--mount",
                        f"{built}:{built}:ro", program])
    assert sandboxed == native
    assert b"fd 3: isatty 1 tcgetattr 0" in native[0]


def test_no_terminal_as_natively(built: Path) -> None:
    """Without a controlling terminal: no tty on fds 0-2, /dev/tty is ENXIO."""
    program = str(built / "tty")
    native = subprocess.run([program], stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True)
    sandboxed = subprocess.run([sys.executable, "-m", "sandbox", "run", "--timeout", "60", "--mount",
                                f"{built}:{built}:ro", program], stdin=subprocess.DEVNULL, capture_output=True,
                               start_new_session=True, cwd=ROOT)
    same(native, sandboxed)
    assert re.search(rb"/dev/tty: No such device or address", native.stdout)
