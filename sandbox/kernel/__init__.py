"""The sandbox's small Linux kernel: processes, system calls, files and signals.

- `process.py`   a process: its address space, files, brk, exit status
- `files.py`     file descriptor tables and the files behind them
- `syscalls.py`  the system-call table
- `sched.py`     the scheduler: round-robin, blocking and waking, context switches
- `exec.py`      loading a program into a process (first process, execve, #! scripts)
- `sys_process.py` fork, execve, exit, wait, kill, process groups
- `sys_*.py`     handlers grouped by topic (memory, I/O, process and time)
- `signals.py`   signal names and how a death by signal is described
- `kernel.py`    the glue to the machine: syscall and exception entry, the run loop
"""
