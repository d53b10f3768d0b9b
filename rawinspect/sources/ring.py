"""The kernel's memory-mapped receive ring (PACKET_MMAP, TPACKET_V3): no system call per packet.

The kernel writes the packets that pass the socket's filter one after another into the
blocks of a ring mapped into our memory, and hands a block over (status TP_STATUS_USER)
when it is full or when the retire timeout has run out; we read its packets in ring order
and hand the block back (TP_STATUS_KERNEL). From that moment the block is the kernel's
again, so nothing taken from it may be a view into it: each packet's bytes are copied out
(slicing an ``mmap`` makes ``bytes``). The layouts are the kernel's (linux/if_packet.h);
libpcap reads the same ring the same way.
"""

from __future__ import annotations

import errno
import mmap
import socket
import struct
from dataclasses import dataclass

from .packet_source import Packet

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1

RETIRE_MS = 2          # a block that is not full is handed over this long after it opened
# The smallest whole number of pages that holds the block's header and one packet of
# 65,550 bytes (loopback's 64 KiB MTU plus its Ethernet header; GRO's largest aggregate).
BLOCK_SIZE = 17 * 4096
MIN_BLOCKS = 4

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1's block_status,
# num_pkts, offset_to_first_pkt (…blk_len, seq_num, the first and last packets' times).
_BLOCK = struct.Struct("=III")
_BLOCK_STATUS_AT = 8
_STATUS = struct.Struct("=I")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status,
# tp_mac (…tp_net, the VLAN fields, padding).
_FRAME = struct.Struct("=IIIIIIH")
# struct tpacket_req3: block size, block count, frame size, frame count, retire timeout
# (ms), private bytes per block, feature request word.
_REQ3 = struct.Struct("=IIIIIII")


@dataclass(frozen=True)
class RingLayout:
    """How the ring is cut: ``count`` blocks of ``block_size`` bytes, each handed over
    when full or ``retire_ms`` after it opened."""

    block_size: int
    count: int
    retire_ms: int = RETIRE_MS

    @property
    def size(self) -> int:
        """Bytes to map."""
        return self.block_size * self.count

    def request(self) -> bytes:
        """The PACKET_RX_RING argument (one "frame" per block: TPACKET_V3 packs packets)."""
        return _REQ3.pack(self.block_size, self.count, self.block_size, self.count,
                          self.retire_ms, 0, 0)


def ring_layout(bufsize: int, retire_ms: int = RETIRE_MS) -> RingLayout:
    """``bufsize`` bytes of blocks (at least MIN_BLOCKS).

    Blocks of BLOCK_SIZE rather than of the snap length: below about 150,000 packets/s
    most blocks retire by the timeout, part full, so the ring holds ``count`` times
    RETIRE_MS of packets at most, and many small blocks hold more time than a few large
    ones. A packet larger than a block (BIG TCP only) is cut to what fits; its wire
    length is kept.
    """
    return RingLayout(BLOCK_SIZE, max(MIN_BLOCKS, -(-bufsize // BLOCK_SIZE)), retire_ms)


def read_frames(buf: mmap.mmap, offset: int, count: int, snaplen: int,
                out: list[Packet]) -> int:
    """Append ``count`` packets, the first one's header at ``offset``, to ``out`` as
    (sec, nsec, captured bytes (copied), wire length); the offset after the last one."""
    unpack = _FRAME.unpack_from
    append = out.append
    for _ in range(count):
        step, sec, nsec, caplen, wirelen, _status, mac = unpack(buf, offset)
        start = offset + mac
        append((sec, nsec, buf[start:start + (caplen if caplen < snaplen else snaplen)],
                wirelen))
        offset += step
    return offset


class BlockReader:
    """Walks a ring's blocks in the kernel's order: takes each block the kernel handed
    over, reads its packets (a read may stop in the middle of one), and hands it back."""

    def __init__(self, buf: mmap.mmap, layout: RingLayout, snaplen: int) -> None:
        self.buf = buf
        self.block_size = layout.block_size
        self.count = layout.count
        self.snaplen = snaplen
        self.block = 0    # the block being read, or read next
        self.offset = 0   # the next packet's header in that block
        self.left = 0     # packets of that block not read yet; 0: the block is not ours

    def read(self, limit: int) -> list[Packet]:
        """Up to ``limit`` packets from the blocks handed over, in the order they came."""
        out: list[Packet] = []
        while len(out) < limit:
            if not self.left and not self._take():
                break
            n = min(self.left, limit - len(out))
            self.offset = read_frames(self.buf, self.offset, n, self.snaplen, out)
            self.left -= n
            if not self.left:
                self._give_back()
        return out

    def _take(self) -> bool:
        """Open the current block if the kernel handed it over; whether it did."""
        base = self.block * self.block_size
        status, packets, first = _BLOCK.unpack_from(self.buf, base + _BLOCK_STATUS_AT)
        if not status & TP_STATUS_USER:
            return False
        self.offset = base + first
        self.left = packets  # none: the kernel retires no empty block, read() hands it back
        return True

    def _give_back(self) -> None:
        _STATUS.pack_into(self.buf, self.block * self.block_size + _BLOCK_STATUS_AT,
                          TP_STATUS_KERNEL)
        self.block = (self.block + 1) % self.count
        self.left = 0


class Ring:
    """A TPACKET_V3 receive ring on a packet socket, set up before the socket is bound."""

    def __init__(self, sock: socket.socket, layout: RingLayout, snaplen: int) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        layout = _request_ring(sock, layout)
        try:
            self.map = mmap.mmap(sock.fileno(), layout.size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, RingLayout(0, 0, 0).request())
            raise
        self.layout = layout
        self.reader = BlockReader(self.map, layout, snaplen)

    def read(self, limit: int) -> list[Packet]:
        """Up to ``limit`` waiting packets as (sec, nsec, captured bytes, wire length)."""
        return self.reader.read(limit)

    def close(self) -> None:
        """Unmap the ring (the socket's close frees it)."""
        self.map.close()


def _request_ring(sock: socket.socket, layout: RingLayout) -> RingLayout:
    """PACKET_RX_RING, with fewer blocks while the kernel lacks the memory; the layout set."""
    while True:
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, layout.request())
            return layout
        except OSError as e:
            if e.errno != errno.ENOMEM or layout.count <= MIN_BLOCKS:
                raise
            layout = RingLayout(layout.block_size, max(MIN_BLOCKS, layout.count // 2),
                                layout.retire_ms)
