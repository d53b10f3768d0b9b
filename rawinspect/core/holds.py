"""Causality over capture order: SYNs and FINs held until the peer's answer, and the
output queue that releases annotations in frame order.

A SYN or FIN is held until the peer's next segment says how it was received. A peer
whose own SYN or FIN does not acknowledge ours sent it before ours arrived (the two
crossed), so the peer's receipt is applied after its own send: simultaneous open and
simultaneous close. A SYN answered by RST met no listener; a SYN retransmitted without
answer was dropped. Held segments wait at most ``hold`` seconds, and at most
``MAX_HELD`` segments of one connection queue behind a hold.

The output queue keeps frame order across connections: a segment waits while an earlier
one of any connection is held. Unordered (``ordered`` False), only each connection's own
order is kept, and an annotation is out as soon as it is final: for the outputs that
read connections one by one (summaries, findings), whose memory would otherwise hold every
segment captured during the longest hold.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from . import transitions as T
from .annotation import Annotation
from .connection import Connection, Endpoint, Hold, Slot
from .inference import CROSSED, DROPPED, NORMAL, REFUSED, UNANSWERED, Inference
from .segment import ACK, FIN, RST, SYN, Segment
from .seqspace import MASK, seq_lt

RETRY: Final = "retry"          # the same side sent its SYN again: the first went unanswered
HOLD_SYN: Final = "SYN"
HOLD_FIN: Final = "FIN"
HOLD_ACK: Final = "ACK"         # the ACK (or data) that may complete a listener's handshake
MAX_HELD: Final = 10000         # segments of one connection queued behind a hold, at most
INF: Final = float("inf")


class Holds:
    """The held SYNs and FINs, and the output queue in frame order."""

    def __init__(self, hold: float, infer: Inference, ordered: bool = True) -> None:
        self.hold = hold
        self.infer = infer
        self.ordered = ordered
        # Output queue in frame order: Slots (held or resolved) and ready Annotations;
        # unordered, only the Annotations final and not yet drained.
        self.pending: deque[Slot | Annotation] = deque()
        self._expiry: deque[tuple[float, int, Connection]] = deque()
        self.due = INF             # when the oldest hold ends (checked on every segment)
        self._token = 0

    def starts_hold(self, conn: Connection, seg: Segment, from_client: bool) -> bool:
        """Whether ``seg`` must wait for the peer's answer before it is annotated."""
        flags = seg.flags
        if flags & RST:
            return False
        me, peer = (conn.c, conn.s) if from_client else (conn.s, conn.c)
        if me is peer:   # a socket connected to itself: its answer is itself
            return False
        if flags & SYN:
            return not flags & ACK and not peer.spoke
        if peer.state == T.SYN_RCVD:
            return _completes(me, peer, seg)
        if flags & FIN:
            return me.fin_end < 0 and peer.fin_end < 0 and peer.state not in (
                T.CLOSED, T.LISTEN, T.SYN_SENT)
        return False

    def add(self, slot: Slot) -> None:
        """Queue a segment in frame order and annotate it as soon as that is possible."""
        if self.ordered:
            self.pending.append(slot)
        self._dispatch(slot)

    def _annotate(self, slot: Slot, how: str) -> None:
        """The segment's final annotation (queued at once when unordered)."""
        ann = slot.ann = self.infer.process(slot.conn, slot.seg, slot.from_client, how)
        if not self.ordered:
            self.pending.append(ann)

    def _dispatch(self, slot: Slot) -> None:
        conn = slot.conn
        hold = conn.hold
        if hold is not None:
            how = self._answer(hold, slot)
            if how is None:
                hold.queue.append(slot)
            elif how == RETRY:
                self._resolve(conn, UNANSWERED)
                self._dispatch(slot)
            elif how == DROPPED:
                self._drop_all(conn)
                self._dispatch(slot)
            else:
                hold.queue.append(slot)
                self._resolve(conn, how)
            return
        seg = slot.seg
        if self.starts_hold(conn, seg, slot.from_client):
            self._token += 1
            flags = seg.flags
            kind = HOLD_SYN if flags & SYN else HOLD_FIN if flags & FIN else HOLD_ACK
            end = seg.seq + seg.payload + (0 if kind == HOLD_ACK else 1)
            conn.hold = Hold(slot, kind, end & MASK, self._token)
            self._expiry.append((seg.ts + self.hold, self._token, conn))
            self.due = self._expiry[0][0]
            return
        self._annotate(slot, NORMAL)

    @staticmethod
    def _answer(hold: Hold, slot: Slot) -> str | None:
        """How ``slot`` answers the held SYN, FIN or ACK, or None if it does not."""
        flags = slot.seg.flags
        if hold.kind == HOLD_ACK:
            return _answer_ack(hold, slot)
        if slot.from_client == hold.from_client:
            if hold.kind == HOLD_SYN and flags & SYN and not flags & ACK:
                return RETRY
            return None if len(hold.queue) < MAX_HELD else NORMAL
        if hold.kind == HOLD_SYN:
            if flags & RST:  # only an RST acknowledging the SYN refuses it
                return REFUSED if flags & ACK and slot.seg.ack == hold.end else None
            return CROSSED if flags & SYN and not flags & ACK else NORMAL
        if flags & RST or (flags & ACK and not seq_lt(slot.seg.ack, hold.end)):
            return NORMAL
        return CROSSED if flags & FIN else None

    def _resolve(self, conn: Connection, how: str) -> None:
        hold = conn.hold
        assert hold is not None
        conn.hold = None
        first = hold.queue[0]
        self._annotate(first, how)
        for slot in hold.queue[1:]:
            self._dispatch(slot)

    def _drop_all(self, conn: Connection) -> None:
        """The held ACK and everything queued behind it never reached the peer's socket."""
        hold = conn.hold
        assert hold is not None
        conn.hold = None
        for slot in hold.queue:
            self._annotate(slot, DROPPED)

    def expire(self, now: float) -> None:
        """Resolve the holds older than ``hold`` seconds before ``now``."""
        expiry = self._expiry
        while expiry and expiry[0][0] < now:
            _, token, conn = expiry.popleft()
            self._timed_out(conn, token)
        self.due = expiry[0][0] if expiry else INF

    def resolve_all(self) -> None:
        """End of input: every hold is resolved as if its time had run out."""
        while self._expiry:
            _, token, conn = self._expiry.popleft()
            self._timed_out(conn, token)
        self.due = INF

    def _timed_out(self, conn: Connection, token: int) -> None:
        """No answer in time. A held SYN went unanswered; a FIN or a bare ACK needs none.
        Data a listener's request got, unacknowledged all this time, was not taken."""
        hold = conn.hold
        if hold is None or hold.token != token:
            return
        if hold.kind == HOLD_ACK and any(slot.seg.payload for slot in hold.queue):
            self._drop_all(conn)
        else:
            self._resolve(conn, UNANSWERED if hold.kind == HOLD_SYN else NORMAL)

    def drain(self) -> list[Annotation]:
        """The annotations at the head of the output queue that are final."""
        out: list[Annotation] = []
        pending = self.pending
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


def _completes(me: Endpoint, peer: Endpoint, seg: Segment) -> bool:
    """``seg`` acknowledges the SYN of a listener's request (``peer`` in SYN_RCVD) and may
    complete its handshake, unless the accept queue is full: the answer tells."""
    syn = peer.syn_seq
    return (bool(seg.flags & ACK) and syn >= 0 and me.state != T.SYN_RCVD
            and not seq_lt(seg.ack, (syn + 1) & MASK))


def _answer_ack(hold: Hold, slot: Slot) -> str | None:
    """How ``slot`` answers a held ACK to a listener's request.

    The peer's SYN+ACK sent again says the ACK was not taken (its accept queue was full);
    so does data the sender sends again (nobody acknowledged it). Anything else from the
    peer says the handshake completed.
    """
    seg = slot.seg
    if slot.from_client == hold.from_client:
        if seg.payload and seq_lt(seg.seq, hold.end):
            return DROPPED
        end = (seg.seq + seg.seg_len) & MASK
        if seq_lt(hold.end, end):
            hold.end = end
        return None if len(hold.queue) < MAX_HELD else NORMAL
    return DROPPED if seg.flags & SYN else NORMAL
