"""A private ftrace instance (``instances/rawinspect-NAME-PID``) read line by line.

Each user of the kernel's tracing (the state-change record of ``--verify``, the
programs' calls) makes its own instance, so nothing else on the machine is disturbed,
and removes it on every way out. The instance runs on the ``tai`` trace clock
(CLOCK_TAI); the offset to CLOCK_REALTIME, the packets' clock, is measured once.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")


class TraceUnavailable(Exception):
    """No tracefs, no such event, or no permission: the capture goes on without it."""


def mount_tracefs() -> None:
    """Mount tracefs where it is expected, if it is not mounted yet."""
    if not (TRACEFS / "instances").is_dir():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                       capture_output=True)


def tai_offset(samples: int = 7) -> float:
    """CLOCK_TAI minus CLOCK_REALTIME: the TAI reading taken between two realtime ones,
    from the tightest of a few tries (a preemption between two readings would shift every
    traced call against the packets by as long as it lasted)."""
    best = (float("inf"), 0.0)
    for _ in range(samples):
        before = time.time()
        tai = time.clock_gettime(time.CLOCK_TAI)
        after = time.time()
        best = min(best, (after - before, tai - (before + after) / 2))
    return best[1]


class TraceInstance:
    """An ftrace instance with some events on; ``lines()`` gives what it recorded."""

    def __init__(self, name: str, events: dict[str, str], options: tuple[str, ...] = (),
                 buffer_kb: int = 0) -> None:
        """``events``: "group/event" → filter ("" for none); ``options``: trace options
        switched on (e.g. "fields", "event-fork")."""
        mount_tracefs()
        for event in events:
            if not (TRACEFS / "events" / event).is_dir():
                raise TraceUnavailable(f"no tracefs with events/{event} at {TRACEFS} "
                                       "(needs root and a kernel with tracepoints)")
        self.dir = TRACEFS / "instances" / f"rawinspect-{name}-{os.getpid()}"
        try:
            self.dir.mkdir()
        except OSError as e:
            raise TraceUnavailable(f"cannot create an ftrace instance: {e.strerror}") from None
        self.events = list(events)
        try:
            self._setup(events, options, buffer_kb)
            self.pipe = os.open(self.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            self.close()
            raise TraceUnavailable(f"cannot set up {', '.join(events)}: "
                                   f"{e.strerror or e}") from None
        self.offset = tai_offset()
        self._partial = ""

    def _setup(self, events: dict[str, str], options: tuple[str, ...],
               buffer_kb: int) -> None:
        (self.dir / "trace_clock").write_text("tai")
        if buffer_kb:
            (self.dir / "buffer_size_kb").write_text(str(buffer_kb))
        for option in options:
            (self.dir / "options" / option).write_text("1")
        for event, condition in events.items():
            if condition:
                (self.dir / "events" / event / "filter").write_text(condition)
        self.write("set_event_pid", "")

    def write(self, control: str, text: str) -> None:
        """Write one control file of the instance (e.g. set_event_pid)."""
        (self.dir / control).write_text(text)

    def enable(self, on: bool = True) -> None:
        """Switch every event of the instance on (or off)."""
        for event in self.events:
            (self.dir / "events" / event / "enable").write_text("1" if on else "0")

    def fileno(self) -> int:
        return self.pipe

    def lines(self) -> list[str]:
        """The complete lines recorded since the last call (none when nothing new)."""
        if not hasattr(self, "pipe"):
            return []
        chunks = [self._partial]
        while True:
            try:
                chunk = os.read(self.pipe, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk.decode(errors="replace"))
        lines = "".join(chunks).split("\n")
        self._partial = lines.pop()
        return lines

    def to_packets_clock(self, trace_ts: float) -> float:
        """A trace timestamp on the packets' clock (CLOCK_REALTIME)."""
        return trace_ts - self.offset

    def lost(self) -> int:
        """Events the ring buffer overwrote (per-CPU overrun counters)."""
        total = 0
        for stats in (self.dir / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"^overrun: (\d+)", stats.read_text(), re.M)
            total += int(m.group(1)) if m else 0
        return total

    def stop(self) -> int:
        """Switch the events off and return the events lost; the pipe stays readable."""
        if not hasattr(self, "pipe"):
            return 0
        self.enable(False)
        return self.lost()

    def close(self) -> None:
        """Close the pipe and remove the instance (events off first)."""
        if hasattr(self, "pipe"):
            try:
                self.enable(False)
            except OSError:
                pass
            os.close(self.pipe)
            del self.pipe
        try:
            self.dir.rmdir()
        except OSError:
            pass
