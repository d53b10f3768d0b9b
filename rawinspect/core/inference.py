"""The state inference: one segment's effect on both endpoints, by the rules of the table.

Each segment goes through the same steps: sequence bookkeeping, then its events for the
sender and the receiver (looked up in ``transitions``, the only place that says what a
state becomes), then the window. Data and pure ACKs that cannot change a state take a
shorter path (``plain``) through the same bookkeeping and the same annotation builder.
"""

from __future__ import annotations

from typing import Final

from . import transitions as T
from .annotation import NO_FLAGS, Annotation
from .connection import Connection, Endpoint
from .segment import ACK, FIN, RST, SYN, Segment
from .seqspace import MASK, seq_lt
from .table import ConnectionTable

# How a held SYN or FIN was answered (see holds.py).
NORMAL: Final = "normal"
CROSSED: Final = "crossed"
REFUSED: Final = "refused"
UNANSWERED: Final = "unanswered"
DROPPED: Final = "dropped"      # an ACK or data the peer's full accept queue did not take

SELF_CONNECT: Final = ("connect() to a port of this host in the ephemeral range "
                       "(ip_local_port_range) where nothing listens can be given that very "
                       "port; to avoid it, bind the client to a port outside that range, or "
                       "check getsockname() != getpeername() after connect()")


class _Work:
    """What one segment does to its sender (s) and receiver (r), as it is worked out."""

    __slots__ = ("s", "r", "who_s", "who_r", "s_path", "r_path", "notes", "analysis",
                 "timer_ts")

    def __init__(self, s: Endpoint, r: Endpoint, from_client: bool) -> None:
        self.s = s
        self.r = r
        if s is r:          # a socket connected to itself: one endpoint
            self.who_s = self.who_r = "self"
        else:
            self.who_s, self.who_r = (("client", "server") if from_client
                                      else ("server", "client"))
        self.s_path: list[str] | None = None
        self.r_path: list[str] | None = None
        self.notes: list[str] = []
        self.analysis: list[str] = []
        self.timer_ts = 0.0


def _advance(s: Endpoint, seg: Segment) -> bool:
    """The sender's next sequence number; True when the segment repeats sent data.

    A keep-alive (one byte or none, one below what was sent) is not a repeat, and an RST
    occupies no sequence space.
    """
    seq, plen, flags = seg.seq, seg.payload, seg.flags
    end = (seq + seg.seg_len) & MASK
    retrans = False
    nxt = s.nxt
    if nxt >= 0 and not flags & (RST | SYN):
        keep_alive = plen <= 1 and not flags & FIN and ((seq + 1) & MASK) == nxt
        retrans = not keep_alive and end != seq and seq_lt(seq, nxt)
    if not flags & RST and (nxt < 0 or seq_lt(nxt, end)):
        s.nxt = end
    return retrans


def _note_ack(conn: Connection, s: Endpoint, seg: Segment) -> None:
    """The acknowledgement and window the sender advertises (scaled after the handshake)."""
    s.last_ack = seg.ack
    s.win = _scaled(conn, s, seg)


def _scaled(conn: Connection, s: Endpoint, seg: Segment) -> int:
    """The window field as the receiver reads it: scaled once both SYNs offered scaling."""
    return seg.window << s.wscale if conn.wscale_ok and not seg.flags & SYN else seg.window


def annotation(conn: Connection, seg: Segment, from_client: bool, *, s_before: str,
               r_before: str, s_path: list[str] | None, r_path: list[str] | None,
               event: str, analysis: list[str], note: str, timer_ts: float = 0.0
               ) -> Annotation:
    """The Annotation of ``seg``, given sender and receiver, in client/server terms."""
    s, r = (conn.c, conn.s) if from_client else (conn.s, conn.c)
    sbase: int = s.base if s.base >= 0 else seg.seq
    if seg.flags & ACK:  # _note_ack has scaled it
        rel_ack = (seg.ack - r.base) & MASK if r.base >= 0 else 0
        win = s.win
    else:
        rel_ack = 0
        win = _scaled(conn, s, seg)
    if from_client:
        cb, ca, sb, sa, cp, sp = s_before, s.state, r_before, r.state, s_path, r_path
    else:
        cb, ca, sb, sa, cp, sp = r_before, r.state, s_before, s.state, r_path, s_path
    return Annotation(seg=seg, conn=conn.id, client=conn.client, server=conn.server,
                      from_client=from_client, client_before=cb, client_after=ca,
                      server_before=sb, server_after=sa, client_path=cp, server_path=sp,
                      event=event, analysis=analysis, note=note,
                      rel_seq=(seg.seq - sbase) & MASK, rel_ack=rel_ack, timer_ts=timer_ts,
                      win_scaled=win)


