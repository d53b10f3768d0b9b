"""UDP flows as Zeek logs them in conn.log: pure, fed datagrams in capture order.

Zeek keeps a UDP "connection" per pair of endpoints: the sender of the first datagram is
the originator; packets and payload bytes are counted per direction; the history has
``D`` once the originator sent a datagram with payload and ``d`` once the responder did;
conn_state is SF when both sides sent, S0 when only the originator did (Zeek's
``conn_state`` for UDP). A flow idle for ``udp_inactivity_timeout`` (1 minute) is
removed, and a later datagram starts a new row. Zeek's flipping of the originator by its
likely server ports is not done here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.datagram import Datagram
from .zeek import uid

UDP_INACTIVITY_TIMEOUT = 60.0   # Zeek's udp_inactivity_timeout (init-bare.zeek)


@dataclass
class UdpFlow:
    """One conn.log row of UDP: the originator, the responder and what each sent."""
    ts: float
    orig: str                       # "ip:port" of the first sender
    resp: str
    uid: str
    last: float = 0.0
    pkts: list[int] = field(default_factory=lambda: [0, 0])    # originator, responder
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    history: str = ""

    @property
    def duration(self) -> float:
        return self.last - self.ts

    @property
    def conn_state(self) -> str:
        """SF: both sides sent; S0: only the originator."""
        return "SF" if self.pkts[1] else "S0"

    def add(self, d: Datagram) -> None:
        """One more datagram of this pair of endpoints."""
        side = 0 if d.sender == self.orig else 1
        self.pkts[side] += 1
        self.bytes[side] += d.length
        self.last = d.ts
        letter = "Dd"[side]
        if d.length and letter not in self.history:
            self.history += letter


class UdpFlows:
    """Every UDP flow of a run, in order of their first datagram."""

    def __init__(self) -> None:
        self.rows: list[UdpFlow] = []
        self._open: dict[frozenset[str], UdpFlow] = {}

    def feed(self, datagrams: list[Datagram]) -> None:
        """The next datagrams, in capture order."""
        for d in datagrams:
            key = frozenset((d.sender, d.receiver))
            flow = self._open.get(key)
            if flow is None or d.ts - flow.last > UDP_INACTIVITY_TIMEOUT:
                flow = self._open[key] = UdpFlow(d.ts, d.sender, d.receiver, _uid(d))
                self.rows.append(flow)
            flow.add(d)


def _uid(d: Datagram) -> str:
    """A Zeek-style uid, stable for the same flow in the same capture."""
    return uid(f"udp{d.ts:.6f}{d.sender}{d.receiver}")
