"""The examples/ scripts of the Python API run and print what they promise, and the API's
edges (bad addresses, bad hook values, bounded capture, the CLI's limits) fail cleanly."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import api
from sandbox.mm.vma import PROT_EXEC

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "/bin/busybox"
BUSYBOX_BASE = 0x400000  # its first PT_LOAD's address, file offset 0


def example(name: str) -> str:
    """Run examples/NAME.py; its stdout."""
    done = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_capture_output() -> None:
    assert example("capture_output") == ("status: 3\nstdout: b'hello, world\\n'\nstderr: b'to stderr\\n'\n"
                                         "callback got: b'via a callback\\n'\n")


def test_patch_memory() -> None:
    assert example("patch_memory") == ("stdout: b'HELLO FROM THE GUEST\\n'\n"
                                       "error: cannot read 8 bytes at 0x10: 0x10: no mapping\n")


def test_hook_syscalls() -> None:
    assert example("hook_syscalls") == ("stdout: b'0\\n'\nstderr: b\"cat: can't open '/etc/hostname': "
                                        "Permission denied\\n\"\nstatus: 1\n")


def test_trace_code() -> None:
    lines = example("trace_code").splitlines()
    assert lines[0].startswith("entry: 0x")
    assert lines[1].startswith(f"  {lines[0].split()[1]} + 0 size ")
    assert len(lines) > 4


@pytest.fixture
def sb():
    with api.Sandbox(memory=64 << 20, timeout=60) as sandbox:
        yield sandbox


def test_memory_attacks(sb: api.Sandbox) -> None:
    with pytest.raises(api.MemoryAccessError):
        sb.read_memory(0, 1)  # nothing run yet
    sb.run(BUSYBOX, ["true"])
    for va, n in ((-1, 4), (1 << 63, 4), ((1 << 47) - 2, 8), (0x1000, -1)):
        with pytest.raises(api.MemoryAccessError):
            sb.read_memory(va, n)
    text = next(r for r in sb.process.space.regions if r.prot & PROT_EXEC)
    with pytest.raises(api.MemoryAccessError):
        sb.write_memory(text.start, b"\xcc")  # the text is mapped read-only: refused, unchanged
    offset = text.start - BUSYBOX_BASE  # busybox is not position-independent: loaded at its base
    assert sb.read_memory(text.start, 4) == Path(BUSYBOX).read_bytes()[offset : offset + 4]


def test_bad_hook_values_end_the_run_with_the_error(sb: api.Sandbox) -> None:
    sb.hook_syscall("getpid", on_enter=lambda call: call.args.pop())
    with pytest.raises(ValueError, match="6 integers"):
        sb.run(BUSYBOX, ["sh", "-c", "echo $$"], capture=True)
    sb.hook_syscall("getpid", on_exit=lambda call: setattr(call, "result", "x"))
    with pytest.raises(ValueError, match="must be an int"):
        sb.run(BUSYBOX, ["sh", "-c", "echo $$"], capture=True)
    sb.unhook_syscall("getpid")
    assert sb.kernel.syscall_hooks is None
    with pytest.raises(ValueError):
        sb.hook_syscall("no_such_call")
    with pytest.raises(ValueError):
        sb.hook_code(10, 10, print)
    assert sb.run(BUSYBOX, ["true"]).status == 0  # the sandbox is still usable


def test_hook_sees_arguments_and_denies(sb: api.Sandbox) -> None:
    calls = []
    def deny(call: api.SyscallCall) -> None:
        calls.append(call.args[1])
        call.result = -errno.EPERM  # on entry: the handler never runs, the guest lives

    sb.hook_syscall("kill", on_enter=deny)
    result = sb.run(BUSYBOX, ["sh", "-c", "kill -9 $$; echo alive"], capture=True)
    assert calls == [9] and result.stdout == b"alive\n" and b"kill" in result.stderr


def test_exit_hook_after_a_sleep(sb: api.Sandbox) -> None:
    results = []
    sb.hook_syscall("wait4", on_exit=lambda call: results.append(call.result))
    result = sb.run(BUSYBOX, ["sh", "-c", "/bin/busybox true; echo done"], capture=True)
    assert result.stdout == b"done\n" and any(r > 0 for r in results)


def test_capture_is_bounded(sb: api.Sandbox) -> None:
    result = sb.run(BUSYBOX, ["sh", "-c", "yes | head -c 100000"], capture=True, capture_limit=1000)
    assert result.stdout == b"y\n" * 500 and result.dropped == 99000 and result.status == 0


def test_stdin_end_of_file_and_fork_share_capture(sb: api.Sandbox) -> None:
    result = sb.run(BUSYBOX, ["sh", "-c", "cat; (echo child); wc -c </dev/null"], stdin=b"", capture=True)
    assert result.stdout == b"child\n0\n"


def test_cli_limits_apply() -> None:
    result = api.run(BUSYBOX, ["sh", "-c", "while :; do :; done"], memory=64 << 20, max_instructions=5_000_000,
                     capture=True)
    assert result.status == 137 and "instruction" in (result.message or "")
