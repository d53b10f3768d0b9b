"""The Datagram record: one captured UDP datagram, decoded once at the edge.

UDP has no connection and no states: nothing to track, so a datagram never reaches the
tracker. It is shown as it is, in frame order between the annotated segments, to show what
UDP keeps that TCP does not: each ``sendto()`` is one datagram, and each ``recvfrom()``
returns exactly one, whole (message boundaries), or nothing if it was lost.
"""

from __future__ import annotations

from typing import Final

from .segment import endpoint, flow_addresses

PREVIEW: Final = 64      # payload bytes kept of each datagram
NO_STATES: Final = "UDP: no connection, no states; one sendto() = one datagram = one recvfrom()"


class Datagram:
    """One UDP datagram as seen on the wire. Treat instances as immutable.

    ``length`` is the payload length from the UDP header (not the captured length);
    ``data`` the first ``PREVIEW`` bytes of the payload as captured. ``flow`` holds the
    addresses and ports in wire form, as ``Segment.flow``.
    """

    __slots__ = ("frame", "ts", "sport", "dport", "length", "data", "flow")

    def __init__(self, frame: int, ts: float, sport: int, dport: int, length: int,
                 data: bytes, flow: bytes) -> None:
        self.frame = frame
        self.ts = ts
        self.sport = sport
        self.dport = dport
        self.length = length
        self.data = data
        self.flow = flow

    @property
    def src(self) -> str:
        """Source address, printable."""
        return flow_addresses(self.flow)[0]

    @property
    def dst(self) -> str:
        """Destination address, printable."""
        return flow_addresses(self.flow)[1]

    @property
    def sender(self) -> str:
        """"ip:port" of the sender."""
        return endpoint(self.src, self.sport)

    @property
    def receiver(self) -> str:
        """"ip:port" of the receiver."""
        return endpoint(self.dst, self.dport)

    def preview(self, limit: int = 32) -> str:
        """The payload's first bytes as text: printable ASCII kept, the rest as escapes."""
        text = "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}"
                       for b in self.data[:limit])
        more = "…" if self.length > min(limit, len(self.data)) else ""
        return f'"{text}"{more}' if self.length else ""

    def text(self) -> str:
        """One line: addresses, length and payload, as tcpdump prints UDP."""
        line = f"UDP {self.sender} > {self.receiver}: length {self.length}"
        preview = self.preview()
        return f"{line} {preview}" if preview else line

    def as_dict(self) -> dict[str, object]:
        """The jsonl record (``kind`` first)."""
        return {"kind": "datagram", "frame": self.frame, "ts": round(self.ts, 6), "proto": "udp",
                "src": self.src, "sport": self.sport, "dst": self.dst, "dport": self.dport,
                "len": self.length, "payload": self.data.hex(), "text": self.text(),
                "why": NO_STATES}

    def __repr__(self) -> str:
        return f"Datagram(#{self.frame} {self.text()})"
