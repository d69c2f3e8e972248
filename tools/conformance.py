"""musl's libc-test as the sandbox's conformance suite (issue 15, part C).

Builds libc-test's functional, regression and math tests statically, once with musl-gcc and
once with glibc's gcc, runs every test natively and under the sandbox, and reports the pass
counts side by side, plus every case that passes natively and fails in the sandbox with its
output and the system calls that answered ENOSYS. A test passes as libc-test's own runtest.c
decides: it exits with status 0 within the time limit (a test that reports an error with
t_error returns 1).

Deliberate differences from libc-test's Makefile: only static binaries are built (a test that
needs a shared object at run time is listed as "not built", with the reason), math is built
statically too, and tests run directly rather than under runtest.c (which would also lower
RLIMIT_STACK to 100 KiB, a limit the sandbox does not yet enforce).

Run: python tools/conformance.py [--src DIR] [--libc musl] [--suite math] [--only NAME]
The source is `--src` or $LIBC_TEST_DIR, else the pinned commit cloned into build/libc-test.
Output: build/conformance/report.json, report.md, and the summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBC_TEST_URL = "https://github.com/jart/libc-test"
#: The commit the figures in the README were measured at ("Permit symbolic magic numbers", 2022-10-10).
LIBC_TEST_COMMIT = "8a72223ee24c6ffe43b377f6bc00fbdcfe1e723d"
DEFAULT_OUT = ROOT / "build" / "conformance"
DEFAULT_CLONE = ROOT / "build" / "libc-test"
SUITES = ("functional", "regression", "math")
#: config.mak.def's compiler flags, with -w for -Wall: warnings are libc-test's business.
CFLAGS = ("-pipe", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-w", "-fno-builtin", "-frounding-math",
          "-D_FILE_OFFSET_BITS=64", "-g")
#: libtest.a's sources are src/common/*.c except the runner, which has a main of its own.
COMMON_EXCLUDED = {"runtest.c"}
#: The environment the sandbox gives a guest by default (sandbox/kernel/options.py), used natively too.
GUEST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "TERM": "dumb", "LANG": "C"}
NATIVE_TIMEOUT = 10.0
SANDBOX_TIMEOUT = 20.0
#: How much longer than the sandbox's own --timeout the driver waits before killing it.
SANDBOX_GRACE = 30.0
OUTPUT_LIMIT = 2000
TARGET_RATIO = 0.98
ENOSYS_LINE = re.compile(r"^\[pid \d+\] (\w+)\(.*\) = -1 ENOSYS")
#: ENOSYS answers no test suffers from: glibc's start-up registers rseq and runs on without it.
HARMLESS_ENOSYS = {"rseq"}
#: What run_limited reports: exit status, whether it was killed for time, seconds, stdout, stderr.
RunResult = tuple[int, bool, float, bytes, bytes]


@dataclass(frozen=True)
class Toolchain:
    """A C library and the compiler driver that links against it statically."""

    libc: str
    cc: str
    ldlibs: tuple[str, ...]


#: config.mak.def's LDLIBS; the glibc extras are its "glibc specific settings" (musl has these
#: functions in libc.a, and musl-gcc would find glibc's libcrypt.a for -lcrypt).
TOOLCHAINS = {
    "musl": Toolchain("musl", "musl-gcc", ("-lpthread", "-lm", "-lrt")),
    "glibc": Toolchain("glibc", "gcc", ("-lpthread", "-lm", "-lrt", "-lcrypt", "-ldl", "-lresolv", "-lutil")),
}


@dataclass
class Outcome:
    """One run of one binary: passed or not, its exit status (negative: killed by that
    signal; 128+N from the sandbox likewise), and the head of its output."""

    passed: bool
    status: int
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str

    def describe(self) -> str:
        """'pass', 'timed out', 'status 1' or 'signal 11', as runtest.c words them."""
        if self.passed:
            return "pass"
        if self.timed_out:
            return "timed out"
        return f"signal {-self.status}" if self.status < 0 else f"status {self.status}"


@dataclass
class Recipe:
    """What a test's optional .mk fragment says about building it statically."""

    kind: str = "test"  # "test"; "helper" (a shared object other tests load); "dynamic" (no static binary)
    extra_sources: list[str] = field(default_factory=list)  # relative to src/, linked into the binary
    cflags: list[str] = field(default_factory=list)


