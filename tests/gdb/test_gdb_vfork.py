"""vfork events with Debian's gdb (issue 18, round three): `catch vfork` names the child;
following the parent, gdb keeps its breakpoints out of the shared memory until the
`vforkdone` stop, so the child's work() is not caught and the parent's is; following the
child, a breakpoint stops the child before its exec (and again in the exec'd image), and
gdb detaches the parent after the child's exec or exit. Guest output and status match a
native run. Also the raw packets, and the stub's answers to gdb's unusual orders."""

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

EXIT_OUT = b"parent 2, child exited 5\n"
EXEC_OUT = b"exec'd child 6\nparent 2, child exited 3\n"


@pytest.fixture(scope="module")
def vforker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("gdb")
    return build(tmp_path_factory.mktemp("gdbvf"), "vforker")


@pytest.mark.parametrize(("args", "expected"), [((), EXIT_OUT), (("exec",), EXEC_OUT)])
def test_catch_vfork_names_the_child(vforker: Path, args: tuple[str, ...], expected: bytes) -> None:
    output, status, out, _ = session(vforker, "catch vfork", "continue", "info inferiors", "continue", args=args)
    caught = re.search(r"Catchpoint 1 \(vforked process (\d+)\), .* in vfork \(\)", output)
    assert caught, output
    assert f"[Detaching after vfork from child process {caught.group(1)}]" in output
    assert "exited normally" in output and "internal-error" not in output
    native = run_native([str(vforker), *args])
    assert (status, out) == (native.returncode, native.stdout) == (0, expected)


@pytest.mark.parametrize(("args", "expected"), [((), EXIT_OUT), (("exec",), EXEC_OUT)])
def test_follow_parent_breaks_after_vforkdone(vforker: Path, args: tuple[str, ...], expected: bytes) -> None:
    output, status, out, _ = session(vforker, "break work", "continue", "print n", "continue", args=args)
    assert "Breakpoint 1, work (n=1)" in output  # the parent's; the child's work(20) ran unseen
    assert "n=20" not in output and "$1 = 1" in output
    assert "exited normally" in output
    assert (status, out) == (0, expected)


def test_follow_child_breaks_before_its_exec(vforker: Path) -> None:
    output, status, out, _ = session(vforker, "set follow-fork-mode child", "break work", "continue", "print n", "bt",
                                  "continue", "print n", "continue", args=("exec",))
    assert re.search(r"\[Attaching after .* vfork to child .*\]", output), output
    assert "hit Breakpoint 1, work (n=20)" in output and "$1 = 20" in output  # in the child, before exec
    assert "in main (argc=2, " in output
    assert re.search(r"\[Detaching vfork parent process \d+ after child exec\]", output)
    assert "hit Breakpoint 1, work (n=3)" in output and "$2 = 3" in output  # in the exec'd image
    assert re.search(r"\[Inferior 2 \(process \d+\) exited with code 03\]", output)
    assert (status, out) == (0, EXEC_OUT)  # the parent, let go, ran to its end


def test_follow_child_that_exits(vforker: Path) -> None:
    output, status, out, _ = session(vforker, "set follow-fork-mode child", "catch vfork", "break work", "continue",
                                  "continue", "print n", "continue")
    assert "Catchpoint 1 (vforked process" in output
    assert "hit Breakpoint 2, work (n=20)" in output and "$1 = 20" in output
    assert re.search(r"\[Detaching vfork parent process \d+ after child exit\]", output), output
    assert re.search(r"\[Inferior 2 \(process \d+\) exited with code 05\]", output)
    assert "internal-error" not in output
    assert (status, out) == (0, EXIT_OUT)


def test_vfork_packets(vforker: Path) -> None:
    """The raw exchange gdb has when following the parent; then vfork-events not offered:
    no vfork stop, no vforkdone, the child runs undebugged."""
    stub = Stub(vforker)
    client = Client(stub.port)
    supported = client.ask(b"qSupported:multiprocess+;fork-events+;vfork-events+")
    assert b"vfork-events+" in supported
    stop = client.ask(b"vCont;c:p2.-1")
    found = re.match(rb"T05thread:p2\.2;vfork:p([0-9a-f]+)\.([0-9a-f]+);", stop)
    assert found, stop
    child = found.group(1)
    assert client.ask(b"qfThreadInfo") == b"mp2.2,p%s.%s" % (child, child)
    assert client.ask(b"D;%s" % child) == b"OK"  # follow the parent
    assert client.ask(b"vCont;c:p2.2") == b"T05thread:p2.2;vforkdone:;"
    assert client.ask(b"qfThreadInfo") == b"mp2.2"
    assert client.ask(b"vCont;c:p2.-1") == b"W00;process:2"
    assert stub.finish()[:2] == (0, EXIT_OUT)

    stub = Stub(vforker)
    client = Client(stub.port)
    assert b"vfork-events" not in client.ask(b"qSupported:multiprocess+;fork-events+")
    assert client.ask(b"vCont;c") == b"W00;process:2"
    assert stub.finish()[:2] == (0, EXIT_OUT)


def test_vfork_child_killed_while_held(vforker: Path) -> None:
    """gdb kills everything while the vfork child is held and the parent waits for it."""
    stub = Stub(vforker)
    client = Client(stub.port)
    client.ask(b"qSupported:multiprocess+;vfork-events+")
    assert re.match(rb"T05thread:p2\.2;vfork:", client.ask(b"vCont;c"))
    client.kill()
    status, out, err = stub.finish()
    assert status != 0 and out == b"" and b"Traceback" not in err
