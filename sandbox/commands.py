"""The click commands behind `sandbox`: run, maps, pagetable, translate, report, demo, plot, batch
(and --help, --version).

`sandbox.cli.main` comes here for everything but a plain `sandbox run PROG [ARGS]...`.
A usage mistake (a bad option value, an unknown demo, an output file that cannot be
written) is one line on stderr and exit status 2, found before any guest runs.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import click

from sandbox.cli import (
    EXIT_CANNOT_EXECUTE,
    EXIT_IOERR,
    EXIT_SIGPIPE,
    EXIT_USAGE,
    RUN_DEFAULTS,
    execute,
    output_failed,
)
from sandbox.errors import SandboxError
from sandbox.trace import OutputFailed

MIN_MEMORY = 4 << 20
#: The least --max-resident: the smallest static program (one code page, one stack page)
#: takes 9 frames: the PML4, a PDPT, PD and PT above each of its two pages, and the pages.
MIN_RESIDENT = 9 << 12
#: The largest --memory: the frame allocator keeps 5 bytes per 4 KiB frame (80 MiB here).
MAX_MEMORY = 64 << 30
_SIZE = re.compile(r"^(\d+)([KMG]?)(i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def usage_error(message: str) -> None:
    """A user's mistake: one line on stderr, exit status 2."""
    click.echo(f"sandbox: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _bytes(text: str, example: str) -> int:
    """'64M' -> 67108864 (K, M, G are powers of 1024)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size: a number of bytes, or with K, M or G (e.g. {example})")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def parse_size(_ctx: click.Context | None, _param: click.Parameter | None, text: str) -> int:
    """Guest RAM: a page multiple of at least 4 MiB and at most MAX_MEMORY, that the host
    agrees to reserve (an untouched anonymous mapping costs nothing, and the host's
    overcommit check refuses one larger than its memory)."""
    size = _bytes(text, "64M")
    if size < MIN_MEMORY or size % 4096 or size > MAX_MEMORY:
        raise click.BadParameter(f"{text!r}: need a multiple of 4 KiB, at least 4M and at most "
                                 f"{MAX_MEMORY >> 30}G")
    import mmap

    try:
        mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS).close()
    except OSError as error:
        raise click.BadParameter(f"{text!r}: the host will not reserve that much ({error.strerror})") from None
    return size


def _disk_size(_ctx: click.Context, _param: click.Parameter, text: str) -> int:
    """--disk: any size, like 1G or 512K."""
    return _bytes(text, "1G")


def _resident_size(_ctx: click.Context, _param: click.Parameter, text: str | None) -> int | None:
    """--max-resident: a size of at least MIN_RESIDENT (less cannot hold any program), or
    None when the option is not given."""
    if text is None:
        return None
    size = _bytes(text, "16M")
    if size < MIN_RESIDENT:
        raise click.BadParameter(f"{text!r}: at least {MIN_RESIDENT >> 10}K (the smallest program's "
                                 "pages and page tables)")
    return size


def _seconds(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    """--timeout: seconds, more than 0 (inf: none); NaN is refused (it would compare false
    with every deadline, a limit that never fires)."""
    if value is not None and not value > 0:  # True for NaN
        raise click.BadParameter(f"{value!r}: need seconds, more than 0")
    return value


def _cwd(_ctx: click.Context, _param: click.Parameter, path: str) -> str:
    """--cwd: an absolute guest path, as docker's -w must be (relative to what? the guest
    has no working directory yet)."""
    if not path.startswith("/"):
        raise click.BadParameter(f"{path!r} is not absolute (the guest's working directory starts at /)")
    return path


def _env(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> tuple[str, ...]:
    """--env: NAME=VALUE as given; a bare NAME is the host's NAME=value when the host has
    it and nothing when not, as `docker run -e NAME` does."""
    given = []
    for item in items:
        name, equals, _ = item.partition("=")
        if not name:
            raise click.BadParameter(f"{item!r}: need NAME=VALUE or NAME")
        if equals:
            given.append(item)
        elif name in os.environ:
            given.append(f"{name}={os.environ[name]}")
    return tuple(given)


def _mounts(_ctx: click.Context, _param: click.Parameter, specs: tuple[str, ...]) -> tuple[str, ...]:
    """--mount: each HOST:GUEST[:ro|rw] checked now (the host path must exist), so that a
    bad one is a usage error before anything runs; the kernel parses them again."""
    from sandbox.kernel.vfs import parse_mount

    for spec in specs:
        try:
            parse_mount(spec)
        except SandboxError as error:
            raise click.BadParameter(str(error).removeprefix(f"--mount {spec}: ")) from None
    return specs


def output_path(_ctx: click.Context | None, _param: click.Parameter | None, path: str | None) -> str | None:
    """An output file the command writes after the run: checked before it (an existing
    writable file, or a new name in an existing writable directory)."""
    if path is None:
        return None
    if os.path.isdir(path):
        raise click.BadParameter(f"{path}: is a directory")
    target = path if os.path.exists(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise click.BadParameter(f"{path}: no such directory {os.path.dirname(path)}")
    if not os.access(target, os.W_OK):
        raise click.BadParameter(f"{path}: {os.strerror(errno.EACCES)}")
    refused = _refused(path)
    if refused is not None:
        raise click.BadParameter(f"{path}: {refused}")
    return path


def _refused(path: str) -> str | None:
    """Why the host refuses to write `path`, found by trying (os.access says yes to root for
    /proc files, and knows nothing of a directory like /proc that takes no new files): an
    existing regular file is opened for appending (nothing changes), a new one is made and
    removed. None if it can be written (a device or FIFO is taken as it is)."""
    try:
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(path)
        elif os.path.isfile(path):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY))
    except OSError as error:
        return error.strerror
    return None


class OneLineError(click.ClickException):
    """A click error (a usage error, mostly) shown as one line: `sandbox run: Invalid
    value for '--memory': ...`, with the original's exit status (2 for usage)."""

    def __init__(self, error: click.ClickException) -> None:
        super().__init__(error.format_message())
        self.exit_code = error.exit_code
        self.where = getattr(getattr(error, "ctx", None), "command_path", "sandbox")

    def show(self, file: object = None) -> None:
        click.echo(f"{self.where}: {self.format_message()}", err=True)


