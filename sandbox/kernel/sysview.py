"""The system around a dynamically linked program: the default file view's read-only trees.

A dynamic program needs its interpreter, its libraries and a few configuration files; a
shell needs /bin/sh, `getpwuid` needs /etc/passwd. By default the guest's view therefore
holds, besides its private root:

- the system trees of a host directory (the host's `/`, or `--sysroot DIR`) **read-only**:
  /usr, /bin, /sbin, /lib and its 32/64 siblings. What is a symlink there stays a symlink
  (Debian's merged /usr: /bin -> usr/bin), resolved inside the view like any other;
- an allow-list of /etc entries that programs read at start and that hold no secrets
  (`ETC_ALLOWED`), read-only; nothing else of the host's /etc, /root or /home;
- generated /etc/passwd, /etc/group and /etc/hostname naming the guest's own user, group
  and host (never the host's files: they name the host's accounts). They are real files in
  a private directory, mounted read-only, so stat, fstat, mmap and listings agree on them.

These are grafts like `--mount`s, and the user's own mounts cover them. `--no-system`
leaves them out (the bare view static programs ran in before).
"""

from __future__ import annotations

import os
import stat

from sandbox.errors import SandboxError
from sandbox.kernel.vfs_nodes import Mount, Synthetic

#: Top-level program and library trees taken from the system root, when present there.
SYSTEM_TREES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: /etc entries programs read at start that name no account and hold no secret: the dynamic
#: linker's cache and search path (glibc's ld.so.cache/ld.so.conf, musl's path file), name
#: service order, the host table, time zone, OS identity, Debian's alternatives (awk, pager).
ETC_ALLOWED = (
    "alternatives", "debian_version", "host.conf", "hosts", "ld-musl-x86_64.path", "ld.so.cache",
    "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "os-release", "protocols", "services",
    "timezone",
)
#: The guest's host name (uname's nodename, /etc/hostname).
HOSTNAME = "sandbox"
GUEST_USER = "user"  # the name /etc/passwd gives the guest's uid when it is not 0
NOBODY = 65534


def system_grafts(sysroot: str, uid: int, gid: int, generated: str) -> list[Mount | tuple[str, Synthetic]]:
    """The mounts and placed nodes of the system view taken from host directory `sysroot`
    (a trusted path the user named); the generated /etc files are written into the private
    directory `generated` and mounted read-only from there. SandboxError if `sysroot` is
    not a directory."""
    if not os.path.isdir(sysroot):
        raise SandboxError(f"--sysroot {sysroot}: not a directory")
    grafts: list[Mount | tuple[str, Synthetic]] = []
    for name in SYSTEM_TREES:
        grafts.extend(_graft(os.path.join(sysroot, name), "/" + name))
    etc = os.path.join(sysroot, "etc")
    if _is_real_directory(etc):  # a symlinked etc would be followed on the host: none taken
        for name in ETC_ALLOWED:
            grafts.extend(_graft(os.path.join(etc, name), "/etc/" + name))
    for name, text in identity_files(uid, gid).items():
        path = os.path.join(generated, name)
        with open(path, "wb") as file:
            file.write(text)
        grafts.append(Mount("/etc/" + name, path, False))
    return grafts


def _is_real_directory(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _graft(host: str, guest: str) -> list[Mount | tuple[str, Synthetic]]:
    """How host entry `host` appears at `guest`: a symlink as the same symlink, a directory
    or regular file as a read-only mount; nothing if it is missing or anything else."""
    try:
        st = os.lstat(host)
    except OSError:
        return []
    if stat.S_ISLNK(st.st_mode):
        return [(guest, Synthetic("link", os.readlink(host), 0o777))]
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return [Mount(guest, host, False)]
    return []


def identity_files(uid: int, gid: int) -> dict[str, bytes]:
    """/etc/passwd, /etc/group and /etc/hostname for a guest running as uid:gid (passwd(5),
    group(5)): root, the guest's own user and group if they are not root's, and nobody."""
    users = [("root", 0, 0, "root", "/root", "/bin/sh")]
    groups = [("root", 0)]
    if uid not in (0, NOBODY):
        users.append((GUEST_USER, uid, gid, "sandbox guest", "/", "/bin/sh"))
    if gid not in (0, NOBODY):
        groups.append((GUEST_USER, gid))
    users.append(("nobody", NOBODY, NOBODY, "nobody", "/nonexistent", "/usr/sbin/nologin"))
    groups.append(("nogroup", NOBODY))
    passwd = "".join(f"{n}:x:{u}:{g}:{gecos}:{home}:{shell}\n" for n, u, g, gecos, home, shell in users)
    group = "".join(f"{n}:x:{g}:\n" for n, g in groups)
    return {"passwd": passwd.encode(), "group": group.encode(), "hostname": f"{HOSTNAME}\n".encode()}
