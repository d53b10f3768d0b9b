"""Streaming pcap (nanosecond) and pcapng writers for live capture.

Both are opened before capturing starts (so an unwritable path fails early), flushed
as packets come in, and closed on every way out, so the file always opens in Wireshark.
Under sudo the file is handed to the invoking user. The programs' calls go in the same
pcapng file, or beside a pcap file (``sources/calls_file``).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Sequence

from ..sources.calls_file import Record, custom_block, encode_lines, sidecar

PCAP_NS_MAGIC = 0xA1B23C4D
_pcap_rec = struct.Struct("<IIII")
_epb_head = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, caplen, len


class CaptureWriteError(Exception):
    """The capture file cannot be created or written: a one-line reason naming it."""


def check_writable(path: str) -> None:
    """Fail before the run, not after it, when ``path`` cannot be created (CaptureWriteError)."""
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        reason = "Is a directory"
    elif not os.path.isdir(folder):
        reason = "No such file or directory"
    elif not os.access(path if os.path.exists(path) else folder, os.W_OK):
        reason = "Permission denied"
    else:
        return
    raise CaptureWriteError(f"-w {path}: {reason}")


class PcapWriter:
    """pcap with nanosecond timestamps; pcapng when the name ends in .pcapng."""

    def __init__(self, path: str, linktype: int, snaplen: int) -> None:
        self.path = path
        self.ng = path.endswith(".pcapng")
        self.sidecar: str | None = None   # a pcap file's calls, once there are any
        try:
            self.f: BinaryIO = open(path, "wb")
        except OSError as e:
            raise CaptureWriteError(f"-w {path}: {e.strerror or e}") from None
        give_to_invoking_user(path)
        if not self.ng and os.path.exists(sidecar(path)):
            os.unlink(sidecar(path))  # an earlier capture's calls: not this file's
        self._guard(self.f.write, self._header(linktype, snaplen))
        self._guard(self.f.flush)

    def _header(self, linktype: int, snaplen: int) -> bytes:
        if not self.ng:
            return struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, snaplen, linktype)
        shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
        # Interface description: link type, snap length, if_tsresol = 9 (nanoseconds).
        opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
        body = struct.pack("<HHI", linktype, 0, snaplen) + opts
        idb = struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
        return shb + idb

    def _guard(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except OSError as e:
            raise CaptureWriteError(f"-w {self.path}: {e.strerror or e}") from None

    def write(self, sec: int, nsec: int, data: bytes, wirelen: int) -> None:
        """Append one packet record."""
        if self.ng:
            pad = -len(data) & 3
            total = 32 + len(data) + pad
            ticks = sec * 1_000_000_000 + nsec
            rec = (_epb_head.pack(6, total, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                                  wirelen) + data + b"\0" * pad + total.to_bytes(4, "little"))
        else:
            rec = _pcap_rec.pack(sec, nsec, len(data), wirelen) + data
        self._guard(self.f.write, rec)

    def write_calls(self, calls: Sequence[Record]) -> None:
        """Append the programs' calls (or the sockets left behind): a custom block in
        pcapng, else the sidecar file."""
        if not calls:
            return
        if self.ng:
            self._guard(self.f.write, custom_block(calls))
            return
        if self.sidecar is None:
            self.sidecar = sidecar(self.path)
            try:
                with open(self.sidecar, "wb"):
                    pass
            except OSError as e:
                raise CaptureWriteError(f"-w {self.sidecar}: {e.strerror or e}") from None
            give_to_invoking_user(self.sidecar)
        try:
            with open(self.sidecar, "ab") as f:
                f.write(encode_lines(calls))
        except OSError as e:
            raise CaptureWriteError(f"-w {self.sidecar}: {e.strerror or e}") from None

    def flush(self) -> None:
        self._guard(self.f.flush)

    def close(self) -> None:
        if not self.f.closed:
            try:
                self.f.close()
            except OSError as e:
                raise CaptureWriteError(f"-w {self.path}: {e.strerror or e}") from None


def give_to_invoking_user(path: str) -> None:
    """Under sudo, make ``path`` belong to the user who ran sudo."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if os.geteuid() == 0 and uid and gid and uid.isdigit() and gid.isdigit():
        try:
            os.chown(path, int(uid), int(gid))
        except OSError:
            pass
