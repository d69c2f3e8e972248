"""Dynamically linked programs, differentially: each runs natively and under `sandbox run`
with no extra option (the default system view), and what a user sees must be equal.

The guests in guests/dynamic are built by gcc, g++ and musl-gcc as they build by default;
the rest are Debian's own programs from /usr/bin. Every sandboxed run sees the build
directory at its own path (read-only) and starts in it, as the native run does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import GUESTS, guest, require_tool, run_native, run_sandbox
from tests.differential.test_differential import GUEST_ENV


def native_and_boxed(argv: list[str], env: dict[str, str] | None = None, cwd: Path = GUESTS,
                     options: tuple[str, ...] = (), stdin: bytes = b"") -> tuple:
    """(native, sandboxed) CompletedProcess of `argv` with the guest environment plus `env`."""
    full_env = {**GUEST_ENV, **(env or {})}
    native = run_native(argv, stdin, env=full_env, cwd=cwd)
    env_options = [f"--env={k}={v}" for k, v in (env or {}).items()]
    mounts = ["--mount", f"{GUESTS}:{GUESTS}:ro"] if cwd != GUESTS else []
    boxed = run_sandbox(["run", *mounts, "--mount", f"{cwd}:{cwd}:ro", "--cwd", str(cwd), *env_options, *options,
                         *argv], stdin, cwd=cwd)
    return native, boxed


def assert_same(native: subprocess.CompletedProcess, boxed: subprocess.CompletedProcess) -> None:
    assert boxed.stderr.decode() == native.stderr.decode()
    assert boxed.stdout.decode() == native.stdout.decode()
    assert boxed.returncode == native.returncode


@pytest.mark.parametrize("name", ["dyn-hello", "dyn-hello-nopie", "dyn-hello-musl"])
def test_default_builds_run(name: str) -> None:
    """gcc's default (a dynamic PIE), a dynamic ET_EXEC, and musl's dynamic build."""
    assert_same(*native_and_boxed([f"./{name}", "one", "two words"]))


def test_what_the_kernel_tells_ld_so() -> None:
    """AT_SECURE, AT_ENTRY, AT_PHDR, AT_PHNUM, AT_BASE, AT_EXECFN... as Linux gives them."""
    native, boxed = native_and_boxed([guest("dyn-auxv")])
    assert "AT_BASE is in ld-linux" in native.stdout.decode()
    assert_same(native, boxed)


def test_bind_now() -> None:
    assert_same(*native_and_boxed([guest("dyn-auxv")], env={"LD_BIND_NOW": "1"}))


@pytest.mark.parametrize("library", ["./libplugin.so", str(GUESTS / "libplugin.so")])
def test_dlopen_dlsym_and_dynamic_tls(library: str) -> None:
    native, boxed = native_and_boxed(["./dyn-dlopen", library])
    assert "answer 103" in native.stdout.decode()
    assert_same(native, boxed)


def test_library_path() -> None:
    """A library found only through LD_LIBRARY_PATH; without it, ld.so's own refusal."""
    native, boxed = native_and_boxed(["./dyn-uselib"], env={"LD_LIBRARY_PATH": str(GUESTS)})
    assert native.returncode == 0
    assert_same(native, boxed)
    native, boxed = native_and_boxed(["./dyn-uselib"])
    assert native.returncode == 127 and b"libgreet.so" in native.stderr
    assert_same(native, boxed)


def test_preload() -> None:
    native, boxed = native_and_boxed(["./dyn-getpid"], env={"LD_PRELOAD": str(GUESTS / "libpreload.so")})
    assert native.stdout == b"getpid interposed\n"
    assert_same(native, boxed)


def test_cxx_exceptions_and_libstdcxx() -> None:
    native, boxed = native_and_boxed(["./dyn-cxx"])
    assert native.returncode == 3 and b"caught thrown through main" in native.stdout
    assert_same(native, boxed)


# -- Debian's own programs ---------------------------------------------------------------


@pytest.fixture
def fixed_tree(tmp_path: Path) -> Path:
    """A directory with fixed names, contents, modes and times, for listings to agree."""
    sub = tmp_path / "sub"
    sub.mkdir()
    for name, text in {"b.txt": "pear\napple\nfig\n", "a.txt": "one\n", "c.sh": "#!/bin/sh\necho c\n"}.items():
        (sub / name).write_text(text)
        os.utime(sub / name, (1_600_000_000, 1_600_000_000))
    (sub / "c.sh").chmod(0o755)
    (sub / "link").symlink_to("a.txt")
    os.utime(sub, (1_600_000_000, 1_600_000_000))
    return sub


