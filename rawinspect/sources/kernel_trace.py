"""The kernel's own record of TCP state changes: the sock:inet_sock_set_state tracepoint.

Read through a private ftrace instance (``sources/tracefs``), filtered to the captured
ports in the kernel. The offset from the trace clock to the packets' clock is checked
with a marker written at a known time.
"""

from __future__ import annotations

import re
import subprocess
import time

from ..core.kernel_event import KernelEvent
from .tracefs import TraceInstance, TraceUnavailable

__all__ = ["KernelTrace", "TraceUnavailable", "parse_line", "socket_table"]
EVENT = "sock/inet_sock_set_state"
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
        ports_expr = " || ".join(f"sport == {p} || dport == {p}" for p in ports)
        self.trace = TraceInstance(
            "states", {EVENT: "protocol == 6" + (f" && ({ports_expr})" if ports else "")})
        self.trace.enable()
        self.offset = self.trace.offset
        self.skew: float | None = None
        self.events: list[KernelEvent] = []
        self._mark_written = time.time()
        self.trace.write("trace_marker", f"rawinspect-clock {self._mark_written:.6f}")

    def fileno(self) -> int:
        return self.trace.fileno()

    def read(self) -> None:
        """Take in whatever the kernel has recorded so far."""
        for line in self.trace.lines():
            ev = parse_line(line, self.offset)
            if ev is not None:
                self.events.append(ev)
            elif (m := _MARK.search(line)) and self.skew is None:
                self.skew = float(m.group(1)) - self.offset - float(m.group(2))

    def close(self) -> int:
        """Read the rest, switch off, remove the instance; returns events lost."""
        try:
            lost = self.trace.stop()
            self.read()
        finally:
            self.trace.close()
        return lost
