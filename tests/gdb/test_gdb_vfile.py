"""gdb's Host I/O (vFile) packets (issue 18, round four): with `set sysroot target:` gdb
reads the program and its libraries through the stub, from the sandbox's view of the
files, so a program mounted where the host has nothing is still debugged with its libc
symbols. And the packets themselves, attacked: escapes from the view (.., symlinks out of
the root, /proc/self), writes, FIFOs and devices, huge counts and offsets, many opens."""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.gdb.stubrun import Client, Stub, build, gdb_batch

#: Where the tests mount their directory in the guest: a path the host does not have.
GUEST_DIR = "/opt/gdb-vfile"
#: gdb's File-I/O errno values (GDB manual, "Errno Values").
ENOENT, EBADF, ENODEV, EISDIR, EINVAL, EMFILE, EROFS, ENAMETOOLONG = 2, 9, 19, 21, 22, 24, 30, 91
MAX_OPEN = 32  # sandbox.gdbstub.vfile.MAX_OPEN
SECRET = b"host secret, not exposed to the guest\n"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A built dynamic program in a directory to mount at GUEST_DIR, beside a secret the
    guest must never see, which that directory's symlinks try to reach."""
    require_tool("gdb")
    top = tmp_path_factory.mktemp("gdbvfile")
    view = top / "view"
    view.mkdir()
    secret = top / "secret"
    secret.write_bytes(SECRET)
    program = build(view, "dyn", static=False)
    build(view, "execer")
    (view / "absolute").symlink_to(secret)
    (view / "relative").symlink_to(Path("../" * 12 + str(secret).lstrip("/")))
    (view / "up").symlink_to("..")
    os.mkfifo(view / "fifo")
    return {"view": view, "program": program, "secret": secret}


def mounted(tree: dict[str, Path]) -> tuple[str, ...]:
    return ("--mount", f"{tree['view']}:{GUEST_DIR}:ro")


def test_gdb_reads_program_and_libc_through_the_target(tree: dict[str, Path]) -> None:
    """gdb is given no program: it reads the static execer through vFile, then, after its
    exec, GUEST_DIR/dyn (which exists only in the guest's view) and its libraries, and
    stops inside libc's puts with libc's symbols."""
    execer = tree["view"] / "execer"
    stub = Stub(execer, f"{GUEST_DIR}/dyn", options=mounted(tree))
    output = gdb_batch(None, stub.port, "set breakpoint pending on", "break puts", "continue", "bt",
                       "info sharedlibrary", "continue", before=("set sysroot target:",))
    status, out, _ = stub.finish()
    assert f"Reading symbols from target:{execer}" in output, output
    assert f"Reading {GUEST_DIR}/dyn from remote target" in output, output
    assert re.search(r"Breakpoint 1, .*puts \(str=", output), output
    assert re.search(r"#1 .* in greet \(who=", output) and " in main () at" in output
    assert re.search(r"Yes .*target:/lib/x86_64-linux-gnu/libc\.so\.6", output), output
    assert "exited with code 04" in output
    assert (status, out) == (4, f"execing {GUEST_DIR}/dyn\nhello from a dynamic program\n".encode())


def hexname(path: str | Path) -> bytes:
    return os.fsencode(str(path)).hex().encode()


def error_of(reply: bytes) -> int:
    """The errno of an `F-1,errno` reply (AssertionError for anything else)."""
    found = re.fullmatch(rb"F-1,([0-9a-f]+)", reply)
    assert found, reply
    return int(found.group(1), 16)


def result(reply: bytes) -> tuple[int, bytes]:
    """(result, attachment) of an `F<result>[;data]` reply."""
    head, _, data = reply.partition(b";")
    assert head[:1] == b"F" and not head.startswith(b"F-"), reply
    return int(head[1:], 16), data


