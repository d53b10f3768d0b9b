"""The kernel's own record of TCP state changes: the sock:inet_sock_set_state tracepoint.

Read through tracefs in a private ftrace instance (``instances/rawinspect-PID``), so
nothing else on the machine is disturbed; filtered to the captured ports in the kernel;
removed again on every way out. The instance uses the ``tai`` trace clock, which runs
with CLOCK_TAI: the offset to CLOCK_REALTIME (the packets' clock) is read once, and
checked with a marker written at a known time.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from ..core.kernel_event import KernelEvent

TRACEFS = Path("/sys/kernel/tracing")
EVENT = "events/sock/inet_sock_set_state"
KERNEL_STATES = {"TCP_ESTABLISHED": "ESTABLISHED", "TCP_SYN_SENT": "SYN_SENT",
                 "TCP_SYN_RECV": "SYN_RCVD", "TCP_FIN_WAIT1": "FIN_WAIT_1",
                 "TCP_FIN_WAIT2": "FIN_WAIT_2", "TCP_TIME_WAIT": "TIME_WAIT",
                 "TCP_CLOSE": "CLOSED", "TCP_CLOSE_WAIT": "CLOSE_WAIT",
                 "TCP_LAST_ACK": "LAST_ACK", "TCP_LISTEN": "LISTEN", "TCP_CLOSING": "CLOSING",
                 "TCP_NEW_SYN_RECV": "SYN_RCVD"}
_LINE = re.compile(
    r"\s(\d+\.\d+): inet_sock_set_state: family=(AF_INET6?) protocol=IPPROTO_TCP "
    r"sport=(\d+) dport=(\d+) saddr=(\S+) daddr=(\S+) saddrv6=(\S+) daddrv6=(\S+) "
    r"oldstate=(\w+) newstate=(\w+)")
_MARK = re.compile(r"\s(\d+\.\d+): tracing_mark_write: rawinspect-clock (\d+\.\d+)")


class TraceUnavailable(Exception):
    """No tracefs or no permission: capture goes on without verification."""


def _endpoint(family: str, addr4: str, addr6: str, port: int) -> str:
    return f"[{addr6}]:{port}" if family == "AF_INET6" else f"{addr4}:{port}"


def parse_line(line: str, offset: float) -> KernelEvent | None:
    """One trace line → a KernelEvent on the packets' clock (None for other lines)."""
    m = _LINE.search(line)
    if m is None:
        return None
    ts, fam, sport, dport, s4, d4, s6, d6, old, new = m.groups()
    return KernelEvent(float(ts) - offset, _endpoint(fam, s4, s6, int(sport)),
                       _endpoint(fam, d4, d6, int(dport)),
                       KERNEL_STATES.get(old, old), KERNEL_STATES.get(new, new))


def socket_table() -> dict[tuple[str, str], str]:
    """The kernel's TCP sockets now, (local, remote) → state, from ``ss -tanH``."""
    try:
        out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5:
            table[(parts[3], parts[4])] = parts[0]
    return table


class KernelTrace:
    """A private ftrace instance recording inet_sock_set_state for some ports."""

    def __init__(self, ports: list[int]) -> None:
        if not (TRACEFS / "instances").is_dir():
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                           capture_output=True)
        if not (TRACEFS / EVENT).is_dir():
            raise TraceUnavailable(f"no tracefs with {EVENT} at {TRACEFS} "
                                   "(needs root and a kernel with tracepoints)")
        self.dir = TRACEFS / "instances" / f"rawinspect-{os.getpid()}"
        try:
            self.dir.mkdir()
        except OSError as e:
            raise TraceUnavailable(f"cannot create an ftrace instance: {e.strerror}") from None
        try:
            (self.dir / "trace_clock").write_text("tai")
            ports_expr = " || ".join(f"sport == {p} || dport == {p}" for p in ports)
            (self.dir / EVENT / "filter").write_text(
                f"protocol == 6" + (f" && ({ports_expr})" if ports else ""))
            (self.dir / EVENT / "enable").write_text("1")
            self.pipe = os.open(self.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            self.close()
            raise TraceUnavailable(f"cannot set up the tracepoint: {e.strerror}") from None
        self.offset = time.clock_gettime(time.CLOCK_TAI) - time.time()
        self.skew: float | None = None
        self.events: list[KernelEvent] = []
        self._partial = ""
        self._mark_written = time.time()
        (self.dir / "trace_marker").write_text(f"rawinspect-clock {self._mark_written:.6f}")

    def fileno(self) -> int:
        return self.pipe

    def read(self) -> None:
        """Take in whatever the kernel has recorded so far."""
        while True:
            try:
                chunk = os.read(self.pipe, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                return
            text = self._partial + chunk.decode(errors="replace")
            lines = text.split("\n")
            self._partial = lines.pop()
            for line in lines:
                ev = parse_line(line, self.offset)
                if ev is not None:
                    self.events.append(ev)
                elif (m := _MARK.search(line)) and self.skew is None:
                    self.skew = float(m.group(1)) - self.offset - float(m.group(2))

    def lost(self) -> int:
        """Events the ring buffer overwrote (per-CPU overrun counters)."""
        total = 0
        for stats in (self.dir / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"^overrun: (\d+)", stats.read_text(), re.M)
            total += int(m.group(1)) if m else 0
        return total

    def close(self) -> int:
        """Read the rest, switch off, remove the instance; returns events lost."""
        lost = 0
        if hasattr(self, "pipe"):
            try:
                (self.dir / EVENT / "enable").write_text("0")
                self.read()
                lost = self.lost()
            finally:
                os.close(self.pipe)
                del self.pipe
        try:
            self.dir.rmdir()
        except OSError:
            pass
        return lost
