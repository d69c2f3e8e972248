"""/proc and /sys as programs read them, natively and in the sandbox.

probe.c prints facts derived from /proc (sizes as differences, ids checked against the
system calls) that are the same on both sides; real programs (busybox ps, top, free, nproc,
ls) are run on the sandbox's own processes; the attacks (a process ending mid-read, pids
that do not exist, garbage written to oom_score_adj, huge reads, many opens) are kept.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from sandbox.kernel import procfs_sys
from tests.conftest import ROOT, build_c, require_tool, run_native, run_sandbox

HERE = ROOT / "tests" / "procfs"
BUSYBOX = "/bin/busybox"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("procfs")
    for name in ("probe", "cpuid"):
        build_c(HERE / f"{name}.c", out)
    return out


def boxed(built: Path, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", *options, "--mount", f"{built}:{built}:ro", *args])


@pytest.mark.parametrize("mode", ["status", "rss", "cow", "fds", "oom", "missing", "ends", "limits", "reads"])
def test_probe_as_natively(built: Path, mode: str) -> None:
    native = run_native([str(built / "probe"), mode])
    sandboxed = boxed(built, str(built / "probe"), mode)
    assert native.returncode == 0, native.stderr
    assert (sandboxed.stdout.decode(), sandboxed.stderr, sandboxed.returncode) == (
        native.stdout.decode(), native.stderr, native.returncode)


def test_copy_on_write_halves_pss(built: Path) -> None:
    """The numbers the differential test compares, spelled out: 100 touched pages are 400 kB
    of Rss; after fork each process's Pss is half; the child's writes make half private."""
    lines = boxed(built, str(built / "probe"), "cow").stdout.decode().splitlines()
    assert lines[0] == "alone: Rss 400 Pss 400 Shared_Dirty 0 Private_Dirty 400 Anonymous 400"
    assert lines[1] == "child after fork: Rss 400 Pss 200 Shared_Dirty 400 Private_Dirty 0 Anonymous 400"
    assert lines[2] == "child after writing half: Rss 400 Pss 300 Shared_Dirty 200 Private_Dirty 200 Anonymous 400"


def test_cpuinfo_flags_are_what_cpuid_says(built: Path) -> None:
    """The CPUID values procfs_sys describes are the emulated CPU's, and /proc/cpuinfo's flags
    are the names of their bits."""
    leaves = boxed(built, str(built / "cpuid")).stdout.decode()
    regs = {name: [int(v, 16) for v in rest.split()] for name, rest in re.findall(r"^([0-9a-f]{8}|d\.1): (.*)$", leaves,
                                                                                    re.M)}
    assert tuple(regs["00000001"]) == procfs_sys.CPUID_1
    assert (regs["00000007"][1], regs["00000007"][2], regs["00000007"][3]) == (
        procfs_sys.CPUID_7_EBX, procfs_sys.CPUID_7_ECX, procfs_sys.CPUID_7_EDX)
    assert (regs["80000001"][2], regs["80000001"][3]) == (procfs_sys.CPUID_80000001_ECX,
                                                          procfs_sys.CPUID_80000001_EDX)
    assert regs["d.1"][0] == procfs_sys.CPUID_D_1_EAX and regs["00000000"][0] == procfs_sys.CPUID_LEVEL
    assert f"brand: {procfs_sys.MODEL_NAME}" in leaves
    cpuinfo = run_sandbox(["run", "--cpus", "3", BUSYBOX, "cat", "/proc/cpuinfo"]).stdout.decode()
    assert cpuinfo.count("processor\t:") == 3
    flags = re.search(r"^flags\t\t: (.*)$", cpuinfo, re.M).group(1).split()
    assert flags == procfs_sys.cpu_flags()
    assert {"fpu", "sse2", "sse4_2", "lm", "nx", "syscall"} <= set(flags) and "avx" not in flags


def test_ps_lists_a_pipeline() -> None:
    script = f"{BUSYBOX} sleep 1 | {BUSYBOX} cat & {BUSYBOX} ps; wait"
    result = run_sandbox(["run", "--timeout", "60", BUSYBOX, "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    commands = [line.split(None, 2)[2] for line in result.stdout.decode().splitlines()[1:]]
    assert f"{BUSYBOX} sleep 1" in commands and f"{BUSYBOX} cat" in commands and f"{BUSYBOX} ps" in commands


def test_top_runs_once_and_exits() -> None:
    result = run_sandbox(["run", "--timeout", "60", BUSYBOX, "top", "-bn1"])
    assert result.returncode == 0, result.stderr
    assert b"Load average:" in result.stdout and b"top -bn1" in result.stdout


@pytest.mark.parametrize("cpus", [1, 3])
def test_cpu_counts_are_cpus(cpus: int) -> None:
    script = ("nproc; cat /sys/devices/system/cpu/online /sys/devices/system/cpu/possible; "
              "ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l; getconf _NPROCESSORS_ONLN; getconf _NPROCESSORS_CONF")
    result = run_sandbox(["run", "--timeout", "60", "--cpus", str(cpus), "/bin/sh", "-c", script])
    span = "0" if cpus == 1 else f"0-{cpus - 1}"
    assert result.stdout.decode().split() == [str(cpus), span, span, str(cpus), str(cpus), str(cpus)], result.stderr


def test_free_shows_the_sandbox_memory() -> None:
    result = run_sandbox(["run", "--timeout", "60", "--memory", "64M", BUSYBOX, "free"])
    mem = result.stdout.decode().splitlines()[1].split()
    assert mem[0] == "Mem:" and mem[1] == str(64 * 1024)


def test_meminfo_counts_the_frames() -> None:
    """MemTotal is --memory; what a process touches leaves MemFree."""
    result = run_sandbox(["run", "--timeout", "60", "--memory", "96M", BUSYBOX, "cat", "/proc/meminfo"])
    info = dict(re.findall(r"^([\w()]+):\s+(\d+)", result.stdout.decode(), re.M))
    assert int(info["MemTotal"]) == 96 * 1024
    assert 0 < int(info["MemFree"]) < int(info["MemTotal"])
    assert int(info["AnonPages"]) > 0 and int(info["Cached"]) > 0 and int(info["PageTables"]) > 0


def test_fd_listing_shows_a_pipe() -> None:
    result = run_sandbox(["run", "--timeout", "60", BUSYBOX, "sh", "-c", f"{BUSYBOX} ls -l /proc/self/fd/ | cat"])
    assert re.search(rb" 1 -> pipe:\[\d+\]$", result.stdout, re.M), result.stdout


def test_dev_stdin_reads_a_pipe() -> None:
    result = run_sandbox(["run", "--timeout", "60", BUSYBOX, "sh", "-c", f"echo piped | {BUSYBOX} cat /dev/stdin"])
    assert result.stdout == b"piped\n"
    script = "for link in /dev/fd /dev/stdin /dev/stderr; do readlink $link; done"
    listing = run_sandbox(["run", "--timeout", "60", "/bin/sh", "-c", script])
    assert listing.stdout == b"/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/2\n"


def test_limits_follow_ulimit_as_natively() -> None:
    """`cat /proc/self/limits` after dash's ulimit: the rows set, as natively."""
    dash = require_tool("dash")
    script = "ulimit -t 100; ulimit -f 2048; cat /proc/self/limits"
    native = run_native([dash, "-c", script]).stdout.decode().splitlines()
    sandboxed = run_sandbox(["run", "--timeout", "60", dash, "-c", script]).stdout.decode().splitlines()
    pick = [0, 1, 2]  # the header, Max cpu time, Max file size
    assert [sandboxed[i] for i in pick] == [native[i] for i in pick]
    assert len(sandboxed) == len(native) == 17


