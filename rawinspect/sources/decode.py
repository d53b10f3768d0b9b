"""Bytes to Segment or Datagram: link layer, IPv4/IPv6, TCP and UDP headers, decoded
with ``struct``.

``Decoder.decode`` returns a Segment (TCP), a Datagram (UDP), or a short string saying why
the packet was skipped (not IP, neither TCP nor UDP, unsupported link type...). Checksums are never checked:
loopback captures usually carry unfilled ones.
"""

from __future__ import annotations

from typing import Callable, Final

import struct

from ..core.datagram import PREVIEW, Datagram
from ..core.options import syn_options
from ..core.segment import SYN, Segment

# Link types (LINKTYPE_* numbers as in pcap files); LINKTYPES below says how to read each.
LT_NULL: Final = 0
LT_ETHERNET: Final = 1
LT_RAW: Final = 101
LT_LOOP: Final = 108
LT_SLL: Final = 113
LT_IPV4: Final = 228
LT_IPV6: Final = 229
LT_NFLOG: Final = 239
LT_SLL2: Final = 276

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
VLAN_TYPES: Final = (0x8100, 0x88A8, 0x9100)
BSD_AF_INET6: Final = (10, 24, 28, 30)
IPV6_EXT: Final = (0, 43, 60, 51, 135, 139, 140)

# Header layouts, unpacked in one step each and typed, so that compiled code gets plain ints.
_Ints10 = tuple[int, int, int, int, int, int, int, int, int, int]
_Ints11 = tuple[int, int, int, int, int, int, int, int, int, int, int]
_u16: Final[Callable[[bytes, int], tuple[int]]] = struct.Struct("!H").unpack_from
_u32le: Final[Callable[[bytes, int], tuple[int]]] = struct.Struct("<I").unpack_from
# Fast paths: Ethernet, then IPv4 with IHL=5 (or IPv6 without extension headers), then TCP.
_eth_ip4_tcp: Final[Callable[[bytes, int], _Ints11]] = struct.Struct(
    "!12xHBxHxxHxB10xHHIIHH").unpack_from
_eth_ip6_tcp: Final[Callable[[bytes, int], _Ints10]] = struct.Struct(
    "!12xHB3xHBx32xHHIIHH").unpack_from
_ip4: Final[Callable[[bytes, int], tuple[int, int, int, int, bytes, bytes]]] = struct.Struct(
    "!BxHxxHxB2x4s4s").unpack_from
_ip6: Final[Callable[[bytes, int], tuple[int, int, bytes, bytes]]] = struct.Struct(
    "!4xHBx16s16s").unpack_from
_tcp: Final[Callable[[bytes, int], tuple[int, int, int, int, int, int]]] = struct.Struct(
    "!HHIIHH").unpack_from
_udp_header: Final[Callable[[bytes, int], tuple[int, int, int]]] = struct.Struct(
    "!HHH").unpack_from
_nflog_tlv: Final[Callable[[bytes, int], tuple[int, int]]] = struct.Struct("<HH").unpack_from
# replay -j: a flow's or a packet's addresses, as numbers, to tell its job.
_flow4: Final[Callable[[bytes, int], tuple[int, int, int, int]]] = struct.Struct(
    "!IIHH").unpack_from
_ends4: Final[Callable[[bytes, int], tuple[int, int]]] = struct.Struct("!II").unpack_from
_ip6_words: Final[Callable[[bytes, int], tuple[int, int, int, int]]] = struct.Struct(
    "!IIII").unpack_from

SKIP_NOT_IP: Final = "not IP"
SKIP_NOT_TCP: Final = "not TCP or UDP"
SKIP_FRAGMENT: Final = "IP fragment without TCP header"
SKIP_TRUNCATED: Final = "cut short before the TCP flags"
SKIP_BAD_IP: Final = "malformed IP header"
SKIP_BAD_UDP: Final = "cut short before the UDP length"
UDP: Final = 17
# A TCP segment of a connection that another of replay -j's jobs annotates (not skipped).
OTHER_JOB: Final = "another job's connection"
# Spreads the ends' bits over the high half (Knuth's multiplicative hash), so that a
# connection's job does not follow its client port's parity (Linux prefers even ones).
MIX: Final = 40503
Decoded = Segment | Datagram | str   # a segment, a datagram, or why the packet was skipped


