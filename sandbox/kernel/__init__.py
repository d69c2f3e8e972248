"""The sandbox's small Linux kernel: processes, system calls, files and signals.

- `kernel.py`    the glue to the machine: syscall and exception entry, the run loop, the
                 one completion path of every system call
- `process.py`, `task.py`  a thread group (process) and its tasks (threads)
- `sched.py`     the scheduler: round-robin, blocking and waking, context switches, waits
- `exec.py`      loading a program into a process (first process, execve, #! scripts)
- `signals.py`, `signal_delivery.py`, `sigframe.py`  signal facts, queues, delivery, frames
- `futex.py`, `limits.py`, `identity.py`, `accounting.py`, `quota.py`  futexes, resource
                 limits, the guest's identity, host budgets, the disk quota
- `files.py`     descriptor tables and the files behind them; `pipe.py` pipes and FIFOs;
                 `locks.py` record locks and flock
- `eventfiles.py`, `epoll.py`, `inotify.py`  eventfd/timerfd/signalfd, epoll, inotify
- `net/`         sockets: AF_UNIX and the sandbox-internal loopback network
- `ipc*.py`      System V shared memory, semaphores and message queues
- `vfs.py`, `vfs_walk.py`, `sysview.py`, `procfs*.py`, `devtty.py`  the guest's file view
                 and its path walk, the system trees, the generated /proc and /sys, /dev/tty
- `syscalls.py`  the system-call table; `sys_*.py` handlers grouped by topic
"""
