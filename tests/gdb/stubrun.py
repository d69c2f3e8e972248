"""Helpers for the gdb stub's tests: build the guests, start `sandbox run --gdb 0`, drive it
with Debian's gdb in batch mode or with a raw protocol client."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, require_tool

SOURCES = Path(__file__).resolve().parent / "guests"
#: Seconds any one step may take before the test fails (a hang is a failure, not a wait).
PATIENCE = 60


def build(out: Path, name: str, static: bool = True, flags: tuple[str, ...] = ()) -> Path:
    """tests/gdb/guests/NAME.c built with debugging information, unoptimized (so that
    locals and lines are as written)."""
    program = out / name
    flags = (*flags, "-static") if static else flags
    subprocess.run([require_tool("gcc"), *flags, "-g", "-O0", "-w", "-o", str(program), str(SOURCES / f"{name}.c")],
                   check=True)
    return program


class Stub:
    """`sandbox run --gdb 0 PROG ARGS...` started, its port read from its stderr."""

    def __init__(self, program: Path, *args: str, options: tuple[str, ...] = ()) -> None:
        command = [sys.executable, "-m", "sandbox", "run", "--gdb", "0", *options, str(program), *args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stderr.readline().decode()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert found, f"no port in {line!r}"
        self.port = int(found.group(1))

    def finish(self) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, the rest of stderr) once the sandbox ended."""
        out, err = self.process.communicate(timeout=PATIENCE)
        return self.process.returncode, out, err


def gdb_batch(program: Path, port: int, *commands: str) -> str:
    """Run gdb on `program` against the stub; its whole output."""
    args = [require_tool("gdb"), "-batch", "-nx", "-ex", "set confirm off", str(program),
            "-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    done = subprocess.run(args, capture_output=True, timeout=PATIENCE)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def frame(payload: bytes) -> bytes:
    return b"$" + payload + b"#%02x" % (sum(payload) & 0xFF)


class Client:
    """A raw remote-protocol client, for what gdb itself would never send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """The next packet's payload (acks before it skipped); acknowledged."""
        while True:
            match = re.search(rb"\$([^#]*)#([0-9a-f]{2})", self.buffer)
            if match:
                self.buffer = self.buffer[match.end():]
                self.sock.sendall(b"+")
                return match.group(1)
            data = self.sock.recv(65536)
            assert data, "the stub closed the connection"
            self.buffer += data

    def acks(self) -> bytes:
        """The acks received so far (+ or -), waiting briefly for one."""
        deadline = time.monotonic() + PATIENCE
        while not re.match(rb"^[+-]", self.buffer) and time.monotonic() < deadline:
            self.buffer += self.sock.recv(65536)
        ack, self.buffer = self.buffer[:1], self.buffer[1:]
        return ack

    def ask(self, payload: bytes) -> bytes:
        self.sock.sendall(frame(payload))
        return self.reply()

    def kill(self) -> None:
        """k: the stub kills the guest and closes the connection (no reply)."""
        self.sock.sendall(frame(b"k"))
        while self.sock.recv(65536):
            pass
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
