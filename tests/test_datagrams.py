"""UDP datagrams beside the TCP segments: decoded, put in frame order behind held segments,
shown in every format, filtered, counted, and the same through the API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rawinspect
from frames import eth, ipv4, pcap, tcp, udp
from rawinspect.app.pipeline import Datagrams, Stats, decode_records, make_tracker, run
from rawinspect.core.annotation import Annotation
from rawinspect.core.datagram import NO_STATES, Datagram

ROOT = Path(__file__).resolve().parent.parent
LO = "127.0.0.1"


def rawinspect_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawinspect", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def _udp(t: float, payload: bytes, sport: int = 5000, dport: int = 6000) -> tuple[float, bytes]:
    return t, eth(ipv4(udp(payload, sport, dport), LO, LO, proto=17))


def _tcp(t: float, sport: int, dport: int, seq: int, ack: int, flags: int) -> tuple[float, bytes]:
    return t, eth(ipv4(tcp(sport, dport, seq, ack, flags), LO, LO))


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A handshake with a datagram after the SYN (held until the SYN+ACK answers it),
    one after the SYN+ACK, one after the last ACK."""
    frames = [_tcp(1.0, 40000, 80, 100, 0, 0x02),
              _udp(1.001, b"message 1"),
              _tcp(1.002, 80, 40000, 500, 101, 0x12),
              _udp(1.003, b"reply\x00\x01", 6000, 5000),
              _tcp(1.004, 40000, 80, 101, 501, 0x10),
              _udp(1.005, b"late")]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(pcap(frames))
    return path


def _rows(path: Path) -> list[object]:
    """The pipeline's output in the order the sinks got it."""
    got: list[object] = []
    stats = Stats()

    def sink(anns: list[Annotation]) -> bool:
        got.extend(anns)
        return True
    queue = Datagrams(got.extend)
    from rawinspect.sources.capfile import open_capture
    run(decode_records(open_capture(str(path)), stats, queue.add), make_tracker(60, 0.5),
        sink, stats, queue)
    assert (stats.packets, stats.segments, stats.datagrams) == (6, 3, 3)
    return got


def test_datagrams_keep_frame_order_behind_a_held_syn(mixed: Path) -> None:
    rows = _rows(mixed)
    frames = [r.frame if isinstance(r, Datagram) else r.seg.frame for r in rows]
    assert frames == [1, 2, 3, 4, 5, 6]
    assert [type(r).__name__ for r in rows] == ["Annotation", "Datagram"] * 3


def test_hand_on_stops_at_the_oldest_held_frame() -> None:
    got: list[int] = []
    queue = Datagrams(lambda ds: got.extend(d.frame for d in ds))
    for frame in (2, 5):
        queue.add(Datagram(frame, 0.0, 1, 2, 0, b"", bytes(12)))
    assert queue.hand_on([], lambda anns: True, held=3)
    assert got == [2] and [d.frame for d in queue.queue] == [5]
    queue.hand_on([], lambda anns: True, held=None)
    assert got == [2, 5]


