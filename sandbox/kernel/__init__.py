"""The sandbox's small Linux kernel: processes, system calls, files and signals.

- `process.py`   a process: its address space, files, brk, exit status
- `files.py`     file descriptor tables and the files behind them
- `syscalls.py`  the system-call table and the one dispatcher that turns errors into -errno
- `sys_*.py`     handlers grouped by topic (memory, I/O, process and time)
- `signals.py`   signal names and how a death by signal is described
- `kernel.py`    the glue to the machine: syscall and exception entry, the run loop
"""
