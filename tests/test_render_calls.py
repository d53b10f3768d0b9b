"""Every output format shows the traced programs' calls among the segments, on the side
that made them, with their text and cause; and the call that caused a state change."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rawinspect.app.annotator import Annotator
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.core.annotation import Annotation
from rawinspect.core.call import EXIT, SIGNAL, Call
from rawinspect.render import FORMATS, RenderOptions
from rawinspect.render.jsonl import JsonlRenderer
from rawinspect.render.ladder import LadderRenderer
from rawinspect.render.mermaid import MermaidRenderer
from rawinspect.render.svg import SvgRenderer, picture
from rawinspect.render.table import TableRenderer

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SVG = "{http://www.w3.org/2000/svg}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CAUSE = "FIN_WAIT_1 ← close(fd 3), pid 812, client"


def annotations(name: str = "handshake") -> list[Annotation]:
    return Annotator().feed_all(read_segments(str(CAPTURES / f"{name}.pcap"), Stats()))


def timeline(anns: list[Annotation]) -> list[list[Annotation] | list[Call]]:
    """handshake.pcap's ten segments and the calls of its programs, in time order: the
    batches alternate, as the output stage writes them. Frame 8 is the client's FIN."""
    a = anns
    client, server = a[0].client, a[0].server

    def call(ts: float, pid: int, name: str, **kw: object) -> Call:
        comm = "client.py" if pid == 812 else "server.py"
        return Call(ts=ts, pid=pid, comm=comm, name=name, **kw)  # type: ignore[arg-type]

    connect = call(a[0].seg.ts - 50e-6, 812, "connect", fd=3, args=server, ret=0, conn=1,
                   side="client", local=client, peer=server)
    accept = call(a[2].seg.ts + 5e-6, 900, "accept", fd=3, ret=4, conn=1, side="server",
                  local=server, peer=client)
    write = call(a[5].seg.ts + 2e-6, 900, "write", fd=4, args="19 bytes", ret=-1,
                 errno="EPIPE", conn=1, side="server", cause="← RST, frame 6")
    sigpipe = Call(kind=SIGNAL, ts=a[5].seg.ts + 3e-6, pid=900, comm="server.py",
                   name="SIGPIPE", args="default: dies")
    bind = call(a[5].seg.ts + 4e-6, 901, "bind", fd=3, args="127.0.0.1:9", ret=-1,
                errno="EADDRINUSE")
    close = call(a[7].seg.ts - 3e-6, 812, "close", fd=3, ret=0, conn=1, side="client")
    died = Call(kind=EXIT, ts=a[9].seg.ts + 1e-5, pid=900, comm="server.py", name="exit",
                args="SIGPIPE")
    a[7].cause = CAUSE
    return [[connect], a[:3], [accept], a[3:6], [write, sigpipe, bind], a[6:7], [close],
            a[7:], [died]]


def feed(renderer: object, batches: list[list[Annotation] | list[Call]]) -> None:
    for batch in batches:
        if batch and isinstance(batch[0], Call):
            renderer.write_calls(batch)  # type: ignore[attr-defined]
        else:
            renderer.write(batch)  # type: ignore[attr-defined]
    renderer.close()  # type: ignore[attr-defined]


def calls_of(batches: list[list[Annotation] | list[Call]]) -> list[Call]:
    return [c for b in batches for c in b if isinstance(c, Call)]


# --- table ---------------------------------------------------------------------------

def table(batches: list, width: int, color: bool = False, time: str = "relative") -> str:
    out = io.StringIO()
    feed(TableRenderer(out, color, width, time), batches)
    return out.getvalue()