class Inference:
    """Applies segments to connections; every state change is a rule of the table."""

    def __init__(self, table: ConnectionTable, time_wait: float) -> None:
        self.table = table
        self.time_wait = time_wait

    def plain(self, conn: Connection, seg: Segment, from_client: bool) -> Annotation | None:
        """Data or a pure ACK that cannot change a state; None when it might.

        It applies no rule of the table: anything that might (an ACK of a SYN or FIN, an
        endpoint in TIME_WAIT or with an assumed state, a held segment) goes to process.
        """
        if conn.hold is not None:
            return None
        if from_client:
            if not conn.plain_c:
                return None
            s = conn.c
        else:
            if not conn.plain_s:
                return None
            s = conn.s
        note = "data retransmitted" if _advance(s, seg) else ""
        if seg.flags & ACK:
            _note_ack(conn, s, seg)
            event = "data" if seg.payload else "ACK"
        else:
            event = "data" if seg.payload else "none"
        sst, rst = s.state, (conn.s if from_client else conn.c).state
        return annotation(conn, seg, from_client, s_before=sst, r_before=rst, s_path=None,
                          r_path=None, event=event,
                          analysis=[*seg.issues] if seg.issues else NO_FLAGS, note=note)

    def process(self, conn: Connection, seg: Segment, from_client: bool, how: str
                ) -> Annotation:
        """Any segment: bookkeeping, the sender's and receiver's events, the window."""
        s, r = (conn.c, conn.s) if from_client else (conn.s, conn.c)
        w = _Work(s, r, from_client)
        ts = seg.ts
        conn.processed = True
        conn.last_ts = ts
        sb, rb = s.state, r.state
        self._expire_time_wait(w, ts)
        if s.inferred or r.inferred:
            w.analysis.append("state_inferred")
        flags = seg.flags
        self._bases(s, r, seg)
        retrans = _advance(s, seg)
        if flags & RST:
            event = self._rst(w, seg)
        elif flags & SYN:
            if flags & ACK:
                event = self._synack(conn, w, seg)
            else:
                event = "SYN"
                rb = self._syn(conn, w, seg, how, rb)
            self._apply_deferred(conn, w, True)
        else:
            event = self._fin_or_ack(conn, w, seg, how, retrans)
        if flags & ACK:
            _note_ack(conn, s, seg)
        s.spoke = True
        self._finish(conn, w, seg)
        return annotation(conn, seg, from_client, s_before=sb, r_before=rb, s_path=w.s_path,
                          r_path=w.r_path, event=event, analysis=w.analysis or NO_FLAGS,
                          note="; ".join(w.notes), timer_ts=w.timer_ts)

    def _finish(self, conn: Connection, w: _Work, seg: Segment) -> None:
        """Start TIME_WAIT's timer, keep decoding issues, queue a finished connection."""
        ts = seg.ts
        for ep in (w.s, w.r):
            if ep.state == T.TIME_WAIT and ep.tw_until <= ts:
                ep.tw_until = ts + self.time_wait
        w.analysis.extend(seg.issues)
        conn.refresh_plain()
        if not conn.retiring and conn.finished():
            self.table.finished(conn, ts)

    def _expire_time_wait(self, w: _Work, ts: float) -> None:
        """An endpoint whose TIME_WAIT ran out before this segment is CLOSED (2MSL rule)."""
        for sender, ep in ((True, w.s), (False, w.r)):
            if ep.state == T.TIME_WAIT and ts >= ep.tw_until:
                w.timer_ts = ep.tw_until
                self._step(w, sender, T.TIMEOUT_2MSL)
                w.analysis.append("time_wait_expired")

    @staticmethod
    def _bases(s: Endpoint, r: Endpoint, seg: Segment) -> None:
        """The sequence numbers that relative numbers count from, once known."""
        if seg.flags & SYN and s.syn_seq < 0:
            s.base = seg.seq
        elif s.base < 0:
            s.base = (seg.seq - 1) & MASK
        if seg.flags & ACK and r.base < 0:
            r.base = (seg.ack - 1) & MASK

    def _rst(self, w: _Work, seg: Segment) -> str:
        """An RST: its kind (whose, and why) names the sender's rule and the event."""
        if not _rst_acceptable(seg, w.s, w.r):
            w.analysis.append("rst_out_of_window")
            w.notes.append("RST outside the receiver's window: ignored (RFC 5961)")
            return T.RST_IGNORED
        kind = _rst_kind(seg, w.s, w.r)
        self._step(w, True, kind)
        self._step(w, False, T.RECV_RST)
        return T.RST_EVENTS[kind]

    def _synack(self, conn: Connection, w: _Work, seg: Segment) -> str:
        s, r = w.s, w.r
        if s.synack:
            if s.state == T.SYN_RCVD:
                self._step(w, True, T.RESEND_SYNACK)
                if r.state == T.ESTABLISHED:
                    w.notes.append(f"{w.who_r} is ESTABLISHED already: its ACK did not "
                                   f"complete the {w.who_s}'s handshake (lost, or dropped "
                                   "by a full accept queue); it answers with an ACK again")
            else:
                w.notes.append("SYN+ACK seen again")
        else:
            s.synack = True
            s.syn_seq = seg.seq
            _note_wscale(conn, seg, s)
            self._step(w, True, T.SEND_SYNACK)
        if r.syn_seq < 0 and r.state == T.SYN_SENT:
            r.syn_seq = (seg.ack - 1) & MASK  # the SYN we did not capture
        if r.syn_seq >= 0 and seg.ack == (r.syn_seq + 1) & MASK:
            if r.state == T.SYN_SENT or r.state == T.SYN_RCVD:
                self._step(w, False, T.RECV_SYNACK)
        else:
            w.analysis.append("synack_bad_ack")
        return "SYN+ACK"

    def _syn(self, conn: Connection, w: _Work, seg: Segment, how: str, rb: str) -> str:
        """A SYN; returns the receiver's state before it (corrected when it was assumed)."""
        s, r = w.s, w.r
        if s.syn_seq == seg.seq or s.state not in (T.CLOSED, T.LISTEN):
            w.notes.append("SYN retransmitted" if s.syn_seq == seg.seq else
                           "SYN after the handshake (capture reordering?)")
        else:
            s.syn_seq = seg.seq
            self._step(w, True, T.SEND_SYN)
            _note_wscale(conn, seg, s)
        if how == REFUSED or how == CROSSED:
            rb = _correct(r, T.ANSWERED_SYN_WITH_RST if how == REFUSED else T.SENT_OWN_SYN)
        if how == CROSSED:
            conn.deferred = (r, T.RECV_SYN)
            w.notes.append("crossed the peer's SYN on the wire")
        elif how == UNANSWERED:
            w.notes.append("no answer: SYN dropped or lost")
        elif s is r:
            self._step(w, False, T.RECV_OWN_SYN)
            w.notes.append(SELF_CONNECT)
        elif r.state in (T.LISTEN, T.CLOSED, T.SYN_SENT):
            self._step(w, False, T.RECV_SYN)
        return rb

    def _fin_or_ack(self, conn: Connection, w: _Work, seg: Segment, how: str,
                    retrans: bool) -> str:
        """A FIN, data or an ACK: the sender's FIN first, then the receiver's ACK and FIN."""
        s, r, flags = w.s, w.r, seg.flags
        new_fin = False
        if flags & FIN:
            if s.fin_end >= 0:
                w.notes.append("FIN retransmitted")
            else:
                s.fin_end = (seg.seq + seg.seg_len) & MASK
                new_fin = True
                self._step(w, True, T.SEND_FIN)
                self._apply_deferred(conn, w, True)
        elif retrans:
            w.notes.append("data retransmitted")
        if how == DROPPED:
            self._step(w, False, T.RECV_ACK_QUEUE_FULL)
            return _event(seg)
        acks_fin = bool(flags & ACK) and self._recv_ack(w, seg.ack)
        if new_fin:
            if how == CROSSED:
                conn.deferred = (r, T.RECV_FIN)
                w.notes.append("crossed the peer's FIN on the wire")
            elif acks_fin and r.state == T.FIN_WAIT_1:
                self._step(w, False, T.RECV_FIN_ACK_OF_FIN)
            else:
                if acks_fin:
                    self._step(w, False, T.RECV_ACK_OF_FIN)
                self._step(w, False, T.RECV_OWN_FIN if s is r else T.RECV_FIN)
        elif acks_fin:
            self._step(w, False, T.RECV_ACK_OF_FIN)
        return _event(seg)

    def _recv_ack(self, w: _Work, ack: int) -> bool:
        """The receiver processes the acknowledgement; True when it newly covers its FIN."""
        r = w.r
        if r.state == T.SYN_RCVD and r.syn_seq >= 0 and not seq_lt(ack, (r.syn_seq + 1) & MASK):
            self._step(w, False, T.RECV_ACK_OF_SYN)
        if r.fin_end >= 0 and not r.fin_acked and not seq_lt(ack, r.fin_end):
            r.fin_acked = True
            return True
        return False

    def _step(self, w: _Work, sender: bool, event: str) -> None:
        """Apply one table rule to the sender or receiver; extend its path and the notes.

        A rule that keeps the state (SYN_RCVD sends its SYN+ACK) adds its explanation but
        no path: ``client_path``/``server_path`` stay None when nothing changed.
        """
        ep, role = (w.s, w.who_s) if sender else (w.r, w.who_r)
        rule = T.step(ep.state, event)
        if rule is None:
            w.notes.append(f"{role}: unexpected {event} in {ep.state}")
            return
        ep.inferred = False
        if rule.new != ep.state:   # a path records real changes only
            path = w.s_path if sender else w.r_path
            if path is None:
                path = [ep.state]
                if w.s is w.r:     # connected to itself: one endpoint, one path
                    w.s_path = w.r_path = path
                elif sender:
                    w.s_path = path
                else:
                    w.r_path = path
            ep.state = rule.new
            path.append(rule.new)
        why = rule.why
        if rule.new == T.TIME_WAIT:
            why += f" for 2MSL = {self.time_wait:g} s"
        w.notes.append(f"{role}: {why}")

    def _apply_deferred(self, conn: Connection, w: _Work, sender: bool) -> None:
        """After the sender sent its own crossing SYN or FIN, it receives the peer's."""
        deferred = conn.deferred
        if deferred is None or deferred[0] is not (w.s if sender else w.r):
            return
        conn.deferred = None
        self._step(w, sender, deferred[1])


