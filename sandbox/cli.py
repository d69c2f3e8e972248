"""The `sandbox` command: `sandbox run [OPTIONS] PROG [ARGS]...` and `sandbox maps PROG`.

Exit status: the guest's own; 128 + N if signal N killed it; 127 if PROG does not exist and
126 if it cannot be run (not an ELF, wrong architecture, ...), as shells report. SIGTERM,
SIGHUP, SIGINT or SIGQUIT sent to the sandbox itself go to the guest's foreground process
group, as a terminal's signals do (with SIGWINCH, SIGTSTP and SIGCONT; sandbox/kernel/tty.py):
a guest that handles them runs on; one that dies of one is said as "killed by SIGTERM sent
to the sandbox", every guest process ends, the private root is removed and the status is 128
+ that signal, as a shell reports. Before the run begins, they stop it at once.
A usage mistake is one line and status 2 (`sandbox.commands`), found before the guest runs.
An output the user named (--trace-out, --fault-log, --stats-json) that the host refuses
(ENOSPC, EIO, EPIPE) ends the run: the guest is killed, one line names the file and the
error, status 74 (EX_IOERR). A closed pipe on the sandbox's own stderr (the trace, --stats,
its messages) ends it quietly with 141, as SIGPIPE ends strace.
The private root is removed on every way out, internal errors (70) included, unless
--keep-root keeps it (its path is said); files the guest left there are counted in one line
when stderr is a terminal. A root that could not be removed is said in one line on stderr
and never changes the status.

The commands and their options are click's, in `sandbox.commands`. The one exception is a
plain `sandbox run PROG [ARGS]...`, with no option before PROG: there is nothing to parse,
so `main` runs it with `RUN_DEFAULTS` without importing click, whose import is about a
seventh of a short run's start-up (bench/RESULTS.md). A test checks that click's own
parse of `run PROG` gives exactly `RUN_DEFAULTS`.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from sandbox.errors import EngineUnavailable, LoadError, SandboxError
from sandbox.hostfs import CleanupError
from sandbox.kernel.options import Options
from sandbox.trace import OutputFailed

EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126
EXIT_INTERNAL = 70  # EX_SOFTWARE, sysexits.h
EXIT_NO_ENGINE = 69  # EX_UNAVAILABLE: no CPU engine could be loaded (errors.EngineUnavailable)
EXIT_USAGE = 2  # a usage mistake, as click (and most commands) report it
EXIT_IOERR = 74  # EX_IOERR, sysexits.h: an output the user named failed (trace.OutputFailed)
EXIT_SIGPIPE = 128 + signal.SIGPIPE  # the sandbox's own stderr or stdout is a pipe nobody reads
EXIT_INTERRUPTED = 128 + 2  # SIGINT, as a shell reports a job it interrupted
EXIT_SIGNALLED = 128  # + the signal's number, as a shell reports a job a signal ended
#: Signals to the sandbox process that stop the run in order if they come before it begins,
#: and go to the guest once it runs (unless they were ignored when the sandbox started, as
#: `nohup` leaves SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)
#: Signals only a running guest is given (their default is the sandbox's own otherwise).
RUN_SIGNALS = (signal.SIGWINCH, signal.SIGTSTP, signal.SIGCONT)

if TYPE_CHECKING:
    from sandbox.api import RunResult, Sandbox

#: The parameters `sandbox run PROG` passes to `execute` when no option is given: the run
#: options' own defaults (`Options`), and the CLI's reporting options off.
RUN_DEFAULTS: dict[str, object] = {
    **{name: getattr(Options, name) for name in (
        "memory", "trace_faults", "trace_syscalls", "root", "cwd", "inherit_env", "deterministic", "seed",
        "file_fault_around", "max_resident", "timeout", "max_instructions", "max_processes", "max_open_files",
        "max_map_count", "disk", "uid", "gid", "system", "sysroot", "cpus", "net")},
    "mounts": (), "env": (), "fault_log": None,  # given to the kernel as lists and a file, in execute
    "stats": False, "stats_json": None, "dump_pagetables": False, "fault_around": None, "keep_root": False,
    "trace_filter": None, "trace_out": None,  # strace's -e trace= (a set of names) and -o FILE
    "translate": (),  # --translate VA: addresses to walk through the page tables at exit
    "gdb": None, "gdb_wait": False,  # --gdb PORT: a gdb remote stub (sandbox.gdbstub)
    "step_faults": False,  # --step-faults: a panel per fault, pausing on a terminal (sandbox.stepper)
}


def main() -> None:
    """The `sandbox` command, then an exit without interpreter teardown.

    Every command has closed what it opened (the machine, its temporary root, its log files)
    before it returns; what is left is Python collecting thousands of objects one by one, a
    tenth of a short run's time. So stdout and stderr are flushed and the process exits.
    """
    gc.disable()  # start-up allocates ~100,000 objects, none of them garbage; _run re-enables
    argv = sys.argv[1:]
    try:
        if is_plain_run(argv):
            status = execute(argv[1], tuple(argv[2:]), show_maps=False, **RUN_DEFAULTS)
        else:
            from sandbox.commands import cli

            cli.main(args=argv, prog_name="sandbox")
            status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    except BrokenPipeError:  # a report on stdout (`sandbox maps PROG | head -1`): quiet, as SIGPIPE
        status = EXIT_SIGPIPE
    except EngineUnavailable as error:
        say(f"sandbox: no CPU engine: {error}")
        status = EXIT_NO_ENGINE
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # a reader that left early: quiet, as SIGPIPE would end us
            status = EXIT_SIGPIPE if status == 0 else status
        except ValueError:  # a closed stream
            pass
    os._exit(status)


def is_plain_run(argv: list[str]) -> bool:
    """`run PROG [ARGS]...` with PROG not an option: everything after PROG is the guest's."""
    return len(argv) >= 2 and argv[0] == "run" and not argv[1].startswith("-")