@pytest.mark.parametrize("width", [120, 200])
def test_table_calls_are_rows_in_time_order_under_their_side(width):
    batches = timeline(annotations())
    lines = table(batches, width).splitlines()
    header = lines[0]
    client_col, server_col = header.index("Client"), header.index("Server")
    conn_col = header.index("Conn")
    assert max(len(line) for line in lines) <= width
    order = [m.group(1) for line in lines if (m := re.match(r"(\d+|·) ", line))]
    assert order == ["·", "1", "2", "3", "·", "4", "5", "6", "·", "·", "·", "7", "·", "8",
                     "9", "10", "·"]
    rows = {c.name: next(line for line in lines if f"] {c.text()[:12]}" in line)
            for c in calls_of(batches)}
    assert rows["connect"].index("[812 client.py] connect(fd 3,") == client_col
    assert rows["close"].index("[812 client.py] close(fd 3) = 0") == client_col
    assert rows["accept"].index("[900 server.py] accept(fd 3) = 4") == server_col
    assert rows["write"].index("[900 server.py] write(fd 4, 19 bytes) = -1 EPIPE") == \
        server_col
    # Side unknown, no connection: under the Client column, the Conn column empty.
    for name in ("SIGPIPE", "bind", "exit"):
        assert rows[name].index("[90") == client_col, name
        assert rows[name].startswith("· ") and not rows[name][conn_col:conn_col + 4].strip()
    assert rows["connect"][conn_col:conn_col + 4].strip() == "1"
    text = " ".join(table(batches, width).split())
    assert "= -1 EPIPE ← RST, frame 6" in text
    assert "[900 server.py] killed by SIGPIPE" in text
    assert "bind(fd 3, 127.0.0.1:9) = -1 EADDRINUSE" in text
    frame8 = text[text.index(" 8 "):text.index(" 9 ")]
    assert f"· {CAUSE}" in frame8, "the state change's cause ends the explanation"