class OneLineErrors(click.Group):
    """click's group, its errors and its commands' said in one line (OneLineError) rather
    than a usage block; everything else (--help, Ctrl-C, a closed pipe) is click's."""

    def make_context(self, *args, **kwargs) -> click.Context:  # noqa: ANN002, ANN003 - click's
        """click's, with a parse error made one line."""
        with _one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> object:
        """click's, with a subcommand's parse or usage error made one line, and a closed
        pipe on the command's own stdout ending it quietly with 141 (click's own answer
        is 1), as SIGPIPE ends a command that prints."""
        try:
            with _one_line():
                return super().invoke(ctx)
        except BrokenPipeError:
            sys.exit(EXIT_SIGPIPE)


@contextmanager
def _one_line() -> Iterator[None]:
    """Turn a ClickException into a OneLineError (help for no arguments stays help)."""
    try:
        yield
    except (click.exceptions.NoArgsIsHelpError, OneLineError):
        raise
    except click.NoSuchOption as error:
        raise OneLineError(_no_such_option(error)) from None
    except click.ClickException as error:
        raise OneLineError(error) from None


def _no_such_option(error: click.NoSuchOption) -> click.UsageError:
    """An option the command does not have; for a command that runs PROG, a reminder that
    the sandbox's options come before PROG (everything after it is the guest's)."""
    runs_prog = error.ctx is not None and any(param.name == "prog" for param in error.ctx.command.params)
    hint = " (the sandbox's options come before PROG)" if runs_prog else ""
    guess = f"; did you mean {', '.join(sorted(error.possibilities))}?" if error.possibilities else ""
    return click.UsageError(f"no such option: {error.option_name}{hint}{guess}", ctx=error.ctx)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """--version: the package's version, then which libunicorn runs (the project's build or
    the PyPI wheel's, sandbox/engine.py), so a report names the engine it came from."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    from sandbox import engine, fastpath

    click.echo(f"sandbox, version {version('sandbox')}\nengine: {engine.describe()}\nfast path: {fastpath.state()}")
    ctx.exit()


CLI_EPILOG = """\b
Examples:
  sandbox run /bin/busybox echo hi              # run a program
  sandbox run --trace-syscalls /bin/ls /        # its system calls, as strace
  sandbox maps /bin/busybox true                # its address space at exit
  sandbox demo --list                           # the fault-handling demos
  sandbox run --help                            # one command's options

\b
Exit status: the command's (see each command's --help); 2 for a usage mistake.
"""


@click.group(cls=OneLineErrors, epilog=CLI_EPILOG)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and the engine, and exit.")
def cli() -> None:
    """Run x86-64 Linux programs in Unicorn under a small kernel's memory manager."""


def _trace_filter(_ctx: click.Context, _param: click.Parameter, text: str | None) -> frozenset[str] | None:
    """--trace-filter: the names of the calls to trace, or None when not given."""
    if text is None:
        return None
    from sandbox.syscall_decode import parse_trace_filter

    try:
        return parse_trace_filter(text)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


