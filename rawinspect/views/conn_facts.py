"""What the findings read of each connection, collected in one pass (pure).

``FactsCollector`` takes the annotations in capture order and the linked calls in time
order, like the summaries do, and keeps per connection only small, bounded facts: the
states each side entered, its first FIN, its RSTs, counts and first frames of the
analysis flags, the time lost to retransmissions, stalls that look like Nagle meeting a
delayed ACK, and the calls that matter (every call but a read or write, failed ones, the
first few reads and writes for the message boundaries). The findings' rules read them.
The short, bounded sequences are tuples, since most stay empty and an empty tuple is
shared: thousands of connections are open at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ..core.annotation import Annotation
from ..core.call import CALL, ENTERED, Call
from ..core.segment import ACK, FIN, RST, SYN
from .calls import RECVS, SENDS
from .steps import StepLog

SIDES: Final = ("client", "server")
FIRST: Final = 8              # first frames kept per flag
KEPT_IO: Final = 64           # reads and writes kept per side for the message boundaries
DELAYED_MIN: Final = 0.030    # a delayed ACK's delay: Linux 40 ms at least,
DELAYED_MAX: Final = 0.250    # 200 ms at most
RIGHT_AFTER: Final = 0.005    # data this soon after the ACK was waiting for it
UNACKED: Final = 256          # unacknowledged sends remembered per direction (retransmission cost)


# Shared by the sides and connections that have none yet (most, in a replay without the
# programs' calls): each gets its own at its first. Never written to.
NO_CALLS: list[Call] = []
NO_SENDS: dict[int, float] = {}


@dataclass
class Flag:
    """An analysis flag of one connection: how many, the first frames, first and last time."""
    count: int = 0
    frames: tuple[int, ...] = ()
    first: float = 0.0
    last: float = 0.0

    def add(self, frame: int, ts: float) -> None:
        if not self.count:
            self.first = ts
        self.count += 1
        self.last = ts
        if len(self.frames) < FIRST:
            self.frames += (frame,)


@dataclass
class Stall:
    """Data held back until a delayed ACK came: ``ack_frame`` after ``delay`` seconds
    acknowledged ``small_frame``; ``frame`` (the held data) left right after it."""
    small_frame: int
    ack_frame: int
    frame: int
    delay: float
    ts: float


@dataclass
class Side:
    """One side's facts (the side that sends, for its segments).

    The fields from ``sent`` on are the collector's own, plain fields rather than tuples
    so that the compiled build keeps them unboxed: the sends not acknowledged yet (the
    oldest in ``sent_*``, the others in ``unacked``, for the retransmissions' cost), the
    unacknowledged small send, then the delayed ACK of it that the next data may wait for."""
    steps: StepLog                             # (state entered, when, frame)
    fin_frame: int = 0                         # its first FIN's frame (0: none)
    data_frames: int = 0
    data_bytes: int = 0
    last_data: float = 0.0
    data_after_peer_fin: int = 0                # frame of its first data after the peer's FIN
    mss: int = 536
    stalls: tuple[Stall, ...] = ()
    rto_cost: float = 0.0
    rto_frames: tuple[int, ...] = ()
    options: frozenset[str] = frozenset()              # setsockopt options of its socket
    calls: list[Call] = field(default_factory=lambda: NO_CALLS)
    io: int = 0                                         # reads and writes kept
    sent: bool = False           # an unacknowledged send: its rel seq, when it first left
    sent_seq: int = 0
    sent_ts: float = 0.0
    unacked: dict[int, float] = field(default_factory=lambda: NO_SENDS)  # later ones: seq → ts
    small: bool = False          # a small send not acknowledged yet: its frame, time, seq end
    small_frame: int = 0
    small_ts: float = 0.0
    small_end: int = 0
    held: bool = False           # its delayed ACK: the small send's frame, the ACK's frame
    held_frame: int = 0          # and time, the delay
    held_ack: int = 0
    held_ts: float = 0.0
    held_delay: float = 0.0

    def state_at_end(self) -> str:
        return self.steps.last

    def remember(self, seq: int, ts: float) -> None:
        """A send that left at ``ts``, unless already remembered (or UNACKED are)."""
        if not self.sent:
            self.sent, self.sent_seq, self.sent_ts = True, seq, ts
        elif seq != self.sent_seq and len(self.unacked) + 1 < UNACKED:
            if self.unacked is NO_SENDS:
                self.unacked = {}
            self.unacked.setdefault(seq, ts)

    def first_sent(self, seq: int) -> float | None:
        """When the unacknowledged send at ``seq`` left (None if not remembered)."""
        if self.sent and seq == self.sent_seq:
            return self.sent_ts
        return self.unacked.get(seq)

    def sent_again(self, seq: int, ts: float) -> None:
        """The remembered send at ``seq`` left again at ``ts``."""
        if self.sent and seq == self.sent_seq:
            self.sent_ts = ts
        else:
            if self.unacked is NO_SENDS:
                self.unacked = {}
            self.unacked[seq] = ts

    def acked(self, ack: int) -> None:
        """Forget the sends below ``ack``: the oldest first, up to the first one not below it."""
        if not self.sent or self.sent_seq >= ack:
            return
        rest = self.unacked
        grown = bool(rest)
        while rest:
            seq = next(iter(rest))
            ts = rest.pop(seq)
            if seq >= ack:
                self.sent_seq, self.sent_ts = seq, ts
                return
        self.sent = False
        if grown:
            self.unacked = NO_SENDS   # an emptied dict keeps the table it grew to


NO_FLAGS: dict[str, Flag] = {}


@dataclass
class ConnFacts:
    """What the rules read of one connection."""
    conn: int
    client: str
    server: str
    first_ts: float
    client_side: Side
    server_side: Side
    last_ts: float = 0.0
    rsts: tuple[tuple[int, float, str, str], ...] = ()  # frame, ts, side, event
    flags: dict[str, Flag] = field(default_factory=lambda: NO_FLAGS)
    syns: int = 0                      # SYNs the client sent, first one included
    syn_frames: tuple[int, ...] = ()   # the SYNs sent again
    client_acked: bool = False         # the client sent an ACK (not an RST) after the SYN+ACK
    synack: int = 0                    # frame of the first SYN+ACK
    synack_again: tuple[int, ...] = ()  # resent while the client was ESTABLISHED
    acks_dropped: tuple[int, ...] = ()  # the client's, the accept queue full

    @property
    def sides(self) -> dict[str, Side]:
        """Both sides by name, "client" and "server"."""
        return {"client": self.client_side, "server": self.server_side}

    @property
    def listened(self) -> bool:
        """The server side was a listener (not one end of a simultaneous open)."""
        return self.server_side.steps.first == "LISTEN"

    def side(self, who: str) -> Side:
        if who == "client":
            return self.client_side
        if who == "server":
            return self.server_side
        raise KeyError(who)

    def flag(self, name: str) -> Flag:
        """The flag's facts (count 0 when never raised)."""
        return self.flags.get(name) or Flag()


def _enter(steps: StepLog, path: list[str], ts: float, frame: int) -> None:
    """The states of a path that differ from the last one entered."""
    for state in path:
        if state != steps.last:
            steps.add(state, ts, frame)


class FactsCollector:
    """Collects every connection's facts, one annotation or call at a time."""

    def __init__(self) -> None:
        self.facts: dict[int, ConnFacts] = {}
        self.loose: list[Call] = []        # process-level calls: binds, signals, exits, waits
        self.bind_options: dict[int, set[str]] = {}   # id of a loose bind → its socket's options
        self._opts: dict[tuple[int, int], set[str]] = {}   # (tgid, fd) → options set
        self._early: dict[int, list[Call]] = {}   # calls of a connection not seen yet
        # The facts by connection number as well: the connection table counts them from 1,
        # and a list finds them faster than a dict.
        self._numbered: list[ConnFacts | None] = [None]

    def feed(self, anns: list[Annotation]) -> None:
        """The next annotations of the run, in capture order."""
        f: ConnFacts | None = None
        for a in anns:
            if f is None or f.conn != a.conn:
                f = self._facts_of(a)
            seg = a.seg
            f.last_ts = seg.ts
            if a.client_path:
                _enter(f.client_side.steps, a.client_path, seg.ts, seg.frame)
            if a.server_path:
                _enter(f.server_side.steps, a.server_path, seg.ts, seg.frame)
            retrans = False
            if a.analysis:
                for name in a.analysis:
                    retrans = retrans or name == "retransmission"
                    flag = f.flags.get(name)
                    if flag is None:
                        if f.flags is NO_FLAGS:
                            f.flags = {}
                        flag = f.flags[name] = Flag()
                    flag.add(seg.frame, seg.ts)
            if a.from_client:
                self._segment(f, a, f.client_side, f.server_side, retrans)
            else:
                self._segment(f, a, f.server_side, f.client_side, retrans)

    def _facts_of(self, a: Annotation) -> ConnFacts:
        """The facts of the annotation's connection, new at its first segment."""
        conn, numbered = a.conn, self._numbered
        if 0 <= conn < len(numbered):
            f = numbered[conn]
            if f is not None:
                return f
        f = self.facts.get(conn)
        return f if f is not None else self._new(a)

    def _new(self, a: Annotation) -> ConnFacts:
        ts, frame, conn, numbered = a.seg.ts, a.seg.frame, a.conn, self._numbered
        f = self.facts[conn] = ConnFacts(conn, a.client, a.server, ts,
                                         Side(StepLog(a.client_before, ts, frame)),
                                         Side(StepLog(a.server_before, ts, frame)))
        if 0 <= conn <= len(numbered) + 1024:    # not for numbers far apart
            numbered.extend([None] * (conn + 1 - len(numbered)))
            numbered[conn] = f
        self.feed_calls(self._early.pop(a.conn, []))
        return f

    def forget(self, conns: list[int]) -> list[ConnFacts]:
        """Drop the facts of these connections (those seen); returns them."""
        numbered, gone = self._numbered, []
        for conn in conns:
            f = self.facts.pop(conn, None)
            if f is not None:
                gone.append(f)
                if 0 <= conn < len(numbered):
                    numbered[conn] = None
        return gone

    def _segment(self, f: ConnFacts, a: Annotation, s: Side, p: Side, retrans: bool) -> None:
        seg = a.seg
        flags, frame, ts, payload = seg.flags, seg.frame, seg.ts, seg.payload
        if flags & SYN:
            self._syn(f, a, s)
        if (not f.client_acked and a.from_client and f.synack and flags & ACK
                and not flags & (SYN | RST)):
            f.client_acked = True
        if flags & RST:
            if len(f.rsts) < FIRST:
                f.rsts += ((frame, ts, "client" if a.from_client else "server", a.event),)
            return
        if (a.from_client and a.server_after == "SYN_RCVD" and a.server_before == "SYN_RCVD"
                and a.client_before == "ESTABLISHED" and len(f.acks_dropped) < FIRST
                and f.listened):
            f.acks_dropped += (frame,)   # the listener's full accept queue did not take it
        if flags & FIN and not s.fin_frame:
            s.fin_frame = frame
        if payload:
            s.last_data = ts
            if not retrans:
                s.data_frames += 1
                s.data_bytes += payload
            if p.fin_frame and not s.data_after_peer_fin:
                s.data_after_peer_fin = frame
        if payload or flags & FIN:
            self._cost(s, a, retrans)
        if flags & ACK:
            self._acked(p, a)
        if payload and not retrans:
            self._nagle(s, a)

    def _syn(self, f: ConnFacts, a: Annotation, s: Side) -> None:
        opts = a.seg.opts or {}
        if "mss" in opts:
            s.mss = opts["mss"]
        if a.seg.flags & ACK:
            if not f.synack:
                f.synack = a.seg.frame
            elif (not a.from_client and a.client_before == "ESTABLISHED" and f.client_acked
                  and f.listened and len(f.synack_again) < FIRST):
                f.synack_again += (a.seg.frame,)
        elif a.from_client:
            f.syns += 1
            if f.syns > 1 and len(f.syn_frames) < FIRST:
                f.syn_frames += (a.seg.frame,)

    def _cost(self, s: Side, a: Annotation, retrans: bool) -> None:
        """Remember when each send left; a retransmission costs the time since then."""
        key = a.rel_seq
        if not retrans:
            s.remember(key, a.seg.ts)
            return
        first = s.first_sent(key)
        if first is not None and a.seg.ts - first >= 0.2:
            s.rto_cost += a.seg.ts - first
            s.sent_again(key, a.seg.ts)
            if len(s.rto_frames) < FIRST:
                s.rto_frames += (a.seg.frame,)

    def _acked(self, p: Side, a: Annotation) -> None:
        """An ACK acknowledges ``p``'s sends; a late, bare one of a small send is a
        delayed ACK that ``p``'s next data may have waited for (Nagle)."""
        ack = a.rel_ack
        p.acked(ack)
        seg = a.seg
        if p.small and not seg.payload and not seg.flags & (SYN | FIN) and ack >= p.small_end:
            delay = seg.ts - p.small_ts
            p.held = DELAYED_MIN <= delay <= DELAYED_MAX
            if p.held:
                p.held_frame, p.held_ack = p.small_frame, seg.frame
                p.held_ts, p.held_delay = seg.ts, delay
            p.small = False

    def _nagle(self, s: Side, a: Annotation) -> None:
        """New data from ``s``: right after a delayed ACK of its small send, it waited."""
        seg = a.seg
        if s.held and seg.ts - s.held_ts <= RIGHT_AFTER and len(s.stalls) < FIRST:
            s.stalls += (Stall(s.held_frame, s.held_ack, seg.frame, s.held_delay, seg.ts),)
        s.held = False
        s.small = seg.payload < s.mss
        if s.small:
            s.small_frame, s.small_ts, s.small_end = seg.frame, seg.ts, a.rel_seq + seg.payload

    def feed_calls(self, calls: list[Call]) -> None:
        """The programs' calls in time order, linked to connections by the calls view."""
        for c in calls:
            if c.phase == ENTERED:
                continue
            key = (c.tgid, c.fd if c.fd is not None else -1)
            if c.kind == CALL and c.name == "socket" and c.ret is not None and c.ret >= 0:
                self._opts[(c.tgid, c.ret)] = set()
            elif c.kind == CALL and c.name == "setsockopt" and not c.failed:
                self._opts.setdefault(key, set()).add(c.args.split(", ")[-1])
            f = self.facts.get(c.conn) if c.conn is not None else None
            if f is None and c.conn is not None:
                self._early.setdefault(c.conn, []).append(c)
                continue
            if f is None or c.side not in SIDES:
                if c.kind != CALL or c.name in ("bind", "wait4") or c.failed:
                    self.loose.append(c)
                    if c.name == "bind":
                        self.bind_options[id(c)] = set(self._opts.get(key, ()))
                continue
            side = f.side(c.side)
            opts = self._opts.get(key)
            if opts and not opts <= side.options:
                side.options = side.options | opts
            io = c.name in SENDS or c.name in RECVS
            if io and not c.failed and c.ret != 0:
                if side.io >= KEPT_IO:
                    continue
                side.io += 1
            if side.calls is NO_CALLS:
                side.calls = []
            side.calls.append(c)
