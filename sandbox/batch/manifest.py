"""A batch manifest, JSON Lines or TOML, parsed into `Entry` values.

One entry per run. JSON Lines: one object per line (blank lines skipped; a line that is only
`{"defaults": {...}}` sets defaults for the lines after it). TOML: `[[run]]` tables, and an
optional `[defaults]` table. Keys of an entry:

    id        required, unique
    program   the ELF file to run (relative paths are relative to the manifest's directory)
    args      list of strings (argv[1:])
    stdin     "inline text", or {file = PATH}, {text = "..."} or {base64 = "..."}
    files     {"/guest/path" = "host/path"}: files shipped with the run, mounted read-only
    mounts    ["HOST:/GUEST[:ro|rw]"]: host paths the runner's machine must see
    env       {K = "V"} or ["K=V"]
    limits    {timeout = 5, memory = "64M", instructions = 10000000, max_resident = "16M",
               max_processes, max_open_files, max_map_count, disk, cpus}
    options   more `sandbox run` options, as on its command line (["--no-system"])
    expect    {stdout = (as stdin), status = 0}

Every entry's options go through `sandbox run`'s own parser here, so a bad size or a missing
mount is a `ManifestError` naming file:line before anything runs. The check is memoized by
the options themselves: a manifest of many entries with the same limits parses each set once.

A manifest is as trusted as a command line: it names host files the batch user can read
(programs, stdin, `files`) and host directories to mount. `root` (--manifest-root DIR)
confines it: every program, stdin or expected-output file, `files` entry and mount source
must then resolve (symlinks followed, by realpath) to a path inside DIR, and that resolved
path is what runs. A manifest is bounded: MAX_MANIFEST bytes, MAX_ENTRIES entries, and
MAX_INLINE_TOTAL bytes of inline stdin held for the runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from sandbox.errors import SandboxError

#: `limits` keys and the `sandbox run` options they become ("instructions" is short for
#: max_instructions, the one limit every grader sets).
LIMIT_OPTIONS = {
    "timeout": "--timeout", "memory": "--memory", "instructions": "--max-instructions",
    "max_instructions": "--max-instructions", "max_resident": "--max-resident",
    "max_processes": "--max-processes", "max_open_files": "--max-open-files",
    "max_map_count": "--max-map-count", "disk": "--disk", "cpus": "--cpus",
}
#: `sandbox run` options an entry may not give: the runner owns them (--stats-json), or they
#: write host files outside the run's own directory, or they print and exit.
#: --timeout has its own key (limits.timeout), from which the runner's wall limit is derived.
DENIED_OPTIONS = ("--timeout", "--stats-json", "--trace-out", "--fault-log", "--keep-root", "--root", "--help",
                  "--version")
#: More options denied under --manifest-root: they reach host paths or the host's network
#: outside the root (mounts go in `mounts`, where their sources are checked).
CONFINED_DENIED_OPTIONS = ("--mount", "--sysroot", "--inherit-env", "--net", "--gdb")
ENTRY_KEYS = {"id", "program", "args", "stdin", "files", "mounts", "env", "limits", "options", "expect"}
EXPECT_KEYS = {"stdout", "status"}
INPUT_KINDS = ("file", "text", "base64")
#: An inline input or expected output larger than this belongs in a file.
MAX_INLINE = 16 << 20
#: The most inline stdin all entries together may hold (it stays in memory until its run).
MAX_INLINE_TOTAL = 64 << 20
#: The largest manifest file, and the most entries one may have (larger batches: split them,
#: each to its own -o).
MAX_MANIFEST = 128 << 20
MAX_ENTRIES = 100_000
#: The longest timeout an entry (or batch --timeout) may give, in seconds (11.5 days).
MAX_TIMEOUT = 1e6
_RUN_HEADER = re.compile(r"^\s*\[\[\s*run\s*\]\]")


class ManifestError(SandboxError):
    """A manifest mistake: str() is `file:line: problem`."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Input:
    """Bytes given inline (`data`) or by a host file (`path`, absolute)."""

    data: bytes | None = None
    path: str | None = None

    def read(self) -> bytes:
        """The bytes themselves (the file is read now)."""
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as f:
            return f.read()


