"""A run's record, how it is judged, and the records file.

A record is one JSON object (keys sorted) on one line:

    id, passed (bool), failure (null or a kind below), status (what a shell sees: the exit
    code, or 128 + the signal; null if the runner's wall limit killed it), exit_code,
    signal ("SIGSEGV"), limit ("timeout", "instructions", "memory", "cpu", "wall"),
    message (the sandbox's own last line: why the guest was killed or could not run),
    stdout / stderr ({bytes, sha256, head: the first KiB as text}), instructions (when
    counted), stats (`sandbox run --stats-json`: faults by kind, syscalls by name, frames
    with their peak...), expected ({status, stdout_sha256} as the manifest gave them), and
    timing ({wall_s, cpu_s}) -- the one field that differs between two --deterministic runs.
    Under --deterministic, `stats` leaves out HOST_STATS (facts of the host's build, not of
    the run), so records agree across machines too.

Failure kinds, in the order they are looked for: runner-error (the host could not start
the run), wall-limit, sandbox-error (the sandbox's internal error, status 70), not-run
(the program could not be loaded), timeout, instruction-limit, memory-limit, cpu-limit,
crashed (a signal the expectation did not name), wrong-status, wrong-output. A run without
expectations passes unless one of the kinds before wrong-status applies.

The sandbox's last stderr line is trusted only with the status it goes with (a guest that
prints a fake one can only mislabel its own failure).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.batch.manifest import Entry
    from sandbox.batch.runner import Outcome, Stream

TIMING = "timing"
#: `stats` keys that describe the host's sandbox build, dropped under --deterministic.
HOST_STATS = ("engine", "fast_path")
#: What a resumed record must hold (and of which types) to be one of ours.
RECORD_SHAPE = {"id": (str,), "passed": (bool,), "failure": (str, type(None)), "status": (int, type(None)),
                TIMING: (dict, type(None))}
#: Statuses `sandbox run` gives when the guest never ran or the sandbox failed (cli.py).
NOT_RUN_STATUSES = (2, 126, 127)
INTERNAL_STATUS = 70
SIGNALLED = 128
#: The sandbox's message for each limit (kernel.py, limits.py), and the names a record uses.
LIMIT_MESSAGES = (
    ("killed: time limit", "timeout", "timeout"),
    ("killed: instruction limit", "instructions", "instruction-limit"),
    ("out of memory", "memory", "memory-limit"),
    ("killed by SIGKILL: CPU time limit", "cpu", "cpu-limit"),
)


class RecordsError(Exception):
    """The output file has a line that is not a record (not the truncated last one)."""


def make_record(entry: Entry, outcome: Outcome | None, runner_error: str | None = None) -> dict:
    """The record of `entry`'s run (`outcome` None when `runner_error` kept it from running)."""
    record = {"id": entry.id, "expected": _expected(entry)}
    if outcome is None:
        return {**record, "passed": False, "failure": "runner-error", "message": runner_error, "status": None,
                "exit_code": None, "signal": None, "limit": None, "stdout": None, "stderr": None,
                "instructions": None, "stats": None, TIMING: None}
    message = sandbox_message(entry, outcome)
    limit, failure = _limit(outcome.status, message)
    signo = _signal(outcome.status, message, limit)
    failure = failure or _failure(entry, outcome, message, signo)
    return {**record, "passed": failure is None, "failure": failure, "message": message, "status": outcome.status,
            "exit_code": outcome.status if signo is None and outcome.status is not None else None,
            "signal": signal.Signals(signo).name if signo else None, "limit": limit,
            "stdout": _stream(outcome.stdout), "stderr": _stream(outcome.stderr),
            "instructions": (outcome.stats or {}).get("instructions"), "stats": _stats(entry, outcome.stats),
            TIMING: {"wall_s": round(outcome.wall, 3), "cpu_s": round(outcome.cpu, 3)}}


def sandbox_message(entry: Entry, outcome: Outcome) -> str | None:
    """The sandbox's own last line on stderr (`sandbox: ./NAME: why`), or None."""
    lines = outcome.stderr.tail.decode(errors="replace").rstrip("\n").rsplit("\n", 1)
    prefix = f"sandbox: ./{os.path.basename(entry.program)}: "
    last = lines[-1]
    if last.startswith(prefix):
        return last[len(prefix):]
    if last.startswith("sandbox: internal error"):
        return last.removeprefix("sandbox: ")
    return None


