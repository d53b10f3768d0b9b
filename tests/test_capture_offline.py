"""The live capture path without privileges: capture_loop and ``rawinspect capture``'s
output, fed a bundled capture through a file-backed PacketSource, against replay."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import pytest

from conftest import stable_lines
from file_source import FileSource
from rawinspect.app import capture_cmd, cli
from rawinspect.app.capture_loop import Limits, StopFlag, capture_loop
from rawinspect.app.options import UsageError
from rawinspect.app.output import Output
from rawinspect.app.pipeline import Stats, make_tracker
from rawinspect.core.tracker import DEFAULT_HOLD, DEFAULT_MSL
from rawinspect.sources.packet_source import PacketSource
from rawinspect.sources.sniffer import Sniffer

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
BUNDLED = sorted(p.name for p in CAPTURES.glob("*.pcap"))


def capture_args(*argv: str) -> argparse.Namespace:
    args = cli.build_parser().parse_args(["capture", *argv])
    args.command_argv = []
    return args


def capture(path: Path, *argv: str, per_read: int | None = None,
            on_read=None) -> tuple[int, FileSource]:
    """``rawinspect capture`` on the packets of ``path``, until its time runs out."""
    source = FileSource(str(path), per_read, on_read)
    span = source.times[-1] - source.times[0]
    args = capture_args("--duration", f"{span + 1:.6f}", *argv)
    code = capture_cmd.run_capture(args, lambda *_: source, source.clock)
    assert source.closed
    return code, source


def replay(capsys, path: Path, *argv: str) -> tuple[str, str]:
    # The offline capture records no calls: replay leaves out those saved with the file.
    assert cli.main(["replay", str(path), "--no-calls", *argv]) == 0
    res = capsys.readouterr()
    return res.out, res.err


def closing_line(err: str) -> str:
    (line,) = [x for x in err.splitlines() if "TCP segments" in x]
    return line


def as_source(sniffer: Sniffer) -> PacketSource:
    return sniffer  # the type checker holds Sniffer to the Protocol


def test_sniffer_is_a_packet_source() -> None:
    for name in ("fileno", "read", "poll_drops", "close"):
        assert callable(getattr(Sniffer, name))
    assert "linktype" in PacketSource.__annotations__


@pytest.mark.parametrize("name", BUNDLED)
def test_capture_annotates_as_replay(capsys, name: str) -> None:
    path = CAPTURES / name
    want, want_err = replay(capsys, path, "-T", "jsonl")
    code, _ = capture(path, "-T", "jsonl", per_read=3)
    got = capsys.readouterr()
    assert code == 0, got.err
    assert got.out == want
    assert got.err.startswith("rawinspect: capturing on lo (until Ctrl-C), filter 'tcp'")
    replayed = closing_line(want_err).replace(" read,", " captured,")
    assert closing_line(got.err) == replayed + "; 0 packets dropped by kernel"


def test_capture_table_and_written_file(capsys, tmp_path: Path) -> None:
    path = CAPTURES / "half-close.pcap"
    want, _ = replay(capsys, path, "--color", "never")
    written = tmp_path / "live.pcap"
    code, _ = capture(path, "--color", "never", "-w", str(written))
    assert code == 0
    assert capsys.readouterr().out == want
    again, _ = replay(capsys, written, "--color", "never")
    assert again == want


def test_capture_annotates_every_packet_of_the_pcapng(capsys, tmp_path: Path) -> None:
    from test_pictures import _pcapng_comments
    written = tmp_path / "live.pcapng"
    code, source = capture(CAPTURES / "half-close.pcap", "-w", str(written), "--annotate",
                           "--port", "1")
    assert code == 0
    comments = _pcapng_comments(written)
    assert len(comments) == len(source.packets)
    assert all(c and c.startswith("rawinspect conn ") for c in comments)


@pytest.mark.parametrize("args", [["--conn", "2"], ["--port", "80"], ["--host", "::1"],
                                  ["--host", "127.0.0.1", "--conn", "1"]])
def test_filters_count_shown_alike(capsys, args: list[str]) -> None:
    path = CAPTURES / "short-long.pcap"
    want, want_err = replay(capsys, path, "-T", "jsonl", *args)
    code, _ = capture(path, "-T", "jsonl", *args)
    got = capsys.readouterr()
    assert code == 0 and got.out == want
    line = closing_line(got.err)
    assert line == closing_line(want_err).replace(" read,", " captured,") + \
        "; 0 packets dropped by kernel"
    shown = len(want.splitlines())
    segments = int(line.split(" TCP segments")[0].rsplit(" ", 1)[1])
    if shown != segments:
        assert f", {shown} shown" in line


def test_filter_shown_appears_in_the_closing_line(capsys) -> None:
    """The defect: a filtered live capture said nothing of what it showed."""
    code, _ = capture(CAPTURES / "short-long.pcap", "-T", "jsonl", "--conn", "1")
    got = capsys.readouterr()
    assert code == 0
    assert f", {len(got.out.splitlines())} shown" in closing_line(got.err)


def test_conns_replace_the_segments_in_both(capsys) -> None:
    path = CAPTURES / "refused.pcap"
    want, _ = replay(capsys, path, "--conns", "-T", "jsonl")
    code, _ = capture(path, "--conns", "-T", "jsonl")
    got = capsys.readouterr().out
    assert code == 0
    strip = ("duration", "timing")  # the capture runs on past its last packet
    rows = [{k: v for k, v in json.loads(x).items() if k not in strip} for x in got.splitlines()]
    assert rows == [{k: v for k, v in json.loads(x).items() if k not in strip}
                    for x in want.splitlines()]


def test_explain_of_a_missing_connection_fails_in_both(capsys) -> None:
    path = CAPTURES / "handshake.pcap"
    assert cli.main(["replay", str(path), "--explain", "9"]) == 1
    code, _ = capture(path, "--explain", "9")
    err = capsys.readouterr().err
    assert code == 1 and err.count("--explain 9: no such connection") == 2


def test_count_stops_the_capture(capsys, tmp_path: Path) -> None:
    written = tmp_path / "five.pcap"
    code, source = capture(CAPTURES / "byte-stream.pcap", "-T", "jsonl", "-c", "5", "-w",
                           str(written))
    got = capsys.readouterr()
    assert code == 0
    records = map(json.loads, got.out.splitlines())
    assert [x["frame"] for x in records if "kind" not in x] == [1, 2, 3, 4, 5]
    assert closing_line(got.err).startswith("rawinspect: 5 packets captured, 5 TCP segments")
    assert len(FileSource(str(written)).packets) == 5


def test_ctrl_c_flushes_and_closes(capsys, tmp_path: Path) -> None:
    path = CAPTURES / "byte-stream.pcap"
    written = tmp_path / "stopped.pcap"

    def interrupt(reads: int) -> None:
        if reads == 4:
            os.kill(os.getpid(), signal.SIGINT)
    before = signal.getsignal(signal.SIGINT)
    code, source = capture(path, "-T", "jsonl", "-w", str(written), per_read=2,
                           on_read=interrupt)
    got = capsys.readouterr()
    assert code == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before
    assert 0 < source.pos < len(source.packets)
    lines = [x for x in map(json.loads, got.out.splitlines()) if "kind" not in x]
    assert [x["frame"] for x in lines] == list(range(1, source.pos + 1))
    assert f"rawinspect: {source.pos} packets captured" in got.err
    kept = FileSource(str(written))
    assert kept.packets == source.packets[:source.pos]
    assert kept.times == pytest.approx(source.times[:source.pos], abs=1e-9)


def test_usage_errors_come_before_the_source_opens(capsys) -> None:
    def never(*_: object) -> PacketSource:
        raise AssertionError("the source was opened")
    for argv in (["--strict"], ["-T", "svg"], ["--host", "nope"], ["--annotate"]):
        with pytest.raises(UsageError):
            capture_cmd.run_capture(capture_args(*argv), never)


def loop(source: FileSource, stats: Stats, limits: Limits, stop: StopFlag,
         output: Output) -> str:
    return capture_loop(source, None, make_tracker(DEFAULT_MSL, DEFAULT_HOLD), output.sink,
                        stats, limits, stop, clock=source.clock)


def test_loop_stops_on_the_flag_and_annotates_what_it_read(capsys) -> None:
    stop = StopFlag()
    source = FileSource(str(CAPTURES / "server-close.pcap"), per_read=1,
                        on_read=lambda n: setattr(stop, "signum", 2 if n == 3 else 0))
    stats = Stats(dropped=0)
    output = Output(capture_args("-T", "jsonl"), stats, live=True)
    assert loop(source, stats, Limits(), stop, output) == "signal"
    assert (stats.packets, stats.segments, stats.shown, stats.dropped) == (3, 3, 3, 0)
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_loop_count_and_duration(capsys) -> None:
    path = str(CAPTURES / "byte-stream.pcap")
    stats = Stats(dropped=0)
    output = Output(capture_args("-T", "jsonl"), stats, live=True)
    assert loop(FileSource(path), stats, Limits(count=7), StopFlag(), output) == "count"
    assert stats.packets == stats.shown == 7
    stats = Stats(dropped=0)
    output = Output(capture_args("-q"), stats, live=True)
    source = FileSource(path)
    assert loop(source, stats, Limits(duration=0.05), StopFlag(), output) == "duration"
    assert stats.packets == len(source.packets)


def test_capture_forgets_retired_connections_and_prints_the_same(capsys, realistic_mix,
                                                                  retirement) -> None:
    """A live capture's summaries and findings forget what the tracker retires (memory
    follows the open connections): with a short MSL, thousands retired, the same bytes
    as when nothing is forgotten."""
    path = realistic_mix(8_000, 3)
    for mode in (["--conns"], ["-T", "zeek"], ["--findings-only"], ["-T", "jsonl"]):
        outputs = []
        for switch in (retirement.on, retirement.off):
            switch()
            code, _ = capture(path, *mode, "--msl", "0.1", "--hold", "0.1")
            assert code == 0
            outputs.append(stable_lines(capsys.readouterr().out))
        assert outputs[0] == outputs[1], " ".join(mode)
        assert len(outputs[0]) > 20
    assert len(retirement.retired) > 500