def read_all(client: Client, fd: int, chunk: int = 0x1000) -> bytes:
    data = b""
    while True:
        count, part = result(client.ask_binary(b"vFile:pread:%x,%x,%x" % (fd, chunk, len(data))))
        assert count == len(part)
        if not count:
            return data
        data += part


@pytest.fixture
def client(tree: dict[str, Path]) -> Iterator[Client]:
    stub = Stub(tree["program"], options=mounted(tree))
    client = Client(stub.port)
    yield client
    client.kill()
    assert stub.finish()[0] == 137


def test_open_pread_fstat_close(client: Client, tree: dict[str, Path]) -> None:
    assert client.ask(b"vFile:setfs:0") == b"F0"
    fd, _ = result(client.ask(b"vFile:open:%s,0,0" % hexname(f"{GUEST_DIR}/dyn")))
    assert read_all(client, fd) == tree["program"].read_bytes()
    size, raw = result(client.ask_binary(b"vFile:fstat:%x" % fd))
    assert size == len(raw) == 64
    fields = struct.unpack(">IIIIIIIQQQIII", raw)
    assert fields[2] & 0o170000 == 0o100000 and fields[7] == tree["program"].stat().st_size
    count, data = result(client.ask_binary(b"vFile:pread:%x,ffffffffffff,0" % fd))  # huge: one packet's worth
    assert 0 < count == len(data) <= 0x2000
    assert result(client.ask(b"vFile:pread:%x,10,10000000000" % fd)) == (0, b"")  # past the end
    assert error_of(client.ask(b"vFile:pread:%x,10,8000000000000000" % fd)) == EINVAL
    assert error_of(client.ask(b"vFile:pread:%x,-1,0" % fd)) == EINVAL
    assert client.ask(b"vFile:close:%x" % fd) == b"F0"
    assert error_of(client.ask(b"vFile:close:%x" % fd)) == EBADF
    assert error_of(client.ask(b"vFile:pread:%x,10,0" % fd)) == EBADF
    for bad in (b"vFile:close:zz", b"vFile:pread:0,10", b"vFile:fstat:", b"vFile:open:zz,0,0",
                b"vFile:open:%s,0" % hexname("/etc"), b"vFile:open:2f0061,0,0", b"vFile:setfs:ffff"):
        assert error_of(client.ask(bad)) in (EINVAL, EBADF), bad
    assert error_of(client.ask(b"vFile:close:ffffffffffffffffffff")) == EINVAL
    assert error_of(client.ask(b"vFile:open:%s,0,0" % (b"2f" * 5000))) == ENAMETOOLONG
    assert client.ask(b"vFile:frobnicate:0") == b""  # unknown: not supported
    assert client.ask(b"?").startswith(b"T05")  # still serving


def test_nothing_is_written(client: Client, tree: dict[str, Path]) -> None:
    """O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND (gdb's numbering), pwrite, unlink."""
    for flags in (1, 2, 8, 0x200, 0x400, 0x601, 0xFFFFFFFF):
        reply = client.ask(b"vFile:open:%s,%x,1ff" % (hexname(f"{GUEST_DIR}/dyn"), flags))
        assert error_of(reply) == EROFS, flags
    assert error_of(client.ask(b"vFile:open:%s,201,1ff" % hexname("/tmp/new"))) == EROFS
    assert error_of(client.ask(b"vFile:pwrite:0,0:abc")) == EROFS
    assert error_of(client.ask(b"vFile:unlink:%s" % hexname(f"{GUEST_DIR}/dyn"))) == EROFS
    assert tree["program"].exists()