STEP_FAULTS_HELP = (
    "Stop at each page fault and show it on stderr: address and access, kind, region, rip, the "
    "page-table entry before and after (bits named), the frame (pfn). Enter: next fault; c Enter: run "
    "on, no more stops or panels; q Enter: end the run as Ctrl-C would (status 130). Answers are read "
    "from /dev/tty, not the guest's stdin. When stderr is not a terminal, every fault is shown without "
    "stopping.")


def _run_options(f):
    """The options `run`, `maps` and `pagetable` share; their defaults are `RUN_DEFAULTS`."""
    default = RUN_DEFAULTS
    for option in reversed([
        click.option("--memory", default=f"{default['memory'] >> 20}M", show_default=True, callback=parse_size,
                     metavar="SIZE", help=f"Guest-physical RAM (e.g. 64M, 1G; at most {MAX_MEMORY >> 30}G)."),
        click.option("--trace-faults", is_flag=True, help="One line per page fault on stderr."),
        click.option("--step-faults", is_flag=True, help=STEP_FAULTS_HELP),
        click.option("--trace-syscalls", is_flag=True,
                     help="System-call trace in strace's format (strace -f -s 32) on stderr."),
        click.option("--trace-filter", callback=_trace_filter, metavar="EXPR",
                     help="Trace only these calls, as strace -e trace=EXPR: names, %file, %desc, "
                          "%process, %memory, %network, %signal, %ipc, /regex, a leading ! for the "
                          "others (e.g. 'openat,close' or '%file,%desc'); implies --trace-syscalls."),
        click.option("--trace-out", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
                     help="Write the traces to FILE, each line led by the task id, as strace -f -o FILE "
                          "(alone, it implies --trace-syscalls)."),
        click.option("--stats", is_flag=True, help="Print faults, frames and syscalls at exit (stderr)."),
        click.option("--stats-json", callback=output_path, metavar="FILE",
                     help="Write the statistics as JSON to this file."),
        click.option("--root", type=click.Path(exists=True, file_okay=False),
                     help="Host directory the guest sees as / (default: a fresh private one with /tmp)."),
        click.option("--keep-root", is_flag=True,
                     help="Keep the private root at exit and say where (files the guest wrote there)."),
        click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:ro|rw]", callback=_mounts,
                     help="Expose a host file or directory at GUEST (repeatable)."),
        click.option("--sysroot", default=default["sysroot"], show_default=True,
                     type=click.Path(exists=True, file_okay=False),
                     help="Host directory whose /usr, /bin, /lib... and allowed /etc files the guest "
                          "sees, read-only (like qemu-user's -L)."),
        click.option("--no-system", "system", flag_value=False, default=default["system"],
                     help="No system trees: the bare private root (for static programs)."),
        click.option("--cwd", default=default["cwd"], show_default=True, metavar="DIR", callback=_cwd,
                     help="The guest's working directory, an absolute guest path (as docker's -w)."),
        click.option("--env", "env", multiple=True, metavar="K=V|K", callback=_env,
                     help="Set a guest environment variable (repeatable); a bare K copies the host's K "
                          "when it is set and is left out when not (as docker run -e K)."),
        click.option("--inherit-env", is_flag=True, help="Start from the host's environment, not a fixed one."),
        click.option("--deterministic", is_flag=True,
                     help="Fixed clock and seeded randomness: two runs give identical traces."),
        click.option("--seed", default=default["seed"], show_default=True, type=int, metavar="N",
                     help="Seed for --deterministic randomness (giving it implies --deterministic)."),
        click.option("--fault-log", callback=output_path, metavar="FILE",
                     help="Write every page fault as a JSON line (see `sandbox plot`)."),
        click.option("--dump-pagetables", is_flag=True, help="Print the live page-table tree at exit (stderr)."),
        click.option("--translate", "translate", multiple=True, metavar="VA",
                     help="At exit, walk VA (0x-hex, decimal or a symbol of PROG) through the page "
                          "tables, each entry's bits named, beside the CPU's own answer (stderr; repeatable)."),
        click.option("--fault-around", type=click.IntRange(min=1, max=511), metavar="N",
                     help="Map up to N neighbouring pages on each demand fault (fewer faults)."),
        click.option("--file-fault-around", type=click.IntRange(min=1, max=512),
                     default=default["file_fault_around"], show_default=True, metavar="PAGES",
                     help="Pages one read fault on a file mapping maps, rounded down to a "
                     "power of two, as Linux's fault_around_bytes (1: one page per fault)."),
        click.option("--max-resident", callback=_resident_size, metavar="SIZE",
                     help=f"Cap on memory in use across all the guest's processes (e.g. 16M; at "
                          f"least {MIN_RESIDENT >> 10}K)."),
        click.option("--timeout", type=float, callback=_seconds, metavar="SECONDS",
                     help="Stop the guest after this much wall time (exit 137)."),
        click.option("--max-instructions", type=click.IntRange(min=1), metavar="N",
                     help="Stop the guest after N instructions (exit 137; counting slows the run)."),
        click.option("--max-processes", type=click.IntRange(min=1), default=default["max_processes"],
                     show_default=True, metavar="N",
                     help="At most N processes, zombies included (RLIMIT_NPROC); fork beyond answers EAGAIN."),
        click.option("--max-open-files", type=click.IntRange(min=3, max=1 << 20),
                     default=default["max_open_files"], show_default=True, metavar="N",
                     help="Descriptors per process (EMFILE beyond)."),
        click.option("--cpus", type=click.IntRange(min=1, max=1024), default=default["cpus"], show_default=True,
                     metavar="N",
                     help="CPUs the guest is told it has (sched_getaffinity); it runs on one."),
        click.option("--max-map-count", type=click.IntRange(min=8), default=default["max_map_count"],
                     show_default=True, metavar="N",
                     help="Regions per process (Linux's vm.max_map_count; ENOMEM beyond)."),
        click.option("--disk", default=f"{default['disk'] >> 20}M", show_default=True, callback=_disk_size,
                     metavar="SIZE", help="Host disk the guest may fill: files, memfds (ENOSPC beyond)."),
        click.option("--net", type=click.Choice(["loopback", "host"]), default=default["net"], show_default=True,
                     help="Guest TCP/UDP: a loopback network inside the sandbox, or the host's network "
                          "through host sockets (host: the guest reaches whatever the host reaches)."),
        click.option("--gdb", type=click.IntRange(min=0, max=65535), metavar="PORT",
                     help="Wait for gdb on 127.0.0.1:PORT (0: a free port, said on stderr), stopped "
                          "before the first instruction: `gdb PROG -ex 'target remote :PORT'`."),
        click.option("--gdb-wait", is_flag=True,
                     help="With --gdb: when gdb detaches or drops, stop and wait for the next one "
                          "(without it the guest runs on)."),
        click.option("--uid", type=click.IntRange(min=0, max=(1 << 32) - 2), default=default["uid"],
                     show_default="the invoking user's", metavar="UID",
                     help="The guest's user id (never host privilege)."),
        click.option("--gid", type=click.IntRange(min=0, max=(1 << 32) - 2), default=default["gid"],
                     show_default="the invoking user's", metavar="GID", help="The guest's group id."),
    ]):
        f = option(f)
    return f


