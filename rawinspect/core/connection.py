"""The records the tracker keeps per connection: two Endpoints, a Hold, and the Connection."""

from __future__ import annotations

from . import transitions as T
from .annotation import Annotation
from .segment import Segment, endpoint


class Endpoint:
    """One side of a connection: its state and the sequence bookkeeping we need."""

    __slots__ = ("addr", "port", "state", "inferred", "base", "nxt", "syn_seq", "fin_end",
                 "fin_acked", "last_ack", "win", "wscale", "spoke", "tw_until", "synack")

    def __init__(self, addr: str, port: int, state: str, inferred: bool) -> None:
        self.addr = addr
        self.port = port
        self.state = state
        self.inferred = inferred       # state assumed, not seen (capture began mid-way)
        # Sequence numbers are 32 bits: -1 says "none yet" and keeps them unboxed, compiled.
        self.base = -1                 # sequence number that relative numbers count from
        self.nxt = -1                  # highest sequence number sent + 1 (-1: nothing yet)
        self.syn_seq = -1              # our SYN's sequence number
        self.fin_end = -1              # sequence number just after our FIN
        self.fin_acked = False
        self.last_ack = 0                 # last acknowledgement sent (= our RCV.NXT)
        self.win = -1                     # last window advertised, scaled (-1: none yet)
        self.wscale = -1                  # window scale offered in our SYN (-1: none)
        self.spoke = False                # has sent a segment
        self.tw_until = 0.0               # when TIME_WAIT ends
        self.synack = False               # sent a SYN+ACK already


class Slot:
    """A segment waiting in the output queue until its annotation is final."""

    __slots__ = ("seg", "conn", "from_client", "ann")

    def __init__(self, seg: Segment, conn: "Connection", from_client: bool) -> None:
        self.seg = seg
        self.conn = conn
        self.from_client = from_client
        self.ann: Annotation | None = None  # once final


class Hold:
    """A SYN or FIN held until the peer's answer shows how it was received.

    ``queue`` starts with the held segment; the connection's later segments wait behind
    it. ``end`` is the sequence number the peer must acknowledge; ``token`` tells this
    hold from a later one of the same connection in the expiry queue.
    """

    __slots__ = ("queue", "kind", "from_client", "end", "token")

    def __init__(self, slot: Slot, kind: str, end: int, token: int) -> None:
        self.queue = [slot]
        self.kind = kind
        self.from_client = slot.from_client
        self.end = end
        self.token = token


class Connection:
    """One TCP connection: both endpoints, and any segments held for causality."""

    __slots__ = ("id", "c", "s", "ckey", "skey", "client", "server", "processed", "hold",
                 "deferred", "wscale_ok", "plain_c", "plain_s", "last_ts", "retiring",
                 "retire_at")

    def __init__(self, cid: int, c: Endpoint, s: Endpoint, ckey: bytes, skey: bytes) -> None:
        self.id = cid
        self.c = c
        self.s = s
        self.ckey = ckey           # Segment.flow of the client's segments
        self.skey = skey           # and of the server's
        self.client = endpoint(c.addr, c.port)
        self.server = endpoint(s.addr, s.port)
        self.processed = False     # a segment went through the state inference
        self.hold: Hold | None = None
        # A crossing SYN or FIN: the peer receives ours after sending its own.
        self.deferred: tuple[Endpoint, str] | None = None
        self.wscale_ok = False
        # No segment from the client (plain_c) or server (plain_s) can change a state
        # unless it carries SYN, FIN or RST: set after every segment the inference saw.
        self.plain_c = self.plain_s = False
        self.last_ts = 0.0         # last segment the inference saw
        self.retiring = False      # finished, waiting in the table's retire queue
        self.retire_at = 0.0       # when it is due there

    def finished(self) -> bool:
        """Both endpoints are CLOSED or in TIME_WAIT (or the handshake never started)."""
        # The tuples written out: compiled, ``in`` a literal tuple is a chain of ==.
        return (self.c.state in (T.CLOSED, T.TIME_WAIT, T.LISTEN)
                and self.s.state in (T.CLOSED, T.TIME_WAIT, T.LISTEN))

    def refresh_plain(self) -> None:
        """Recompute plain_c/plain_s after the state inference changed anything.

        A segment without SYN, FIN or RST can still change the receiver's state when it
        acknowledges a SYN or a FIN, and TIME_WAIT or an assumed state needs a look too.
        """
        c, s = self.c, self.s
        self.plain_c = _plain_between(c, s)
        self.plain_s = _plain_between(s, c)


def _plain_between(sender: Endpoint, receiver: Endpoint) -> bool:
    """Data or a pure ACK from ``sender`` cannot change either state."""
    # TIME_WAIT, CLOSED, LISTEN: so that finished connections keep last_ts
    return not (sender.state in (T.TIME_WAIT, T.CLOSED, T.LISTEN)
                or receiver.state in (T.TIME_WAIT, T.CLOSED, T.LISTEN, T.SYN_RCVD)
                or sender.inferred or receiver.inferred
                or (receiver.fin_end >= 0 and not receiver.fin_acked)
                or sender.nxt < 0 or receiver.base < 0 or sender.base < 0)