def test_proc_sys_values() -> None:
    names = ("kernel/pid_max kernel/ostype kernel/osrelease kernel/hostname kernel/ngroups_max vm/max_map_count "
             "vm/mmap_min_addr vm/overcommit_memory fs/pipe-max-size").split()
    result = run_sandbox(["run", "--timeout", "60", "--max-map-count", "1000", BUSYBOX, "cat",
                          *[f"/proc/sys/{n}" for n in names]])
    assert result.stdout.decode().split() == ["4194304", "Linux", "6.1.0-sandbox", "sandbox", "65536", "1000",
                                              "65536", "0", "1048576"]


def test_boot_id_is_stable_and_uuid_is_not() -> None:
    paths = ["/proc/sys/kernel/random/boot_id"] * 2 + ["/proc/sys/kernel/random/uuid"] * 2
    lines = run_sandbox(["run", "--timeout", "60", BUSYBOX, "cat", *paths]).stdout.decode().split()
    assert lines[0] == lines[1] and lines[2] != lines[3]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in lines)


def test_mounts_come_from_the_view(tmp_path: Path) -> None:
    result = run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:/data:ro", BUSYBOX, "sh", "-c",
                          "cat /proc/mounts; cat /proc/self/mountinfo"])
    text = result.stdout.decode()
    assert "sandbox /data tmpfs ro,relatime 0 0" in text and "proc /proc proc rw,relatime 0 0" in text
    assert re.search(r"^\d+ \d+ 0:\d+ / /data ro,relatime - tmpfs sandbox ro$", text, re.M)
    assert str(tmp_path) not in text  # no host path


def test_every_process_has_a_directory() -> None:
    """Another process's files are readable; its task/ has its threads; /proc lists every pid."""
    # (the child may not have exec'd yet when the shell goes on, natively too: wait until it has)
    script = (f"{BUSYBOX} sleep 30 & p=$!; until [ $(cat /proc/$p/comm) = busybox ]; do sleep 0.01; done; "
              "cat /proc/$p/comm; cat /proc/$p/cgroup; ls /proc/$p/task; "
              "readlink /proc/$p/cwd /proc/$p/exe; ls /proc | grep -c '^[0-9]'; kill $p; wait")
    result = run_sandbox(["run", "--timeout", "60", "/bin/sh", "-c", script])
    lines = result.stdout.decode().split()
    assert lines[:2] == ["busybox", "0::/"] and lines[3:5] == ["/", os.path.realpath(BUSYBOX)], result.stdout
    assert int(lines[5]) >= 2


def test_writing_a_read_only_file_is_refused() -> None:
    script = "echo 1 > /proc/meminfo; echo 1 > /proc/sys/kernel/pid_max; echo 1 > /sys/devices/system/cpu/online"
    result = run_sandbox(["run", "--timeout", "60", "/bin/sh", "-c", script])
    assert result.stderr.count(b"Permission denied") == 3