@dataclass(frozen=True)
class Entry:
    """One run, every path absolute. `options` are `sandbox run` options (limits, mounts,
    env, extras) without the program; `timeout` is the guest's --timeout in seconds, which
    the runner's wall limit is derived from. The expected stdout is kept as its digest and
    size, so that a run is judged without holding the file."""

    id: str
    program: str
    where: str  # file:line, for messages
    args: tuple[str, ...] = ()
    stdin: Input | None = None
    files: tuple[tuple[str, str], ...] = ()  # (guest path, host path), shipped as bytes
    options: tuple[str, ...] = ()
    timeout: float = 60.0
    expect_stdout: tuple[str, int] | None = None  # (sha256 hex, size)
    expect_status: int | None = None

    def needs(self) -> tuple[str, ...]:
        """The host files a remote worker must be sent: program, stdin file, shipped files."""
        stdin = (self.stdin.path,) if self.stdin is not None and self.stdin.path else ()
        return (self.program, *stdin, *(host for _guest, host in self.files))


def parse_manifest(path: str, default_timeout: float = 60.0, deterministic: bool = False,
                   root: str | None = None) -> list[Entry]:
    """Every entry of the manifest at `path` (TOML if it ends in .toml, else JSON Lines);
    ManifestError at the first mistake. `default_timeout` applies to entries without one;
    `deterministic` adds --deterministic to every run; `root`, when given, is the directory
    every host path the manifest names must resolve inside."""
    text = _read(path)
    try:
        raw = _toml_entries(path, text) if path.endswith(".toml") else _jsonl_entries(path, text)
    except (RecursionError, ValueError) as error:  # nesting too deep, an int over 4300 digits
        raise ManifestError(path, f"cannot be parsed: {_first_line(error)}") from None
    base = os.path.dirname(os.path.abspath(path))
    place = _Place(base, None if root is None else os.path.realpath(root))
    entries, seen, inline = [], set(), 0
    for where, fields in raw:
        entry = _entry(where, fields, place, default_timeout, deterministic)
        if entry.id in seen:
            raise ManifestError(where, f"id {entry.id!r} is used twice")
        inline += len(entry.stdin.data) if entry.stdin is not None and entry.stdin.data else 0
        if inline > MAX_INLINE_TOTAL:
            raise ManifestError(where, f"inline stdin totals over {MAX_INLINE_TOTAL >> 20} MiB; put inputs in files")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def _read(path: str) -> str:
    """The manifest's text, at most MAX_MANIFEST bytes."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST + 1)
        if len(data) > MAX_MANIFEST:
            raise ManifestError(path, f"is over {MAX_MANIFEST >> 20} MiB; split the batch")
        return data.decode()
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(path, getattr(error, "strerror", None) or str(error)) from None


def _first_line(error: Exception) -> str:
    return (str(error) or type(error).__name__).splitlines()[0]


def _count(where: str, count: int) -> None:
    """ManifestError once a manifest has more than MAX_ENTRIES entries."""
    if count > MAX_ENTRIES:
        raise ManifestError(where, f"more than {MAX_ENTRIES} entries; split the batch")


@dataclass(frozen=True)
class _Place:
    """Where the manifest's relative paths start (`base`) and, if confined, the resolved
    directory every host path must stay in (`root`)."""

    base: str
    root: str | None

    def resolve(self, where: str, value: str, what: str) -> str:
        """`value` made absolute; under a root, its realpath, which must lie inside it."""
        path = os.path.normpath(os.path.join(self.base, value))
        if self.root is None:
            return path
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.root]) != self.root:
            raise ManifestError(where, f"{what} {value}: outside --manifest-root {self.root}")
        return real


def _jsonl_entries(path: str, text: str) -> list[tuple[str, dict]]:
    """(file:line, fields with defaults applied) for each object line."""
    out, defaults = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        _count(where, len(out) + 1)
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as error:
            raise ManifestError(where, f"not JSON: {error.msg} at column {error.colno}") from None
        except (RecursionError, ValueError) as error:
            raise ManifestError(where, f"not JSON we accept: {_first_line(error)}") from None
        if not isinstance(fields, dict):
            raise ManifestError(where, f"expected a JSON object, not {type(fields).__name__}")
        if set(fields) == {"defaults"}:
            defaults = _table(where, fields["defaults"], "defaults")
            continue
        out.append((where, _with_defaults(defaults, fields)))
    return out


def _toml_entries(path: str, text: str) -> list[tuple[str, dict]]:
    """(file:line of its [[run]] header, fields with defaults applied) for each run."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = re.search(r"line (\d+)", str(error))
        raise ManifestError(f"{path}:{line.group(1) if line else 1}", f"not TOML: {error}") from None
    except (RecursionError, ValueError) as error:
        raise ManifestError(f"{path}:1", f"not TOML we accept: {_first_line(error)}") from None
    unknown = set(document) - {"run", "defaults"}
    if unknown:
        raise ManifestError(f"{path}:1", f"unknown top-level key {sorted(unknown)[0]!r} (expected [[run]] "
                                         f"and [defaults])")
    defaults = _table(f"{path}:1", document.get("defaults", {}), "defaults")
    runs = document.get("run", [])
    if not isinstance(runs, list):
        raise ManifestError(f"{path}:1", "run must be an array of tables ([[run]])")
    _count(f"{path}:1", len(runs))
    headers = [n for n, line in enumerate(text.splitlines(), 1) if _RUN_HEADER.match(line)]
    out = []
    for index, fields in enumerate(runs):
        where = f"{path}:{headers[index] if index < len(headers) else 1}"
        out.append((where, _with_defaults(defaults, _table(where, fields, "run"))))
    return out


