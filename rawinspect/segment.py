"""The Segment record: one captured TCP segment, decoded once at the edge."""

from __future__ import annotations

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
AE = 0x100  # accurate ECN, formerly the NS bit

_LETTERS = ((SYN, "S"), (FIN, "F"), (PSH, "P"), (RST, "R"), (URG, "U"), (ECE, "E"), (CWR, "W"))


def flag_letters(flags: int) -> str:
    """tcpdump's flag letters: "S", "S.", "F.", "R", "P." ("." is ACK, "none" for none)."""
    out = "".join(letter for bit, letter in _LETTERS if flags & bit)
    if flags & ACK:
        out += "."
    return out or "none"


FLAG_LETTERS = tuple(flag_letters(f) for f in range(0x200))  # indexed by the 9 flag bits


class Segment:
    """One TCP segment as seen on the wire. Treat instances as immutable.

    ``src``/``dst`` are printable addresses; ``payload`` is the TCP payload length
    taken from the IP header (not the captured length). ``opts`` is None except on
    SYN segments, where it maps option names (mss, wscale, sack_perm, tfo) to values.
    ``issues`` lists decoding problems ("truncated", "ip_fragment").
    """

    __slots__ = ("frame", "ts", "src", "sport", "dst", "dport", "seq", "ack",
                 "flags", "window", "payload", "opts", "issues")

    def __init__(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int,
                 seq: int, ack: int, flags: int, window: int, payload: int,
                 opts: dict[str, int] | None = None, issues: tuple[str, ...] = ()) -> None:
        self.frame = frame
        self.ts = ts
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.opts = opts
        self.issues = issues

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
