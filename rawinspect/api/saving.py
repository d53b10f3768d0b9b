"""The packets behind a Capture, kept so that it can be saved again: a file, or memory.

A capture read from a file, or captured live (into a temporary pcapng file), keeps the
file; packets handed over from scapy are kept in memory. ``Packets.write`` saves them as
pcap or pcapng through the command line's own writers (``render/pcapwriter``,
``render/pcapng_comments``), with the programs' calls and the sockets left behind.
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterable, Iterator, Sequence

from ..render.pcapng_comments import write_annotated
from ..render.pcapwriter import PcapWriter
from .scapy_io import RawPacket
from ..sources.calls_file import Record
from ..sources.capfile import open_capture
from ..sources.sniffer import DEFAULT_SNAPLEN


class Packets:
    """A capture file (``path``) or packets in memory (``memory``)."""

    def __init__(self, path: str | None = None, memory: list[RawPacket] | None = None) -> None:
        self.path = path
        self.memory = memory

    def records(self) -> Iterator[RawPacket]:
        """Every packet: (link type, time, bytes, length on the wire)."""
        if self.memory is not None:
            yield from self.memory
            return
        assert self.path is not None
        for linktype, ts, buf, off, caplen, wirelen in open_capture(self.path):
            yield linktype, ts, bytes(buf[off:off + caplen]), wirelen

    def write(self, path: str, comments: dict[int, str], saved: Sequence[Record]) -> None:
        """Save to ``path``: pcapng (with ``comments`` by frame) when it ends in .pcapng,
        else pcap with nanosecond times (``saved`` then goes to its sidecar file)."""
        if path.endswith(".pcapng"):
            if self.path is not None:
                write_annotated(self.path, path, comments, saved)
                return
            with tempfile.TemporaryDirectory(prefix="rawinspect-") as tmp:
                source = os.path.join(tmp, "packets.pcap")
                _write_pcap(source, self.records(), ())
                write_annotated(source, path, comments, saved)
            return
        records: Iterable[RawPacket] = self.records()
        if self.path is not None and os.path.exists(path) and os.path.samefile(path, self.path):
            records = list(records)  # read it all before it is overwritten
        _write_pcap(path, records, saved)


def _write_pcap(path: str, packets: Iterable[RawPacket], saved: Sequence[Record]) -> None:
    """Packets of one link type as a pcap file (ValueError naming the link types else)."""
    writer: PcapWriter | None = None
    first = -1
    try:
        for linktype, ts, data, wirelen in packets:
            if writer is None:
                writer = PcapWriter(path, linktype, DEFAULT_SNAPLEN)
                first = linktype
            elif linktype != first:
                raise ValueError(f"{path}: packets of link types {first} and {linktype}: "
                                 "a pcap file holds one; save as .pcapng")
            sec = int(ts)
            nsec = min(round((ts - sec) * 1e9), 999_999_999)
            writer.write(sec, nsec, data, wirelen)
        if writer is None:
            writer = PcapWriter(path, 1, DEFAULT_SNAPLEN)
        writer.write_calls(saved)
    finally:
        if writer is not None:
            writer.close()
