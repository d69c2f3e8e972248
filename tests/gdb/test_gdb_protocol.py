"""The stub against a raw client: what gdb never sends (bad checksums, malformed and huge
packets, wild addresses), Ctrl-C, the qXfer objects, writes into read-only text, and a
client that goes away while the guest runs."""

from __future__ import annotations

import struct
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.gdb.stubrun import Client, Stub, build, symbol

AT_ENTRY = 9


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tool("gcc")
    out = tmp_path_factory.mktemp("gdbraw")
    return {name: build(out, name) for name in ("steps", "spin", "forker")}


def connect(program: Path, *options: str) -> tuple[Stub, Client]:
    stub = Stub(program, options=options)
    return stub, Client(stub.port)


def test_bad_checksum_is_refused_and_the_stub_goes_on(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["steps"])
    client.send_raw(b"$g#00")
    assert client.acks() == b"-"
    assert client.ask(b"?").startswith(b"T05thread:")
    client.send_raw(b"$g#zz")
    assert client.acks() == b"-"
    client.kill()
    assert stub.finish()[0] == 137


def test_malformed_packets_are_errors_not_crashes(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["steps"])
    for packet in (b"mzz,4", b"m1000", b"M1000,2:zz", b"M1000,4:00", b"X1000,5:ab", b"Z0,zz,1", b"Z2,1000,0",
                   b"Z2,-1,4", b"p", b"p9999", b"Pzz=00", b"P0=00", b"G00", b"Hgzz", b"Hg999999", b"T999999",
                   b"qXfer:features:read:target.xml:zz", b"qXfer:features:read:other.xml:0,100", b"C", b"vCont;",
                   b"qXfer:auxv:read::0"):
        reply = client.ask(packet)
        assert reply.startswith(b"E") or reply == b"", (packet, reply)
    assert client.ask(b"vMustReplyEmpty") == b""
    assert client.ask(b"?").startswith(b"T05")  # still stopped at the entry, still serving
    client.kill()
    assert stub.finish()[0] == 137


def test_huge_and_wild_memory_reads(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["steps"])
    start = time.monotonic()
    assert client.ask(b"m400000,40000000") == b"E01"  # 1 GiB: refused at once, nothing allocated
    assert time.monotonic() - start < 5
    assert client.ask(b"m0,8") == b"E14"  # unmapped
    assert client.ask(b"mffffffff80000000,8") == b"E14"  # the kernel half
    assert client.ask(b"mffffffffffffffff,10") == b"E14"  # wraps past the end
    assert client.ask(b"m7fffffffffff,10") == b"E14"  # past the user half
    assert client.ask(b"M0,1:90") == b"E14"
    assert client.ask(b"m%x,4" % symbol(progs["steps"], "add")) == b"554889e5"  # readable: the text itself
    client.send_raw(b"$" + b"a" * 100_000)  # a packet that never ends: dropped, not buffered for ever
    assert client.acks() == b"-"
    client.send_raw(b"#00")
    assert client.ask(b"?").startswith(b"T05")
    client.kill()
    assert stub.finish()[0] == 137


def test_binary_write_into_text_and_read_back(progs: dict[str, Path]) -> None:
    """X into read-only text (what gdb does to patch code): the write lands, reads back,
    and the guest runs the patched code; a breakpoint never shows in memory."""
    stub, client = connect(progs["steps"])
    add = symbol(progs["steps"], "add")
    assert client.ask(b"Z0,%x,1" % add) == b"OK"
    assert client.ask(b"m%x,1" % add) == b"55"  # the breakpoint is not in memory
    assert client.ask(b"z0,%x,1" % add) == b"OK"
    # add(a, b) becomes "return 7": mov eax, 7; ret -- written with X, binary data escaped.
    code = b"\xb8\x07\x00\x00\x00\xc3"
    assert client.ask(b"X%x,%x:" % (add, len(code)) + code) == b"OK"
    assert client.ask(b"m%x,6" % add) == code.hex().encode()
    assert client.ask(b"c") == b"W07"  # total = add(...) = 7, every time
    status, out, _ = stub.finish()
    assert (status, out) == (7, b"total 7\n")


