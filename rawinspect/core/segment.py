"""The Segment record: one captured TCP segment, decoded once at the edge."""

from __future__ import annotations

import socket
import struct
from typing import Final

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80
AE: Final = 0x100  # accurate ECN, formerly the NS bit

_LETTERS = ((SYN, "S"), (FIN, "F"), (PSH, "P"), (RST, "R"), (URG, "U"), (ECE, "E"), (CWR, "W"))


def flag_letters(flags: int) -> str:
    """tcpdump's flag letters: "S", "S.", "F.", "R", "P." ("." is ACK, "none" for none)."""
    out = "".join(letter for bit, letter in _LETTERS if flags & bit)
    if flags & ACK:
        out += "."
    return out or "none"


# Indexed by the 9 flag bits.
FLAG_LETTERS: Final = tuple(flag_letters(f) for f in range(0x200))


class Segment:
    """One TCP segment as seen on the wire. Treat instances as immutable.

    ``src``/``dst`` are printable addresses; ``payload`` is the TCP payload length
    taken from the IP header (not the captured length). ``opts`` is None except on
    SYN segments, where it maps option names (mss, wscale, sack_perm, tfo) to values.
    ``raw_opts`` holds every segment's option bytes as captured (b"" for none), for
    ``core.options.parse_options`` to read on demand.
    ``issues`` lists decoding problems ("truncated", "ip_fragment"). ``flow`` is the
    4-tuple in wire form (see ``flow_key``), the connection table's key. The decoder
    passes the bytes it read and empty ``src``/``dst``, which are then made from the flow
    when first read (most segments belong to a known connection and never need them);
    without a flow, it is built from the addresses and ports.
    """

    __slots__ = ("frame", "ts", "_src", "sport", "_dst", "dport", "seq", "ack",
                 "flags", "window", "payload", "opts", "issues", "flow", "raw_opts")

    def __init__(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int,
                 seq: int, ack: int, flags: int, window: int, payload: int,
                 opts: dict[str, int] | None = None, issues: tuple[str, ...] = (),
                 flow: bytes | None = None, raw_opts: bytes = b"") -> None:
        self.frame = frame
        self.ts = ts
        self._src = src
        self.sport = sport
        self._dst = dst
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.opts = opts
        self.issues = issues
        self.flow = flow if flow is not None else flow_key(src, sport, dst, dport)
        self.raw_opts = raw_opts

    @property
    def src(self) -> str:
        """Source address, printable."""
        if not self._src:
            self._src, self._dst = flow_addresses(self.flow)
        return self._src

    @property
    def dst(self) -> str:
        """Destination address, printable."""
        if not self._dst:
            self._src, self._dst = flow_addresses(self.flow)
        return self._dst

    @property
    def letters(self) -> str:
        """Flags as tcpdump prints them."""
        return FLAG_LETTERS[self.flags & 0x1FF]

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one for SYN and for FIN."""
        return self.payload + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self) -> str:
        return (f"Segment(#{self.frame} {self.src}:{self.sport} > {self.dst}:{self.dport} "
                f"[{self.letters}] seq={self.seq} ack={self.ack} win={self.window} len={self.payload})")


def endpoint(addr: str, port: int) -> str:
    """"ip:port", with IPv6 addresses in brackets as in URLs."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


_ports = struct.Struct("!HH")


def flow_key(src: str, sport: int, dst: str, dport: int) -> bytes:
    """Source and destination address, then source and destination port, as on the wire.

    For IPv4 without options (and IPv6 without extension headers) these are contiguous
    in the packet, so the decoder slices them out in one go: 12 bytes, or 36 for IPv6.
    """
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    return b"".join((socket.inet_pton(family, src), socket.inet_pton(family, dst),
                     _ports.pack(sport, dport)))


def flow_addresses(flow: bytes) -> tuple[str, str]:
    """The printable source and destination addresses of a flow key."""
    n = (len(flow) - 4) // 2
    family = socket.AF_INET if n == 4 else socket.AF_INET6
    return socket.inet_ntop(family, flow[:n]), socket.inet_ntop(family, flow[n:2 * n])


def reverse_flow(flow: bytes) -> bytes:
    """The key of the other direction: addresses and ports swapped.

    Joined, not added: compiled by mypyc 1.13, ``a + b`` leaks ``a`` when it is a new
    object (a slice, another sum): mypyc issue 1192, a hundred bytes a call.
    """
    n = (len(flow) - 4) // 2
    return b"".join((flow[n:2 * n], flow[:n], flow[2 * n + 2:], flow[2 * n:2 * n + 2]))