#: Seconds the sandbox's own message waits for a stderr nobody reads, then is dropped: the
#: run is over, and --timeout must not be outlived for a message.
SAY_PATIENCE = 1.0
#: Set when the sandbox's own stderr turned out to be a pipe nobody reads (EPIPE): the
#: command then ends with EXIT_SIGPIPE, as strace dies of SIGPIPE.
stderr_closed = False


def say(text: str, end: str = "\n") -> None:
    """One message on stderr (the guest owns stdout), never blocking for long; a closed
    pipe drops it and is remembered (`stderr_closed`)."""
    global stderr_closed
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a host stream (e.g. captured)
        sys.stderr.write(text + end)
        return
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        stderr_closed = True
        return
    except OSError:
        pass  # an earlier write's failure: this message is still tried
    if _write_patiently(fd, (text + end).encode(errors="replace"), SAY_PATIENCE) == errno.EPIPE:
        stderr_closed = True


def _write_patiently(fd: int, data: bytes, patience: float) -> int:
    """Write `data` to `fd` as the stream takes it, for at most `patience` seconds; the
    rest is dropped (files.write_nonblocking: no write blocks). The errno that stopped
    it, or 0."""
    import select
    import time

    from sandbox.kernel.hostfiles import write_nonblocking

    deadline, view = time.monotonic() + patience, memoryview(data)
    while view:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([], [fd], [], wait)[1]:
            return 0
        try:
            view = view[write_nonblocking(fd, view) or 0:]
        except OSError as error:
            return error.errno
    return 0


class StopSignals:
    """Host signals to the sandbox process while it is installed (a `with` block). Before
    the run, the first stop signal is recorded and stops the run as it begins; during the
    run, each goes to the guest's foreground process group (`Sandbox.forward_signal`: the
    handler only posts it, the kernel delivers it at a safe point); after the run they
    change nothing: cleanup goes on."""

    def __init__(self) -> None:
        self.signo: int | None = None
        self.forwarded: set[int] = set()
        self._sandbox: Sandbox | None = None
        self._over = False
        self._saved: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._install(STOP_SIGNALS)
        return self

    def __exit__(self, *exc: object) -> None:
        for signo, handler in self._saved.items():
            signal.signal(signo, handler)

    def _install(self, signals: tuple[int, ...]) -> None:
        for signo in signals:
            if signal.getsignal(signo) is not signal.SIG_IGN:
                self._saved[signo] = signal.signal(signo, self._on_signal)

    @contextmanager
    def running(self, sandbox: Sandbox) -> Iterator[None]:
        """The run itself: host signals go to `sandbox`'s guest (a stop signal that came
        before it began stops it at once)."""
        from sandbox.api import Stopped

        if self.signo is not None:
            raise Stopped(self.signo)
        sandbox.listen_for_signals()
        self._sandbox = sandbox
        self._install(RUN_SIGNALS)
        try:
            yield
        finally:
            self._sandbox, self._over = None, True
            for signo in RUN_SIGNALS:
                if signo in self._saved:
                    signal.signal(signo, self._saved.pop(signo))

    def _on_signal(self, signo: int, _frame: FrameType | None) -> None:
        if self._sandbox is not None:
            self.forwarded.add(signo)
            self._sandbox.forward_signal(signo)
        elif self.signo is None and not self._over and signo in STOP_SIGNALS:
            self.signo = signo

    def death_message(self, result: RunResult) -> str | None:
        """The one line for how the guest ended: a death by a signal the sandbox was sent
        says so."""
        if result.signal in self.forwarded and result.message == f"killed by {signal.Signals(result.signal).name}":
            return f"killed by {signal.Signals(result.signal).name} sent to the sandbox"
        return result.message


