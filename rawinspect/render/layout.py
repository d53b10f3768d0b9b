"""Where a ladder's rows go, and which segments crossed on the wire: shared by the SVG
picture, the HTML report and the terminal ladder.

Rows: vertical spacing follows the capture's timing where that stays readable: gaps are
scaled, then clamped between a minimum (so close segments do not overlap) and a maximum
(long idle times are cut and marked with their length).

Crossings: a segment that takes sequence space (SYN, FIN or data) crossed a segment of
the other side when that one was sent before it arrived: its acknowledgement covers
everything before the first segment but not the segment itself (a SYN without ACK has no
acknowledgement at all: simultaneous open). Only the other side's segments captured
before the first side sends again count, and one of the two must carry SYN or FIN
(simultaneous open, simultaneous close, a FIN that crossed data): that is the lesson,
while data crossing acknowledgements in a bulk transfer is not. A crossed segment's
arrow reaches its receiver after the crossing one left, so the two arrows cross.
"""

from __future__ import annotations

from typing import Sequence, Union

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.segment import ACK, FIN, SYN
from ..core.seqspace import seq_lt

MIN_GAP, MAX_GAP, PX_PER_MS, SLANT = 30.0, 90.0, 40.0, 14.0

Event = Union[Annotation, Call]
Row = tuple[float, str]  # y, and the length of a cut idle gap before it ("" when none)
_KEPT = 16  # segments per direction that may still be crossed
_CONNS = 4096  # connections remembered (a live ladder runs for ever)


def timestamp(e: Event) -> float:
    """When a segment was captured or a call's row happened."""
    return e.seg.ts if isinstance(e, Annotation) else e.at


def rows(events: Sequence[Event], top: float, extra: Sequence[float] = ()) -> list[Row]:
    """The y of each segment or call from ``top`` down, and a mark for a cut idle gap.

    ``extra``: height an event takes below its row beyond one line (wrapped text).
    """
    ys: list[Row] = []
    y, prev, below = top, None, 0.0
    for i, e in enumerate(events):
        mark, ts = "", timestamp(e)
        if prev is not None:
            gap = (ts - prev) * 1000 * PX_PER_MS
            if gap > MAX_GAP:
                mark = f"{ts - prev:.3g} s"
            y += min(max(gap, MIN_GAP), MAX_GAP) + below
        prev, below = ts, extra[i] if i < len(extra) else 0.0
        ys.append((y, mark))
    return ys


class Crossings:
    """Fed a connection's segments in capture order (any number of connections), says
    which earlier segments of the other side each one crossed on the wire."""

    def __init__(self) -> None:
        # (conn, from_client) → that side's segments since the other side last spoke and
        # not acknowledged yet: (frame, seq, end of its sequence space, SYN or FIN)
        self.flying: dict[tuple[int, bool], list[tuple[int, int, int, bool]]] = {}
        self.last: dict[int, bool] = {}  # conn → the direction of its latest segment

    def feed(self, a: Annotation) -> list[int]:
        """The frames of the other side's segments that ``a`` crossed (usually none)."""
        seg = a.seg
        control = bool(seg.flags & (SYN | FIN))
        crossed: list[int] = []
        other = self.flying.get((a.conn, not a.from_client))
        if other:
            waiting = []
            for flying in other:
                frame, seq, end, ctl = flying
                if seg.flags & ACK and not seq_lt(seg.ack, end):
                    continue  # it arrived before this segment left
                waiting.append(flying)
                if (control or ctl) and (not seq_lt(seg.ack, seq) if seg.flags & ACK
                                         else seg.flags & SYN):
                    crossed.append(frame)
            other[:] = waiting
        own = (a.conn, a.from_client)
        if len(self.last) >= _CONNS and a.conn not in self.last:
            self.flying.clear()
            self.last.clear()
        if self.last.get(a.conn) != a.from_client:
            self.flying.pop(own, None)  # the other side spoke since: too late to cross
        self.last[a.conn] = a.from_client
        if seg.seg_len:
            mine = self.flying.setdefault(own, [])
            mine.append((seg.frame, seg.seq, (seg.seq + seg.seg_len) & 0xFFFFFFFF, control))
            del mine[:-_KEPT]
        return crossed


def arrivals(anns: Sequence[Annotation], ys: Sequence[float],
             crossed: Sequence[Sequence[int]], slant: float = SLANT) -> list[float]:
    """Where each arrow reaches its receiver: ``slant`` below where it left, or, for a
    segment crossed by later ones, ``slant`` below where the last of those left."""
    at = {a.seg.frame: i for i, a in enumerate(anns)}
    out = [y + slant for y in ys]
    for i, frames in enumerate(crossed):
        for frame in frames:
            j = at.get(frame)
            if j is not None:
                out[j] = max(out[j], ys[i] + slant)
    return out


def crossings(anns: Sequence[Annotation]) -> list[list[int]]:
    """For each segment, the frames it crossed (see ``Crossings``)."""
    c = Crossings()
    return [c.feed(a) for a in anns]