def test_ctrl_c_stops_a_computing_guest(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["spin"])
    client.send_raw(b"$c#63")
    assert client.acks() == b"+"
    time.sleep(0.3)
    client.send_raw(b"\x03")
    reply = client.reply()
    assert reply.startswith(b"T02thread:"), reply  # SIGINT, at an instruction boundary
    counter = symbol(progs["spin"], "counter")
    first = client.ask(b"m%x,8" % counter)
    assert struct.unpack("<Q", bytes.fromhex(first.decode()))[0] > 0
    client.kill()
    assert stub.finish()[0] == 137


def test_client_that_disconnects_lets_the_guest_run_on(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["steps"])
    assert client.ask(b"Z0,%x,1" % symbol(progs["steps"], "add")) == b"OK"
    client.send_raw(b"$c#63")
    client.reply()  # at the breakpoint
    client.close()  # gone mid-run: breakpoints go with it
    status, out, _ = stub.finish()
    assert (status, out) == (6, b"total 6\n")


def test_detach_with_gdb_wait_waits_for_the_next_client(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["steps"], "--gdb-wait")
    assert client.ask(b"Z0,%x,1" % symbol(progs["steps"], "add")) == b"OK"
    assert client.ask(b"c").startswith(b"T05")
    assert client.ask(b"D") == b"OK"
    client.close()
    again = Client(stub.port)
    assert again.ask(b"?").startswith(b"T05")  # the guest waited, stopped
    assert again.ask(b"c") == b"W06"  # the first client's breakpoint went with it
    status, out, _ = stub.finish()
    assert (status, out) == (6, b"total 6\n")


def test_qxfer_objects(progs: dict[str, Path]) -> None:
    stub, client = connect(progs["steps"])
    supported = client.ask(b"qSupported:multiprocess+;swbreak+")
    for feature in (b"qXfer:features:read+", b"qXfer:auxv:read+", b"qXfer:exec-file:read+",
                    b"qXfer:libraries-svr4:read+", b"swbreak+"):
        assert feature in supported
    xml = b""
    while True:
        chunk = client.ask(b"qXfer:features:read:target.xml:%x,200" % len(xml))
        xml += chunk[1:]
        if chunk[:1] == b"l":
            break
    names = [reg.get("name") for reg in ET.fromstring(xml).iter("reg")]
    assert names[:17] == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", *[f"r{i}" for i in range(8, 16)],
                          "rip"]
    assert {"eflags", "cs", "fs", "st0", "st7", "fop", "xmm15", "mxcsr", "orig_rax", "fs_base", "gs_base"} <= set(names)
    auxv = client.ask(b"qXfer:auxv:read::0,1000")
    assert auxv[:1] == b"l"
    pairs = dict(struct.iter_unpack("<QQ", auxv[1:]))
    from elftools.elf.elffile import ELFFile

    with open(progs["steps"], "rb") as f:
        assert pairs[AT_ENTRY] == ELFFile(f).header.e_entry
    assert client.ask(b"qXfer:exec-file:read::0,1000") == b"l" + str(progs["steps"]).encode()
    assert client.ask(b"qXfer:libraries-svr4:read::0,1000") == b'l<library-list-svr4 version="1.0"/>'  # static
    assert client.ask(b"qfThreadInfo").startswith(b"m")
    assert client.ask(b"qsThreadInfo") == b"l"
    client.kill()
    assert stub.finish()[0] == 137


def test_a_signal_to_the_sandbox_ends_the_wait_for_gdb(progs: dict[str, Path]) -> None:
    """SIGTERM to a sandbox waiting for gdb (or stopped in it) is not swallowed by the wait:
    it goes to the guest, as without a stub."""
    import signal

    waiting = Stub(progs["steps"])
    time.sleep(0.5)
    waiting.process.send_signal(signal.SIGTERM)
    status, out, err = waiting.finish()
    assert (status, out) == (128 + signal.SIGTERM, b"")
    assert b"killed by SIGTERM sent to the sandbox" in err
    stopped, client = connect(progs["steps"], "--gdb-wait")
    assert client.ask(b"?").startswith(b"T05")
    stopped.process.send_signal(signal.SIGTERM)
    status, _, _ = stopped.finish()
    assert status == 128 + signal.SIGTERM
    client.close()
