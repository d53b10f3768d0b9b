"""Replay hands the output at most BATCH annotations at a time, in frame order, even when
a hold releases thousands at once (segments behind an unanswered SYN, at the end)."""

from __future__ import annotations

from rawinspect.app.pipeline import BATCH, Stats, make_tracker, run
from rawinspect.core.annotation import Annotation
from rawinspect.core.segment import ACK, SYN, Segment

from tcpseq import Conv


def _segments(data: int) -> list[Segment]:
    """A SYN nobody answers, then a connection exchanging ``data`` ACKed segments."""
    lone = Conv(cport=50000)
    busy = Conv(cport=40000)
    segs = [lone.seg("c", SYN, 77)]
    segs += busy.handshake()
    c, s = busy.c_isn + 1, busy.s_isn + 1
    for _ in range(data // 2):
        segs.append(busy.seg("s", ACK, s, c, length=100, dt=0.0))
        s += 100
        segs.append(busy.seg("c", ACK, c, s, dt=0.0))
    for frame, seg in enumerate(segs, 1):
        seg.frame, seg.ts = frame, 100.0 + frame * 1e-6  # all within the SYN's hold
    return segs


def test_a_released_hold_goes_out_in_batches() -> None:
    segs = _segments(4 * BATCH)
    sizes: list[int] = []
    frames: list[int] = []

    def sink(anns: list[Annotation]) -> bool:
        sizes.append(len(anns))
        frames.extend(a.seg.frame for a in anns)
        return True
    run(iter(segs), make_tracker(30.0, 3.0), sink, Stats())
    assert frames == list(range(1, len(segs) + 1))
    assert max(sizes) <= BATCH and len(sizes) >= len(segs) // BATCH


def test_the_sink_stops_taking_when_it_has_enough() -> None:
    segs = _segments(4 * BATCH)
    taken: list[int] = []

    def sink(anns: list[Annotation]) -> bool:
        taken.append(len(anns))
        return len(taken) < 2
    run(iter(segs), make_tracker(30.0, 3.0), sink, Stats())
    assert taken == [BATCH, BATCH]
