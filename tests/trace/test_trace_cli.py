"""--trace-syscalls, --trace-filter and --trace-out as a user meets them, on real programs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import guest, run_sandbox

BUSYBOX = "/bin/busybox"


def test_the_issue_example_is_decoded() -> None:
    """openat(AT_FDCWD, "/tmp/x", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3, not raw numbers."""
    result = run_sandbox(["run", "--trace-filter", "%file", BUSYBOX, "sh", "-c", "echo hi > /tmp/x; cat /tmp/x"])
    err = result.stderr.decode()
    assert result.returncode == 0 and result.stdout == b"hi\n"
    assert 'openat(AT_FDCWD, "/tmp/x", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3' in err
    assert "write(" not in err  # not in %file
    assert "+++ exited with 0 +++" in err


def test_forks_get_pid_prefixes_and_exits_say_question_mark() -> None:
    result = run_sandbox(["run", "--trace-syscalls", BUSYBOX, "sh", "-c", "/bin/busybox true; exit 3"])
    err = result.stderr.decode()
    assert result.returncode == 3
    assert "[pid     3] " in err and "+++ exited with 0 +++" in err
    assert err.rstrip().endswith("exit_group(3)                           = ?\n+++ exited with 3 +++")
    assert "wait4(" in err and "WIFEXITED(s) && WEXITSTATUS(s) == 0" in err


def test_a_dynamic_program_decodes_its_mappings() -> None:
    result = run_sandbox(["run", "--trace-filter", "%memory,openat", "/bin/true"])
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_DENYWRITE" in err or "MAP_PRIVATE|MAP_FIXED" in err
    assert 'openat(AT_FDCWD, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3' in err


def test_threads_show_futexes_and_their_own_ids() -> None:
    result = run_sandbox(["run", "--trace-filter", "futex,clone,clone3,exit", guest("threads-glibc"), "4", "100"])
    err = result.stderr.decode()
    assert result.returncode == 0, err[-2000:]
    assert "FUTEX_" in err and "[pid " in err and "clone" in err


def test_a_death_by_signal() -> None:
    result = run_sandbox(["run", "--trace-syscalls", BUSYBOX, "sh", "-c", "kill -SEGV $$"])
    err = result.stderr.decode()
    assert result.returncode == 128 + 11
    assert "--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_USER, si_pid=" in err
    assert "+++ killed by SIGSEGV" in err


def test_trace_out_writes_the_file_and_implies_the_trace(tmp_path: Path) -> None:
    out = tmp_path / "trace.txt"
    result = run_sandbox(["run", "--trace-out", str(out), guest("hello")])
    assert result.returncode == 0 and result.stdout.startswith(b"Hello")
    assert b"exit_group" not in result.stderr
    lines = out.read_text().splitlines()
    assert lines[-1] == "2     +++ exited with 0 +++" and lines[-2].startswith("2     exit_group(0) ")


def test_bad_trace_options_are_usage_errors(tmp_path: Path) -> None:
    for argv in (["--trace-filter", "%nope"], ["--trace-filter", "no_such_call"],
                 ["--trace-out", str(tmp_path / "missing" / "t.txt")]):
        result = run_sandbox(["run", *argv, guest("hello")])
        err = result.stderr.decode()
        assert result.returncode == 2, (argv, err)
        assert "Traceback" not in err and result.stdout == b""


def test_stats_name_calls_as_the_trace_does() -> None:
    err = run_sandbox(["run", "--stats", BUSYBOX, "true"]).stderr.decode()
    assert "rseq" in err and "syscall_334" not in err
