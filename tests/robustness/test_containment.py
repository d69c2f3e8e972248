"""Containment of host files (issue 12, findings 1, 2, 4, 5, 7 and 10): a hostile guest
(guests/libc/escape.c, busybox) tries to reach, change or fill the host through the file
view. Each test fails on the sandbox before descriptor-based resolution, virtual identity
and the disk quota, and passes after."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import guest, run_native, run_sandbox

BUSYBOX = "/bin/busybox"
SECRET = b"host secret 51c9"
RENAME_EXCHANGE = 2


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A host file outside every view, with an owner and a time the guest must not change."""
    path = tmp_path / "target"
    path.write_bytes(SECRET)
    os.utime(path, (1_577_836_800, 1_577_836_800))
    return path


def host_facts(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid, st.st_mtime_ns, stat.S_IMODE(st.st_mode)


@pytest.mark.parametrize("attack", ["fchown", "memfd"])
@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_descriptor_calls_never_reach_a_host_path(target: Path, attack: str, libc: str) -> None:
    """fchown/futimens act on the descriptor, not on a path the guest can redirect: neither
    a symlink put where the file was nor a memfd named like a host path changes the host."""
    before = host_facts(target)
    result = run_sandbox(["run", guest(f"escape-{libc}"), attack, str(target)])
    assert result.returncode == 0, result.stderr
    assert host_facts(target) == before
    # Inside, the guest's own view agrees with what it set.
    assert b"fchown: 0 ok" in result.stdout and b"fstat uid 4242 mtime 1000000000" in result.stdout


def test_chown_is_recorded_never_done_on_the_host(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("x")
    script = "chown 4242:4343 /m/file && ls -ln /m/file"
    result = run_sandbox(["run", "--uid", "0", "--mount", f"{shared}:/m", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    assert b" 4242 " in result.stdout and b" 4343 " in result.stdout
    st = os.stat(shared / "file")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_a_removed_directory_takes_its_recorded_owner_along() -> None:
    """rmdir of a directory whose owner was recorded forgets it (its link count is 2, not 1):
    a new directory that gets the reused inode number is the guest's own, not 123's."""
    script = ("cd /tmp; for i in 1 2 3 4 5; do mkdir d$i; chown 123:456 d$i; rmdir d$i; mkdir e$i; "
              "stat -c %u:%g e$i; done")
    result = run_sandbox(["run", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"0:0"] * 5


def test_non_root_guest_cannot_give_files_away(tmp_path: Path) -> None:
    script = "echo x > /tmp/f; chown 0 /tmp/f"
    result = run_sandbox(["run", "--uid", "1000", "--gid", "1000", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 1 and b"Operation not permitted" in result.stderr


def test_special_modes_stay_inside(tmp_path: Path) -> None:
    """chmod 4777 / 1777 of a mount point: the guest sees its modes; the host directory gets
    neither setuid nor sticky bits nor write permission for others."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    result = run_sandbox(["run", "--mount", f"{shared}:/m", guest("escape-glibc"), "chmod", "/m"])
    assert b"chmod 4777: 0, guest sees 4777" in result.stdout
    assert b"chmod 1777: 0, guest sees 1777" in result.stdout
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755


def test_created_files_carry_no_setuid_bit_on_the_host(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    script = "umask 0; cp /bin/busybox /m/suid && chmod 6777 /m/suid && mkdir /m/d && chmod 1777 /m/d && ls -l /m"
    result = run_sandbox(["run", "--mount", f"{shared}:/m", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    assert b"-rwsrwsrwx" in result.stdout and b"drwxrwxrwt" in result.stdout
    for name in ("suid", "d"):
        mode = stat.S_IMODE(os.stat(shared / name).st_mode)
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH | stat.S_IWGRP), oct(mode)


def test_mount_at_root_is_refused_and_kept(tmp_path: Path) -> None:
    """`--mount DIR:/` used to delete DIR at exit; it is refused with one line, DIR intact."""
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "data").write_text("precious")
    for spec in (f"{keep}:/", f"{keep}:/:ro", f"{keep}://"):
        result = run_sandbox(["run", "--mount", spec, guest("hello")])
        assert result.returncode != 0 and result.stderr.count(b"\n") == 1, result.stderr
        assert b"--root" in result.stderr
    assert (keep / "data").read_text() == "precious"


def test_given_root_is_never_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    result = run_sandbox(["run", "--root", str(root), BUSYBOX, "touch", "/tmp/made"])
    assert result.returncode == 0 and (root / "tmp" / "made").exists()


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_swapping_a_directory_for_a_symlink_never_leads_out(tmp_path: Path) -> None:
    """A host process flips /d between a real directory and a symlink to a host directory
    holding a secret while the guest reads /d/f and creates /d/new over and over: the guest
    sees the inside file or an error, never the secret, and creates nothing outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"inside\n")
    (root / "link").symlink_to(outside)
    script = "i=0; while [ $i -lt 400 ]; do cat /d/f; echo x > /d/new$i; i=$((i+1)); done 2>/dev/null; true"
    sandbox = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--root", str(root), BUSYBOX, "sh", "-c",
                                script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    flips = 0

    def flip() -> None:
        nonlocal flips
        while sandbox.poll() is None and flips < 5_000_000:
            exchange(root / "d", root / "link")
            flips += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    out, err = sandbox.communicate(timeout=600)
    flipper.join()
    assert sandbox.returncode == 0, err
    assert SECRET not in out and b"inside" in out
    assert flips > 100, "the flipper ran while the guest read"
    assert sorted(p.name for p in outside.iterdir()) == ["f"], "nothing was created outside the view"


def test_disk_quota_bounds_files_and_memfds(tmp_path: Path) -> None:
    result = run_sandbox(["run", "--disk", "256K", guest("escape-glibc"), "disk", "/tmp/big", "1024"])
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.decode().splitlines() if ": " in line)
    assert int(lines["file"].split()[0]) < 256 << 10
    assert int(lines["memfd"].split()[0]) < 256 << 10
    assert result.stdout.count(b"No space left on device") == 2


def test_disk_quota_gives_back_what_is_removed() -> None:
    script = ("i=0; while [ $i -lt 20 ]; do head -c 65536 /dev/zero > /tmp/f || exit 1; rm /tmp/f;"
              " i=$((i+1)); done; echo done")
    result = run_sandbox(["run", "--disk", "256K", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 0 and result.stdout == b"done\n", result.stderr


def test_host_fifo_in_a_mount_does_not_block(tmp_path: Path) -> None:
    """A FIFO in a mount is never opened on the host (that could block the sandbox, or reach a
    process outside it): its opens are served by a pipe of the sandbox's own, so guests talk
    through it, and a reader nobody in the sandbox can feed is a deadlock, not a hang."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.mkfifo(shared / "fifo")
    result = run_sandbox(["run", "--timeout", "60", "--mount", f"{shared}:/m", BUSYBOX, "cat", "/m/fifo"])
    assert result.returncode == 137 and b"deadlock" in result.stderr, result.stderr
    script = "echo through > /m/fifo & cat /m/fifo; wait; /m/fifo"
    result = run_sandbox(["run", "--timeout", "60", "--mount", f"{shared}:/m", BUSYBOX, "sh", "-c", script])
    assert result.stdout == b"through\n" and result.stderr.count(b"Permission denied") == 1, result.stderr


def test_host_facts_are_virtual(tmp_path: Path) -> None:
    """Ids, device and inode numbers and statfs figures are the sandbox's, not the host's."""
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    result = run_sandbox(["run", "--root", str(root), "--uid", "1000", "--gid", "100", "--disk", "64M",
                          guest("escape-musl"), "facts", "/tmp"])
    assert result.returncode == 0, result.stderr
    host = os.stat(root / "tmp")
    out = result.stdout.decode()
    assert f"ino {host.st_ino} " not in out and f"dev {host.st_dev} " not in out
    assert "uid 1000 gid 100" in out and "uid 1000 euid 1000 gid 100" in out
    assert f"statfs type 1021994 blocks {(64 << 20) // 4096} " in out


def test_inode_numbers_agree_between_stat_and_readdir(tmp_path: Path) -> None:
    result = run_sandbox(["run", BUSYBOX, "sh", "-c", "touch /tmp/a; ls -i /tmp; stat -c %i /tmp/a"])
    listed, stated = result.stdout.split()[0], result.stdout.split()[-1]
    assert listed == stated


def test_terminal_foreground_group_is_the_guests(tmp_path: Path) -> None:
    """TIOCGPGRP on a terminal answers the guest's own process group, not the host's."""
    import fcntl
    import pty
    import termios

    controller, terminal = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "run", guest("escape-musl"), "pgrp", "-"],
                            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=take_terminal)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=600)
    os.close(controller)
    assert b"is the guest's own group" in output, (output, proc.stderr.read())


def test_overwriting_a_file_does_not_use_up_the_quota() -> None:
    """O_TRUNC gives back the blocks it frees: `>` in a loop never reaches ENOSPC."""
    script = "i=0; while [ $i -lt 20 ]; do head -c 65536 /dev/zero > /tmp/f || exit 1; i=$((i+1)); done; echo done"
    result = run_sandbox(["run", "--disk", "256K", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 0 and result.stdout == b"done\n", result.stderr


def test_mapped_files_hold_their_blocks_and_writeback_is_charged() -> None:
    """An unlinked file still mapped keeps its disk (the page cache holds it open), and what a
    shared mapping writes back counts: the quota runs out where the host's disk would."""
    result = run_sandbox(["run", "--disk", "1M", guest("escape-glibc"), "mapped", "8"])
    assert result.returncode == 0, result.stderr
    rounds = [int(line.split()[-1]) for line in result.stdout.decode().splitlines() if line.startswith("round")]
    assert len(rounds) < 8 and rounds[-1] < 256 << 10
    assert b"write after: No space left on device" in result.stdout


def test_regions_of_all_processes_are_bounded(monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """Each process may hold vm.max_map_count regions, but all together stay under the
    kernel's total (host memory): past it mmap answers ENOMEM, in whichever process."""
    from sandbox.api import Sandbox
    from sandbox.kernel import kernel

    monkeypatch.setattr(kernel, "MAX_REGIONS_TOTAL", 6000)
    with Sandbox() as sb:
        assert sb.run(guest("escape-musl"), ["escape", "regions", "4"]).status == 0
    counts = [int(line.split()[2]) for line in capfd.readouterr().out.splitlines() if line.startswith("child")]
    assert counts[0] == 4000 and 0 < counts[1] < 4000 and counts[2:] == [0, 0]


def test_a_mount_that_cannot_be_opened_leaves_no_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from sandbox.api import Sandbox
    from sandbox.errors import SandboxError
    from sandbox.kernel.vfs_nodes import Mount

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SandboxError, match="cannot be opened"):
        Sandbox(mounts=[Mount("/x", str(tmp_path / "missing" / "dir"), False)])
    assert list(tmp_path.iterdir()) == []


def test_directory_listings_held_open_are_bounded(capfd) -> None:
    """Each open directory holds its listing (getdents positions stay valid while it
    changes); together they count against a budget, ENOMEM beyond, as host memory."""
    from sandbox.api import Sandbox

    with Sandbox(dir_listing_bytes=4 << 20) as sb:
        assert sb.run(guest("escape-musl"), ["escape", "listings", "2000", "50"]).status == 0
        assert sb.kernel.budgets.dir_listings.peak <= 4 << 20
    out = capfd.readouterr().out
    assert "getdents: Out of memory" in out and "listed 50" not in out  # musl says ENOMEM so


def test_directory_growth_is_charged(tmp_path: Path) -> None:
    """A directory keeps the blocks its entries grew it by after they are removed; making new
    directories, filling and emptying them, must run out of quota, not of host disk."""
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    long = "x" * 200
    script = (f"i=0; while [ $i -lt 60 ]; do mkdir /tmp/d$i || exit 3; j=0; while [ $j -lt 300 ]; do"
              f" : > /tmp/d$i/{long}$j || exit 4; j=$((j+1)); done; rm /tmp/d$i/*; i=$((i+1)); done; echo finished")
    result = run_sandbox(["run", "--root", str(root), "--disk", "2M", BUSYBOX, "sh", "-c", script])
    assert result.returncode != 0 and b"No space left on device" in result.stderr, result
    used = sum(p.lstat().st_blocks * 512 for p in root.rglob("*"))
    assert used <= (2 << 20) + (64 << 10)


def test_permissions_are_checked_against_the_guests_identity(tmp_path: Path) -> None:
    """The sandbox may run as root; a --uid 1000 guest still cannot read another user's
    0600 file in a mount it was given (host powers never stand in for the guest's)."""
    if os.geteuid() != 0:
        pytest.skip("making a file another user's needs root (CI runs as root)")
    shared = tmp_path / "shared"
    shared.mkdir()
    private = shared / "private"
    private.write_bytes(SECRET)
    private.chmod(0o600)
    os.chown(private, 7, 7)
    script = "cat /m/private; echo x >> /m/private; [ -r /m/private ] || echo not-readable"
    result = run_sandbox(["run", "--uid", "1000", "--gid", "1000", "--mount", f"{shared}:/m", BUSYBOX, "sh", "-c",
                          script])
    assert SECRET not in result.stdout and b"not-readable" in result.stdout
    assert result.stderr.count(b"Permission denied") == 2 and private.read_bytes() == SECRET
    result = run_sandbox(["run", "--uid", "0", "--mount", f"{shared}:/m", BUSYBOX, "cat", "/m/private"])
    assert result.stdout == SECRET


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_o_path_handles_and_o_append_mappings_as_natively(tmp_path: Path, libc: str) -> None:
    """An O_PATH descriptor can be neither mapped, read nor written (EBADF, once a host
    exception); a shared mapping made through an O_APPEND descriptor writes back in place
    (the page cache's own description: a dup would append)."""
    native = run_native([guest(f"escape-{libc}"), "handles", str(tmp_path / "native")])
    sandboxed = run_sandbox(["run", guest(f"escape-{libc}"), "handles", "/tmp/handles"])
    assert sandboxed.returncode == native.returncode == 0, sandboxed.stderr
    assert sandboxed.stdout == native.stdout


def test_memfd_blocks_come_back_when_it_closes() -> None:
    result = run_sandbox(["run", "--disk", "512K", guest("escape-musl"), "memfds", "20"])
    assert result.stdout == b"memfds filled: 20 of 20\n", result.stderr


def test_mknod_makes_files_but_no_devices(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    script = "mknod /m/null c 1 3; mknod /m/disk b 8 0; mkfifo /m/fifo; ls /m"
    result = run_sandbox(["run", "--mount", f"{shared}:/m", BUSYBOX, "sh", "-c", script])
    assert result.stderr.count(b"Operation not permitted") == 2, result.stderr  # devices: never
    assert [p.name for p in shared.iterdir()] == ["fifo"] and stat.S_ISFIFO((shared / "fifo").lstat().st_mode)
