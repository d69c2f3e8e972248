"""What `sandbox batch` does once click has parsed its options (sandbox/commands.py)."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from sandbox.batch.manifest import ManifestError, parse_manifest
from sandbox.batch.pool import LocalPool, run_batch
from sandbox.batch.record import RecordsError
from sandbox.batch.summary import summarize

EXIT_PASSED = 0
EXIT_FAILED = 1  # some run failed (or was not recorded)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + 2


def batch(manifest: str, output: str, jobs: int | None, timeout: float, deterministic: bool,
          dask: str | None, slowest: int) -> int:
    """Run the manifest's entries into `output`, print the summary; the exit status."""
    try:
        entries = parse_manifest(manifest, default_timeout=timeout, deterministic=deterministic)
    except ManifestError as error:
        return _fail(str(error))
    try:
        backend = _dask(dask) if dask else LocalPool(jobs)
    except (OSError, ImportError) as error:
        return _fail(str(error))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_batch(entries, output, backend, ordered=deterministic)
    except RecordsError as error:
        return _fail(str(error))
    finally:
        signal.signal(signal.SIGTERM, previous)
        getattr(backend, "close", lambda: None)()
    print(summarize(result.records, len(entries), result.interrupted, slowest))
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PASSED if all(r["passed"] for r in result.records.values()) else EXIT_FAILED


def _dask(address: str) -> object:
    """The Dask backend connected to `address`; ImportError or OSError said in one line."""
    try:
        from sandbox.batch.dask_backend import DaskPool
    except ImportError:
        raise ImportError("--dask needs Dask: pip install 'sandbox[batch]' (dask[distributed])") from None
    try:
        return DaskPool(address)
    except (OSError, TimeoutError, ValueError) as error:
        raise OSError(f"--dask {address}: cannot reach the scheduler ({error})") from None


def _interrupt(_signo: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the batch as Ctrl-C does: running guests killed, records kept."""
    raise KeyboardInterrupt


def _fail(message: str) -> int:
    print(f"sandbox batch: {message}", file=sys.stderr)
    return EXIT_USAGE
