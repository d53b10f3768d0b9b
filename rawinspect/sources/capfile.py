"""Streaming readers for pcap and pcapng files.

Both yield ``Record`` tuples ``(linktype, ts, buf, off, caplen, wirelen)``: the packet
bytes are ``buf[off:off + caplen]``. ``buf`` is a read chunk shared by many records, so
nothing is copied per packet and memory stays flat however large the file is.
A damaged file raises ``CaptureFileError`` after every good record before it was yielded.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Callable, Final, Iterator

CHUNK: Final = 1 << 20
MAX_PACKET: Final = 262144          # wiretap's WTAP_MAX_PACKET_SIZE_STANDARD
MAX_BLOCK: Final = 16 * 1024 * 1024 + 1024

PCAPNG_SHB: Final = 0x0A0D0D0A


class CaptureFileError(Exception):
    """A capture file that cannot be read (further): names file, record and offset."""

    def __init__(self, path: str, message: str, record: int | None = None,
                 offset: int | None = None) -> None:
        where = ""
        if record is not None:
            where = f" at record {record}"
            if offset is not None:
                where += f" (byte offset {offset})"
        super().__init__(f"{path}: {message}{where}")
        self.path = path
        self.record = record
        self.offset = offset


# One packet record: (linktype, ts, buf, off, caplen, wirelen). A plain tuple, not a
# NamedTuple: building one is the per-packet cost of reading.
Record = tuple[int, float, bytes, int, int, int]


class _Chunks:
    """A read buffer over a binary file that can guarantee n bytes at the cursor.

    A file that can seek is read again from the cursor, one chunk at a time: a record
    cut by the chunk's end is read whole with the next, without joining the two (a copy
    of the whole file, and fresh memory for each chunk, a tenth of zeek's time). Any
    other (a pipe) joins what is left to what it reads next."""

    __slots__ = ("f", "buf", "pos", "base", "seeks")

    def __init__(self, f: BinaryIO, initial: bytes = b"") -> None:
        self.f = f
        self.buf = initial
        self.pos = 0
        self.base = 0  # file offset of buf[0]
        self.seeks = f.seekable()

    def ensure(self, n: int) -> bool:
        """Make buf[pos:pos+n] available; False at end of file."""
        if len(self.buf) - self.pos >= n:
            return True
        self.base += self.pos
        if self.seeks:
            self.f.seek(self.base)
            self.pos = 0
            self.buf = self.f.read(max(CHUNK, n))
            return len(self.buf) >= n
        rest = self.buf[self.pos:]
        self.pos = 0
        parts = [rest]
        have = len(rest)
        while have < n:
            more = self.f.read(max(CHUNK, n - have))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.buf = b"".join(parts)
        return have >= n

    @property
    def offset(self) -> int:
        return self.base + self.pos


def open_capture(path: str) -> Iterator[Record]:
    """Records of a pcap or pcapng file, chosen by its magic number."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CaptureFileError(path, f"cannot open: {e.strerror}") from None
    return _read(path, f)


def _read(path: str, f: BinaryIO) -> Iterator[Record]:
    with f:
        head = f.read(24)
        if len(head) < 4:
            raise CaptureFileError(path, "not a pcap or pcapng file (too short)")
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            yield from _read_pcap(path, f, head)
        elif struct.unpack("<I", magic)[0] == PCAPNG_SHB:
            yield from _read_pcapng(path, _Chunks(f, head))
        else:
            raise CaptureFileError(path, f"not a pcap or pcapng file (magic {magic.hex()})")


