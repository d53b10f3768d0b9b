"""What the findings read of each connection, collected in one pass (pure).

``FactsCollector`` takes the annotations in capture order and the linked calls in time
order, like the summaries do, and keeps per connection only small, bounded facts: the
states each side entered, its first FIN, its RSTs, counts and first frames of the
analysis flags, the time lost to retransmissions, stalls that look like Nagle meeting a
delayed ACK, and the calls that matter (every call but a read or write, failed ones, the
first few reads and writes for the message boundaries). The findings' rules read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.annotation import Annotation
from ..core.call import CALL, ENTERED, Call
from ..core.segment import ACK, FIN, RST, SYN
from .calls import RECVS, SENDS

SIDES = ("client", "server")
FIRST = 8              # first frames kept per flag
KEPT_IO = 64           # reads and writes kept per side for the message boundaries
DELAYED_ACK = (0.030, 0.250)  # a delayed ACK's delay: Linux 40 ms at least, 200 ms at most
RIGHT_AFTER = 0.005    # data this soon after the ACK was waiting for it
UNACKED = 256          # unacknowledged sends remembered per direction (retransmission cost)


@dataclass
class Flag:
    """An analysis flag of one connection: how many, the first frames, first and last time."""
    count: int = 0
    frames: list[int] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0

    def add(self, frame: int, ts: float) -> None:
        if not self.count:
            self.first = ts
        self.count += 1
        self.last = ts
        if len(self.frames) < FIRST:
            self.frames.append(frame)


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
    """One side's facts (the side that sends, for its segments)."""
    steps: list[tuple[str, float, int]]        # (state entered, when, frame)
    fin: tuple[int, float] | None = None       # its first FIN
    data_frames: int = 0
    data_bytes: int = 0
    last_data: float = 0.0
    data_after_peer_fin: int = 0                # frame of its first data after the peer's FIN
    mss: int = 536
    last_small: tuple[int, float, int] | None = None   # frame, ts, seq end of unacked small data
    # the small send's frame, the delayed ACK's frame and time, its delay
    delayed_ack: tuple[int, int, float, float] | None = None
    stalls: list[Stall] = field(default_factory=list)
    unacked: dict[int, float] = field(default_factory=dict)  # rel seq → first sent
    rto_cost: float = 0.0
    rto_frames: list[int] = field(default_factory=list)
    options: set[str] = field(default_factory=set)     # setsockopt options of its socket
    calls: list[Call] = field(default_factory=list)
    io: int = 0                                         # reads and writes kept

    def state_at_end(self) -> str:
        return self.steps[-1][0]


@dataclass
class ConnFacts:
    """What the rules read of one connection."""
    conn: int
    client: str
    server: str
    first_ts: float
    last_ts: float = 0.0
    sides: dict[str, Side] = field(default_factory=dict)
    rsts: list[tuple[int, float, str, str]] = field(default_factory=list)  # frame, ts, side, event
    flags: dict[str, Flag] = field(default_factory=dict)
    syns: int = 0                      # SYNs the client sent, first one included
    syn_frames: list[int] = field(default_factory=list)   # the SYNs sent again
    client_acked: bool = False         # the client sent an ACK (not an RST) after the SYN+ACK
    synack: int = 0                    # frame of the first SYN+ACK
    synack_again: list[int] = field(default_factory=list)  # resent while the client was ESTABLISHED
    acks_dropped: list[int] = field(default_factory=list)  # the client's, the accept queue full

    @property
    def listened(self) -> bool:
        """The server side was a listener (not one end of a simultaneous open)."""
        return self.sides["server"].steps[0][0] == "LISTEN"

    def side(self, who: str) -> Side:
        return self.sides[who]

    def flag(self, name: str) -> Flag:
        """The flag's facts (count 0 when never raised)."""
        return self.flags.get(name) or Flag()


def _side_of(a: Annotation) -> tuple[str, str]:
    return ("client", "server") if a.from_client else ("server", "client")


