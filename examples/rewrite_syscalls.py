"""Change a system call's arguments from a hook (sandbox.api): every open of /etc/hostname
opens another file instead (the path argument rewritten in guest memory), and every write
to stdout is cut to at most 4 bytes (the count argument changed), which the guest sees as
short writes and finishes by writing again."""

import os
import tempfile

from sandbox import api

WANTED, INSTEAD = b"/etc/hostname\0", b"/data/name\0"  # the new path must fit in the old one's bytes
CHUNK = 4

with tempfile.TemporaryDirectory() as data, api.Sandbox(memory=64 << 20, timeout=30,
                                                         mounts=[f"{data}:/data:ro"]) as sb:
    with open(os.path.join(data, "name"), "w") as f:
        f.write("not the hostname\n")

    def redirect(call: api.SyscallCall) -> None:
        """openat(dirfd, path, ...): args[1] points at the path the guest passed."""
        if sb.read_memory(call.args[1], len(WANTED)) == WANTED:
            sb.write_memory(call.args[1], INSTEAD)  # the guest's own copy of the path changes

    def shorten(call: api.SyscallCall) -> None:
        """write(fd, buf, count): on fd 1, a smaller count."""
        if call.args[0] == 1:
            call.args[2] = min(call.args[2], CHUNK)

    writes: list[bytes] = []
    sb.hook_syscall("openat", on_enter=redirect)
    sb.hook_syscall("write", on_enter=shorten)
    script = 'read name </etc/hostname; echo "read: $name"'
    result = sb.run("/bin/busybox", ["sh", "-c", script], on_stdout=writes.append)
    print("writes:", writes)
    print("status:", result.status)
