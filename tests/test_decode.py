"""Capture file reading and header decoding, from bytes built by hand."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest

from frames import eth, ipv4, ipv6, pcap, pcapng, tcp, udp
from rawinspect.sources.capfile import CaptureFileError, open_capture
from rawinspect.sources.decode import LINKTYPES, OTHER_JOB, Decoder
from rawinspect.core.options import options_json, options_text, parse_options, syn_options
from rawinspect.core.datagram import Datagram
from rawinspect.core.segment import Segment, flow_key, reverse_flow

SYN_OPTS = b"\x02\x04\x05\xb4" + b"\x01\x03\x03\x07" + b"\x04\x02"  # mss, nop, wscale 7, sackOK


def decode_file(path: Path) -> list[Segment | str]:
    d = Decoder()
    return [d.decode(i, *rec) for i, rec in enumerate(open_capture(str(path)), start=1)]


def write(tmp_path: Path, data: bytes, name: str = "t.pcap") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, big, nano):
    frame = eth(ipv4(tcp(flags=0x02, seq=7, options=SYN_OPTS)))
    segs = decode_file(write(tmp_path, pcap([(1700000000.25, frame)], big=big, nano=nano)))
    (seg,) = segs
    assert isinstance(seg, Segment)
    assert (seg.src, seg.sport, seg.dst, seg.dport, seg.seq) == ("10.0.0.1", 40000, "10.0.0.2", 80, 7)
    assert seg.ts == pytest.approx(1700000000.25)
    assert seg.opts == {"mss": 1460, "wscale": 7, "sack_perm": 1}


IPV4_LINKS = [
    (1, eth(ipv4(tcp()), vlans=(0,))),
    (1, eth(ipv4(tcp()), vlans=(5, 6))),
    (1, eth(ipv4(tcp(), options=b"\x01\x01\x01\x00"))),          # IPv4 options
    (113, b"\x00\x00\x03\x04\x00\x06" + b"\x00" * 8 + b"\x08\x00" + ipv4(tcp())),  # SLL
    (276, b"\x08\x00\x00\x00" + b"\x00" * 16 + ipv4(tcp())),       # SLL2
    (0, struct.pack("<I", 2) + ipv4(tcp())),                       # NULL, little-endian host
    (0, struct.pack(">I", 2) + ipv4(tcp())),                       # NULL, big-endian host
    (108, struct.pack(">I", 2) + ipv4(tcp())),                     # OpenBSD LOOP
    (101, ipv4(tcp())), (12, ipv4(tcp())), (14, ipv4(tcp())),      # raw IP
    (228, ipv4(tcp())),
    (239, b"\x02\x00\x00\x00" + struct.pack("<HH", 8, 1) + b"\x08\x00\x00\x00"
     + struct.pack("<HH", 4 + len(ipv4(tcp())), 9) + ipv4(tcp())),  # NFLOG
]
IPV6_LINKS = [
    (1, eth(ipv6(tcp(payload=b"abc")), ethertype=0x86DD)),
    (0, struct.pack("<I", 30) + ipv6(tcp(payload=b"abc"))),   # macOS AF_INET6
    (0, struct.pack("<I", 24) + ipv6(tcp(payload=b"abc"))),   # NetBSD/OpenBSD AF_INET6
    (229, ipv6(tcp(payload=b"abc"))),
    (1, eth(ipv6(tcp(payload=b"abc"), nxt=0, ext=b"\x06\x00" + b"\x00" * 6), ethertype=0x86DD)),
]


@pytest.mark.parametrize("linktype,frame", IPV4_LINKS)
def test_link_types_ipv4(tmp_path, linktype, frame):
    (seg,) = decode_file(write(tmp_path, pcap([(1.0, frame)], linktype=linktype)))
    assert isinstance(seg, Segment), seg
    assert (seg.src, seg.dst, seg.flags) == ("10.0.0.1", "10.0.0.2", 0x02)


@pytest.mark.parametrize("linktype,frame", IPV6_LINKS)
def test_link_types_ipv6(tmp_path, linktype, frame):
    (seg,) = decode_file(write(tmp_path, pcap([(1.0, frame)], linktype=linktype)))
    assert isinstance(seg, Segment), seg
    assert (seg.src, seg.dst, seg.payload) == ("::1", "::2", 3)


def test_every_link_type_in_the_table_is_named_and_tested():
    assert set(LINKTYPES) == {lt for lt, _ in IPV4_LINKS + IPV6_LINKS}
    assert all(name for name, _ in LINKTYPES.values())


@pytest.mark.parametrize("linktype", sorted(LINKTYPES))
def test_a_cut_link_header_is_not_ip(linktype):
    assert Decoder().decode(1, linktype, 0.0, b"\x00\x00", 0, 2, 2) == "not IP"


def test_non_tcp_and_unsupported_are_reasons_not_errors(tmp_path):
    frames = [(1.0, eth(b"\x00" * 28, ethertype=0x0806)),             # ARP
              (2.0, eth(ipv4(b"\x00" * 8, proto=1)))]                  # ICMP
    assert decode_file(write(tmp_path, pcap(frames))) == ["not IP", "not TCP or UDP"]
    (reason,) = decode_file(write(tmp_path, pcap([(1.0, b"\x00" * 40)], linktype=147), "u.pcap"))
    assert reason == "unsupported link type 147"


def test_ethernet_padding_does_not_count_as_payload(tmp_path):
    frame = eth(ipv4(tcp(flags=0x10))) + b"\x00" * 6   # padded to 60 bytes
    (seg,) = decode_file(write(tmp_path, pcap([(1.0, frame)])))
    assert seg.payload == 0


def test_fragments_and_snaplen_cuts_are_flagged(tmp_path):
    first = eth(ipv4(tcp(payload=b"x" * 40), frag=0x2000))      # MF set, offset 0
    later = eth(ipv4(b"y" * 40, frag=0x0005))                    # offset 40: no TCP header
    cut = eth(ipv4(tcp(flags=0x02, options=SYN_OPTS)))[:14 + 20 + 24]
    segs = decode_file(write(tmp_path, pcap([(1.0, first), (2.0, later), (3.0, cut)],
                                            wirelens=[len(first), len(later), len(cut) + 8])))
    assert "ip_fragment" in segs[0].issues
    assert segs[1] == "IP fragment without TCP header"
    assert "truncated" in segs[2].issues and segs[2].flags == 0x02
    too_short = eth(ipv4(tcp()))[:14 + 20 + 10]
    (reason,) = decode_file(write(tmp_path, pcap([(1.0, too_short)]), "s.pcap"))
    assert reason == "cut short before the TCP flags"


def test_pcapng_interfaces_with_own_link_types_and_resolutions(tmp_path):
    data = pcapng([(1, None), (101, 9), (113, 0x80 | 10)],
                  [(0, 1_500_000, eth(ipv4(tcp()))),
                   (1, 2_500_000_000, ipv4(tcp())),
                   (2, 3 << 10, b"\x00" * 14 + b"\x08\x00" + ipv4(tcp()))])
    segs = decode_file(write(tmp_path, data, "t.pcapng"))
    assert [s.ts for s in segs] == pytest.approx([1.5, 2.5, 3.0])
    big = pcapng([(1, None)], [(0, 1_000_000, eth(ipv4(tcp())))], big=True)
    (seg,) = decode_file(write(tmp_path, big, "b.pcapng"))
    assert seg.ts == pytest.approx(1.0)


def test_damage_is_reported_with_record_and_offset_after_good_records(tmp_path):
    good = [(1.0, eth(ipv4(tcp()))), (2.0, eth(ipv4(tcp())))]
    data = pcap(good)
    cut = write(tmp_path, data + pcap([(3.0, eth(ipv4(tcp())))])[24:24 + 30], "cut.pcap")
    got = []
    with pytest.raises(CaptureFileError) as err:
        for rec in open_capture(str(cut)):
            got.append(rec)
    assert len(got) == 2
    assert "record 3" in str(err.value) and f"byte offset {len(data)}" in str(err.value)

    corrupt = write(tmp_path, data + struct.pack("<IIII", 3, 0, 4_325_376, 4_325_376) + b"\0" * 64,
                    "bad.pcap")
    with pytest.raises(CaptureFileError, match="corrupt.*record 3"):
        list(open_capture(str(corrupt)))


@pytest.mark.parametrize("content,message", [
    (b"", "too short"), (b"hello world, not a capture", "not a pcap or pcapng file"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "header cut short")])
def test_not_a_capture(tmp_path, content, message):
    with pytest.raises(CaptureFileError, match=message):
        list(open_capture(str(write(tmp_path, content))))


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CaptureFileError, match="nope.pcap: cannot open"):
        list(open_capture(str(tmp_path / "nope.pcap")))


def test_reader_streams_without_loading_the_file(tmp_path):
    frame = eth(ipv4(tcp(payload=b"z" * 1000)))
    p = write(tmp_path, pcap([(float(i), frame) for i in range(3000)]))  # ~3 MB, > 1 chunk
    records = open_capture(str(p))
    first = next(records)
    assert len(first[2]) <= 2 * (1 << 20)  # one read chunk, not the whole file
    assert sum(1 for _ in records) == 2999


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_a_pipe_reads_the_records_a_file_reads_across_chunks(tmp_path, kind):
    """Records cut by a chunk's end come whole, from a file (read again from the record)
    and from a pipe (what is left joined to what comes next), 3 MB in 1 MB chunks."""
    import os
    import threading
    frames = [eth(ipv4(tcp(payload=b"z" * (i * 37 % 1400)))) for i in range(4000)]
    data = (pcap([(float(i), f) for i, f in enumerate(frames)]) if kind == "pcap" else
            pcapng([(1, None)], [(0, i, f) for i, f in enumerate(frames)]))
    path = write(tmp_path, data)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    try:
        from_pipe = [bytes(r[2][r[3]:r[3] + r[4]]) for r in open_capture(str(fifo))]
    finally:
        writer.join(timeout=30)
    from_file = [bytes(r[2][r[3]:r[3] + r[4]]) for r in open_capture(str(path))]
    assert from_file == from_pipe == frames


# Every segment keeps its option bytes; parse_options reads them on demand.
TS = b"\x01\x01\x08\x0a" + struct.pack("!II", 123, 45)          # NOP NOP timestamps
SACK2 = b"\x01\x01\x05\x12" + struct.pack("!IIII", 100, 200, 300, 400)
LINUX_SYN = (b"\x02\x04\xff\xd7" + b"\x04\x02" + b"\x08\x0a" + struct.pack("!II", 7, 0)
             + b"\x01\x03\x03\x0a")                               # MSS SACK_PERM TS NOP WS=10


def decode_one(tmp_path: Path, frame: bytes, linktype: int = 1) -> Segment:
    (seg,) = decode_file(write(tmp_path, pcap([(1.0, frame)], linktype=linktype)))
    assert isinstance(seg, Segment), seg
    return seg


@pytest.mark.parametrize("wrap", [
    lambda t: eth(ipv4(t)), lambda t: eth(ipv6(t), ethertype=0x86DD),
    lambda t: eth(ipv4(t), vlans=(5,))], ids=["ipv4-fast", "ipv6-fast", "general"])
def test_every_segment_keeps_its_option_bytes(tmp_path, wrap):
    seg = decode_one(tmp_path, wrap(tcp(flags=0x10, options=TS + SACK2)))
    assert seg.raw_opts == TS + SACK2 and seg.opts is None
    o = parse_options(seg.raw_opts)
    assert (o.ts_val, o.ts_ecr, o.sack, o.malformed) == (123, 45, [(100, 200), (300, 400)], False)
    assert o.kinds == [8, 5]
    assert decode_one(tmp_path, wrap(tcp(flags=0x10))).raw_opts == b""


def test_every_option_kind_is_parsed(tmp_path):
    seg = decode_one(tmp_path, eth(ipv4(tcp(flags=0x02, options=LINUX_SYN + b"\x22\x02"
                                                                    + b"\x1e\x04\x00\x00"))))
    o = parse_options(seg.raw_opts)
    assert (o.mss, o.wscale, o.ws_multiplier, o.sack_perm, o.ts_val, o.ts_ecr, o.tfo) == (
        65495, 10, 1024, True, 7, 0, 0)
    assert (o.sack, o.unknown, o.malformed) == ([], [30], False)
    assert o.kinds == [2, 4, 8, 3, 34, 30]
    assert seg.opts == {"mss": 65495, "wscale": 10, "sack_perm": 1, "tfo": 0}


@pytest.mark.parametrize("raw,parsed,malformed", [
    (b"\x02\x04\x05", {}, True),                          # MSS cut by the header's end
    (b"\x08\x0a\x00\x00\x00\x01", {}, True),              # timestamps cut
    (b"\x02\x04\x05\xb4\x03", {"mss": 1460}, True),       # kind without a length byte
    (b"\x02\x01\x05\xb4", {}, True),                      # length below 2
    (b"\x02\x00\x05\xb4", {}, True),                      # length 0 (would loop forever)
    (b"\x02\x05\x05\xb4\x00\x01\x01\x01", {}, True),      # MSS with the wrong length: skipped
    (b"\x02\x05\x05\xb4\x00\x03\x03\x07", {"wscale": 7}, True),  # ... then parsing goes on
    (b"\x05\x06\x00\x00\x00\x01", {}, True),              # SACK block cut in half
    (b"\x03\x03\x0e\x00\x02\x04\x05\xb4", {"wscale": 14}, False),  # EOL ends the list
    (b"\x03\x03\x0f", {"wscale": 14}, False),             # shift 15 is used as 14
])
def test_malformed_options_stop_and_flag_never_raise(raw, parsed, malformed):
    o = parse_options(raw)
    assert o.malformed == malformed
    assert syn_options(raw) == parsed


def test_truncated_header_options_are_flagged_not_raised(tmp_path):
    cut = eth(ipv4(tcp(flags=0x10, options=TS)))[:14 + 20 + 26]   # 6 of 12 option bytes
    (seg,) = decode_file(write(tmp_path, pcap([(1.0, cut)], wirelens=[len(cut) + 6])))
    assert "truncated" in seg.issues and seg.raw_opts == TS[:6]
    assert parse_options(seg.raw_opts).malformed and options_text(seg) == "MALFORMED"


def test_options_text_is_wiresharks_compact_form(tmp_path):
    syn = decode_one(tmp_path, eth(ipv4(tcp(flags=0x02, options=LINUX_SYN))))
    assert options_text(syn) == "MSS=65495 SACK_PERM TSval=7 TSecr=0 WS=1024"
    ack = decode_one(tmp_path, eth(ipv4(tcp(flags=0x10, ack=101, options=TS + SACK2))))
    assert options_text(ack) == "TSval=123 TSecr=45 SLE=100 SRE=200 SLE=300 SRE=400"
    assert options_text(ack, rel_ack=1) == "TSval=123 TSecr=45 SLE=0 SRE=100 SLE=200 SRE=300"
    odd = decode_one(tmp_path, eth(ipv4(tcp(flags=0x02, options=b"\x22\x0a" + b"c" * 8
                                                                + b"\x1e\x02\x02\x02"))))
    assert options_text(odd) == "TFO=C OPT=30 MALFORMED"
    assert options_text(decode_one(tmp_path, eth(ipv4(tcp(flags=0x10))))) == ""


@pytest.mark.parametrize("raw,ack,rel_ack,text", [
    (b"", 0, 0, "{}"),
    (TS, 0, 0, '{"ts":[123,45]}'),
    (LINUX_SYN, 0, 0, '{"mss":65495,"wscale":10,"sack_perm":true,"ts":[7,0]}'),
    (TS + SACK2, 101, 1, '{"ts":[123,45],"sack":[[0,100],[200,300]]}'),
    (b"\x05\x0a" + struct.pack("!II", 5, 10), 2**32 - 5, 10,    # edges across the wrap
     '{"sack":[[20,25]]}'),
    (b"\x22\x02\xfd\x04\x00\x00\x02\x04", 0, 0, '{"tfo":0,"unknown":[253],"malformed":true}'),
])
def test_options_json(raw, ack, rel_ack, text):
    assert options_json(raw, ack, rel_ack) == text


def test_udp_is_a_datagram_with_ports_length_and_payload(tmp_path):
    frames = [(1.0, eth(ipv4(udp(b"hello\n\x00", 40000, 9999), "127.0.0.1", "127.0.0.2",
                             proto=17))),
              (2.0, eth(ipv6(udp(b"x" * 100), nxt=17), ethertype=0x86DD))]
    d4, d6 = decode_file(write(tmp_path, pcap(frames)))
    assert isinstance(d4, Datagram) and isinstance(d6, Datagram)
    assert (d4.frame, d4.sender, d4.receiver, d4.length) == (1, "127.0.0.1:40000",
                                                             "127.0.0.2:9999", 7)
    assert d4.text() == 'UDP 127.0.0.1:40000 > 127.0.0.2:9999: length 7 "hello\\x0a\\x00"'
    assert (d6.sender, d6.length, len(d6.data)) == ("[::1]:5353", 100, 64)
    assert d6.preview(4) == '"xxxx"…'


def test_a_udp_header_cut_short_is_a_reason(tmp_path):
    frame = eth(ipv4(b"\x00" * 6, proto=17, totlen=34))
    assert decode_file(write(tmp_path, pcap([(1.0, frame)]))) == [
        "cut short before the UDP length"]


@pytest.mark.parametrize("src, dst", [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")])
def test_flow_keys_keep_no_memory(src, dst) -> None:
    """A flow key and its reverse, made 20,000 times, leave nothing behind. Compiled,
    mypyc 1.13 leaked the left operand of ``bytes + bytes`` when it was a new object
    (mypyc issue 1192): a hundred bytes for every new connection, and for every packet
    that replay -j's workers shard."""
    flow = flow_key(src, 40000, dst, 80)
    assert reverse_flow(reverse_flow(flow)) == flow == flow_key(src, 40000, dst, 80)
    assert reverse_flow(flow) == flow_key(dst, 80, src, 40000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            reverse_flow(flow)
            flow_key(src, 40000, dst, 80)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept"


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("proto", [6, 17])
def test_the_general_path_keeps_no_memory(v6, proto) -> None:
    """Raw IP (what ``tcpdump -i any`` and VLAN-tagged, option-carrying or IPv6-extended
    packets also take: the general path, not Ethernet's fast one), decoded 20,000 times,
    leaves nothing behind. The compiled build leaked the joined addresses and the flow
    key, about 100 bytes a packet, to mypyc's ``bytes + bytes`` (see above)."""
    l4 = tcp() if proto == 6 else udp(b"x")
    packet = ipv6(l4, nxt=proto) if v6 else ipv4(l4, proto=proto)
    linktype = 229 if v6 else 228
    decoder = Decoder()
    kind = Segment if proto == 6 else Datagram
    assert isinstance(decoder.decode(1, linktype, 1.0, packet, 0, len(packet), len(packet)),
                      kind)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame in range(20_000):
            decoder.decode(frame, linktype, 1.0, packet, 0, len(packet), len(packet))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept"


@pytest.mark.parametrize("v6", [False, True])
def test_each_job_decodes_its_connections_both_ways_and_tells_the_others_apart(v6):
    """replay -j: of 3 jobs, exactly one decodes each segment, the same one for both
    directions of a connection and on the fast path (Ethernet) and the general one (raw
    IP); the others say OTHER_JOB. UDP goes to every job."""
    src, dst = ("::1", "::2") if v6 else ("10.0.0.1", "10.0.0.2")

    def frame(l4: bytes, a: str, b: str, wrap: str, proto: int = 6) -> tuple[int, bytes]:
        l3 = ipv6(l4, a, b, nxt=proto) if v6 else ipv4(l4, a, b, proto=proto)
        if wrap == "raw":
            return (229 if v6 else 228), l3
        return 1, eth(l3, ethertype=0x86DD if v6 else 0x0800)

    def owner(port: int, wrap: str) -> int:
        there = frame(tcp(sport=port, dport=80), src, dst, wrap)
        back = frame(tcp(sport=80, dport=port, flags=0x12), dst, src, wrap)
        mine = []
        for shard in range(3):
            d = Decoder(shard, 3)
            got = [d.decode(1, lt, 1.0, buf, 0, len(buf), len(buf)) for lt, buf in (there, back)]
            assert got[0] == OTHER_JOB or isinstance(got[0], Segment)
            assert (got[0] == OTHER_JOB) == (got[1] == OTHER_JOB)
            if isinstance(got[0], Segment):
                mine.append(shard)
                assert d.mine(got[0].flow) and d.mine(got[1].flow)
        assert len(mine) == 1
        return mine[0]

    owners = []
    for port in range(40000, 40060):
        owners.append(owner(port, "ethernet"))
        assert owner(port, "raw") == owners[-1]
        lt, buf = frame(udp(b"x", sport=port), src, dst, "raw", proto=17)
        assert all(isinstance(Decoder(k, 3).decode(1, lt, 1.0, buf, 0, len(buf), len(buf)),
                              Datagram) for k in range(3))
    assert set(owners) == {0, 1, 2}


def test_jobs_do_not_follow_the_client_ports_parity():
    """Loopback connections from even client ports (Linux's choice for connect()) to one
    server port spread over two jobs."""
    owners = set()
    for port in range(40000, 40040, 2):
        buf = ipv4(tcp(sport=port, dport=8080), "127.0.0.1", "127.0.0.1")
        owners |= {k for k in range(2) if isinstance(
            Decoder(k, 2).decode(1, 228, 1.0, buf, 0, len(buf), len(buf)), Segment)}
    assert owners == {0, 1}
