"""Fork and exec events with Debian's gdb (issue 18, round two): `catch fork` sees the
child's pid, follow-fork-mode child debugs the child, `catch exec` stops at the new image
whose symbols, auxv and shared libraries gdb then reads, a pending breakpoint resolves in
the exec'd program, and a watchpoint does not fire on the kernel's own write (read()), as
natively. Also the multiprocess packets gdb never sends wrong, sent wrong."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_native
from tests.gdb import stubrun
from tests.gdb.stubrun import Client, Stub, build

#: gdb sessions with the program's directory in the guest's view (it execs its neighbours)
session = functools.partial(stubrun.session, mounted=True)

FORKER_OUT = b"child 40\nparent 2, child exited 5\n"


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tool("gdb")
    out = tmp_path_factory.mktemp("gdbev")
    built = {name: build(out, name) for name in ("forker", "execer", "watchread")}
    built["dyn"] = build(out, "dyn", static=False)
    return built


def test_catch_fork_sees_the_child_and_follows_the_parent(progs: dict[str, Path]) -> None:
    output, status, out, _ = session(progs["forker"], "catch fork", "continue", "info inferiors", "continue")
    caught = re.search(r"Catchpoint 1 \(forked process (\d+)\), .* in _Fork \(\)", output)
    assert caught, output
    assert f"[Detaching after fork from child process {caught.group(1)}]" in output
    assert "exited normally" in output
    native = run_native([str(progs["forker"])])
    assert (status, out) == (native.returncode, native.stdout) == (0, FORKER_OUT)


def test_follow_fork_mode_child_stops_in_the_child(progs: dict[str, Path]) -> None:
    output, status, out, _ = session(progs["forker"], "set follow-fork-mode child", "break work", "continue",
                                  "print n", "bt", "continue")
    assert re.search(r"\[Detaching after fork from parent process \d+\]", output), output
    assert "hit Breakpoint 1, work (n=20)" in output  # in the child; the parent's work(1) is not
    assert "$1 = 20" in output
    assert "in main () at" in output
    assert re.search(r"\[Inferior 2 \(process \d+\) exited with code 05\]", output)
    assert (status, out) == (0, FORKER_OUT)  # the parent, let go, ran to its end


def test_catch_exec_reloads_symbols_and_auxv(progs: dict[str, Path]) -> None:
    dyn = str(progs["dyn"])
    output, status, out, _ = session(progs["execer"], "catch exec", "continue", "info auxv", "break greet",
                                  "continue", "bt", "info sharedlibrary", "continue", args=(dyn,))
    assert f"is executing new program: {dyn}" in output
    assert f"Catchpoint 1 (exec'd {dyn}), " in output
    assert "in _start () from target:/lib64/ld-linux" in output  # read through vFile
    base = re.search(r"AT_BASE +Base address of interpreter +(0x[0-9a-f]+)", output)
    assert base and int(base.group(1), 16) != 0  # the dynamic program's auxv, not the static one's
    assert "Breakpoint 2, greet (who=" in output and "in main () at" in output
    assert "libc.so.6" in output
    assert "exited with code 04" in output
    native = run_native([str(progs["execer"]), dyn])
    assert (status, out) == (native.returncode, native.stdout) == (4, f"execing {dyn}\nhello from a dynamic program\n"
                                                                   .encode())


def test_pending_breakpoint_resolves_after_exec(progs: dict[str, Path]) -> None:
    dyn = str(progs["dyn"])
    output, status, _, _ = session(progs["execer"], "set breakpoint pending on", "break greet", "continue", "continue",
                                args=(dyn,))
    assert "Breakpoint 1, greet (who=" in output
    assert "exited with code 04" in output
    assert status == 4


def test_watchpoint_does_not_see_the_kernels_write(progs: dict[str, Path]) -> None:
    """Natively (Linux 6, gdb 13) a hardware watchpoint does not fire when read() fills the
    watched byte: the next stop is the program's own write, and gdb's old value is the one
    before read(). The stub matches."""
    output, status, out, _ = session(progs["watchread"], "break main", "continue", "watch buf[0]", "continue",
                                  "continue")
    assert "Old value = 0 '\\000'\nNew value = 122 'z'" in output
    assert "New value = 120 'x'" not in output
    assert "exited normally" in output
    assert (status, out) == (0, b"got x\nnow z\n")


def test_multiprocess_packets_attacked(progs: dict[str, Path]) -> None:
    stub = Stub(progs["forker"])
    client = Client(stub.port)
    supported = client.ask(b"qSupported:multiprocess+;fork-events+;exec-events+;vfork-events+")
    assert b"multiprocess+" in supported and b"fork-events+" in supported and b"exec-events+" in supported
    assert b"vfork-events+" in supported  # tests/gdb/test_gdb_vfork.py
    stop = client.ask(b"?")
    assert re.match(rb"T05thread:p2\.2;", stop), stop
    assert client.ask(b"qC") == b"QCp2.2"
    assert client.ask(b"qfThreadInfo") == b"mp2.2"
    for bad in (b"Hgpzz.1", b"Hgp2.zz", b"Hgp99.99", b"Hgp2.-"):
        assert client.ask(bad) == b"E01", bad
    assert client.ask(b"Hgp2.-1") == b"OK"
    assert client.ask(b"Tp2.2") == b"OK" and client.ask(b"Tp3.3") == b"E01"
    assert client.ask(b"D;99") == b"E01"  # no such process: nothing detached
    assert client.ask(b"D;zz") == b"E01"
    fork = client.ask(b"vCont;c:p2.-1")
    found = re.match(rb"T05thread:p2\.2;fork:p([0-9a-f]+)\.([0-9a-f]+);", fork)
    assert found, fork
    child = found.group(1)
    assert client.ask(b"qfThreadInfo") == b"mp2.2,p%s.%s" % (child, child)
    assert client.ask(b"Hgp%s.%s" % (child, child)) == b"OK"
    assert client.ask(b"Z0,401000,1") == b"OK"  # in the child's copy: nothing to patch
    assert client.ask(b"D;%s" % child) == b"OK"  # follow the parent
    assert client.ask(b"qfThreadInfo") == b"mp2.2"
    assert client.ask(b"vCont;c") == b"W00;process:2"
    assert stub.finish()[:2] == (0, FORKER_OUT)