def _limit(status: int | None, message: str | None) -> tuple[str | None, str | None]:
    """(limit, failure kind) for a run a limit ended."""
    if status is None:
        return "wall", "wall-limit"
    if status == SIGNALLED + signal.SIGKILL and message:
        for start, limit, failure in LIMIT_MESSAGES:
            if message.startswith(start):
                return limit, failure
    return None, None


def _signal(status: int | None, message: str | None, limit: str | None) -> int | None:
    """The signal that ended the guest, when the sandbox said one did."""
    if status is None or status <= SIGNALLED or not message:
        return None
    if limit or message.startswith("killed by SIG") or message.startswith("stopped by SIG"):
        return status - SIGNALLED
    return None


def _failure(entry: Entry, outcome: Outcome, message: str | None, signo: int | None) -> str | None:
    """The failure kind of a run no limit ended, or None if it passed."""
    if message and outcome.status == INTERNAL_STATUS and message.startswith("internal error"):
        return "sandbox-error"
    if message and outcome.status in NOT_RUN_STATUSES and signo is None:
        return "not-run"
    if entry.expect_status is not None and outcome.status != entry.expect_status:
        return "crashed" if signo else "wrong-status"
    if entry.expect_status is None and signo:
        return "crashed"
    if entry.expect_stdout is not None and entry.expect_stdout != (outcome.stdout.digest.hexdigest(),
                                                                   outcome.stdout.size):
        return "wrong-output"
    return None


def _stats(entry: Entry, stats: dict | None) -> dict | None:
    """The run's statistics; under --deterministic without the host's build facts."""
    if stats is None or "--deterministic" not in entry.options:
        return stats
    return {key: value for key, value in stats.items() if key not in HOST_STATS}


def _expected(entry: Entry) -> dict:
    return {"status": entry.expect_status,
            "stdout_sha256": entry.expect_stdout[0] if entry.expect_stdout else None}


def _stream(stream: Stream) -> dict:
    return {"bytes": stream.size, "sha256": stream.digest.hexdigest(),
            "head": stream.head.decode("utf-8", errors="backslashreplace")}


def encode(record: dict) -> bytes:
    """One record as its line: keys sorted, so equal records are equal bytes."""
    return (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()


def without_timing(record: dict) -> dict:
    """The record less its timing fields: what two --deterministic runs agree on."""
    return {key: value for key, value in record.items() if key != TIMING}


def load_records(path: str) -> dict[str, dict]:
    """The records already in `path` by id ({} if there is no file). A last line with no
    newline (a run interrupted mid-write) is cut off the file; any other line that is not
    a record raises RecordsError naming file:line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        os.truncate(path, len(complete))
    records = {}
    for number, line in enumerate(complete.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not _is_record(record):
            raise RecordsError(f"{path}:{number}: not a batch record; use another -o or remove the file")
        records[record["id"]] = record
    return records


def _is_record(record: object) -> bool:
    """Whether a resumed line has the fields (and types) the summary reads."""
    if not isinstance(record, dict):
        return False
    if not all(key in record and isinstance(record[key], types) for key, types in RECORD_SHAPE.items()):
        return False
    timing = record[TIMING]
    return timing is None or all(isinstance(timing.get(key), int | float) and not isinstance(timing.get(key), bool)
                                 for key in ("wall_s", "cpu_s"))


def lock_output(path: str) -> int:
    """An exclusive flock(2) on the output file (created if need be), held until the
    descriptor is closed; RecordsError if another batch holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RecordsError(f"{path}: another batch is writing it; wait for it or use another -o") from None
    return fd


class RecordWriter:
    """Appends records to the output: each in one write(2) on an O_APPEND descriptor, so
    an interruption leaves whole lines (and at worst one cut short, which load_records
    drops)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, record: dict) -> None:
        """Append one record."""
        line = encode(record)
        written = os.write(self.fd, line)
        if written != len(line):  # a full disk: the short line is dropped on resume
            raise OSError(f"short write of a record ({written} of {len(line)} bytes)")

    def close(self) -> None:
        os.close(self.fd)