RUN_EPILOG = """\b
Examples:
  sandbox run /bin/busybox echo hi        # a static program
  sandbox run /bin/ls -l /usr             # dynamic: the host's /usr, /lib read-only
  sandbox run --trace-syscalls -e trace=%file -o trace.txt /bin/ls /   # as strace
  sandbox run --trace-faults --stats ./prog
  sandbox run --mount "$PWD:/work" --cwd /work ./prog   # the current directory
  sandbox run --keep-root ./prog          # keep what the guest wrote in its /

\b
The guest's / is a fresh private directory (with /tmp), removed at exit; --mount
and --root show it host files, --keep-root keeps it. The guest owns stdin, stdout
and stderr; the sandbox's own reports (--stats, --maps, traces) go to stderr.
The sandbox's options come before PROG; everything after PROG is the guest's.
-o, -e, -s and -f are strace's spellings of the trace options.

\b
Exit status: the guest's own; 128+N if signal N killed it (137 at --timeout or
--max-instructions); 127 if PROG does not exist; 126 if it cannot run (not an
ELF, not x86-64...); 2 for a usage mistake; 74 if an output you named (-o,
--trace-out, --fault-log, --stats-json) failed (disk full, I/O error, closed
pipe): the run is ended; 141 if the sandbox's own stderr is a closed pipe (as
SIGPIPE ends strace); 69 if no CPU engine loads; 70 for a sandbox bug.
"""

#: The end of the exit-status line of the commands that run PROG and report on it.
_PROG_STATUS = """127 if PROG does not exist; 126 if it cannot run; 2 for a usage mistake; 74 if
an output you named failed; 69 if no CPU engine loads; 70 for a sandbox bug."""

MAPS_EPILOG = f"""\b
Examples:
  sandbox maps /bin/busybox true                # the regions at exit, on stdout
  sandbox maps --memory 256M /bin/ls / > maps.txt

\b
Exit status: the guest's own; 128+N if signal N killed it; {_PROG_STATUS}
"""

