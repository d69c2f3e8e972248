"""A program run on a pseudo-terminal that is its controlling terminal, as in a terminal
window: its stdin, stdout and stderr are the slave; the test reads and types on the master."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time

#: How long one wait for output may take before the test gives up (a guard, not a measure).
PATIENCE = 60.0


def _controlling_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty (its stdin)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtySession:
    """`argv` running on a fresh pty; `expect` reads until some text appears."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        self.slave_name = os.ttyname(slave)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=_controlling_terminal, close_fds=True)
        self.slave = slave  # kept open so that the modes can be read after the child exits
        self.output = b""

    def expect(self, text: bytes) -> bytes:
        """Output up to and including `text`; AssertionError if it never comes."""
        deadline = time.monotonic() + PATIENCE
        while text not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never came; got {self.output!r}"
            if not self._read(left):
                assert text in self.output, f"{text!r} never came before EOF; got {self.output!r}"
        end = self.output.index(text) + len(text)
        taken, self.output = self.output[:end], self.output[end:]
        return taken

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for_input_wait(self, steady: int = 10) -> None:
        """Until the sandbox sleeps (its main thread's state S) `steady` looks in a row, 5 ms
        apart: the guest is blocked waiting for the terminal. A key that sends a signal
        (Ctrl-C) typed before that can reach a program between printing its prompt and
        starting to wait, whose handler then runs with nothing to interrupt: natively a
        window of microseconds, in an emulator on a busy machine one of milliseconds."""
        deadline = time.monotonic() + PATIENCE
        seen = 0
        while seen < steady:
            assert time.monotonic() < deadline, "the program never waited for input"
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
            seen = seen + 1 if state == "S" else 0
            time.sleep(0.005)

    def finish(self) -> tuple[int, bytes]:
        """Wait for the program; (exit status as a shell gives it, the rest of its output)."""
        status = self.proc.wait(timeout=PATIENCE)
        while self._read(0.2):
            pass
        return (128 - status if status < 0 else status), self.output

    def modes(self) -> list:
        """The pty's modes now: through a new descriptor, since the session leader's exit
        hung up the ones opened before (tty_vhangup_session)."""
        fd = os.open(self.slave_name, os.O_RDWR | os.O_NOCTTY)
        try:
            return termios.tcgetattr(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.slave)
        try:
            os.close(self.master)
        except OSError:
            pass

    def _read(self, timeout: float) -> bool:
        """Take what the master has within `timeout`; False at EOF or if nothing came."""
        if not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave descriptor is closed
            return False
        self.output += data
        return bool(data)
