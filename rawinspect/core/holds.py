"""Causality over capture order: SYNs and FINs held until the peer's answer, and the
output queue that releases annotations in frame order.

A SYN or FIN is held until the peer's next segment says how it was received. A peer
whose own SYN or FIN does not acknowledge ours sent it before ours arrived (the two
crossed), so the peer's receipt is applied after its own send: simultaneous open and
simultaneous close. A SYN answered by RST met no listener; a SYN retransmitted without
answer was dropped. Held segments wait at most ``hold`` seconds, and at most
``MAX_HELD`` segments of one connection queue behind a hold.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from . import transitions as T
from .annotation import Annotation
from .connection import Connection, Hold, Slot
from .inference import CROSSED, NORMAL, REFUSED, UNANSWERED, Inference
from .segment import ACK, FIN, RST, SYN, Segment
from .seqspace import MASK, seq_lt

RETRY: Final = "retry"          # the same side sent its SYN again: the first went unanswered
HOLD_SYN: Final = "SYN"
HOLD_FIN: Final = "FIN"
MAX_HELD: Final = 10000         # segments of one connection queued behind a hold, at most
INF: Final = float("inf")


class Holds:
    """The held SYNs and FINs, and the output queue in frame order."""

    def __init__(self, hold: float, infer: Inference) -> None:
        self.hold = hold
        self.infer = infer
        # Output queue in frame order: Slots (held or resolved) and ready Annotations.
        self.pending: deque[Slot | Annotation] = deque()
        self._expiry: deque[tuple[float, int, Connection]] = deque()
        self.due = INF             # when the oldest hold ends (checked on every segment)
        self._token = 0

    def starts_hold(self, conn: Connection, seg: Segment, from_client: bool) -> bool:
        """Whether ``seg`` must wait for the peer's answer before it is annotated."""
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

    def add(self, slot: Slot) -> None:
        """Queue a segment in frame order and annotate it as soon as that is possible."""
        self.pending.append(slot)
        self._dispatch(slot)

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
            else:
                hold.queue.append(slot)
                self._resolve(conn, how)
            return
        seg = slot.seg
        if self.starts_hold(conn, seg, slot.from_client):
            self._token += 1
            conn.hold = Hold(slot, HOLD_SYN if seg.flags & SYN else HOLD_FIN,
                             (seg.seq + seg.payload + 1) & MASK, self._token)
            self._expiry.append((seg.ts + self.hold, self._token, conn))
            self.due = self._expiry[0][0]
            return
        slot.ann = self.infer.process(conn, seg, slot.from_client, NORMAL)

    @staticmethod
    def _answer(hold: Hold, slot: Slot) -> str | None:
        """How ``slot`` answers the held SYN or FIN, or None if it does not."""
        flags = slot.seg.flags
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
        first.ann = self.infer.process(conn, first.seg, first.from_client, how)
        for slot in hold.queue[1:]:
            self._dispatch(slot)

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
        hold = conn.hold
        if hold is not None and hold.token == token:
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
