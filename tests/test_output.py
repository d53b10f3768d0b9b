"""The format registry and the one output path both commands share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import pytest

from conftest import stable_lines
from rawinspect import render
from rawinspect.app import cli
from rawinspect.app.options import UsageError
from rawinspect.app.output import Output, summary_mode
from rawinspect.app.pipeline import Stats, make_tracker, read_segments, run
from rawinspect.core.call import Call
from rawinspect.core.annotation import Annotation
from rawinspect.core.tracker import DEFAULT_HOLD, DEFAULT_MSL
from rawinspect.render import FORMATS, Format, RenderOptions
from rawinspect.render.quiet import Quiet

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def args_for(*argv: str):
    return cli.build_parser().parse_args(["replay", *argv, "X"])


def test_format_choices_and_help_come_from_the_registry() -> None:
    parser = cli.build_parser()
    for command in ("replay", "capture"):
        sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore
        (fmt,) = [a for a in sub._actions if a.dest == "format"]
        assert list(fmt.choices) == list(FORMATS)
        for f in FORMATS.values():
            assert f"{f.name}: {f.help}" in fmt.help


def test_zeek_is_per_connection_and_implies_summaries() -> None:
    assert FORMATS["zeek"].per_connection and not FORMATS["table"].per_connection
    assert summary_mode(args_for("-T", "zeek"))
    assert not summary_mode(args_for("-T", "jsonl"))
    assert summary_mode(args_for("-T", "jsonl", "--conns"))


@pytest.mark.parametrize("live", [False, True])
@pytest.mark.parametrize("argv", [["--conns"], ["--explain", "1"], ["-T", "zeek"],
                                  ["-T", "ladder", "--conns"]])
def test_summaries_replace_the_segments_live_or_not(argv: list[str], live: bool) -> None:
    output = Output(args_for(*argv), Stats(), live=live)
    assert isinstance(output.renderer, Quiet) and output.summaries is not None


def test_a_file_format_needs_its_file() -> None:
    assert FORMATS["svg"].stream == "file"
    with pytest.raises(UsageError, match="--format svg needs -o"):
        Output(args_for("-T", "svg"), Stats(), live=False)


class Count:
    """A per-segment renderer that prints one line: how many annotations it got."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.n = out, 0

    def write(self, anns: list[Annotation]) -> None:
        self.n += len(anns)

    def write_calls(self, calls: list[Call]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.out.write(f"{self.n} annotations\n")


def test_a_new_format_is_one_entry(monkeypatch, capsys) -> None:
    def factory(out: TextIO, opts: RenderOptions) -> Count:
        return Count(out)
    monkeypatch.setitem(render.FORMATS, "count", Format("count", "how many segments", factory))
    assert cli.main(["replay", str(CAPTURES / "handshake.pcap"), "-T", "count", "-q"]) == 0
    assert capsys.readouterr().out == "10 annotations\n"
    # Without a summary formatter of its own, --conns prints the table.
    assert cli.main(["replay", str(CAPTURES / "handshake.pcap"), "-T", "count", "--conns",
                     "-q"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["Conn", "Start"]


def test_filter_then_count(capsys) -> None:
    stats = Stats()
    output = Output(args_for("-T", "jsonl", "--conn", "2", "-c", "3"), stats, live=False)
    run(read_segments(str(CAPTURES / "short-long.pcap"), stats),
        make_tracker(DEFAULT_MSL, DEFAULT_HOLD), output.sink, stats)
    output.close()
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["conn"] for r in rows] == [2, 2, 2] and stats.shown == 3
    assert stats.segments > 3  # the tracker saw everything before them
    assert Output(args_for("-c", "3"), Stats(), live=True).count is None  # capture: packets


PER_CONNECTION = (["--conns"], ["--conns", "-T", "jsonl"], ["-T", "zeek"],
                  ["--findings-only"], ["--findings-only", "-T", "jsonl"])


def test_only_the_per_connection_outputs_give_up_frame_order() -> None:
    def per_connection(*argv: str) -> bool:
        return Output(args_for(*argv), Stats(), live=False).per_connection
    assert all(per_connection(*mode) for mode in PER_CONNECTION)
    assert not per_connection("-T", "jsonl") and not per_connection()
    assert not per_connection("--conns", "-c", "5")      # the first 5 segments: frame order


def test_per_connection_outputs_print_what_frame_order_prints(capsys, realistic_mix) -> None:
    """Summaries and findings read each connection in its own order: on the realistic mix
    (SYNs held for seconds while other connections go on), the same bytes as in frame
    order (forced here by a count that is never reached)."""
    path = realistic_mix(20_000, 11)
    for mode in PER_CONNECTION:
        outputs = []
        for count in ([], ["-c", "1000000000"]):
            assert cli.main(["replay", *mode, *count, str(path)]) == 0
            outputs.append(stable_lines(capsys.readouterr().out))
        assert outputs[0] == outputs[1], " ".join(mode)
        assert len(outputs[0]) > 20


RETIRING = (*PER_CONNECTION, [], ["-T", "jsonl"], ["--conns", "-j", "2"], ["-T", "zeek", "-j", "2"])


def test_retired_connections_print_what_kept_ones_print(capsys, realistic_mix, retirement) -> None:
    """The tracker forgets a finished connection 2MSL + hold after its end; the
    summaries and findings then make its results and forget it too. With a short MSL
    (thousands retired), every output prints the same bytes as when nothing is forgotten."""
    path = realistic_mix(20_000, 5)
    for mode in RETIRING:
        outputs = []
        # -j 2: the workers retire the summaries' connections; one job forgetting nothing
        one_job = mode[:mode.index("-j")] if "-j" in mode else mode
        for switch, argv in ((retirement.on, mode), (retirement.off, one_job)):
            switch()
            assert cli.main(["replay", *argv, "--msl", "0.1", "--hold", "0.1", str(path)]) == 0
            outputs.append(stable_lines(capsys.readouterr().out))
        assert outputs[0] == outputs[1], " ".join(mode)
        assert len(outputs[0]) > 20
    assert len(retirement.retired) > 1000


def test_zeek_alone_skips_wiresharks_flags_and_prints_the_same(capsys, realistic_mix, monkeypatch) -> None:
    """Zeek's conn.log reads no analysis flag, so the annotator adds none there (not with
    a tap, which writes them); the same bytes as with them."""
    assert not Output(args_for("-T", "zeek"), Stats(), live=False).flags_wanted
    assert Output(args_for("-T", "zeek"), Stats(), live=False, tap=print).flags_wanted
    assert all(Output(args_for(*mode), Stats(), live=False).flags_wanted
               for mode in (["--conns"], ["-T", "jsonl"], ["--findings-only"], ["--explain", "1"]))
    path = realistic_mix(10_000, 7)
    made: list[bool] = []
    forced = [False]

    def tracker(*args, wireshark: bool = True, **kwargs):
        made.append(wireshark)
        return make_tracker(*args, wireshark=wireshark or forced[0], **kwargs)
    monkeypatch.setattr("rawinspect.app.output.make_tracker", tracker)
    outputs = []
    for forced[0] in (False, True):
        assert cli.main(["replay", "-T", "zeek", str(path)]) == 0
        outputs.append(stable_lines(capsys.readouterr().out))
    assert made == [False, False] and outputs[0] == outputs[1] and len(outputs[0]) > 100