def _folded(buf: bytes, pos: int) -> int:
    """The IPv6 address at ``pos`` folded into 32 bits."""
    a, b, c, d = _ip6_words(buf, pos)
    return a ^ b ^ c ^ d


def unsupported(linktype: int) -> str:
    """The skip reason for a link type we do not decode."""
    return f"unsupported link type {linktype}"


class Decoder:
    """Decodes packet records into Segments (TCP) and Datagrams (UDP).

    Addresses stay in wire form in ``Segment.flow``; the Segment prints them on demand.
    Job ``shard`` of ``jobs`` (``replay -j``) decodes only the TCP segments whose 4-tuple,
    either direction, hashes to it, so that a connection and every later one on the same
    ports stay in one job; the others it tells apart as ``OTHER_JOB``, before the rest of
    their header is read.
    """

    def __init__(self, shard: int = 0, jobs: int = 1) -> None:
        self.shard = shard
        self.jobs = jobs

    def mine(self, flow: bytes) -> bool:
        """Whether the connection of ``flow`` (a Segment's) is this job's."""
        if self.jobs == 1:
            return True
        if len(flow) == 12:
            a, b, ap, bp = _flow4(flow, 0)
            return self._mine(a, ap, b, bp)
        return self._mine(_folded(flow, 0), _u16(flow, 32)[0], _folded(flow, 16),
                          _u16(flow, 34)[0])

    def _mine(self, a: int, ap: int, b: int, bp: int) -> bool:
        """Whether the connection between ``a`` port ``ap`` and ``b`` port ``bp`` (the
        addresses as 32-bit numbers) is this job's: a hash of each end, the same both ways,
        in compiled code without an object made."""
        both = (a ^ ((ap * MIX) & 0xFFFFFFFF)) ^ (b ^ ((bp * MIX) & 0xFFFFFFFF))
        return (((both * MIX) & 0xFFFFFFFF) >> 16) % self.jobs == self.shard

    def decode(self, frame: int, linktype: int, ts: float, buf: bytes, off: int,
               caplen: int, wirelen: int) -> Decoded:
        """Decode one packet record; a Segment, a Datagram, or why it was skipped."""
        end = off + caplen
        if linktype == LT_ETHERNET and caplen >= 54:
            # Fast paths: untagged Ethernet, then IPv4 without options or IPv6 without
            # extension headers, then TCP. Anything else takes the general path below.
            etype_hi = buf[off + 12]
            if etype_hi == 0x08:
                (etype, vihl, totlen, frag, proto, sport, dport, seq, ack, offfl,
                 win) = _eth_ip4_tcp(buf, off)
                if etype == ETH_IPV4 and vihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                    hl = (offfl >> 12) * 4
                    if totlen == 0:
                        totlen = wirelen - 14
                    if off + 34 + hl <= end and hl >= 20:
                        if self.jobs > 1:
                            a, b = _ends4(buf, off + 26)
                            if not self._mine(a, sport, b, dport):
                                return OTHER_JOB
                        flags = offfl & 0x1FF
                        plen = totlen - 20 - hl
                        raw = buf[off + 54:off + 34 + hl] if hl > 20 else b""
                        return Segment(frame, ts, "", sport, "", dport, seq, ack, flags, win,
                                       plen if plen > 0 else 0,
                                       syn_options(raw) if flags & SYN else None,
                                       (), buf[off + 26:off + 38], raw)
            elif etype_hi == 0x86 and caplen >= 74:
                (etype, vtc, plen, nxt, sport, dport, seq, ack, offfl,
                 win) = _eth_ip6_tcp(buf, off)
                if etype == ETH_IPV6 and nxt == 6 and plen and vtc >> 4 == 6:
                    hl = (offfl >> 12) * 4
                    if off + 54 + hl <= end and hl >= 20:
                        if self.jobs > 1 and not self._mine(
                                _folded(buf, off + 22), sport, _folded(buf, off + 38), dport):
                            return OTHER_JOB
                        flags = offfl & 0x1FF
                        plen -= hl
                        raw = buf[off + 74:off + 54 + hl] if hl > 20 else b""
                        return Segment(frame, ts, "", sport, "", dport, seq, ack, flags, win,
                                       plen if plen > 0 else 0,
                                       syn_options(raw) if flags & SYN else None,
                                       (), buf[off + 22:off + 58], raw)
        link = LINKTYPES.get(linktype)
        if link is None:
            return unsupported(linktype)
        net = link[1](buf, off, end)
        if isinstance(net, str):
            return net
        proto, pos = net
        if proto == 4:
            return self._ipv4(frame, ts, buf, pos, end, wirelen - (pos - off))
        return self._ipv6(frame, ts, buf, pos, end, wirelen - (pos - off))

    def _ipv4(self, frame: int, ts: float, buf: bytes, pos: int, end: int,
              wire: int) -> Decoded:
        if pos + 20 > end:
            return SKIP_BAD_IP
        vihl, totlen, frag, proto, s, d = _ip4(buf, pos)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            return SKIP_BAD_IP
        if proto != 6 and proto != UDP:
            return SKIP_NOT_TCP
        issues: tuple[str, ...] = ()
        if frag & 0x3FFF:
            if frag & 0x1FFF:
                return SKIP_FRAGMENT
            issues = ("ip_fragment",)
        if totlen == 0:  # TSO/GRO super-segment
            totlen = wire
        addrs = b"".join((s, d))   # not s + d: see _tcp
        if proto == UDP:
            return _udp(frame, ts, buf, pos + ihl, end, totlen - ihl, addrs)
        return self._tcp(frame, ts, buf, pos + ihl, end, totlen - ihl, addrs, issues)

    def _ipv6(self, frame: int, ts: float, buf: bytes, pos: int, end: int,
              wire: int) -> Decoded:
        if pos + 40 > end:
            return SKIP_BAD_IP
        plen, nxt, s, d = _ip6(buf, pos)
        if buf[pos] >> 4 != 6:
            return SKIP_BAD_IP
        if plen == 0:  # jumbogram or TSO
            plen = wire - 40
        p = pos + 40
        issues: tuple[str, ...] = ()
        while nxt in IPV6_EXT or nxt == 44:
            if p + 8 > end:
                return SKIP_NOT_TCP
            if nxt == 44:
                if _u16(buf, p + 2)[0] & 0xFFF8:
                    return SKIP_FRAGMENT
                issues = ("ip_fragment",)
                hlen = 8
            elif nxt == 51:
                hlen = (buf[p + 1] + 2) * 4
            else:
                hlen = (buf[p + 1] + 1) * 8
            nxt = buf[p]
            p += hlen
            plen -= hlen
        if nxt != 6 and nxt != UDP:
            return SKIP_NOT_TCP
        addrs = b"".join((s, d))   # not s + d: see _tcp
        if nxt == UDP:
            return _udp(frame, ts, buf, p, end, plen, addrs)
        return self._tcp(frame, ts, buf, p, end, plen, addrs, issues)

    def _tcp(self, frame: int, ts: float, buf: bytes, pos: int, end: int, iplen: int,
             addrs: bytes, issues: tuple[str, ...]) -> Segment | str:
        """The TCP header at ``pos``; ``addrs`` holds the raw source and destination."""
        avail = end - pos
        if avail < 14:
            return SKIP_TRUNCATED
        if avail < 20:
            sport, dport, seq, ack = struct.unpack_from("!HHII", buf, pos)
            offfl, win = _u16(buf, pos + 12)[0], 0
        else:
            sport, dport, seq, ack, offfl, win = _tcp(buf, pos)
        # Joined, not added: compiled by mypyc 1.13, ``bytes + bytes`` leaks its left
        # operand when that is a new object (mypyc issue 1192), here every packet.
        flow = b"".join((addrs, buf[pos:pos + 4]))
        if not self.mine(flow):
            return OTHER_JOB
        hl = (offfl >> 12) * 4
        if hl > avail:
            issues += ("truncated",)
        flags = offfl & 0x1FF
        raw = buf[pos + 20:min(pos + hl, end)] if hl > 20 else b""
        return Segment(frame, ts, "", sport, "", dport, seq, ack, flags, win,
                       max(iplen - max(hl, 20), 0), syn_options(raw) if flags & SYN else None,
                       issues, flow, raw)


