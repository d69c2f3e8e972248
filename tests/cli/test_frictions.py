"""Issue 16's last CLI frictions: no traceback for a bad --trace-filter; an output the user
named that fails during the run is one line and status 74 (EX_IOERR); a closed pipe on the
sandbox's own stderr or stdout is quiet, status 141; sizes and counts are range-checked at
parse time; a word starting with '-' where PROG is expected is an unknown option; strace's
-o, -e, -s and -f; every command's help has Examples and Exit status; plot, --cwd, --env,
the signal wording and the not-an-ELF message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.commands import MIN_RESIDENT
from tests.cli.test_usage import usage_error
from tests.conftest import ROOT, require_tool, run_sandbox

BUSYBOX = "/bin/busybox"
EX_IOERR = 74
SIGPIPE_STATUS = 128 + signal.SIGPIPE


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tiny.S: the smallest program (a code page and a stack page)."""
    out = tmp_path_factory.mktemp("tiny") / "tiny"
    source = Path(__file__).with_name("tiny.S")
    subprocess.run([require_tool("gcc"), "-nostdlib", "-static", "-o", str(out), str(source)], check=True)
    return str(out)


def _private_env(tmp_path: Path) -> dict[str, str]:
    """The private root is made under `tmp_path`: a test sees it is removed."""
    (tmp_path / "tmp").mkdir()
    return {**os.environ, "TMPDIR": str(tmp_path / "tmp")}


def _one_line(result: subprocess.CompletedProcess, status: int, *needles: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == status, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(needle in err for needle in needles), err


# -- 1. tracebacks ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "needle"), [
    ("/[", "not a regular expression"), ("/*", "not a regular expression"), ("/(?", "not a regular expression"),
    ("", "names no system call"), ("!", "names no system call"), (",", "names no system call"),
])
def test_bad_trace_filter_is_a_usage_error(tiny: str, expression: str, needle: str) -> None:
    usage_error(["run", "--trace-filter", expression, tiny], "--trace-filter", needle)
    usage_error(["run", "-e", f"trace={expression}", tiny], needle)


@pytest.mark.parametrize("option", ["--trace-out", "-o", "--fault-log"])
def test_full_output_ends_the_run_in_one_line(tmp_path: Path, option: str) -> None:
    """/dev/full refuses every write: the run ends (a long guest does not run on), one line
    names the file and the error, status 74, the private root is removed."""
    script = "dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null; echo after"  # a thousand faults first
    done = run_sandbox(["run", option, "/dev/full", BUSYBOX, "sh", "-c", script], env=_private_env(tmp_path))
    name = "--trace-out" if option == "-o" else option
    _one_line(done, EX_IOERR, f"{name} /dev/full: No space left on device")
    assert done.stdout == b""
    assert os.listdir(tmp_path / "tmp") == []


def test_full_output_of_a_short_run_fails_at_close(tmp_path: Path) -> None:
    """A fault log small enough to stay in its buffer fails when it is closed: the same."""
    done = run_sandbox(["run", "--fault-log", "/dev/full", BUSYBOX, "true"], env=_private_env(tmp_path))
    _one_line(done, EX_IOERR, "--fault-log /dev/full: No space left on device")


def test_full_stats_json_is_an_io_error(tiny: str) -> None:
    _one_line(run_sandbox(["run", "--stats-json", "/dev/full", tiny]), EX_IOERR, "--stats-json /dev/full")


def test_demo_full_fault_log(tmp_path: Path) -> None:
    _one_line(run_sandbox(["demo", "demand-paging", "--fault-log", "/dev/full"]), EX_IOERR, "--fault-log /dev/full")


def _closed_stderr(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`sandbox ARGS` with stderr a pipe nobody reads (its reader closed), stdout discarded."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([sys.executable, "-m", "sandbox", *args], stdout=subprocess.DEVNULL, stderr=writer,
                              env=env, cwd=ROOT, timeout=600)
    finally:
        os.close(writer)


