"""Recording the programs' socket calls with the kernel's own tracepoints.

A private ftrace instance (``sources/tracefs``) follows the traced processes and every
process they fork (``set_event_pid`` with the ``event-fork`` option): their socket
syscalls, forks, signals and exits. A second one records every TCP socket's state
changes (``sock:inet_sock_set_state``, with the socket's identity and ports), in whatever
context they happen: they name the socket of each call. Nothing runs in the traced
programs, so they keep their timing (strace stops each call twice; the simultaneous-close
race is lost far more often under it: see the README). ``CallAssembler`` turns the lines
into Calls.
"""

from __future__ import annotations

import bisect
import os
import time

from ..core.call import Call
from .call_events import CallAssembler, TraceEvent, parse_event
from .tracefs import TraceInstance, TraceUnavailable

SYSCALLS = ("socket", "bind", "listen", "connect", "accept", "accept4", "sendto", "recvfrom",
            "sendmsg", "recvmsg", "read", "write", "readv", "writev", "shutdown", "close",
            "setsockopt", "getsockopt", "wait4")
OTHER_EVENTS = ("sched/sched_process_fork", "sched/sched_process_exit",
                "signal/signal_generate", "signal/signal_deliver",
                "syscalls/sys_enter_exit_group", "task/task_rename")
HOLD = 0.1           # seconds a finished call waits for its socket's addresses
LAG = 2 * HOLD + 0.05  # the timeline shows what is at least this old: every call is in
# The trace's ring, shared out among the CPUs: what the reader has not taken yet must fit
# (it keeps reading after the program ends, so a burst is lost only if it overflows this).
BUFFER_TOTAL_KB = 64 * 1024
BUFFER_KB = max(4096, BUFFER_TOTAL_KB // (os.cpu_count() or 1))
SETTLE = 0.02        # seconds: the two instances' events are merged this far behind
STATES = {"sock/inet_sock_set_state": "protocol == 6"}


def _events() -> dict[str, str]:
    events = {f"syscalls/sys_{way}_{name}": "" for name in SYSCALLS
              for way in ("enter", "exit")}
    events.update((e, "") for e in OTHER_EVENTS)
    return events


class CallTrace:
    """The calls of a process tree: ``follow(pid)``, then ``read()`` and ``take()``."""

    def __init__(self) -> None:
        options = ("fields", "record-tgid")
        self.trace = TraceInstance("calls", _events(), options + ("event-fork",), BUFFER_KB)
        try:
            # Every TCP socket's state changes, whoever's context they happen in: a traced
            # server's accepted socket is often set up while an untraced client runs.
            self.states = TraceInstance("sockets", STATES, options)
        except TraceUnavailable:
            self.trace.close()
            raise
        self.assembler = CallAssembler(self.trace.offset)
        self.pids: list[int] = []
        self.following = False
        self._waiting: list[TraceEvent] = []
        self.states.enable()

    def follow(self, pid: int) -> None:
        """Trace ``pid`` and, from now on, every process it forks."""
        if pid not in self.pids:
            self.pids.append(pid)
        self.trace.write("set_event_pid", " ".join(map(str, self.pids)))
        if not self.following:
            self.following = True
            self.trace.enable()  # only now: with no pid set, every process is traced

    def follow_running(self, pid: int) -> None:
        """Trace a running process (its threads and children), naming the sockets it has."""
        from .process import open_sockets, process_tree, task_name
        processes, tasks = process_tree(pid)
        for tgid, fds in open_sockets(processes).items():
            for fd, (family, local, peer) in fds.items():
                self.assembler.known_socket(tgid, fd, family, local, peer)
        for tid in tasks:
            self.assembler.name(tid, task_name(tid))
        self.pids.extend(t for t in tasks if t != pid)
        self.follow(pid)

    def read(self, final: bool = False) -> None:
        """Take in whatever the kernel has recorded so far, both instances' events in
        time order up to SETTLE ago (all when ``final``)."""
        waiting = self._waiting
        for lines in (self.trace.lines(), self.states.lines()):
            waiting.extend(ev for ev in map(parse_event, lines) if ev is not None)
        waiting.sort(key=lambda ev: ev.ts)
        horizon = float("inf") if final else (
            time.clock_gettime(time.CLOCK_TAI) - SETTLE)
        cut = bisect.bisect_right([ev.ts for ev in waiting], horizon)
        feed = self.assembler.feed
        for ev in waiting[:cut]:
            feed(ev)
        del waiting[:cut]

    def take(self, now: float) -> list[Call]:
        """The rows complete by ``now`` less HOLD (packets' clock), in timeline order:
        a call's socket may be named by the kernel a little after the call returns."""
        return self.assembler.take(now - HOLD)

    def finish(self) -> tuple[list[Call], int]:
        """Stop, read the rest, remove the instance: the last calls and events lost."""
        try:
            lost = self.trace.stop() + self.states.stop()
            self.read(final=True)
        finally:
            self.close()
        return self.assembler.take(None), lost

    def close(self) -> None:
        """Remove the instances (on every way out; harmless after ``finish``)."""
        self.trace.close()
        self.states.close()