def _read_pcap(path: str, f: BinaryIO, head: bytes) -> Iterator[Record]:
    if len(head) < 24:
        raise CaptureFileError(path, "pcap file header cut short", offset=0)
    magic = head[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    _vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack(endian + "HHiIII", head[4:24])
    linktype: int = network & 0x0FFFFFFF
    limit: int = max(snaplen, MAX_PACKET)
    scale = 1e-9 if nano else 1e-6
    rec = struct.Struct(endian + "IIII")
    unpack_rec: Callable[[bytes, int], tuple[int, int, int, int]] = rec.unpack_from
    ch = _Chunks(f)
    ch.base = 24
    number = 0
    while True:
        if not ch.ensure(16):
            if len(ch.buf) - ch.pos:
                raise CaptureFileError(path, "file cut short in a record header",
                                       number + 1, ch.offset)
            return
        buf, pos = ch.buf, ch.pos
        sec, frac, caplen, wirelen = unpack_rec(buf, pos)
        number += 1
        if caplen > limit:
            raise CaptureFileError(
                path, f"damaged or corrupt record header (captured length {caplen} "
                f"exceeds the maximum {limit})", number, ch.offset)
        if len(buf) - pos - 16 < caplen:
            if not ch.ensure(16 + caplen):
                raise CaptureFileError(path, "file cut short in the middle of a packet",
                                       number, ch.offset)
            buf, pos = ch.buf, ch.pos
        ch.pos = pos + 16 + caplen
        yield (linktype, sec + frac * scale, buf, pos + 16, caplen, wirelen)


class _Iface:
    """A pcapng interface: what its packets' link type and timestamps mean."""

    __slots__ = ("linktype", "snaplen", "scale", "units", "tsoffset")

    def __init__(self, linktype: int, snaplen: int, scale: float, units: int,
                 tsoffset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.scale = scale          # seconds per tick
        self.units = units          # ticks per second for decimal resolutions, else 0
        self.tsoffset = tsoffset


def _idb_interface(body: bytes, e: str) -> _Iface:
    linktype, _res, snaplen = struct.unpack_from(e + "HHI", body, 0)
    scale, units, tsoffset = 1e-6, 10**6, 0
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(e + "HH", body, pos)
        val = body[pos + 4:pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            r = val[0]
            if r & 0x80:
                scale, units = 2.0 ** -(r & 0x7F), 0
            else:
                scale, units = 10.0 ** -r, 10 ** r
        elif code == 14 and length >= 8:
            tsoffset = struct.unpack(e + "q", val[:8])[0]
        pos += 4 + ((length + 3) & ~3)
    return _Iface(linktype, snaplen, scale, units, tsoffset)


class _NgLayout:
    """pcapng's block fields in one byte order, compiled once and typed."""

    __slots__ = ("e", "u32", "epb", "pb")

    def __init__(self, e: str) -> None:
        self.e = e
        self.u32: Callable[[bytes, int], tuple[int]] = struct.Struct(e + "I").unpack_from
        # Enhanced Packet Block: interface, timestamp high and low, captured, original length
        self.epb: Callable[[bytes, int], tuple[int, int, int, int, int]] = struct.Struct(
            e + "IIIII").unpack_from
        # obsolete Packet Block: interface, drops, timestamp high and low, lengths
        self.pb: Callable[[bytes, int], tuple[int, int, int, int, int, int]] = struct.Struct(
            e + "HHIIII").unpack_from


_NG_LITTLE: Final = _NgLayout("<")
_NG_BIG: Final = _NgLayout(">")


def _read_pcapng(path: str, ch: _Chunks) -> Iterator[Record]:
    ng = _NG_LITTLE  # the section header's type reads the same in both byte orders
    ifaces: list[_Iface] = []
    number = 0
    while True:
        if not ch.ensure(12):
            if len(ch.buf) - ch.pos:
                raise CaptureFileError(path, "file cut short in a block header",
                                       number + 1, ch.offset)
            return
        buf, pos = ch.buf, ch.pos
        btype = ng.u32(buf, pos)[0]
        if btype == PCAPNG_SHB:
            bom = buf[pos + 8:pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                ng = _NG_LITTLE
            elif bom == b"\x1a\x2b\x3c\x4d":
                ng = _NG_BIG
            else:
                raise CaptureFileError(path, "damaged section header (bad byte-order magic)",
                                       number + 1, ch.offset)
            ifaces = []
        blen = ng.u32(buf, pos + 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            raise CaptureFileError(path, f"damaged or corrupt block header (length {blen})",
                                   number + 1, ch.offset)
        if not ch.ensure(blen):
            raise CaptureFileError(path, "file cut short in the middle of a block",
                                   number + 1, ch.offset)
        buf, pos = ch.buf, ch.pos
        if ng.u32(buf, pos + blen - 4)[0] != blen:
            raise CaptureFileError(path, "damaged block (trailing length does not match)",
                                   number + 1, ch.offset)
        offset = ch.offset
        ch.pos = pos + blen
        body = pos + 8
        if btype == 1:
            ifaces.append(_idb_interface(buf[body:pos + blen - 4], ng.e))
        elif btype in (6, 2):
            number += 1
            if btype == 6:
                iid, hi, lo, caplen, wirelen = ng.epb(buf, body)
            else:
                iid, _drops, hi, lo, caplen, wirelen = ng.pb(buf, body)
            data = body + 20
            if iid >= len(ifaces):
                raise CaptureFileError(path, f"packet names interface {iid}, which is not defined",
                                       number, offset)
            if data + caplen > pos + blen - 4:
                raise CaptureFileError(path, f"damaged packet block (captured length {caplen} "
                                       "exceeds the block)", number, offset)
            itf = ifaces[iid]
            ticks = (hi << 32) | lo
            if itf.units:  # seconds + fraction, exactly as pcap and live capture compute it
                sec, frac = divmod(ticks, itf.units)
                ts = sec + itf.tsoffset + frac * itf.scale
            else:
                ts = ticks * itf.scale + itf.tsoffset
            yield (itf.linktype, ts, buf, data, caplen, wirelen)
        elif btype == 3:
            number += 1
            if not ifaces:
                raise CaptureFileError(path, "simple packet block before any interface",
                                       number, offset)
            wirelen = ng.u32(buf, body)[0]
            caplen = min(wirelen, blen - 16, ifaces[0].snaplen or wirelen)
            yield (ifaces[0].linktype, 0.0, buf, body + 4, caplen, wirelen)
