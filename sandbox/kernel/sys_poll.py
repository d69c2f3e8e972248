"""Readiness system calls: poll, ppoll, select, pselect6, the epoll family, and the event
files they watch: eventfd, timerfd, signalfd (man 2 of each).

Every wait goes through `sched.wait_ready`: the caller sleeps in the scheduler and its
descriptors are asked again on every pass; a signal ends the wait with EINTR (these calls
are never restarted after a handler, man 7 signal). ppoll, pselect6 and epoll_pwait wait
with a temporary signal mask, which a handler's frame keeps to restore (as rt_sigsuspend).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable

from sandbox.errors import SyscallError
from sandbox.kernel.checked import KTIME_MAX, NSEC_PER_SEC, read_timespec, time_ns, timespec_bytes, timespec_ns
from sandbox.kernel.epoll import EP_MAX_EVENTS, EPOLL_EVENT, Epoll
from sandbox.kernel.eventfiles import EventFd, SignalFd, TimerFd
from sandbox.kernel.files import (
    O_NONBLOCK,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    POLLPRI,
    POLLRDBAND,
    POLLRDNORM,
    POLLWRBAND,
    POLLWRNORM,
    File,
)
from sandbox.kernel.sched import wait_ready
from sandbox.kernel.signal_delivery import UNBLOCKABLE
from sandbox.kernel.structs import POLLFD, TIMESPEC, TIMEVAL
from sandbox.kernel.sys_proc import clock_source
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

O_CLOEXEC = 0o2000000
NFDS_MAX = 1024  # poll: RLIMIT_NOFILE's soft limit here (man 2 poll: EINVAL past it)
SIGSET_SIZE = 8
USEC_PER_SEC = 1_000_000
#: select's three sets, as Linux's fs/select.c defines them in poll terms.
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
EFD_SEMAPHORE = 1
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 8, 9
ITIMERSPEC = struct.Struct("<qqqq")  # it_interval {sec, nsec}, it_value {sec, nsec}


# -- the signal mask of a wait --------------------------------------------------------------

def _swap_mask(proc: Task, addr: int, size: int) -> None:
    """Wait with the mask at `addr` (if any): EINVAL for a size that is not the kernel's
    sigset. The old mask is kept in saved_mask: the call's completion gives it back, or a
    handler's frame keeps it if a signal ends the wait (Kernel.complete)."""
    if not addr:
        return
    if size != SIGSET_SIZE:
        raise SyscallError(errno.EINVAL, f"sigset size {size}")
    (mask,) = struct.unpack("<Q", copy_in(proc.space, addr, SIGSET_SIZE))
    proc.saved_mask, proc.sig_mask = proc.sig_mask, mask & ~UNBLOCKABLE


# -- poll and ppoll ------------------------------------------------------------------------

def revents(file: File | None, events: int) -> int:
    """What poll reports for `file` asked about `events`: POLLNVAL for a closed descriptor;
    POLLRDNORM/POLLWRNORM along with POLLIN/POLLOUT, as Linux's poll methods set them."""
    if file is None:
        return POLLNVAL
    ready = file.poll(events | POLLIN | POLLOUT)
    if ready & POLLIN:
        ready |= POLLRDNORM
    if ready & POLLOUT:
        ready |= POLLWRNORM
    return ready & (events | POLLERR | POLLHUP)


def _file_at(proc: Task, fd: int) -> File | None:
    return proc.files.get(fd) if fd >= 0 and fd in proc.files else None


