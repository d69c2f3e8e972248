"""`--dask ADDRESS`: the same `run_entry` on the workers of a Dask distributed cluster.

Each worker needs the sandbox installed (the same version). The program, the stdin file
and the `files` of every entry are read here and sent to the cluster as bytes, once per
distinct content (`Client.scatter(hash=True)`); a worker writes them into the run's
private directory and runs them there. `mounts` are not shipped: their host paths must
exist on every worker (a shared file system). A shipped file is held in memory here, so each
is at most MAX_SHIPPED bytes; a larger one belongs on a shared path, given as a mount.
Dask is imported only here, on this path: its import costs about a second.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from sandbox.batch.manifest import Entry
from sandbox.batch.record import make_record
from sandbox.batch.runner import run_entry

#: The largest file shipped to the workers as bytes.
MAX_SHIPPED = 64 << 20
#: Seconds to wait for the scheduler unless DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT says.
CONNECT_TIMEOUT = 5
CONNECT_SETTING = "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"


class DaskPool:
    """Runs on a Dask cluster: `client` is a `distributed.Client`, or the scheduler's
    address (tcp://host:8786) to connect one to, closed by `close`."""

    def __init__(self, client: object) -> None:
        from distributed import Client

        self.owned = not isinstance(client, Client)
        #: Connecting waits CONNECT_TIMEOUT seconds, or Dask's distributed.comm.timeouts.connect
        #: when the environment sets it (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=60s).
        timeout = None if os.environ.get(CONNECT_SETTING) else CONNECT_TIMEOUT
        self.client = Client(client, timeout=timeout) if self.owned else client

    def check(self, entries: list[Entry]) -> None:
        """OSError naming the first file too large to ship."""
        for path in sorted({path for entry in entries for path in entry.needs()}):
            size = os.stat(path).st_size
            if size > MAX_SHIPPED:
                raise OSError(f"{path}: {size >> 20} MiB is over the {MAX_SHIPPED >> 20} MiB --dask ships as "
                              f"bytes; put it on a path every worker sees and give it in `mounts`")

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
                data = f.read(MAX_SHIPPED + 1)
            if len(data) > MAX_SHIPPED:  # grew after check()
                raise OSError(f"{path}: over the {MAX_SHIPPED >> 20} MiB --dask ships as bytes")
            shipped[path] = self.client.scatter(data, hash=True)
        return shipped

    def close(self) -> None:
        """Close the client if this pool connected it."""
        if self.owned:
            self.client.close()
