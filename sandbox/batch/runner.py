"""`run_entry`: one manifest entry run in its own `sandbox run` process, and its record.

The same function runs in the local pool's threads and on Dask workers. The program is
staged in a private directory under its own base name (busybox picks its applet by
argv[0]) and run as `./NAME` from there, so that argv[0] is the same on every machine.
Files a remote worker cannot see come as bytes (`blobs`, keyed by the submitting host's
path); locally they are read in place.

The child runs in a new session: a terminal's Ctrl-C does not reach it, and killing its
process group ends it however it is wedged. Its output is read as it comes, keeping only a
digest, a size, the first KiB and the last KiB, so a guest that writes without end costs
nothing but time. The host-side wall limit is `wall_limit(timeout)`, a little above the
guest's own --timeout: past it the group is killed and the run recorded as `wall-limit`.
Killing is SIGTERM first (the sandbox then kills its guest and removes its private root),
SIGKILL after KILL_GRACE seconds for a sandbox too wedged to exit or whose guest handles
SIGTERM. The sandbox's TMPDIR is inside the run's private directory, so even a SIGKILLed
sandbox leaves nothing behind once the runner removes that directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from sandbox.batch.manifest import Entry
from sandbox.batch.record import make_record

#: Bytes of each stream a record shows (the head) and that the runner keeps from its end (to
#: find the sandbox's own last line on stderr).
HEAD = 1024
TAIL = 1024
READ_SIZE = 1 << 16
#: How often a waiting runner looks at its cancel flag (seconds).
POLL = 0.1
#: The wall limit is the guest's timeout times this, plus this grace for start-up and exit.
WALL_FACTOR = 1.25
WALL_GRACE = 5.0
#: Seconds a SIGTERMed sandbox has to clean up and exit before its group is SIGKILLed.
KILL_GRACE = 2.0


class Cancelled(Exception):
    """The batch was interrupted; this run was stopped and has no record."""


def wall_limit(timeout: float) -> float:
    """The host-side limit for a guest whose own --timeout is `timeout` seconds."""
    return timeout * WALL_FACTOR + WALL_GRACE


@dataclass
class Stream:
    """What a run wrote to one stream: its size, sha256, first HEAD and last TAIL bytes."""

    size: int = 0
    digest: object = field(default_factory=hashlib.sha256)
    head: bytes = b""
    tail: bytes = b""

    def feed(self, chunk: bytes) -> None:
        """Account for the next chunk of the stream."""
        self.size += len(chunk)
        self.digest.update(chunk)
        if len(self.head) < HEAD:
            self.head += chunk[: HEAD - len(self.head)]
        self.tail = (self.tail + chunk)[-TAIL:]


@dataclass
class Outcome:
    """How the child ended: its status as a shell sees it (None if the wall limit killed
    it), both streams, and its wall and CPU seconds."""

    status: int | None
    stdout: Stream
    stderr: Stream
    wall: float
    cpu: float
    stats: dict | None = None


def run_entry(entry: Entry, blobs: dict[str, bytes] | None = None,
              cancel: threading.Event | None = None) -> dict:
    """Run `entry` in a fresh sandbox process and return its record. `blobs` holds the
    bytes of `entry.needs()` when the files are not on this machine; `cancel`, when set,
    stops the run (Cancelled). A host failure to stage the run (a full disk) is a record
    with failure `runner-error`, not an exception."""
    with tempfile.TemporaryDirectory(prefix="sandbox-batch-", ignore_cleanup_errors=True) as stage:
        try:
            command, bindir, stdin = _stage(entry, stage, blobs)
            os.mkdir(os.path.join(stage, "tmp"))
            env = {**os.environ, "TMPDIR": os.path.join(stage, "tmp")}  # a SIGKILLed sandbox's root goes with stage
            outcome = _spawn(command, bindir, stdin, wall_limit(entry.timeout), cancel, env)
        except OSError as error:  # the host's own trouble: no room, no processes left
            return make_record(entry, None, runner_error=f"{type(error).__name__}: {error}")
        outcome.stats = _read_stats(os.path.join(stage, "stats.json"))
    return make_record(entry, outcome)


def _stage(entry: Entry, stage: str, blobs: dict[str, bytes] | None) -> tuple[list[str], str, str | None]:
    """Put the program (and shipped files, and stdin) in `stage`; the command line, the
    directory to run it from, and the stdin file (None: /dev/null)."""
    bindir = os.path.join(stage, "bin")
    os.mkdir(bindir)
    name = os.path.basename(entry.program)
    _place(entry.program, blobs, os.path.join(bindir, name))
    os.chmod(os.path.join(bindir, name), 0o700)
    mounts = []
    for index, (guest, host) in enumerate(entry.files):
        mounts += ["--mount", f"{_local(host, blobs, os.path.join(stage, f'file{index}'))}:{guest}:ro"]
    stdin = None
    if entry.stdin is not None and entry.stdin.path is not None:
        stdin = _local(entry.stdin.path, blobs, os.path.join(stage, "stdin"))
    elif entry.stdin is not None:
        stdin = os.path.join(stage, "stdin")
        _write(stdin, entry.stdin.data)
    command = [sys.executable, "-m", "sandbox", "run", *entry.options, *mounts,
               "--stats-json", os.path.join(stage, "stats.json"), "--", f"./{name}", *entry.args]
    return command, bindir, stdin


def _place(host: str, blobs: dict[str, bytes] | None, target: str) -> None:
    """The file `host` at `target`: copied, or written from the shipped bytes."""
    if blobs is None:
        shutil.copyfile(host, target)
    else:
        _write(target, blobs[host])


def _local(host: str, blobs: dict[str, bytes] | None, target: str) -> str:
    """A path on this machine holding the file `host`: itself, or `target` written from
    the shipped bytes."""
    if blobs is None:
        return host
    _write(target, blobs[host])
    return target


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _spawn(command: list[str], cwd: str, stdin_path: str | None, wall: float,
           cancel: threading.Event | None, env: dict[str, str] | None = None) -> Outcome:
    """Run `command` (in `env`, default ours) to its end, or kill its group at `wall`
    seconds (or on cancel)."""
    stdout, stderr = Stream(), Stream()
    started = time.monotonic()
    with open(stdin_path or os.devnull, "rb") as stdin:
        child = subprocess.Popen(command, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True, env=env)
    reaped = None
    try:
        killed = _pump(child, {child.stdout: stdout, child.stderr: stderr}, started + wall, cancel)
        reaped = _reap(child, started + wall, cancel, killed)
    finally:
        if reaped is None:  # an exception (Cancelled): nothing may outlive the runner
            _kill(child)
            os.wait4(child.pid, 0)
        child.stdout.close()
        child.stderr.close()
    status, usage, killed = reaped
    return Outcome(None if killed else status, stdout, stderr, time.monotonic() - started,
                   usage.ru_utime + usage.ru_stime)


def _pump(child: subprocess.Popen, streams: dict, deadline: float, cancel: threading.Event | None) -> bool:
    """Read both pipes to their end; True if the deadline came first (the group is then
    killed, and what it wrote before is kept)."""
    with selectors.DefaultSelector() as selector:
        for pipe in streams:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            _check_cancel(cancel)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(child)
                return True
            for key, _ in selector.select(min(POLL, remaining)):
                chunk = os.read(key.fileobj.fileno(), READ_SIZE)
                if chunk:
                    streams[key.fileobj].feed(chunk)
                else:
                    selector.unregister(key.fileobj)
    return False


def _reap(child: subprocess.Popen, deadline: float, cancel: threading.Event | None,
          killed: bool) -> tuple[int, object, bool]:
    """(status, rusage, killed by the wall limit) once the child has exited."""
    while not killed:
        pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(wait_status)
            return _shell_status(child.returncode), usage, False
        _check_cancel(cancel)
        if time.monotonic() >= deadline:
            _kill(child)
            killed = True
        else:
            time.sleep(min(POLL / 10, deadline - time.monotonic()))
    _pid, wait_status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(wait_status)
    return _shell_status(child.returncode), usage, True


def _shell_status(returncode: int) -> int:
    """Popen's -N for a death by signal N, as a shell says it: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


def _kill(child: subprocess.Popen) -> None:
    """End the child's whole process group (it leads its own session): SIGTERM, so that
    the sandbox removes its private root, then SIGKILL once it has exited or KILL_GRACE
    has passed. The child is left to be reaped by the caller."""
    if not _signal_group(child, signal.SIGTERM):
        return
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline and not _exited(child):
        time.sleep(POLL / 10)
    _signal_group(child, signal.SIGKILL)


def _signal_group(child: subprocess.Popen, signo: int) -> bool:
    """Send `signo` to the child's group; False if the group is gone."""
    try:
        os.killpg(child.pid, signo)
    except ProcessLookupError:
        return False
    return True


def _exited(child: subprocess.Popen) -> bool:
    """Whether the child has exited, without reaping it (waitid(2) with WNOWAIT)."""
    result = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return result is not None


def _read_stats(path: str) -> dict | None:
    """The sandbox's --stats-json, or None when it wrote none (killed before the end)."""
    try:
        with open(path) as f:
            stats = json.load(f)
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) else None
