"""Findings of an adversarial review of dynamic loading and the system view, each kept as
the attack that found it (each failed before its fix)."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from sandbox.api import Sandbox
from tests.conftest import guest, python_as_natively, run_native, run_sandbox
from tests.dynamic.test_system_view import INTERP_PHDR, patched_interpreter

PHDR_OFFSET = 8  # p_offset within an Elf64_Phdr


def one_line(result, status: int, words: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == status, err
    assert err.startswith("sandbox: ") and err.count("\n") == 1 and words in err, err


def test_interpreter_offset_past_any_file(tmp_path: Path) -> None:
    """p_offset of PT_INTERP at 2**63 made pread raise OverflowError: exit 70, also from a
    guest's execve. Linux refuses the file."""
    program = tmp_path / "far"
    data = bytearray(Path(guest("dyn-hello")).read_bytes())
    struct.pack_into("<Q", data, INTERP_PHDR + PHDR_OFFSET, 1 << 63)
    program.write_bytes(bytes(data))
    program.chmod(0o755)
    one_line(run_sandbox(["run", str(program)]), 126, "PT_INTERP at 0x8000000000000000 runs past end of file")
    inside = run_sandbox(["run", "--mount", f"{tmp_path}:{tmp_path}", "/bin/sh", "-c", f"{program}; echo $?"])
    assert inside.returncode == 0 and inside.stdout.endswith(b"126\n"), inside.stderr.decode()


def test_program_paths_the_view_cannot_reach_still_run() -> None:
    """A program named through /proc/self/root on the host: the view never reaches that
    path, and spawn's resolution of it was an internal error."""
    result = run_sandbox(["run", "/proc/self/root/usr/bin/true"])
    assert result.returncode == 0, result.stderr.decode()


def test_mounts_under_the_merged_usr_links(tmp_path: Path) -> None:
    """--mount X:/bin/x lands at /usr/bin/x, as mount(2) follows /bin -> usr/bin: it was
    hidden behind the placed link."""
    shutil.copy("/usr/bin/true", tmp_path / "mytrue")
    result = run_sandbox(["run", "--mount", f"{tmp_path / 'mytrue'}:/bin/mytrue", "/bin/sh", "-c",
                          "/bin/mytrue && /usr/bin/mytrue && echo both"])
    assert result.stdout == b"both\n", result.stderr.decode()


def test_a_sysroot_whose_bin_is_a_link(tmp_path: Path) -> None:
    """A sysroot with bin -> usr/bin and the program outside it: exposing the program under
    /bin went through the link (spawn was an internal error)."""
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    result = run_sandbox(["run", "--sysroot", str(tmp_path), "/bin/busybox", "true"])
    assert result.returncode == 0, result.stderr.decode()


def test_failed_execs_leave_nothing_in_the_page_cache(tmp_path: Path) -> None:
    """An exec whose interpreter is missing kept the program's page-cache entry (and a host
    descriptor): 4,000 of them filled the cache and every later file mapping was ENFILE."""
    patched_interpreter(tmp_path, "lost", b"/lib64/ld-nowhere.so.2")
    script = ("import os\n"
              "errors = set()\n"
              "for _ in range(200):\n"
              "    try:\n"
              "        os.execv('./lost', ['lost'])\n"
              "    except OSError as error:\n"
              "        errors.add(error.errno)\n"
              "print(sorted(errors))\n")
    with Sandbox(mounts=[f"{tmp_path}:{tmp_path}"], cwd=str(tmp_path)) as sb:
        result = sb.run("/usr/bin/python3", ["python3", "-c", script])
        cached = len(sb.kernel.page_cache.files)
    assert result.status == 0
    assert cached < 100, cached  # python's own libraries and modules, not 200 failed programs


def test_a_user_mount_covers_the_system_etc(tmp_path: Path) -> None:
    """--mount DIR:/etc hides every /etc entry of the system view, as a mount hides what
    lies below its mount point (the host's hosts file showed through)."""
    (tmp_path / "hosts").write_text("10.0.0.1 mine\n")
    result = run_sandbox(["run", "--mount", f"{tmp_path}:/etc:ro", "/bin/sh", "-c", "cat /etc/hosts; ls /etc"])
    assert result.stdout == b"10.0.0.1 mine\nhosts\n", result.stderr.decode()


def test_generated_etc_files_are_ordinary_files() -> None:
    """stat and fstat of /etc/passwd disagreed (cp refused it), mmap failed, O_DIRECTORY
    opened it: now they are real files mounted read-only."""
    script = ("import mmap, os\n"
              "fd = os.open('/etc/passwd', os.O_RDONLY)\n"
              "print(os.fstat(fd).st_size == os.stat('/etc/passwd').st_size > 0)\n"
              "print(os.fstat(fd).st_ino == os.stat('/etc/passwd').st_ino)\n"
              "print(mmap.mmap(fd, 0, prot=mmap.PROT_READ)[:5])\n"
              "for flags in (os.O_DIRECTORY, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY):\n"
              "    try:\n"
              "        os.open('/etc/passwd', flags)\n"
              "    except OSError as error:\n"
              "        print(error.strerror)\n")
    result = run_sandbox(["run", "/usr/bin/python3", "-c", script])
    assert result.stdout.decode().splitlines() == [
        "True", "True", "b'root:'", "Not a directory", "Read-only file system", "Read-only file system"]
    copied = run_sandbox(["run", "/bin/sh", "-c", "cp /etc/passwd /tmp/p && cmp /etc/passwd /tmp/p && echo same"])
    assert copied.stdout == b"same\n", copied.stderr.decode()