def execute(prog: str, args: tuple[str, ...], memory: int, trace_faults: bool, trace_syscalls: bool,
            stats: bool, stats_json: str | None, show_maps: bool, mounts: tuple[str, ...], env: tuple[str, ...],
            fault_log: str | None, dump_pagetables: bool, fault_around: int | None, keep_root: bool,
            report_to_stdout: bool = False, translate: tuple[str, ...] = (), **options) -> int:
    """Run one guest; report; return the exit status for the host.

    The reports (--maps, the page tables, --stats) go to stderr, since the guest owns
    stdout, unless `report_to_stdout` (`sandbox maps` and `sandbox pagetable`, which exist
    to print them): then the guest's stdout is the host's stderr during the run.
    """
    if fault_around:
        from sandbox.mm.policy import fault_around as fault_around_policy

        options["fault_policies"] = [fault_around_policy(fault_around)]
    step_faults = options.pop("step_faults", False)
    gdb = (options.pop("gdb", None), options.pop("gdb_wait", False))
    replay = options.pop("replay", None)  # --snapshot-at ADDR --replay N (sandbox.snapshot.Replay)
    trace_out = options.pop("trace_out")  # alone, it means --trace-syscalls, as strace -o FILE
    trace_syscalls = traced_calls(trace_syscalls or bool(trace_out and not trace_faults), options.pop("trace_filter"))
    try:
        options["trace_out"] = open(trace_out, "w") if trace_out else None  # noqa: SIM115 - closed below
    except OSError as error:
        say(f"sandbox: --trace-out {trace_out}: {error.strerror}")
        return EXIT_USAGE
    try:
        log = open(fault_log, "w") if fault_log else None  # noqa: SIM115 - closed below
    except OSError as error:
        say(f"sandbox: --fault-log {fault_log}: {error.strerror}")
        return EXIT_USAGE
    named = {f"--trace-out {trace_out}": options["trace_out"], f"--fault-log {fault_log}": log}
    failed = None
    try:
        with StopSignals() as stop, guest_stdout_to_stderr(report_to_stdout):
            result, tables, status = _run(prog, args, stop, dump_pagetables, keep_root, memory, trace_syscalls,
                                          trace_faults, mounts=list(mounts), env=list(env), fault_log=log,
                                          translate=translate, step_faults=step_faults, gdb=gdb, replay=replay,
                                          **options)
    except OutputFailed as error:
        failed = error
    finally:
        failed = close_outputs(named.values(), failed)
    if failed is not None:
        return output_failed(failed, named)
    if stop.signo is not None:
        say(f"sandbox: {prog}: killed by {signal.Signals(stop.signo).name} sent to the sandbox")
        return EXIT_SIGNALLED + stop.signo
    if result is None:
        return status
    return _report(prog, result, stop, tables, show_maps, stats, stats_json, report_to_stdout)


def _report(prog: str, result: RunResult, stop: StopSignals, tables: str, show_maps: bool, stats: bool,
            stats_json: str | None, report_to_stdout: bool) -> int:
    """After a run: the guest's end in one line, the reports asked for; the status."""
    sys.stdout.flush()
    message = stop.death_message(result)
    if message:
        say(f"sandbox: {prog}: {message}")
    report = sys.stdout.write if report_to_stdout else lambda text: say(text, end="")
    if show_maps:
        report(result.maps)
    if tables:
        report(tables)
    if report_to_stdout:
        sys.stdout.flush()  # a closed pipe is said now (BrokenPipeError: EXIT_SIGPIPE), not lost at exit
    if stats:
        say(format_stats(result.stats))
    if stats_json and not _write_stats(stats_json, result.stats):
        return EXIT_IOERR
    return EXIT_SIGPIPE if stderr_closed else result.status


def close_outputs(files: Iterable[TextIO | None], failed: OutputFailed | None) -> OutputFailed | None:
    """Close the output files the user named; `failed`, or the first close that failed (a
    last buffer the disk refused). Every file is closed either way."""
    for file in files:
        if file is None:
            continue
        try:
            file.close()
        except OSError as error:
            failed = failed or OutputFailed(file, error)
    return failed


