"""`--dask ADDRESS`: the same `run_entry` on the workers of a Dask distributed cluster.

Each worker needs the sandbox installed (the same version). The program, the stdin file
and the `files` of every entry are read here and sent to the cluster as bytes, once per
distinct content (`Client.scatter(hash=True)`); a worker writes them into the run's
private directory and runs them there. `mounts` are not shipped: their host paths must
exist on every worker (a shared file system). Dask is imported only here, on this path: its
import costs about a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from sandbox.batch.manifest import Entry
from sandbox.batch.record import make_record
from sandbox.batch.runner import run_entry


class DaskPool:
    """Runs on a Dask cluster: `client` is a `distributed.Client`, or the scheduler's
    address (tcp://host:8786) to connect one to, closed by `close`."""

    def __init__(self, client: object) -> None:
        from distributed import Client

        self.owned = not isinstance(client, Client)
        #: Connecting waits up to Dask's distributed.comm.timeouts.connect (30 s unless
        #: configured, e.g. DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s).
        self.client = Client(client) if self.owned else client

    def run(self, entries: list[Entry]) -> Iterator[dict]:
        """Submit every entry; yield records as they finish. If the consumer stops early
        (Ctrl-C) the runs not finished are cancelled (a run already on a worker ends at
        its own wall limit)."""
        from distributed import KilledWorker, as_completed

        blobs = self._ship(entries)
        batch = uuid.uuid4().hex[:12]
        futures = {self.client.submit(run_entry, entry, {path: blobs[path] for path in entry.needs()},
                                      key=f"sandbox-batch-{batch}-{index}", pure=False): entry
                   for index, entry in enumerate(entries)}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except KilledWorker as error:  # workers died running it, as many times as Dask allows
                    yield make_record(futures[future], None, runner_error=f"KilledWorker: {error}")
        finally:
            self.client.cancel(list(futures))

    def _ship(self, entries: list[Entry]) -> dict[str, object]:
        """Each host file the entries need, sent to the cluster once: path -> its future."""
        shipped = {}
        for path in sorted({path for entry in entries for path in entry.needs()}):
            with open(path, "rb") as f:
                shipped[path] = self.client.scatter(f.read(), hash=True)
        return shipped

    def close(self) -> None:
        """Close the client if this pool connected it."""
        if self.owned:
            self.client.close()