def test_escapes_from_the_view(client: Client, tree: dict[str, Path]) -> None:
    """.. at the root, symlinks to a host path out of the view (absolute, relative, to the
    mount's parent), and a host-only file by its host path: none reaches the host."""
    secret = str(tree["secret"])
    for path in (secret, f"/../../../../{secret}", f"{GUEST_DIR}/../../../..{secret}", f"{GUEST_DIR}/absolute",
                 f"{GUEST_DIR}/relative", f"{GUEST_DIR}/up/secret", "/etc/shadow", f"/proc/self/root{secret}",
                 f"/proc/self/cwd/../../..{secret}", f"/proc/1/root/../..{secret}"):
        reply = client.ask(b"vFile:open:%s,0,0" % hexname(path))
        assert error_of(reply) in (ENOENT, 13), (path, reply)
    assert result(client.ask_binary(b"vFile:readlink:%s" % hexname(f"{GUEST_DIR}/absolute")))[1] == secret.encode()
    assert error_of(client.ask(b"vFile:readlink:%s" % hexname(f"{GUEST_DIR}/dyn"))) == EINVAL
    assert error_of(client.ask(b"vFile:readlink:%s" % hexname("/nonexistent"))) == ENOENT
    fd, _ = result(client.ask(b"vFile:open:%s,0,0" % hexname(GUEST_DIR)))  # a directory opens, as open(2)'s
    assert error_of(client.ask(b"vFile:pread:%x,10,0" % fd)) == EISDIR


def test_proc_self_is_the_guests(client: Client, tree: dict[str, Path]) -> None:
    """/proc/self is the debugged process as the guest sees it, not the stub's host process."""
    exe = result(client.ask_binary(b"vFile:readlink:%s" % hexname("/proc/self/exe")))[1]
    assert exe == str(tree["program"]).encode()
    fd, _ = result(client.ask(b"vFile:open:%s,0,0" % hexname("/proc/self/maps")))
    maps = read_all(client, fd)
    assert str(tree["program"]).encode() in maps and b"python" not in maps
    assert client.ask(b"vFile:close:%x" % fd) == b"F0"
    fd, _ = result(client.ask(b"vFile:open:%s,0,0" % hexname("/proc/self/exe")))
    assert read_all(client, fd)[:4] == b"\x7fELF"


def test_fifos_and_devices_are_refused(client: Client) -> None:
    for path in (f"{GUEST_DIR}/fifo", "/dev/tty", "/dev/zero", "/proc/self/fd/0"):
        assert error_of(client.ask(b"vFile:open:%s,0,0" % hexname(path))) == ENODEV, path


def test_descriptors_are_bounded(client: Client, tree: dict[str, Path]) -> None:
    name = hexname(f"{GUEST_DIR}/dyn")
    fds = [result(client.ask(b"vFile:open:%s,0,0" % name))[0] for _ in range(MAX_OPEN)]
    assert sorted(fds) == list(range(MAX_OPEN))
    assert error_of(client.ask(b"vFile:open:%s,0,0" % name)) == EMFILE
    assert client.ask(b"vFile:close:5") == b"F0"
    assert result(client.ask(b"vFile:open:%s,0,0" % name))[0] == 5
    data = result(client.ask_binary(b"vFile:pread:1f,4,0"))[1]
    assert data == b"\x7fELF"


def test_files_close_when_gdb_goes(tree: dict[str, Path]) -> None:
    """A client that leaves files open and goes: the guest runs on to its end."""
    stub = Stub(tree["program"], options=mounted(tree))
    client = Client(stub.port)
    for _ in range(MAX_OPEN):
        result(client.ask(b"vFile:open:%s,0,0" % hexname(f"{GUEST_DIR}/dyn")))
    client.close()
    status, out, _ = stub.finish()
    assert (status, out) == (4, b"hello from a dynamic program\n")


def test_vfile_needs_no_program_on_the_host(tree: dict[str, Path], tmp_path: Path) -> None:
    """`remote get` copies a guest-only file out through the stub, byte for byte."""
    stub = Stub(tree["program"], options=mounted(tree))
    copy = tmp_path / "copy"
    output = gdb_batch(None, stub.port, f"remote get {GUEST_DIR}/dyn {copy}", "kill")
    stub.finish()
    assert copy.read_bytes() == tree["program"].read_bytes(), output
    shutil.rmtree(tmp_path, ignore_errors=True)
