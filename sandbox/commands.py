"""The click commands behind `sandbox`: run, maps, pagetable, demo, plot (and --help, --version).

`sandbox.cli.main` comes here for everything but a plain `sandbox run PROG [ARGS]...`.
"""

from __future__ import annotations

import re
import sys

import click

from sandbox.cli import EXIT_CANNOT_EXECUTE, RUN_DEFAULTS, execute
from sandbox.errors import SandboxError

MIN_MEMORY = 4 << 20
_SIZE = re.compile(r"^(\d+)([KMG]?)(i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _bytes(text: str, example: str) -> int:
    """'64M' -> 67108864 (K, M, G are powers of 1024)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like {example} or 1G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def parse_size(_ctx: click.Context | None, _param: click.Parameter | None, text: str) -> int:
    """Guest RAM: a page multiple of at least 4 MiB."""
    size = _bytes(text, "64M")
    if size < MIN_MEMORY or size % 4096:
        raise click.BadParameter(f"{text!r}: need a multiple of 4 KiB, at least 4M")
    return size


def _disk_size(_ctx: click.Context, _param: click.Parameter, text: str) -> int:
    """--disk: any size, like 1G or 512K."""
    return _bytes(text, "1G")


def _optional_size(ctx: click.Context, param: click.Parameter, text: str | None) -> int | None:
    """A size like 16M, or None when the option is not given."""
    return None if text is None else _bytes(text, "16M")


@click.group()
@click.version_option(package_name="sandbox")
def cli() -> None:
    """Run x86-64 Linux programs in Unicorn under a small kernel's memory manager."""


def _run_options(f):
    """The options `run`, `maps` and `pagetable` share; their defaults are `RUN_DEFAULTS`."""
    default = RUN_DEFAULTS
    for option in reversed([
        click.option("--memory", default=f"{default['memory'] >> 20}M", show_default=True, callback=parse_size,
                     help="Guest-physical RAM (e.g. 64M, 1G)."),
        click.option("--trace-faults", is_flag=True, help="One line per page fault on stderr."),
        click.option("--trace-syscalls", is_flag=True, help="strace-like system-call trace on stderr."),
        click.option("--stats", is_flag=True, help="Print faults, frames and syscalls at exit (stderr)."),
        click.option("--stats-json", type=click.Path(dir_okay=False, writable=True),
                     help="Write the statistics as JSON to this file."),
        click.option("--root", type=click.Path(exists=True, file_okay=False),
                     help="Host directory the guest sees as / (default: a fresh private one with /tmp)."),
        click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:ro|rw]",
                     help="Expose a host file or directory at GUEST (repeatable)."),
        click.option("--sysroot", default=default["sysroot"], show_default=True,
                     type=click.Path(exists=True, file_okay=False),
                     help="Host directory whose /usr, /bin, /lib... and allowed /etc files the guest "
                          "sees, read-only (like qemu-user's -L)."),
        click.option("--no-system", "system", flag_value=False, default=default["system"],
                     help="No system trees: the bare private root (for static programs)."),
        click.option("--cwd", default=default["cwd"], show_default=True, help="The guest's working directory."),
        click.option("--env", "env", multiple=True, metavar="K=V", help="Set a guest environment variable."),
        click.option("--inherit-env", is_flag=True, help="Start from the host's environment, not a fixed one."),
        click.option("--deterministic", is_flag=True,
                     help="Fixed clock and seeded randomness: two runs give identical traces."),
        click.option("--seed", default=default["seed"], show_default=True,
                     help="Seed for --deterministic randomness."),
        click.option("--fault-log", type=click.Path(dir_okay=False, writable=True),
                     help="Write every page fault as a JSON line (see `sandbox plot`)."),
        click.option("--dump-pagetables", is_flag=True, help="Print the live page-table tree at exit (stderr)."),
        click.option("--fault-around", type=click.IntRange(min=1, max=511), metavar="N",
                     help="Map up to N neighbouring pages on each demand fault (fewer faults)."),
        click.option("--file-fault-around", type=click.IntRange(min=1, max=512),
                     default=default["file_fault_around"], show_default=True, metavar="PAGES",
                     help="Pages one read fault on a file mapping maps, rounded down to a "
                     "power of two, as Linux's fault_around_bytes (1: one page per fault)."),
        click.option("--max-resident", callback=_optional_size, metavar="SIZE",
                     help="Cap on memory in use across all the guest's processes (e.g. 16M)."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
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
                     help="CPUs the guest is told it has (sched_getaffinity); it runs on one."),
        click.option("--max-map-count", type=click.IntRange(min=8), default=default["max_map_count"],
                     show_default=True, metavar="N",
                     help="Regions per process (Linux's vm.max_map_count; ENOMEM beyond)."),
        click.option("--disk", default=f"{default['disk'] >> 20}M", show_default=True, callback=_disk_size,
                     metavar="SIZE", help="Host disk the guest may fill: files, memfds (ENOSPC beyond)."),
        click.option("--net", type=click.Choice(["loopback", "host"]), default=default["net"], show_default=True,
                     help="Guest TCP/UDP: a loopback network inside the sandbox, or the host's network "
                          "through host sockets (host: the guest reaches whatever the host reaches)."),
        click.option("--uid", type=click.IntRange(min=0, max=(1 << 32) - 2), default=default["uid"],
                     show_default="the invoking user's", help="The guest's user id (never host privilege)."),
        click.option("--gid", type=click.IntRange(min=0, max=(1 << 32) - 2), default=default["gid"],
                     show_default="the invoking user's", help="The guest's group id."),
    ]):
        f = option(f)
    return f


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_run_options
@click.option("--maps", is_flag=True, help="Print the address space at exit (/proc/PID/maps format).")
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(prog: str, args: tuple[str, ...], maps: bool, **options) -> None:
    """Run PROG with ARGS inside the sandbox."""
    sys.exit(execute(prog, args, show_maps=maps, **options))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_run_options
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def maps(prog: str, args: tuple[str, ...], **options) -> None:
    """Run PROG and print its address space at exit, like /proc/PID/maps."""
    sys.exit(execute(prog, args, show_maps=True, **options))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_run_options
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def pagetable(prog: str, args: tuple[str, ...], **options) -> None:
    """Run PROG and print its live page-table tree (PML4 down to the pages) at exit."""
    options["dump_pagetables"] = True
    sys.exit(execute(prog, args, show_maps=False, **options))


@cli.command()
@click.argument("name", required=False)
@click.option("--list", "show_list", is_flag=True, help="List the demos.")
def demo(name: str | None, show_list: bool) -> None:
    """Run a fault-handling demo and tell what happened (`--list` names them)."""
    from sandbox.demos import DEMOS, run_demo

    if show_list or not name:
        width = max(len(entry.name) for entry in DEMOS.values())
        for index, entry in enumerate(DEMOS.values(), 1):
            click.echo(f"{index}. {entry.name:<{width}}  {entry.title}")
        return
    try:
        run_demo(name)
    except SandboxError as error:
        click.echo(f"sandbox: {error}", err=True)
        sys.exit(EXIT_CANNOT_EXECUTE)


@cli.command()
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="faults.png", show_default=True, help="The picture to write.")
def plot(log: str, output: str) -> None:
    """Draw a --fault-log as address against time: the program's working set."""
    from sandbox.plot import plot_fault_log

    try:
        count = plot_fault_log(log, output)
    except SandboxError as error:
        click.echo(f"sandbox: {error}", err=True)
        sys.exit(EXIT_CANNOT_EXECUTE)
    click.echo(f"{output}: {count} faults")
