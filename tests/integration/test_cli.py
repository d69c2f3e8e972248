"""The command line as a user meets it: bad input, statistics, traces, maps, limits."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.conftest import guest, run_sandbox


def one_line_error(result, code: int, needle: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("sandbox: ") and needle in err, err
    assert "Traceback" not in err


def patched(tmp_path: Path, name: str, offset: int, fmt: str, value: int) -> str:
    data = bytearray(Path(guest("hello")).read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return str(path)


def test_missing_file(tmp_path: Path) -> None:
    one_line_error(run_sandbox(["run", str(tmp_path / "nope")]), 127, "no such file")


def test_directory(tmp_path: Path) -> None:
    one_line_error(run_sandbox(["run", str(tmp_path)]), 126, "is a directory")


def test_a_program_only_the_view_has_runs_as_execve_finds_it(tmp_path: Path) -> None:
    """PROG at an absolute path the host lacks is looked up in the guest's view (a --mount's
    guest path), ELF or #! script, and /proc/self/exe names it there."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (app / "busybox").chmod(0o755)
    (app / "hello.sh").write_text('#!/app/busybox sh\necho "$0 $*"; readlink /proc/$$/exe\n')
    (app / "hello.sh").chmod(0o755)
    mount = ["--mount", f"{app}:/app:ro"]
    result = run_sandbox(["run", *mount, "/app/busybox", "sh", "-c", "echo hi; readlink /proc/self/exe"])
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hi\n/app/busybox\n", b"")
    result = run_sandbox(["run", *mount, "/app/hello.sh", "a", "b"])
    assert (result.returncode, result.stdout, result.stderr) == (0, b"/app/hello.sh a b\n/app/busybox\n", b"")
    one_line_error(run_sandbox(["run", *mount, "/app/nope"]), 127,
                   "/app/nope: no such file on the host or in the guest's view")
    one_line_error(run_sandbox(["run", *mount, "/app"]), 126, "/app: Permission denied")


def test_a_path_the_host_lacks_reaches_only_what_the_view_shows(tmp_path: Path) -> None:
    """The attack: a host program outside every mount, named through `..` past a guest-only
    directory or through a symlink in a mount, is not found (the view resolves both)."""
    app, outside = tmp_path / "app", tmp_path / "outside"
    app.mkdir()
    outside.mkdir()
    (outside / "hello").write_bytes(Path(guest("hello")).read_bytes())
    (outside / "hello").chmod(0o755)
    (app / "link").symlink_to(outside / "hello")
    mount = ["--mount", f"{app}:/app:ro"]
    for path in (f"/app/..{outside}/hello", "/app/link"):
        one_line_error(run_sandbox(["run", *mount, path]), 127, "no such file on the host or in the guest's view")


