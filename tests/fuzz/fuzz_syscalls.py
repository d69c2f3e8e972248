"""Coverage-guided fuzzing of the system-call layer (atheris): any number and arguments for
a loaded (not running) process must return an int or raise SyscallError / WouldBlock, or
OutOfMemory (the kernel's run loop turns it into an OOM kill); any other exception is a bug.
Run by `make fuzz`."""

import os
import struct
import sys

import atheris

with atheris.instrument_imports():
    from sandbox.api import Sandbox
    from sandbox.errors import OutOfMemory, SyscallError, WouldBlock
    from sandbox.kernel.files import DeviceFile
    from sandbox.kernel.syscalls import TABLE

GUEST = os.path.join(os.path.dirname(__file__), "..", "..", "guests", "build", "hello")
SKIP = {"exit", "exit_group", "execve", "execveat", "rt_sigreturn", "fork", "vfork", "clone"}
NUMBERS = sorted(nr for nr, entry in TABLE.items() if entry.name not in SKIP)

sandbox = Sandbox(memory=32 << 20, max_processes=4)
sandbox.kernel.spawn(GUEST, [GUEST])
proc = sandbox.kernel.current
for fd in range(3):  # the guest's standard streams go nowhere, not to the fuzzer's terminal
    proc.files.replace(fd, DeviceFile("null", 2, sandbox.kernel.random_bytes))
sandbox.kernel.sched.switch_to(proc)


def test_one(data: bytes) -> None:
    if len(data) < 50:
        return
    nr = NUMBERS[data[0] % len(NUMBERS)]
    args = struct.unpack_from("<6Q", data, 1)
    entry = TABLE[nr]
    try:
        result = entry.handler(proc, *args[: len(entry.args)])
    except (SyscallError, WouldBlock, OutOfMemory):
        return
    assert isinstance(result, int), f"{entry.name} returned {result!r}"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
