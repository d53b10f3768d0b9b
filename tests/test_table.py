"""The default table: fitted to the width, nothing that carries meaning cut, a header
line per connection naming its endpoints."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rawinspect.app.annotator import Annotator
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.render.table import TableRenderer, explanation, wrap_path

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def annotations(name: str) -> list:
    return Annotator().feed_all(read_segments(str(CAPTURES / f"{name}.pcap"), Stats()))


def table(anns: list, width: int, color: bool = False, batch: int = 7,
          time: str = "relative") -> str:
    """The table as a live capture writes it: in batches."""
    out = io.StringIO()
    r = TableRenderer(out, color, width, time)
    for i in range(0, len(anns), batch):
        r.write(anns[i:i + batch])
    r.close()
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 120, 200])
@pytest.mark.parametrize("name", ["simultaneous-close", "byte-stream", "handshake6"])
def test_fits_the_width_and_keeps_every_state_and_word(name, width):
    anns = annotations(name)
    text = table(anns, width)
    assert max(len(line) for line in text.splitlines()) <= width
    words = text.split()
    flat = "".join(words)
    for a in anns:
        for state in (a.client_path or [a.client_before]) + (a.server_path or [a.server_before]):
            assert state in flat
        for word in explanation(a).split():
            assert word in words, word


@pytest.mark.parametrize("width", [80, 120, 200])
def test_rows_line_up(width):
    """Every row's cells start at the header's columns (the layout is fixed up front)."""
    text = table(annotations("simultaneous-close"), width)
    header = text.splitlines()[0]
    starts = [header.index(h) for h in ("Flags", "Seq", "Client", "Server")]
    rows = [line for line in text.splitlines() if re.match(r"\d+ ", line)]
    assert rows
    for line in rows:
        assert all(line[s - 1] == " " and line[s] != " " for s in starts), line


def test_explanation_in_a_column_when_wide_below_when_narrow():
    anns = annotations("handshake")
    wide, narrow = table(anns, 200), table(anns, 80)
    assert "Why" in wide.splitlines()[0] and "Why" not in narrow.splitlines()[0]
    note = anns[0].note.split(";")[0]
    assert any(re.match(r"1 .*" + re.escape(note), line) for line in wide.splitlines())
    assert any(line.startswith("      " + note) for line in narrow.splitlines())


def test_a_header_line_names_each_connection_once():
    for name in ("handshake6", "simultaneous-close"):
        anns = annotations(name)
        text = table(anns, 80)
        conns = {a.conn: (a.client, a.server) for a in reversed(anns)}
        for conn, (client, server) in conns.items():
            assert text.count(f"conn {conn}: client {client} → server {server}\n") == 1
    assert "[::1]" in table(annotations("handshake6"), 80)


def test_a_path_wraps_after_an_arrow():
    path = ["ESTABLISHED", "FIN_WAIT_1", "CLOSING"]
    assert wrap_path("ESTABLISHED", path, 12) == ["ESTABLISHED→", "FIN_WAIT_1→", "CLOSING"]
    assert wrap_path("ESTABLISHED", path, 22) == ["ESTABLISHED→", "FIN_WAIT_1→CLOSING"]
    assert wrap_path("LISTEN", None, 12) == ["LISTEN"]


def test_color_paints_without_moving_anything():
    anns = annotations("abortive-close")
    plain, colored = table(anns, 80), table(anns, 80, color=True)
    assert "\x1b[" not in plain and "\x1b[31m" in colored
    assert ANSI.sub("", colored) == plain


def times(text: str) -> list[str]:
    """The Time cells of the rows, in order."""
    header = text.splitlines()[0]
    start, end = header.index("Time"), header.index("Conn")
    return [line[start:end].strip() for line in text.splitlines() if re.match(r"\d+ ", line)]


@pytest.mark.parametrize("width", [120, 200])
@pytest.mark.parametrize("mode", ["relative", "absolute", "delta", "conn-delta"])
def test_every_time_mode_fits_and_lines_up(mode, width):
    anns = annotations("short-long")
    text = table(anns, width, time=mode)
    assert max(len(line) for line in text.splitlines()) <= width
    header = text.splitlines()[0]
    starts = [header.index(h) for h in ("Conn", "Flags", "Client", "Server")]
    for line in (line for line in text.splitlines() if re.match(r"\d+ ", line)):
        assert all(line[s - 1] == " " and line[s] != " " for s in starts), line
    assert len(times(text)) == len(anns)


def test_time_modes_count_from_where_they_say():
    anns = annotations("short-long")
    ts = [a.seg.ts for a in anns]
    rel = [float(t) for t in times(table(anns, 200))]
    assert rel == pytest.approx([t - ts[0] for t in ts], abs=1e-6)
    delta = [float(t) for t in times(table(anns, 200, time="delta"))]
    assert delta == pytest.approx([0] + [b - a for a, b in zip(ts, ts[1:])], abs=1e-6)
    conn = [float(t) for t in times(table(anns, 200, time="conn-delta"))]
    last: dict[int, float] = {}
    want = []
    for a in anns:
        want.append(a.seg.ts - last.get(a.conn, a.seg.ts))
        last[a.conn] = a.seg.ts
    assert conn == pytest.approx(want, abs=1e-6)
    assert len({a.conn for a in anns}) > 1 and conn != delta


def test_absolute_time_is_local_wall_clock(monkeypatch):
    import time
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        anns = annotations("handshake")
        stamps = times(table(anns, 200, time="absolute"))
        want = datetime.fromtimestamp(anns[0].seg.ts, timezone.utc)
        assert stamps[0] == want.strftime("%Y-%m-%d %H:%M:%S.%f")
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", s)
                   for s in stamps)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_only_absolute_time_widens_the_column():
    anns = annotations("handshake")
    heads = {mode: table(anns, 120, time=mode).splitlines()[0]
             for mode in ("relative", "delta", "conn-delta", "absolute")}
    assert len({h for m, h in heads.items() if m != "absolute"}) == 1
    assert heads["absolute"].index("Conn") - heads["relative"].index("Conn") == 26 - 9


def test_verbose_rows_lead_with_the_scaled_window_and_the_options():
    """-v: Wireshark's ``Win=… MSS=… SACK_PERM … WS=…`` before the explanation."""
    anns = annotations("handshake")
    syn, ack = explanation(anns[0], verbose=True), explanation(anns[2], verbose=True)
    assert re.match(r"Win=65495 MSS=65495 SACK_PERM TSval=\d+ TSecr=0 WS=1024; client: "
                    r"connect\(\) sends SYN", syn), syn
    assert ack.startswith(f"Win={anns[2].win_scaled} TSval=") and anns[2].win_scaled > 65535
    assert explanation(anns[0]) == anns[0].note    # not without -v
    out = io.StringIO()
    r = TableRenderer(out, False, 80, "relative", True)
    r.write(anns)
    assert all(len(line) <= 80 for line in out.getvalue().splitlines())
    assert out.getvalue().count("Win=") == len(anns)
