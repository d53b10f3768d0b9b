"""Starting a program held at a gate until its calls are traced.

The program is started through a few lines of Python (``-S``: no site, quick) that
wait on a pipe before they ``exec`` the real command (same process, same pid): the
capture registers the pid with the call trace first, then opens the gate, so the trace
misses none of the program's calls. (A shell would do, but dash cannot read a
descriptor above 9, and under pytest the pipe's often is.)
"""

from __future__ import annotations

import os
import sys
from typing import Callable


class Gate:
    """A pipe the started program waits on; ``wrap`` its argv, ``open`` it once traced."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run once the gate opens (by the same process)."""
        fd = self.read_fd
        shim = (f"import os, sys; os.read({fd}, 1); os.close({fd}); "
                "os.execvp(sys.argv[1], sys.argv[1:])")
        return [sys.executable, "-S", "-c", shim, *argv]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.read_fd,)

    def open(self, pid: int, follow: Callable[[int], None]) -> None:
        """Trace ``pid`` (``follow``), then let the program run."""
        try:
            follow(pid)
        finally:
            os.write(self.write_fd, b"go\n")
            self.close()

    def close(self) -> None:
        """Close both ends (a program still waiting then reads end of file and runs)."""
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1
