"""Host resources a hostile guest can make the sandbox hold are bounded (issue 12, finding 6).

Each attack is guests/libc/hostres.c. Host memory is measured as the peak resident size of
the CLI process (`ru_maxrss` of a wrapper's only child, so no other test's child counts);
the bounds are generous, several times what a fixed sandbox takes, and far below what the
attacks made it hold before (4.1 GB, 1.9 GB, 2.8 GB, 0.4-0.7 GB).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from sandbox.kernel.options import Options
from tests.conftest import guest, run_sandbox

MB = 1 << 20
#: Peak host memory a small run may take (a fixed sandbox: about 30-150 MB here).
BOUND = 400 * MB

MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, timeout=600)
print(json.dumps({"status": done.returncode, "stdout": done.stdout.decode(errors="replace"),
                  "stderr": done.stderr.decode(errors="replace"),
                  "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def measured(args: list[str]) -> dict:
    """`sandbox ARGS...` in a fresh wrapper: status, output and the CLI's peak RSS in bytes."""
    wrapper = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "sandbox", *args],
                             capture_output=True, timeout=900, check=True)
    return json.loads(wrapper.stdout)


@pytest.fixture(scope="module")
def sparse_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid static program grown to a 4 GiB sparse file (the headers are unchanged)."""
    directory = tmp_path_factory.mktemp("sparse")
    path = directory / "big"
    shutil.copy(guest("hello"), path)
    with open(path, "r+b") as f:
        f.truncate(4 << 30)
    return path


def test_first_spawn_of_a_sparse_4gib_file_reads_only_headers(sparse_program: Path) -> None:
    run = measured(["run", str(sparse_program)])
    assert run["status"] == 0 and "Hello" in run["stdout"]
    assert run["maxrss"] < BOUND


def test_execve_of_a_sparse_4gib_file_maps_it_lazily(sparse_program: Path) -> None:
    run = measured(["run", "--mount", f"{sparse_program.parent}:/x", guest("hostres-musl"), "exec", "/x/big"])
    assert run["status"] == 0 and "Hello" in run["stdout"], run
    assert run["maxrss"] < BOUND


def test_program_headers_past_one_page_are_refused(tmp_path: Path) -> None:
    """Linux's elf_read_phdrs reads at most ELF_MIN_ALIGN bytes of program headers."""
    path = tmp_path / "many-phdrs"
    data = bytearray(Path(guest("hello")).read_bytes())
    data[56:58] = struct.pack("<H", 0xFFFF)  # e_phnum
    path.write_bytes(data)
    with open(path, "r+b") as f:
        f.truncate(1 << 30)
    path.chmod(0o755)
    run = measured(["run", str(path)])
    assert run["status"] == 126 and "program headers are more than one page holds" in run["stderr"]
    assert run["maxrss"] < BOUND


def test_proc_environ_opens_share_the_process_memory() -> None:
    """1000 opens of /proc/self/environ after a 2 MB environment hold no copy of it."""
    run = measured(["run", guest("hostres-musl"), "environ", "1000", "1900000"])
    assert run["status"] == 0, run
    assert "environment 2000020 bytes" in run["stdout"] and "opened 1000 read 1000 error none" in run["stdout"]
    assert run["maxrss"] < BOUND


def test_proc_maps_snapshots_are_bounded_with_enomem() -> None:
    """Each open of a 30,000-region process's maps is a ~3 MB snapshot: past the sandbox's
    /proc budget open answers ENOMEM instead of holding gigabytes."""
    run = measured(["run", guest("hostres-musl"), "maps", "1000", "30000"])
    assert run["status"] == 0, run
    opened = int(run["stdout"].split()[1])
    assert 1 <= opened < 1000 and "error Out of memory" in run["stdout"]
    assert run["maxrss"] < BOUND


def test_pipe_buffers_are_bounded_sandbox_wide() -> None:
    """10,000 pipes grown to 1 MiB and filled: 64 KiB each up to pipe-user-pages-soft (and
    F_SETPIPE_SZ EPERM beyond it), then 2-page pipes, then ENFILE at the hard bound."""
    run = measured(["run", "--max-open-files", "30000", guest("hostres-musl"), "pipes", "10000"])
    assert run["status"] == 0, run
    words = run["stdout"].split()
    buffered = int(words[words.index("buffered") + 1])
    assert buffered <= Options.pipe_user_pages_hard * 4096
    assert "pipe-error Too many open files in system" in run["stdout"]
    assert "grow-error Operation not permitted" in run["stdout"]
    assert run["maxrss"] < BOUND


@pytest.mark.parametrize("variant", ["glibc", "musl", "pie"])
def test_pipe_size_fcntl_answers_as_linux(variant: str) -> None:
    run = measured(["run", guest(f"hostres-{variant}"), "pipesize"])
    assert run["stdout"].splitlines() == [
        "default 65536", "set 100000 131072", "get 131072", "set 0 4096", "set 2M Operation not permitted",
        "set 1M 1048576", "write 8192", "shrink 4096 Device or resource busy" if variant != "musl"
        else "shrink 4096 Resource busy", "stdout Bad file descriptor"]


def test_pipe_pages_are_counted_and_return_when_pipes_close(capfd: pytest.CaptureFixture) -> None:
    """With soft 64 and hard 96 pages: four 16-page pipes, then sixteen 2-page ones, then
    ENFILE; every page is back in the budget once the guest has exited."""
    with Sandbox(32 * MB, pipe_user_pages_soft=64, pipe_user_pages_hard=96) as sb:
        result = sb.run(guest("hostres-musl"), ["hostres", "pipes", "100"])
        budget = sb.kernel.budgets.pipe_pages
        assert result.status == 0 and budget.peak == 96 and budget.used == 0
    out = capfd.readouterr().out
    assert f"pipes 20 grown 0 buffered {4 * 65536 + 16 * 8192} pipe-error Too many open files in system" in out


def test_fork_bomb_stops_at_the_default_process_cap() -> None:
    """Children that exit and are never reaped still count (zombies, as RLIMIT_NPROC)."""
    run = measured(["run", guest("hostres-musl"), "forkbomb", "2000"])
    assert run["status"] == 0, run
    limit = Options.max_processes
    assert limit is not None and limit <= 1024
    assert f"forked {limit - 1} error Resource temporarily unavailable" in run["stdout"]
    assert "after reaping forked" in run["stdout"]


def test_getrlimit_reports_the_process_cap() -> None:
    """RLIMIT_NPROC says what fork will allow: --max-processes, lowered but never raised."""
    result = run_sandbox(["run", "--max-processes", "9", "/bin/busybox", "sh", "-c",
                          "ulimit -u; ulimit -u 5; ulimit -u; ulimit -u 50"])
    assert result.stdout == b"9\n5\n" and result.returncode == 1