PAGETABLE_EPILOG = f"""\b
Examples:
  sandbox pagetable /bin/busybox true           # the tree at exit, on stdout
  sandbox pagetable /bin/busybox true > tables.txt

\b
Exit status: the guest's own; 128+N if signal N killed it; {_PROG_STATUS}
"""

TRANSLATE_EPILOG = f"""\b
Examples:
  sandbox translate /bin/busybox 0x400000 true  # the first page of busybox
  sandbox translate ./prog main                 # a symbol of PROG

\b
Exit status: the guest's own; 128+N if signal N killed it; {_PROG_STATUS}
"""

REPORT_EPILOG = f"""\b
Examples:
  sandbox report -o report.html /bin/busybox ls /
  sandbox report --memory 256M -o fork.html /bin/busybox sh -c 'ls | wc -l'

\b
Exit status: the guest's own; 128+N if signal N killed it; {_PROG_STATUS}
"""

DEMO_EPILOG = """\b
Examples:
  sandbox demo --list                           # the demos, numbered
  sandbox demo cow-fork                         # copy-on-write after fork
  sandbox demo 3 --trace-faults                 # by number, each fault traced

\b
Exit status: 0 when the demo ran; 137 out of memory, 130 after q at
--step-faults (the guest did not finish); 2 for a usage mistake (an unknown
demo); 74 if --fault-log failed; 126 if the demo's guest cannot run; 70 for a
sandbox bug.
"""

PLOT_EPILOG = """\b
Examples:
  sandbox run --fault-log faults.jsonl /bin/busybox true
  sandbox plot faults.jsonl -o faults.png       # then look at faults.png
  sandbox plot faults.jsonl --time -o faults.svg --title busybox

\b
Exit status: 0 when the picture is written; 2 for a usage mistake (a log that is
not a --fault-log, an output that cannot be written or is no picture format);
74 if writing the picture failed; 126 without matplotlib.
"""

#: PROG ends the sandbox's options: what follows is the guest's, options included. Before
#: it, a word starting with '-' that is no option is a usage error (`--` or `./-name` reach
#: a program so named).
_RUN_SETTINGS = {"allow_interspersed_args": False}


def _execute(prog: str, args: tuple[str, ...], options: dict, **how: object) -> None:
    """Run the guest with the command's options and exit with its status; a --seed given
    on the command line implies --deterministic (a seed means nothing without it)."""
    source = click.get_current_context().get_parameter_source("seed")
    if source is click.core.ParameterSource.COMMANDLINE:
        options["deterministic"] = True
    sys.exit(execute(prog, args, **options, **how))


def _strace_expression(_ctx: click.Context, _param: click.Parameter, text: str | None) -> frozenset[str] | None:
    """strace's -e: trace=EXPR, or a bare EXPR (strace's default qualifier); the other
    qualifiers (signal=, abbrev=, ...) are strace's alone."""
    if text is None:
        return None
    qualifier, equals, expression = text.partition("=")
    if equals and qualifier != "trace":
        raise click.BadParameter(f"{text!r}: only -e trace=EXPR is supported (not {qualifier}=)")
    return _trace_filter(_ctx, _param, expression if equals else text)


#: The largest -s: bytes of one string the trace reads from the guest and prints.
MAX_STRING_LIMIT = 1 << 20


def _strace_options(f):  # noqa: ANN001, ANN201 - a click decorator
    """strace's own spellings on `run` (-o, -e, -s, -f), for hands that know strace."""
    for option in reversed([
        click.option("-o", "strace_out", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
                     help="strace's -o FILE: --trace-out FILE."),
        click.option("-e", "strace_expression", callback=_strace_expression, metavar="trace=EXPR",
                     help="strace's -e trace=EXPR (or -e EXPR): --trace-filter EXPR."),
        click.option("-s", "string_limit", type=click.IntRange(min=0, max=MAX_STRING_LIMIT), metavar="N",
                     help="strace's -s N: bytes of each string or buffer the trace shows (default 32)."),
        click.option("-f", "follow", is_flag=True,
                     help="strace's -f, accepted: the trace always follows forks and threads."),
    ]):
        f = option(f)
    return f


def _take_strace_spellings(options: dict, strace_out: str | None, expression: frozenset[str] | None,
                           string_limit: int | None) -> None:
    """Fold -o and -e into --trace-out and --trace-filter (one spelling of each, not both);
    -s sets the trace's string length (sandbox.strace_format, read only by the tracer)."""
    for value, name, long in ((strace_out, "trace_out", "--trace-out"), (expression, "trace_filter", "--trace-filter")):
        if value is None:
            continue
        if options[name] is not None:
            usage_error(f"give {long} or strace's {'-o' if name == 'trace_out' else '-e'}, not both")
        options[name] = value
    if string_limit is not None:
        from sandbox import strace_format

        strace_format.STRING_LIMIT = string_limit  # one run per command: the setting is the process's


