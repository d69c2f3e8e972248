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


def symbol(program: Path, name: str) -> int:
    """A symbol's address, from the ELF's symbol table."""
    from elftools.elf.elffile import ELFFile

    with open(program, "rb") as f:
        return ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)[0]["st_value"]


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


def gdb_batch(program: Path | None, port: int, *commands: str, before: tuple[str, ...] = ()) -> str:
    """Run gdb on `program` (None: gdb reads it from the target) against the stub, with
    `before` run before connecting; its whole output."""
    args = [require_tool("gdb"), "-batch", "-nx", "-ex", "set confirm off", *([str(program)] if program else [])]
    for command in before:
        args += ["-ex", command]
    args += ["-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    done = subprocess.run(args, capture_output=True, timeout=PATIENCE)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def session(program: Path, *commands: str, args: tuple[str, ...] = (),
            mounted: bool = False) -> tuple[str, int, bytes, bytes]:
    """gdb in batch mode against a stub running `program`: (gdb's output, the sandbox's
    status, the guest's stdout, the sandbox's stderr). `mounted`: the program's directory
    is in the guest's view too (for a program that execs its neighbours)."""
    where = program.parent
    stub = Stub(program, *args, options=("--mount", f"{where}:{where}:ro") if mounted else ())
    output = gdb_batch(program, stub.port, *commands)
    status, out, err = stub.finish()
    return output, status, out, err


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

    def ask_binary(self, payload: bytes) -> bytes:
        """`ask`, the reply's escaped bytes (`}x` for x ^ 0x20) decoded."""
        reply = self.ask(payload)
        out, escaped = bytearray(), False
        for byte in reply:
            if escaped:
                out.append(byte ^ 0x20)
                escaped = False
            elif byte == 0x7D:
                escaped = True
            else:
                out.append(byte)
        return bytes(out)

    def kill(self) -> None:
        """k: the stub kills the guest and closes the connection (no reply)."""
        self.sock.sendall(frame(b"k"))
        while self.sock.recv(65536):
            pass
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
