"""Replay: capture file → Segments → Tracker → sink, with the closing counts; UDP
datagrams beside them, put back in frame order."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Final, Iterator

from .annotator import Annotator
from .collector import collector_paused
from ..core.annotation import Annotation
from ..core.datagram import Datagram
from ..sources.capfile import Record, open_capture
from ..sources.decode import OTHER_JOB, Decoder
from ..core.segment import Segment


@dataclass
class Stats:
    """What a run read: packets, TCP segments, UDP datagrams, connections and skipped
    packets by reason."""
    packets: int = 0
    segments: int = 0
    datagrams: int = 0
    connections: int = 0
    shown: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    dropped: int | None = None  # live capture only: packets the kernel dropped
    calls: int | None = None    # the programs' calls on the timeline, when recorded
    left_out: int = 0           # segments of connections no traced program had a socket on
    latest: float = 0.0         # the time of the latest TCP segment or UDP datagram read

    def summary(self) -> str:
        """The closing line."""
        conns = f"{self.connections} connection{'s' if self.connections != 1 else ''}"
        verb = "read" if self.dropped is None else "captured"
        line = f"{self.packets} packets {verb}, {self.segments} TCP segments, {conns}"
        if self.datagrams:
            line += f", {self.datagrams} UDP datagram{'s' if self.datagrams != 1 else ''}"
        if self.shown != self.segments:
            line += f", {self.shown} shown"
        if self.skipped:
            parts = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            line += f"; skipped: {parts}"
        if self.dropped is not None:
            line += f"; {self.dropped} packets dropped by kernel"
        if self.calls is not None:
            line += f"; {self.calls} calls of the programs"
        if self.left_out:
            line += (f"; {self.left_out} segments of other programs left out "
                     "(--all-traffic shows them)")
        return line


# Takes final annotations in capture order; False once it wants no more (the count is shown).
Sink = Callable[[list[Annotation]], bool]
DatagramSink = Callable[[list[Datagram]], None]
# Takes the ids of connections that will have no more annotations (retired by the tracker).
Retire = Callable[[list[int]], None]
BATCH: Final = 256  # annotations handed to the sink at once


class Datagrams:
    """UDP datagrams waiting for their place in frame order.

    A datagram never meets the tracker, but a segment before it may still be held there
    (a SYN waiting for its answer): ``hand_on`` gives the annotations to their sink and the
    datagrams to theirs, interleaved by frame, each datagram once every segment before it
    is annotated.
    """

    def __init__(self, sink: DatagramSink) -> None:
        self.sink = sink
        self.queue: deque[Datagram] = deque()

    def add(self, d: Datagram) -> None:
        """Queue a datagram (frame order)."""
        self.queue.append(d)

    def hand_on(self, anns: list[Annotation], sink: Sink, held: int | None) -> bool:
        """``anns`` (frame order) to ``sink``, the datagrams between them to theirs, then
        those before frame ``held`` (the oldest segment not yet annotated; None: none)."""
        queue = self.queue
        more, start = True, 0
        for i, a in enumerate(anns):
            if queue and queue[0].frame < a.seg.frame:
                if i > start:
                    more = _hand_on(anns[start:i], sink)
                    start = i
                    if not more:
                        return False
                self._release(a.seg.frame)
        if start < len(anns):
            more = _hand_on(anns[start:], sink)
        if more:
            self._release(held)
        return more

    def _release(self, before: int | None) -> None:
        queue, out = self.queue, []
        while queue and (before is None or queue[0].frame < before):
            out.append(queue.popleft())
        if out:
            self.sink(out)


def read_segments(path: str, stats: Stats, udp: Callable[[Datagram], None] | None = None,
                  decoder: Decoder | None = None) -> Iterator[Segment]:
    """Decode every record of a capture file; count packets, segments and datagrams, and
    what is neither TCP nor UDP.

    The file is opened now (CaptureFileError before anything is shown); its records
    are read as the segments are taken.
    """
    return decode_records(open_capture(path), stats, udp, decoder)


def decode_records(records: Iterator[Record], stats: Stats,
                   udp: Callable[[Datagram], None] | None = None,
                   decoder: Decoder | None = None) -> Iterator[Segment]:
    """The segments of ``records`` (a capture file's, or packets from the Python API),
    counted as they are read; the datagrams go to ``udp`` (only counted without it).
    ``decoder``: one job's of ``replay -j`` (its segments only, every one counted).

    The counts are kept in the loop, not in a ``finally``: a generator abandoned after
    ``-c`` is not closed at once, and compiled code never runs its ``finally``.
    """
    if decoder is None:
        decoder = Decoder()
    skipped = stats.skipped
    frame = 0
    for linktype, ts, buf, off, caplen, wirelen in records:
        frame += 1
        stats.packets = frame
        seg = decoder.decode(frame, linktype, ts, buf, off, caplen, wirelen)
        if isinstance(seg, str) and seg != OTHER_JOB:
            skipped[seg] += 1
            continue
        if ts > stats.latest:
            stats.latest = ts
        if isinstance(seg, Segment):
            stats.segments += 1
            yield seg
        elif isinstance(seg, Datagram):
            stats.datagrams += 1
            if udp is not None:
                udp(seg)
        else:   # another job's segment
            stats.segments += 1


def make_tracker(msl: float, hold: float, ordered: bool = True,
                 report_retired: bool = False, wireshark: bool = True) -> Annotator:
    """The tracker and Wireshark's analysis every command feeds: replay and capture
    (``ordered`` False: in each connection's frame order only, see Tracker;
    ``report_retired``: the connections it forgets, for ``run``'s ``retire``;
    ``wireshark`` False: no analysis flags, for an output that reads none)."""
    return Annotator(msl=msl, hold=hold, ordered=ordered, report_retired=report_retired,
                     wireshark=wireshark)


def _hand_on(anns: list[Annotation], sink: Sink) -> bool:
    """``anns`` to the sink, ``BATCH`` at a time, while it wants more."""
    if len(anns) <= BATCH:
        return sink(anns)
    for start in range(0, len(anns), BATCH):
        if not sink(anns[start:start + BATCH]):
            return False
    return True


def run(segments: Iterator[Segment], tracker: Annotator, sink: Sink, stats: Stats,
        udp: Datagrams | None = None, retire: Retire | None = None) -> None:
    """Feed segments through the tracker; hand the final annotations to ``sink``, and the
    datagrams ``udp`` queues between them; after them, the connections the tracker
    forgot to ``retire`` (its ``report_retired``), which will see no more annotations.

    Annotations go to the sink in batches of at most ``BATCH``, until it says it has
    enough; a damaged file still gets everything read before the damage (the caller
    reports the error after this returns or raises). A hold released at once (tens of
    thousands of segments behind an unanswered SYN, all at the end) is handed on in
    batches too, so that no renderer holds all of its text at once.
    """
    batch: list[Annotation] = []
    more = True
    with collector_paused():
        try:
            for seg in segments:
                batch.extend(tracker.feed(seg))
                if len(batch) >= BATCH:
                    more = (_hand_on(batch, sink) if udp is None or not udp.queue
                            else udp.hand_on(batch, sink, tracker.held_frame()))
                    batch.clear()
                    if not more:
                        return
                    if retire is not None:
                        retire(tracker.take_retired())
        finally:
            batch.extend(tracker.finish())
            if more and udp is not None:
                udp.hand_on(batch, sink, None)
            elif more and batch:
                _hand_on(batch, sink)
            stats.connections = tracker.connections