@cli.command(context_settings=_RUN_SETTINGS, epilog=RUN_EPILOG, short_help="Run PROG with ARGS inside the sandbox.")
@_run_options
@_strace_options
@click.option("--maps", is_flag=True, help="Print the address space at exit (/proc/PID/maps format, stderr).")
@click.option("--snapshot-at", metavar="ADDR|SYMBOL",
              help="Snapshot the machine the first time the CPU reaches ADDR (0x-hex or a symbol of PROG), "
                   "then run the rest again from there --replay times; the first run's output is PROG's "
                   "(through pipes), each replay's is kept and compared, one summary line on stderr.")
@click.option("--replay", type=click.IntRange(min=0, max=1_000_000), default=None, metavar="N",
              help="With --snapshot-at: how many times to run on from the snapshot (default 1).")
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(prog: str, args: tuple[str, ...], maps: bool, snapshot_at: str | None, replay: int | None,
        strace_out: str | None, strace_expression: frozenset[str] | None, string_limit: int | None, follow: bool,
        **options) -> None:
    """Run PROG with ARGS inside the sandbox, as the shell would run it natively."""
    _take_strace_spellings(options, strace_out, strace_expression, string_limit)
    _check_addresses(prog, options["translate"])
    _execute(prog, args, options, show_maps=maps, replay=_replay_plan(prog, snapshot_at, replay))


def _replay_plan(prog: str, snapshot_at: str | None, replay: int | None) -> tuple[int, int] | None:
    """--snapshot-at and --replay as (address, count); a usage error for a bad address."""
    if snapshot_at is None:
        if replay is not None:
            usage_error("--replay needs --snapshot-at ADDR")
        return None
    from sandbox.snapshot import resolve_address

    try:
        return resolve_address(prog, snapshot_at), 1 if replay is None else replay
    except ValueError as error:
        usage_error(f"--snapshot-at: {error}")


@cli.command(context_settings=_RUN_SETTINGS, epilog=MAPS_EPILOG,
             short_help="Run PROG; print its address space at exit.")
@_run_options
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def maps(prog: str, args: tuple[str, ...], **options) -> None:
    """Run PROG and print its address space at exit, like /proc/PID/maps, on stdout
    (`sandbox maps PROG > f`); the guest's own stdout goes to stderr."""
    _check_addresses(prog, options["translate"])
    _execute(prog, args, options, show_maps=True, report_to_stdout=True)


@cli.command(context_settings=_RUN_SETTINGS, epilog=PAGETABLE_EPILOG,
             short_help="Run PROG; print its page-table tree at exit.")
@_run_options
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def pagetable(prog: str, args: tuple[str, ...], **options) -> None:
    """Run PROG and print its live page-table tree (PML4 down to the pages) at exit, on
    stdout (`sandbox pagetable PROG > f`); the guest's own stdout goes to stderr."""
    _check_addresses(prog, options["translate"])
    options["dump_pagetables"] = True
    _execute(prog, args, options, show_maps=False, report_to_stdout=True)


def _check_addresses(prog: str, addresses: tuple[str, ...]) -> None:
    """--translate's addresses, checked before the run: a usage error (one line, status 2)
    for one that is not a number, not canonical, or not a symbol of PROG's ELF file."""
    from sandbox.mm.translate import elf_symbol, parse_va

    for text in addresses:
        try:
            parse_va(text, lambda name: elf_symbol(prog, name))
        except ValueError as error:
            usage_error(f"translate: {error}")


@cli.command(context_settings=_RUN_SETTINGS, epilog=TRANSLATE_EPILOG,
             short_help="Run PROG; walk VA through its page tables at exit.")
@_run_options
@click.argument("prog")
@click.argument("va")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def translate(prog: str, va: str, args: tuple[str, ...], **options) -> None:
    """Run PROG with ARGS and, at exit, translate VA as the MMU does: its PML4, PDPT, PD and
    PT indices and offset, each entry read from guest RAM with its bits named, the physical
    address, the CPU's own answer beside it, and the region VA lies in. VA is 0x-hex,
    decimal, or a symbol of PROG (e.g. main). Printed on stdout; the guest's stdout goes to
    stderr."""
    options["translate"] = (va, *options["translate"])
    _check_addresses(prog, options["translate"])
    _execute(prog, args, options, show_maps=False, report_to_stdout=True)


@cli.command(context_settings=_RUN_SETTINGS, epilog=REPORT_EPILOG,
             short_help="Run PROG; write an address-space explorer page.")
