"""pcapng with each TCP packet's annotation as its packet comment (opt_comment).

Wireshark shows the comments in its packet list and tshark filters on them
(``-Y 'frame.comment contains "TIME_WAIT"'``). The source file is read a second time and
every record copied, in order, with the comment of its frame when it has one; one
interface block per link type; timestamps in microseconds.
"""

from __future__ import annotations

import os
import struct
from typing import Sequence

from ..core.annotation import Annotation
from ..sources.calls_file import Record, custom_block
from ..sources.capfile import open_capture
from .pcapwriter import CaptureWriteError, give_to_invoking_user


def comment(a: Annotation) -> str:
    """One line: connection, direction, both endpoints' states, and why."""
    def states(before: str, path: list[str] | None) -> str:
        return "→".join(path) if path else before
    text = (f"rawinspect conn {a.conn} {a.direction} {a.event}: client "
            f"{states(a.client_before, a.client_path)}, server "
            f"{states(a.server_before, a.server_path)}")
    if a.analysis:
        text += f" [{', '.join(a.analysis)}]"
    text = f"{text}; {a.note}" if a.note else text
    return f"{text} · {a.cause}" if a.cause else text


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def write_annotated(src: str, dst: str, comments: dict[int, str],
                    calls: Sequence[Record] = ()) -> int:
    """Copy ``src`` to pcapng ``dst`` with ``comments`` by frame number, and what was saved
    with it (the programs' calls, the sockets left behind) in a custom block; returns
    records."""
    tmp = f"{dst}.rawinspect-tmp"
    ifaces: dict[int, int] = {}
    frame = 0
    try:
        with open(tmp, "wb") as f:
            f.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
            for linktype, ts, buf, off, caplen, wirelen in open_capture(src):
                frame += 1
                iface = ifaces.get(linktype)
                if iface is None:
                    iface = ifaces[linktype] = len(ifaces)
                    opts = _option(9, bytes([6])) + _option(0, b"")
                    f.write(_block(1, struct.pack("<HHI", linktype, 0, 0) + opts))
                ticks = round(ts * 1e6)
                body = struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, caplen,
                                   wirelen) + bytes(buf[off:off + caplen])
                body += b"\0" * (-len(body) & 3)
                text = comments.get(frame)
                if text:
                    body += _option(1, text.encode()) + _option(0, b"")
                f.write(_block(6, body))
            if calls:
                f.write(custom_block(calls))
        os.replace(tmp, dst)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise CaptureWriteError(f"-w {dst}: {e.strerror or e}") from None
    give_to_invoking_user(dst)
    return frame