def output_failed(failed: OutputFailed, named: dict[str, TextIO | None]) -> int:
    """The status, and the one line, for an output that failed during the run: a file the
    user named is said with its option and the error (EXIT_IOERR); a closed pipe on the
    sandbox's own stderr is quiet (EXIT_SIGPIPE, as SIGPIPE ends strace)."""
    global stderr_closed
    if failed.stream is sys.stderr and failed.error.errno == errno.EPIPE:
        stderr_closed = True
        return EXIT_SIGPIPE
    name = next((option for option, file in named.items() if file is failed.stream), "stderr")
    say(f"sandbox: {name}: {failed.error.strerror or failed.error}; the run was ended")
    return EXIT_IOERR


def traced_calls(trace_syscalls: bool, trace_filter: frozenset[str] | None) -> bool | frozenset[str]:
    """What the tracer traces: every call (True), none (False), or the calls --trace-filter
    named (which implies --trace-syscalls)."""
    if trace_filter is None:
        return trace_syscalls
    return trace_filter or False


def _write_stats(path: str, stats: dict) -> bool:
    """--stats-json (its path was checked before the run); False, said, if it failed."""
    import json  # only here: json's import is a measurable share of start-up

    try:
        with open(path, "w") as f:
            json.dump(stats, f, indent=2, sort_keys=True)
    except OSError as error:
        say(f"sandbox: --stats-json {path}: {error.strerror}")
        return False
    return True


