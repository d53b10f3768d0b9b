"""Network byte order under each table row (``-X``): headers field by field, then the payload.

Each segment's IPv4 or IPv6 header and TCP header are listed one field a line: the bytes
as they are on the wire (network byte order, big-endian), the value a program reads after
``ntohs``/``ntohl``, and for the 16- and 32-bit fields the number a little-endian CPU
reads when the conversion is forgotten (port 8080 is ``1f 90`` on the wire: 36895).
Then the TCP options' bytes, and the payload the way ``tcpdump -X`` prints a packet
(offset, 16 bytes in groups of two, ASCII).

The bytes come from the capture file, read again lazily by frame (``wire_bytes``). Without
a file (a live capture without ``-w``), or for a frame not (yet) in it, the headers are
rebuilt from the decoded fields and the payload is not shown.
"""

from __future__ import annotations

import socket
import struct
import sys

from ..core.annotation import Annotation
from ..core.options import options_text
from ..core.segment import ACK, FLAG_LETTERS, Segment
from .wire_bytes import FrameReader, read_packet, rebuilt_header, tcp_key

INDENT = "      "
Field = tuple[str, bytes, str]  # name, the bytes on the wire, the value as read (ntoh)


# Printable ASCII as itself, every other byte as "." (tcpdump -X's right column).
_SHOWN = bytes(b if 0x21 <= b <= 0x7E else 0x2E for b in range(256))


def hex_lines(data: bytes, indent: str = "\t") -> list[str]:
    """``data`` as ``tcpdump -X`` prints it: ``0x0010:  7f00 0001 e2a4 …  .......GL*%.``."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        text = chunk.translate(_SHOWN).decode("ascii")
        lines.append(f"{indent}0x{off:04x}:  {chunk.hex(' ', -2):<39}  {text}")
    return lines


def misread(wire: bytes) -> str:
    """What a little-endian CPU reads from a 16- or 32-bit field without ntohs/ntohl."""
    return str(int.from_bytes(wire, "little")) if len(wire) in (2, 4) else ""


def field_line(name: str, wire: bytes, value: str) -> str:
    """One field: name, wire bytes in hex, value after ntoh, little-endian misread."""
    spaced = wire.hex(" ") if len(wire) <= 4 else wire.hex(" ", -2)
    line = f"{INDENT}  {name:<17} {spaced:<12} {value:<24} {misread(wire)}"
    return line.rstrip()


def ipv4_fields(h: bytes) -> list[Field]:
    """An IPv4 header's fields (``h``: the header's bytes, options included)."""
    ihl = (h[0] & 15) * 4
    frag = struct.unpack_from("!H", h, 6)[0]
    bits = ",".join(n for bit, n in ((0x4000, "DF"), (0x2000, "MF")) if frag & bit)
    fields: list[Field] = [
        ("version, IHL", h[0:1], f"4, {ihl} bytes"),
        ("DSCP, ECN", h[1:2], f"{h[1] >> 2}, {h[1] & 3}"),
        ("total length", h[2:4], str(struct.unpack_from("!H", h, 2)[0])),
        ("identification", h[4:6], str(struct.unpack_from("!H", h, 4)[0])),
        ("flags, fragment", h[6:8], f"{bits or 'none'}, offset {frag & 0x1FFF}"),
        ("TTL", h[8:9], str(h[8])),
        ("protocol", h[9:10], f"{h[9]}{' (TCP)' if h[9] == 6 else ''}"),
        ("header checksum", h[10:12], f"0x{h[10:12].hex()}"),
        ("source", h[12:16], _addr4(h[12:16])),
        ("destination", h[16:20], _addr4(h[16:20]))]
    if ihl > 20:
        fields.append(("IP options", h[20:ihl], f"{ihl - 20} bytes"))
    return fields


def _addr4(wire: bytes) -> str:
    return f"{socket.inet_ntop(socket.AF_INET, wire)} = {int.from_bytes(wire, 'big')}"


def ipv6_fields(h: bytes) -> list[Field]:
    """An IPv6 header's fields (``h``: its 40 bytes)."""
    word = struct.unpack_from("!I", h, 0)[0]
    return [
        ("version,class,flow", h[0:4],
         f"{word >> 28}, 0x{word >> 20 & 0xFF:02x}, 0x{word & 0xFFFFF:05x}"),
        ("payload length", h[4:6], str(struct.unpack_from("!H", h, 4)[0])),
        ("next header", h[6:7], f"{h[6]}{' (TCP)' if h[6] == 6 else ''}"),
        ("hop limit", h[7:8], str(h[7])),
        ("source", h[8:24], socket.inet_ntop(socket.AF_INET6, h[8:24])),
        ("destination", h[24:40], socket.inet_ntop(socket.AF_INET6, h[24:40]))]