def _with_defaults(defaults: dict, fields: dict) -> dict:
    """The entry's fields over the defaults; limits and env merged key by key."""
    merged = {**defaults, **fields}
    for key in ("limits", "env"):
        if isinstance(defaults.get(key), dict) and isinstance(fields.get(key), dict):
            merged[key] = {**defaults[key], **fields[key]}
    return merged


def _table(where: str, value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise ManifestError(where, f"{what} must be a table/object, not {type(value).__name__}")
    return value


def _entry(where: str, fields: dict, place: _Place, default_timeout: float, deterministic: bool) -> Entry:
    """One entry from its fields; ManifestError naming `where` for any mistake."""
    unknown = set(fields) - ENTRY_KEYS
    if unknown:
        raise ManifestError(where, f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(ENTRY_KEYS))})")
    entry_id = fields.get("id")
    if not isinstance(entry_id, str) or not entry_id.strip():
        raise ManifestError(where, "every entry needs an id (a non-empty string)")
    if not entry_id.isprintable():
        raise ManifestError(where, f"id {entry_id!r} has control characters")
    program = _host_file(where, place, fields.get("program"), "program")
    limits, timeout = _limits(where, fields.get("limits", {}), default_timeout)
    options = (*limits, *_mounts(where, place, fields.get("mounts", [])), *_env(where, fields.get("env", {})),
               *_extra_options(where, place, fields.get("options", [])),
               *(("--deterministic",) if deterministic else ()))
    files = _files(where, place, fields.get("files", {}))
    _check_run_options(where, (*options, *(o for guest, _ in files for o in ("--mount", f"{place.base}:{guest}"))))
    expect = _table(where, fields.get("expect", {}), "expect")
    if set(expect) - EXPECT_KEYS:
        raise ManifestError(where, f"unknown key {sorted(set(expect) - EXPECT_KEYS)[0]!r} in expect "
                                   f"(known: status, stdout)")
    stdout = expect.get("stdout")
    return Entry(id=entry_id, program=program, where=where, args=_strings(where, fields.get("args", []), "args"),
                 stdin=None if "stdin" not in fields else _input(where, place, fields["stdin"], "stdin"),
                 files=files, options=tuple(options), timeout=timeout,
                 expect_stdout=None if stdout is None else _digest(_input(where, place, stdout, "expect.stdout")),
                 expect_status=_status(where, expect.get("status")))


