"""Several inferiors (issue 18, round four): with `set detach-on-fork off` gdb keeps a
forked child as inferior 2 beside its parent. Breakpoints hit in either, `info inferiors`
lists both, each is continued alone (the other stays stopped) or both together
(`schedule-multiple`), one is killed or detached while the other goes on, and the guest's
output and statuses are a native run's. Also the raw packets: thread lists across
processes, p<pid>.<tid> thread ids, vCont per process, vKill;PID, D;PID, Ctrl-C while the
resumed process sleeps waiting for the held one."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_native
from tests.gdb.stubrun import Client, Stub, build, session, symbol

TWINS_OUT = b"child 40\nparent 2, child exited 5\n"
KEEP = "set detach-on-fork off"


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("gdb")
    return build(tmp_path_factory.mktemp("gdbinf"), "twins")


def test_break_in_both_and_continue_each_to_its_exit(twins: Path) -> None:
    output, status, out, _ = session(twins, KEEP, "break work", "continue", "info inferiors", "inferior 2",
                                  "continue", "print n", "bt", "continue", "inferior 1", "print n", "continue")
    assert "Thread 1.1 hit Breakpoint 1.1, work (n=1)" in output, output  # the parent; the child waits
    inferiors = re.findall(r"^\*? +(\d) +process (\d+) ", output, re.M)
    assert [number for number, _ in inferiors[:2]] == ["1", "2"], output
    child = inferiors[1][1]
    assert "Thread 2.1 hit Breakpoint 1.2, work (n=20)" in output
    assert "$1 = 20" in output and "$2 = 1" in output  # each inferior's own frame
    assert f"[Inferior 2 (process {child}) exited with code 05]" in output
    assert "[Inferior 1 (process 2) exited normally]" in output
    assert "internal-error" not in output
    native = run_native([str(twins)])
    assert (status, out) == (native.returncode, native.stdout) == (0, TWINS_OUT)


def test_schedule_multiple_runs_both(twins: Path) -> None:
    output, status, out, _ = session(twins, KEEP, "set schedule-multiple on", "break work", "continue", "continue",
                                  "delete", "continue", "inferior 1", "continue")
    assert "hit Breakpoint 1.1, work (n=1)" in output and "hit Breakpoint 1.2, work (n=20)" in output, output
    assert re.search(r"\[Inferior 2 \(process \d+\) exited with code 05\]", output)
    assert "[Inferior 1 (process 2) exited normally]" in output
    assert (status, out) == (0, TWINS_OUT)


def test_kill_one_inferior_the_other_goes_on(twins: Path) -> None:
    """`kill inferior 2` (vKill;PID): the child dies of SIGKILL, its parent's wait sees
    that (WEXITSTATUS 0), as natively."""
    output, status, out, _ = session(twins, KEEP, "break work", "continue", "kill inferior 2", "info inferiors",
                                  "continue")
    assert re.search(r"^ +2 +<null> ", output, re.M), output
    assert "[Inferior 1 (process 2) exited normally]" in output
    assert (status, out) == (0, b"parent 2, child exited 0\n")


def test_follow_the_child_then_detach_the_parent(twins: Path) -> None:
    output, status, out, _ = session(twins, KEEP, "set follow-fork-mode child", "break work", "continue",
                                  "detach inferior 1", "info inferiors", "continue")
    assert "Thread 2.1 hit Breakpoint 1.2, work (n=20)" in output, output
    assert "[Inferior 1 (process 2) detached]" in output
    assert re.search(r"\[Inferior 2 \(process \d+\) exited with code 05\]", output)
    assert (status, out) == (0, TWINS_OUT)  # the parent, let go, ran to its end


def test_two_processes_packets(twins: Path) -> None:
    stub = Stub(twins)
    client = Client(stub.port)
    client.ask(b"qSupported:multiprocess+;fork-events+")
    found = re.match(rb"T05thread:p2\.2;fork:p([0-9a-f]+)\.\1;", client.ask(b"vCont;c:p2.-1"))
    assert found
    child = found.group(1)
    assert client.ask(b"qfThreadInfo") == b"mp2.2,p%s.%s" % (child, child)
    assert client.ask(b"Hgp%s.%s" % (child, child)) == b"OK"
    assert client.ask(b"qC") == b"QCp2.2"  # the stop's thread
    assert client.ask(b"qXfer:exec-file:read:%s:0,1000" % child) == b"l" + str(twins).encode()
    assert client.ask(b"qXfer:exec-file:read:63:0,1000") == b"E01"  # not a process gdb debugs
    assert client.ask(b"Hcp2.2") == b"OK"
    proc_self = b"/proc/self".hex().encode()
    for pid in (child, b"2"):  # vFile:setfs: whose view the files are read in
        assert client.ask(b"vFile:setfs:%s" % pid) == b"F0"
        expected = str(int(pid, 16)).encode()
        assert client.ask_binary(b"vFile:readlink:%s" % proc_self) == b"F%x;%s" % (len(expected), expected)
    assert client.ask(b"vFile:setfs:63") == b"F-1,16"  # not a process gdb debugs
    for bad in (b"vCont;c:p63.-1", b"vCont;c:p63.63", b"vKill;zz"):
        assert client.ask(bad) == b"E01", bad
    # the parent runs, into waitpid for the held child: no stop comes, nor a spin
    client.send_raw(b"$vCont;c:p2.-1#10")
    assert client.acks() == b"+"
    time.sleep(0.5)
    client.send_raw(b"\x03")
    assert client.reply().startswith(b"T02thread:p2.2;")
    assert client.ask(b"vKill;%s" % child) == b"OK"  # the child dies; gdb hears no more of it
    assert client.ask(b"qfThreadInfo") == b"mp2.2"
    assert client.ask(b"D;%s" % child) == b"E01"
    assert client.ask(b"vCont;c") == b"W00;process:2"
    status, out, _ = stub.finish()
    assert (status, out) == (0, b"parent 2, child exited 0\n")


def test_child_exits_while_the_parent_is_held(twins: Path) -> None:
    """The child, resumed alone, runs to its end; the parent (held) then goes on and
    reaps it. Then detach of the one left ends the session with the guest let go."""
    stub = Stub(twins)
    client = Client(stub.port)
    client.ask(b"qSupported:multiprocess+;fork-events+")
    child = re.match(rb"T05thread:p2\.2;fork:p([0-9a-f]+)\.", client.ask(b"vCont;c:p2.-1")).group(1)
    assert client.ask(b"vCont;c:p%s.-1" % child) == b"W05;process:%s" % child
    assert client.ask(b"qfThreadInfo") == b"mp2.2"
    assert client.ask(b"D;2") == b"OK"
    client.close()
    status, out, _ = stub.finish()
    assert (status, out) == (0, TWINS_OUT)


def test_gdb_gone_with_both_held_lets_both_run(twins: Path) -> None:
    """A client that goes away while it holds both (one with a breakpoint inserted): both
    run on, undebugged, to their native ends."""
    stub = Stub(twins)
    client = Client(stub.port)
    client.ask(b"qSupported:multiprocess+;fork-events+")
    child = re.match(rb"T05thread:p2\.2;fork:p([0-9a-f]+)\.", client.ask(b"vCont;c:p2.-1")).group(1)
    assert client.ask(b"Hgp%s.%s" % (child, child)) == b"OK"
    assert client.ask(b"Z0,%x,1" % symbol(twins, "work")) == b"OK"
    client.close()
    status, out, _ = stub.finish()
    assert (status, out) == (0, TWINS_OUT)
