"""The TPACKET_V3 receive ring: block and frame parsing on blocks built here; live on lo.

The live tests are marked ``privileged``: skipped without root/CAP_NET_RAW on a
developer's machine, a failure under CI.
"""

from __future__ import annotations

import mmap
import os
import select
import socket
import struct
import time

import pytest

from rawinspect.sources.ring import (BLOCK_SIZE, MIN_BLOCKS, TP_STATUS_KERNEL,
                                     TP_STATUS_USER, BlockReader, RingLayout, read_frames,
                                     ring_layout)
from rawinspect.sources.sniffer import Sniffer

FIRST = 48        # the kernel's offset_to_first_pkt: right after tpacket_block_desc
MAC = 82          # where the kernel puts an Ethernet frame's first byte (tp_mac)
BLOCK_STATUS = 8  # tpacket_hdr_v1.block_status inside the block descriptor


def frame_bytes(n: int, size: int = 60) -> bytes:
    """A recognisable packet: its number, then filler."""
    return n.to_bytes(4, "big") + bytes([n % 251]) * (size - 4)


def build_block(buf: mmap.mmap, base: int, packets: list[tuple[int, int, bytes, int]],
                status: int = TP_STATUS_USER) -> None:
    """Write a block as the kernel does: descriptor, then tpacket3_hdr + data per packet."""
    struct.pack_into("=IIIII", buf, base, 3, 0, status, len(packets), FIRST)
    at = base + FIRST
    for i, (sec, nsec, data, wirelen) in enumerate(packets):
        step = (MAC + len(data) + 15) & ~15 if i < len(packets) - 1 else 0
        struct.pack_into("=IIIIIIHH", buf, at, step, sec, nsec, len(data), wirelen,
                         TP_STATUS_USER, MAC, MAC + 14)
        buf[at + MAC:at + MAC + len(data)] = data
        at += step


