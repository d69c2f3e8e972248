"""Issue 16, items 7 and 9, and "Streams, errors, exit codes": a user's mistake is one line
on stderr and exit status 2, found before the guest runs (so the guest never starts: the
writer's "wrote" line is absent); architectures are named in refusals; the help is whole.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sandbox.commands import MAX_MEMORY
from tests.conftest import run_sandbox


def usage_error(args: list[str], *needles: str) -> None:
    """`sandbox ARGS` is refused in one line, exit 2, nothing on stdout, no traceback."""
    result = run_sandbox(args)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("sandbox") and "Traceback" not in err, err
    assert all(needle in err for needle in needles), err
    assert result.stdout == b""


@pytest.mark.parametrize("option", ["--fault-log", "--stats-json"])
def test_output_file_in_a_missing_directory(writer: str, tmp_path: Path, option: str) -> None:
    usage_error(["run", option, str(tmp_path / "no" / "f.json"), writer, "0"], option, "no such directory")


@pytest.mark.parametrize("option", ["--fault-log", "--stats-json"])
def test_output_file_that_is_a_directory(writer: str, tmp_path: Path, option: str) -> None:
    usage_error(["run", option, str(tmp_path), writer, "0"], option, "is a directory")


def test_output_files_are_written(writer: str, tmp_path: Path) -> None:
    log, stats = tmp_path / "faults.jsonl", tmp_path / "stats.json"
    result = run_sandbox(["run", "--fault-log", str(log), "--stats-json", str(stats), writer, "0"])
    assert result.returncode == 0 and result.stdout == b"wrote 0\n"
    assert log.read_text().count("\n") > 10 and '"faults_total"' in stats.read_text()


@pytest.mark.parametrize(("output", "needle"), [
    ("faults.bogus", ".bogus is not a picture format"),
    ("faults", "no extension is not a picture format"),
    ("missing/faults.png", "no such directory"),
    (".", "is a directory"),
])
def test_plot_output_checked_first(tmp_path: Path, output: str, needle: str) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("")
    usage_error(["plot", str(log), "-o", str(tmp_path / output)], "--output", needle)


@pytest.mark.parametrize(("size", "needle"), [
    ("100G", f"at most {MAX_MEMORY >> 30}G"),
    ("12Q", "not a size"),
    ("3M", "at least 4M"),
])
def test_memory_out_of_range(writer: str, size: str, needle: str) -> None:
    usage_error(["run", "--memory", size, writer, "0"], "--memory", needle)


def test_memory_the_host_will_not_reserve(writer: str) -> None:
    """Within MAX_MEMORY but more than the host lets one process reserve: a usage error
    (it was "internal error", exit 70), or a run if the host agrees."""
    result = run_sandbox(["run", "--memory", f"{MAX_MEMORY >> 30}G", writer, "0"])
    if result.returncode == 0:
        assert result.stdout == b"wrote 0\n"
    else:
        usage_error(["run", "--memory", f"{MAX_MEMORY >> 30}G", writer, "0"], "the host will not reserve")


@pytest.mark.parametrize(("spec", "needle"), [
    ("/nonexistent-host-dir:/x", "/nonexistent-host-dir does not exist"),
    ("relative", "expected HOST:/GUEST"),
    ("/tmp:/x:rx", "mode 'rx' is not ro or rw"),
    ("/tmp:/", "a mount at / would hide the root"),
])
def test_bad_mount(writer: str, spec: str, needle: str) -> None:
    usage_error(["run", "--mount", spec, writer, "0"], "--mount", needle)


@pytest.mark.parametrize("name", ["nonsense", "0", "12", "99999999999999999999"])
def test_unknown_demo(name: str) -> None:
    usage_error(["demo", name], f"no demo {name!r}", "sandbox demo --list")


def test_demo_by_number_is_the_demo_by_name() -> None:
    listing = run_sandbox(["demo", "--list"]).stdout.decode().splitlines()
    number, name = listing[3].split()[:2]
    assert name == "write-barrier"
    by_number, by_name = run_sandbox(["demo", number.rstrip(".")]), run_sandbox(["demo", name])
    assert by_number.returncode == by_name.returncode == 0
    assert by_number.stdout.splitlines()[0] == by_name.stdout.splitlines()[0] == b"== write-barrier: " + \
        b"a user-level write barrier (mprotect + SIGSEGV handler)"
    assert b"dirty pages: 3 7 8 20 (4 of 32)" in by_number.stdout


def test_demo_list_is_aligned() -> None:
    names = [line.split(".", 1)[1] for line in run_sandbox(["demo", "--list"]).stdout.decode().splitlines()]
    assert len({len(line) - len(line.lstrip()) for line in names}) == 1, names


def test_seed_implies_deterministic(writer: str) -> None:
    seeded = [run_sandbox(["run", "--seed", "7", writer, "random"]).stdout for _ in range(2)]
    explicit = run_sandbox(["run", "--deterministic", "--seed", "7", writer, "random"]).stdout
    other = run_sandbox(["run", "--seed", "8", writer, "random"]).stdout
    assert seeded[0] == seeded[1] == explicit != other and len(explicit) == 17


@pytest.mark.parametrize(("ident_class", "machine", "needle"), [
    (1, 3, "a 32-bit x86 program: only x86-64 runs here"),
    (1, 40, "a 32-bit ARM program: only x86-64 runs here"),
    (2, 183, "a 64-bit ARM (AArch64) program: only x86-64 runs here"),
    (2, 243, "a 64-bit RISC-V program: only x86-64 runs here"),
    (1, 62, "a 32-bit x86-64 x32-ABI program: only x86-64 runs here"),
    (2, 0xBEEF, "a 64-bit e_machine 48879 program: only x86-64 runs here"),
])
def test_architecture_is_named(writer: str, tmp_path: Path, ident_class: int, machine: int, needle: str) -> None:
    """The header's class and e_machine (at the same offset in both classes) name it."""
    image = bytearray(Path(writer).read_bytes())
    image[4] = ident_class
    struct.pack_into("<H", image, 18, machine)
    program = tmp_path / "foreign"
    program.write_bytes(image)
    program.chmod(0o755)
    result = run_sandbox(["run", str(program)])
    assert result.returncode == 126
    assert result.stderr.decode() == f"sandbox: {program}: {needle}\n"


def test_click_usage_errors_are_one_line() -> None:
    usage_error(["run"], "sandbox run: ", "Missing argument 'PROG'")
    usage_error(["nonsense"], "No such command 'nonsense'")
    usage_error(["run", "--max-processes", "0", "/bin/true"], "--max-processes")


def test_run_help_has_examples_and_exit_statuses() -> None:
    text = run_sandbox(["run", "--help"]).stdout.decode()
    assert "--memory SIZE" in text and "--seed N" in text and "--cwd DIR" in text
    assert not any(word in text for word in ("TEXT", "INTEGER", "FLOAT")), text
    assert "Examples:\n    sandbox run /bin/busybox echo hi" in text
    for status in ("128+N", "137", "127", "126", "2 for a usage mistake", "70"):
        assert status in text, status
    assert "--keep-root" in text and "implies --deterministic" in text


def test_command_summaries_are_whole() -> None:
    """click cuts a summary longer than its column with '...': each is written to fit."""
    text = run_sandbox(["--help"]).stdout.decode()
    commands = text.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()  # the Examples follow
    assert len(commands) == 8 and not any(line.endswith("...") for line in commands), commands
