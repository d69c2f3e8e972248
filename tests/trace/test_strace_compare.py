"""The sandbox's --trace-out against `strace -f -s 32 -o FILE` of the same program run natively.

tests/trace/traced.c is built here and run in four scenes (files, processes, attacks with
bad pointers, signals). Both traces are read per task (a call that slept is joined with its
`<... resumed>` end, since the two kernels interleave tasks differently), pointers and pids
are masked, and then they must be the same lines. Differences that are inherent are removed
from both sides first, each with its reason in `INHERENT`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool, run_sandbox

SOURCE = ROOT / "tests" / "trace" / "traced.c"
SCENES = ["files", "processes", "attacks", "signals"]
#: Lines that differ for a reason that is not the trace's: (pattern, why).
INHERENT = [
    (r"^rseq\(", "rseq is not implemented: -1 ENOSYS [not implemented]"),
    (r"^getrandom\(", "random bytes"),
    (r"^prlimit64\(0, RLIMIT_STACK", "the host's stack limit (ulimit -s) against the sandbox's fixed one"),
    (r"^--- SIGCHLD ", "strace makes the kernel queue SIGCHLD though it is ignored; the sandbox drops it"),
    (r"^rt_sigreturn\(", "strace shows the mask saved in the signal frame; the sandbox shows no argument"),
]
PID_CALLS = re.compile(r"^(clone|set_tid_address|getpid|gettid|wait4|kill|tgkill|--- SIG)")
PID_PLACES = re.compile(r"(^\w+\(|si_pid=| = )(\d+)")  # first argument, si_pid, result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("traced")
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out / "traced"), str(SOURCE)], check=True)
    return out


def join_resumed(lines: list[str]) -> list[tuple[int, str]]:
    """(pid, line) with each '<unfinished ...>' joined to its '<... NAME resumed>' end."""
    started: dict[int, str] = {}
    out = []
    for raw in lines:
        pid_text, _, text = raw.partition(" ")
        pid, text = int(pid_text), text.lstrip()
        if text.endswith(" <unfinished ...>"):
            started[pid] = text[: -len(" <unfinished ...>")]
            continue
        resumed = re.match(r"<\.\.\. \w+ resumed>(.*)", text)
        if resumed:
            text = started.pop(pid) + resumed.group(1)
        out.append((pid, text))
    return out


def normalized(trace: str) -> dict[str, list[str]]:
    """Per task ('P1', 'P2' in order of appearance): its lines, masked and filtered."""
    names: dict[int, str] = {}
    tasks: dict[str, list[str]] = {}
    for pid, text in join_resumed(trace.splitlines()):
        names.setdefault(pid, f"P{len(names) + 1}")
        if any(re.search(pattern, text) for pattern, _ in INHERENT):
            continue
        text = re.sub(r"\s+= ", " = ", text)
        text = re.sub(r"0x[0-9a-f]+", "0xADDR", text)
        text = re.sub(r"/\* \d+ vars \*/", "/* N vars */", text)  # the environments differ
        text = text.replace(" (core dumped)", "")
        tasks.setdefault(names[pid], []).append(text)
    for lines in tasks.values():  # pids in the calls that name a process, now all known
        for index, text in enumerate(lines):
            if PID_CALLS.match(text):
                lines[index] = PID_PLACES.sub(lambda m: m.group(1) + names.get(int(m.group(2)), m.group(2)), text)
    return tasks


def traces(built: Path, scene: str) -> tuple[str, str]:
    """The native strace and the sandbox's trace of one scene."""
    strace = require_tool("strace")
    prog, native_out, sandbox_out = built / "traced", built / f"native-{scene}", built / f"sandbox-{scene}"
    subprocess.run([strace, "-f", "-s", "32", "-o", str(native_out), str(prog), scene, str(built)],
                   capture_output=True, timeout=60)
    run_sandbox(["run", "--timeout", "60", "--trace-out", str(sandbox_out), "--mount", f"{built}:{built}",
                 str(prog), scene, str(built)])
    return native_out.read_text(), sandbox_out.read_text()


@pytest.mark.parametrize("scene", SCENES)
def test_same_lines_as_strace(built: Path, scene: str) -> None:
    native, sandbox = traces(built, scene)
    assert normalized(sandbox) == normalized(native)


def test_the_comparison_sees_every_kind_of_line(built: Path) -> None:
    """The scenes do show what the comparison is meant to cover."""
    text = "".join(traces(built, scene)[1] for scene in SCENES)
    for piece in ['O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3', '"..., 53) = 53', "{st_mode=S_IFREG|0644, st_size=69, ...}",
                  "pipe2([3, 4], 0)", "<unfinished ...>", "resumed>", "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]",
                  "exit_group(3)                     = ?", "+++ exited with 3 +++", "= -1 EFAULT (Bad address)",
                  "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---",
                  "+++ killed by SIGSEGV", "{sa_handler=0x", "rt_sigprocmask(SIG_BLOCK, [INT], NULL, 8)",
                  "clock_nanosleep(CLOCK_REALTIME, 0, {tv_sec=0, tv_nsec=1000}, NULL) = 0"]:
        assert piece in text, piece


def test_an_unterminated_path_is_shown_as_strace_shows_it(built: Path) -> None:
    """4096 bytes without a NUL, then an unmapped page: the first 4095 and '...'."""
    native, sandbox = traces(built, "attacks")
    shown = re.compile(r'openat\(AT_FDCWD, "a{4095}"\.\.\., O_RDONLY\)')
    assert shown.search(native) and shown.search(sandbox)
