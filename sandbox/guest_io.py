"""The guest's standard streams as the Python API binds them (`Sandbox.run`'s stdin, capture,
on_stdout and on_stderr): fd 0 fed from bytes or asked of a callback, and fds 1 and 2 kept as
bytes or handed to a callback."""

from __future__ import annotations

import stat
from collections.abc import Callable

from sandbox.kernel.files import O_RDONLY, O_WRONLY, POLLIN, POLLOUT, File, Stat
from sandbox.kernel.process import ThreadGroup

#: Bytes a captured stream keeps (run's `capture_limit`): a guest may write without end, so
#: what comes beyond is counted in RunResult.dropped and discarded; the guest's write still
#: succeeds, as a write to a file nobody reads would. A callback (on_stdout) keeps nothing.
CAPTURE_LIMIT = 16 << 20


class InputBytes(File):
    """The guest's stdin fed from bytes: reads take them in order, then see end of file.
    It behaves as a pipe whose writer has written everything and left."""

    name = "stdin"

    def __init__(self, data: bytes) -> None:
        super().__init__(O_RDONLY)
        self._data = bytes(data)
        self._offset = 0

    def read(self, n: int) -> bytes:
        chunk = self._data[self._offset : self._offset + n]
        self._offset += len(chunk)
        return chunk

    def poll(self, events: int) -> int:
        return events & POLLIN  # data, or end of file: a read never waits

    def queued_bytes(self) -> int:
        return len(self._data) - self._offset

    def stat(self) -> Stat:
        return Stat(mode=stat.S_IFIFO | 0o600)


#: What stdin= may be: bytes (then end of file), or a callback asked on each read.
StdinSource = bytes | Callable[[int], bytes] | None


class InputCallback(File):
    """The guest's stdin asked of `callback(n)` on each read: it returns at most `n` bytes
    (the read's count), b"" for end of file. A read never waits in the guest: whatever the
    callback returns is the read's answer, as if it had typed that much on a terminal, so
    poll and select report fd 0 readable at all times (a guest that polls before reading
    then reads, and the callback is asked). Like a terminal, an end of file is no promise:
    the next read asks again. What the callback raises ends the run and is raised from
    `Sandbox.run`, as for on_stdout; a result that is not bytes, or longer than `n`, ends
    it with ValueError."""

    name = "stdin"

    def __init__(self, callback: Callable[[int], bytes]) -> None:
        super().__init__(O_RDONLY)
        self.callback = callback

    def read(self, n: int) -> bytes:
        data = self.callback(n)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"stdin callback: must return bytes, not {type(data).__name__}")
        if len(data) > n:
            raise ValueError(f"stdin callback: returned {len(data)} bytes for a read of at most {n}")
        return bytes(data)

    def poll(self, events: int) -> int:
        return events & POLLIN  # the callback answers every read: one never waits

    def queued_bytes(self) -> int:
        return 0  # FIONREAD: nothing is queued until a read asks the callback

    def stat(self) -> Stat:
        return Stat(mode=stat.S_IFIFO | 0o600)


class OutputCapture(File):
    """A guest's stdout or stderr kept as bytes (at most `limit`, see CAPTURE_LIMIT), or
    given to `callback(bytes)` write by write. Shared across fork, like any description."""

    def __init__(self, name: str, limit: int, callback: Callable[[bytes], object] | None) -> None:
        super().__init__(O_WRONLY)
        self.name = name
        self.limit, self.callback = limit, callback
        self.data = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> int:
        if self.callback is not None:
            self.callback(bytes(data))
            return len(data)
        kept = max(0, min(len(data), self.limit - len(self.data)))
        self.data += data[:kept]
        self.dropped += len(data) - kept
        return len(data)

    def poll(self, events: int) -> int:
        return events & POLLOUT  # never full: beyond the limit bytes are dropped

    def stat(self) -> Stat:
        return Stat(mode=stat.S_IFIFO | 0o600)


def redirect_streams(proc: ThreadGroup, stdin: StdinSource, capture: bool, on_stdout: Callable[[bytes], object] | None,
              on_stderr: Callable[[bytes], object] | None, limit: int) -> dict[int, File]:
    """Bind the new process's fds 0, 1, 2 as run() was asked; {fd: file} of those bound."""
    streams: dict[int, File] = {}
    if callable(stdin):
        streams[0] = InputCallback(stdin)
    elif stdin is not None:
        streams[0] = InputBytes(stdin)
    for fd, name, callback in ((1, "stdout", on_stdout), (2, "stderr", on_stderr)):
        if capture or callback is not None:
            streams[fd] = OutputCapture(name, limit, callback)
    for fd, file in streams.items():
        proc.files.replace(fd, file)
    return streams


def captured_bytes(stream: File | None) -> bytes | None:
    """What a captured stream kept (None if not captured, or given to a callback)."""
    if isinstance(stream, OutputCapture) and stream.callback is None:
        return bytes(stream.data)
    return None