def tcp_fields(t: bytes) -> list[Field]:
    """A TCP header's 20 fixed bytes as fields (the options follow apart)."""
    sport, dport, seq, ack, offfl, win, _csum, urg = struct.unpack_from("!HHIIHHHH", t, 0)
    return [
        ("source port", t[0:2], str(sport)),
        ("destination port", t[2:4], str(dport)),
        ("sequence number", t[4:8], str(seq)),
        ("ack number", t[8:12], str(ack)),
        ("offset, flags", t[12:14], f"{(offfl >> 12) * 4} bytes, [{FLAG_LETTERS[offfl & 0x1FF]}]"),
        ("window", t[14:16], str(win)),
        ("checksum", t[16:18], f"0x{t[16:18].hex()}"),
        ("urgent pointer", t[18:20], str(urg))]


def rebuilt_ip(seg: Segment, tcp_len: int) -> bytes:
    """The IP header as far as the Segment knows it: addresses and lengths; the rest 0."""
    n = (len(seg.flow) - 4) // 2
    src, dst = seg.flow[:n], seg.flow[n:2 * n]
    if n == 4:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len + seg.payload, 0, 0, 0,
                           6, 0, src, dst)
    return struct.pack("!IHBB16s16s", 6 << 28, tcp_len + seg.payload, 6, 0, src, dst)


def segment_lines(a: Annotation, packet: bytes | None, why_rebuilt: str) -> list[str]:
    """The lines under one row: IP and TCP fields, options, payload. ``packet``: the
    captured bytes from the IP header on, or None to rebuild the headers (``why_rebuilt``
    says why)."""
    seg = a.seg
    start = -1 if not packet else packet.find(tcp_key(seg), 20 if packet[0] >> 4 == 4 else 40)
    kept = packet is not None and start >= 0
    if packet is None or start < 0:
        tcp = rebuilt_header(seg)
        ip = rebuilt_ip(seg, len(tcp))
        packet, start = ip + tcp, len(ip)
    ip, tcp = packet[:start], packet[start:]
    hl = max((tcp[12] >> 4) * 4, 20) if len(tcp) > 12 else 20
    v4 = ip[0] >> 4 == 4
    out = [f"{INDENT}{'IPv4' if v4 else 'IPv6'} header ({len(ip)} bytes)"
           f"{'' if kept else ', rebuilt: ' + why_rebuilt}",
           f"{INDENT}  {'field':<17} {'wire (hex)':<12} {'ntohs/ntohl':<24} little-endian read"]
    out += [field_line(*f) for f in (ipv4_fields(ip) if v4 else ipv6_fields(ip[:40]))]
    out.append(f"{INDENT}TCP header ({hl} bytes)")
    out += [field_line(*f) for f in tcp_fields(tcp)] if len(tcp) >= 20 else \
        [f"{INDENT}  cut short at {len(tcp)} bytes"]
    opts = tcp[20:hl]
    if opts:
        text = options_text(seg, a.rel_ack if seg.flags & ACK else -1)
        out.append(f"{INDENT}TCP options ({len(opts)} bytes){': ' + text if text else ''}")
        out += hex_lines(opts, INDENT + "  ")
    if seg.payload:
        out += _payload_lines(tcp[hl:hl + seg.payload] if kept else None, seg.payload)
    return out


def _payload_lines(data: bytes | None, length: int) -> list[str]:
    if data is None:
        return [f"{INDENT}payload ({length} bytes): not kept"]
    cut = f", {len(data)} captured" if len(data) < length else ""
    return [f"{INDENT}payload ({length} bytes{cut})"] + hex_lines(data, INDENT + "  ")


class HexView:
    """The ``-X`` lines of each annotation, its bytes read by frame from the capture file
    named with ``use`` (replay's file, live capture's ``-w`` file)."""

    def __init__(self) -> None:
        self.capture: str | None = None
        self.reader: FrameReader | None = None

    def use(self, capture: str | None) -> None:
        """Read the bytes from ``capture`` (None: rebuild the headers)."""
        self.capture = capture
        self.reader = FrameReader(capture) if capture else None

    def __call__(self, a: Annotation) -> list[str]:
        """The lines under ``a``'s row."""
        if self.reader is None:
            return segment_lines(a, None, "no capture file to read, payload not kept")
        try:
            packet = read_packet(self.reader, a.seg.frame)
        except OSError as e:
            print(f"rawinspect: -X: {self.capture}: {e.strerror or e}; headers rebuilt from "
                  "here on", file=sys.stderr)
            self.reader = None
            packet = None
        return segment_lines(a, packet, f"frame {a.seg.frame} not found in {self.capture}")
