"""The trace's pieces on plain values (no guest, no Unicorn): strace's text for each."""

from __future__ import annotations

import io
import struct

import pytest

from sandbox import strace_flags as F
from sandbox import strace_format as S
from sandbox.syscall_decode import CLASSES, decode_entry, parse_trace_filter, result_text
from sandbox.trace import Tracer


@pytest.mark.parametrize(("data", "text"), [
    (b"hello\tworld\n", r'"hello\tworld\n"'),
    (b'"q" \\', r'"\"q\" \\"'),
    (b"\0\1\002\033x\177\200\377", r'"\0\1\2\33x\177\200\377"'),
    (b"\0" b"1", r'"\0001"'),  # an octal escape before a digit takes three digits
    (b"\r\v\f", r'"\r\v\f"'),
])
def test_quote_as_strace(data: bytes, text: str) -> None:
    assert S.quote(data) == text


def test_quote_forced_hex() -> None:
    assert S.quote(b"\x40\x00", force_hex=True) == r'"\x40\x00"'


@pytest.mark.parametrize(("value", "table", "text"), [
    (0o1101, F.OPEN_FLAGS, "O_CREAT|O_TRUNC|0x1"),
    (0, F.PROT_BITS, "0"),
    (3, F.PROT_BITS, "PROT_READ|PROT_WRITE"),
    (0x1200000, F.CLONE_BITS, "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID"),
])
def test_flags(value: int, table: F.Table, text: str) -> None:
    assert F.flags(value, table) == text


def test_modes_and_results() -> None:
    assert (S.mode(0o644), S.mode(0), S.mode(0o6), S.mode(0o1777)) == ("0644", "000", "006", "01777")
    assert S.file_mode(0o100644) == "S_IFREG|0644"
    assert S.file_mode(0o41777) == "S_IFDIR|S_ISVTX|0777"
    assert S.result(-2) == "-1 ENOENT (No such file or directory)"
    assert S.result((1 << 64) - 38) == "-1 ENOSYS (Function not implemented)"
    assert S.result(0x4AF000, "hex") == "0x4af000" and S.result(0o22, "oct") == "022"
    assert S.result(-4096) == "-4096"  # not an errno: Linux's errors stop at -4095
    assert S.kilo(8 << 20) == "8192*1024" and S.kilo(F.RLIM_INFINITY) == "RLIM64_INFINITY"


def test_signal_names_and_sets() -> None:
    assert [F.signal_name(s) for s in (11, 32, 35, 65)] == ["SIGSEGV", "SIGRTMIN", "SIGRT_3", "65"]
    assert S.sigset_bits(0) == "[]"
    assert S.sigset_bits(1 << 1 | 1 << 16) == "[INT CHLD]"
    assert S.sigset_bits(~(1 << 31 | 1 << 32) & (1 << 64) - 1) == "~[RTMIN RT_1]"


def test_siginfo_lines() -> None:
    fault = struct.pack("<iii4xQ", 11, 0, 1, 0x10).ljust(128, b"\0")
    assert S.siginfo(fault) == "{si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10}"
    user = struct.pack("<iii4xiI", 10, 0, 0, 7, 1000).ljust(128, b"\0")
    assert S.siginfo(user) == "{si_signo=SIGUSR1, si_code=SI_USER, si_pid=7, si_uid=1000}"
    child = struct.pack("<iii4xiIi4xqq", 17, 0, 1, 3, 0, 3, 0, 0).ljust(128, b"\0")
    assert S.siginfo(child) == ("{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=3, si_uid=0, si_status=3, "
                                "si_utime=0, si_stime=0}")


def test_bad_pointers_never_raise() -> None:
    """With no memory to read, every pointer argument is shown as its address."""
    texts, start = decode_entry(None, "openat", (F.AT_FDCWD & (1 << 64) - 1, 0xDEAD, 0o100, 0o600), ())
    assert (texts, start) == (["AT_FDCWD", "0xdead", "O_RDONLY|O_CREAT", "0600"], None)
    texts, _ = decode_entry(None, "write", (1, 0x10, 1 << 40), ())
    assert texts == ["1", "0x10", str(1 << 40)]
    texts, _ = decode_entry(None, "writev", (1, 8, 100000), ())
    assert texts == ["1", "0x8", "100000"]
    texts, _ = decode_entry(None, "execve", (8, 16, 24), ())
    assert texts == ["0x8", "0x10", "0x18"]
    assert decode_entry(None, "read", (3, 8, 10), ()) == (["3"], 1)


