"""The local pool and the batch loop.

The local pool is a thread pool: each thread starts one `sandbox run` child and waits for
it, so -j N means N guests at once, each in its own process. The batch loop is the same for
the local pool and for Dask (`dask_backend.DaskPool`): a backend's `run(entries)` yields
records as runs finish; the loop writes each at once (or, under --deterministic, as soon as
every entry before it in the manifest is written, so that two runs write the same lines in
the same order), advances the progress bar, and on Ctrl-C stops the backend and returns
with `interrupted` set. Under --deterministic the records a Ctrl-C finds held (finished
ahead of an unfinished earlier entry) are dropped, not written: the output stays a prefix
of the manifest's order, so a resumed batch writes the same file, line for line, as one
never interrupted. The output is locked (flock) for the whole batch: a second batch on the
same -o is refused.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.batch.manifest import Entry
from sandbox.batch.record import RecordWriter, load_records, lock_output
from sandbox.batch.runner import run_entry


class Backend(Protocol):
    def run(self, entries: list[Entry]) -> Iterator[dict]:
        """Run the entries; yield each record as its run finishes."""


def default_jobs() -> int:
    """One run per core this process may use."""
    return len(os.sched_getaffinity(0))


class LocalPool:
    """Runs on this machine, `jobs` at a time."""

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs or default_jobs()

    def run(self, entries: list[Entry]) -> Iterator[dict]:
        """Yield records as runs finish. If the consumer stops early (Ctrl-C), every
        running child is killed and the queued runs are dropped before this returns."""
        cancel = threading.Event()
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="sandbox-batch") as pool:
            pending: set[Future] = set()
            queue = iter(entries)
            try:
                while True:
                    pending |= {pool.submit(run_entry, e, None, cancel) for e in _take(queue, self.jobs - len(pending))}
                    if not pending:
                        return
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        yield future.result()
            finally:
                cancel.set()


def _take(queue: Iterator[Entry], count: int) -> list[Entry]:
    """Up to `count` more entries: the pool holds no more futures than it has threads,
    so an interrupted batch has nothing queued to drain."""
    return [entry for _, entry in zip(range(count), queue, strict=False)]


@dataclass
class BatchResult:
    """What a batch did: every record of the manifest's entries in the output (earlier
    runs' included), how many ran now, and whether Ctrl-C cut it short."""

    records: dict[str, dict] = field(default_factory=dict)
    ran: int = 0
    interrupted: bool = False


def run_batch(entries: list[Entry], output: str, backend: Backend, ordered: bool = False,
              progress: bool | None = None) -> BatchResult:
    """Run the entries that have no record in `output` yet and append their records.
    `ordered` writes records in manifest order; `progress` shows a bar (default: when
    stderr is a terminal and rich is installed). RecordsError if `output` is not ours or
    another batch is writing it."""
    lock = lock_output(output)
    try:
        return _run_locked(entries, output, backend, ordered, progress)
    finally:
        os.close(lock)


def _run_locked(entries: list[Entry], output: str, backend: Backend, ordered: bool,
                progress: bool | None) -> BatchResult:
    done = load_records(output)
    result = BatchResult(records={e.id: done[e.id] for e in entries if e.id in done})
    todo = [e for e in entries if e.id not in done]
    writer = _Ordered(RecordWriter(output), [e.id for e in todo], ordered)
    with _progress(len(entries), len(result.records), progress) as advance:
        records = backend.run(todo)
        try:
            for record in records:
                writer.add(record)
                result.records[record["id"]] = record
                result.ran += 1
                advance()
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            records.close()  # stops the backend's runs now, not when collected
            for entry_id in writer.close():
                del result.records[entry_id]
                result.ran -= 1
    return result


class _Ordered:
    """Writes records as they come, or (`ordered`) in the order of `ids`, holding those
    that finish early; `close` writes whatever is still held."""

    def __init__(self, writer: RecordWriter, ids: list[str], ordered: bool) -> None:
        self.writer, self.ids, self.ordered = writer, ids, ordered
        self.held: dict[str, dict] = {}
        self.next = 0

    def add(self, record: dict) -> None:
        if not self.ordered:
            self.writer.write(record)
            return
        self.held[record["id"]] = record
        while self.next < len(self.ids) and self.ids[self.next] in self.held:
            self.writer.write(self.held.pop(self.ids[self.next]))
            self.next += 1

    def close(self) -> list[str]:
        """Close the output; the ids of the held records dropped (they run again on resume)."""
        self.writer.close()
        return list(self.held)


class _progress:
    """A context giving `advance()`: a rich bar on stderr, or nothing."""

    def __init__(self, total: int, done: int, show: bool | None) -> None:
        self.total, self.done = total, done
        self.show = sys.stderr.isatty() if show is None else show
        self.bar = None

    def __enter__(self):  # noqa: ANN204 - returns a function
        if self.show:
            try:
                from rich.console import Console
                from rich.progress import Progress
            except ImportError:  # rich is the `batch` extra's; without it, no bar
                return lambda: None
            self.bar = Progress(console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False)
            self.bar.start()
            task = self.bar.add_task("sandbox batch", total=self.total, completed=self.done)
            return lambda: self.bar.advance(task)
        return lambda: None

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
