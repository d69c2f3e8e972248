"""The system-wide /proc and /sys files, generated from the sandbox's own state.

Each function returns the text of one file as Linux's fs/proc prints it (man 5 proc): the
machine the guest is told of (--memory, --cpus, the emulated CPU), the frame allocator, the
scheduler's counters, the view's mounts. Nothing is read from the host's /proc.

The CPU described in /proc/cpuinfo is the one the guest runs on: the Haswell model the
machine pins (sandbox/machine.py), with the CPUID values its emulation reports
(`CPUID_*` below, as a guest sees them with the `cpuid` instruction: the tests compare
the two), and the flag names Linux gives their bits (arch/x86/include/asm/cpufeatures.h).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sandbox.kernel.files import MAX_FDS
from sandbox.kernel.sys_proc import UTSNAME
from sandbox.loader import CLOCK_TICKS
from sandbox.mm.aspace import MMAP_MIN_ADDR

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel

# -- the emulated CPU ---------------------------------------------------------------------

#: CPUID as the emulated CPU answers it (leaf: eax, ebx, ecx, edx), measured in a guest.
CPUID_1 = (0x000306C4, 0x00000800, 0xC6D82203, 0x078BFBFD)
CPUID_7_EBX, CPUID_7_ECX, CPUID_7_EDX = 0x00000389, 0, 0
CPUID_D_1_EAX = 0x00000001
CPUID_80000001_ECX, CPUID_80000001_EDX = 0x00000021, 0x28100800
CPUID_LEVEL = 0xD  # leaf 0's eax
MODEL_NAME = "Intel Core Processor (Haswell)"  # leaves 0x80000002..4
ADDRESS_BITS = (40, 48)  # leaf 0x80000008: physical, virtual

#: Linux's names of CPUID bits, in the order /proc/cpuinfo prints them (cpufeatures.h
#: words 0, 1, 4, 6, 9, 10, 16, 18); "" for bits Linux does not show.
_LEAF1_EDX = ("fpu vme de pse tsc msr pae mce cx8 apic - sep mtrr pge mca cmov pat pse36 pn clflush - dts acpi mmx "
              "fxsr sse sse2 ss ht tm ia64 pbe")
_EXT_EDX = "- - - - - - - - - - - syscall - - - - - - - mp nx - mmxext - - fxsr_opt pdpe1gb rdtscp - lm 3dnowext 3dnow"
_LEAF1_ECX = ("pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cid sdbg fma cx16 xtpr pdcm - pcid dca "
              "sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave - avx f16c rdrand hypervisor")
_EXT_ECX = ("lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs xop skinit wdt - "
            "lwp fma4 tce - nodeid_msr - tbm topoext perfctr_core perfctr_nb - bpext ptsc perfctr_llc mwaitx - -")
_LEAF7_EBX = ("fsgsbase tsc_adjust sgx bmi1 hle avx2 - smep bmi2 erms invpcid rtm cqm - mpx rdt_a avx512f avx512dq "
              "rdseed adx smap avx512ifma - clflushopt clwb intel_pt avx512pf avx512er avx512cd sha_ni avx512bw "
              "avx512vl")
_XSAVE_EAX = "xsaveopt xsavec xgetbv1 xsaves"
_LEAF7_ECX = ("- avx512vbmi umip pku ospke waitpkg avx512_vbmi2 - gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme "
              "avx512_vpopcntdq - la57 - - - - - rdpid - - cldemote - movdiri movdir64b")
_LEAF7_EDX = ("- - avx512_4vnniw avx512_4fmaps fsrm - - - avx512_vp2intersect - md_clear - - - serialize - - - "
              "pconfig - ibt")


def _named_bits(value: int, names: str) -> list[str]:
    """The names of the set bits of `value` ('-' marks a bit Linux does not name)."""
    return [name for bit, name in enumerate(names.split()) if value >> bit & 1 and name != "-"]


def cpu_flags() -> list[str]:
    """The flags line of /proc/cpuinfo: every CPUID feature bit the emulated CPU sets."""
    words = ((CPUID_1[3], _LEAF1_EDX), (CPUID_80000001_EDX, _EXT_EDX), (CPUID_1[2], _LEAF1_ECX),
             (CPUID_80000001_ECX, _EXT_ECX), (CPUID_7_EBX, _LEAF7_EBX), (CPUID_D_1_EAX, _XSAVE_EAX),
             (CPUID_7_ECX, _LEAF7_ECX), (CPUID_7_EDX, _LEAF7_EDX))
    return [name for value, names in words for name in _named_bits(value, names)]


def cpuinfo(kernel: Kernel) -> str:
    """/proc/cpuinfo: one block per CPU the guest is told of (arch/x86/kernel/cpu/proc.c)."""
    signature = CPUID_1[0]
    family = (signature >> 8) & 0xF
    model = ((signature >> 4) & 0xF) | ((signature >> 12) & 0xF0)
    cpus = kernel.options.cpus
    flags = " ".join(cpu_flags())
    blocks = []
    for n in range(cpus):
        fields = [("processor", n), ("vendor_id", "GenuineIntel"), ("cpu family", family), ("model", model),
                  ("model name", MODEL_NAME), ("stepping", signature & 0xF), ("microcode", "0x1"),
                  ("cpu MHz", "2400.000"), ("cache size", "16384 KB"), ("physical id", 0), ("siblings", cpus),
                  ("core id", n), ("cpu cores", cpus), ("apicid", n), ("initial apicid", n), ("fpu", "yes"),
                  ("fpu_exception", "yes"), ("cpuid level", CPUID_LEVEL), ("wp", "yes"), ("flags", flags),
                  ("bugs", ""), ("bogomips", "4800.00"), ("clflush size", (CPUID_1[1] >> 8 & 0xFF) * 8),
                  ("cache_alignment", 64),
                  ("address sizes", f"{ADDRESS_BITS[0]} bits physical, {ADDRESS_BITS[1]} bits virtual"),
                  ("power management", "")]
        blocks.append("".join(_cpuinfo_line(name, value) for name, value in fields) + "\n")
    return "".join(blocks)


def _cpuinfo_line(name: str, value: object) -> str:
    """"name<tabs>: value": tabs to column 16, as show_cpuinfo's format strings have them."""
    tabs = "\t" * (2 if len(name) < 8 else 1 if len(name) < 16 else 0)
    return f"{name}{tabs}:{' ' if value != '' else ''}{value}\n"


