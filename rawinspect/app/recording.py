"""Recording the programs' calls during a live capture, onto the segments' timeline.

``start_recording`` sets up the call trace (or says in one line why it cannot, and the
capture goes on without it). ``Recording`` then sits between the tracker and the output:
it takes the annotations, reads the calls each round, saves them with the packets, and
lets the timeline through once nothing earlier can still come.
"""

from __future__ import annotations

import sys
from typing import Callable

from ..core.annotation import Annotation
from ..core.call import Call
from ..render.pcapwriter import PcapWriter
from ..sources.call_trace import LAG, CallTrace
from ..sources.tracefs import TraceUnavailable
from .annotator import Annotator
from .output import Output
from .pipeline import Stats
from .timeline import Timeline, boundary_lines, count_calls


def start_recording() -> CallTrace | None:
    """The call trace, or None (said on stderr) where the kernel's tracing is missing."""
    try:
        return CallTrace()
    except TraceUnavailable as e:
        print(f"rawinspect: the programs' calls are not recorded: {e}; capturing without "
              "them", file=sys.stderr)
        return None


class Recording:
    """The calls of one capture: traced, merged with the annotations, linked, then saved
    as shown (replay shows the same links) and counted."""

    def __init__(self, trace: CallTrace, output: Output, writer: PcapWriter | None,
                 tracker: Annotator, stats: Stats, own_only: bool,
                 clock: Callable[[], float]) -> None:
        self.trace = trace
        self.writer = writer
        self.tracker = tracker
        self.stats = stats
        self.clock = clock
        self.output = output
        self.timeline = Timeline(output.sink, self._show_calls, output.sink_datagrams,
                                 own_only)
        self.lost = 0
        stats.calls = 0

    def sink(self, anns: list[Annotation]) -> bool:
        """The capture loop's sink: annotations wait on the timeline."""
        self.timeline.add(anns, [])
        return True

    def each_round(self) -> None:
        """Read the calls, save them, and show the timeline up to where it is complete."""
        self.trace.read()
        now = self.clock()
        self.timeline.add([], self.trace.take(now))
        upto = now - LAG
        held = self.tracker.held_since()
        if held is not None:
            upto = min(upto, held - 1e-6)
        self.timeline.release(upto)

    def _show_calls(self, calls: list[Call]) -> None:
        """Calls leaving the timeline, linked: saved as shown, then shown."""
        if self.writer is not None:
            self.writer.write_calls(calls)
        self.stats.calls = (self.stats.calls or 0) + count_calls(calls)
        self.output.sink_calls(calls)

    def finish(self) -> None:
        """The capture ended: the last calls, then everything left on the timeline."""
        rest, self.lost = self.trace.finish()
        self.timeline.add([], rest)
        self.timeline.finish()
        self.stats.left_out = self.timeline.left_out

    def report_lines(self) -> list[str]:
        """Message boundaries per connection."""
        return boundary_lines(self.timeline)

    def warn_lost(self) -> None:
        """Say on stderr when the kernel's trace overflowed (calls are missing)."""
        if self.lost:
            print(f"rawinspect: {self.lost} trace events lost: some calls are missing (the "
                  "programs made calls faster than they could be read)", file=sys.stderr)