@contextmanager
def guest_stdout_to_stderr(active: bool) -> Iterator[None]:
    """While `active`, the host's fd 1 is its stderr (the guest's fd 1 is the host's fd 1),
    so that stdout carries only what the command prints after the run."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _run(prog: str, args: tuple[str, ...], stop: StopSignals, dump_pagetables: bool, keep_root: bool,
         *sandbox_args: object, translate: tuple[str, ...] = (), step_faults: bool = False,
         gdb: tuple[int | None, bool] = (None, False), replay: tuple[int, int] | None = None,
         **sandbox_options: object) -> tuple[RunResult | None, str, int]:
    """Make a sandbox, run PROG in it (unless a stop signal came first) and close it, which
    removes its private root (unless `keep_root`), however the run ended. (result, page
    tables, 0) after a run, (None, "", exit status) when PROG could not run or the sandbox
    failed."""
    from sandbox.api import Sandbox, Stopped

    try:
        sandbox = Sandbox(*sandbox_args, **sandbox_options)
        gc.freeze()  # what start-up made lives as long as the run: later collections skip it
        gc.enable()  # (main disabled it during start-up)
        try:
            if step_faults:  # a panel per fault, pausing on a terminal (sandbox.stepper)
                from sandbox.stepper import FaultStepper

                sandbox.add_fault_listener(FaultStepper(sandbox))
            stub = _listen_for_gdb(sandbox, *gdb) if gdb[0] is not None else None
            with stop.running(sandbox):
                result = sandbox.run(prog, [prog, *args]) if replay is None else _replayed(sandbox, prog, args, replay)
                if stub is not None:
                    stub.finish()  # gdb hears how the process ended
                tables = sandbox.pagetables() if dump_pagetables else ""
                tables += "".join(translate_report(sandbox, prog, va) for va in translate)
        finally:
            close_sandbox(sandbox, keep_root)
    except Stopped:
        return None, "", EXIT_SIGNALLED + stop.signo
    except OutputFailed:
        raise  # not a sandbox bug: execute says which output failed
    except SandboxError as error:
        say(f"sandbox: {error}")
        missing = isinstance(error, LoadError) and error.errno == errno.ENOENT
        return None, "", EXIT_NOT_FOUND if missing else EXIT_CANNOT_EXECUTE
    except Exception as error:  # noqa: BLE001 - the one place a sandbox bug is reported
        if os.environ.get("SANDBOX_DEBUG"):
            raise
        say(f"sandbox: internal error (a sandbox bug, not the guest's): {type(error).__name__}: "
             f"{error} at {where(error)}; SANDBOX_DEBUG=1 shows the traceback")
        return None, "", EXIT_INTERNAL
    return result, tables, 0


def _replayed(sandbox: Sandbox, prog: str, args: tuple[str, ...], replay: tuple[int, int]) -> RunResult:
    """--snapshot-at ADDR --replay N: the first run (its result is the command's), then the
    replays from the snapshot, summed up in one line on stderr (sandbox.snapshot.Replay)."""
    from sandbox.snapshot import Replay

    plan = Replay(sandbox, *replay)
    result = sandbox.run(prog, [prog, *args], on_stdout=plan.writer(1), on_stderr=plan.writer(2))
    summary = plan.replay()
    say(summary)
    return result


def _listen_for_gdb(sandbox: Sandbox, port: int, wait_again: bool) -> object:
    """--gdb PORT: the stub the run will wait for before its first instruction; the port
    (PORT 0: a free one) is said on stderr. SandboxError if it cannot be had."""
    from sandbox.gdbstub import attach

    try:
        stub, port = attach(sandbox, port, wait_again)
    except OSError as error:
        raise SandboxError(f"--gdb {port}: {error.strerror}") from None
    say(f"sandbox: gdb: listening on 127.0.0.1:{port}")
    return stub


def translate_report(sandbox: Sandbox, prog: str, text: str) -> str:
    """--translate VA at exit: the walk of VA (checked by the command before the run; a
    symbol of a position-independent PROG moves by its load address, known only now)
    through the last process's tables, with the CPU's own answer beside it."""
    from sandbox.engine import UC_PROT_READ
    from sandbox.mm.translate import format_translation, parse_va, symbol_va, translate_va

    space = sandbox.process.space
    try:
        va = parse_va(text, lambda name: symbol_va(space, prog, name))
    except ValueError as error:
        return f"sandbox: --translate: {error}\n"
    space.switch_to()  # the CPU's answer must come from the same tables
    return format_translation(translate_va(space, va, lambda v: sandbox.machine.uc.vmem_translate(v, UC_PROT_READ)))


def close_sandbox(sandbox: Sandbox, keep_root: bool) -> None:
    """Close the sandbox; a private root that could not be removed is said, not fatal
    (the guest's status stands). With `keep_root` the private root stays and its path is
    said; without, files the guest wrote there are counted in one line on a terminal
    (a user who wrote results to /tmp learns they are gone; scripts see nothing)."""
    if keep_root:
        kept = sandbox.kernel.keep_private_root()
        if kept is not None:
            say(f"sandbox: the guest's private root (its / and /tmp) is kept at {kept}")
    elif sandbox.kernel.private_root is not None and _on_terminal(sys.stderr):
        _say_files_lost(sandbox.kernel.private_root)
    sandbox.machine.frames.stop_zeroing()  # its RAM is unmapped next: no scrubbing
    try:
        sandbox.close()
    except CleanupError as error:
        say(f"sandbox: cleanup: {error}")


#: The most entries the count of files left in a private root looks at: the guest shaped
#: that tree, and the note must not take longer than the run.
COUNT_FILES_MOST = 10_000


def _say_files_lost(root: str) -> None:
    """One line if the guest left files in its private root, which is about to go."""
    count, complete = count_files(root, COUNT_FILES_MOST)
    if count:
        many = f"{count}{'' if complete else '+'} file{'s' if count != 1 else ''}"
        say(f"sandbox: the guest wrote {many} in its private root (its / and /tmp), removed at exit; "
             "--keep-root keeps it, --mount HOST:GUEST shows a host directory")


def count_files(root: str, most: int) -> tuple[int, bool]:
    """Entries other than directories under `root`, without following links, and whether
    they were all counted: the walk stops at `most` entries looked at. Unreadable
    directories are skipped."""
    count, seen, pending = 0, 0, [root]
    while pending and seen < most:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        count += 1
                    if seen >= most:
                        break
        except OSError:
            continue
    return count, seen < most


def _on_terminal(stream: object) -> bool:
    """True if `stream` is a host terminal."""
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def where(error: BaseException) -> str:
    """file:line where `error` was raised."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return f"{os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}" if frame is not None else "?"


def format_stats(stats: dict) -> str:
    """The --stats block: one fact per line, aligned."""
    frames = stats["frames"]
    rows = [("page faults", stats["faults_total"])]
    rows += [(f"  {kind}", n) for kind, n in sorted(stats["faults"].items())]
    rows += [("frames used at exit", frames["used"]), ("frames peak", frames["peak"]),
             ("frames total", frames["total"]), ("page-table pages", stats["page_table_pages"]),
             ("regions", stats["regions"]), ("processes", stats["processes"]), ("threads", stats["threads"]),
             ("pages shared at fork", stats["pages_shared_at_fork"]),
             ("context switches", stats["context_switches"]), ("system calls", stats["syscalls_total"])]
    rows += [(f"  {name}", n) for name, n in sorted(stats["syscalls"].items(), key=lambda kv: (-kv[1], kv[0]))]
    rows.append(("engine", stats.get("engine", "?")))  # which libunicorn ran (sandbox/engine.py)
    rows.append(("fast path", stats.get("fast_path", "?")))  # system calls through C (sandbox/fastpath.py)
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
