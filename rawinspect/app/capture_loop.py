"""Live capture: Sniffer → (pcap writer) → Decoder → Tracker → renderer, until told to stop.

The loop waits at most 10 ms for packets, so each annotation is printed within about
10 ms of its packet's arrival (a SYN or FIN waits for its answer, as in replay). The
tracker's holds expire by the capture clock, read before the socket is drained, so
live capture and replay of the written file reach the same answers.
"""

from __future__ import annotations

import gc
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from types import FrameType
from typing import Callable

from ..core.annotation import Annotation
from ..sources.decode import Decoder
from ..render.pcapwriter import PcapWriter
from .pipeline import Keep, Stats, emit
from ..sources.sniffer import Sniffer
from ..core.tracker import Tracker

POLL_MS = 10        # longest wait before pending annotations are printed
READ_BATCH = 256    # packets read per round before rendering: bounds the output delay
DEFAULT_LINGER = 0.5  # seconds to keep capturing after the program ends


@dataclass
class StopFlag:
    """Set by SIGINT/SIGTERM handlers; the loop checks it between rounds."""
    signum: int = 0

    def install(self) -> Callable[[], None]:
        """Catch SIGINT and SIGTERM; returns a function that restores the old handlers."""
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.signum = signum
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)
        return restore


@dataclass
class Limits:
    """When to stop: packets captured, seconds, or the watched program's end plus linger."""
    count: int | None = None
    duration: float | None = None
    linger: float = DEFAULT_LINGER


def capture_loop(sniffer: Sniffer, writer: PcapWriter | None, tracker: Tracker,
                 sink: Callable[[list[Annotation]], None], keep: Keep | None, stats: Stats,
                 limits: Limits, stop: StopFlag, child: subprocess.Popen | None = None,
                 each_round: Callable[[], None] | None = None) -> str:
    """Capture until a limit, a signal or the child's end; returns why it stopped.

    Everything captured is written and annotated before this returns, whatever the cause.
    ``each_round`` runs after every round (the kernel trace reader uses it).
    """
    decode = Decoder().decode
    feed = tracker.feed
    linktype = sniffer.linktype
    skipped = stats.skipped
    write = writer.write if writer is not None else None
    poller = select.poll()
    poller.register(sniffer.fileno(), select.POLLIN)
    start = time.time()
    deadline = start + limits.duration if limits.duration else None
    child_end: float | None = None
    frame = stats.packets
    reason = ""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while not reason:
            poller.poll(POLL_MS)
            now = time.time()
            anns: list[Annotation] = []
            while True:
                packets = sniffer.read(READ_BATCH)
                for sec, nsec, data, wirelen in packets:
                    frame += 1
                    if write is not None:
                        write(sec, nsec, data, wirelen)
                    seg = decode(frame, linktype, sec + nsec * 1e-9, data, 0, len(data), wirelen)
                    if isinstance(seg, str):
                        skipped[seg] += 1
                    else:
                        stats.segments += 1
                        anns.extend(feed(seg))
                    if limits.count is not None and frame >= limits.count:
                        reason = "count"
                        break
                if reason or len(packets) < READ_BATCH:
                    break
            stats.packets = frame
            anns.extend(tracker.flush(now))
            emit(anns, sink, keep, stats, None)
            if writer is not None:
                writer.flush()
            if each_round is not None:
                each_round()
            if stop.signum:
                reason = "signal"
            elif deadline is not None and now >= deadline:
                reason = "duration"
            elif child is not None:
                if child_end is None and child.poll() is not None:
                    child_end = now
                if child_end is not None and now >= child_end + limits.linger:
                    reason = "program ended"
    finally:
        stats.packets = frame
        emit(tracker.finish(), sink, keep, stats, None)
        stats.connections = tracker.connections
        stats.dropped = sniffer.poll_drops()
        if gc_was_enabled:
            gc.enable()
    return reason