@_run_options
@click.option("-o", "--output", default="report.html", show_default=True, callback=output_path, metavar="FILE",
              help="The HTML page to write (one self-contained file).")
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def report(prog: str, args: tuple[str, ...], output: str, **options) -> None:
    """Run PROG with ARGS and write one self-contained HTML page exploring its address
    spaces: for each process (forks too) its regions, its page-table tree (expandable,
    each entry decoded), the fault timeline, and the frames shared copy-on-write between
    processes. The guest's stdout goes to stderr; stdout gets one line saying what the
    page holds. (The options that report on the run, such as --stats or --translate, are
    `sandbox run`'s.)"""
    from sandbox.report import REPORT_OPTIONS, run_report

    ctx = click.get_current_context()
    for name in [name for name in options if name not in REPORT_OPTIONS]:
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            usage_error(f"report: --{name.replace('_', '-')} is for `sandbox run`")
        del options[name]
    if ctx.get_parameter_source("seed") is click.core.ParameterSource.COMMANDLINE:
        options["deterministic"] = True
    try:
        status = run_report(prog, args, output, **options)
    except OSError as error:  # closing a --trace-out or --fault-log whose last buffer the host refused
        click.echo(f"sandbox: report: --trace-out or --fault-log: {error.strerror}", err=True)
        status = EXIT_IOERR
    sys.exit(status)


#: The run options a demo takes, parsed exactly as `run` parses them.
DEMO_RUN_OPTIONS = ("memory", "trace_faults", "fault_log", "step_faults")


def _some_run_options(names: tuple[str, ...]):  # noqa: ANN202 - a click decorator
    """Add the run options called `names` (same flags, checks, help and defaults as `run`'s)."""
    chosen = [p for p in _run_options(lambda: None).__click_params__ if p.name in names]

    def add(f):  # noqa: ANN001, ANN202 - click's decorated function
        f.__click_params__ = [*getattr(f, "__click_params__", []), *chosen]
        return f
    return add


@cli.command(epilog=DEMO_EPILOG, short_help="Run a fault-handling demo (`--list` names them).")
@click.argument("name", required=False)
@click.option("--list", "show_list", is_flag=True, help="List the demos.")
@_some_run_options(DEMO_RUN_OPTIONS)
def demo(name: str | None, show_list: bool, **options) -> None:
    """Run a fault-handling demo and tell what happened, wrapped to the terminal's width
    (COLUMNS). NAME is a demo's name or its number in `sandbox demo --list`. The run options
    below work as for `sandbox run`; the guest's exit status is the command's when it does
    not finish (137 out of memory, 130 after q at --step-faults)."""
    from sandbox.demos import DEMOS

    if show_list or not name:
        width, digits = max(len(entry.name) for entry in DEMOS.values()), len(str(len(DEMOS)))
        for index, entry in enumerate(DEMOS.values(), 1):
            click.echo(f"{index:>{digits}}. {entry.name:<{width}}  {entry.title}")
        return
    names = list(DEMOS)
    if name.isdigit() and 1 <= int(name) <= len(names):
        name = names[int(name) - 1]
    if name not in DEMOS:
        usage_error(f"no demo {name!r}; `sandbox demo --list` names them (1 to {len(names)})")
    _run_demo(name, **options)


def _run_demo(name: str, fault_log: str | None, **options) -> None:
    """Run demo `name` with the run options, its story wrapped to the terminal; a guest that
    did not finish ends the command with its status and its one line, as `run` says it."""
    import shutil

    from sandbox.demos import DemoStopped, run_demo

    try:
        with open(fault_log, "w") if fault_log else nullcontext() as log:
            run_demo(name, width=shutil.get_terminal_size().columns, fault_log=log, **options)
    except DemoStopped as error:
        click.echo(f"sandbox: {error}", err=True)
        sys.exit(error.status)
    except SandboxError as error:
        click.echo(f"sandbox: {error}", err=True)
        sys.exit(EXIT_CANNOT_EXECUTE)
    except (OSError, OutputFailed) as error:  # the --fault-log (or stderr's trace) failed during the run
        on_stderr = isinstance(error, OutputFailed) and error.stream is sys.stderr
        failed = OutputFailed(sys.stderr if on_stderr else fault_log, getattr(error, "error", error))
        sys.exit(output_failed(failed, {f"--fault-log {fault_log}": fault_log}))


def _picture_path(ctx: click.Context, param: click.Parameter, path: str) -> str:
    """plot -o: a writable file whose extension is a format matplotlib writes."""
    output_path(ctx, param, path)
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # plot_fault_log says how to install it
        return path
    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1].removeprefix(".").lower()
    if extension not in formats:
        raise click.BadParameter(f"{path}: {'.' + extension if extension else 'no extension'} is not "
                                 f"a picture format; use one of {', '.join(sorted(formats))}")
    return path


