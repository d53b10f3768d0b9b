"""Starting a program held at a gate until its calls are traced.

The program is started through ``/bin/sh``, which waits on a named pipe (a FIFO in a
private temporary folder) before it ``exec``s the real command (same process, same pid):
the capture registers the pid with the call trace first, then opens the gate, so the trace
misses none of the program's calls. A named pipe, not an inherited descriptor: the
program keeps no extra descriptor, and any user the command runs as (the one who ran
sudo) can open it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from typing import Callable

OPEN_TIMEOUT = 10.0   # seconds to wait for the started shell to reach the gate


class Gate:
    """A FIFO the started program waits on; ``wrap`` its argv, ``open`` it once traced."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="rawinspect-gate-")
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "gate")
        os.mkfifo(self.path)
        os.chmod(self.path, 0o644)   # the command may run as the user who ran sudo
        self.released = False

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run by a shell that first waits for the gate to open."""
        return ["/bin/sh", "-c", 'read -r _ < "$0"; exec "$@"', self.path, *argv]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return ()

    def open(self, pid: int, follow: Callable[[int], None]) -> None:
        """Trace ``pid`` (``follow``), then let the program run."""
        try:
            follow(pid)
        finally:
            self._release(OPEN_TIMEOUT)
            self.close()

    def _release(self, timeout: float) -> bool:
        """Write to the FIFO once the shell has it open; False if it never did."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() > deadline:
                    return False
                time.sleep(0.001)  # the shell is not reading yet
                continue
            try:
                os.write(fd, b"go\n")
            except BrokenPipeError:
                pass   # the shell read the gate already and closed it: it runs
            finally:
                os.close(fd)
            self.released = True
            return True

    def close(self) -> None:
        """Let a program still waiting go (an error on the way), remove the FIFO."""
        if not self.released and os.path.exists(self.path):
            self._release(0.0)
        shutil.rmtree(self.dir, ignore_errors=True)
