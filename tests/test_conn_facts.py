"""The findings' facts: the collector's own bookkeeping, kept cheap, says what a plain
record of every send would say."""

from __future__ import annotations

import random

import pytest

from rawinspect.core.annotation import Annotation
from rawinspect.core.segment import ACK, Segment
from rawinspect.views.conn_facts import UNACKED, FactsCollector, Side
from rawinspect.views.steps import StepLog


def test_unacked_sends_match_an_ordered_record() -> None:
    """Sends, retransmissions and ACKs in random order: the oldest send in plain fields and
    the others in a dict answer as one ordered dict of every send would."""
    rng = random.Random(7)
    for _ in range(200):
        side = Side(StepLog("ESTABLISHED", 0.0, 1))
        model: dict[int, float] = {}
        for step in range(300):
            seq, ts = rng.randrange(0, 400, 4), float(step)
            op = rng.random()
            if op < 0.5:
                side.remember(seq, ts)
                if len(model) < UNACKED:
                    model.setdefault(seq, ts)
            elif op < 0.65 and model.get(seq) is not None:
                side.sent_again(seq, ts)
                model[seq] = ts
            else:
                side.acked(seq)
                while model and next(iter(model)) < seq:
                    del model[next(iter(model))]
            for probe in range(0, 400, 4):
                assert side.first_sent(probe) == model.get(probe)
            assert side.sent == bool(model)


def test_a_full_record_takes_no_more_sends() -> None:
    side = Side(StepLog("ESTABLISHED", 0.0, 1))
    for seq in range(UNACKED + 10):
        side.remember(seq, float(seq))
    assert side.first_sent(UNACKED - 1) == UNACKED - 1
    assert side.first_sent(UNACKED) is None


def _ack(frame: int, conn: int) -> Annotation:
    seg = Segment(frame, frame / 10, "10.0.0.1", 40000, "10.0.0.2", 80, 1, 1, ACK, 1000, 0)
    return Annotation(seg=seg, conn=conn, client="10.0.0.1:40000",
                      server="10.0.0.2:80", from_client=True, client_before="ESTABLISHED",
                      client_after="ESTABLISHED", server_before="ESTABLISHED",
                      server_after="ESTABLISHED", client_path=None, server_path=None,
                      event="ACK", analysis=[], note="", rel_seq=1, rel_ack=1)


def test_connections_by_any_number() -> None:
    """Connection numbers counted from 1, far apart or interleaved: one facts each."""
    c = FactsCollector()
    numbers = [1, 2, 1, 10 ** 9, 3, 10 ** 9, 2, 0]
    c.feed([_ack(i + 1, n) for i, n in enumerate(numbers)])
    assert sorted(c.facts) == sorted(set(numbers))
    assert c.facts[10 ** 9].first_ts == pytest.approx(0.4)
    assert c.facts[10 ** 9].last_ts == pytest.approx(0.6)
    assert c.facts[2].last_ts == pytest.approx(0.7)


def test_sides_by_name() -> None:
    c = FactsCollector()
    c.feed([_ack(1, 1)])
    f = c.facts[1]
    assert f.sides == {"client": f.side("client"), "server": f.side("server")}
    assert f.side("client") is not f.side("server")
    with pytest.raises(KeyError):
        f.side("peer")