@dataclass
class Case:
    """One test built with one C library, and what happened to it."""

    libc: str
    suite: str
    name: str
    exe: str = ""
    not_built: str = ""
    native: Outcome | None = None
    sandbox: Outcome | None = None
    enosys: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.libc}:{self.suite}/{self.name}"

    @property
    def verdict(self) -> str:
        """'not built', 'not run', 'pass', 'regression' (native only), 'sandbox only' or 'fail'."""
        if self.not_built:
            return "not built"
        if self.native is None or self.sandbox is None:
            return "not run"
        table = {(True, True): "pass", (True, False): "regression", (False, True): "sandbox only"}
        return table.get((self.native.passed, self.sandbox.passed), "fail")


# --- the source tree --------------------------------------------------------------------------

def git_head(tree: Path) -> str:
    """The commit checked out in `tree`, or '' when it is not a git work tree."""
    if not (tree / ".git").exists():
        return ""
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def clone_pinned(dest: Path) -> Path:
    """libc-test at LIBC_TEST_COMMIT in `dest`, cloned unless it is already there."""
    if git_head(dest) == LIBC_TEST_COMMIT:
        return dest
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", LIBC_TEST_URL, str(staging)], check=True)
    subprocess.run(["git", "-C", str(staging), "checkout", "--quiet", LIBC_TEST_COMMIT], check=True)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def source_tree(given: str | None) -> Path:
    """The libc-test tree to use: the one given, else the pinned clone."""
    tree = Path(given).resolve() if given else clone_pinned(DEFAULT_CLONE)
    if not (tree / "src" / "common" / "test.h").is_file():
        sys.exit(f"conformance: {tree} is not a libc-test tree (no src/common/test.h)")
    return tree


# --- discovery --------------------------------------------------------------------------------

def mk_assignments(text: str) -> dict[str, str]:
    """`$(N)...VAR := value` lines of a libc-test .mk fragment, keyed by what follows $(N)."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\$\(N\)(\S*?)\s*:?=\s*(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def read_recipe(source: Path) -> Recipe:
    """The static-build recipe of the test in `source`, from its .mk fragment if it has one.

    libc-test's Makefile reads src/D/N.mk: `$(N).BINS:=` (empty) marks a shared object other
    tests load, `$(N).BINS:=$(B)/$(N).exe` a test built only dynamically, `$(N)-static.LDLIBS`
    objects the static binary links, `$(N).CFLAGS` extra flags."""
    mk = source.with_suffix(".mk")
    if not mk.is_file():
        return Recipe()
    assigned = mk_assignments(mk.read_text())
    recipe = Recipe(cflags=assigned.get(".CFLAGS", "").split())
    bins = assigned.get(".BINS")
    if bins == "":
        recipe.kind = "helper"
    elif bins is not None and "-static" not in bins:
        recipe.kind = "dynamic"
    for word in assigned.get("-static.LDLIBS", "").split():
        recipe.extra_sources.append(re.sub(r"^\$\(B\)/\$\(D\)/", f"{source.parent.name}/", word)[:-2] + ".c")
    return recipe


def discover(tree: Path, suites: Iterable[str], libcs: Iterable[str], only: str = "") -> list[tuple[Case, Recipe]]:
    """Every test of `suites` for every C library, with its recipe; helpers left out."""
    found = []
    for suite in suites:
        for source in sorted((tree / "src" / suite).glob("*.c")):
            recipe = read_recipe(source)
            if recipe.kind == "helper" or only not in f"{suite}/{source.stem}":
                continue
            found += [(Case(libc, suite, source.stem), recipe) for libc in libcs]
    return found


# --- building ---------------------------------------------------------------------------------

def compile_error(stderr: str) -> str:
    """The first line of a compiler's complaint that names an error, shortened."""
    lines = [line for line in stderr.splitlines() if "error" in line] or stderr.splitlines() or ["(no message)"]
    return lines[0].strip()[:240]


def stale(target: Path, sources: Iterable[Path]) -> bool:
    """Whether `target` is missing or older than any of `sources`."""
    if not target.exists():
        return True
    built = target.stat().st_mtime
    return any(src.stat().st_mtime > built for src in sources)


def include_flags(tree: Path) -> list[str]:
    return ["-I", str(tree / "src" / "common")]