def _correct(ep: Endpoint, event: str) -> str:
    """A correction rule: the endpoint's assumed state was wrong; returns the right one."""
    rule = T.step(ep.state, event)
    if rule is not None:
        ep.state = rule.new
    ep.inferred = False
    return ep.state


def _note_wscale(conn: Connection, seg: Segment, s: Endpoint) -> None:
    """Window scaling is in force only when both SYNs offered it (RFC 7323)."""
    opts = seg.opts
    s.wscale = opts["wscale"] if opts and "wscale" in opts else -1
    peer = conn.s if s is conn.c else conn.c
    conn.wscale_ok = s.wscale >= 0 and peer.wscale >= 0


def _event(seg: Segment) -> str:
    """The event of a segment without SYN or RST."""
    flags = seg.flags
    return "FIN" if flags & FIN else "data" if seg.payload else "ACK" if flags & ACK else "none"


def _rst_kind(seg: Segment, s: Endpoint, r: Endpoint) -> str:
    """Whose RST, and why, from what the wire shows (a rule of the table each).

    An endpoint with no socket (CLOSED) answers a SYN by refusing it, anything else as
    a segment nobody owns. A socket whose program called close() (it sent its FIN, or
    waits in TIME_WAIT) answers arriving data with an RST that acknowledges nothing (its
    sequence number is the segment's ACK): the kernel's answer, not an abort. Any other
    RST (with ACK: tcp_send_active_reset) is an abortive close by the program.
    """
    st = s.state
    if st == T.CLOSED or st == T.LISTEN:
        return T.SEND_RST_REFUSED if st == T.CLOSED and r.state == T.SYN_SENT \
            else T.SEND_RST_NO_SOCKET
    if st == T.TIME_WAIT or (s.fin_end >= 0 and not seg.flags & ACK):
        return T.SEND_RST_AFTER_CLOSE
    return T.SEND_RST_ABORT


def _rst_acceptable(seg: Segment, s: Endpoint, r: Endpoint) -> bool:
    """RFC 793/5961: an RST counts only inside the receiver's window."""
    if r.state == T.SYN_SENT:
        return bool(seg.flags & ACK) and r.syn_seq >= 0 and seg.ack == (r.syn_seq + 1) & MASK
    if r.win < 0:
        return True
    offset = (seg.seq - r.last_ack) & MASK
    return offset < max(r.win, 1) or seg.seq == s.nxt