def _host_waits(files: list[tuple[File | None, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((f.host_fd, events) for f, events in files if f is not None and f.host_fd is not None)


def _next_event(files: list[File | None]) -> Callable[[], float | None]:
    timers = [f for f in files if isinstance(f, TimerFd | Epoll)]
    return lambda: min((t for t in (f.next_event() for f in timers) if t is not None), default=None)


def do_poll(proc: Task, fds: int, nfds: int, timeout_ns: int | None, finish: Callable[[], None] | None = None) -> int:
    """Ready events for each pollfd, waiting up to `timeout_ns` (None: for ever); `finish`
    runs when the call ends, with a result or EINTR (ppoll writes back the time left)."""
    if nfds > NFDS_MAX:
        raise SyscallError(errno.EINVAL, f"nfds {nfds}")
    entries = list(POLLFD.iter_unpack(copy_in(proc.space, fds, POLLFD.size * nfds)))

    def check(timed_out: bool) -> int | None:
        results = [0 if fd < 0 else revents(_file_at(proc, fd), events & 0xFFFF) for fd, events, _ in entries]
        if not any(results) and not timed_out:
            return None
        copy_out(proc.space, fds, b"".join(POLLFD.pack(fd, events, r) for (fd, events, _), r in
                                           zip(entries, results, strict=True)))
        if finish is not None:
            finish()
        return sum(1 for r in results if r)

    files = [(_file_at(proc, fd), events) for fd, events, _ in entries]
    return wait_ready(proc, "poll", check, timeout_ns, _host_waits(files), _next_event([f for f, _ in files]),
                      finish)


@syscall("poll", "fds nfds timeout")
def sys_poll(proc: Task, fds: int, nfds: int, timeout: int) -> int:
    """A negative timeout (in ms) waits for ever (man 2 poll)."""
    timeout = to_int32(timeout)
    return do_poll(proc, fds, nfds, None if timeout < 0 else timeout * 10**6)


@syscall("ppoll", "fds nfds tmo sigmask sigsetsize")
def sys_ppoll(proc: Task, fds: int, nfds: int, tmo: int, sigmask: int, sigsetsize: int) -> int:
    """A NULL timeout waits for ever; the time left is written back (man 2 ppoll)."""
    timeout_ns = read_timespec(proc.space, tmo) if tmo else None
    _swap_mask(proc, sigmask, sigsetsize)
    end = _deadline(proc, timeout_ns)
    finish = (lambda: _write_back(proc, tmo, timespec_bytes(_left_ns(proc, end)))) if tmo else None
    return do_poll(proc, fds, nfds, timeout_ns, finish)


def _deadline(proc: Task, timeout_ns: int | None) -> float | None:
    return None if timeout_ns is None else proc.kernel.monotonic() + min(timeout_ns, KTIME_MAX) / 1e9


def _left_ns(proc: Task, end: float | None) -> int:
    return 0 if end is None else max(0, int((end - proc.kernel.monotonic()) * NSEC_PER_SEC))


def _write_back(proc: Task, addr: int, data: bytes) -> None:
    """The time left, written back; a timeout in read-only memory is not an error once the
    call is done (fs/select.c, poll_select_finish)."""
    try:
        copy_out(proc.space, addr, data)
    except SyscallError:
        pass


# -- select and pselect6 ---------------------------------------------------------------------

def _read_fd_set(proc: Task, addr: int, nfds: int) -> set[int]:
    if not addr:
        return set()
    bits = int.from_bytes(copy_in(proc.space, addr, _fd_set_bytes(nfds)), "little")
    return {fd for fd in range(nfds) if bits >> fd & 1}


def _fd_set_bytes(nfds: int) -> int:
    return (nfds + 63) // 64 * 8  # whole longs, as the kernel copies them (fs/select.c)


def do_select(proc: Task, nfds: int, sets: tuple[int, int, int], timeout_ns: int | None,
              finish: Callable[[], None] | None = None) -> int:
    """select's work: which of the descriptors in the three sets are ready; EBADF for a
    closed one; the sets are rewritten with the ready ones. `finish` as for do_poll."""
    nfds = to_int32(nfds)
    if nfds < 0:
        raise SyscallError(errno.EINVAL, f"nfds {nfds}")
    nfds = min(nfds, proc.files.max_fds)  # core_sys_select: it looks no further than the table
    wanted = [_read_fd_set(proc, addr, nfds) for addr in sets]
    everyone = sorted(set().union(*wanted))
    files = {fd: _file_at(proc, fd) for fd in everyone}
    closed = [fd for fd, f in files.items() if f is None]
    if closed:
        raise SyscallError(errno.EBADF, f"fd {closed[0]} in a select set is not open")
    masks = (POLLIN_SET, POLLOUT_SET, POLLEX_SET)

    def check(timed_out: bool) -> int | None:
        ready = [{fd for fd in want if revents(files[fd], mask) & mask} for want, mask in zip(wanted, masks,
                                                                                             strict=True)]
        if not any(ready) and not timed_out:
            return None
        for addr, fds in zip(sets, ready, strict=True):
            if addr:
                bits = sum(1 << fd for fd in fds)
                copy_out(proc.space, addr, bits.to_bytes(_fd_set_bytes(nfds), "little"))
        if finish is not None:
            finish()
        return sum(len(fds) for fds in ready)

    watched = [(f, POLLIN if fd in wanted[0] else POLLOUT) for fd, f in files.items()]
    return wait_ready(proc, "select", check, timeout_ns, _host_waits(watched), _next_event(list(files.values())),
                      finish)


@syscall("select", "nfds readfds writefds exceptfds timeout")
def sys_select(proc: Task, nfds: int, readfds: int, writefds: int, exceptfds: int, timeout: int) -> int:
    """A NULL timeout waits for ever; the time left is written back (man 2 select)."""
    timeout_ns = None
    if timeout:
        sec, usec = TIMEVAL.unpack(copy_in(proc.space, timeout, TIMEVAL.size))
        whole = int(usec / USEC_PER_SEC)  # kern_select folds whole seconds of tv_usec in, as C divides
        timeout_ns = time_ns(sec + whole, (usec - whole * USEC_PER_SEC) * 1000, NSEC_PER_SEC, "timeval")
    end = _deadline(proc, timeout_ns)

    def write_back() -> None:
        left_us = _left_ns(proc, end) // 1000
        _write_back(proc, timeout, TIMEVAL.pack(left_us // USEC_PER_SEC, left_us % USEC_PER_SEC))
    return do_select(proc, nfds, (readfds, writefds, exceptfds), timeout_ns, write_back if timeout else None)


@syscall("pselect6", "nfds readfds writefds exceptfds timeout sigmask")
def sys_pselect6(proc: Task, nfds: int, readfds: int, writefds: int, exceptfds: int, timeout: int,
                 sigmask: int) -> int:
    """The sixth argument points at {const sigset_t *ss; size_t ss_len} (man 2 pselect6)."""
    timeout_ns = read_timespec(proc.space, timeout) if timeout else None
    if sigmask:
        addr, size = struct.unpack("<QQ", copy_in(proc.space, sigmask, 16))
        _swap_mask(proc, addr, size)
    end = _deadline(proc, timeout_ns)
    finish = (lambda: _write_back(proc, timeout, timespec_bytes(_left_ns(proc, end)))) if timeout else None
    return do_select(proc, nfds, (readfds, writefds, exceptfds), timeout_ns, finish)


# -- epoll -------------------------------------------------------------------------------------

@syscall("epoll_create1", "flags")
def sys_epoll_create1(proc: Task, flags: int) -> int:
    flags = to_int32(flags)
    if flags & ~O_CLOEXEC:
        raise SyscallError(errno.EINVAL, f"epoll_create1 flags {flags:#x}")
    return proc.files.install(Epoll(0, proc.kernel.budgets.epoll_watches), cloexec=bool(flags & O_CLOEXEC))


@syscall("epoll_create", "size")
def sys_epoll_create(proc: Task, size: int) -> int:
    """The size is only a hint, but must be positive (man 2 epoll_create)."""
    if to_int32(size) <= 0:
        raise SyscallError(errno.EINVAL, f"epoll_create size {to_int32(size)}")
    return sys_epoll_create1(proc, 0)


def _epoll(proc: Task, epfd: int) -> Epoll:
    return proc.files.get_as(to_int32(epfd), Epoll, errno.EINVAL, "an epoll")


@syscall("epoll_ctl", "epfd op fd event")
def sys_epoll_ctl(proc: Task, epfd: int, op: int, fd: int, event: int) -> int:
    """Add, change or remove a watched descriptor (errors in epoll_ctl(2)'s order)."""
    op, fd = to_int32(op), to_int32(fd)
    events = data = 0
    if op != 2:  # EPOLL_CTL_DEL ignores the event (and it may be NULL)
        events, data = EPOLL_EVENT.unpack(copy_in(proc.space, event, EPOLL_EVENT.size))
    epoll_file = proc.files.get(to_int32(epfd))
    file = proc.files.get(fd)
    if not file.pollable:
        raise SyscallError(errno.EPERM, f"fd {fd} ({file.name}) does not support poll")
    if file is epoll_file:
        raise SyscallError(errno.EINVAL, "an epoll cannot watch itself")
    _epoll(proc, epfd).control(op, fd, file, events, data)
    return 0


def do_epoll_wait(proc: Task, epfd: int, events: int, maxevents: int, timeout_ns: int | None) -> int:
    """Up to `maxevents` ready items written at `events`, waiting up to `timeout_ns`."""
    maxevents = to_int32(maxevents)
    if not 0 < maxevents <= EP_MAX_EVENTS:
        raise SyscallError(errno.EINVAL, f"maxevents {maxevents}")
    epoll = _epoll(proc, epfd)
    copy_out(proc.space, events, b"")  # the buffer's address is checked before any wait

    def check(timed_out: bool) -> int | None:
        ready = epoll.collect(maxevents)
        if not ready and not timed_out:
            return None
        copy_out(proc.space, events, b"".join(EPOLL_EVENT.pack(e, d) for e, d in ready))
        return len(ready)

    return wait_ready(proc, "epoll_wait", check, timeout_ns, epoll.host_waits(), epoll.next_event)


@syscall("epoll_wait", "epfd events maxevents timeout")
def sys_epoll_wait(proc: Task, epfd: int, events: int, maxevents: int, timeout: int) -> int:
    timeout = to_int32(timeout)
    return do_epoll_wait(proc, epfd, events, maxevents, None if timeout < 0 else timeout * 10**6)


@syscall("epoll_pwait", "epfd events maxevents timeout sigmask sigsetsize")
def sys_epoll_pwait(proc: Task, epfd: int, events: int, maxevents: int, timeout: int, sigmask: int,
                    sigsetsize: int) -> int:
    timeout = to_int32(timeout)
    _swap_mask(proc, sigmask, sigsetsize)
    return do_epoll_wait(proc, epfd, events, maxevents, None if timeout < 0 else timeout * 10**6)


@syscall("epoll_pwait2", "epfd events maxevents timeout sigmask sigsetsize")
def sys_epoll_pwait2(proc: Task, epfd: int, events: int, maxevents: int, timeout: int, sigmask: int,
                     sigsetsize: int) -> int:
    """As epoll_pwait, with a struct timespec timeout (NULL: for ever)."""
    timeout_ns = read_timespec(proc.space, timeout) if timeout else None
    _swap_mask(proc, sigmask, sigsetsize)
    return do_epoll_wait(proc, epfd, events, maxevents, timeout_ns)


# -- eventfd -------------------------------------------------------------------------------------

@syscall("eventfd2", "initval flags")
def sys_eventfd2(proc: Task, initval: int, flags: int) -> int:
    flags = to_int32(flags)
    if flags & ~(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE):
        raise SyscallError(errno.EINVAL, f"eventfd flags {flags:#x}")
    file = EventFd(initval & 0xFFFF_FFFF, flags, bool(flags & EFD_SEMAPHORE))
    return proc.files.install(file, cloexec=bool(flags & O_CLOEXEC))


@syscall("eventfd", "initval")
def sys_eventfd(proc: Task, initval: int) -> int:
    return sys_eventfd2(proc, initval, 0)


# -- timerfd -------------------------------------------------------------------------------------

@syscall("timerfd_create", "clockid flags")
def sys_timerfd_create(proc: Task, clockid: int, flags: int) -> int:
    clockid, flags = to_int32(clockid), to_int32(flags)
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise SyscallError(errno.EINVAL, f"timerfd flags {flags:#x}")
    if clockid in (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM):
        raise SyscallError(errno.EPERM, "alarm clocks need CAP_WAKE_ALARM")
    if clockid not in (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME):
        raise SyscallError(errno.EINVAL, f"timerfd clock {clockid}")
    return proc.files.install(TimerFd(proc.kernel, clockid, flags), cloexec=bool(flags & O_CLOEXEC))


def _timerfd(proc: Task, fd: int) -> TimerFd:
    return proc.files.get_as(to_int32(fd), TimerFd, errno.EINVAL, "a timerfd")


def _itimerspec(left: float, interval: float) -> bytes:
    ns = [max(0, round(x * NSEC_PER_SEC)) for x in (interval, left)]
    return b"".join(timespec_bytes(n) for n in ns)


@syscall("timerfd_settime", "fd flags new_value old_value")
def sys_timerfd_settime(proc: Task, fd: int, flags: int, new_value: int, old_value: int) -> int:
    """Arm (or with a zero it_value disarm) the timer; an absolute time is on the timer's own
    clock, which the sandbox's clock follows (man 2 timerfd_settime)."""
    flags = to_int32(flags)
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise SyscallError(errno.EINVAL, f"timerfd_settime flags {flags:#x}")
    raw = copy_in(proc.space, new_value, ITIMERSPEC.size)  # all of it first: EFAULT before EINVAL
    interval_ns, value_ns = timespec_ns(raw[:TIMESPEC.size]), timespec_ns(raw[TIMESPEC.size:])
    timer = _timerfd(proc, fd)
    expiry = None
    if value_ns:
        now = proc.kernel.monotonic()
        if flags & TFD_TIMER_ABSTIME:
            expiry = now + (value_ns - clock_source(proc, timer.clockid)()) / NSEC_PER_SEC
        else:
            expiry = now + value_ns / NSEC_PER_SEC
    old = timer.arm(expiry, interval_ns / NSEC_PER_SEC)
    if old_value:
        copy_out(proc.space, old_value, _itimerspec(*old))
    return 0


@syscall("timerfd_gettime", "fd curr_value")
def sys_timerfd_gettime(proc: Task, fd: int, curr_value: int) -> int:
    copy_out(proc.space, curr_value, _itimerspec(*_timerfd(proc, fd).remaining()))
    return 0


# -- signalfd ------------------------------------------------------------------------------------

@syscall("signalfd4", "fd mask sizemask flags")
def sys_signalfd4(proc: Task, fd: int, mask: int, sizemask: int, flags: int) -> int:
    """A new signalfd (fd -1) or a new mask for an existing one (man 2 signalfd)."""
    fd, flags = to_int32(fd), to_int32(flags)
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise SyscallError(errno.EINVAL, f"signalfd flags {flags:#x}")
    if sizemask != SIGSET_SIZE:
        raise SyscallError(errno.EINVAL, f"sigset size {sizemask}")
    (bits,) = struct.unpack("<Q", copy_in(proc.space, mask, SIGSET_SIZE))
    bits &= ~UNBLOCKABLE  # SIGKILL and SIGSTOP are silently left out
    if fd != -1:
        file = proc.files.get(fd)
        if not isinstance(file, SignalFd):
            raise SyscallError(errno.EINVAL, f"fd {fd} is not a signalfd")
        file.mask = bits
        return fd
    return proc.files.install(SignalFd(proc.kernel, bits, flags), cloexec=bool(flags & O_CLOEXEC))


@syscall("signalfd", "fd mask sizemask")
def sys_signalfd(proc: Task, fd: int, mask: int, sizemask: int) -> int:
    return sys_signalfd4(proc, fd, mask, sizemask, 0)

