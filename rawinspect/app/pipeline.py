"""Replay: capture file → Segments → Tracker → renderer, with the closing counts."""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Final, Iterator

from ..core.annotation import Annotation
from ..sources.capfile import open_capture
from ..sources.decode import Decoder
from ..core.segment import Segment
from ..core.tracker import Tracker


@dataclass
class Stats:
    """What a run read: packets, TCP segments, connections and skipped packets by reason."""
    packets: int = 0
    segments: int = 0
    connections: int = 0
    shown: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    dropped: int | None = None  # live capture only: packets the kernel dropped

    def summary(self) -> str:
        """The closing line."""
        conns = f"{self.connections} connection{'s' if self.connections != 1 else ''}"
        verb = "read" if self.dropped is None else "captured"
        line = f"{self.packets} packets {verb}, {self.segments} TCP segments, {conns}"
        if self.shown != self.segments:
            line += f", {self.shown} shown"
        if self.skipped:
            parts = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            line += f"; skipped: {parts}"
        if self.dropped is not None:
            line += f"; {self.dropped} packets dropped by kernel"
        return line


def read_segments(path: str, stats: Stats) -> Iterator[Segment]:
    """Decode every record of a capture file; count what is not TCP."""
    decoder = Decoder()
    skipped = stats.skipped
    frame = segments = 0
    try:
        for linktype, ts, buf, off, caplen, wirelen in open_capture(path):
            frame += 1
            seg = decoder.decode(frame, linktype, ts, buf, off, caplen, wirelen)
            if isinstance(seg, str):
                skipped[seg] += 1
                continue
            segments += 1
            yield seg
    finally:
        stats.packets = frame
        stats.segments = segments


Sink = Callable[[list[Annotation]], None]
Keep = Callable[[Annotation], bool]
BATCH: Final = 256  # annotations handed to the sink at once


def run(segments: Iterator[Segment], tracker: Tracker, sink: Sink, keep: Keep | None,
        stats: Stats, count: int | None) -> None:
    """Feed segments through the tracker; hand final annotations (filtered) to ``sink``.

    Annotations go to the sink in batches; a damaged file still gets everything read
    before the damage (the caller reports the error after this returns or raises).
    """
    batch: list[Annotation] = []
    # The hot path creates no reference cycles; the cyclic collector would only cost time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for seg in segments:
            batch.extend(tracker.feed(seg))
            if len(batch) >= BATCH:
                if not emit(batch, sink, keep, stats, count):
                    return
                batch.clear()
    finally:
        batch.extend(tracker.finish())
        emit(batch, sink, keep, stats, count)
        stats.connections = tracker.connections
        if gc_was_enabled:
            gc.enable()


def emit(anns: list[Annotation], sink: Sink, keep: Keep | None, stats: Stats,
          count: int | None) -> bool:
    """Hand annotations on; False once the display count is reached."""
    if count is not None and stats.shown >= count:
        return False
    if keep is not None:
        anns = [a for a in anns if keep(a)]
    if count is not None and stats.shown + len(anns) >= count:
        anns = anns[:count - stats.shown]
        stats.shown += len(anns)
        sink(anns)
        return False
    stats.shown += len(anns)
    if anns:
        sink(anns)
    return True
