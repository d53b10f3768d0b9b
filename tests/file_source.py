"""A PacketSource over a capture file: the live capture path, driven without privileges.

It hands out the file's packets as a Sniffer would, a few per read if asked, on a clock
that follows the packets' own time (and runs on once they are all read, so --duration
ends the capture). ``on_read`` lets a test act between reads (a Ctrl-C, say).
"""

from __future__ import annotations

import os
from typing import Callable

from rawinspect.sources.capfile import open_capture
from rawinspect.sources.packet_source import Packet

IDLE_STEP = 0.1  # seconds the clock moves on for each read that finds nothing


class FileSource:
    """The packets of ``path``, ``per_read`` at most per read (all waiting ones if None)."""

    def __init__(self, path: str, per_read: int | None = None,
                 on_read: Callable[[int], None] | None = None) -> None:
        records = list(open_capture(path))
        linktypes = {rec[0] for rec in records}
        assert len(linktypes) == 1, f"{path}: one link type expected, not {linktypes}"
        self.linktype = linktypes.pop()
        self.packets: list[Packet] = []
        self.times: list[float] = []
        for _lt, ts, buf, off, caplen, wirelen in records:
            sec = int(ts)
            nsec = round((ts - sec) * 1e9)
            self.packets.append((sec, nsec, bytes(buf[off:off + caplen]), wirelen))
            self.times.append(ts)
        self.now = self.times[0]
        self.per_read = per_read
        self.on_read = on_read
        self.reads = 0
        self.pos = 0
        self.fd = os.open(path, os.O_RDONLY)  # a regular file: always ready for poll()
        self.closed = False

    def fileno(self) -> int:
        return self.fd

    def read(self, limit: int) -> list[Packet]:
        self.reads += 1
        if self.on_read is not None:
            self.on_read(self.reads)
        n = min(limit, self.per_read or limit)
        out = self.packets[self.pos:self.pos + n]
        self.pos += len(out)
        if out:
            self.now = self.times[self.pos - 1]
        else:
            self.now += IDLE_STEP
        return out

    def clock(self) -> float:
        """The capture's time: the last packet read, plus the idle time since the end."""
        return self.now

    def poll_drops(self) -> int:
        return 0

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
            self.closed = True