# -- time and the scheduler ---------------------------------------------------------------


def uptime_seconds(kernel: Kernel) -> float:
    """Seconds since the sandbox started, on the sandbox's clock (guest time when
    deterministic)."""
    if kernel.options.deterministic:
        return kernel.clock_offset / 1e9
    return time.monotonic() - kernel.boot_time


def uptime(kernel: Kernel) -> str:
    """/proc/uptime: seconds up, and seconds the CPUs idled (all of them together)."""
    up = uptime_seconds(kernel)
    return f"{up:.2f} {max(0.0, up * kernel.options.cpus - up):.2f}\n"


def _thread_counts(kernel: Kernel) -> tuple[int, int, int]:
    """(runnable, blocked, all) live threads."""
    live = [t for t in kernel.tasks.values() if t.alive]
    blocked = sum(1 for t in live if t.blocked is not None)
    return len(live) - blocked, blocked, len(live)


def loadavg(kernel: Kernel) -> str:
    """/proc/loadavg. The averages are 0.00: the sandbox keeps no run-queue history (Linux
    samples it every 5 s); the rest are real: runnable/all threads, the last pid given."""
    running, _, threads = _thread_counts(kernel)
    return f"0.00 0.00 0.00 {running}/{threads} {kernel._next_pid - 1}\n"


def stat(kernel: Kernel) -> str:
    """/proc/stat (fs/proc/stat.c): CPU time in USER_HZ ticks (the sandbox runs its CPUs as
    one, so the busy time is the uptime and the other CPUs idle), scheduler switches, boot
    time, processes forked, runnable and blocked threads."""
    up_ticks = int(uptime_seconds(kernel) * CLOCK_TICKS)
    cpus = kernel.options.cpus
    lines = [f"cpu  {up_ticks} 0 0 {up_ticks * (cpus - 1)} 0 0 0 0 0 0"]
    lines += [f"cpu{n} {up_ticks if n == 0 else 0} 0 0 {0 if n == 0 else up_ticks} 0 0 0 0 0 0" for n in range(cpus)]
    running, blocked, _ = _thread_counts(kernel)
    lines += ["intr 0", f"ctxt {kernel.sched.switches}", f"btime {kernel.boot_wall_ns // 10**9}",
              f"processes {kernel._next_pid - 1}", f"procs_running {running}", f"procs_blocked {blocked}",
              "softirq 0 0 0 0 0 0 0 0 0 0 0"]
    return "\n".join(lines) + "\n"