def test_trailing_dot_follows_and_requires_a_directory(tmp_path: Path) -> None:
    """'/bin/.' named the placed link itself (ls -la /bin/ listed '. -> usr/bin')."""
    python_as_natively(tmp_path / "dots.py", (
        "import os\n"
        "for p in ('/bin/.', '/bin/', '/lib64/./', '/usr/bin/true/.', '/etc/os-release/.'):\n"
        "    try:\n"
        "        print(p, oct(os.lstat(p).st_mode)[:4])\n"
        "    except OSError as e:\n"
        "        print(p, e.strerror)\n"
        "for p in ('/bin/.', '/bin'):\n"
        "    try:\n"
        "        print(os.readlink(p))\n"
        "    except OSError as e:\n"
        "        print(p, e.strerror)\n"
        "os.close(os.open('/bin/.', os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY))\n"))


def test_a_sysroot_etc_link_is_not_followed_on_the_host(tmp_path: Path) -> None:
    """sysroot/etc -> a host directory: its allow-listed names were opened on the host."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hosts").write_text("OUTSIDE\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to(outside)
    result = run_sandbox(["run", "--sysroot", str(root), "/bin/busybox", "cat", "/etc/hosts"])
    assert b"OUTSIDE" not in result.stdout and result.returncode == 1


def test_segments_below_mmap_min_addr_are_refused(tmp_path: Path) -> None:
    """A static program at address 0 ran with page 0 mapped; Linux's mmap refuses it."""
    data = bytearray(Path(guest("hello")).read_bytes())
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    struct.pack_into("<Q", data, 24, struct.unpack_from("<Q", data, 24)[0] - 0x400000)  # e_entry
    for index in range(phnum):
        at = phoff + index * 56
        if struct.unpack_from("<I", data, at)[0] in (1, 6):  # PT_LOAD, PT_PHDR
            for field in (16, 24):  # p_vaddr, p_paddr
                struct.pack_into("<Q", data, at + field, struct.unpack_from("<Q", data, at + field)[0] - 0x400000)
    program = tmp_path / "at-zero"
    program.write_bytes(bytes(data))
    program.chmod(0o755)
    one_line(run_sandbox(["run", str(program)]), 126, "is below mmap_min_addr")


def test_load_failures_keep_their_errno_and_read_as_text() -> None:
    result = run_sandbox(["run", "--max-map-count", "8", "/usr/bin/true"])
    one_line(result, 126, "cannot be loaded: map count limit of 8 reached")


def test_a_shebang_too_long_for_the_buffer_is_enoexec(tmp_path: Path) -> None:
    """A #! interpreter name past the 256-byte buffer is ENOEXEC (it was ENOENT), so a shell
    runs the file as a script, as natively."""
    script = tmp_path / "long"
    script.write_text("#!/" + "x" * 300 + "\necho ran by the shell\n")
    script.chmod(0o755)
    command = ["/bin/sh", "-c", f"{script}; echo $?"]
    native = run_native(command)
    boxed = run_sandbox(["run", "--mount", f"{tmp_path}:{tmp_path}", *command])
    assert (boxed.stdout, boxed.returncode) == (native.stdout, native.returncode)


def test_a_fifo_as_the_program_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line(run_sandbox(["run", str(fifo)]), 126, "not a regular file")


def test_a_sysroot_link_loop_is_one_line(tmp_path: Path) -> None:
    """sysroot/usr -> /usr is a loop inside the view: exposing a program under /usr says so."""
    (tmp_path / "usr").symlink_to("/usr")
    one_line(run_sandbox(["run", "--sysroot", str(tmp_path), "/usr/bin/busybox", "true"]), 126,
             "too many levels of symbolic links")


def test_xattr_arguments_are_checked_as_linux_does(tmp_path: Path) -> None:
    """Bad flags are EINVAL and a bad name ERANGE before EOPNOTSUPP (they were all ENOTSUP);
    natively, a directory without attributes answers the same."""
    python_as_natively(tmp_path / "xattr.py", (
        "import os\n"
        f"d = {str(tmp_path)!r}\n"
        "for f in (lambda: os.setxattr(d, 'user.a', b'1', 8), lambda: os.setxattr(d, 'user.' + 'a' * 300, b'1'),\n"
        "          lambda: os.getxattr(d, ''), lambda: os.getxattr(d + '/none', 'user.a'),\n"
        "          lambda: print(os.listxattr(d))):\n"
        "    try:\n"
        "        f()\n"
        "    except OSError as e:\n"
        "        print(e.strerror)\n"), tmp_path)
