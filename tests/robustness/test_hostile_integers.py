"""Hostile integers and endless waits (issue 12, findings 6 and 8): a guest's times, offsets
and counts near 2^63 get Linux's errno or Linux's saturated value, never a host exception
(exit 70); a guest that waits for ever -- on a timer, on stdin, on a stdout nobody reads --
still ends with --timeout. No wall-clock assertions: each run must just end, with its status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import guest, run_sandbox

TIMEOUT_STATUS = 137  # SIGKILL of every process when --timeout is reached
TIMEOUT_MESSAGE = "killed: time limit of 1 s reached\n"


def _lines(mode: str) -> list[str]:
    result = run_sandbox(["run", guest("hostileints"), mode])
    err = result.stderr.decode()
    assert result.returncode == 0 and "internal error" not in err, err
    return result.stdout.decode().splitlines()


def test_sendfile_offset_near_the_largest_position_is_einval() -> None:
    # Linux (rw_verify_area): an end past 2^63 - 1 is EINVAL, and *offset is not changed.
    assert _lines("sendfile") == ["sendfile-near -22", "offset-after 0", "sendfile-at-max -22"]


def test_an_itimer_for_ever_can_be_read_back() -> None:
    assert _lines("itimer") == ["setitimer 0", "getitimer 0", "seconds-left-positive 1"]


def test_negative_seeks_on_synthetic_directories_are_einval() -> None:
    once = ["lseek-set-negative -22", "lseek-cur-negative -22", "getdents64-has-entries 1"]
    assert _lines("dirseek") == once * 2


@pytest.mark.parametrize("mode", ["sleep", "pause", "ppoll"])
def test_waiting_for_ever_without_a_timeout_keeps_waiting(mode: str) -> None:
    # The idle wait's host timeout once overflowed (exit 70 at once); now the guest sleeps on.
    with subprocess.Popen([sys.executable, "-m", "sandbox", "run", guest("hostileints"), mode],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                child.wait(timeout=3)
        finally:
            child.terminate()  # SIGTERM: the sandbox ends its guest and removes its private root
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        assert b"internal error" not in child.stderr.read()


@pytest.mark.parametrize("mode", ["sleep", "pause", "ppoll"])
def test_waiting_for_ever_ends_with_the_timeout(mode: str) -> None:
    result = run_sandbox(["run", "--timeout", "1", guest("hostileints"), mode])
    assert result.returncode == TIMEOUT_STATUS, result.stderr
    assert result.stderr.decode().endswith(TIMEOUT_MESSAGE)


def _run_with_pipes(mode: str) -> tuple[int, str]:
    """The CLI with stdin and stdout pipes that this side never writes nor reads."""
    with subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--timeout", "1", guest("hostileints"), mode],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        try:
            status = child.wait(timeout=120)  # guards against a hang: the run must end by itself
        finally:
            child.kill()
        return status, child.stderr.read().decode()


def test_poll_on_an_idle_stdin_pipe_ends_with_the_timeout() -> None:
    status, err = _run_with_pipes("pollin")
    assert status == TIMEOUT_STATUS and err.endswith(TIMEOUT_MESSAGE), err


def test_writing_to_a_stdout_pipe_nobody_reads_ends_with_the_timeout() -> None:
    status, err = _run_with_pipes("flood")
    assert status == TIMEOUT_STATUS and err.endswith(TIMEOUT_MESSAGE), err
