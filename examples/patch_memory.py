"""Read and write a process's memory by virtual address (sandbox.api).

A hook on write(2) reads the guest's buffer and writes it back in capitals, through the
process's own page tables; an unmapped address is a clean Python exception.
"""

from sandbox import api

STDOUT = 1

with api.Sandbox(memory=64 << 20, timeout=30) as sb:
    def shout(call: api.SyscallCall) -> None:
        fd, buf, count = call.args[:3]
        if fd == STDOUT:
            sb.write_memory(buf, sb.read_memory(buf, count).upper())

    sb.hook_syscall("write", on_enter=shout)
    result = sb.run("/bin/busybox", ["echo", "hello from the guest"], capture=True)
    print("stdout:", result.stdout)
    try:
        sb.read_memory(0x10, 8)
    except api.MemoryAccessError as error:
        print("error:", error)
