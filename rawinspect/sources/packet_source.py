"""What the capture loop reads packets from: a live socket, or anything that acts like one."""

from __future__ import annotations

from typing import Protocol

# One packet: (seconds, nanoseconds, captured bytes, length on the wire).
Packet = tuple[int, int, bytes, int]


class PacketSource(Protocol):
    """A stream of packets of one link type; ``sources.sniffer.Sniffer`` is one."""

    linktype: int

    def fileno(self) -> int:
        """A descriptor that polls readable when packets wait."""
        ...

    def read(self, limit: int) -> list[Packet]:
        """Up to ``limit`` packets waiting now; fewer (or none) when no more wait."""
        ...

    def poll_drops(self) -> int:
        """Packets lost before they could be read, so far."""
        ...

    def close(self) -> None:
        """Release the source; the capture ends."""
        ...