class FactsCollector:
    """Collects every connection's facts, one annotation or call at a time."""

    def __init__(self) -> None:
        self.facts: dict[int, ConnFacts] = {}
        self.loose: list[Call] = []        # process-level calls: binds, signals, exits, waits
        self.bind_options: dict[int, set[str]] = {}   # id of a loose bind → its socket's options
        self._opts: dict[tuple[int, int], set[str]] = {}   # (tgid, fd) → options set
        self._early: dict[int, list[Call]] = {}   # calls of a connection not seen yet

    def feed(self, anns: list[Annotation]) -> None:
        """The next annotations of the run, in capture order."""
        for a in anns:
            f = self.facts.get(a.conn)
            if f is None:
                f = self._new(a)
            f.last_ts = a.seg.ts
            me, peer = _side_of(a)
            s, p = f.sides[me], f.sides[peer]
            for who, path in (("client", a.client_path), ("server", a.server_path)):
                if path:
                    steps = f.sides[who].steps
                    for state in path:
                        if state != steps[-1][0]:
                            steps.append((state, a.seg.ts, a.seg.frame))
            for name in a.analysis:
                flag = f.flags.get(name)
                if flag is None:
                    flag = f.flags[name] = Flag()
                flag.add(a.seg.frame, a.seg.ts)
            self._segment(f, a, s, p)

    def _new(self, a: Annotation) -> ConnFacts:
        f = self.facts[a.conn] = ConnFacts(a.conn, a.client, a.server, a.seg.ts)
        f.sides["client"] = Side([(a.client_before, a.seg.ts, a.seg.frame)])
        f.sides["server"] = Side([(a.server_before, a.seg.ts, a.seg.frame)])
        self.feed_calls(self._early.pop(a.conn, []))
        return f

    def _segment(self, f: ConnFacts, a: Annotation, s: Side, p: Side) -> None:
        seg = a.seg
        flags, frame, ts = seg.flags, seg.frame, seg.ts
        if flags & SYN:
            self._syn(f, a, s)
        if a.from_client and f.synack and flags & ACK and not flags & (SYN | RST):
            f.client_acked = True
        if flags & RST:
            if len(f.rsts) < FIRST:
                f.rsts.append((frame, ts, _side_of(a)[0], a.event))
            return
        if (f.listened and a.from_client and a.client_before == "ESTABLISHED"
                and a.server_before == "SYN_RCVD"
                and a.server_after == "SYN_RCVD" and len(f.acks_dropped) < FIRST):
            f.acks_dropped.append(frame)   # the listener's full accept queue did not take it
        if flags & FIN and s.fin is None:
            s.fin = (frame, ts)
        retrans = "retransmission" in a.analysis
        if seg.payload:
            s.last_data = ts
            if not retrans:
                s.data_frames += 1
                s.data_bytes += seg.payload
            if p.fin is not None and not s.data_after_peer_fin:
                s.data_after_peer_fin = frame
        if seg.payload or flags & FIN:
            self._cost(s, a, retrans)
        if flags & ACK:
            self._acked(s, p, a)
        if seg.payload and not retrans:
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
                f.synack_again.append(a.seg.frame)
        elif a.from_client:
            f.syns += 1
            if f.syns > 1 and len(f.syn_frames) < FIRST:
                f.syn_frames.append(a.seg.frame)

    def _cost(self, s: Side, a: Annotation, retrans: bool) -> None:
        """Remember when each send left; a retransmission costs the time since then."""
        key = a.rel_seq
        if not retrans:
            if len(s.unacked) < UNACKED:
                s.unacked.setdefault(key, a.seg.ts)
            return
        first = s.unacked.get(key)
        if first is not None and a.seg.ts - first >= 0.2:
            s.rto_cost += a.seg.ts - first
            s.unacked[key] = a.seg.ts
            if len(s.rto_frames) < FIRST:
                s.rto_frames.append(a.seg.frame)

    def _acked(self, s: Side, p: Side, a: Annotation) -> None:
        """An ACK from ``s`` acknowledges ``p``'s sends; a late, bare one of a small send
        is a delayed ACK that ``p``'s next data may have waited for (Nagle)."""
        ack = a.rel_ack
        unacked = p.unacked
        while unacked:
            k = next(iter(unacked))
            if k >= ack:
                break
            del unacked[k]
        small = p.last_small
        if small is not None and not a.seg.payload and not a.seg.flags & (SYN | FIN) \
                and ack >= small[2]:
            delay = a.seg.ts - small[1]
            p.delayed_ack = ((small[0], a.seg.frame, a.seg.ts, delay)
                             if DELAYED_ACK[0] <= delay <= DELAYED_ACK[1] else None)
            p.last_small = None

    def _nagle(self, s: Side, a: Annotation) -> None:
        """New data from ``s``: right after a delayed ACK of its small send, it waited."""
        seg = a.seg
        held = s.delayed_ack
        if held is not None and seg.ts - held[2] <= RIGHT_AFTER and len(s.stalls) < FIRST:
            s.stalls.append(Stall(held[0], held[1], seg.frame, held[3], seg.ts))
        s.delayed_ack = None
        s.last_small = ((seg.frame, seg.ts, a.rel_seq + seg.payload) if seg.payload < s.mss
                        else None)

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
            if f is None or c.side not in f.sides:
                if c.kind != CALL or c.name in ("bind", "wait4") or c.failed:
                    self.loose.append(c)
                    if c.name == "bind":
                        self.bind_options[id(c)] = set(self._opts.get(key, ()))
                continue
            side = f.sides[c.side]
            side.options |= self._opts.get(key, set())
            io = c.name in SENDS or c.name in RECVS
            if io and not c.failed and c.ret != 0:
                if side.io >= KEPT_IO:
                    continue
                side.io += 1
            side.calls.append(c)
