"""The sans-IO core: TCP segments in, annotations out.

``Tracker.feed(segment)`` returns the annotations that are final, in frame order. It
does no I/O and reads no clock: time comes only from the segments' timestamps (and from
``flush(now)`` for a live capture), so replay and live capture agree on the same packets.
Unordered (``ordered=False``), each connection's annotations still come in its frame
order, but no longer wait for another connection's held segment (``holds``).

The work is split as in Zeek's TCP analyzer: the connection table (``table``), the holds
that put causality before capture order (``holds``), and the state inference by the
rules of the transition table (``inference``, ``transitions``).
"""

from __future__ import annotations

from typing import Final, Iterable, Protocol

from .annotation import Annotation
from .connection import Connection, Slot
from .holds import Holds
from .inference import NORMAL, Inference
from .segment import FIN, RST, SYN, Segment
from .table import ConnectionTable

DEFAULT_MSL: Final = 30.0   # Linux: TIME_WAIT lasts 60 s = 2MSL
DEFAULT_HOLD: Final = 3.0   # seconds a SYN or FIN waits for the peer's answer


def _waits(seg: Segment, conn: Connection, from_client: bool) -> None:
    """``seg`` waits (held, or behind a held segment): it keeps its connection's copy of
    the flow key, not bytes of its own."""
    seg.flow = conn.ckey if from_client else conn.skey


class Tracker:
    """Connection table and TCP state inference for both endpoints of every connection."""

    def __init__(self, msl: float = DEFAULT_MSL, hold: float = DEFAULT_HOLD,
                 ordered: bool = True) -> None:
        self.time_wait = 2 * msl
        self.hold = hold
        # Finished connections leave the table once idle this long: when the kernel has
        # forgotten them too. TIME_WAIT began at or before the last segment, so it is over
        # (a late segment met it), and so is the MSL (half of it) that a stray segment of
        # the connection lives at most; and so is any hold (none of theirs is pending).
        self.retire_after = self.time_wait + hold
        self._table = ConnectionTable(self.retire_after)
        self._infer = Inference(self._table, self.time_wait)
        self._holds = Holds(hold, self._infer, ordered)
        self.retired: list[int] = []   # ids of connections forgotten since last taken

    @property
    def connections(self) -> int:
        """Connections started so far."""
        return self._table.connections

    @property
    def tracked(self) -> int:
        """Connections in the table: open ones, and finished ones not yet retired."""
        return self._table.tracked

    def feed(self, seg: Segment) -> list[Annotation]:
        """Annotate one segment; returns the annotations now final, in frame order (each
        connection's, when unordered)."""
        out = self._feed(seg)
        if self._table.retire_due < seg.ts:
            self.retired.extend(self._table.evict(seg.ts))
        return out

    def _feed(self, seg: Segment) -> list[Annotation]:
        holds = self._holds
        if holds.due < seg.ts:
            holds.expire(seg.ts)
        hit = self._table.by_key.get(seg.flow)
        if hit is not None and not seg.flags & (SYN | FIN | RST):
            from_client = seg.flow == hit.ckey
            ann = self._infer.plain(hit, seg, from_client)
            if ann is not None:
                if not holds.pending:
                    return [ann]
                _waits(seg, hit, from_client)
                holds.pending.append(ann)  # ready, but behind a held segment
                return holds.drain()
        conn, from_client = self._table.lookup(seg)
        if conn.hold is None and not holds.pending and not holds.starts_hold(conn, seg, from_client):
            return [self._infer.process(conn, seg, from_client, NORMAL)]
        _waits(seg, conn, from_client)
        holds.add(Slot(seg, conn, from_client))
        return holds.drain()

    def flush(self, now: float) -> list[Annotation]:
        """Release segments held longer than ``hold`` seconds before ``now`` (live capture)."""
        self._holds.expire(now)
        out = self._holds.drain()
        if self._table.retire_due < now:
            self.retired.extend(self._table.evict(now))
        return out

    def held_since(self) -> float | None:
        """The time of the oldest segment not yet annotated (None when nothing waits):
        every annotation still to come is of a segment at least this late."""
        pending = self._holds.pending
        return pending[0].seg.ts if pending else None

    def held_frame(self) -> int | None:
        """The frame of the oldest segment not yet annotated (None when nothing waits)."""
        pending = self._holds.pending
        return pending[0].seg.frame if pending else None

    def finish(self) -> list[Annotation]:
        """End of input: resolve everything still held and return the rest."""
        self._holds.resolve_all()
        return self._holds.drain()

    def feed_all(self, segments: Iterable[Segment]) -> list[Annotation]:
        """Annotate a whole sequence of segments (convenience for tests and small files)."""
        return feed_all(self, segments)


class Feeder(Protocol):
    """Anything fed segments that returns final annotations: the Tracker, or a stage over it."""

    def feed(self, seg: Segment) -> list[Annotation]: ...

    def finish(self) -> list[Annotation]: ...


def feed_all(feeder: Feeder, segments: Iterable[Segment]) -> list[Annotation]:
    """Every annotation of ``segments``, the held ones included, in frame order."""
    out: list[Annotation] = []
    for seg in segments:
        out.extend(feeder.feed(seg))
    out.extend(feeder.finish())
    return out