def build_library(tree: Path, chain: Toolchain, out: Path) -> Path:
    """libtest.a for `chain` (src/common's helpers), rebuilt when a source changed."""
    lib = out / chain.libc / "libtest.a"
    sources = [s for s in sorted((tree / "src" / "common").glob("*.c")) if s.name not in COMMON_EXCLUDED]
    if not stale(lib, [*sources, tree / "src" / "common" / "test.h"]):
        return lib
    objdir = out / chain.libc / "common"
    objdir.mkdir(parents=True, exist_ok=True)
    objects = []
    for src in sources:
        obj = objdir / (src.stem + ".o")
        subprocess.run([chain.cc, *CFLAGS, *include_flags(tree), "-c", "-o", str(obj), str(src)], check=True)
        objects.append(str(obj))
    lib.unlink(missing_ok=True)
    subprocess.run(["ar", "rcs", str(lib), *objects], check=True)
    return lib


def build_case(case: Case, recipe: Recipe, tree: Path, chain: Toolchain, lib: Path, out: Path) -> None:
    """Compile and link one test statically; on failure record why in `case.not_built`."""
    if recipe.kind == "dynamic":
        case.not_built = "dynamic only: loads a shared object at run time (libc-test builds no static binary)"
        return
    sources = [tree / "src" / case.suite / f"{case.name}.c", *(tree / "src" / s for s in recipe.extra_sources)]
    exe = out / chain.libc / case.suite / f"{case.name}.exe"
    exe.parent.mkdir(parents=True, exist_ok=True)
    if stale(exe, [*sources, lib]):
        argv = [chain.cc, *CFLAGS, *recipe.cflags, *include_flags(tree), "-static", "-o", str(exe),
                *map(str, sources), str(lib), *chain.ldlibs]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            exe.unlink(missing_ok=True)
            case.not_built = f"{chain.cc}: {compile_error(done.stderr)}"
            return
    case.exe = str(exe)


def build_all(found: list[tuple[Case, Recipe]], tree: Path, out: Path, jobs: int) -> list[Case]:
    """Build every case, `jobs` compilers at a time; a C library without its compiler is not built."""
    libs = {}
    for libc in sorted({case.libc for case, _ in found}):
        chain = TOOLCHAINS[libc]
        libs[libc] = build_library(tree, chain, out) if shutil.which(chain.cc) else None

    def build_one(item: tuple[Case, Recipe]) -> Case:
        case, recipe = item
        if libs[case.libc] is None:
            case.not_built = f"{TOOLCHAINS[case.libc].cc} is not installed"
        else:
            build_case(case, recipe, tree, TOOLCHAINS[case.libc], libs[case.libc], out)
        return case

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(build_one, found))


# --- running ----------------------------------------------------------------------------------

def clip(data: bytes) -> str:
    """The head of some output, as text."""
    text = data.decode("utf-8", "replace")
    return text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + "\n[... cut]\n"


def run_limited(argv: list[str], cwd: str, timeout: float, env: dict[str, str]) -> RunResult:
    """Run `argv` in a session of its own; past `timeout` kill that whole process group.

    Output goes to files, not pipes: a daemonised grandchild (regression/daemon-failure)
    holding a pipe would keep the reader waiting for ever."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return proc.returncode, timed_out, seconds, out.read(), err.read()


def run_native(exe: str, timeout: float = NATIVE_TIMEOUT) -> Outcome:
    """The test run directly on the host, from a fresh scratch directory."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as scratch:
        status, timed_out, seconds, out, err = run_limited([exe], scratch, timeout, GUEST_ENV)
    return Outcome(status == 0 and not timed_out, status, timed_out, seconds, clip(out), clip(err))


def sandbox_argv(exe: str, timeout: float, extra: Iterable[str] = ()) -> list[str]:
    """`python -m sandbox run` for `exe`: its directory mounted read-only at the same path,
    run from the guest's private, writable /tmp."""
    folder = str(Path(exe).parent)
    return [sys.executable, "-m", "sandbox", "run", "--timeout", f"{timeout:g}", "--cwd", "/tmp",
            "--mount", f"{folder}:{folder}:ro", *extra, exe]


#: The source tree whose `sandbox` package runs the guests (--sandbox): this checkout by default.
SANDBOX_TREE = [ROOT]