def test_ls_la(fixed_tree: Path) -> None:
    """From the parent, so that `..` is a host directory in both runs."""
    assert_same(*native_and_boxed(["/bin/ls", "-la", "sub"], cwd=fixed_tree.parent))


def test_cat_and_sort(fixed_tree: Path) -> None:
    assert_same(*native_and_boxed(["/bin/cat", "a.txt", "b.txt"], cwd=fixed_tree))
    assert_same(*native_and_boxed(["/usr/bin/sort", "-r", "b.txt"], cwd=fixed_tree))
    assert_same(*native_and_boxed(["/usr/bin/sort"], cwd=fixed_tree, stdin=b"b\nc\na\n"))


def test_python3_stdlib(fixed_tree: Path) -> None:
    python = "/usr/bin/python3"  # Debian's, whatever python3 the PATH finds first
    if not os.path.exists(python):
        pytest.fail("Debian's python3 is required (make system-deps installs it)")
    script = ("import json, re, subprocess, os\n"
              "names = sorted(os.listdir('.'))\n"
              "print(json.dumps({'names': names, 'digits': re.findall(r'\\d+', 'a1b22c333')}))\n"
              "out = subprocess.run(['/bin/echo', 'from', 'a', 'child'], capture_output=True, text=True)\n"
              "print(out.stdout.strip(), out.returncode)\n")
    assert_same(*native_and_boxed([python, "-c", script], cwd=fixed_tree))


def test_shell_pipeline(fixed_tree: Path) -> None:
    """dash forks and execs dynamic programs; `#!/bin/sh` scripts run through it."""
    assert_same(*native_and_boxed(["/bin/sh", "-c", "ls | wc -l; ./c.sh; sort b.txt | head -1"], cwd=fixed_tree))


def test_busybox_script_execs_dynamic_programs(fixed_tree: Path) -> None:
    """A static busybox shell running Debian's dynamic programs."""
    busybox = require_tool("busybox")
    assert_same(*native_and_boxed([busybox, "sh", "-c", "/bin/ls -1 | /usr/bin/tr a-z A-Z; /usr/bin/expr 6 \\* 7"],
                                  cwd=fixed_tree))


def test_maps_show_the_program_ld_so_and_libc() -> None:
    result = run_sandbox(["maps", "--mount", f"{GUESTS}:{GUESTS}:ro", guest("dyn-hello")])
    assert result.returncode == 0, result.stderr.decode()
    maps = result.stdout.decode()  # the maps on stdout, the guest's own output on stderr
    for needle in (str(GUESTS / "dyn-hello"), "ld-linux-x86-64.so.2", "libc.so.6", "[stack]"):
        assert needle in maps, maps
    program = [line for line in maps.splitlines() if line.endswith("dyn-hello")]
    assert program[0].startswith("555555554000-"), maps  # ELF_ET_DYN_BASE, as Linux without ASLR


def test_sysroot_replaces_the_host_system(tmp_path: Path) -> None:
    """--sysroot DIR: an Alpine-like tree (musl's ld.so, its own /etc) instead of the host's.
    Natively the same tree is run with chroot (root only; CI runs as root)."""
    root = tmp_path / "alpine"
    (root / "lib").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "etc").mkdir()
    musl = Path("/lib/ld-musl-x86_64.so.1")
    if not musl.exists():
        pytest.fail("musl's dynamic linker is not installed (make system-deps installs musl-tools)")
    shutil.copy(musl.resolve(), root / "lib" / "ld-musl-x86_64.so.1")
    shutil.copy(guest("dyn-hello-musl"), root / "bin" / "hello")
    (root / "etc" / "os-release").write_text('NAME="Tiny sysroot"\n')
    boxed = run_sandbox(["run", "--sysroot", str(root), str(root / "bin" / "hello"), "from", "sysroot"])
    assert boxed.returncode == 0, boxed.stderr.decode()
    assert boxed.stdout == b"hello, dynamic world: 2 argument(s)\n  from\n  sysroot\n"
    if os.geteuid() == 0:
        native = run_native(["chroot", str(root), "/bin/hello", "from", "sysroot"])
        assert_same(native, boxed)
    # The host's glibc is not in that view: a host dynamic program finds no interpreter.
    missing = run_sandbox(["run", "--sysroot", str(root), "/bin/true"])
    assert missing.returncode == 127
    assert b"interpreter /lib64/ld-linux-x86-64.so.2: not found" in missing.stderr


