"""Feed a guest's stdin from bytes and capture its stdout and stderr (sandbox.api)."""

from sandbox import api

with api.Sandbox(memory=64 << 20, timeout=30) as sb:
    script = "read name; echo hello, $name; echo to stderr >&2; exit 3"
    result = sb.run("/bin/busybox", ["sh", "-c", script], stdin=b"world\n", capture=True)
    print("status:", result.status)
    print("stdout:", result.stdout)
    print("stderr:", result.stderr)
    chunks = []
    sb.run("/bin/busybox", ["echo", "via a callback"], on_stdout=chunks.append)
    print("callback got:", b"".join(chunks))