def test_every_format_shows_the_datagrams(mixed: Path, tmp_path: Path) -> None:
    table = rawinspect_cli("replay", str(mixed), "--width", "120")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    udp_rows = [line for line in lines if line.split()[:1] in (["2"], ["4"], ["6"])]
    assert all(" UDP " in row for row in udp_rows) and len(udp_rows) == 3
    assert '127.0.0.1:5000 > 127.0.0.1:6000 "message 1"' in table.stdout
    words = " ".join(table.stdout.split())
    assert words.count(NO_STATES) == 1   # said once, on the first
    assert "3 TCP segments, 1 connection, 3 UDP datagrams" in table.stderr

    jsonl = rawinspect_cli("replay", str(mixed), "-T", "jsonl")
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    dgrams = [r for r in records if r.get("kind") == "datagram"]
    assert [r["frame"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert dgrams[1] == {"kind": "datagram", "frame": 4, "ts": 1.003, "proto": "udp",
                         "src": LO, "sport": 6000, "dst": LO, "dport": 5000, "len": 7,
                         "payload": b"reply\x00\x01".hex(),
                         "text": 'UDP 127.0.0.1:6000 > 127.0.0.1:5000: length 7 '
                                 '"reply\\x00\\x01"', "why": NO_STATES}

    ladder = rawinspect_cli("replay", str(mixed), "-T", "ladder", "--ascii").stdout
    assert "udp: 127.0.0.1:5000 <-> 127.0.0.1:6000" in ladder
    assert re.search(r'\|<-+UDP len 7 "reply\\x00\\x01"--\|', ladder)   # right to left

    mermaid = rawinspect_cli("replay", str(mixed), "-T", "mermaid").stdout
    assert "udp: 127.0.0.1:5000 ⇄ 127.0.0.1:6000" in mermaid
    assert 'B-)A: 4: UDP length 7 "reply\\x00\\x01"' in mermaid

    svg = rawinspect_cli("replay", str(mixed), "-o", "x.svg", cwd=tmp_path)
    assert "x.svg, x-udp1.svg" in svg.stderr
    picture = (tmp_path / "x-udp1.svg").read_text()
    assert picture.count("marker-end") == 3 and "6: UDP len 4 &quot;late&quot;" in picture

    html = rawinspect_cli("replay", str(mixed), "-o", "x.html", cwd=tmp_path)
    assert html.returncode == 0
    page = (tmp_path / "x.html").read_text()
    data = json.loads(page.split('id="data">', 1)[1].split("</script>", 1)[0])
    assert data["meta"]["datagrams"][0] == ('2  0.001000  UDP 127.0.0.1:5000 > 127.0.0.1:6000: '
                                            'length 9 "message 1"')
    assert len(data["meta"]["datagrams"]) == 3


@pytest.mark.parametrize("args,frames", [
    (["--port", "6000"], [2, 4, 6]),
    (["--port", "80"], [1, 3, 5]),
    (["--conn", "1"], [1, 3, 5]),
    (["--host", "127.0.0.1"], [1, 2, 3, 4, 5, 6]),
])
def test_display_filters_apply_to_datagrams(mixed: Path, args: list[str],
                                            frames: list[int]) -> None:
    out = rawinspect_cli("replay", str(mixed), "-T", "jsonl", *args).stdout
    assert [json.loads(line)["frame"] for line in out.splitlines()] == frames


def test_connection_summaries_list_the_udp_flows_as_zeek_does(mixed: Path) -> None:
    out = rawinspect_cli("replay", str(mixed), "--conns")
    assert out.stdout.splitlines()[-1] == ("  127.0.0.1:5000 → 127.0.0.1:6000: 2 datagrams/13 "
                                           "bytes, back 1/7, 0.004000 s, SF Dd")
    assert "3 UDP datagrams" in out.stderr
    zeek = rawinspect_cli("replay", str(mixed), "-T", "zeek").stdout.splitlines()
    udp_row = next(line.split("\t") for line in zeek if "\tudp\t" in line)
    assert udp_row[2:12] == [LO, "5000", LO, "6000", "udp", "-", "0.004000", "13", "7", "SF"]
    assert (udp_row[15], udp_row[16], udp_row[18]) == ("Dd", "2", "1")
    flows = [json.loads(line) for line in
             rawinspect_cli("replay", str(mixed), "--conns", "-T", "jsonl").stdout.splitlines()]
    assert flows[-1]["kind"] == "udp_flow" and flows[-1]["orig_pkts"] == 2


def test_the_api_gives_the_datagrams_as_replay_does(mixed: Path) -> None:
    capture = rawinspect.read(mixed)
    assert [d.frame for d in capture.datagrams] == [2, 4, 6]
    assert capture.jsonl() == rawinspect_cli("replay", str(mixed), "-T", "jsonl").stdout
    assert [d.frame for d in capture.on(port=6000).datagrams] == [2, 4, 6]
    assert capture.on(port=80).datagrams == []


def test_the_bundled_datagrams_capture_shows_three_whole_messages() -> None:
    capture = rawinspect.read(ROOT / "captures" / "datagrams.pcap")
    assert [d.length for d in capture.datagrams] == [3, 7, 17]
    sends = [c for c in capture.calls if c.name == "sendto" and c.side == ""]
    recvs = [c for c in capture.calls if c.name == "recvfrom" and c.side == ""]
    assert [c.ret for c in sends] == [c.ret for c in recvs] == [3, 7, 17]
    # each sendto() is followed by its datagram, before the next call
    order = [("d", e.length) if isinstance(e, Datagram) else ("c", e.ret)
             for e in capture.events if isinstance(e, Datagram) or e in sends]
    assert order == [("c", 3), ("d", 3), ("c", 7), ("d", 7), ("c", 17), ("d", 17)]


def test_the_scenario_describes_its_datagrams_and_findings() -> None:
    out = rawinspect_cli("scenarios", "datagrams").stdout
    assert "UDP datagrams on the wire: 3, of 3+7+17 bytes, one per message" in out
    assert "must find message-boundaries; must not find nagle" in out


def test_live_capture_puts_datagrams_where_replay_does(mixed: Path, capsys) -> None:
    """The live path (capture loop, the tracker's holds expiring by the clock) gives the
    datagram behind the held SYN the same place as replay does."""
    from file_source import FileSource
    from rawinspect.app import capture_cmd, cli
    want = rawinspect_cli("replay", str(mixed), "-T", "jsonl").stdout
    source = FileSource(str(mixed), 1, None)
    args = cli.build_parser().parse_args(["capture", "--duration", "1", "-T", "jsonl"])
    args.command_argv = []
    assert capture_cmd.run_capture(args, lambda *_: source, source.clock) == 0
    out = capsys.readouterr()
    assert out.out == want
    assert "3 TCP segments, 1 connection, 3 UDP datagrams" in out.err


@pytest.mark.parametrize("calls_first", [True, False])
def test_a_call_and_its_datagram_at_the_same_time_come_call_first(calls_first: bool) -> None:
    """As for segments: at equal times the call comes first (it sent the datagram), whether
    the calls reached the timeline before the packets (replay) or after them (live)."""
    from rawinspect.app.timeline import Timeline
    from rawinspect.core.call import Call
    rows: list[object] = []
    timeline = Timeline(lambda anns: rows.extend(anns) is None, rows.extend, rows.extend)
    call = Call(ts=5.000001, end=5.000002, pid=7, comm="p", name="sendto", fd=4,
                args="3 bytes", ret=3)
    datagram = Datagram(1, 5.000001, 40000, 9, 3, b"one", bytes(12))
    if calls_first:
        timeline.add([], [call])
        timeline.add_datagrams([datagram])
    else:
        timeline.add_datagrams([datagram])
        timeline.add([], [call])
    timeline.finish()
    assert rows == [call, datagram]