def test_table_narrow_names_the_call_in_its_column_and_wraps_the_text_below():
    batches = timeline(annotations())
    text = table(batches, 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    client_col = lines[0].index("Client")
    server_col = lines[0].index("Server")
    i = next(i for i, line in enumerate(lines) if line.endswith("write()"))
    assert lines[i].index("write()") == server_col
    assert lines[i + 1].startswith("      [900 server.py] write(fd 4, 19 bytes) = -1 EPIPE")
    j = next(i for i, line in enumerate(lines) if line.endswith("connect()"))
    assert lines[j].index("connect()") == client_col
    assert "SIGPIPE" in lines[i + 2] and lines[i + 2].index("SIGPIPE") == client_col


def test_table_without_the_call_rows_is_the_table_without_calls():
    anns = annotations()
    batches = timeline(anns)[1:]  # the first row is a segment: the same time 0
    anns[7].cause = ""
    with_calls = table(batches, 200).splitlines()   # no call's text wraps at 200
    assert sum(line.startswith("·") for line in with_calls) == 6
    assert [line for line in with_calls if not line.startswith("·")] == \
        table([anns], 200).splitlines()


@pytest.mark.parametrize("time", ["delta", "conn-delta"])
def test_table_deltas_count_from_segments_only(time):
    anns = annotations()
    batches = timeline(anns)
    seg_times = [line.split()[1] for line in table(batches, 120, time=time).splitlines()
                 if re.match(r"\d+ ", line)]
    assert seg_times == [line.split()[1] for line in table([anns], 120, time=time).splitlines()
                         if re.match(r"\d+ ", line)]
    write = next(line for line in table(batches, 120, time=time).splitlines()
                 if "write(" in line)
    assert write.split()[1] == "0.000002"


def test_table_a_call_that_waited_is_two_rows_at_their_times():
    anns = annotations()
    t0 = anns[0].seg.ts
    accept = Call(ts=t0 - 1.0, end=anns[2].seg.ts + 1e-6, pid=900, comm="server.py",
                  name="accept", fd=3, ret=4, conn=1, side="server")
    entered, returned = accept.split()
    lines = table([[entered], anns[:3], [returned], anns[3:]], 200).splitlines()
    rows = [line for line in lines if line.startswith("·")]
    assert rows[0].split()[1] == "0.000000" and "accept(fd 3) ... waits" in rows[0]
    assert rows[1].split()[1] == f"{anns[2].seg.ts + 1e-6 - (t0 - 1.0):.6f}"
    assert "... accept(fd 3) = 4 after 1.000" in rows[1]


def test_table_colours_failed_calls_red_and_signals_magenta():
    text = table(timeline(annotations()), 120, color=True)
    write = next(line for line in text.splitlines() if "write(" in line)
    assert "\x1b[31m[900 server.py] write(" in write
    sig = next(line for line in text.splitlines() if "SIGPIPE (" in line)
    assert "\x1b[35m[900 server.py] SIGPIPE" in sig
    connect = next(line for line in text.splitlines() if "connect(" in line)
    assert "\x1b[" not in connect
    assert ANSI.sub("", text) == table(timeline(annotations()), 120)


# --- jsonl ---------------------------------------------------------------------------

def jsonl_lines(batches: list) -> list[str]:
    out = io.StringIO()
    feed(JsonlRenderer(out), batches)
    return out.getvalue().splitlines()


def test_jsonl_one_record_per_call_and_segments_unchanged():
    anns = annotations()
    plain = jsonl_lines([anns])
    anns[7].cause = ""
    batches = timeline(annotations())
    lines = jsonl_lines(batches)
    records = [json.loads(line) for line in lines]
    calls = [r for r in records if "kind" in r]
    assert [c["text"] for c in calls] == [c.text() for c in calls_of(batches)]
    for rec, call in zip(calls, calls_of(batches)):
        assert rec == {**call.as_dict(), "text": call.text()}
        assert list(rec)[0] == "kind" and list(rec)[-1] == "text"
    assert [c["kind"] for c in calls] == ["call", "call", "call", "signal", "call", "call",
                                          "exit"]
    assert calls[2]["errno"] == "EPIPE" and calls[2]["cause"] == "← RST, frame 6"
    assert "conn" not in calls[3] and calls[1]["side"] == "server"
    # Order: each call between the segments it falls between.
    order = [r.get("frame", r.get("name")) for r in records]
    assert order == ["connect", 1, 2, 3, "accept", 4, 5, 6, "write", "SIGPIPE", "bind", 7,
                     "close", 8, 9, 10, "exit"]
    segments = [line for line, r in zip(lines, records) if "kind" not in r]
    # Byte for byte the same, but for "cause" at the end of frame 8's record.
    assert segments[:7] + segments[8:] == plain[:7] + plain[8:]
    eight = json.loads(segments[7])
    assert list(eight)[-1] == "cause" and eight["cause"] == CAUSE
    del eight["cause"]
    assert eight == json.loads(plain[7])
    assert all("cause" not in json.loads(line) for line in plain)


# --- ladder --------------------------------------------------------------------------

def ladder(batches: list, **kw: object) -> str:
    out = io.StringIO()
    feed(LadderRenderer(out, color=False, **kw), batches)  # type: ignore[arg-type]
    return out.getvalue()


def test_ladder_labels_calls_on_their_side_between_the_arrows():
    text = ladder(timeline(annotations()))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    arrow_frames = [m.group(1) for line in lines if (m := re.match(r"\s*(\d+) ", line))]
    assert arrow_frames == [str(i) for i in range(1, 11)]

    def at(needle: str) -> int:
        return next(i for i, line in enumerate(lines) if needle in line)
    # The connect() waited for its connection's header, then came before the first arrow.
    assert at("conn 1:") < at("connect(fd 3") < at("   1 ")
    assert at("   3 ") < at("accept(fd 3) = 4") < at("   4 ")
    assert at("   6 ") < at("write(fd 4, 19") < at("   7 ") < at("close(fd 3) = 0") < at("   8 ")
    left = lines[at("close(fd 3) = 0")]
    assert re.search(r"│ close\(fd 3\) = 0 \[812 client\.py\]", left)
    # The server's call, right-aligned against the server's lifeline, wrapped in the lane.
    i = at("accept(fd 3) = 4")
    assert all(line.endswith(" │") and line[-3] != " " for line in lines[i:i + 2])
    inside = " ".join(" ".join(line.split("│")[1].split()) for line in lines[i:i + 2])
    assert inside == f"{calls_of(timeline(annotations()))[1].text()} [900 server.py]"
    assert "EPIPE ← RST, frame 6" in " ".join(text.split())
    assert f"· {CAUSE}" in " ".join(text.split())
    # Calls of no connection: listed at the end, in time order.
    tail = text[text.index("process calls"):]
    assert tail.index("SIGPIPE (default: dies) [900 server.py]") < tail.index(
        "bind(fd 3, 127.0.0.1:9) = -1 EADDRINUSE [901 server.py]") < tail.index(
        "killed by SIGPIPE")
    assert at("process calls") > at("  10 ")


def test_ladder_ascii_stays_ascii_and_in_the_width():
    text = ladder(timeline(annotations()), ascii_only=True, width=80)
    assert text.isascii() and max(len(line) for line in text.splitlines()) <= 80
    assert "EPIPE <- RST" in text
    assert all(line.rstrip().endswith("|") for line in text.splitlines()
               if "accept(fd 3)" in line)


def test_ladder_a_call_of_another_connection_brings_back_its_header():
    anns = annotations("short-long")
    one = [a for a in anns if a.conn == 1]
    two = [a for a in anns if a.conn == 2]
    late = Call(ts=two[-1].seg.ts + 1, pid=7, comm="srv", name="close", fd=5, ret=0,
                conn=1, side="server")
    text = ladder([one, two, [late]])
    assert text.count("conn 1:") == 2 and text.index("conn 2:") < text.rindex("conn 1:")
    after = text[text.rindex("conn 1:"):].splitlines()
    assert after[1].split()[0] == one[-1].client_after   # the states it is in now
    assert "close(fd 5) = 0 [7 srv]" in after[2]


# --- mermaid -------------------------------------------------------------------------

def test_mermaid_notes_calls_on_their_side_in_order():
    out = io.StringIO()
    batches = timeline(annotations())
    feed(MermaidRenderer(out), batches)
    text = out.getvalue()
    diagram = text[text.index("```mermaid"):text.rindex("```")]
    lines = diagram.splitlines()

    def at(needle: str) -> int:
        return next(i for i, line in enumerate(lines) if needle in line)
    assert lines[at("connect(")].startswith("    Note left of C: connect(fd 3, ")
    assert at("connect(") < at("C->>S: 1:")
    accept = calls_of(batches)[1]
    assert lines[at("accept(")] == f"    Note right of S: {accept.text()} [900 server.py]"
    assert at("S->>C: 6:") < at("write(") < at("C->>S: 7:") < at("close(") < at("C->>S: 8:")
    write = at("write(")
    assert lines[write - 1].strip().startswith("rect ") and lines[write + 1].strip() == "end"
    assert "EPIPE ← RST, frame 6" in lines[write]
    assert f"    Note left of C: {CAUSE}" in lines
    assert "bind(" not in diagram and "SIGPIPE" not in diagram
    tail = text[text.rindex("```"):]
    assert "process calls" in tail and "- bind(fd 3, 127.0.0.1:9) = -1 EADDRINUSE" in tail
    assert "- killed by SIGPIPE [900 server.py]" in tail


def test_mermaid_escapes_call_text():
    out = io.StringIO()
    anns = annotations()
    odd = Call(ts=anns[0].seg.ts, pid=5, comm="a;b#c", name="setsockopt", fd=3,
               args="SOL_SOCKET; SO_LINGER", ret=0, conn=1, side="")
    feed(MermaidRenderer(out), [anns[:1], [odd], anns[1:]])
    note = next(line for line in out.getvalue().splitlines() if "setsockopt" in line)
    assert note.startswith("    Note over C,S: ") and ";" not in note and "#" not in note


# --- svg -----------------------------------------------------------------------------

def test_svg_draws_calls_as_marks_on_their_side_among_the_arrows():
    batches = timeline(annotations())
    events = [e for b in batches for e in b
              if isinstance(e, Annotation) or e.conn is not None]
    root = ET.fromstring(picture(events))
    rows = []
    for el in root.iter():
        if el.get("class") == "segment":
            rows.append(("seg", el.get("data-frame"), float(el.get("y1"))))
        elif el.get("class") == "call":
            circle = el.find(f"{SVG}circle")
            rows.append((el.get("data-side"), el.find(f"{SVG}title").text,
                         float(circle.get("cy"))))
    rows.sort(key=lambda r: r[2])
    assert len({y for *_, y in rows}) == len(rows) == 14, "a row each"
    names = [r[1] if r[0] == "seg" else r[1].split("(")[0] for r in rows]
    assert names == ["connect", "1", "2", "3", "accept", "4", "5", "6", "write", "7",
                     "close", "8", "9", "10"]
    xs = {el.find(f"{SVG}title").text.split("(")[0]: float(el.find(f"{SVG}circle").get("cx"))
          for el in root.iter() if el.get("class") == "call"}
    client_x = min(float(e.get("x1")) for e in root.iter(f"{SVG}line")
                   if e.get("class") == "segment")
    assert xs["connect"] == xs["close"] == client_x
    assert xs["accept"] == xs["write"] > client_x
    write = next(el for el in root.iter() if el.get("class") == "call"
                 and "write" in el.find(f"{SVG}title").text)
    assert write.get("data-failed") == "true" and write.find(f"{SVG}circle").get("fill") == \
        "#c00"
    words = " ".join(t.text for t in write.iter(f"{SVG}text")).split()
    assert " ".join(words).startswith("write(fd 4, 19 bytes) = -1 EPIPE ← RST, frame 6")
    legend = " ".join(e.text for e in root.iter(f"{SVG}text")
                      if e.get("class") == "explanation")
    assert CAUSE in " ".join(legend.split()), "the cause is in the numbered explanations"
    lowest = max(float(t.get("y")) for t in root.iter(f"{SVG}text")
                 if t.get("class") == "call-label")
    assert lowest < min(float(e.get("y")) for e in root.iter(f"{SVG}text")
                        if e.get("class") == "explanation")


def test_svg_renderer_skips_calls_of_no_connection_and_says_so(tmp_path, capsys):
    path = tmp_path / "calls.svg"
    feed(SvgRenderer(str(path)), timeline(annotations()))
    root = ET.parse(path).getroot()
    titles = [el.find(f"{SVG}title").text for el in root.iter() if el.get("class") == "call"]
    assert len(titles) == 4 and not any("bind" in t or "SIGPIPE" in t for t in titles)
    assert "3 calls on no connection drawn" in capsys.readouterr().err


def test_svg_without_calls_is_unchanged():
    anns = annotations()
    assert picture(anns) == picture([e for b in timeline(annotations()) for e in b
                                     if isinstance(e, Annotation)]).replace(
        f" · {CAUSE}", "")


# --- every format --------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.segments])
def test_every_per_segment_format_takes_calls(name, tmp_path, capsys):
    out = io.StringIO()
    factory = FORMATS[name].segments
    assert factory is not None
    renderer = factory(out, RenderOptions(output=str(tmp_path / "x.svg")))
    feed(renderer, timeline(annotations()))
    shown = out.getvalue() or "".join(p.read_text() for p in tmp_path.glob("*.svg"))
    assert "EADDRINUSE" in shown or name == "svg"
    assert "EPIPE" in shown
