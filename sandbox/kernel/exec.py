"""Putting a program image into a process: for the first process and for execve.

The new address space is built completely before anything of the old one is touched, so a
failed execve leaves the caller as it was (xv6's exec does the same).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from sandbox.errors import LoadError, OutOfMemory, SandboxError, SyscallError
from sandbox.kernel.sys_fs import HOST_OPEN_ALWAYS, require_permission
from sandbox.loader import ElfImage, StackSpec, build_stack, load_bias, load_elf, parse_elf
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagecache import CachedFile

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.task import Task
    from sandbox.kernel.vfs_nodes import Node

MAX_SHEBANG = 256  # BINPRM_BUF_SIZE
MAX_INTERPRETER_DEPTH = 4  # Linux allows a few levels of #! (fs/exec.c)


def load_program(kernel: Kernel, proc: Task, fd: int, guest_path: str, argv: list[bytes],
                 envp: list[bytes], execfn: bytes | None = None) -> None:
    """Replace `proc`'s image with the ELF open at host descriptor `fd` (closed here, whatever
    happens), and its interpreter if it names one (found in the guest's view). Raises
    SandboxError if unloadable (LoadError with the errno execve answers). `execfn` is the
    path as execve was given it (AT_EXECFN; default: `guest_path`).

    Only the headers are read; the segments map the files through the page cache, so a huge
    or sparse file costs the host no more than a small one (pages come on first touch).
    """
    try:
        image = parse_elf(fd, guest_path)
        file = kernel.page_cache.open(fd, guest_path, False)
    finally:
        os.close(fd)
    space = AddressSpace.new_user(kernel.machine.kernel_space)
    kernel.watch_faults(proc.group, space)
    try:  # whatever fails, nothing stays: the space, and the cache entries only it held
        loaded = load_elf(space, image, file, guest_path, load_bias(space, image, False))
        entry, base = loaded.entry, 0
        if image.interpreter:
            interp_image, interp_file = open_interpreter(kernel, proc, image)
            base = load_bias(space, interp_image, True)
            entry = load_elf(space, interp_image, interp_file, interp_image.path, base).entry
        spec = StackSpec(argv, envp, execfn or os.fsencode(guest_path), kernel.random_bytes(16), image.stack_exec,
                         kernel.identity.uid, kernel.identity.gid, base)
        stack = build_stack(space, loaded, spec)
    except BaseException as error:
        space.destroy()
        kernel.trim_page_cache()
        if isinstance(error, SyscallError):
            raise LoadError(error.errno, f"{guest_path}: cannot be loaded: {error.why}") from None
        if isinstance(error, OutOfMemory):
            raise LoadError(errno.ENOMEM, f"{guest_path}: cannot be loaded: {error}") from None
        raise
    old = proc.space
    proc.space = space
    proc.brk_start = proc.brk = loaded.brk_start
    proc.fresh_entry = (entry, stack.rsp)
    proc.exe = proc.exe_guest = guest_path
    proc.arg_range, proc.env_range = (stack.arg_start, stack.arg_end), (stack.env_start, stack.env_end)
    proc.group.auxv = stack.auxv
    proc.comm = os.path.basename(guest_path)[:15]
    if old is not None:
        if (ipc := kernel.sysv_ipc()) is not None:
            ipc.space_replaced(kernel, proc.group, old)  # shm attaches end (exit_shm)
        kernel.retire_space(proc.group, old)
    if kernel.debugger is not None:
        kernel.debugger.execed(proc)  # gdb's exec event; the auxv it reads is the new one


def open_interpreter(kernel: Kernel, proc: Task, image: ElfImage) -> tuple[ElfImage, CachedFile]:
    """The program's PT_INTERP, looked up in the guest's view (relative to the cwd, as
    Linux's `open_exec`), validated and opened in the page cache. LoadError: ENOENT if it
    is missing, EACCES if it is no regular file the guest may execute, ELIBBAD if it is no
    loadable ELF (binfmt_elf.c's answers)."""
    path = image.interpreter or ""
    where = f"{image.path}: interpreter {path}"
    try:
        node = kernel.fs.resolve(os.fsencode(path), proc.cwd)
        fd = open_executable(kernel, proc, node)
    except SyscallError as error:
        raise LoadError(error.errno, f"{where}: {_lookup_failure(kernel, error.errno)}") from None
    try:
        interp = parse_elf(fd, node.guest)
        return interp, kernel.page_cache.open(fd, node.guest, False)
    except SandboxError as error:
        raise LoadError(errno.ELIBBAD, f"{where}: {error}") from None
    except SyscallError as error:
        raise LoadError(error.errno, f"{where}: {os.strerror(error.errno)}") from None
    finally:
        os.close(fd)


def _lookup_failure(kernel: Kernel, error: int) -> str:
    """Why an interpreter was not found, and where it was looked for."""
    if error != errno.ENOENT:
        return os.strerror(error)
    options = kernel.options
    trees = f"system trees from {options.sysroot}" if options.system else "--no-system: no system trees"
    return f"not found in the guest's file view ({trees})"


def open_executable(kernel: Kernel, proc: Task, node: Node) -> int:
    """A read-only host descriptor of the file at `node`, which must be a regular file the
    guest may execute (fs/exec.c `do_open_execat`: S_ISREG and MAY_EXEC, else EACCES)."""
    st = kernel.fs.lstat(node) if node.on_host else None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise SyscallError(errno.EACCES, f"{node.guest} is not a regular file")
    if kernel.fs.is_noexec(node):  # a mount made with MS_NOEXEC (sys_mount)
        raise SyscallError(errno.EACCES, f"{node.guest} is on a noexec mount")
    if not os.access(node.name, os.X_OK, dir_fd=node.dirfd, follow_symlinks=False):
        raise SyscallError(errno.EACCES, f"{node.guest} is not executable")
    require_permission(proc, st, os.X_OK, node)
    fd = kernel.fs.open_node(node, os.O_RDONLY | HOST_OPEN_ALWAYS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check: refused all the same
            raise SyscallError(errno.EACCES, f"{node.guest} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_script(host_path: str) -> bool:
    """True if the host file at `host_path` (a path the user gave) is a regular file that
    starts with `#!`. Opened without blocking: a FIFO must not hang the run."""
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # the ELF path reports it
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 2, 0) == b"#!"
    except OSError:
        return False
    finally:
        os.close(fd)


def resolve_program(kernel: Kernel, proc: Task, path: bytes, argv: list[bytes]) -> tuple[int, str, list[bytes]]:
    """(open host descriptor, guest path, argv) for execve of `path`, following `#!`
    interpreters. The program is opened by the view (by descriptor, never re-walked) and
    read through that descriptor only; the caller owns it.

    Raises SyscallError: ENOENT, EACCES (not a regular executable file), ENOEXEC, ELOOP.
    """
    for depth in range(MAX_INTERPRETER_DEPTH):
        try:
            node = kernel.fs.resolve(path, proc.cwd)
            fd = open_executable(kernel, proc, node)
        except SyscallError as error:
            if depth:
                raise SyscallError(error.errno, f"its #! interpreter {os.fsdecode(path)}") from None
            raise
        try:
            head = os.pread(fd, MAX_SHEBANG, 0)
        except OSError as error:
            os.close(fd)
            raise SyscallError(error.errno or errno.EIO, node.guest) from None
        if not head.startswith(b"#!"):
            return fd, node.guest, argv
        os.close(fd)
        line = _shebang_line(head, node.guest)
        interpreter, _, argument = line.partition(b" ")
        argument = argument.strip()
        argv = [interpreter, *([argument] if argument else []), path, *argv[1:]]  # the path as given
        path = interpreter
    raise SyscallError(errno.ELOOP, "too many #! interpreters")


def _shebang_line(head: bytes, guest: str) -> bytes:
    """The interpreter and argument of a `#!` line (fs/binfmt_script.c): the first
    BINPRM_BUF_SIZE bytes must hold the interpreter's whole name, else ENOEXEC (a shell then
    runs the file itself); an argument cut short at the buffer's end is taken as it is."""
    body = head[2:]
    line, newline, _ = body.partition(b"\n")
    line = line.replace(b"\t", b" ").strip()
    if not newline and len(head) == MAX_SHEBANG and b" " not in line:
        raise SyscallError(errno.ENOEXEC, f"{guest}: the #! interpreter's name is longer than {MAX_SHEBANG} bytes")
    if not line:
        raise SyscallError(errno.ENOEXEC, f"{guest}: empty #! line")
    return line


def exec_error(error: SandboxError) -> SyscallError:
    """An unloadable file, as execve reports it."""
    return SyscallError(error.errno if isinstance(error, LoadError) else errno.ENOEXEC, str(error))
