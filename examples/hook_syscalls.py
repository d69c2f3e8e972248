"""Hook system calls (sandbox.api): fake getuid, deny opening one file."""

import errno

from sandbox import api

DENIED = b"/etc/hostname"

with api.Sandbox(memory=64 << 20, timeout=30) as sb:
    def root(call: api.SyscallCall) -> None:
        call.result = 0  # on exit: replace what the call returned

    def deny(call: api.SyscallCall) -> None:
        path = sb.read_memory(call.args[1], len(DENIED) + 1)
        if path == DENIED + b"\0":
            call.result = -errno.EACCES  # on entry: skip the handler, return this

    sb.hook_syscall("getuid", on_exit=root)
    sb.hook_syscall("geteuid", on_exit=root)
    sb.hook_syscall("openat", on_enter=deny)
    result = sb.run("/bin/busybox", ["sh", "-c", "id -u; cat /etc/hostname"], capture=True)
    print("stdout:", result.stdout)
    print("stderr:", result.stderr)
    print("status:", result.status)
