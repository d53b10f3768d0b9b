"""The bundled scenarios, offline: each capture in captures/ replays to its golden output
and meets the lesson's documented expectations. No privileges needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rawinspect.app import cli
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.scenarios import all_scenarios
from rawinspect.scenarios.base import Path as Expected, expansions, states
from rawinspect.scenarios.check import observe, verify
from rawinspect.app.annotator import Annotator

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SCENARIOS = all_scenarios()


def annotations(pcap: Path) -> list:
    return Annotator().feed_all(read_segments(str(pcap), Stats()))


def test_every_scenario_has_a_capture_and_nothing_else_is_there():
    names = {p.stem for p in CAPTURES.glob("*.pcap")}
    assert names == set(SCENARIOS)
    for name in SCENARIOS:
        assert (CAPTURES / f"{name}.json").is_file() and (CAPTURES / f"{name}.txt").is_file()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_bundled_capture_meets_the_lesson(name):
    saved = json.loads((CAPTURES / f"{name}.json").read_text())
    assert saved["ok"] and saved["scenario"] == name
    datagrams: list = []
    anns = Annotator().feed_all(read_segments(str(CAPTURES / f"{name}.pcap"), Stats(),
                                              datagrams.append))
    verdict = verify(SCENARIOS[name].expect, anns, saved["programs"], datagrams=datagrams)
    assert verdict.ok, "\n".join(verdict.lines())
    assert not verdict.deviating


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_bundled_capture_replays_to_its_golden_output(name, capsys):
    assert cli.main(["replay", str(CAPTURES / f"{name}.pcap"), "-q", "--color", "never"]) == 0
    assert capsys.readouterr().out == (CAPTURES / f"{name}.txt").read_text()


def test_optional_states_expand():
    assert expansions(states("A B? C")) == {("A", "B", "C"), ("A", "C")}


def test_time_wait_may_end_in_closed_when_the_4_tuple_is_taken_over():
    assert expansions(states("A FIN_WAIT_2? TIME_WAIT")) == {
        ("A", "FIN_WAIT_2", "TIME_WAIT"), ("A", "TIME_WAIT"),
        ("A", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"), ("A", "TIME_WAIT", "CLOSED")}
    assert expansions(states("A LAST_ACK CLOSED")) == {("A", "LAST_ACK", "CLOSED")}


def test_a_wrong_expectation_names_the_deviating_frame():
    anns = annotations(CAPTURES / "handshake.pcap")
    wrong = Expected("server closes first", states("CLOSED SYN_SENT ESTABLISHED CLOSE_WAIT "
                                                   "LAST_ACK CLOSED"),
                     states("LISTEN SYN_RCVD ESTABLISHED FIN_WAIT_1 TIME_WAIT"))
    from rawinspect.scenarios.base import Expect
    verdict = verify(Expect(conns=[[wrong]]), anns, {})
    assert not verdict.ok
    fin = next(a.seg.frame for a in anns if a.seg.flags & 0x01)
    assert verdict.deviating == [fin, fin]
    assert any("departs at frame" in line for line in verdict.lines())


def test_missing_outcome_and_program_error_fail():
    anns = annotations(CAPTURES / "refused.pcap")
    expect = SCENARIOS["refused"].expect
    verdict = verify(expect, anns, {"outcomes": {}, "error": "RuntimeError: boom"})
    text = "\n".join(verdict.lines())
    assert not verdict.ok and "not reported" in text and "boom" in text


def test_racy_scenarios_require_the_race_won_once():
    expect = SCENARIOS["simultaneous-close"].expect
    anns = annotations(CAPTURES / "simultaneous-close.pcap")
    won = [o for o in observe(anns) if "CLOSING" in o.client]
    assert won, "the bundled capture must show the race won"
    lost_only = [a for a in anns if a.conn not in {o.conn for o in won}]
    verdict = verify(expect, lost_only, {})
    assert not verdict.ok
    assert any("simultaneous close: seen in 0" in line for line in verdict.lines())


def test_scenarios_command_lists_and_explains(capsys):
    assert cli.main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SCENARIOS)
    assert cli.main(["scenarios", "server-close"]) == 0
    text = capsys.readouterr().out
    assert "EADDRINUSE" in text and "TIME_WAIT" in text
    assert cli.main(["scenarios", "nope"]) == 2


def test_readme_lists_every_scenario():
    readme = (CAPTURES.parent / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in SCENARIOS)
