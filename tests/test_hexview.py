"""-X/--hex: the headers field by field in network byte order, and the payload as tcpdump -X."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, cannot_run
from frames import eth, ipv4, ipv6, pcap, tcp
from rawinspect.render.hexdump import HexView, hex_lines
from rawinspect.render.wire_bytes import FrameReader

BYTE_STREAM = ROOT / "captures" / "byte-stream.pcap"
MESSAGE = b"hello, world"
PREFIXED = struct.pack("!I", len(MESSAGE)) + MESSAGE


def rawinspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawinspect", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


@pytest.fixture
def port_8080(tmp_path: Path) -> Path:
    """A client on port 40000 talks to port 8080: handshake, one length-prefixed message."""
    recs = [(1000.001, eth(ipv4(tcp(40000, 8080, 0x01020304, 0, 0x02, win=512)))),
            (1000.002, eth(ipv4(tcp(8080, 40000, 0x0A0B0C0D, 0x01020305, 0x12, win=512),
                                "10.0.0.2", "10.0.0.1"))),
            (1000.003, eth(ipv4(tcp(40000, 8080, 0x01020305, 0x0A0B0C0E, 0x10, win=512)))),
            (1000.004, eth(ipv4(tcp(40000, 8080, 0x01020305, 0x0A0B0C0E, 0x18, win=512,
                                    payload=PREFIXED))))]
    path = tmp_path / "port8080.pcap"
    path.write_bytes(pcap(recs))
    return path


def fields(out: str) -> dict[str, list[str]]:
    """The field lines of the first segment's dump: name → wire bytes, value, misread."""
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        for name in ("source port", "destination port", "sequence number", "ack number",
                     "window"):
            if line.strip().startswith(name + " ") and name not in found:
                found[name] = line.strip()[len(name):].split()
    return found


def test_tcp_fields_show_wire_bytes_ntoh_value_and_little_endian_misread(port_8080):
    result = rawinspect("replay", str(port_8080), "-X", "-c", "2")
    assert result.returncode == 0, result.stderr
    got = fields(result.stdout)
    assert got["source port"] == ["9c", "40", "40000", "16540"]
    assert got["destination port"] == ["1f", "90", "8080", "36895"]
    assert got["sequence number"] == ["01", "02", "03", "04", "16909060", "67305985"]
    assert got["ack number"] == ["00", "00", "00", "00", "0", "0"]
    assert got["window"] == ["02", "00", "512", "2"]
    source = next(line.split() for line in result.stdout.splitlines()
                  if line.split()[:2] == ["source", "0a"])
    assert source == ["source", "0a", "00", "00", "01", "10.0.0.1", "=", "167772161", "16777226"]


def test_the_payload_dump_shows_the_length_prefix(port_8080):
    result = rawinspect("replay", str(port_8080), "-X")
    lines = result.stdout.splitlines()
    at = lines.index("      payload (16 bytes)")
    assert lines[at + 1] == "        0x0000:  0000 000c 6865 6c6c 6f2c 2077 6f72 6c64  ....hello,.world"


def test_byte_stream_scenario_shows_its_struct_prefix_in_the_payload():
    """The bundled byte-stream capture, connection 4 (length prefix): each message's 4-byte
    ``!I`` prefix leads its payload, e.g. 00 00 00 0f before the 15 bytes of message 4."""
    result = rawinspect("replay", str(BYTE_STREAM), "-X", "--conn", "4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    dumps, direction = [], ""
    for i, line in enumerate(lines):
        if line[:1].isdigit():
            direction = line.split()[3]
        elif line.startswith("      payload (") and direction == "→":  # client to server
            dumps.append((int(line.split("(")[1].split()[0]), lines[i + 1].split()[1:3]))
    assert len(dumps) == 10
    for length, groups in dumps:
        prefix = struct.pack("!I", length - 4).hex()
        assert groups == [prefix[:4], prefix[4:]]
    assert ["0000", "000f"] in [g for _, g in dumps]
    assert any(line.endswith("0000 000f 6d65 7373 6167 6520 343a 2078  ....message.4:.x") for line in lines)


def tcpdump_hex(path: Path, frame: int) -> list[str]:
    """The hex lines tcpdump -X prints for packet ``frame``."""
    if shutil.which("tcpdump") is None:
        cannot_run("tcpdump is not installed")
    out = subprocess.run(["tcpdump", "-X", "-nn", "-r", str(path), "-c", str(frame)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    blocks: list[list[str]] = []
    for line in out.splitlines():
        if line.startswith("\t0x"):
            blocks[-1].append(line)
        else:
            blocks.append([])
    return blocks[frame - 1]


@pytest.mark.parametrize("frame", [1, 89, 113])
def test_hex_lines_are_tcpdump_x_lines(frame):
    packet = FrameReader(str(BYTE_STREAM)).packet(frame)
    assert packet is not None
    assert hex_lines(packet) == tcpdump_hex(BYTE_STREAM, frame)


def test_hex_lines_of_the_synthetic_payload_are_tcpdump_x_lines(port_8080):
    packet = FrameReader(str(port_8080)).packet(4)
    assert packet is not None
    assert hex_lines(packet) == tcpdump_hex(port_8080, 4)


def test_frames_asked_out_of_order_are_read(port_8080):
    reader = FrameReader(str(port_8080))
    fourth, second, missing = reader.packet(4), reader.packet(2), reader.packet(9)
    assert fourth is not None and fourth.endswith(PREFIXED)
    assert second is not None and second[20:22] == struct.pack("!H", 8080)
    assert missing is None
    assert reader.packet(1) is not None


def test_without_a_file_headers_are_rebuilt_and_the_payload_not_kept(port_8080):
    from rawinspect.app.pipeline import make_tracker, read_segments, Stats
    tracker = make_tracker(240.0, 1.0)
    anns = [a for s in read_segments(str(port_8080), Stats()) for a in tracker.feed(s)]
    anns += tracker.finish()
    data = next(a for a in anns if a.seg.payload)
    lines = HexView()(data)
    assert "rebuilt" in lines[0]
    assert "      payload (16 bytes): not kept" in lines
    assert any(line.split()[:4] == ["destination", "port", "1f", "90"] for line in lines)


def test_ipv6_header_fields(tmp_path):
    path = tmp_path / "v6.pcap"
    path.write_bytes(pcap([(1.0, eth(ipv6(tcp(8080, 443, 7, 0, 0x02)), 0x86DD))]))
    result = rawinspect("replay", str(path), "-X")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "IPv6 header (40 bytes)" in out
    assert any(line.split()[:5] == ["payload", "length", "00", "14", "20"]
               for line in out.splitlines())
    assert any(line.split()[-3:] == ["0000", "0001", "::1"] for line in out.splitlines())


@pytest.mark.parametrize("args", [["-T", "jsonl"], ["--conns"], ["-T", "ladder"]])
def test_hex_is_for_the_table_only(port_8080, args):
    result = rawinspect("replay", str(port_8080), "-X", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "-X/--hex" in result.stderr and "Traceback" not in result.stderr


def test_the_table_without_hex_is_unchanged(port_8080):
    """-X only adds indented lines under the rows (the goldens in captures/*.txt, checked by
    test_scenarios, hold the table without it)."""
    plain = rawinspect("replay", str(port_8080)).stdout.splitlines()
    with_hex = rawinspect("replay", str(port_8080), "--hex").stdout.splitlines()
    rest = iter(with_hex)
    assert all(line in rest for line in plain)  # plain's lines, in order
    added = [line for line in with_hex if line not in plain]
    assert len(added) == 4 * 21 + 2 and all(line.startswith("      ") for line in added)
