"""simultaneous-close on a machine with one CPU: the report and the verdict say why the
race cannot be won (the affinity set is faked; nothing is captured)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rawinspect.app.annotator import Annotator
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.scenarios import simultaneous_close as sc
from rawinspect.scenarios.check import verify

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


@pytest.mark.parametrize("cpus", [{0}, {3}, set()])
def test_fewer_than_two_cpus_cannot_set_up_the_race(cpus):
    note = sc.one_cpu_note(cpus)
    assert note is not None
    assert f"only {len(cpus)} CPU" in note and "cannot be set up" in note
    assert "two CPUs" in note and "machine or VM" in note


@pytest.mark.parametrize("cpus", [{0, 1}, {2, 5, 7}])
def test_two_cpus_or_more_need_no_note(cpus):
    assert sc.one_cpu_note(cpus) is None


def test_the_note_follows_the_affinity_the_process_has(monkeypatch):
    monkeypatch.setattr(sc.os, "sched_getaffinity", lambda pid: {4})
    assert "sched_getaffinity: 4" in sc.one_cpu_note(sc.os.sched_getaffinity(0))


def race(report: dict) -> list[str]:
    anns = Annotator().feed_all(read_segments(str(CAPTURES / "simultaneous-close.pcap"),
                                              Stats()))
    return verify(sc.SCENARIOS[0].expect, anns, report).lines()


def test_the_verdict_names_the_cause_on_one_cpu():
    lines = race({"outcomes": {}, "data": {"cpus": [0]}})
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == 1 and "race cannot be set up" in fails[0]
    assert lines[-1].startswith("EXPECTATIONS NOT MET")


def test_the_verdict_says_nothing_more_with_two_cpus_or_an_old_report():
    saved = json.loads((CAPTURES / "simultaneous-close.json").read_text())["programs"]
    for report in ({"outcomes": {}, "data": {"cpus": [0, 1]}}, saved):
        lines = race(report)
        assert not any("cannot be set up" in line for line in lines)
        assert lines[-1].startswith("every expectation held")
