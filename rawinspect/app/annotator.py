"""Tracker and Wireshark's analysis as one stage: segments in, analysed annotations out.

The tracker (the sans-IO core) says what each segment does to both endpoints; the
Wireshark view then adds its analysis flags to the same annotations, in frame order,
before any renderer sees them. Connections the tracker forgets, the view forgets too;
with ``report_retired``, so can the views after it (``take_retired``).
"""

from __future__ import annotations

from typing import Iterable

from ..core.annotation import Annotation
from ..core.segment import Segment
from ..core.tracker import DEFAULT_HOLD, DEFAULT_MSL, Tracker, feed_all
from ..views.wireshark import SeqAnalyzer


class Annotator:
    """``feed``, ``flush`` and ``finish`` as the Tracker's, with Wireshark's flags added
    (unless ``wireshark`` is False: for outputs that read none, Zeek's conn.log alone)."""

    def __init__(self, msl: float = DEFAULT_MSL, hold: float = DEFAULT_HOLD,
                 ordered: bool = True, report_retired: bool = False,
                 wireshark: bool = True) -> None:
        self.tracker = Tracker(msl=msl, hold=hold, ordered=ordered)
        self._wireshark = SeqAnalyzer() if wireshark else None
        self.report_retired = report_retired
        self._retired: list[int] = []   # forgotten since last taken (with report_retired)

    @property
    def connections(self) -> int:
        """Connections started so far."""
        return self.tracker.connections

    def _analysed(self, anns: list[Annotation]) -> list[Annotation]:
        wireshark = self._wireshark
        if anns and wireshark is not None:
            wireshark.feed(anns)
        retired = self.tracker.retired
        if retired:
            if wireshark is not None:
                wireshark.forget_conns(retired)
            if self.report_retired:
                self._retired.extend(retired)
            retired.clear()
        return anns

    def take_retired(self) -> list[int]:
        """The connections forgotten since the last call. Every annotation of theirs has
        been returned by then: the tracker retires a connection ``retire_after`` seconds
        after its last segment, longer than any hold."""
        taken, self._retired = self._retired, []
        return taken

    def feed(self, seg: Segment) -> list[Annotation]:
        """Annotate one segment; the annotations now final, in frame order."""
        return self._analysed(self.tracker.feed(seg))

    def flush(self, now: float) -> list[Annotation]:
        """Release segments held longer than the hold before ``now`` (live capture)."""
        return self._analysed(self.tracker.flush(now))

    def held_since(self) -> float | None:
        """The oldest segment still waiting for its annotation (see Tracker.held_since)."""
        return self.tracker.held_since()

    def held_frame(self) -> int | None:
        """The frame of the oldest segment still waiting (see Tracker.held_frame)."""
        return self.tracker.held_frame()

    def finish(self) -> list[Annotation]:
        """End of input: everything still held."""
        return self._analysed(self.tracker.finish())

    def feed_all(self, segments: Iterable[Segment]) -> list[Annotation]:
        """Annotate a whole sequence of segments (tests and small files)."""
        return feed_all(self, segments)