def test_a_script_runs_at_top_level(fixed_tree: Path) -> None:
    """`sandbox run ./c.sh`: the #! line is read and its interpreter found in the view, as
    execve does inside; a missing interpreter is one line and 127."""
    assert_same(*native_and_boxed(["./c.sh", "arg"], cwd=fixed_tree))
    broken = fixed_tree / "broken.sh"
    broken.write_text("#!/no/such/shell\necho never\n")
    broken.chmod(0o755)
    result = run_sandbox(["run", str(broken)])
    assert result.returncode == 127
    expected = f"sandbox: {broken}: No such file or directory (its #! interpreter /no/such/shell)\n"
    assert result.stderr.decode() == expected


# -- found by a differential sweep of /usr/bin (each failed before its fix) ----------------


def test_timeout_sees_its_child_end(fixed_tree: Path) -> None:
    """timeout sleeps in rt_sigsuspend; the SIGCHLD of a child that exec'd arrived while it
    slept, and the retried call had lost its name, so it was restarted instead of ending
    with EINTR: timeout waited out its limit and the run ended as a deadlock."""
    assert_same(*native_and_boxed(["/usr/bin/timeout", "20", "/bin/sh", "-c", "echo child; exit 3"],
                                  cwd=fixed_tree))


def test_make_runs_recipes(fixed_tree: Path) -> None:
    """make's children call setresuid(-1, euid, -1): keeping the guest's ids succeeds."""
    (fixed_tree / "Makefile").write_text("all: a.txt\n\t@cat a.txt\n\t@echo built $@\n")
    assert_same(*native_and_boxed(["/usr/bin/make", "-s"], cwd=fixed_tree))


def test_realpath_through_made_up_and_placed_nodes() -> None:
    """readlink of /etc (made up above the placed /etc files) is EINVAL, as for any
    directory; /bin/ls resolves through the merged-/usr symlink."""
    assert_same(*native_and_boxed(["/usr/bin/realpath", "/etc/passwd", "/etc", "/bin/ls", "/lib64"]))


def test_script_through_a_symlink_gets_the_path_as_given(fixed_tree: Path) -> None:
    """$0 of a #! script is the path execve was given (a symlink stays a symlink)."""
    (fixed_tree / "alias.sh").symlink_to("c.sh")
    (fixed_tree / "show0.sh").write_text('#!/bin/sh\necho "$0"\n')
    (fixed_tree / "show0.sh").chmod(0o755)
    (fixed_tree / "show0-link").symlink_to("show0.sh")
    assert_same(*native_and_boxed(["/bin/sh", "-c", "./show0-link; ./alias.sh"], cwd=fixed_tree))


def test_proc_self_exe_names_the_file_itself() -> None:
    """/proc/self/exe is the program file, not the symlink it was run by (java finds its
    libraries from it): /bin/readlink is /usr/bin/readlink."""
    assert_same(*native_and_boxed(["/bin/readlink", "/proc/self/exe"]))


IDENTITY_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print("cpu", libc.sched_getcpu() >= 0)
uid, gid = os.getuid(), os.getgid()
print("res", os.getresuid() == (uid,) * 3, os.getresgid() == (gid,) * 3)
os.setresuid(-1, uid, -1); os.setuid(uid); os.setgid(gid); os.setgroups([gid])
print("keeping the ids works")
try:
    os.setuid(uid + 1)
except PermissionError:
    print("changing them is EPERM")
"""


def test_identity_calls_keep_the_fixed_identity() -> None:
    result = run_sandbox(["run", "--uid", "1000", "--gid", "1000", "/usr/bin/python3", "-c", IDENTITY_PROBE])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split("\n") == [
        "cpu True", "res True True", "keeping the ids works", "changing them is EPERM", ""]


SYSTEM_SERVICES = """
import locale, os, pwd, grp, time
os.system("echo from system")
print(os.popen("/bin/echo from popen").read().strip())
print(pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name)
os.environ["TZ"] = "Europe/Paris"
time.tzset()
print(time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(0)))
print(locale.setlocale(locale.LC_ALL, "C.UTF-8"), "\u00e9t\u00e9".upper())
"""


def test_system_popen_passwd_time_zones_and_locales() -> None:
    """What the system view is for: system() and popen() find /bin/sh, getpwuid reads the
    generated /etc/passwd, time zones come from /usr/share/zoneinfo, locales from /usr/lib."""
    native, boxed = native_and_boxed(["/usr/bin/python3", "-c", SYSTEM_SERVICES])
    assert b"1970-01-01 01:00 CET" in native.stdout, native.stderr
    assert_same(native, boxed)