def test_not_an_elf(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just text\n")
    one_line_error(run_sandbox(["run", str(text)]), 126, "not an ELF file")


def test_a_script_that_is_not_executable(tmp_path: Path) -> None:
    """A #! script runs as execve runs it: without an execute bit, EACCES (126)."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    one_line_error(run_sandbox(["run", str(script)]), 126, "Permission denied")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    one_line_error(run_sandbox(["run", str(tmp_path / "empty")]), 126, "not an ELF file")


@pytest.mark.parametrize(("offset", "fmt", "value", "needle"), [
    (4, "B", 1, "a 32-bit x86-64 x32-ABI program"),  # 32-bit class
    (5, "B", 2, "little-endian"),         # big-endian data
    (18, "<H", 183, "a 64-bit ARM (AArch64) program: only x86-64"),  # e_machine: wrong architecture
    (16, "<H", 1, "ET_REL"),              # relocatable object
    (24, "<Q", 0x40_0000, "entry point"),  # entry in a non-executable segment
    (54, "<H", 40, "e_phentsize"),        # wrong program header size
    (32, "<Q", 1 << 40, "past end of file"),  # e_phoff beyond the file
])
def test_malformed_headers(tmp_path: Path, offset: int, fmt: str, value: int, needle: str) -> None:
    one_line_error(run_sandbox(["run", patched(tmp_path, "bad", offset, fmt, value)]), 126, needle)


def test_segment_past_end_of_file(tmp_path: Path) -> None:
    # Second program header (PT_LOAD of the headers page): p_filesz at +32 within the phdr.
    one_line_error(run_sandbox(["run", patched(tmp_path, "bad", 64 + 56 + 32, "<Q", 1 << 30)]), 126,
                   "past end of file")


def test_truncated(tmp_path: Path) -> None:
    data = Path(guest("hello")).read_bytes()[:80]
    (tmp_path / "short").write_bytes(data)
    result = run_sandbox(["run", str(tmp_path / "short")])
    assert result.returncode == 126 and "Traceback" not in result.stderr.decode()


def test_missing_interpreter_is_named() -> None:
    """Without the system trees, a dynamic program's interpreter is not in the view: 127,
    as a shell reports a missing file, naming the path looked up and where."""
    one_line_error(run_sandbox(["run", "--no-system", "/bin/true"]), 127,
                   "interpreter /lib64/ld-linux-x86-64.so.2: not found in the guest's file view")


def test_bad_memory_size() -> None:
    result = run_sandbox(["run", "--memory", "12Q", guest("hello")])
    assert result.returncode == 2 and b"not a size" in result.stderr


def test_guest_options_are_not_ours() -> None:
    result = run_sandbox(["run", guest("args"), "--memory", "-x"])
    assert b"argv[1] --memory\nargv[2] -x\n" in result.stdout


def test_out_of_memory_kills_with_a_message() -> None:
    result = run_sandbox(["run", "--memory", "8M", guest("pagetouch"), "4000"])
    err = result.stderr.decode()
    assert result.returncode == 128 + 9 and "out of memory" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_stats_json_counts_one_fault_per_page(tmp_path: Path) -> None:
    totals = []
    for n in (1000, 1100):
        out = tmp_path / f"stats{n}.json"
        result = run_sandbox(["run", "--stats-json", str(out), guest("pagetouch"), str(n)])
        assert result.returncode == 0
        stats = json.loads(out.read_text())
        totals.append(stats["faults"]["demand-zero"])
        assert stats["syscalls"]["write"] >= 1 and stats["frames"]["peak"] >= n
    assert totals[1] - totals[0] == 100


def test_stats_block_on_stderr() -> None:
    result = run_sandbox(["run", "--stats", guest("hello")])
    err = result.stderr.decode()
    assert result.stdout.startswith(b"Hello") and "page faults" in err and "page-table pages" in err


def test_trace_syscalls_names_results_and_enosys() -> None:
    err = run_sandbox(["run", "--trace-syscalls", guest("sysinfo")]).stderr.decode()
    assert 'uname({sysname="Linux", nodename="sandbox", ...}) = 0' in err and "[pid" not in err  # (as strace -f)
    assert "write(99, " in err and "= -1 EBADF (Bad file descriptor)" in err
    assert "syscall_1000(" in err and "= -1 ENOSYS (Function not implemented) [not implemented]" in err
    assert "exit_group(0)                           = ?\n+++ exited with 0 +++\n" in err


def test_trace_faults_one_line_per_fault(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = run_sandbox(["run", "--trace-faults", "--stats-json", str(out), guest("hello")])
    lines = [line for line in result.stderr.decode().splitlines() if " fault " in line]
    assert len(lines) == json.loads(out.read_text())["faults_total"]
    assert any("fault file exec at 0x401000" in line and "rip 0x401000" in line for line in lines)
    assert any("by the kernel" in line for line in lines), "stack set-up faults come from the kernel"


def test_maps_lists_regions_like_proc() -> None:
    result = run_sandbox(["maps", guest("sections")])
    lines = result.stdout.decode().splitlines()  # what `maps` exists to print is on stdout
    assert lines[0].startswith("00400000-00401000 r--p 00000000 00:00 0 ")
    assert lines[0].endswith("/guests/build/sections")
    assert any(line.startswith("00401000-00402000 r-xp 00001000") for line in lines)
    assert any(line.endswith("[stack]") and " rw-p " in line for line in lines)


def test_killed_guest_message_names_signal_and_instruction() -> None:
    err = run_sandbox(["run", guest("segv"), "rodata-write"]).stderr.decode()
    assert "killed by SIGSEGV (SEGV_ACCERR): write at 0x" in err
    assert "r-- data" in err and "rip 0x" in err and "mov byte ptr" in err


def test_fault_around_option_maps_neighbours(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = run_sandbox(["run", "--fault-around", "15", "--stats-json", str(out), guest("pagetouch"), "1600"])
    stats = json.loads(out.read_text())
    assert result.returncode == 0
    assert stats["faults"]["mapped-around"] >= 1450 and stats["faults_total"] < 250


@pytest.mark.parametrize("command", ["run", "maps", "pagetable"])
def test_plain_run_defaults_are_what_click_parses(command: str) -> None:
    """`sandbox run PROG` skips click; it must pass exactly what click would have."""
    from sandbox.cli import RUN_DEFAULTS
    from sandbox.commands import cli

    params = dict(cli.commands[command].make_context(command, ["prog", "--stats", "x"]).params)
    assert (params.pop("prog"), params.pop("args")) == ("prog", ("--stats", "x"))
    for run_only in ("maps", "snapshot_at", "replay", "strace_out", "strace_expression", "string_limit",
                     "follow"):  # `run`'s own (strace's spellings too), never in a plain run
        params.pop(run_only, None)
    assert params == RUN_DEFAULTS


@pytest.mark.parametrize(("argv", "plain"), [
    (["run", "prog"], True), (["run", "prog", "--stats"], True), (["run", "--stats", "prog"], False),
    (["run", "--", "prog"], False), (["run"], False), (["maps", "prog"], False), (["--help"], False),
])
def test_which_command_lines_skip_click(argv: list[str], plain: bool) -> None:
    from sandbox.cli import is_plain_run

    assert is_plain_run(argv) is plain


def test_plain_run_imports_neither_click_nor_unicorns_python_module() -> None:
    """What start-up leaves out: click (no options to parse), Unicorn's Python module (the
    engine binds libunicorn itself), capstone/keystone (only tracing and tests need them), and
    dataclasses, whose code generation cost ~12 ms per start (fault policies still use them:
    sandbox.mm.policy is imported only when a policy is)."""
    result = run_sandbox(["run", guest("hello")], python_flags=("-X", "importtime"))
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    assert "sandbox.engine" in imported and "sandbox.api" in imported
    assert not imported & {"click", "unicorn", "capstone", "keystone", "elftools", "dataclasses", "sandbox.mm.policy"}


def test_timeout_ends_a_sleeping_guest() -> None:
    """A guest asleep in nanosleep waits in the scheduler, not in the host: --timeout still
    ends the run (a day-long sleep would otherwise hold the sandbox for a day)."""
    result = run_sandbox(["run", "--timeout", "0.5", "/bin/busybox", "sleep", "86400"])
    assert result.returncode == 137
    assert result.stderr.decode().endswith("killed: time limit of 0.5 s reached\n")