# -- fixed facts ----------------------------------------------------------------------------


def version() -> str:
    """/proc/version (fs/proc/version.c, linux_proc_banner)."""
    release, build = UTSNAME[2].decode(), UTSNAME[3].decode()
    return f"Linux version {release} (sandbox@sandbox) (python) {build}\n"


#: The file systems the view is made of (/proc/filesystems: "nodev" for those on no device).
FILESYSTEMS = ("sysfs", "tmpfs", "proc", "devtmpfs")


def filesystems() -> str:
    return "".join(f"nodev\t{name}\n" for name in FILESYSTEMS)


def boot_id(kernel: Kernel) -> str:
    """/proc/sys/kernel/random/boot_id: one UUID for the sandbox's life (seeded when
    deterministic, as every random byte the guest gets)."""
    tree = kernel.proc_tree
    if tree.boot_id is None:
        tree.boot_id = random_uuid(kernel).rstrip("\n")
    return tree.boot_id + "\n"


def random_uuid(kernel: Kernel) -> str:
    """/proc/sys/kernel/random/uuid: a fresh UUID at each open."""
    import uuid  # here: its import (with platform's) is ~2 ms of every start-up

    return str(uuid.UUID(bytes=kernel.random_bytes(16), version=4)) + "\n"


#: Linux's pid_max on 64-bit machines (PID_MAX_LIMIT); the sandbox's ids never wrap below it.
PID_MAX = 4194304
NGROUPS_MAX = 65536
FUTEX_TID_MASK = 0x3FFFFFFF
PAGE_KB = 4


def threads_max(kernel: Kernel) -> int:
    """Linux's default (kernel/fork.c set_max_threads): RAM pages / 32, kept in [20,
    FUTEX_TID_MASK], from the sandbox's RAM."""
    return max(20, min(kernel.machine.frames.nframes // 32, FUTEX_TID_MASK))


def sysctl(kernel: Kernel, name: str) -> str:
    """The value of /proc/sys/<name> (kernel/..., vm/..., fs/...)."""
    options = kernel.options
    values = {
        "kernel/pid_max": PID_MAX, "kernel/ostype": UTSNAME[0].decode(), "kernel/osrelease": UTSNAME[2].decode(),
        "kernel/hostname": UTSNAME[1].decode(), "kernel/domainname": UTSNAME[5].decode(),
        "kernel/version": UTSNAME[3].decode(), "kernel/ngroups_max": NGROUPS_MAX,
        "kernel/threads-max": threads_max(kernel),
        "vm/overcommit_memory": 0, "vm/max_map_count": options.max_map_count, "vm/mmap_min_addr": MMAP_MIN_ADDR,
        "fs/file-max": options.host_files, "fs/nr_open": max(MAX_FDS, options.max_open_files),
        "fs/pipe-max-size": options.pipe_max_size,
    }
    if name == "kernel/random/boot_id":
        return boot_id(kernel)
    if name == "kernel/random/uuid":
        return random_uuid(kernel)
    return f"{values[name]}\n"


#: /proc/sys as a tree: directories are tuples of their entries.
SYSCTL_TREE = {
    "kernel": ("pid_max", "ostype", "osrelease", "hostname", "domainname", "version", "ngroups_max", "threads-max",
               "random"),
    "kernel/random": ("boot_id", "uuid"),
    "vm": ("overcommit_memory", "max_map_count", "mmap_min_addr"),
    "fs": ("file-max", "nr_open", "pipe-max-size"),
}


# -- /sys -----------------------------------------------------------------------------------


def cpu_range(kernel: Kernel) -> str:
    """/sys/devices/system/cpu/{online,possible,present}: "0-N" (or "0") for --cpus."""
    last = kernel.options.cpus - 1
    return ("0" if last == 0 else f"0-{last}") + "\n"
