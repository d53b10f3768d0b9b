"""A tiny builder of hand-made TCP conversations for tracker tests."""

from __future__ import annotations

from rawinspect.core.segment import ACK, FIN, RST, SYN, Segment

C_ADDR, C_PORT = "10.0.0.1", 40000
S_ADDR, S_PORT = "10.0.0.2", 80
C_ISN, S_ISN = 1000, 5000


class Conv:
    """Builds segments between a client and a server, numbering frames and time."""

    def __init__(self, cport: int = C_PORT, c_isn: int = C_ISN, s_isn: int = S_ISN,
                 t0: float = 100.0, step: float = 0.001) -> None:
        self.cport = cport
        self.frame = 0
        self.t = t0
        self.step = step
        self.c_isn, self.s_isn = c_isn, s_isn

    def seg(self, who: str, flags: int, seq: int, ack: int = 0, length: int = 0,
            window: int = 65535, dt: float | None = None, frame: int | None = None) -> Segment:
        """A segment from "c" (client) or "s" (server); seq/ack are absolute."""
        self.frame = frame if frame is not None else self.frame + 1
        self.t += self.step if dt is None else dt
        if who == "c":
            return Segment(self.frame, self.t, C_ADDR, self.cport, S_ADDR, S_PORT, seq & 0xFFFFFFFF,
                           ack & 0xFFFFFFFF, flags, window, length)
        return Segment(self.frame, self.t, S_ADDR, S_PORT, C_ADDR, self.cport, seq & 0xFFFFFFFF,
                       ack & 0xFFFFFFFF, flags, window, length)

    def handshake(self) -> list[Segment]:
        """SYN, SYN+ACK, ACK."""
        c, s = self.c_isn, self.s_isn
        return [self.seg("c", SYN, c), self.seg("s", SYN | ACK, s, c + 1),
                self.seg("c", ACK, c + 1, s + 1)]


__all__ = ["Conv", "ACK", "FIN", "RST", "SYN", "C_ISN", "S_ISN"]
