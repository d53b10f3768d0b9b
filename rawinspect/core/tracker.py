"""The sans-IO core: TCP segments in, annotations out.

``Tracker.feed(segment)`` returns the annotations that are final, in frame order. It
does no I/O and reads no clock: time comes only from the segments' timestamps (and from
``flush(now)`` for a live capture), so replay and live capture agree on the same packets.

Causality over capture order: a SYN or FIN is held until the peer's next segment says
how it was received. A peer whose own SYN or FIN does not acknowledge ours sent it before
ours arrived (the two crossed), so the peer's receipt is applied after its own send:
simultaneous open and simultaneous close. A SYN answered by RST met no listener; a SYN
retransmitted without answer was dropped. Held segments wait at most ``hold`` seconds.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Iterable

from . import transitions as T
from .annotation import Annotation
from ..views.wireshark import ConnAnalysis, SeqAnalyzer
from .segment import ACK, FIN, RST, SYN, Segment, endpoint, reverse_flow

MASK: Final = 0xFFFFFFFF

# How a held SYN or FIN was answered.
NORMAL: Final = "normal"
CROSSED: Final = "crossed"
REFUSED: Final = "refused"
UNANSWERED: Final = "unanswered"
RETRY: Final = "retry"
HOLD_SYN: Final = "SYN"
HOLD_FIN: Final = "FIN"

DEFAULT_MSL: Final = 30.0   # Linux: TIME_WAIT lasts 60 s = 2MSL
DEFAULT_HOLD: Final = 3.0   # seconds a SYN or FIN waits for the peer's answer
INF: Final = float("inf")


def seq_lt(a: int, b: int) -> bool:
    """a comes before b in 32-bit sequence space."""
    return ((a - b) & MASK) > 0x7FFFFFFF


class Endpoint:
    """One side of a connection: its state and the sequence bookkeeping we need."""

    __slots__ = ("addr", "port", "state", "inferred", "base", "nxt", "syn_seq", "fin_end",
                 "fin_acked", "last_ack", "win", "wscale", "spoke", "tw_until", "synack")

    def __init__(self, addr: str, port: int, state: str, inferred: bool) -> None:
        self.addr = addr
        self.port = port
        self.state = state
        self.inferred = inferred       # state assumed, not seen (capture began mid-way)
        self.base: int | None = None   # sequence number that relative numbers count from
        self.nxt = -1                  # highest sequence number sent + 1 (-1: nothing yet)
        self.syn_seq: int | None = None
        self.fin_end: int | None = None  # sequence number just after our FIN
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
        self.ann: Annotation | None = None


class Connection:
    """One TCP connection: both endpoints, and any segments held for causality."""

    __slots__ = ("id", "c", "s", "keys", "client", "server", "processed", "queue", "hold_kind",
                 "hold_from_client", "hold_end", "hold_token", "resolution", "deferred",
                 "wscale_ok", "plain_c", "plain_s", "last_ts", "retiring", "analysis")

    def __init__(self, cid: int, c: Endpoint, s: Endpoint, ckey: bytes, skey: bytes) -> None:
        self.id = cid
        self.c = c
        self.s = s
        self.keys = (ckey, skey)   # Segment.flow of the client's and the server's segments
        self.client = endpoint(c.addr, c.port)
        self.server = endpoint(s.addr, s.port)
        self.processed = False     # a segment went through the state inference
        self.queue: list[Slot] | None = None
        self.hold_kind = ""
        self.hold_from_client = True
        self.hold_end = 0          # FIN hold: sequence number the peer must acknowledge
        self.hold_token = 0
        self.resolution: str | None = None
        self.deferred: tuple[Endpoint, str] | None = None
        self.wscale_ok = False
        # No segment from the client (plain_c) or server (plain_s) can change a state
        # unless it carries SYN, FIN or RST: set after every segment the inference saw.
        self.plain_c = self.plain_s = False
        self.last_ts = 0.0         # last segment the inference saw
        self.retiring = False      # finished, waiting in the tracker's retire queue
        self.analysis: ConnAnalysis | None = None  # Wireshark's, from its first annotation

    def finished(self) -> bool:
        """Both endpoints are CLOSED or in TIME_WAIT (or the handshake never started)."""
        done = (T.CLOSED, T.TIME_WAIT, T.LISTEN)
        return self.c.state in done and self.s.state in done

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
    quiet = (T.TIME_WAIT, T.CLOSED, T.LISTEN)  # so finished connections keep last_ts (_evict)
    return not (sender.state in quiet or receiver.state in quiet
                or receiver.state == T.SYN_RCVD or sender.inferred or receiver.inferred
                or (receiver.fin_end is not None and not receiver.fin_acked)
                or sender.nxt < 0 or receiver.base is None or sender.base is None)


class Tracker:
    """Connection table and TCP state inference for both endpoints of every connection."""

    def __init__(self, msl: float = DEFAULT_MSL, hold: float = DEFAULT_HOLD) -> None:
        self.time_wait = 2 * msl
        self.hold = hold
        self.connections = 0
        # Segment.flow → (connection, sent by the client): both directions of every connection.
        self._by_key: dict[bytes, tuple[Connection, bool]] = {}
        # Output queue in frame order: Slots (held or resolved) and ready Annotations.
        self._pending: deque[Slot | Annotation] = deque()
        self._holds: deque[tuple[float, int, Connection]] = deque()
        self._hold_due = INF       # when the oldest hold ends (checked on every segment)
        self._token = 0
        self._seq = SeqAnalyzer()
        # Finished connections leave the table once idle this long, so memory follows the
        # open connections, not every connection ever seen. Longer than TIME_WAIT (a late
        # segment still meets it) and than a hold (no annotation of theirs is pending).
        self.retire_after = 2 * self.time_wait + hold
        self._retire: deque[tuple[float, Connection]] = deque()
        self._retire_due = INF

    # ---- public interface -------------------------------------------------------------
    def feed(self, seg: Segment) -> list[Annotation]:
        """Annotate one segment; returns the annotations now final, in frame order."""
        out = self._feed(seg)
        if self._retire_due < seg.ts:
            self._evict(seg.ts)
        return out

    def _feed(self, seg: Segment) -> list[Annotation]:
        if self._hold_due < seg.ts:
            self._expire(seg.ts)
        hit = self._by_key.get(seg.flow)
        if hit is not None and not seg.flags & (SYN | FIN | RST):
            ann = self._plain(hit[0], seg, hit[1])
            if ann is not None:
                pending = self._pending
                if not pending:
                    return [ann]
                pending.append(ann)  # ready, but behind a held segment
                return self._drain()
        conn, from_client = self._lookup(seg)
        if conn.queue is None and not self._pending and not self._starts_hold(conn, seg, from_client):
            return [self._process(conn, seg, from_client)]
        slot = Slot(seg, conn, from_client)
        self._pending.append(slot)
        self._dispatch(slot)
        return self._drain()

    def _analyze(self, ann: Annotation, conn: Connection) -> Annotation:
        """Wireshark's analysis flags, added as each segment is annotated.

        A connection's segments are annotated in frame order (its held segment first,
        then those queued behind it), and the analysis is per connection.
        """
        state = conn.analysis
        if state is None:
            state = conn.analysis = self._seq.start(ann)
        self._seq.analyze(ann, state)
        return ann

    def _plain(self, conn: Connection, seg: Segment, from_client: bool) -> Annotation | None:
        """Fast path for data and pure ACKs that cannot change a state; None otherwise.

        It applies no rule of the table: anything that might (an ACK of a SYN or FIN, an
        endpoint in TIME_WAIT or with an assumed state, a held segment) goes to _process.
        """
        if conn.queue is not None:
            return None
        if from_client:
            if not conn.plain_c:
                return None
            s, r = conn.c, conn.s
        else:
            if not conn.plain_s:
                return None
            s, r = conn.s, conn.c
        sst, rst = s.state, r.state
        seq, plen, flags = seg.seq, seg.payload, seg.flags
        # The plain flags guarantee these are set.
        nxt = s.nxt
        sbase: int = s.base  # type: ignore[assignment]
        rbase: int = r.base  # type: ignore[assignment]
        note = ""
        if plen and not (plen == 1 and ((seq + 1) & MASK) == nxt):  # not a keep-alive
            end = (seq + plen) & MASK
            if ((seq - nxt) & MASK) > 0x7FFFFFFF:
                note = "data retransmitted"
            if ((nxt - end) & MASK) > 0x7FFFFFFF:
                s.nxt = end
        analysis = [*seg.issues] if seg.issues else []
        if flags & ACK:
            ack = seg.ack
            s.last_ack = ack
            s.win = seg.window << s.wscale if conn.wscale_ok else seg.window
            rel_ack = (ack - rbase) & MASK
            event = "data" if plen else "ACK"
        else:
            rel_ack = 0
            event = "data" if plen else "none"
        rel_seq = (seq - sbase) & MASK
        if from_client:
            return self._analyze(Annotation(seg, conn.id, conn.client, conn.server, True, sst, sst,
                                            rst, rst, None, None, event, analysis, note, rel_seq,
                                            rel_ack), conn)
        return self._analyze(Annotation(seg, conn.id, conn.client, conn.server, False, rst, rst,
                                        sst, sst, None, None, event, analysis, note, rel_seq,
                                        rel_ack), conn)

    @property
    def tracked(self) -> int:
        """Connections in the table: open ones, and finished ones not yet retired."""
        return len({id(hit[0]) for hit in self._by_key.values()})

    def flush(self, now: float) -> list[Annotation]:
        """Release segments held longer than ``hold`` seconds before ``now`` (live capture)."""
        self._expire(now)
        out = self._drain()
        if self._retire_due < now:
            self._evict(now)
        return out

    def finish(self) -> list[Annotation]:
        """End of input: resolve everything still held and return the rest."""
        while self._holds:
            _, token, conn = self._holds.popleft()
            if conn.queue is not None and conn.hold_token == token:
                self._resolve(conn, UNANSWERED if conn.hold_kind == HOLD_SYN else NORMAL)
        self._hold_due = INF
        return self._drain()

    def feed_all(self, segments: Iterable[Segment]) -> list[Annotation]:
        """Annotate a whole sequence of segments (convenience for tests and small files)."""
        out: list[Annotation] = []
        for seg in segments:
            out.extend(self.feed(seg))
        out.extend(self.finish())
        return out

    # ---- connection table -------------------------------------------------------------
    def _lookup(self, seg: Segment) -> tuple[Connection, bool]:
        hit = self._by_key.get(seg.flow)
        flags = seg.flags
        if hit is not None:
            conn, from_client = hit
            if not (flags & SYN and not flags & ACK) or conn.queue is not None:
                return hit
            if from_client and not self._port_reused(conn, seg):
                return hit
            if not from_client and not conn.s.spoke:
                return hit  # the server's own SYN: simultaneous open
            if not from_client and not conn.finished():
                return hit
        return self._new_connection(seg)

    def _port_reused(self, conn: Connection, seg: Segment) -> bool:
        """A client SYN with a new initial sequence number starts a new connection."""
        if conn.c.syn_seq is None:
            return conn.finished() and conn.processed
        return seg.seq != conn.c.syn_seq

    def _new_connection(self, seg: Segment) -> tuple[Connection, bool]:
        flags = seg.flags
        if flags & SYN:
            sender_is_client = not flags & ACK
        else:  # mid-stream: the well-known (lower) port is the server's
            sender_is_client = seg.sport > seg.dport or (seg.sport == seg.dport)
        if sender_is_client:
            ca, cp, sa, sp = seg.src, seg.sport, seg.dst, seg.dport
            ckey, skey = seg.flow, reverse_flow(seg.flow)
        else:
            ca, cp, sa, sp = seg.dst, seg.dport, seg.src, seg.sport
            ckey, skey = reverse_flow(seg.flow), seg.flow
        if flags & SYN and not flags & ACK:
            c, s = Endpoint(ca, cp, T.CLOSED, False), Endpoint(sa, sp, T.LISTEN, False)
        elif flags & SYN:  # SYN+ACK first: the client's SYN was not captured
            c, s = Endpoint(ca, cp, T.SYN_SENT, True), Endpoint(sa, sp, T.LISTEN, True)
        else:
            c, s = Endpoint(ca, cp, T.ESTABLISHED, True), Endpoint(sa, sp, T.ESTABLISHED, True)
        self.connections += 1
        conn = Connection(self.connections, c, s, ckey, skey)
        self._by_key[ckey] = (conn, True)
        self._by_key[skey] = (conn, False)  # a connection to itself: both keys are one
        return conn, seg.flow == ckey

    # ---- holding segments for causality -----------------------------------------------
    def _starts_hold(self, conn: Connection, seg: Segment, from_client: bool) -> bool:
        flags = seg.flags
        if flags & RST:
            return False
        peer = conn.s if from_client else conn.c
        if flags & SYN:
            return not flags & ACK and not peer.spoke
        if flags & FIN:
            me = conn.c if from_client else conn.s
            return me.fin_end is None and peer.fin_end is None and peer.state not in (
                T.CLOSED, T.LISTEN, T.SYN_SENT)
        return False

    def _dispatch(self, slot: Slot) -> None:
        conn = slot.conn
        if conn.queue is not None:
            how = self._answer(conn, slot)
            if how is None:
                conn.queue.append(slot)
            elif how == RETRY:
                self._resolve(conn, UNANSWERED)
                self._dispatch(slot)
            else:
                conn.queue.append(slot)
                self._resolve(conn, how)
            return
        if self._starts_hold(conn, slot.seg, slot.from_client):
            seg = slot.seg
            self._token += 1
            conn.queue = [slot]
            conn.hold_kind = HOLD_SYN if seg.flags & SYN else HOLD_FIN
            conn.hold_from_client = slot.from_client
            conn.hold_end = (seg.seq + seg.payload + 1) & MASK
            conn.hold_token = self._token
            self._holds.append((seg.ts + self.hold, self._token, conn))
            self._hold_due = self._holds[0][0]
            return
        slot.ann = self._process(conn, slot.seg, slot.from_client)

    def _answer(self, conn: Connection, slot: Slot) -> str | None:
        """How ``slot`` answers the connection's held SYN or FIN, or None if it does not."""
        flags = slot.seg.flags
        if slot.from_client == conn.hold_from_client:
            if conn.hold_kind == HOLD_SYN and flags & SYN and not flags & ACK:
                return RETRY
            return None if len(conn.queue or ()) < 10000 else NORMAL
        if conn.hold_kind == HOLD_SYN:
            if flags & RST:  # only an RST acknowledging the SYN refuses it
                return REFUSED if flags & ACK and slot.seg.ack == conn.hold_end else None
            return CROSSED if flags & SYN and not flags & ACK else NORMAL
        if flags & RST or (flags & ACK and not seq_lt(slot.seg.ack, conn.hold_end)):
            return NORMAL
        return CROSSED if flags & FIN else None

    def _resolve(self, conn: Connection, how: str) -> None:
        queue = conn.queue or []
        conn.queue = None
        first, rest = queue[0], queue[1:]
        conn.resolution = how
        first.ann = self._process(conn, first.seg, first.from_client)
        conn.resolution = None
        for slot in rest:
            self._dispatch(slot)

    def _expire(self, now: float) -> None:
        holds = self._holds
        while holds and holds[0][0] < now:
            _, token, conn = holds.popleft()
            if conn.queue is not None and conn.hold_token == token:
                self._resolve(conn, UNANSWERED if conn.hold_kind == HOLD_SYN else NORMAL)
        self._hold_due = holds[0][0] if holds else INF

    def _evict(self, now: float) -> None:
        """Forget finished connections idle for ``retire_after`` seconds.

        Every segment they had was annotated and analysed: anything still pending is
        younger than a hold. A later segment on the same 4-tuple starts a new connection.
        """
        retire = self._retire
        while retire and retire[0][0] < now:
            _, conn = retire.popleft()
            if not conn.finished():
                conn.retiring = False
                continue
            if conn.last_ts + self.retire_after >= now:
                retire.append((conn.last_ts + self.retire_after, conn))
                continue
            for key in conn.keys:
                hit = self._by_key.get(key)
                if hit is not None and hit[0] is conn:
                    del self._by_key[key]
            if conn.analysis is not None:
                self._seq.forget(conn.analysis)
        self._retire_due = retire[0][0] if retire else INF

    def _drain(self) -> list[Annotation]:
        """The annotations at the head of the output queue that are final."""
        out: list[Annotation] = []
        pending = self._pending
        while pending:
            head = pending[0]
            if isinstance(head, Slot):
                if head.ann is None:
                    break
                out.append(head.ann)
            else:
                out.append(head)
            pending.popleft()
        return out

    # ---- the state inference ----------------------------------------------------------
    def _process(self, conn: Connection, seg: Segment, from_client: bool) -> Annotation:
        if from_client:
            s, r = conn.c, conn.s
        else:
            s, r = conn.s, conn.c
        ts = seg.ts
        who_s, who_r = ("client", "server") if from_client else ("server", "client")
        conn.processed = True
        conn.last_ts = ts
        analysis: list[str] = []
        notes: list[str] = []
        for ep in (s, r):
            if ep.state == T.TIME_WAIT and ts >= ep.tw_until:
                ep.state = T.CLOSED
                analysis.append("time_wait_expired")
        if s.inferred or r.inferred:
            analysis.append("state_inferred")
        sb, rb = s.state, r.state
        s_path: list[str] | None = None
        r_path: list[str] | None = None
        flags = seg.flags
        seq = seg.seq
        plen = seg.payload
        how = conn.resolution
        conn.resolution = None

        if flags & SYN and s.syn_seq is None:
            s.base = seq
        elif s.base is None:
            s.base = (seq - 1) & MASK
        if flags & ACK and r.base is None:
            r.base = (seg.ack - 1) & MASK
        end = (seq + plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & MASK

        # Sequence space this sender already used: a repeat changes no state. (The
        # analysis flags themselves, Wireshark's, come from seqanalysis.)
        retrans = False
        if s.nxt >= 0 and not flags & (RST | SYN):
            keep_alive = plen <= 1 and not flags & FIN and ((seq + 1) & MASK) == s.nxt
            retrans = not keep_alive and end != seq and seq_lt(seq, s.nxt)
        if not flags & RST and (s.nxt < 0 or seq_lt(s.nxt, end)):
            s.nxt = end

        if flags & RST:
            event = "RST"
            if self._rst_acceptable(seg, s, r):
                s_path = self._step(s, T.SEND_RST, s_path, notes, who_s)
                r_path = self._step(r, T.RECV_RST, r_path, notes, who_r)
            else:
                analysis.append("rst_out_of_window")
                notes.append("RST outside the receiver's window: ignored (RFC 5961)")
        elif flags & SYN:
            if flags & ACK:
                event = "SYN+ACK"
                if s.synack:
                    notes.append("SYN+ACK seen again")
                else:
                    s.synack = True
                    s.syn_seq = seq
                    self._note_wscale(conn, seg, s)
                    s_path = self._step(s, T.SEND_SYNACK, s_path, notes, who_s)
                if r.syn_seq is None and r.state == T.SYN_SENT:
                    r.syn_seq = (seg.ack - 1) & MASK  # the SYN we did not capture
                if r.syn_seq is not None and seg.ack == (r.syn_seq + 1) & MASK:
                    r_path = self._step(r, T.RECV_SYNACK, r_path, notes, who_r)
                else:
                    analysis.append("synack_bad_ack")
            else:
                event = "SYN"
                if s.syn_seq == seq or s.state not in (T.CLOSED, T.LISTEN):
                    notes.append("SYN retransmitted" if s.syn_seq == seq else
                                 "SYN after the handshake (capture reordering?)")
                else:
                    s.syn_seq = seq
                    s_path = self._step(s, T.SEND_SYN, s_path, notes, who_s)
                    self._note_wscale(conn, seg, s)
                if how in (REFUSED, CROSSED):  # nobody listened / the peer opened actively
                    r.state = rb = T.CLOSED
                    r.inferred = False
                if how == CROSSED:
                    conn.deferred = (r, T.RECV_SYN)
                    notes.append("crossed the peer's SYN on the wire")
                elif how == UNANSWERED:
                    notes.append("no answer: SYN dropped or lost")
                elif r.state in (T.LISTEN, T.CLOSED, T.SYN_SENT):
                    r_path = self._step(r, T.RECV_SYN, r_path, notes, who_r)
            s_path = self._apply_deferred(conn, s, s_path, notes, who_s)
        else:
            event = "FIN" if flags & FIN else "data" if plen else "ACK" if flags & ACK else "none"
            new_fin = False
            if flags & FIN:
                if s.fin_end is not None:
                    notes.append("FIN retransmitted")
                else:
                    s.fin_end = end
                    new_fin = True
                    s_path = self._step(s, T.SEND_FIN, s_path, notes, who_s)
                    s_path = self._apply_deferred(conn, s, s_path, notes, who_s)
            elif retrans:
                notes.append("data retransmitted")
            # The receiver processes the acknowledgement first, then the FIN.
            acks_fin = False
            if flags & ACK:
                ack = seg.ack
                if r.state == T.SYN_RCVD and r.syn_seq is not None and not seq_lt(ack, (r.syn_seq + 1) & MASK):
                    r_path = self._step(r, T.RECV_ACK_OF_SYN, r_path, notes, who_r)
                if r.fin_end is not None and not r.fin_acked and not seq_lt(ack, r.fin_end):
                    r.fin_acked = acks_fin = True
            if new_fin:
                if how == CROSSED:
                    conn.deferred = (r, T.RECV_FIN)
                    notes.append("crossed the peer's FIN on the wire")
                elif acks_fin and r.state == T.FIN_WAIT_1:
                    r_path = self._step(r, T.RECV_FIN_ACK_OF_FIN, r_path, notes, who_r)
                else:
                    if acks_fin:
                        r_path = self._step(r, T.RECV_ACK_OF_FIN, r_path, notes, who_r)
                    r_path = self._step(r, T.RECV_FIN, r_path, notes, who_r)
            elif acks_fin:
                r_path = self._step(r, T.RECV_ACK_OF_FIN, r_path, notes, who_r)

        if flags & ACK:
            s.last_ack = seg.ack
            s.win = seg.window << s.wscale if conn.wscale_ok and not flags & SYN else seg.window
        s.spoke = True
        for ep in (s, r):
            if ep.state == T.TIME_WAIT and ep.tw_until <= ts:
                ep.tw_until = ts + self.time_wait
        for issue in seg.issues:
            analysis.append(issue)

        if from_client:
            cb, ca, sbf, saf, cp, sp = sb, s.state, rb, r.state, s_path, r_path
        else:
            cb, ca, sbf, saf, cp, sp = rb, r.state, sb, s.state, r_path, s_path
        conn.refresh_plain()
        if not conn.retiring and conn.finished():
            conn.retiring = True
            self._retire.append((ts + self.retire_after, conn))
            self._retire_due = self._retire[0][0]
        note = "; ".join(notes)
        rel_seq = (seq - s.base) & MASK
        rel_ack = (seg.ack - r.base) & MASK if flags & ACK and r.base is not None else 0
        return self._analyze(Annotation(seg, conn.id, conn.client, conn.server, from_client, cb,
                                        ca, sbf, saf, cp, sp, event, analysis, note, rel_seq,
                                        rel_ack), conn)

    def _step(self, ep: Endpoint, event: str, path: list[str] | None, notes: list[str],
              role: str) -> list[str] | None:
        """Apply one table rule to ``ep``; extends its path of states and the notes."""
        rule = T.step(ep.state, event)
        if rule is None:
            notes.append(f"{role}: unexpected {event} in {ep.state}")
            return path
        if path is None:
            path = [ep.state]
        ep.state = rule.new
        ep.inferred = False
        path.append(rule.new)
        why = rule.why
        if rule.new == T.TIME_WAIT:
            why += f" for 2MSL = {self.time_wait:g} s"
        notes.append(f"{role}: {why}")
        return path

    def _apply_deferred(self, conn: Connection, ep: Endpoint, path: list[str] | None,
                        notes: list[str], role: str) -> list[str] | None:
        """After ``ep`` sent its own crossing SYN or FIN, it receives the peer's."""
        if conn.deferred is None or conn.deferred[0] is not ep:
            return path
        event = conn.deferred[1]
        conn.deferred = None
        return self._step(ep, event, path, notes, role)

    @staticmethod
    def _note_wscale(conn: Connection, seg: Segment, s: Endpoint) -> None:
        """Window scaling is in force only when both SYNs offered it (RFC 7323)."""
        opts = seg.opts
        s.wscale = opts["wscale"] if opts and "wscale" in opts else -1
        peer = conn.s if s is conn.c else conn.c
        conn.wscale_ok = s.wscale >= 0 and peer.wscale >= 0

    @staticmethod
    def _rst_acceptable(seg: Segment, s: Endpoint, r: Endpoint) -> bool:
        """RFC 793/5961: an RST counts only inside the receiver's window."""
        if r.state == T.SYN_SENT:
            return bool(seg.flags & ACK) and r.syn_seq is not None and seg.ack == (r.syn_seq + 1) & MASK
        if r.win < 0:
            return True
        offset = (seg.seq - r.last_ack) & MASK
        return offset < max(r.win, 1) or seg.seq == s.nxt
