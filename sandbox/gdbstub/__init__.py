"""A GDB remote stub: `sandbox run --gdb PORT PROG` lets Debian's gdb debug the guest.

The GDB remote serial protocol over TCP on 127.0.0.1 (one client), stopping before the
program's first instruction. What is where:

- protocol.py: packet framing, checksums, acks, Ctrl-C, bounded buffers;
- packets.py: one handler per packet (registers, memory, breakpoints, resume, queries);
- registers.py: the target description (gdb's amd64 features) and register access in a task;
- memory.py: guest memory by virtual address through the process's own page tables;
- points.py: breakpoints (code hooks, memory never patched) and watchpoints (memory hooks);
- xfer.py: qXfer objects: auxv, exec-file, libraries-svr4 (the dynamic linker's list);
- vfile.py: Host I/O (vFile): the files gdb reads, through the sandbox's own view of them;
- stub.py: the session (every process gdb debugs: fork children it keeps are inferiors
  of their own), and the hooks through which the kernel's run loop stops for gdb.

The stub sits at the api layer: it imports the kernel, machine and mm; nothing below it
imports it. A kernel without a stub pays one `is None` test per quantum and per fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.api import Sandbox
    from sandbox.gdbstub.stub import GdbStub


def attach(sandbox: Sandbox, port: int, wait_again: bool = False) -> tuple[GdbStub, int]:
    """Listen on 127.0.0.1:`port` (0: a free one) for gdb and make the sandbox's next run
    wait for it before its first instruction. (the stub, the port listened on). OSError if
    the port cannot be had."""
    from sandbox.gdbstub.protocol import listen
    from sandbox.gdbstub.stub import GdbStub

    server = listen(port)
    stub = GdbStub(sandbox.kernel, server, wait_again)
    sandbox.kernel.debugger = stub
    return stub, server.getsockname()[1]
