"""Page-cache containment (issue 12, review of main): what a guest can make the page cache
hold on the host -- disk through shared-mapping writeback, descriptors through mapped files.

Each attack is a mode of guests/libc/mapflood.c; each test failed on the main it reviews.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from sandbox.mm import pagecache
from tests.conftest import guest, run_sandbox

MIB = 1 << 20
DISK = 16 * MIB
WINDOW = 4 * MIB
ENFILE = os.strerror(errno.ENFILE)
ENOSPC = os.strerror(errno.ENOSPC)


def test_shared_file_writeback_stops_at_the_disk_quota(tmp_path: Path) -> None:
    """Finding 1: a sparse file filled window by window through MAP_SHARED mappings once put
    all of itself on the host disk (256 MiB under --disk 16M). Past the quota, pages that
    would fill holes are lost and msync says ENOSPC; munmap and exit do not fail."""
    (tmp_path / "tmp").mkdir()
    result = run_sandbox(["run", "--root", str(tmp_path), "--memory", "32M", "--disk", "16M",
                          guest("mapflood-glibc"), "window", "/tmp/big", "256", "4096"])
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert f"{ENOSPC}\n" in out and "munmap" not in out, out
    assert "size 268435456" in out
    assert (tmp_path / "tmp" / "big").stat().st_blocks * 512 <= DISK + WINDOW


def peak_disk_use(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The highest `used` the sandbox's disk quota reaches (a one-item list, kept current)."""
    quota, peak = sb.kernel.quota, [0]
    charge = quota.charge

    def counted(nbytes: int) -> None:
        charge(nbytes)
        peak[0] = max(peak[0], quota.used)

    monkeypatch.setattr(quota, "charge", counted)
    return peak


@pytest.mark.parametrize("mode", [["anon", "256", "4096"], ["anon", "64", "65536"], ["window", "memfd", "64", "4096"]])
def test_shared_memory_and_memfd_writeback_is_counted_and_refused(mode: list[str], capfd,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared anonymous memory and memfds are host files too: their writeback counts
    against --disk and is refused past it; shared memory gives its blocks back when the
    last mapping goes (before, 256 MiB of 4 MiB windows used 256 MiB of quota)."""
    with Sandbox(memory=128 * MIB, disk=DISK) as sb:
        peak = peak_disk_use(sb, monkeypatch)
        assert sb.run(guest("mapflood-musl"), ["mapflood", *mode]).status == 0
        out = capfd.readouterr().out
        assert "munmap" not in out and "mmap at" not in out, out
        assert peak[0] <= DISK + WINDOW
        if mode[0] == "anon":
            assert sb.kernel.quota.used == 0, "shared memory that is gone holds no disk"
        if mode[1] == "64":  # one 64 MiB window, or a 64 MiB memfd: more than the quota
            assert f"{ENOSPC}\n" in out, out


def test_mapped_files_are_bounded(tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 2: each mapped file pins a host descriptor; a guest that maps and closes file
    after file once pinned them until the host's EMFILE (exit 70). The cache holds at most
    MAX_CACHED_FILES files (the program counts): mmap, shared memory and execve answer
    ENFILE beyond, and unmapping gives the room back."""
    monkeypatch.setattr(pagecache, "MAX_CACHED_FILES", 64)
    (tmp_path / "tmp").mkdir()
    shutil.copy(guest("mapflood-glibc"), tmp_path / "hello")
    with Sandbox(root=str(tmp_path)) as sb:
        assert sb.run(guest("mapflood-musl"), ["mapflood", "many", "200", "/hello"]).status == 0
        assert len(sb.kernel.page_cache.files) <= 64
    assert capfd.readouterr().out.splitlines() == [
        f"mmap 63: {ENFILE}", "mapped 63", f"shared memory: {ENFILE}", f"execve: {ENFILE}",
        "after munmap: mapped"]


class NoDescriptors:
    """`os` for the page cache, with the calls that give it a descriptor of its own (open of
    its /proc/self/fd link, or dup) failing EMFILE after the first `allowed`."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    def __getattr__(self, name: str):
        return getattr(os, name)

    def _take(self) -> None:
        if self.allowed <= 0:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        self.allowed -= 1

    def dup(self, fd: int) -> int:
        self._take()
        return os.dup(fd)

    def open(self, path, flags: int, *args, **kwargs) -> int:
        self._take()
        return os.open(path, flags, *args, **kwargs)


def test_host_out_of_descriptors_is_enfile(tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the host has no descriptor left for the page cache's dup or for shared memory's
    file, mmap and execve answer ENFILE (they once raised the host's OSError: exit 70)."""
    (tmp_path / "tmp").mkdir()
    shutil.copy(guest("mapflood-glibc"), tmp_path / "hello")
    monkeypatch.setattr(pagecache, "os", NoDescriptors(allowed=1))  # the program's own mapping
    with Sandbox(root=str(tmp_path)) as sb:

        def no_scratch_file() -> int:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

        monkeypatch.setattr(sb.kernel, "scratch_file", no_scratch_file)
        assert sb.run(guest("mapflood-musl"), ["mapflood", "many", "10", "/hello"]).status == 0
    assert capfd.readouterr().out.splitlines() == [
        f"mmap 0: {ENFILE}", "mapped 0", f"shared memory: {ENFILE}", f"execve: {ENFILE}",
        f"after munmap: {ENFILE}"]


def test_host_descriptor_limit_ends_no_run(tmp_path: Path, capfd) -> None:
    """The same with the host's real limit: this process's RLIMIT_NOFILE lowered so the
    guest's files run the host out of descriptors; every call answers an errno."""
    (tmp_path / "tmp").mkdir()
    shutil.copy(guest("mapflood-glibc"), tmp_path / "hello")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with Sandbox(root=str(tmp_path), disk=1 << 30) as sb:
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 100, hard))
        try:
            status = sb.run(guest("mapflood-musl"), ["mapflood", "many", "100000", "/hello"]).status
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    lines = capfd.readouterr().out.splitlines()
    assert status == 0, lines
    mapped = int(next(line for line in lines if line.startswith("mapped ")).split()[1])
    assert 0 < mapped < 100000
    out_of_descriptors = ("No file descriptors available", "Too many open files", ENFILE)  # musl's EMFILE first
    assert lines[0].endswith(out_of_descriptors) and lines[2:4] == [f"shared memory: {ENFILE}", f"execve: {ENFILE}"]
