"""The default system view, attacked: read-only trees, no host secrets, no identity change,
and hostile interpreters that end in one line, never a traceback or a host change."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from tests.conftest import guest, python_as_natively, run_native, run_sandbox

#: Elf64_Phdr of dyn-hello's PT_INTERP: the second program header (readelf -l).
INTERP_PHDR = 64 + 56
INTERP_OFFSET = 0x318  # where the path's bytes are (p_offset)


def shell(command: str, *options: str) -> tuple[int, str, str]:
    result = run_sandbox(["run", *options, "/bin/sh", "-c", command])
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_no_host_secrets_and_an_allow_listed_etc() -> None:
    status, out, err = shell("cat /etc/shadow; ls /root; ls /home; ls /etc")
    assert "/etc/shadow: No such file or directory" in err
    assert "/root': No such file or directory" in err and "/home': No such file or directory" in err
    listed = set(out.split())
    assert {"passwd", "group", "hostname", "ld.so.cache", "nsswitch.conf"} <= listed
    assert not listed & {"shadow", "gshadow", "ssl", "apt"}, listed


def test_passwd_names_the_guest_not_the_host() -> None:
    status, out, err = shell("cat /etc/passwd; id; whoami; hostname", "--uid", "1000", "--gid", "1000")
    assert status == 0, err
    assert "daemon:" not in out  # the host's accounts stay the host's
    assert "user:x:1000:1000:" in out
    assert "uid=1000(user) gid=1000(user) groups=1000(user)" in out
    assert out.splitlines()[-2:] == ["user", "sandbox"]


@pytest.mark.parametrize("command", [
    "touch /usr/new", "rm /bin/true", "echo x > /etc/hosts", "chmod 777 /usr/bin/ls", "ln -s / /usr/lib/x",
    "mkdir /etc/new", "mv /usr/bin/ls /tmp/", "echo x >> /etc/passwd",
])
def test_system_trees_are_read_only(command: str) -> None:
    before = os.stat("/usr/bin/ls")
    status, _, err = shell(command)
    assert status != 0
    assert "Read-only file system" in err or "Permission denied" in err, err
    assert not os.path.exists("/usr/new") and not os.path.lexists("/usr/lib/x")
    assert os.stat("/usr/bin/ls").st_mode == before.st_mode


def test_user_mounts_cover_the_system_view(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("mine:x:0:0::/:/bin/sh\n")
    status, out, err = shell("cat /etc/passwd", "--mount", f"{tmp_path}:/etc:ro")
    assert (status, out) == (0, "mine:x:0:0::/:/bin/sh\n"), err


def test_setuid_bits_change_no_identity(tmp_path: Path) -> None:
    """Like a nosuid mount: exec never changes the guest's ids, so AT_SECURE stays 0 and
    ld.so honours LD_* variables."""
    program = tmp_path / "auxv"
    shutil.copy(guest("dyn-auxv"), program)
    program.chmod(0o4755)
    result = run_sandbox(["run", "--uid", "1000", "--env", "LD_BIND_NOW=1", str(program)])
    assert result.returncode == 0, result.stderr.decode()
    assert b"AT_SECURE 0\n" in result.stdout and b"LD_BIND_NOW 1\n" in result.stdout


def patched_interpreter(tmp_path: Path, name: str, path: bytes | None = None, size: int | None = None) -> str:
    """dyn-hello with its PT_INTERP bytes (same length) and/or p_filesz replaced."""
    data = bytearray(Path(guest("dyn-hello")).read_bytes())
    if path is not None:
        old_size = struct.unpack_from("<Q", data, INTERP_PHDR + 32)[0]
        assert len(path) <= old_size
        data[INTERP_OFFSET : INTERP_OFFSET + old_size] = path.ljust(old_size, b"\0")
    if size is not None:
        struct.pack_into("<Q", data, INTERP_PHDR + 32, size)
    target = tmp_path / name
    target.write_bytes(bytes(data))
    target.chmod(0o755)
    return str(target)


HOSTILE_INTERPRETERS = {
    # name: (PT_INTERP path, p_filesz, exit status, words of the one-line message)
    "missing": (b"/lib64/ld-nowhere.so.2", None, 127, "interpreter /lib64/ld-nowhere.so.2: not found"),
    "directory": (b"/usr", None, 126, "interpreter /usr: Permission denied"),
    "not-executable": (b"/etc/hosts", None, 126, "interpreter /etc/hosts: Permission denied"),
    "not-elf": (b"/usr/bin/ldd", None, 126, "interpreter /usr/bin/ldd: /usr/bin/ldd: not an ELF file"),
    "host-secret": (b"/etc/shadow", None, 127, "interpreter /etc/shadow: not found"),
    "escape-dots": (b"/../../../etc/shadow", None, 127, "not found"),
    "unterminated": (None, 0x1B, 126, "PT_INTERP is not a NUL-terminated path"),
    "empty": (None, 1, 126, "PT_INTERP of 1 bytes is not a path"),
    "huge": (None, 1 << 40, 126, "PT_INTERP of 1099511627776 bytes is not a path"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_INTERPRETERS))
def test_hostile_interpreters_end_in_one_line(tmp_path: Path, name: str) -> None:
    path, size, status, words = HOSTILE_INTERPRETERS[name]
    program = patched_interpreter(tmp_path, name, path, size)
    result = run_sandbox(["run", program])
    err = result.stderr.decode()
    assert result.returncode == status, err
    assert err.startswith("sandbox: ") and err.count("\n") == 1 and words in err, err


def test_hostile_interpreters_inside_the_guest(tmp_path: Path) -> None:
    """The same files exec'd by a shell, natively and in the guest: execve fails as Linux's
    does (ENOENT for a missing interpreter, EACCES, ELIBBAD, ENOEXEC), and dash reports
    each the same way."""
    names = ("missing", "directory", "not-executable", "not-elf", "unterminated")
    for name in names:
        path, size, _, _ = HOSTILE_INTERPRETERS[name]
        patched_interpreter(tmp_path, name, path, size)
    loop = f"for p in {' '.join(names)}; do ./$p; echo $p $?; done"
    native = run_native(["/bin/sh", "-c", loop], cwd=tmp_path)
    boxed = run_sandbox(["run", "--mount", f"{tmp_path}:{tmp_path}:ro", "--cwd", str(tmp_path), "/bin/sh", "-c", loop])
    assert "Traceback" not in boxed.stderr.decode()
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)


def test_a_program_as_its_own_interpreter(tmp_path: Path) -> None:
    """An interpreter that is itself a dynamic program is loaded as Linux loads it (its own
    PT_INTERP ignored); it then crashes in the guest, never in the sandbox."""
    program = patched_interpreter(tmp_path, "self", b"/bin/true")
    result = run_sandbox(["run", program])
    assert result.returncode in (128 + 11, 128 + 4, 128 + 7, 0, 1), result.stderr.decode()
    assert "Traceback" not in result.stderr.decode() and "internal error" not in result.stderr.decode()


ATTACKS = r"""
import errno, mmap, os
def attempt(what, action):
    try:
        action()
        print(what, "SUCCEEDED")
    except OSError as error:
        print(what, errno.errorcode[error.errno])