def test_calls_decoded_whole() -> None:
    texts, _ = decode_entry(None, "clone", (0x1200011, 0, 0, 0x4AF650, 0), ())
    assert texts == ["child_stack=NULL", "flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
                     "child_tidptr=0x4af650"]
    assert decode_entry(None, "futex", (0x1000, 129, 1, 0, 0, 0), ())[0] == ["0x1000", "FUTEX_WAKE_PRIVATE", "1"]
    texts, _ = decode_entry(None, "futex", (0x1000, 0x189, 0, 0, 0, 0xFFFFFFFF), ())
    assert texts == ["0x1000", "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME", "0", "NULL",
                     "FUTEX_BITSET_MATCH_ANY"]
    assert decode_entry(None, "fcntl", (3, 1, 0), ())[0] == ["3", "F_GETFD"]
    assert result_text(None, "fcntl", (3, 1, 0), 1) == "0x1 (flags FD_CLOEXEC)"
    assert decode_entry(None, "syscall_1000", (1, 2, 3, 4, 5, 6), None)[0] == ["0x1", "0x2", "0x3", "0x4", "0x5",
                                                                             "0x6"]
    assert result_text(None, "exit_group", (0,), 0) == "?"


def test_trace_filter_expressions() -> None:
    assert parse_trace_filter("openat,close") == {"openat", "close"}
    assert {"openat", "stat", "execve"} <= parse_trace_filter("%file")
    assert {"read", "close", "pipe2"} <= parse_trace_filter("%desc") and "brk" not in parse_trace_filter("%desc")
    assert "mmap" in parse_trace_filter("%memory") and "clone" in parse_trace_filter("%process")
    assert "socket" in parse_trace_filter("%network") and "rt_sigaction" in parse_trace_filter("%signal")
    every = parse_trace_filter("all")
    assert parse_trace_filter("!write") == every - {"write"}
    assert parse_trace_filter("/^rt_sig") >= {"rt_sigaction", "rt_sigprocmask"}
    assert set(CLASSES) >= {"file", "process", "memory", "network", "signal", "desc"}
    for bad in ("%nope", "no_such_call", "open,,bogus"):
        with pytest.raises(ValueError, match="unknown"):
            parse_trace_filter(bad)


def test_a_call_that_sleeps_is_cut_only_when_another_line_comes() -> None:
    out = io.StringIO()
    tracer = Tracer(out, True, False, live=lambda: 2, pid_column=False)
    tracer.enter(5, None, 0, None, (3, 0x1000, 1))
    tracer.blocked(5, None, (), "empty pipe")
    tracer.syscall(5, 0, None, (3, 0x1000, 1), 1)
    tracer.enter(5, None, 0, None, (3, 0x1000, 1))
    tracer.blocked(5, None, (), "empty pipe")
    tracer.enter(6, None, 39, None, ())
    tracer.syscall(6, 39, None, (), 6)
    tracer.syscall(5, 0, None, (3, 0x1000, 1), 1)
    assert out.getvalue().splitlines() == [
        "[pid     5] read(3, 0x1000, 1)          = 1 [not implemented]",
        "[pid     5] read(3,  <unfinished ...>",
        "[pid     6] getpid()                    = 6 [not implemented]",
        "[pid     5] <... read resumed>0x1000, 1) = 1 [not implemented]",
    ]


def test_a_filtered_trace_shows_only_the_chosen_calls() -> None:
    out = io.StringIO()
    tracer = Tracer(out, frozenset({"close"}), False, pid_column=True)
    for nr, args in ((0, (3, 0, 0)), (3, (3,))):
        tracer.enter(9, None, nr, None, args)
        tracer.syscall(9, nr, None, args, 0)
    assert out.getvalue() == "9     close(3)                          = 0 [not implemented]\n"
