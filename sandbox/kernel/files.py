"""File descriptor tables and the files behind them.

For now the only files are the host's standard streams, passed through: the guest's
stdin/stdout/stderr are the sandbox's own. A file raises `SyscallError` for what it cannot do.
"""

from __future__ import annotations

import errno
import os

from sandbox.errors import SyscallError

MAX_FDS = 1024  # RLIMIT_NOFILE's usual soft limit


class File:
    """An open file description: what read/write do on it."""

    name = "?"

    def read(self, n: int) -> bytes:
        raise SyscallError(errno.EBADF, f"{self.name} is not open for reading")

    def write(self, data: bytes) -> int:
        raise SyscallError(errno.EBADF, f"{self.name} is not open for writing")

    def close(self) -> None:
        """Called when the last descriptor referring to this file closes."""


class HostStream(File):
    """One of the host's standard streams (fd 0, 1 or 2), shared with the guest."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.name = ("stdin", "stdout", "stderr")[fd] if fd < 3 else f"host fd {fd}"

    def read(self, n: int) -> bytes:
        try:
            return os.read(self.fd, n)
        except OSError as error:
            raise SyscallError(error.errno or errno.EIO, str(error)) from None

    def write(self, data: bytes) -> int:
        """Write all of `data` (a short write only on error after some progress)."""
        done = 0
        view = memoryview(data)
        while done < len(data):
            try:
                done += os.write(self.fd, view[done:])
            except OSError as error:
                if done:
                    break
                raise SyscallError(error.errno or errno.EIO, str(error)) from None
        return done


class FdTable:
    """A process's descriptors: small integers naming open files."""

    def __init__(self) -> None:
        self._files: dict[int, File] = {}

    @classmethod
    def with_stdio(cls) -> FdTable:
        """fds 0, 1, 2 bound to the host's standard streams."""
        table = cls()
        for fd in range(3):
            table._files[fd] = HostStream(fd)
        return table

    def get(self, fd: int) -> File:
        """The file behind `fd`, or EBADF."""
        try:
            return self._files[fd]
        except KeyError:
            raise SyscallError(errno.EBADF, f"fd {fd} is not open") from None

    def install(self, file: File, lowest: int = 0) -> int:
        """Bind `file` to the lowest free descriptor >= `lowest`; EMFILE if none."""
        fd = lowest
        while fd in self._files:
            fd += 1
        if fd >= MAX_FDS:
            raise SyscallError(errno.EMFILE, "too many open files")
        self._files[fd] = file
        return fd

    def close(self, fd: int) -> None:
        """Release `fd`; EBADF if it was not open."""
        file = self._files.pop(fd, None)
        if file is None:
            raise SyscallError(errno.EBADF, f"fd {fd} is not open")
        if file not in self._files.values():
            file.close()

    def close_all(self) -> None:
        """Close every descriptor (process exit)."""
        for fd in list(self._files):
            self.close(fd)
