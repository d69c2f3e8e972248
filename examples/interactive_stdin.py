"""Drive an interactive guest from Python (sandbox.api): busybox sh reads its commands from
a function, one line per read, and the function sees what the shell printed before it
answers, as a person at a terminal would."""

from sandbox import api

COMMANDS = [b"echo hello from the shell\n", b"x=$((6 * 7))\n", b"echo the answer is $x\n", b"exit 5\n"]
seen: list[bytes] = []


def next_command(n: int) -> bytes:
    """The shell reads fd 0 asking for at most `n` bytes: give it the next line (b"" = end)."""
    line = COMMANDS.pop(0) if COMMANDS else b""
    print(f"read({n}) -> {line!r} (output so far: {len(seen)} writes)")
    return line[:n]


with api.Sandbox(memory=64 << 20, timeout=30) as sb:
    result = sb.run("/bin/busybox", ["sh"], stdin=next_command, on_stdout=seen.append)
    print("stdout:", b"".join(seen))
    print("status:", result.status)
