"""Byte-level builders for test packets and capture files (pcap, pcapng)."""

from __future__ import annotations

import socket
import struct


def tcp(sport: int = 40000, dport: int = 80, seq: int = 1, ack: int = 0, flags: int = 0x02,
        win: int = 65535, payload: bytes = b"", options: bytes = b"") -> bytes:
    """A TCP header (checksum left zero, as on loopback) plus payload."""
    options += b"\x00" * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIHHHH", sport, dport, seq, ack, (doff << 12) | flags, win, 0, 0) \
        + options + payload


def ipv4(l4: bytes, src: str = "10.0.0.1", dst: str = "10.0.0.2", proto: int = 6,
         frag: int = 0, options: bytes = b"", totlen: int | None = None) -> bytes:
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(l4) if totlen is None else totlen
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 1, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + options + l4


def ipv6(l4: bytes, src: str = "::1", dst: str = "::2", nxt: int = 6, ext: bytes = b"") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(l4), nxt, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + ext + l4


def udp(payload: bytes = b"", sport: int = 5353, dport: int = 53) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def eth(l3: bytes, ethertype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
    head = b"\x02" * 6 + b"\x04" * 6
    for vid in vlans:
        head += struct.pack("!HH", 0x8100, vid)
    return head + struct.pack("!H", ethertype) + l3


def pcap(records: list[tuple[float, bytes]], linktype: int = 1, big: bool = False,
         nano: bool = False, snaplen: int = 65535, wirelens: list[int] | None = None) -> bytes:
    """A pcap file; ``wirelens`` lets a record claim a longer original length."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for i, (ts, data) in enumerate(records):
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        wire = wirelens[i] if wirelens else len(data)
        out += struct.pack(e + "IIII", sec, frac, len(data), wire) + data
    return out


def _block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(e + "II", btype, length) + body + struct.pack(e + "I", length)


def pcapng(interfaces: list[tuple[int, int | None]], packets: list[tuple[int, int, bytes]],
           big: bool = False) -> bytes:
    """A pcapng file: interfaces are (linktype, tsresol option or None); packets are
    (interface id, timestamp in that interface's units, data)."""
    e = ">" if big else "<"
    out = _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)
    for linktype, tsresol in interfaces:
        opts = b""
        if tsresol is not None:
            opts = struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3
            opts += struct.pack(e + "HH", 0, 0)
        out += _block(1, struct.pack(e + "HHI", linktype, 0, 0) + opts, e)
    for iid, ts, data in packets:
        out += _block(6, struct.pack(e + "IIIII", iid, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                     len(data)) + data, e)
    return out