def packets(first: int, count: int) -> list[tuple[int, int, bytes, int]]:
    return [(1_700_000_000 + n // 1000, (n % 1000) * 1_000_000, frame_bytes(n), 60 + n)
            for n in range(first, first + count)]


def ring(blocks: int = 4) -> tuple[mmap.mmap, RingLayout]:
    layout = RingLayout(BLOCK_SIZE, blocks)
    return mmap.mmap(-1, layout.size), layout


def status(buf: mmap.mmap, block: int) -> int:
    return struct.unpack_from("=I", buf, block * BLOCK_SIZE + BLOCK_STATUS)[0]


def test_frames_come_out_as_copies_with_their_times_and_lengths():
    buf, _ = ring(1)
    want = packets(0, 5)
    build_block(buf, 0, want)
    out: list = []
    read_frames(buf, FIRST, 5, 262144, out)
    assert out == want
    assert all(type(p[2]) is bytes for p in out)
    buf[:] = bytes(len(buf))  # the kernel reuses the block: what we took must not change
    assert out == want


def test_snaplen_cuts_the_captured_bytes_not_the_wire_length():
    buf, _ = ring(1)
    build_block(buf, 0, packets(0, 2))
    out: list = []
    read_frames(buf, FIRST, 2, 20, out)
    assert [len(p[2]) for p in out] == [20, 20]
    assert [p[3] for p in out] == [60, 61]


def test_reader_walks_handed_over_blocks_in_order_and_hands_them_back():
    buf, layout = ring(4)
    build_block(buf, 0, packets(0, 3))
    build_block(buf, BLOCK_SIZE, packets(3, 2))
    build_block(buf, 2 * BLOCK_SIZE, packets(5, 4), status=TP_STATUS_KERNEL)
    reader = BlockReader(buf, layout, 262144)
    got = reader.read(100)
    assert got == packets(0, 5)
    assert [status(buf, b) for b in range(3)] == [TP_STATUS_KERNEL] * 3
    assert reader.read(100) == []  # block 2 is still the kernel's
    build_block(buf, 2 * BLOCK_SIZE, packets(5, 4))
    assert reader.read(100) == packets(5, 4)


def test_a_read_can_stop_inside_a_block_which_stays_ours_until_read():
    buf, layout = ring(4)
    build_block(buf, 0, packets(0, 5))
    build_block(buf, BLOCK_SIZE, packets(5, 5))
    reader = BlockReader(buf, layout, 262144)
    assert reader.read(3) == packets(0, 3)
    assert status(buf, 0) == TP_STATUS_USER
    assert reader.read(4) == packets(3, 4)
    assert (status(buf, 0), status(buf, 1)) == (TP_STATUS_KERNEL, TP_STATUS_USER)
    assert reader.read(10) == packets(7, 3)
    assert status(buf, 1) == TP_STATUS_KERNEL


def test_reader_wraps_around_the_ring_and_hands_back_an_empty_block():
    buf, layout = ring(2)
    reader = BlockReader(buf, layout, 262144)
    n = 0
    for rnd in range(5):  # blocks 0, 1, 0, 1, 0: each filled again once handed back
        block = rnd % 2
        build_block(buf, block * BLOCK_SIZE, packets(n, 1 + rnd))
        assert reader.read(100) == packets(n, 1 + rnd)
        assert status(buf, block) == TP_STATUS_KERNEL
        n += 1 + rnd
    build_block(buf, BLOCK_SIZE, [])
    build_block(buf, 0, packets(n, 2))
    assert reader.read(100) == packets(n, 2)


def test_layout_asks_for_the_buffer_in_whole_blocks():
    assert ring_layout(64 << 20) == RingLayout(BLOCK_SIZE, -(-(64 << 20) // BLOCK_SIZE))
    assert ring_layout(BLOCK_SIZE * 10 + 1).count == 11
    assert ring_layout(1024).count == MIN_BLOCKS
    req = struct.unpack("=7I", RingLayout(BLOCK_SIZE, 8, 1).request())
    assert req == (BLOCK_SIZE, 8, BLOCK_SIZE, 8, 1, 0, 0)


# Live, on lo.

N = 2000


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_all(sniffer: Sniffer, want: int, seconds: float = 5.0) -> list:
    """What the sniffer reads until ``want`` packets, then 50 ms more (or until ``seconds``)."""
    poller = select.poll()
    poller.register(sniffer.fileno(), select.POLLIN)
    got: list = []
    deadline = time.monotonic() + seconds
    quiet_until = None
    while time.monotonic() < deadline:
        poller.poll(10)
        got.extend(sniffer.read(256))
        if len(got) >= want:
            quiet_until = quiet_until or time.monotonic() + 0.05
            if time.monotonic() >= quiet_until:
                break
    return got


def _send(port: int, other: int, count: int) -> None:
    """``count`` numbered datagrams to ``port``; every tenth one also to ``other``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for n in range(count):
            u.sendto(frame_bytes(n, 40), ("127.0.0.1", port))
            if n % 10 == 0:
                u.sendto(frame_bytes(n, 40), ("127.0.0.1", other))


@pytest.mark.privileged
def test_live_ring_counts_orders_and_filters_loopback_packets():
    port, other = _udp_port(), _udp_port()
    sniffer = Sniffer("lo", f"udp and dst port {port}")
    try:
        assert sniffer.ring is not None, "the ring could not be set up"
        _send(port, other, N)
        got = _read_all(sniffer, N)
        drops = sniffer.poll_drops()
    finally:
        sniffer.close()
    numbers = [int.from_bytes(data[42:46], "big") for _s, _n, data, _w in got]
    assert numbers == list(range(N))  # each once (no outgoing copy), in order, no other port
    assert all(struct.unpack_from("!H", data, 36)[0] == port for _s, _n, data, _w in got)
    times = [sec * 10**9 + nsec for sec, nsec, _d, _w in got]
    assert times == sorted(times)
    assert abs(times[-1] / 1e9 - time.time()) < 60
    assert all(len(data) == wirelen == 14 + 20 + 8 + 40 for _s, _n, data, wirelen in got)
    assert drops == 0


@pytest.mark.privileged
def test_live_ring_gives_the_same_records_as_recvmsg(monkeypatch):
    """Both read the kernel's receive timestamp: the same packets, times and bytes."""
    port, other = _udp_port(), _udp_port()
    ringed = Sniffer("lo", f"udp and dst port {port}")
    monkeypatch.setenv("RAWINSPECT_NO_RING", "1")
    plain = Sniffer("lo", f"udp and dst port {port}")
    try:
        assert ringed.ring is not None and plain.ring is None
        _send(port, other, 300)
        a, b = _read_all(ringed, 300), _read_all(plain, 300)
    finally:
        ringed.close()
        plain.close()
    assert len(a) == 300
    assert a == b


@pytest.mark.privileged
def test_live_ring_keeps_the_largest_loopback_segments_whole():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    sniffer = Sniffer("lo", f"tcp src port {port} and greater 1000")
    try:
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        a.sendall(b"y" * 200000)
        c.settimeout(5)
        received = 0
        while received < 200000:  # bounded: each recv returns data or times out
            received += len(c.recv(1 << 20))
        got = _read_all(sniffer, 1, 2.0)
        c.close()
        a.close()
    finally:
        srv.close()
        sniffer.close()
    assert [len(data) for _s, _n, data, _w in got] == [wirelen for _s, _n, _d, wirelen in got]
    assert sum(wirelen - 66 for _s, _n, _d, wirelen in got) == 200000  # Ethernet+IP+TCP+ts
    assert max(wirelen for _s, _n, _d, wirelen in got) > 30000  # lo sends a window's worth at once
