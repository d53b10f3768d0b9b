"""A segment's bytes as they were on the wire, read again from its capture file by frame.

A renderer is given decoded Segments, not packets: the formats that show bytes (the HTML
report, the table with ``-X``) read the capture file again. A frame's TCP header is found
by the ports, sequence and acknowledgement numbers its Segment holds. Without a file, the
TCP header is rebuilt from the Segment's fields (checksum and urgent pointer unknown).
"""

from __future__ import annotations

import struct
from collections import OrderedDict

from ..core.segment import Segment
from ..sources.capfile import CaptureFileError, open_capture
from ..sources.decode import LINKTYPES

KEPT = 4096  # frames read past but not yet asked for, kept for a held SYN or FIN


def tcp_key(seg: Segment) -> bytes:
    """Ports, sequence and acknowledgement numbers as on the wire: finds the TCP header."""
    return struct.pack("!HHII", seg.sport, seg.dport, seg.seq, seg.ack)


def tcp_slice(seg: Segment, packet: bytes, payload_shown: int) -> bytes | None:
    """The TCP header and up to ``payload_shown`` payload bytes of ``packet``, or None
    when ``seg``'s header is not in it."""
    start = packet.find(tcp_key(seg))
    if start < 0 or start + 13 > len(packet):
        return None
    hl = max((packet[start + 12] >> 4) * 4, 20)
    return packet[start:min(len(packet), start + hl + min(seg.payload, payload_shown))]


def read_bytes(path: str, wanted: dict[int, Segment], payload_shown: int) -> dict[int, bytes]:
    """Each wanted frame's TCP header and first ``payload_shown`` payload bytes, read again
    from the capture file; frames not found are left out."""
    out: dict[int, bytes] = {}
    frame = 0
    for _linktype, _ts, buf, off, caplen, _wirelen in open_capture(path):
        frame += 1
        seg = wanted.get(frame)
        if seg is None:
            continue
        found = tcp_slice(seg, bytes(buf[off:off + caplen]), payload_shown)
        if found is not None:
            out[frame] = found
        if len(out) == len(wanted):
            break
    return out


def rebuilt_header(seg: Segment) -> bytes:
    """The TCP header as far as the Segment knows it: checksum and urgent pointer zero."""
    hl = 20 + len(seg.raw_opts)
    return struct.pack("!HHIIHHHH", seg.sport, seg.dport, seg.seq, seg.ack,
                       (hl // 4) << 12 | (seg.flags & 0x1FF), seg.window, 0, 0) + seg.raw_opts


def ip_packet(linktype: int, buf: bytes, off: int, caplen: int) -> bytes | None:
    """The captured bytes from the IP header on (the link layer left out), or None."""
    link = LINKTYPES.get(linktype)
    if link is None:
        return None
    net = link[1](buf, off, off + caplen)
    if isinstance(net, str):
        return None
    return bytes(buf[net[1]:off + caplen])


class FrameReader:
    """Packets by frame number, read lazily from a capture file as they are asked for.

    Frames are asked for mostly in increasing order; those read past are kept (up to
    KEPT) for the held SYNs and FINs shown later. A frame beyond the end of the file (a
    live capture's ``-w`` file still growing) opens the file again, up to it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.frame = 0           # the last frame read
        self.records = open_capture(path)
        self.kept: OrderedDict[int, bytes | None] = OrderedDict()

    def packet(self, frame: int) -> bytes | None:
        """Frame ``frame``'s bytes from the IP header on; None when not (yet) in the
        file or not IP. A file that cannot be read raises CaptureFileError or OSError."""
        if frame in self.kept:
            return self.kept.pop(frame)
        if frame <= self.frame:
            self.reopen()
        while self.frame < frame:
            record = next(self.records, None)
            if record is None:  # the end, for now: a growing file is opened again
                self.reopen()
                return None
            self.frame += 1
            if frame - self.frame >= KEPT:
                continue  # too far back to be kept
            linktype, _ts, buf, off, caplen, _wirelen = record
            data = ip_packet(linktype, buf, off, caplen)
            if self.frame == frame:
                return data
            self.kept[self.frame] = data
            if len(self.kept) > KEPT:
                self.kept.popitem(last=False)
        return None

    def reopen(self) -> None:
        """Read the file from its start again."""
        self.records = open_capture(self.path)
        self.frame = 0
        self.kept.clear()


def read_packet(reader: FrameReader, frame: int) -> bytes | None:
    """``reader.packet(frame)``, with a file cut short mid-record (being written) read as
    the frame not being there yet."""
    try:
        return reader.packet(frame)
    except CaptureFileError:
        reader.reopen()
        return None