def _udp(frame: int, ts: float, buf: bytes, pos: int, end: int, iplen: int,
         addrs: bytes) -> Datagram | str:
    """The UDP header at ``pos``: ports, length (the IP length when the header says 0:
    GSO), the payload's first bytes."""
    if end - pos < 8:
        return SKIP_BAD_UDP
    sport, dport, length = _udp_header(buf, pos)
    size = (length if length >= 8 else iplen) - 8
    data = buf[pos + 8:min(pos + 8 + min(max(size, 0), PREVIEW), end)]
    return Datagram(frame, ts, sport, dport, max(size, 0), data,
                    b"".join((addrs, buf[pos:pos + 4])))


# Link layers: where the IP header starts. Each returns (IP version, offset) or a skip reason.
def _ethernet(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """Ethernet II, through any VLAN tags (the fast path in Decoder.decode comes first)."""
    pos = off + 12
    if pos + 2 > end:
        return SKIP_NOT_IP
    etype = _u16(buf, pos)[0]
    while etype in VLAN_TYPES and pos + 6 <= end:
        pos += 4
        etype = _u16(buf, pos)[0]
    return _ethertype(etype, pos + 2)


def _raw(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """The IP header first; its version nibble says which."""
    if off >= end:
        return SKIP_NOT_IP
    version = buf[off] >> 4
    return (version, off) if version in (4, 6) else SKIP_NOT_IP


def _sll(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """Linux cooked capture v1: 16-byte header, protocol last."""
    return _ethertype(_u16(buf, off + 14)[0], off + 16) if off + 16 <= end else SKIP_NOT_IP


def _sll2(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """Linux cooked capture v2: 20-byte header, protocol first."""
    return _ethertype(_u16(buf, off)[0], off + 20) if off + 20 <= end else SKIP_NOT_IP


def _bsd_null(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """BSD loopback: address family in the writer's byte order (usually little-endian)."""
    if off + 4 > end:
        return SKIP_NOT_IP
    family = int.from_bytes(buf[off:off + 4], "little")
    if family > 0xFFFF:  # written by a big-endian host
        family = int.from_bytes(buf[off:off + 4], "big")
    return _bsd_family(family, off + 4)


def _bsd_loop(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """OpenBSD loopback: address family in network byte order."""
    if off + 4 > end:
        return SKIP_NOT_IP
    return _bsd_family(int.from_bytes(buf[off:off + 4], "big"), off + 4)


def _bsd_family(family: int, pos: int) -> tuple[int, int] | str:
    if family == 2:
        return 4, pos
    if family in BSD_AF_INET6:
        return 6, pos
    return SKIP_NOT_IP


def _ethertype(etype: int, pos: int) -> tuple[int, int] | str:
    if etype == ETH_IPV4:
        return 4, pos
    if etype == ETH_IPV6:
        return 6, pos
    return SKIP_NOT_IP


def _nflog(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """NFLOG: 4-byte header (family first), then TLVs in host byte order; 9 = payload."""
    if off + 4 > end:
        return SKIP_NOT_IP
    family = buf[off]
    pos = off + 4
    while pos + 4 <= end:
        length, ttype = _nflog_tlv(buf, pos)
        if length < 4:
            break
        if ttype & 0x7FFF == 9:
            version = 4 if family == 2 else 6 if family == 10 else buf[pos + 4] >> 4
            return version, pos + 4
        pos += (length + 3) & ~3
    return SKIP_NOT_IP


LinkReader = Callable[[bytes, int, int], tuple[int, int] | str]
# The link types we decode: number → (name, reader). Anything else is skipped as unsupported.
LINKTYPES: Final[dict[int, tuple[str, LinkReader]]] = {
    LT_NULL: ("BSD loopback", _bsd_null),
    LT_ETHERNET: ("Ethernet", _ethernet),
    12: ("raw IP", _raw),  # DLT_RAW on some BSDs
    14: ("raw IP", _raw),
    LT_RAW: ("raw IP", _raw),
    LT_LOOP: ("OpenBSD loopback", _bsd_loop),
    LT_SLL: ("Linux cooked (SLL)", _sll),
    LT_IPV4: ("raw IPv4", _raw),
    LT_IPV6: ("raw IPv6", _raw),
    LT_NFLOG: ("NFLOG", _nflog),
    LT_SLL2: ("Linux cooked (SLL2)", _sll2),
}

