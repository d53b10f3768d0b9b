"""What the end of a run prints of every connection, kept on disk once there is much of
it: the same items in the same order, the same bytes printed."""

from __future__ import annotations

import random

import pytest

from conftest import stable_lines
from rawinspect.app import cli
from rawinspect.render import summaries as render_summaries
from rawinspect.views import spill
from rawinspect.views.spill import SortedSpill


def test_items_come_back_in_key_order_from_memory_and_runs() -> None:
    rng = random.Random(4)
    keys = rng.sample(range(100_000), 1003)
    store: SortedSpill[str] = SortedSpill(limit=50, block=7)
    for k in keys:
        store.add(k, f"item {k}")
    assert len(store) == 1003
    assert len(store.runs) == 20 and store.file is not None     # 1000 written, 3 in memory
    want = [(k, f"item {k}") for k in sorted(keys)]
    assert list(store.items()) == want
    assert list(store.items()) == want   # read again: the runs are read anew
    store.close()
    assert store.file is None


def test_few_items_never_touch_the_disk() -> None:
    store: SortedSpill[tuple[int, str]] = SortedSpill(limit=10)
    for k in (5, 1, 3):
        store.add((k, 0), (k, "x"))
    assert store.file is None and list(store.items()) == [((1, 0), (1, "x")), ((3, 0), (3, "x")),
                                                          ((5, 0), (5, "x"))]


SUMMARIES = (["-T", "zeek"], ["--conns"], ["--conns", "-T", "jsonl"])


@pytest.mark.parametrize("mode", SUMMARIES, ids=" ".join)
def test_summaries_spilled_print_the_same_bytes(mode, capsys, realistic_mix, monkeypatch) -> None:
    """Zeek's rows sorted on disk, the table's rows and timing in temporary files, the
    retired connections' summaries written in runs: the same output as all in memory."""
    path = realistic_mix(20_000, 3)
    argv = ["replay", *mode, "--msl", "0.1", "--hold", "0.1", str(path)]
    assert cli.main(argv) == 0
    kept = stable_lines(capsys.readouterr().out)
    monkeypatch.setattr(spill, "LIMIT", 33)
    monkeypatch.setattr(spill, "BLOCK", 5)
    monkeypatch.setattr(render_summaries, "SPOOL", 100)
    made: list[SortedSpill] = []
    real_spill = spill.SortedSpill._spill

    def counted(self: SortedSpill) -> None:
        made.append(self)
        real_spill(self)
    monkeypatch.setattr(spill.SortedSpill, "_spill", counted)
    assert cli.main(argv) == 0
    assert stable_lines(capsys.readouterr().out) == kept
    assert len(kept) > 500
    assert len(made) >= 2, "the run wrote runs to disk"