@cli.command(epilog=PLOT_EPILOG, short_help="Draw a --fault-log: the program's working set.")
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="faults.png", show_default=True, callback=_picture_path, metavar="FILE",
              help="The picture to write; its extension names the format (png, svg, pdf...).")
@click.option("--time", "by_time", is_flag=True, help="x is the wall time of each fault, not its number.")
@click.option("--title", metavar="TEXT", help="Put TEXT before the counts in the picture's title.")
def plot(log: str, output: str, by_time: bool, title: str | None) -> None:
    """Draw a --fault-log: every fault by number (or time) against the region it hit, one
    band per region as `sandbox maps` names it, one colour per process, one marker per
    fault kind; below, each process's resident pages."""
    from sandbox.plot import plot_fault_log, summary_line

    try:
        summary = plot_fault_log(log, output, time=by_time, title=title)
    except SandboxError as error:  # a log that is not one (the user's input), or no matplotlib
        click.echo(f"sandbox: {error}", err=True)
        sys.exit(EXIT_USAGE if _has_matplotlib() else EXIT_CANNOT_EXECUTE)
    except OSError as error:  # the output went away or filled the disk after the check
        click.echo(f"sandbox: {output}: {error.strerror}", err=True)
        sys.exit(EXIT_IOERR)
    click.echo(summary_line(output, summary))


def _has_matplotlib() -> bool:
    """True if matplotlib can be imported (`sandbox plot` draws with it)."""
    from importlib.util import find_spec

    return find_spec("matplotlib") is not None


BATCH_EPILOG = """\b
Examples:
  sandbox batch runs.toml -o results.jsonl          # one run per core
  sandbox batch runs.jsonl -o results.jsonl -j 8 --deterministic
  sandbox batch runs.toml -o results.jsonl --dask tcp://scheduler:8786

\b
Each entry runs in its own `sandbox run` process, killed if it outlives its
timeout by a margin. Records are appended as runs finish; rerunning skips the
entries already recorded, so an interrupted batch resumes. With --dask, the
program, stdin and `files` of each entry are shipped to the workers as bytes;
`mounts` name paths every worker must see. Exit status: 0 if every run passed,
1 if any failed, 2 for a bad manifest or option, 130 if interrupted.

\b
A manifest is as trusted as a command line: its programs, stdin files, `files`
and mounts are any host path you can read. For a manifest you did not write,
give --manifest-root DIR: every such path must then resolve inside DIR.
"""


def _batch_timeout(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """A finite timeout, more than 0 and at most the manifest's own cap (NaN would
    disable every limit)."""
    from sandbox.batch.manifest import MAX_TIMEOUT

    if not 0 < value <= MAX_TIMEOUT:  # False for NaN
        raise click.BadParameter(f"{value!r}: need seconds, more than 0 and at most {MAX_TIMEOUT:g}")
    return value


@cli.command(epilog=BATCH_EPILOG, short_help="Run a manifest's programs, each in its own sandbox, in parallel.")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, callback=output_path, metavar="FILE",
              help="The records, one JSON line per run (appended; entries already there are skipped).")
@click.option("-j", "--jobs", type=click.IntRange(min=1, max=4096), metavar="N",
              help="Runs at once on this machine (default: one per core).")
@click.option("--timeout", type=float, callback=_batch_timeout, default=60.0, show_default=True,
              metavar="SECONDS", help="Timeout of the entries that set none.")
@click.option("--manifest-root", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Confine the manifest: its programs, input files and mount sources must resolve "
                   "inside DIR.")
@click.option("--deterministic", is_flag=True,
              help="Run the guests with --deterministic and write records in manifest order: two "
                   "batches give the same lines, timing fields apart.")
@click.option("--dask", metavar="ADDRESS",
              help="Run on a Dask cluster (its scheduler's address, tcp://HOST:8786); programs and "
                   "input files are shipped as bytes.")
@click.option("--slowest", type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
              help="Slowest runs the summary lists.")
def batch(manifest: str, output: str, jobs: int | None, timeout: float, manifest_root: str | None,
          deterministic: bool, dask: str | None, slowest: int) -> None:
    """Run every entry of MANIFEST (TOML or JSON Lines) in its own sandbox, in parallel;
    write a record per run to --output and print a summary. The manifest's format is in
    sandbox/batch/manifest.py and the README."""
    from sandbox.batch.command import batch as run_batch

    sys.exit(run_batch(manifest, output, jobs, timeout, deterministic, dask, slowest, manifest_root))
