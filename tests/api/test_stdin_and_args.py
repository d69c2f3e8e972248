"""The Python API's two ways into a running guest beyond bytes: a stdin callback asked on
each read of fd 0 (examples/interactive_stdin.py), and system-call hooks that change a
call's arguments (examples/rewrite_syscalls.py); with the attacks on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import api
from sandbox.kernel.sys_io import MAX_TRANSFER
from tests.api.test_examples import BUSYBOX, example
from tests.conftest import build_c

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_c(HERE / "stdin_reader.c", tmp_path_factory.mktemp("stdin")))


@pytest.fixture
def sb():
    with api.Sandbox(memory=64 << 20, timeout=60) as sandbox:
        yield sandbox


class Feeder:
    """A stdin callback over fixed chunks: each read gets at most its count of what is left
    of the current chunk; b"" once they are all read. `asked` keeps each read's count."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks, self.asked = list(chunks), []

    def __call__(self, n: int) -> bytes:
        self.asked.append(n)
        if not self.chunks:
            return b""
        head, rest = self.chunks[0][:n], self.chunks[0][n:]
        self.chunks[0:1] = [rest] if rest else []
        return head


def test_interactive_example() -> None:
    assert example("interactive_stdin") == (
        "read(1023) -> b'echo hello from the shell\\n' (output so far: 0 writes)\n"
        "read(1023) -> b'x=$((6 * 7))\\n' (output so far: 1 writes)\n"
        "read(1023) -> b'echo the answer is $x\\n' (output so far: 1 writes)\n"
        "read(1023) -> b'exit 5\\n' (output so far: 2 writes)\n"
        "stdout: b'hello from the shell\\nthe answer is 42\\n'\nstatus: 5\n")


def test_callback_answers_each_read_and_fd0_polls_readable(sb: api.Sandbox, reader: str) -> None:
    feed = Feeder(b"hello", b"wor")
    result = sb.run(reader, [reader], stdin=feed, capture=True)
    assert result.stdout == (b"poll 1 POLLIN=1\nselect 1\nFIONREAD 0 0\nread 5: hello\nread 3: wor\n"
                             b"end 0 after 2 reads\n")
    assert feed.asked == [5, 5, 5]  # poll, select and FIONREAD asked nothing


def test_byte_at_a_time_reads_and_a_forked_reader(sb: api.Sandbox) -> None:
    feed = Feeder(b"first\nsecond\nthird\n")
    script = "read a; (read b; echo child: $b); read c; echo parent: $a $c"
    result = sb.run(BUSYBOX, ["sh", "-c", script], stdin=feed, capture=True)
    assert result.stdout == b"child: second\nparent: first third\n"
    assert set(feed.asked) == {1}  # the shell's read builtin takes a pipe byte by byte


def test_a_huge_read_asks_for_a_bounded_count(sb: api.Sandbox, reader: str) -> None:
    feed = Feeder(b"x" * 10)
    result = sb.run(reader, [reader, str(1 << 30)], stdin=feed, capture=True)
    assert result.stdout.endswith(b"read 10: xxxxxxxxxx\nend 0 after 1 reads\n")
    assert feed.asked[0] == min(1 << 30, MAX_TRANSFER)


@pytest.mark.parametrize(("answer", "error"), [
    (lambda n: b"y" * (n + 1), "returned 6 bytes for a read of at most 5"),
    (lambda n: "text", "must return bytes, not str"),
    (lambda n: None, "must return bytes, not NoneType"),
])
def test_bad_answers_end_the_run_with_value_error(sb: api.Sandbox, reader: str, answer, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        sb.run(reader, [reader], stdin=answer, capture=True)
    assert sb.run(BUSYBOX, ["true"]).status == 0  # the sandbox is still usable


def test_callback_exception_is_raised_from_run(sb: api.Sandbox) -> None:
    class Refused(Exception):
        pass

    def refuse(n: int) -> bytes:
        raise Refused(n)

    with pytest.raises(Refused):
        sb.run(BUSYBOX, ["cat"], stdin=refuse, capture=True)
    result = sb.run(BUSYBOX, ["cat"], stdin=Feeder(b"again\n"), capture=True)
    assert result.stdout == b"again\n" and result.status == 0


def test_rewrite_example() -> None:
    assert example("rewrite_syscalls") == ("writes: [b'read', b': no', b't th', b'e ho', b'stna', b'me\\n']\n"
                                           "status: 0\n")


def test_guest_sees_a_rewritten_descriptor_argument(sb: api.Sandbox) -> None:
    """openat's dirfd (args[0]) replaced: a bad descriptor gives the guest EBADF; -100
    (AT_FDCWD, written signed) works as the unsigned value would."""
    def dirfd(value: int):
        def hook(call: api.SyscallCall) -> None:
            if sb.read_memory(call.args[1], 9) == b"hostname\0":
                call.args[0] = value
        return hook

    script = "cd /etc && cat hostname >/dev/null && echo opened"
    sb.hook_syscall("openat", on_enter=dirfd(99))
    result = sb.run(BUSYBOX, ["sh", "-c", script], capture=True)
    assert result.stdout == b"" and b"Bad file descriptor" in result.stderr
    sb.hook_syscall("openat", on_enter=dirfd(-100))
    assert sb.run(BUSYBOX, ["sh", "-c", script], capture=True).stdout == b"opened\n"


@pytest.mark.parametrize(("value", "error"), [
    (1 << 64, "does not fit a 64-bit register"),
    (-(1 << 63) - 1, "does not fit a 64-bit register"),
    ("3", "6 integers"),
    (3.0, "6 integers"),
])
def test_bad_argument_values_end_the_run(sb: api.Sandbox, value: object, error: str) -> None:
    def set_count(call: api.SyscallCall) -> None:
        call.args[2] = value

    sb.hook_syscall("write", on_enter=set_count)
    with pytest.raises(ValueError, match=error):
        sb.run(BUSYBOX, ["echo", "hi"], capture=True)
    sb.unhook_syscall("write")
    assert sb.run(BUSYBOX, ["echo", "hi"], capture=True).stdout == b"hi\n"