def _strings(where: str, value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(where, f"{what} must be a list of strings")
    return tuple(value)


def _host_file(where: str, place: _Place, value: object, what: str) -> str:
    """An existing regular host file, made absolute against the manifest's directory."""
    if not isinstance(value, str) or not value:
        raise ManifestError(where, f"{what} must be a file name (a non-empty string)")
    path = place.resolve(where, value, what)
    if not os.path.isfile(path):
        problem = "not a regular file" if os.path.exists(path) else "no such file"
        raise ManifestError(where, f"{what} {value}: {problem}")
    return path


def _input(where: str, place: _Place, value: object, what: str) -> Input:
    """stdin or an expected output: "text", {file}, {text} or {base64}."""
    if isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in INPUT_KINDS:
        raise ManifestError(where, f"{what} must be a string or one of {{file}}, {{text}}, {{base64}}")
    (kind, content), = value.items()
    if not isinstance(content, str):
        raise ManifestError(where, f"{what}.{kind} must be a string")
    if kind == "file":
        return Input(path=_host_file(where, place, content, f"{what} file"))
    if len(content) > MAX_INLINE:
        raise ManifestError(where, f"{what} is over {MAX_INLINE >> 20} MiB inline; put it in a file")
    if kind == "text":
        return Input(data=content.encode())
    try:
        return Input(data=base64.b64decode(content, validate=True))
    except binascii.Error as error:
        raise ManifestError(where, f"{what}.base64 is not base64: {error}") from None


def _digest(source: Input) -> tuple[str, int]:
    """(sha256 hex, size) of an expected output, the file read in chunks."""
    digest, size = hashlib.sha256(), 0
    if source.data is not None:
        return hashlib.sha256(source.data).hexdigest(), len(source.data)
    with open(source.path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _status(where: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ManifestError(where, f"expect.status must be an exit status from 0 to 255, not {value!r}")
    return value


def _limits(where: str, value: object, default_timeout: float) -> tuple[list[str], float]:
    """`limits` as run options, and the timeout (the default one if not given)."""
    limits = _table(where, value, "limits")
    options, timeout = [], default_timeout
    for name, setting in limits.items():
        if name not in LIMIT_OPTIONS:
            raise ManifestError(where, f"unknown limit {name!r} (known: {', '.join(LIMIT_OPTIONS)})")
        if isinstance(setting, bool) or not isinstance(setting, int | float | str):
            raise ManifestError(where, f"limit {name} must be a number or a size string, not {setting!r}")
        if isinstance(setting, int) and abs(setting) > 1 << 64:  # str() of a huge int raises
            raise ManifestError(where, f"limit {name} is out of range")
        if name == "timeout":
            if isinstance(setting, str) or not 0 < setting <= MAX_TIMEOUT:
                raise ManifestError(where, f"limit timeout must be seconds, more than 0, not {setting!r}")
            timeout = float(setting)
            continue
        options += [LIMIT_OPTIONS[name], str(setting)]
    return ["--timeout", f"{timeout:g}", *options], timeout


def _mounts(where: str, place: _Place, value: object) -> list[str]:
    """--mount options, each HOST made absolute against the manifest's directory (and,
    under a root, resolved inside it)."""
    options = []
    for spec in _strings(where, value, "mounts"):
        host, _, rest = spec.partition(":")
        if host and rest:
            spec = f"{place.resolve(where, host, 'mount')}:{rest}"
        elif place.root is not None:
            raise ManifestError(where, f"mount {spec!r} is not HOST:/GUEST")
        options += ["--mount", spec]
    return options


def _env(where: str, value: object) -> list[str]:
    pairs = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else _strings(where, value, "env")
    if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
        raise ManifestError(where, "env values must be strings")
    if not all("=" in pair and not pair.startswith("=") for pair in pairs):
        raise ManifestError(where, "env entries must be K=V")
    return [o for pair in pairs for o in ("--env", pair)]


def _extra_options(where: str, place: _Place, value: object) -> tuple[str, ...]:
    options = _strings(where, value, "options")
    for option in options:
        name = option.split("=", 1)[0]
        if name in DENIED_OPTIONS:
            raise ManifestError(where, f"option {name} is not allowed in a batch")
        if place.root is not None and name in CONFINED_DENIED_OPTIONS:
            raise ManifestError(where, f"option {name} is not allowed under --manifest-root")
    return options


def _files(where: str, place: _Place, value: object) -> tuple[tuple[str, str], ...]:
    files = _table(where, value, "files")
    out = []
    for guest, host in files.items():
        if not guest.startswith("/") or ":" in guest or ".." in guest.split("/") or os.path.normpath(guest) == "/":
            raise ManifestError(where, f"files: {guest!r} is not an absolute guest path (other than /, without ..)")
        out.append((os.path.normpath(guest), _host_file(where, place, host, f"files {guest}")))
    return tuple(out)


def _check_run_options(where: str, options: tuple[str, ...]) -> None:
    """The options through `sandbox run`'s own parser (sizes, ranges, mounts); the first
    mistake as a ManifestError naming `where`."""
    problem = _run_options_problem(options)
    if problem:
        raise ManifestError(where, problem)


@lru_cache(maxsize=4096)
def _run_options_problem(options: tuple[str, ...]) -> str | None:
    """What `sandbox run`'s parser says of `options`, or None; memoized, since a click
    context costs about a millisecond and most entries share their options."""
    import click

    from sandbox.commands import run

    try:
        context = run.make_context("run", [*options, "--", "prog"])
    except click.exceptions.Exit:
        return "options must not print and exit"
    except click.ClickException as error:
        return error.format_message()
    if context.params["prog"] != "prog":  # `run` takes the first unknown option for PROG
        return f"No such option: {context.params['prog']}"
    return None
