"""Ladder, Mermaid and SVG pictures and annotated pcapng, checked structurally."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rawinspect.app import cli
from rawinspect.render.ladder import LadderRenderer
from rawinspect.render.mermaid import MermaidRenderer
from rawinspect.render.svg import picture
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.scenarios import all_scenarios
from rawinspect.app.annotator import Annotator

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
SVG = "{http://www.w3.org/2000/svg}"


def annotations(name: str, conn: int | None = None) -> list:
    anns = Annotator().feed_all(read_segments(str(CAPTURES / f"{name}.pcap"), Stats()))
    return [a for a in anns if conn is None or a.conn == conn]


def ladder(anns, **kw) -> str:
    out = io.StringIO()
    r = LadderRenderer(out, color=False, **kw)
    r.write(anns)
    r.close()
    return out.getvalue()


def test_ladder_arrows_states_and_labels_in_order():
    anns = annotations("handshake")
    text = ladder(anns)
    lines = text.splitlines()
    assert sum("►" in line for line in lines) == sum(a.from_client for a in anns)
    assert sum("◄" in line for line in lines) == sum(not a.from_client for a in anns)
    # Frame numbers start arrows, in order.
    frames = [int(m.group(1)) for line in lines if (m := re.match(r"\s*(\d+) ", line))]
    assert frames == [a.seg.frame for a in anns]
    # The client's states appear, on the left, in the lesson's order.
    left = [line[5:16].strip() for line in lines if "│" in line and line[5:16].strip()]
    assert left[:1] == ["CLOSED"] and left[-1] == "TIME_WAIT"
    assert left.index("SYN_SENT") < left.index("ESTABLISHED") < left.index("FIN_WAIT_1")
    right = [line.split("│")[2].strip() for line in lines if line.count("│") == 2]
    right = [r for r in right if r]
    assert right[0] == "LISTEN" and right[-1] == "CLOSED" and "LAST_ACK" in right
    assert "S. 0 ack 1" in text and "F. 8 ack 20" in text


def test_ladder_fits_80_columns_and_ascii_is_ascii():
    anns = annotations("byte-stream")
    for ascii_only in (False, True):
        text = ladder(anns, ascii_only=ascii_only, width=80)
        assert max(len(line) for line in text.splitlines()) <= 80
    text = ladder(anns, ascii_only=True, width=80)
    assert text.isascii() and "->" in text or ">" in text


@pytest.mark.parametrize("width", [80, 120])
def test_ladder_wraps_explanations_without_cutting(width):
    anns = annotations("handshake")
    text = ladder(anns, width=width)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    words = text.split()
    assert all(word in words for a in anns for word in a.note.split())


def test_ladder_shows_every_state_of_a_crossing_fin():
    text = ladder(annotations("simultaneous-close", conn=1))
    assert "FW1→CLOSING" in text


def test_mermaid_is_one_sequence_diagram_per_connection():
    out = io.StringIO()
    r = MermaidRenderer(out)
    anns = annotations("short-long")
    r.write(anns)
    r.close()
    text = out.getvalue()
    conns = sorted({a.conn for a in anns})
    assert text.count("```mermaid") == len(conns) == text.count("sequenceDiagram")
    arrows = re.findall(r"^    [CS](?:->>|-x|--\))[CS]: (\d+):", text, re.M)
    assert [int(f) for f in arrows] == [a.seg.frame for a in sorted(anns, key=lambda a: (
        a.conn, a.seg.frame))]
    first = text.split("```mermaid")[1]
    notes = re.findall(r"Note left of C: (\S+)", first)
    assert notes[0] == "CLOSED" and notes[-1] == "TIME_WAIT"
    assert ";" not in "".join(re.findall(r": (.*)$", text, re.M))


def test_mermaid_marks_rst():
    out = io.StringIO()
    r = MermaidRenderer(out)
    r.write(annotations("refused"))
    r.close()
    assert "S-xC: 2: R. 1 ack 1" in out.getvalue()


def test_svg_parses_and_holds_arrows_bands_and_legend():
    anns = annotations("simultaneous-close", conn=1)
    root = ET.fromstring(picture(anns))
    lines = [e for e in root.iter(f"{SVG}line") if e.get("class") == "segment"]
    assert [int(e.get("data-frame")) for e in lines] == [a.seg.frame for a in anns]
    ys = [float(e.get("y1")) for e in lines]
    assert ys == sorted(ys), "time runs down"
    assert all(float(e.get("y2")) > float(e.get("y1")) for e in lines), "arrows slant"
    labels = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "label"]
    assert labels[0].startswith("1: S 0")
    texts = " ".join(e.text or "" for e in root.iter(f"{SVG}text"))
    assert "CLOSING" in texts and "TIME_WAIT" in texts
    legend = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "legend"]
    assert len(legend) >= 5
    bands = [e for e in root.iter(f"{SVG}rect") if e.find(f"{SVG}title") is not None]
    assert {b.find(f"{SVG}title").text for b in bands} >= {"ESTABLISHED", "CLOSING"}


def test_svg_writes_each_explanation_in_the_picture_and_keeps_the_tooltips():
    anns = annotations("simultaneous-close", conn=1)
    root = ET.fromstring(picture(anns))
    markers = root.findall(f"{SVG}g[@class='marker']")
    with_note = [a for a in anns if a.note]
    assert [int(m.get("data-frame")) for m in markers] == [a.seg.frame for a in with_note]
    # Each marker's number is written in it and leads its explanation below the diagram.
    numbers = {}
    for m, a in zip(markers, with_note):
        assert m.find(f"{SVG}text").text == m.get("data-note")
        assert m.find(f"{SVG}title").text == a.note
        numbers.setdefault(a.note, m.get("data-note"))
    assert len(set(numbers.values())) == len(numbers), "one number per explanation"
    legend = [e for e in root.iter(f"{SVG}text") if e.get("class") == "explanation"]
    lowest_arrow = max(float(e.get("y2")) for e in root.iter(f"{SVG}line")
                       if e.get("class") == "segment")
    assert all(float(e.get("y")) > lowest_arrow for e in legend), "below the diagram"
    assert float(root.get("height")) > max(float(e.get("y")) for e in legend)
    for note, n in numbers.items():
        words = " ".join(e.text for e in legend if e.get("data-note") == n).split()
        assert words[-len(note.split()):] == note.split(), note
    assert all(len(e.text) <= 112 for e in legend), "wrapped"
    labels = [e for e in root.iter(f"{SVG}text") if e.get("class") == "label"]
    assert [e.find(f"{SVG}title").text for e in labels] == [a.note for a in anns]


def test_svg_arrows_that_share_an_explanation_share_its_number():
    anns = annotations("byte-stream", conn=1)
    data = [a for a in anns if not a.note][:3]
    for a in data:
        a.note = "the same words"
    root = ET.fromstring(picture(anns))
    markers = root.findall(f"{SVG}g[@class='marker']")
    assert len({m.get("data-note") for m in markers if m.find(f"{SVG}title").text ==
                "the same words"}) == 1
    legend = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "explanation"]
    frames = ", ".join(str(a.seg.frame) for a in data)
    assert f"frames {frames}: the same words" in legend
    numbers = {e.get("data-note") for e in root.iter(f"{SVG}text")
               if e.get("class") == "explanation"}
    assert len(markers) == sum(1 for a in anns if a.note) == len(numbers) + 2


def test_svg_limits_a_large_connection():
    from rawinspect.render import svg
    anns = annotations("byte-stream", conn=1)
    old = svg.MAX_SEGMENTS
    svg.MAX_SEGMENTS = 5
    try:
        root = ET.fromstring(picture(anns))
    finally:
        svg.MAX_SEGMENTS = old
    assert len([e for e in root.iter(f"{SVG}line") if e.get("class") == "segment"]) == 5
    assert any("first 5 of" in (e.text or "") for e in root.iter(f"{SVG}text"))


def test_svg_writes_one_file_per_connection(tmp_path, capsys):
    out = tmp_path / "ladder.svg"
    assert cli.main(["replay", str(CAPTURES / "short-long.pcap"), "-T", "svg", "-o", str(out),
                     "-q"]) == 0
    files = sorted(tmp_path.glob("ladder-conn*.svg"))
    assert len(files) == 6
    for f in files:
        ET.parse(f)
    assert cli.main(["replay", str(CAPTURES / "short-long.pcap"), "-T", "svg", "-q"]) == 2


@pytest.mark.parametrize("name", list(all_scenarios()))
@pytest.mark.parametrize("fmt", ["table", "jsonl", "ladder", "mermaid", "svg"])
def test_every_scenario_renders_in_every_format(name, fmt, tmp_path, capsys):
    args = ["replay", str(CAPTURES / f"{name}.pcap"), "-T", fmt, "-q"]
    if fmt == "svg":
        args += ["-o", str(tmp_path / "x.svg")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    if fmt == "svg":
        assert list(tmp_path.glob("*.svg"))
        for f in tmp_path.glob("*.svg"):
            ET.parse(f)
    else:
        assert out.strip()


def _pcapng_comments(path: Path) -> list[str | None]:
    """Packet comments of a little-endian pcapng, one entry per packet block."""
    data = path.read_bytes()
    pos, out = 0, []
    while pos < len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 6:
            caplen = struct.unpack_from("<I", data, pos + 20)[0]
            opt = pos + 28 + caplen + (-caplen & 3)
            text = None
            while opt < pos + blen - 4:
                code, length = struct.unpack_from("<HH", data, opt)
                if code == 0:
                    break
                if code == 1:
                    text = data[opt + 4:opt + 4 + length].decode()
                opt += 4 + length + (-length & 3)
            out.append(text)
        pos += blen
    return out


def test_annotated_pcapng_carries_every_annotation(tmp_path, capsys):
    out = tmp_path / "annotated.pcapng"
    assert cli.main(["replay", str(CAPTURES / "handshake.pcap"), "-w", str(out), "--annotate",
                     "-q", "-T", "jsonl"]) == 0
    comments = _pcapng_comments(out)
    anns = annotations("handshake")
    assert len(comments) == len(anns)
    assert all(c and c.startswith(f"rawinspect conn 1 ") for c in comments)
    assert "client CLOSED→SYN_SENT, server LISTEN→SYN_RCVD" in comments[0]
    # The copy replays to the same annotations as the original.
    assert [a.seg.seq for a in Annotator().feed_all(read_segments(str(out), Stats()))] == \
        [a.seg.seq for a in anns]
    if shutil.which("tshark"):
        res = subprocess.run(["tshark", "-r", str(out), "-Y",
                              'frame.comment contains "TIME_WAIT"', "-T", "fields",
                              "-e", "frame.number"], capture_output=True, text=True)
        want = [str(i + 1) for i, c in enumerate(comments) if "TIME_WAIT" in c]
        assert res.stdout.split() == want and want
    assert cli.main(["replay", str(CAPTURES / "handshake.pcap"), "-w", str(out)]) == 2


def test_readme_pictures_are_generated():
    res = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'scripts');"
                          "import gen_pictures; text, files = gen_pictures.section();"
                          "print(text)"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stdout.strip() in (ROOT / "README.md").read_text()
