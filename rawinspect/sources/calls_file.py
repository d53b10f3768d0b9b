"""The programs' calls saved with a capture, and read back for replay.

In a pcapng file the calls go in Custom Blocks (block type 0x00000BAD, "may be
copied"), under the Private Enterprise Number 32473 that RFC 5612 sets aside for
examples and private use: Wireshark and tshark skip them without complaint. Each block
carries ``rawinspect calls 1`` and one JSON object per line (``Call.as_dict``; the
sockets left behind at the end as ``{"kind": "socket", ...}``). A pcap file has no room
for them: they go to a sidecar file, FILE.calls.jsonl, beside it.
"""

from __future__ import annotations

import io
import json
import os
import struct
from typing import Any, Sequence, Union

from ..core.call import Call

CUSTOM_BLOCK = 0x00000BAD
PEN = 32473
MAGIC = b"rawinspect calls 1\n"
SIDECAR_SUFFIX = ".calls.jsonl"
SOCKET = "socket"   # the kind of a saved socket-left-behind record
_SHB = 0x0A0D0D0A


class CallsFileError(Exception):
    """The saved calls cannot be read: a one-line reason naming the file."""


def sidecar(path: str) -> str:
    """Where a pcap file's calls are kept."""
    return path + SIDECAR_SUFFIX


Record = Union[Call, dict[str, Any]]   # a call, or another saved record (a socket left)


def encode_lines(records: Sequence[Record]) -> bytes:
    """The records as JSON lines."""
    return b"".join(json.dumps(r.as_dict() if isinstance(r, Call) else r,
                               separators=(",", ":")).encode() + b"\n" for r in records)


def custom_block(records: Sequence[Record]) -> bytes:
    """One little-endian pcapng Custom Block holding ``records``."""
    body = struct.pack("<I", PEN) + MAGIC + encode_lines(records)
    body += b"\0" * (-len(body) & 3)
    total = len(body) + 12
    return struct.pack("<II", CUSTOM_BLOCK, total) + body + struct.pack("<I", total)


def _decode(path: str, data: bytes) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        line = line.rstrip(b"\0")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as e:
            raise CallsFileError(f"{path}: saved call {number} is damaged ({e})") from None
        records.append(record)
    return records


def read_saved(path: str) -> tuple[list[Call], list[dict[str, Any]]]:
    """What was saved with capture ``path`` (pcapng blocks, or the pcap's sidecar file):
    the calls in time order, and the sockets left behind; empty when nothing was."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            records = _from_pcapng(path, f) if head == struct.pack("<I", _SHB) else []
        side = sidecar(path)
        if not records and os.path.exists(side):
            with open(side, "rb") as f:
                records = _decode(side, f.read())
    except OSError as e:
        raise CallsFileError(f"{path}: {e.strerror or e}") from None
    try:
        calls = [Call.from_dict(r) for r in records if r.get("kind") != SOCKET]
    except TypeError as e:
        raise CallsFileError(f"{path}: a saved call is damaged ({e})") from None
    calls.sort(key=lambda c: c.at)
    return calls, [r for r in records if r.get("kind") == SOCKET]


def read_calls(path: str) -> list[Call]:
    """The calls saved with capture ``path``, in time order."""
    return read_saved(path)[0]


def _from_pcapng(path: str, f: io.BufferedReader) -> list[dict[str, Any]]:
    """Walk the blocks (headers only, bodies of our custom blocks); little-endian only,
    as rawinspect writes it."""
    f.seek(0)
    calls: list[dict[str, Any]] = []
    while True:
        head = f.read(8)
        if len(head) < 8:
            return calls
        btype, blen = struct.unpack("<II", head)
        if btype == _SHB and f.peek(4)[:4] == b"\x1a\x2b\x3c\x4d":
            return calls  # a big-endian section: not one rawinspect wrote
        if blen < 12 or blen % 4:
            return calls  # damaged: the packet reader reports it
        if btype == CUSTOM_BLOCK and blen >= 12 + 4 + len(MAGIC):
            body = f.read(blen - 12)
            if body[:4] == struct.pack("<I", PEN) and body[4:4 + len(MAGIC)] == MAGIC:
                calls.extend(_decode(path, body[4 + len(MAGIC):]))
            f.seek(4, os.SEEK_CUR)
        else:
            f.seek(blen - 8, os.SEEK_CUR)
