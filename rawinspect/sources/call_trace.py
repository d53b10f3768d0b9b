"""Recording the programs' socket calls with the kernel's own tracepoints.

A private ftrace instance (``sources/tracefs``) follows the traced processes and every
process they fork (``set_event_pid`` with the ``event-fork`` option): their socket
syscalls, the socket events inside them, signals and exits. Nothing runs in the traced
programs, so they keep their timing (strace stops each call twice; the simultaneous-close
race is lost far more often under it: see the README). ``CallAssembler`` turns the lines
into Calls.
"""

from __future__ import annotations

from ..core.call import Call
from .call_events import CallAssembler, parse_event
from .tracefs import TraceInstance

SYSCALLS = ("socket", "bind", "listen", "connect", "accept", "accept4", "sendto", "recvfrom",
            "sendmsg", "recvmsg", "read", "write", "readv", "writev", "shutdown", "close",
            "setsockopt", "getsockopt", "wait4")
OTHER_EVENTS = ("sock/inet_sock_set_state", "sock/sock_send_length", "sock/sock_recv_length",
                "sched/sched_process_fork", "sched/sched_process_exit",
                "signal/signal_generate", "signal/signal_deliver",
                "syscalls/sys_enter_exit_group")
HOLD = 0.1           # seconds a finished call waits for its socket's addresses
LAG = 2 * HOLD + 0.05  # the timeline shows what is at least this old: every call is in
BUFFER_KB = 8192     # per CPU: a burst of calls between two reads must fit


def _events() -> dict[str, str]:
    events = {f"syscalls/sys_{way}_{name}": "" for name in SYSCALLS
              for way in ("enter", "exit")}
    events.update((e, "") for e in OTHER_EVENTS)
    return events


class CallTrace:
    """The calls of a process tree: ``follow(pid)``, then ``read()`` and ``take()``."""

    def __init__(self) -> None:
        self.trace = TraceInstance("calls", _events(), ("fields", "record-tgid", "event-fork"),
                                   BUFFER_KB)
        self.assembler = CallAssembler(self.trace.offset)
        self.pids: list[int] = []
        self.trace.enable()

    def follow(self, pid: int) -> None:
        """Trace ``pid`` and, from now on, every process it forks."""
        self.pids.append(pid)
        self.trace.write("set_event_pid", " ".join(map(str, self.pids)))

    def fileno(self) -> int:
        return self.trace.fileno()

    def read(self) -> None:
        """Take in whatever the kernel has recorded so far."""
        feed = self.assembler.feed
        for line in self.trace.lines():
            ev = parse_event(line)
            if ev is not None:
                feed(ev)

    def take(self, now: float) -> list[Call]:
        """The rows complete by ``now`` less HOLD (packets' clock), in timeline order:
        a call's socket may be named by the kernel a little after the call returns."""
        return self.assembler.take(now - HOLD)

    def finish(self) -> tuple[list[Call], int]:
        """Stop, read the rest, remove the instance: the last calls and events lost."""
        try:
            lost = self.trace.stop()
            self.read()
        finally:
            self.trace.close()
        return self.assembler.take(None), lost

    def close(self) -> None:
        """Remove the instance (on every way out; harmless after ``finish``)."""
        self.trace.close()