@pytest.mark.parametrize("args", [["--trace-syscalls", BUSYBOX, "seq", "1", "2000"], ["--stats", BUSYBOX, "true"]])
def test_closed_stderr_is_quiet_141(tmp_path: Path, args: list[str]) -> None:
    """As strace dies of SIGPIPE: status 141, and the private root is removed."""
    done = _closed_stderr(["run", *args], _private_env(tmp_path))
    assert done.returncode == SIGPIPE_STATUS
    assert os.listdir(tmp_path / "tmp") == []


def test_closed_stdout_of_a_report_is_141(tiny: str) -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, "-m", "sandbox", "maps", tiny], stdout=writer,
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=600)
    finally:
        os.close(writer)
    assert done.returncode == SIGPIPE_STATUS and b"Traceback" not in done.stderr


# -- 2. sizes and counts ----------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["--max-resident", "1K"], "at least 36K"), (["--max-resident", f"{MIN_RESIDENT - 4096}"], "at least 36K"),
    (["--memory", "4K"], "at least 4M"), (["--max-processes", "0"], "--max-processes"),
    (["--max-open-files", "2"], "--max-open-files"), (["--max-map-count", "1"], "--max-map-count"),
    (["--timeout", "nan"], "more than 0"), (["--timeout", "0"], "more than 0"),
    (["--max-instructions", "0"], "--max-instructions"), (["--cpus", "0"], "--cpus"),
    (["--disk", "XYZ"], "'XYZ' is not a size: a number of bytes, or with K, M or G (e.g. 1G)"),
    (["--memory", "XYZ"], "(e.g. 64M)"), (["--max-resident", "lots"], "(e.g. 16M)"),
])
def test_a_bad_size_or_count_is_exit_2(tiny: str, args: list[str], needle: str) -> None:
    usage_error(["run", *args, tiny], needle)


def test_the_least_max_resident_runs_the_smallest_program(tiny: str) -> None:
    done = run_sandbox(["run", "--max-resident", f"{MIN_RESIDENT >> 10}K", tiny])
    assert (done.returncode, done.stderr) == (0, b"")


# -- 3. options before PROG, strace's spellings --------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["run", "--bogus", "/bin/true"], ["translate", "--bogus", "/bin/true", "0x1"],
    ["report", "--bogus", "/bin/true"], ["maps", "--bogus", "/bin/true"],
])
def test_an_unknown_option_before_prog(args: list[str]) -> None:
    usage_error(args, "no such option: --bogus (the sandbox's options come before PROG)")


def test_an_unknown_option_of_a_command_without_prog() -> None:
    usage_error(["demo", "--bogus"], "no such option: --bogus")


def test_a_program_named_like_an_option_runs(tmp_path: Path, tiny: str) -> None:
    named = tmp_path / "-name"
    named.symlink_to(tiny)
    for args in (["--", "-name"], ["./-name"]):
        done = run_sandbox(["run", "--mount", f"{tmp_path}:{tmp_path}:ro", "--cwd", str(tmp_path), *args], cwd=tmp_path)
        assert done.returncode == 0, done.stderr


def test_what_follows_prog_is_the_guests(tmp_path: Path) -> None:
    done = run_sandbox(["report", "-o", str(tmp_path / "mine.html"), BUSYBOX, "echo", "-o", "x.html"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"-o x.html\n" and (tmp_path / "mine.html").exists()
    assert not (tmp_path / "report.html").exists()


def test_strace_spellings(tmp_path: Path) -> None:
    """-o FILE, -e trace=SET, -s N, -f: as strace -f -o FILE -e trace=write -s 5."""
    trace = tmp_path / "trace.txt"
    done = run_sandbox(["run", "-f", "-o", str(trace), "-e", "trace=write", "-s", "5", BUSYBOX, "echo", "helloworld"])
    assert (done.returncode, done.stdout, done.stderr) == (0, b"helloworld\n", b"")
    lines = trace.read_text().splitlines()
    assert lines[0].split(None, 1)[1].startswith('write(1, "hello"..., 11)') and "exited with 0" in lines[-1]
    bare = run_sandbox(["run", "-e", "write", "-s", "0", BUSYBOX, "echo", "hi"])
    assert b'write(1, ""..., 3)' in bare.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["-e", "signal=none"], "only -e trace=EXPR"), (["-o", "a", "--trace-out", "b"], "not both"),
    (["-e", "write", "--trace-filter", "read"], "not both"), (["-s", "-1"], "-s"),
])
def test_strace_spellings_refused(tiny: str, tmp_path: Path, args: list[str], needle: str) -> None:
    usage_error(["run", *[str(tmp_path / a) if a in "ab" else a for a in args], tiny], needle)


