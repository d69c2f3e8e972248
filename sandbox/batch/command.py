"""What `sandbox batch` does once click has parsed its options (sandbox/commands.py)."""

from __future__ import annotations

import os
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
          dask: str | None, slowest: int, manifest_root: str | None = None) -> int:
    """Run the manifest's entries into `output`, print the summary; the exit status.
    Ctrl-C (or SIGTERM) at any point, parsing included, is exit status 130."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _batch(manifest, output, jobs, timeout, deterministic, dask, slowest, manifest_root)
    except KeyboardInterrupt:  # before the runs started: nothing to keep
        print("sandbox batch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _batch(manifest: str, output: str, jobs: int | None, timeout: float, deterministic: bool,
           dask: str | None, slowest: int, manifest_root: str | None) -> int:
    if manifest_root is not None and not os.path.isdir(manifest_root):
        return _fail(f"--manifest-root {manifest_root}: not a directory")
    try:
        entries = parse_manifest(manifest, default_timeout=timeout, deterministic=deterministic, root=manifest_root)
    except ManifestError as error:
        return _fail(str(error))
    try:
        backend = _dask(dask) if dask else LocalPool(jobs)
    except (OSError, ImportError) as error:
        return _fail(str(error))
    try:
        getattr(backend, "check", lambda _entries: None)(entries)
        result = run_batch(entries, output, backend, ordered=deterministic)
    except (RecordsError, OSError) as error:
        return _fail(str(error))
    finally:
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
    except Exception as error:  # noqa: BLE001 - Dask's errors on a bad peer vary (OSError, TimeoutError,
        # ValueError, even MemoryError for a reply that is not Dask's): each is one line here
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(f"--dask {address}: cannot reach the scheduler ({reason}); to wait longer set "
                      f"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT (e.g. 60s)") from None


def _interrupt(_signo: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the batch as Ctrl-C does: running guests killed, records kept."""
    raise KeyboardInterrupt


def _fail(message: str) -> int:
    print(f"sandbox batch: {message}", file=sys.stderr)
    return EXIT_USAGE
