"""Live capture: packet source → (pcap writer) → Decoder → Tracker → sink, until told to stop.

The loop waits at most 10 ms for packets, so each annotation is printed within about
10 ms of its packet's arrival (a SYN or FIN waits for its answer, as in replay). The
tracker's holds expire by the capture clock, read before the socket is drained, so
live capture and replay of the written file reach the same answers.
"""

from __future__ import annotations

import select
import signal
import subprocess
import time
from dataclasses import dataclass
from types import FrameType
from typing import Callable, Protocol

from ..core.annotation import Annotation
from ..core.datagram import Datagram
from ..core.segment import Segment
from .annotator import Annotator
from .collector import collector_paused
from ..render.pcapwriter import PcapWriter
from ..sources.decode import Decoder
from ..sources.packet_source import PacketSource
from .pipeline import Datagrams, Retire, Sink, Stats

POLL_MS = 10        # longest wait before pending annotations are printed
READ_BATCH = 256    # packets read per round before rendering: bounds the output delay
DEFAULT_LINGER = 0.5  # seconds to keep capturing after the program ends


class Program(Protocol):
    """What the loop watches end: a program it started, or a process it follows."""
    pid: int

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


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


class _Until:
    """The stop rules checked after each round, in order: signal, duration, program end."""

    def __init__(self, stop: StopFlag, limits: Limits, start: float,
                 child: Program | None) -> None:
        self.stop = stop
        self.deadline = start + limits.duration if limits.duration else None
        self.linger = limits.linger
        self.child = child
        self.child_end: float | None = None

    def reason(self, now: float) -> str:
        """Why to stop now, or ""."""
        if self.stop.signum:
            return "signal"
        if self.deadline is not None and now >= self.deadline:
            return "duration"
        if self.child is not None:
            if self.child_end is None and self.child.poll() is not None:
                self.child_end = now
            if self.child_end is not None and now >= self.child_end + self.linger:
                return "program ended"
        return ""


class _Reader:
    """Drains the source: writes, decodes and tracks each packet; counts them."""

    def __init__(self, source: PacketSource, writer: PcapWriter | None, tracker: Annotator,
                 stats: Stats, count: int | None, udp: Datagrams | None) -> None:
        self.source = source
        self.write = writer.write if writer is not None else None
        self.tracker = tracker
        self.stats = stats
        self.count = count
        self.udp = udp
        self.decode = Decoder().decode
        self.frame = stats.packets
        self.full = False  # the count of packets is reached

    def drain(self) -> list[Annotation]:
        """Every packet waiting now (up to the count); their annotations."""
        read, write, decode, feed = self.source.read, self.write, self.decode, self.tracker.feed
        linktype, count, stats = self.source.linktype, self.count, self.stats
        skipped = stats.skipped
        frame = self.frame
        anns: list[Annotation] = []
        while True:
            packets = read(READ_BATCH)
            for sec, nsec, data, wirelen in packets:
                frame += 1
                if write is not None:
                    write(sec, nsec, data, wirelen)
                seg = decode(frame, linktype, sec + nsec * 1e-9, data, 0, len(data), wirelen)
                if isinstance(seg, Segment):
                    stats.segments += 1
                    anns.extend(feed(seg))
                elif isinstance(seg, Datagram):
                    stats.datagrams += 1
                    if self.udp is not None:
                        self.udp.add(seg)
                else:
                    skipped[seg] += 1
                if count is not None and frame >= count:
                    self.full = True
                    break
            if self.full or len(packets) < READ_BATCH:
                break
        self.frame = stats.packets = frame
        return anns


def capture_loop(source: PacketSource, writer: PcapWriter | None, tracker: Annotator,
                 sink: Sink, stats: Stats, limits: Limits, stop: StopFlag,
                 child: Program | None = None,
                 each_round: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 udp: Datagrams | None = None, retire: Retire | None = None) -> str:
    """Capture until a limit, a signal or the child's end; returns why it stopped.

    Everything captured is written and annotated before this returns, whatever the cause.
    ``each_round`` runs after every round (the kernel trace reader uses it); ``clock``
    is the capture's clock, which expires the tracker's holds. UDP datagrams go to ``udp``
    (only counted without it), which puts them between the annotations. ``retire``
    takes the connections the tracker forgot, after their annotations (as ``run``).
    """
    reader = _Reader(source, writer, tracker, stats, limits.count, udp)
    if udp is None:
        udp = Datagrams(lambda _: None)
    poller = select.poll()
    poller.register(source.fileno(), select.POLLIN)
    until = _Until(stop, limits, clock(), child)
    reason = ""
    with collector_paused():
        try:
            while not reason:
                poller.poll(POLL_MS)
                now = clock()
                anns = reader.drain()
                anns.extend(tracker.flush(now))
                if writer is not None:
                    writer.flush()  # before the sink: the table's -X reads the rows' bytes back
                more = udp.hand_on(anns, sink, tracker.held_frame()) if anns or udp.queue \
                    else True
                if reader.full or not more:
                    reason = "count"
                elif retire is not None:
                    retire(tracker.take_retired())
                if each_round is not None:
                    each_round()
                reason = until.reason(now) or reason
        finally:
            stats.packets = reader.frame
            last = tracker.finish()
            if last or udp.queue:
                udp.hand_on(last, sink, None)
            stats.connections = tracker.connections
            stats.dropped = source.poll_drops()
    return reason