# -- 4. help ------------------------------------------------------------------------------------------

def test_every_help_has_examples_and_exit_status() -> None:
    from sandbox.commands import cli

    for command in [[], *([name] for name in cli.commands)]:
        text = run_sandbox([*command, "--help"]).stdout.decode()
        assert "Examples:\n" in text and "Exit status" in text, command
        examples = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert examples and all(line.strip().startswith("sandbox ") for line in examples), examples
        assert all(line.split()[1] in cli.commands for line in examples)


def test_run_help_shows_tracing() -> None:
    text = run_sandbox(["run", "--help"]).stdout.decode()
    assert "--trace-syscalls -e trace=%file -o trace.txt" in text and "74 if" in text and "141" in text


# -- 5. statuses and words ----------------------------------------------------------------------------

def test_plot_of_a_log_that_is_not_one(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    log = tmp_path / "bad.log"
    log.write_text("echo hi\n")
    usage_error(["plot", str(log), "-o", str(tmp_path / "out.png")], "not a fault-log line (not JSON)")


def test_plot_output_the_host_refuses_is_found_before_drawing(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    log = tmp_path / "cow.log"
    log.write_text('{"t": 0, "pid": 2, "address": 4096, "kind": "file", "access": "read", "rip": 1, '
                   '"frame": 1, "region": "x", "resident": 1}\n')
    usage_error(["plot", str(log), "-o", "/proc/version.png"], "/proc/version.png")


def test_a_relative_cwd_is_a_usage_error(tiny: str) -> None:
    usage_error(["run", "--cwd", "tmp", tiny], "--cwd", "'tmp' is not absolute")


def test_env_name_copies_the_hosts_or_nothing() -> None:
    env = {**os.environ, "SANDBOX_TEST_SET": "from host"}
    env.pop("SANDBOX_TEST_UNSET", None)
    done = run_sandbox(["run", "--env", "SANDBOX_TEST_SET", "--env", "SANDBOX_TEST_UNSET", "--env", "K=",
                        BUSYBOX, "env"], env=env)
    lines = done.stdout.decode().splitlines()
    assert "SANDBOX_TEST_SET=from host" in lines and "K=" in lines
    assert not any(line.startswith("SANDBOX_TEST_UNSET") for line in lines)
    usage_error(["run", "--env", "=x", BUSYBOX, "true"], "--env")


def test_a_guest_killed_by_a_signal_sent_to_the_sandbox_is_said_killed(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-m", "sandbox", "run", BUSYBOX, "sh", "-c", "echo ready; sleep 60"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_private_env(tmp_path), cwd=ROOT) as proc:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.decode() == f"sandbox: {BUSYBOX}: killed by SIGTERM sent to the sandbox\n"


@pytest.mark.parametrize(("content", "said"), [
    (b"echo hi\n", "not an ELF file or a #! script (it starts with 'echo hi')"),
    (b"", "not an ELF file or a #! script (it is empty)"),
    (b"\x00\x01\x02\x03rest", "not an ELF file or a #! script (it starts with bytes 00 01 02 03)"),
])
def test_not_a_program_is_said_without_python_bytes(tmp_path: Path, content: bytes, said: str) -> None:
    prog = tmp_path / "prog"
    prog.write_bytes(content)
    prog.chmod(0o755)
    done = run_sandbox(["run", "--mount", f"{tmp_path}:{tmp_path}:ro", str(prog)])
    _one_line(done, 126, said)
    assert "b'" not in done.stderr.decode()