attempt("open rw", lambda: os.open("/usr/bin/ls", os.O_RDWR))
attempt("open trunc", lambda: os.open("/usr/lib/os-release", os.O_WRONLY | os.O_TRUNC))
attempt("create", lambda: os.open("/usr/lib/new", os.O_CREAT | os.O_WRONLY, 0o644))
attempt("truncate", lambda: os.truncate("/usr/bin/ls", 0))
attempt("utime", lambda: os.utime("/usr/bin/ls", (0, 0)))
attempt("chown", lambda: os.chown("/usr/bin/ls", 1, 1))
attempt("rename", lambda: os.rename("/usr/bin/ls", "/usr/bin/ls2"))
attempt("link", lambda: os.link("/usr/bin/ls", "/tmp/ls"))
attempt("mkdir etc", lambda: os.mkdir("/etc/x"))
attempt("unlink passwd", lambda: os.unlink("/etc/passwd"))
attempt("write passwd", lambda: os.open("/etc/passwd", os.O_WRONLY))
attempt("remove usr", lambda: os.rmdir("/usr"))
attempt("rename bin", lambda: os.rename("/bin", "/tmp/bin"))
fd = os.open("/usr/bin/ls", os.O_RDONLY)
attempt("mmap shared write", lambda: mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
private = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
private[:4] = b"EVIL"  # a private copy: the file and other mappings never see it
print("private copy", private[:4], os.pread(fd, 4, 0))
shm = os.open("/dev/shm/mine", os.O_CREAT | os.O_RDWR, 0o600)
os.write(shm, b"shared memory")
print("dev/shm", os.pread(shm, 13, 0), sorted(os.listdir("/dev/shm")))
"""


def test_a_python_guest_cannot_change_the_system_trees() -> None:
    """Debian's python3, inside, tries every way to write to the read-only trees."""
    before = {p: os.stat(p) for p in ("/usr/bin/ls", "/usr/lib/os-release")}
    result = run_sandbox(["run", "/usr/bin/python3", "-c", ATTACKS])
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "SUCCEEDED" not in out, out
    for line in out.splitlines()[:13]:
        assert line.split()[-1] in ("EROFS", "EACCES", "EPERM", "EXDEV", "EBUSY"), line
    assert "private copy b'EVIL' b'\\x7fELF'" in out
    assert "dev/shm b'shared memory' ['mine']" in out
    assert not os.path.exists("/usr/lib/new")
    for path, st in before.items():
        now = os.stat(path)
        assert (now.st_size, now.st_mtime_ns, now.st_mode, now.st_uid) == \
            (st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)


def test_placed_symlinks_behave_as_symlinks(tmp_path: Path) -> None:
    """/bin (merged /usr), /etc/os-release and /proc/self are symlinks: O_NOFOLLOW answers
    ELOOP, readlink their targets, as natively (found by the syscall fuzzer: an O_NOFOLLOW
    open of /proc/self was an internal error)."""
    python_as_natively(tmp_path / "links.py", (
        "import os\n"
        "for p in ('/proc/self', '/bin', '/lib64', '/etc/os-release'):\n"
        "    try:\n"
        "        os.open(p, os.O_RDONLY | os.O_NOFOLLOW)\n"
        "    except OSError as e:\n"
        "        print(p, e.strerror)\n"
        "print(os.readlink('/bin'), os.readlink('/etc/os-release'), os.path.realpath('/bin/sh'))\n"))
