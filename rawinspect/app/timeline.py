"""One timeline: the annotated segments and the programs' calls, in time order.

Segments come from the tracker, calls from the trace (live) or the saved capture
(replay), each a little late. ``Timeline`` keeps both until ``release(upto)`` says
nothing earlier can still come, links them (``views/calls``) and hands them to the
output in time order: a call at the time it was made, between the segments around it.
With ``own_only`` it shows only the connections of the traced programs and counts the
segments it leaves out. UDP datagrams are packets like the segments: they wait in the
same queue, in frame order, and meet the calls by time as segments do (all of them are
shown: the capture filter chose them).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Callable, Iterator, Union, cast

from ..core.annotation import Annotation
from ..core.call import ENTERED, RETURNED, Call
from ..core.datagram import Datagram
from ..core.segment import ACK, FIN, RST, SYN, Segment
from ..views.calls import CallLinker, port_of
from .annotator import Annotator
from .output import Output
from .pipeline import Datagrams, DatagramSink, Stats, run

Item = Union[Annotation, Call, Datagram]
Packet = Union[Annotation, Datagram]   # an annotated segment or a datagram, in frame order
MAKES_SEGMENTS = frozenset({"connect", "close", "shutdown"})
SENDS_EARLY = 100e-6   # seconds
AnnSink = Callable[[list[Annotation]], bool]
CallSink = Callable[[list[Call]], None]


class Timeline:
    """Merges annotations and calls by time; ``release`` and ``finish`` emit them."""

    def __init__(self, sink: AnnSink, sink_calls: CallSink, sink_datagrams: DatagramSink,
                 own_only: bool = False, saved: bool = False) -> None:
        """``saved``: the calls come from a saved capture, linked when they were captured."""
        self.sink = sink
        self.sink_calls = sink_calls
        self.sink_datagrams = sink_datagrams
        self.own_only = own_only
        self.linker = CallLinker(saved)
        self.left_out = 0              # segments of other programs' connections
        self._anns: deque[Packet] = deque()
        self._calls: list[tuple[float, int, Call]] = []   # a heap by time
        self._seq = 0
        self._more = True

    def add(self, anns: list[Annotation], calls: list[Call]) -> None:
        """Queue final annotations (frame order) and call rows (any order: each must
        come before ``release`` passes its time)."""
        self._anns.extend(anns)
        for call in calls:
            self._push(call)

    def add_datagrams(self, datagrams: list[Datagram]) -> None:
        """Queue datagrams, in frame order with the annotations (``pipeline.Datagrams``
        hands both on that way)."""
        self._anns.extend(datagrams)

    def release(self, upto: float) -> bool:
        """Emit everything up to ``upto`` in time order; False once the output has had
        enough (the count)."""
        items = self._take(upto)
        if items:
            self.linker.link([i for i in items if not isinstance(i, Datagram)])
            self._emit(items)
        return self._more

    def finish(self) -> bool:
        """Emit everything left."""
        return self.release(float("inf"))

    def _take(self, upto: float) -> list[Item]:
        anns, calls = self._anns, self._calls
        items: list[Item] = []
        while True:
            a_ts = _ts(anns[0]) if anns else None
            c_ts = calls[0][0] if calls else None
            if c_ts is not None and c_ts <= upto and (
                    a_ts is None or c_ts - _early(calls[0][2], anns[0]) <= a_ts):
                call = calls[0][2]
                if not call.phase and (call.end or call.ts) > upto:
                    return items  # it may yet be split by a segment that came in meanwhile
                heapq.heappop(calls)
                items.append(self._answered(call))
            elif a_ts is not None and a_ts <= upto:
                items.append(anns.popleft())
            else:
                return items

    def _answered(self, call: Call) -> Call:
        """A call during which its socket received a FIN or RST (a connect() refused, a
        read() that returned 0 at the peer's FIN) is shown as entered before that segment
        and returned after it, so that the segment explains its result."""
        if call.phase or call.end is None or not call.local:
            return call
        port = int(call.local.rsplit(":", 1)[1])
        peer = int(call.peer.rsplit(":", 1)[1]) if call.peer else None
        for a in self._anns:
            if isinstance(a, Datagram):
                continue
            seg = a.seg
            if seg.ts > call.end:
                break
            if (seg.ts > call.ts and seg.dport == port and seg.flags & (FIN | RST)
                    and (peer is None or seg.sport == peer)):
                entered, returned = call.split(force=True)
                self._push(returned)
                return entered
        return call

    def _push(self, call: Call) -> None:
        self._seq += 1
        heapq.heappush(self._calls, (call.at, self._seq, call))

    def _emit(self, items: list[Item]) -> None:
        """Consecutive items of a kind as one batch to their sink."""
        batch: list[Item] = []
        for item in items:
            if batch and type(item) is not type(batch[0]):
                self._hand(batch)
                batch = []
            if (self.own_only and isinstance(item, Annotation)
                    and not self.linker.is_own(item)):
                self.left_out += 1
            else:
                batch.append(item)
        if batch:
            self._hand(batch)

    def _hand(self, batch: list[Item]) -> None:
        """One batch (all of a kind) to its sink."""
        first = batch[0]
        if isinstance(first, Annotation):
            self._more = self.sink(cast(list[Annotation], batch)) and self._more
        elif isinstance(first, Call):
            self.sink_calls(cast(list[Call], batch))
        else:
            self.sink_datagrams(cast(list[Datagram], batch))


def boundary_lines(timeline: Timeline) -> list[str]:
    """The message boundaries of every connection a traced program used, with a heading."""
    lines = [f"conn {conn} {label}: {flow.text()}"
             for conn, label, flow in timeline.linker.boundaries()]
    if lines:
        lines.insert(0, "message boundaries (the programs' calls versus the segments):")
    return lines


def replay_with_calls(segments: Iterator[Segment], tracker: Annotator, output: Output,
                      stats: Stats, calls: list[Call], udp: Datagrams) -> Timeline:
    """Replay a capture saved with its calls: the same timeline as when it was captured
    (``udp``: the datagrams read, which join the timeline by time)."""
    timeline = Timeline(output.sink, output.sink_calls, output.sink_datagrams, saved=True)
    udp.sink = timeline.add_datagrams
    timeline.add([], calls)
    stats.calls = count_calls(calls)

    def sink(anns: list[Annotation]) -> bool:
        timeline.add(anns, [])
        held = tracker.held_since()
        upto = anns[-1].seg.ts if anns else 0.0
        return timeline.release(upto if held is None else min(upto, held - 1e-6))
    run(segments, tracker, sink, stats, udp)
    timeline.finish()
    return timeline


def count_calls(rows: list[Call]) -> int:
    """Calls, signals and exits among timeline rows (a call that waited has two rows)."""
    return sum(1 for c in rows if c.phase != ENTERED)


def _ts(packet: Packet) -> float:
    """When a segment or datagram was captured."""
    return packet.ts if isinstance(packet, Datagram) else packet.seg.ts


def _early(call: Call, ann: Packet) -> float:
    """How much earlier than its own time a call comes before the next segment: by
    SENDS_EARLY when that segment is the SYN, FIN or RST the call (connect, close,
    shutdown) sends on its socket, since the kernel may stamp it tens of µs before the
    call's entry (TCP's departure time comes from a cached clock), and the call must come
    first to be seen as its cause."""
    if isinstance(ann, Datagram) or call.name not in MAKES_SEGMENTS or call.phase == RETURNED or not call.peer:
        return 0.0
    seg = ann.seg
    makes = SYN if call.name == "connect" else FIN | RST
    mine = (seg.sport == port_of(call.local) and seg.dport == port_of(call.peer)
            and seg.flags & makes and not (makes == SYN and seg.flags & ACK))
    return SENDS_EARLY if mine else 0.0