def sandbox_env() -> dict[str, str]:
    """The host environment for the sandbox itself (the guest gets GUEST_ENV from it)."""
    return {**os.environ, "PYTHONPATH": str(SANDBOX_TREE[0])}


def run_boxed(exe: str, timeout: float = SANDBOX_TIMEOUT) -> Outcome:
    """The test run under the sandbox; its --timeout ends the guest with status 137."""
    argv = sandbox_argv(exe, timeout)
    status, killed, seconds, out, err = run_limited(argv, str(SANDBOX_TREE[0]), timeout + SANDBOX_GRACE, sandbox_env())
    timed_out = killed or (status == 128 + signal.SIGKILL and seconds >= timeout)
    return Outcome(status == 0 and not timed_out, status, timed_out, seconds, clip(out), clip(err))


def enosys_calls(exe: str, timeout: float = SANDBOX_TIMEOUT) -> list[str]:
    """System calls the sandbox answered ENOSYS during a traced re-run of `exe`, in order."""
    with tempfile.TemporaryFile() as trace:
        argv = sandbox_argv(exe, timeout, ["--trace-syscalls"])
        proc = subprocess.Popen(argv, cwd=str(SANDBOX_TREE[0]), env=sandbox_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=trace, start_new_session=True)
        try:
            proc.wait(timeout=timeout + SANDBOX_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        trace.seek(0)
        names = (ENOSYS_LINE.match(line.decode("utf-8", "replace")) for line in trace)
        calls = (match.group(1) for match in names if match)
        return [name for name in dict.fromkeys(calls) if name not in HARMLESS_ENOSYS]


def run_case(case: Case) -> Case:
    """Run one built case natively and in the sandbox; trace it when only the sandbox fails."""
    if case.not_built:
        return case
    case.native = run_native(case.exe)
    case.sandbox = run_boxed(case.exe)
    if case.verdict == "regression":
        case.enosys = enosys_calls(case.exe)
    return case


def run_all(cases: list[Case], jobs: int, progress: Callable[[Case, int, int], None]) -> None:
    """Run every case, `jobs` at a time, calling `progress` as each finishes."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for done, case in enumerate(pool.map(run_case, cases), 1):
            progress(case, done, len(cases))


# --- reporting --------------------------------------------------------------------------------

COUNTS = ("tests", "built", "native", "sandbox", "both")


def tally(cases: Iterable[Case]) -> dict[str, int]:
    """How many cases exist, were built, passed natively, in the sandbox, and in both."""
    counts = dict.fromkeys(COUNTS, 0)
    for case in cases:
        counts["tests"] += 1
        counts["built"] += not case.not_built
        counts["native"] += bool(case.native and case.native.passed)
        counts["sandbox"] += bool(case.sandbox and case.sandbox.passed)
        counts["both"] += case.verdict == "pass"
    return counts


def summarise(cases: list[Case]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per C library and suite, with an 'all' suite per library and an 'all' library."""
    libcs = sorted({c.libc for c in cases}, key=list(TOOLCHAINS).index)
    suites = [s for s in SUITES if any(c.suite == s for c in cases)]
    summary = {}
    for libc in [*libcs, "all"]:
        mine = [c for c in cases if libc in ("all", c.libc)]
        rows = {suite: tally(c for c in mine if c.suite == suite) for suite in suites}
        summary[libc] = {**rows, "all": tally(mine)}
    return summary


def ratio(counts: dict[str, int]) -> str:
    """The share of natively passing cases that also pass in the sandbox."""
    return f"{100 * counts['both'] / counts['native']:.1f}%" if counts["native"] else "-"


def summary_table(summary: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    """The pass counts side by side, as a Markdown table."""
    lines = ["| libc | suite | tests | built | pass natively | pass in sandbox | pass in both | kept |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for libc, rows in summary.items():
        for suite, counts in rows.items():
            bold = "**" if suite == "all" else ""
            cells = [str(counts[name]) for name in COUNTS]
            lines.append(f"| {bold}{libc}{bold} | {bold}{suite}{bold} | " + " | ".join(cells)
                         + f" | {ratio(counts)} |")
    return lines


def fenced(text: str) -> list[str]:
    """Output quoted verbatim in Markdown (backquote fences in it defused)."""
    return ["```", *text.replace("```", "'''").rstrip("\n").splitlines(), "```"] if text.strip() else []


def regression_section(cases: list[Case], verbose: bool) -> list[str]:
    """Every case that passes natively and fails in the sandbox, with its output if `verbose`."""
    bad = [c for c in cases if c.verdict == "regression"]
    lines = [f"## Passes natively, fails in the sandbox ({len(bad)})", ""]
    for case in bad:
        enosys = f"; ENOSYS: {', '.join(case.enosys)}" if case.enosys else ""
        lines.append(f"- `{case.key}`: {case.sandbox.describe()}{enosys}")
        if verbose:
            lines += fenced(case.sandbox.stdout + case.sandbox.stderr) + [""]
    return lines


def other_sections(cases: list[Case]) -> list[str]:
    """Cases that only the sandbox passes, that fail in both, and that were not built."""
    lines = []
    for verdict, title in (("sandbox only", "Fails natively, passes in the sandbox"),
                           ("fail", "Fails natively and in the sandbox"), ("not built", "Not built")):
        chosen = [c for c in cases if c.verdict == verdict]
        lines += ["", f"## {title} ({len(chosen)})", ""]
        for case in chosen:
            why = case.not_built or f"native {case.native.describe()}, sandbox {case.sandbox.describe()}"
            lines.append(f"- `{case.key}`: {why}")
    return lines


def markdown(cases: list[Case], commit: str, verbose: bool = True) -> str:
    """The whole report: the table, then the cases that need a look."""
    overall = summarise(cases)["all"]["all"]
    head = [f"# libc-test under the sandbox (libc-test {commit or 'commit unknown'})", "",
            *summary_table(summarise(cases)), "",
            f"The sandbox passes {overall['both']} of the {overall['native']} cases that pass natively "
            f"({ratio(overall)}; target {TARGET_RATIO:.0%}); without math (which tests the CPU emulator's "
            f"floating point more than the kernel): {ratio(tally(c for c in cases if c.suite != 'math'))}.", ""]
    return "\n".join([*head, *regression_section(cases, verbose), *other_sections(cases)]) + "\n"


def write_reports(cases: list[Case], commit: str, out: Path) -> str:
    """report.json and report.md in `out`; the short Markdown (no outputs) for stdout."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"libc_test_commit": commit, "summary": summarise(cases),
            "cases": [{**asdict(c), "verdict": c.verdict} for c in cases]}
    (out / "report.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "report.md").write_text(markdown(cases, commit))
    return markdown(cases, commit, verbose=False)


# --- the command ------------------------------------------------------------------------------

def show_progress(case: Case, done: int, total: int) -> None:
    """A line on stderr for each case that needs a look, and a count every 50."""
    if case.verdict in ("regression", "sandbox only"):
        print(f"  {case.verdict}: {case.key} ({case.sandbox.describe()})", file=sys.stderr, flush=True)
    if done % 50 == 0 or done == total:
        print(f"  ran {done}/{total}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.environ.get("LIBC_TEST_DIR") or None,
                        help="libc-test tree (default $LIBC_TEST_DIR, else clone the pinned commit)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="build and report directory")
    parser.add_argument("--libc", action="append", choices=list(TOOLCHAINS), help="C library (repeatable)")
    parser.add_argument("--suite", action="append", choices=SUITES, help="test directory (repeatable)")
    parser.add_argument("--only", default="", help="only tests whose suite/name contains this")
    parser.add_argument("--jobs", type=int, default=2, help="builds and runs at a time")
    parser.add_argument("--sandbox", type=Path, default=ROOT,
                        help="source tree of the sandbox to measure (default this checkout)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    SANDBOX_TREE[0] = args.sandbox.resolve()
    tree = source_tree(args.src)
    commit = git_head(tree) or ("" if args.src else LIBC_TEST_COMMIT)
    found = discover(tree, args.suite or SUITES, args.libc or list(TOOLCHAINS), args.only)
    print(f"conformance: building {len(found)} cases from {tree}", file=sys.stderr, flush=True)
    cases = build_all(found, tree, args.out.resolve(), args.jobs)
    print(f"conformance: running {sum(not c.not_built for c in cases)} natively and in the sandbox",
          file=sys.stderr, flush=True)
    run_all(cases, args.jobs, show_progress)
    print(write_reports(cases, commit, args.out))
    print(f"(full report with outputs: {args.out / 'report.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
