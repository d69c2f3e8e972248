"""Memory-manager containment (issue 12): a hostile guest attacks the page tables, the
protection a descriptor allows, and the host's memory through guest-chosen sizes.

Each attack is a mode of guests/libc/mmcontain.c. Where Linux can run it, the sandbox must
print what Linux prints; everywhere, the run must end cleanly (never exit 70, "internal
error", which is also what the invariant checker's findings end in).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import guest, run_native, run_sandbox

VARIANTS = ("glibc", "musl", "pie")


def sandboxed(mode: str, variant: str = "glibc", *options: str) -> subprocess.CompletedProcess:
    """`sandbox run mmcontain-VARIANT MODE`, checked to end as the guest chose."""
    result = run_sandbox(["run", *options, guest(f"mmcontain-{variant}"), mode])
    assert result.returncode == 0, result.stderr.decode()
    return result


def native(mode: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The same mode run directly on the host, in a scratch directory."""
    result = run_native([guest("mmcontain-glibc"), mode], cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.mark.parametrize("variant", VARIANTS)
def test_hugetlb_file_mapping_is_einval_and_forges_no_page_table(variant: str, tmp_path: Path) -> None:
    """Finding 3: MAP_HUGETLB on a file once put a page-cache frame in a PD slot without PS;
    the file's bytes became a page table and the guest read the GDT (then all of RAM)."""
    out = sandboxed("forge", variant).stdout.decode()
    assert "kernel memory is readable" not in out
    assert out.splitlines() == [
        "shared file mapping with MAP_HUGETLB: Invalid argument",
        "private file mapping with MAP_HUGETLB: Invalid argument",
    ]
    assert out == native("forge", tmp_path).stdout.decode()


def test_read_only_descriptor_never_gives_a_writable_shared_mapping(tmp_path: Path) -> None:
    """Finding 9: mprotect(PROT_WRITE) of a MAP_SHARED mapping of an O_RDONLY descriptor is
    EACCES (the region remembers VM_MAYWRITE), in every piece of the region."""
    out = sandboxed("maxprot").stdout.decode()
    assert "mprotect it PROT_READ|PROT_WRITE: Permission denied" in out
    assert "mprotect a split piece writable: Permission denied" in out
    assert out == native("maxprot", tmp_path).stdout.decode()


def peak_rss_kib(args: list[str]) -> tuple[int, bytes]:
    """The CLI's peak resident set (KiB, from wait4's rusage of that one child) and output."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox", *args], stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0
        out.seek(0)
        return usage.ru_maxrss, out.read()


def test_mincore_over_a_terabyte_holds_one_chunk(tmp_path: Path) -> None:
    """Finding 6: mincore over 1 TiB of PROT_NONE once built a 256 MiB host list (564 MB,
    22 s). The vector is now filled chunk by chunk as Linux does, so a one-page vector ends
    the call with EFAULT after one chunk, and the host's peak memory stays that of a small
    run; msync, madvise, mprotect and munmap over the same terabyte walk regions only."""
    baseline, _ = peak_rss_kib(["run", "--memory", "64M", guest("mmcontain-glibc"), "maxprot"])
    peak, out = peak_rss_kib(["run", "--memory", "64M", guest("mmcontain-glibc"), "mincore"])
    assert out.decode() == native("mincore", tmp_path).stdout.decode()
    assert peak < baseline + 64 * 1024, f"peak {peak} KiB against {baseline} KiB for a small run"


def test_mremap_of_huge_pages_answers_as_linux() -> None:
    """Finding 8: mremap of a MAP_HUGETLB region raised InvariantError (exit 70). Linux's
    hugetlb rules: aligned addresses, no growth; moves and shrinks keep the data."""
    out = sandboxed("hugeremap").stdout.decode()
    assert out.splitlines() == [
        "MAP_HUGETLB mapping: mapped",
        "mremap from a 4 KiB offset inside: Invalid argument",
        "mremap to grow it: Invalid argument",
        "mremap by 4 KiB sizes: mapped",
        "mremap to a 4 KiB-aligned address: Invalid argument",
        "mremap the upper half to a 2 MiB-aligned address: mapped, data cd",
        "mremap to shrink the lower half: mapped, data a",
        "munmap: ok",
    ]
