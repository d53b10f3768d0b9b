"""The tracker, driven by hand-built segments: both endpoints' states after every segment."""

from __future__ import annotations

import pytest

from rawinspect.core.annotation import Annotation
from rawinspect.app.annotator import Annotator
from rawinspect.core import transitions as T
from rawinspect.core.holds import MAX_HELD
from rawinspect.core.tracker import Tracker
from rawinspect.core.segment import Segment
from tcpseq import ACK, C_ISN, FIN, RST, S_ISN, SYN, Conv

PSH = 0x08
C1, S1 = C_ISN + 1, S_ISN + 1  # first sequence numbers after the SYNs


def states(anns: list[Annotation]) -> list[tuple[str, str]]:
    """(client_after, server_after) for every annotation."""
    return [(a.client_after, a.server_after) for a in anns]


def path(anns: list[Annotation], side: str) -> list[str]:
    """Every state one endpoint passed through, in order, without repeats."""
    out: list[str] = []
    for a in anns:
        for st in (getattr(a, f"{side}_path") or [getattr(a, f"{side}_before")]):
            if not out or out[-1] != st:
                out.append(st)
    return out


def run(segs, **kw) -> list[Annotation]:
    """The tracker's annotations with Wireshark's flags, as every command shows them."""
    anns = Annotator(**kw).feed_all(segs)
    assert [a.seg.frame for a in anns] == sorted(a.seg.frame for a in anns), "frame order"
    assert len(anns) == len(segs)
    return anns


def test_three_way_handshake():
    anns = run(Conv().handshake())
    assert states(anns) == [("SYN_SENT", "SYN_RCVD"), ("ESTABLISHED", "SYN_RCVD"),
                            ("ESTABLISHED", "ESTABLISHED")]
    assert anns[0].client_before == "CLOSED" and anns[0].server_before == "LISTEN"
    assert [a.event for a in anns] == ["SYN", "SYN+ACK", "ACK"]
    assert [(a.rel_seq, a.rel_ack) for a in anns] == [(0, 0), (0, 1), (1, 1)]


def test_four_segment_close_client_first():
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", FIN | ACK, C1, S1), c.seg("s", ACK, S1, C1 + 1),
        c.seg("s", FIN | ACK, S1, C1 + 1), c.seg("c", ACK, C1 + 1, S1 + 1)]
    anns = run(segs)
    assert states(anns)[3:] == [("FIN_WAIT_1", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT"),
                                ("TIME_WAIT", "LAST_ACK"), ("TIME_WAIT", "CLOSED")]
    assert "TIME_WAIT" in anns[5].note and "60 s" in anns[5].note


def test_three_segment_close_goes_straight_to_time_wait():
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", FIN | ACK, C1, S1), c.seg("s", FIN | ACK, S1, C1 + 1),
        c.seg("c", ACK, C1 + 1, S1 + 1)]
    anns = run(segs)
    assert states(anns)[3:] == [("FIN_WAIT_1", "CLOSE_WAIT"), ("TIME_WAIT", "LAST_ACK"),
                                ("TIME_WAIT", "CLOSED")]
    assert anns[4].client_path == ["FIN_WAIT_1", "TIME_WAIT"]


def test_server_closes_first_holds_time_wait():
    c = Conv()
    segs = c.handshake() + [
        c.seg("s", FIN | ACK, S1, C1), c.seg("c", ACK, C1, S1 + 1),
        c.seg("c", FIN | ACK, C1, S1 + 1), c.seg("s", ACK, S1 + 1, C1 + 1)]
    anns = run(segs)
    assert states(anns)[-1] == ("CLOSED", "TIME_WAIT")
    assert path(anns, "server")[-3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert path(anns, "client")[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def _simultaneous_close(order: str) -> list[Annotation]:
    c = Conv()
    hs = c.handshake()
    make = {"fin_c": ("c", FIN | ACK, C1, S1),     # ack does not cover the server's FIN
            "fin_s": ("s", FIN | ACK, S1, C1),     # ack does not cover the client's FIN
            "ack_c": ("c", ACK, C1 + 1, S1 + 1),
            "ack_s": ("s", ACK, S1 + 1, C1 + 1)}
    names = {"cs": ["fin_c", "fin_s", "ack_c", "ack_s"],
             "sc": ["fin_s", "fin_c", "ack_s", "ack_c"]}[order]
    return run(hs + [c.seg(*make[name]) for name in names])


def test_simultaneous_close_both_sides_closing_then_time_wait():
    for order in ("cs", "sc"):
        anns = _simultaneous_close(order)
        tail = ["ESTABLISHED", "FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
        assert path(anns, "client") == ["CLOSED", "SYN_SENT"] + tail, order
        assert path(anns, "server") == ["LISTEN", "SYN_RCVD"] + tail, order
        assert anns[-1].client_after == anns[-1].server_after == "TIME_WAIT"


def test_crossing_fin_is_not_shown_as_close_wait():
    anns = _simultaneous_close("cs")
    first_fin = anns[3]
    assert first_fin.server_after == "ESTABLISHED"  # the FIN is still in flight
    assert "crossed" in first_fin.note
    assert anns[4].server_path == ["ESTABLISHED", "FIN_WAIT_1", "CLOSING"]
    assert "CLOSE_WAIT" not in path(anns, "server") + path(anns, "client")


def test_half_close_peer_keeps_sending_from_close_wait():
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", FIN | ACK, C1, S1), c.seg("s", ACK, S1, C1 + 1),
        c.seg("s", PSH | ACK, S1, C1 + 1, 100), c.seg("c", ACK, C1 + 1, S1 + 100),
        c.seg("s", PSH | ACK, S1 + 100, C1 + 1, 100), c.seg("c", ACK, C1 + 1, S1 + 200),
        c.seg("s", FIN | ACK, S1 + 200, C1 + 1), c.seg("c", ACK, C1 + 1, S1 + 201)]
    anns = run(segs)
    assert states(anns)[5:8] == [("FIN_WAIT_2", "CLOSE_WAIT")] * 3
    assert [a.event for a in anns[5:7]] == ["data", "ACK"]
    assert states(anns)[-2:] == [("TIME_WAIT", "LAST_ACK"), ("TIME_WAIT", "CLOSED")]


def test_simultaneous_open():
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("s", SYN, S_ISN),
            c.seg("c", SYN | ACK, C_ISN, S_ISN + 1), c.seg("s", SYN | ACK, S_ISN, C_ISN + 1)]
    anns = run(segs)
    assert path(anns, "client") == ["CLOSED", "SYN_SENT", "SYN_RCVD", "ESTABLISHED"]
    assert path(anns, "server") == ["CLOSED", "SYN_SENT", "SYN_RCVD", "ESTABLISHED"]
    # tshark calls each SYN+ACK a retransmission (its sequence number went out with the
    # SYN); for the state machine it is the second half of the open.
    assert ["retransmission" in a.analysis for a in anns] == [False, False, True, True]


def test_refused_connection_server_never_listens():
    c = Conv()
    anns = run([c.seg("c", SYN, C_ISN), c.seg("s", RST | ACK, 0, C_ISN + 1)])
    assert states(anns) == [("SYN_SENT", "CLOSED"), ("CLOSED", "CLOSED")]
    assert anns[0].server_before == "CLOSED"
    assert "ECONNREFUSED" in anns[1].note


def test_rst_aborts_established_connection():
    c = Conv()
    anns = run(c.handshake() + [c.seg("s", RST | ACK, S1, C1)])
    assert states(anns)[-1] == ("CLOSED", "CLOSED")
    assert anns[-1].event == "RST (abort)" and "SO_LINGER" in anns[-1].note


def test_rst_outside_window_is_flagged_and_ignored():
    c = Conv()
    segs = c.handshake() + [c.seg("s", ACK, S1, C1, window=1000),
                            c.seg("c", RST, C1 + 5_000_000)]
    anns = run(segs)
    assert "rst_out_of_window" in anns[-1].analysis
    assert states(anns)[-1] == ("ESTABLISHED", "ESTABLISHED")


def test_rst_not_acknowledging_syn_does_not_refuse():
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("s", RST | ACK, 0, 12345),
            c.seg("s", SYN | ACK, S_ISN, C_ISN + 1), c.seg("c", ACK, C1, S1)]
    anns = run(segs)
    assert "rst_out_of_window" in anns[1].analysis
    assert states(anns)[-1] == ("ESTABLISHED", "ESTABLISHED")


def test_retransmitted_syn_after_a_drop():
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("c", SYN, C_ISN, dt=1.0),
            c.seg("s", SYN | ACK, S_ISN, C_ISN + 1), c.seg("c", ACK, C1, S1)]
    anns = run(segs)
    assert states(anns)[0] == ("SYN_SENT", "LISTEN")  # dropped: never reached SYN_RCVD
    assert "dropped" in anns[0].note
    assert "retransmission" in anns[1].analysis
    assert (anns[1].client_before, anns[1].client_after) == ("SYN_SENT", "SYN_SENT")
    assert anns[1].server_path == ["LISTEN", "SYN_RCVD"]
    assert states(anns)[-1] == ("ESTABLISHED", "ESTABLISHED")


def test_retransmitted_fin_and_data_change_nothing():
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", PSH | ACK, C1, S1, 10), c.seg("c", PSH | ACK, C1, S1, 10),
        c.seg("s", ACK, S1, C1 + 10), c.seg("c", FIN | ACK, C1 + 10, S1),
        c.seg("c", FIN | ACK, C1 + 10, S1), c.seg("s", ACK, S1, C1 + 11)]
    anns = run(segs)
    assert "retransmission" in anns[4].analysis and anns[4].client_path is None
    assert "retransmission" in anns[7].analysis
    assert anns[7].client_path is None and anns[7].server_path is None
    assert states(anns)[-1] == ("FIN_WAIT_2", "CLOSE_WAIT")


def test_keep_alive_is_not_a_retransmission():
    c = Conv()
    segs = c.handshake() + [c.seg("c", ACK, C1 - 1, S1, 0), c.seg("s", ACK, S1, C1)]
    anns = run(segs)
    assert anns[3].analysis == ["keep_alive"]


def test_mid_stream_capture_infers_states_without_inventing_a_handshake():
    c = Conv()
    segs = [c.seg("c", PSH | ACK, 7000, 9000, 50), c.seg("s", ACK, 9000, 7050),
            c.seg("c", FIN | ACK, 7050, 9000), c.seg("s", FIN | ACK, 9000, 7051),
            c.seg("c", ACK, 7051, 9001)]
    anns = run(segs)
    assert anns[0].client_before == "ESTABLISHED" and anns[0].server_before == "ESTABLISHED"
    assert "state_inferred" in anns[0].analysis
    assert [a.event for a in anns] == ["data", "ACK", "FIN", "FIN", "ACK"]
    assert (anns[0].rel_seq, anns[0].rel_ack) == (1, 1)
    assert states(anns)[-1] == ("TIME_WAIT", "CLOSED")
    assert "state_inferred" not in anns[-1].analysis


def test_synack_first_infers_the_missing_syn():
    c = Conv()
    segs = [c.seg("s", SYN | ACK, S_ISN, C_ISN + 1), c.seg("c", ACK, C1, S1)]
    anns = run(segs)
    assert (anns[0].client_before, anns[0].server_before) == ("SYN_SENT", "LISTEN")
    assert "state_inferred" in anns[0].analysis
    assert states(anns) == [("ESTABLISHED", "SYN_RCVD"), ("ESTABLISHED", "ESTABLISHED")]


def _closed_then_new_syn(gap: float, msl: float = 30.0) -> list[Annotation]:
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", FIN | ACK, C1, S1), c.seg("s", FIN | ACK, S1, C1 + 1),
        c.seg("c", ACK, C1 + 1, S1 + 1), c.seg("c", SYN, C_ISN + 100000, dt=gap),
        c.seg("s", SYN | ACK, S_ISN + 7, C_ISN + 100001)]
    return run(segs, msl=msl)


def test_port_reuse_starts_a_new_connection():
    anns = _closed_then_new_syn(gap=1.0)
    assert [a.conn for a in anns] == [1] * 6 + [2] * 2
    assert (anns[6].client_before, anns[6].server_before) == ("CLOSED", "LISTEN")


def test_time_wait_lasts_two_msl():
    tracker = Tracker(msl=5.0)
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", FIN | ACK, C1, S1), c.seg("s", FIN | ACK, S1, C1 + 1),
        c.seg("c", ACK, C1 + 1, S1 + 1),
        c.seg("s", FIN | ACK, S1, C1 + 1, dt=2.0),    # retransmitted FIN inside 2MSL
        c.seg("s", FIN | ACK, S1, C1 + 1, dt=20.0)]   # after 2MSL = 10 s
    anns = tracker.feed_all(segs)
    assert anns[6].client_before == "TIME_WAIT"
    late = anns[7]   # TIME_WAIT ended by the 2MSL rule, 10 s after it began, not at this FIN
    assert late.client_before == "TIME_WAIT" and late.client_path == ["TIME_WAIT", "CLOSED"]
    assert "client: 2MSL elapsed: TIME_WAIT is over" in late.note
    assert "time_wait_expired" in late.analysis
    assert late.timer_ts == pytest.approx(anns[4].seg.ts + 10.0)   # entered at frame 5
    assert "10 s" in anns[4].note


def test_hold_is_bounded_and_output_stays_in_frame_order():
    c1, c2 = Conv(cport=40001), Conv(cport=40002)
    segs = c1.handshake() + [c1.seg("c", FIN | ACK, C1, S1)]
    c2.frame, c2.t = len(segs), segs[-1].ts
    other = [c2.seg("c", SYN, C_ISN), c2.seg("s", SYN | ACK, S_ISN, C_ISN + 1)]
    tracker = Tracker()
    out = []
    for s in segs + other:
        out.extend(tracker.feed(s))
    # Frame 3 (the ACK a full accept queue may drop) and frame 4 (the FIN) wait for an answer.
    assert [a.seg.frame for a in out] == [1, 2]
    late = Conv(cport=40002, t0=segs[-1].ts + 10.0).seg("s", ACK, S1, C1, frame=7)
    out.extend(tracker.feed(late))
    assert [a.seg.frame for a in out] == [1, 2, 3, 4, 5, 6, 7]  # timed out: released in order
    assert out[3].server_after == "CLOSE_WAIT"


def test_unordered_releases_other_connections_at_once_and_keeps_each_ones_order():
    """Unordered, a held SYN holds back only its own connection: the same annotations
    as in frame order, each connection's in its own order."""
    c1, c2 = Conv(cport=40001), Conv(cport=40002)
    first = [c1.seg("c", SYN, C_ISN)]                  # never answered
    c2.frame, c2.t = 1, first[0].ts
    segs = first + c2.handshake() + [c2.seg("c", ACK | PSH, C1, S1, length=100),
                                     c2.seg("s", ACK, S1, C1 + 100)]
    retry = c1.seg("c", SYN, C_ISN, dt=1.0, frame=7)
    ordered, unordered = Tracker(), Tracker(ordered=False)
    assert [a.seg.frame for s in segs for a in ordered.feed(s)] == []   # behind frame 1
    out = [a.seg.frame for s in segs for a in unordered.feed(s)]
    assert out == [2, 3, 4, 5, 6]                      # not behind frame 1's SYN
    assert [a.seg.frame for a in ordered.feed(retry)] == [1, 2, 3, 4, 5, 6]
    assert [a.seg.frame for a in unordered.feed(retry)] == [1]   # the retry answers it
    last, last_unordered = ordered.finish(), unordered.finish()
    assert [a.seg.frame for a in last] == [a.seg.frame for a in last_unordered] == [7]
    assert (states(last), last[0].note) == (states(last_unordered), last_unordered[0].note)


def test_at_most_max_held_segments_wait_behind_a_hold():
    """A FIN whose answer never comes is released once MAX_HELD segments queue behind it."""
    c = Conv()
    segs = c.handshake() + [c.seg("c", FIN | ACK, C1, S1)] + [
        c.seg("c", ACK, C1 + 1, S1, dt=0.0) for _ in range(MAX_HELD)]
    tracker = Tracker()
    out = [a for seg in segs for a in tracker.feed(seg)]
    assert len(out) == len(segs)                  # the last one released the hold
    assert [a.seg.frame for a in out] == list(range(1, len(segs) + 1))
    assert out[3].client_after == "FIN_WAIT_1" and out[3].server_after == "CLOSE_WAIT"
    assert tracker.feed_all([]) == []


def test_corrections_fix_an_assumed_listener():
    """A SYN answered by RST met no listener: the receiver was CLOSED all along."""
    c = Conv()
    anns = run([c.seg("c", SYN, C_ISN), c.seg("s", RST | ACK, 0, C_ISN + 1)])
    assert (anns[0].client_before, anns[0].server_before) == ("CLOSED", "CLOSED")
    rule = T.step(T.LISTEN, T.ANSWERED_SYN_WITH_RST)
    assert rule is not None and rule.new == T.CLOSED


def test_finish_releases_everything_held():
    c = Conv()
    tracker = Tracker()
    assert tracker.feed(c.seg("c", SYN, C_ISN)) == []
    anns = tracker.finish()
    assert len(anns) == 1 and states(anns) == [("SYN_SENT", "LISTEN")]
    assert "no answer" in anns[0].note


def test_flush_releases_by_time_for_live_capture():
    c = Conv()
    tracker = Tracker(hold=0.5)
    seg = c.seg("c", SYN, C_ISN)
    assert tracker.feed(seg) == []
    assert tracker.flush(seg.ts + 0.1) == []
    assert len(tracker.flush(seg.ts + 0.6)) == 1


def test_sequence_wraparound():
    c = Conv(c_isn=0xFFFFFFF0, s_isn=0xFFFFFFFE)
    hs = c.handshake()
    segs = hs + [c.seg("c", PSH | ACK, 0xFFFFFFF1, 0xFFFFFFFF, 100),
                 c.seg("s", ACK, 0xFFFFFFFF, 0x55, 0),
                 c.seg("c", FIN | ACK, 0x55, 0xFFFFFFFF), c.seg("s", FIN | ACK, 0xFFFFFFFF, 0x56),
                 c.seg("c", ACK, 0x56, 0)]
    anns = run(segs)
    assert not any("retransmission" in a.analysis for a in anns)
    assert states(anns)[-1] == ("TIME_WAIT", "CLOSED")
    assert anns[3].rel_seq == 1 and anns[4].rel_ack == 101


def test_finished_connections_leave_the_table():
    """Memory follows open connections: a finished one is forgotten after 2MSL + hold idle."""
    tracker = Tracker(msl=5.0, hold=1.0)  # retired 11 s after its last segment
    a = Conv(cport=40000)
    segs = a.handshake() + [a.seg("c", FIN | ACK, C1, S1), a.seg("s", FIN | ACK, S1, C1 + 1),
                            a.seg("c", ACK, C1 + 1, S1 + 1)]
    anns = [x for seg in segs for x in tracker.feed(seg)]
    assert tracker.tracked == 1
    b = Conv(cport=40001, t0=130.0)
    b.frame = len(segs)
    for seg in b.handshake():
        anns += tracker.feed(seg)
    assert tracker.tracked == 1           # a is gone, b is open
    late = a.seg("s", ACK, S1 + 1, C1 + 1, dt=31.0, frame=b.frame + 1)
    anns += tracker.feed(late) + tracker.finish()
    assert [x.conn for x in anns] == [1] * 6 + [2] * 3 + [3]
    assert "state_inferred" in anns[-1].analysis and tracker.tracked == 2


@pytest.mark.parametrize("gap, same", [(10.5, True), (11.5, False)])
def test_a_late_segment_meets_its_connection_until_the_kernel_forgot_it(gap, same):
    """Retired 2MSL + hold after its last segment (11 s): by then TIME_WAIT is over, and
    so is the MSL a stray segment lives. Before, a late ACK meets it, its TIME_WAIT
    expired to CLOSED; after, it starts a new connection, its states assumed."""
    tracker = Tracker(msl=5.0, hold=1.0)
    a = Conv(cport=40000)
    segs = a.handshake() + [a.seg("c", FIN | ACK, C1, S1), a.seg("s", FIN | ACK, S1, C1 + 1),
                            a.seg("c", ACK, C1 + 1, S1 + 1)]
    b = Conv(cport=40001, t0=segs[-1].ts + gap)
    b.frame = len(segs)
    segs += [b.seg("c", SYN, C1), a.seg("s", ACK, S1 + 1, C1 + 1, dt=gap + 0.1, frame=b.frame + 1)]
    anns = tracker.feed_all(segs)
    late = anns[-1]
    assert late.seg.frame == 8 and late.conn == (1 if same else 3)
    if same:
        assert late.client_path[:2] == ["TIME_WAIT", "CLOSED"] and late.timer_ts
    else:
        assert "state_inferred" in late.analysis


def test_a_finished_connection_stays_while_segments_still_arrive():
    tracker = Tracker(msl=5.0, hold=1.0)
    c = Conv()
    segs = c.handshake() + [c.seg("c", RST, C1)] + [
        c.seg("c", ACK | PSH, C1, S1, length=10, dt=8.0) for _ in range(4)]
    anns = tracker.feed_all(segs)
    assert {x.conn for x in anns} == {1}   # 32 s after the RST, but never 11 s idle
    assert [(x.client_after, x.server_after) for x in anns[3:]] == [("CLOSED", "CLOSED")] * 5


def test_table_size_follows_open_connections_not_all_connections():
    tracker = Tracker(msl=1.0, hold=0.5)  # retired 2.5 s after the last segment
    sizes = []
    for i in range(500):
        c = Conv(cport=20000 + i, t0=100.0 + i)
        for seg in c.handshake() + [c.seg("c", FIN | ACK, C1, S1), c.seg("s", FIN | ACK, S1, C1 + 1),
                                    c.seg("c", ACK, C1 + 1, S1 + 1)]:
            tracker.feed(seg)
        sizes.append(tracker.tracked)
    assert tracker.connections == 500 and max(sizes) <= 7


def self_seg(n: int, flags: int, seq: int, ack: int = 0, length: int = 0) -> Segment:
    return Segment(n, 100.0 + n * 1e-5, "127.0.0.1", 40123, "127.0.0.1", 40123, seq, ack,
                   flags, 65495, length)


def self_connect_segments() -> list[Segment]:
    """What Linux sends when a socket connects to itself, then writes and closes."""
    x = C_ISN
    return [self_seg(1, SYN, x), self_seg(2, SYN | ACK, x, x + 1),
            self_seg(3, ACK, x + 1, x + 1), self_seg(4, ACK | PSH, x + 1, x + 1, 8),
            self_seg(5, ACK, x + 9, x + 9), self_seg(6, FIN | ACK, x + 9, x + 9),
            self_seg(7, ACK, x + 10, x + 10)]


def test_a_socket_connected_to_itself_is_one_endpoint():
    anns = run(self_connect_segments())
    assert all(a.client == a.server == "127.0.0.1:40123" for a in anns)
    assert [a.client_path for a in anns] == [a.server_path for a in anns]
    assert path(anns, "client") == ["CLOSED", "SYN_SENT", "SYN_RCVD", "ESTABLISHED",
                                    "FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
    assert anns[0].client_path == ["CLOSED", "SYN_SENT", "SYN_RCVD"]
    assert anns[5].client_path == ["ESTABLISHED", "FIN_WAIT_1", "CLOSING"]
    assert "connected to itself" in anns[0].note and "getsockname()" in anns[0].note
    assert "LISTEN" not in {a.server_before for a in anns}
    assert not any("unexpected" in a.note for a in anns)
    assert all(a.from_client for a in anns)


def listener_with_full_accept_queue() -> tuple[Conv, list[Segment]]:
    """The client's ACK and request reach a listener whose accept queue is full: the
    server retransmits its SYN+ACK, the client its request; then one gets through."""
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", ACK | PSH, C1, S1, 9),                 # request, not taken
        c.seg("c", ACK | PSH, C1, S1, 9, dt=0.2),         # request again (RTO)
        c.seg("s", SYN | ACK, S_ISN, C_ISN + 1, dt=0.8),  # SYN+ACK again: never took the ACK
        c.seg("c", ACK, C1 + 9, S1),                      # the client answers it
        c.seg("c", ACK | PSH, C1, S1, 9, dt=0.5),         # the queue has room now
        c.seg("s", ACK, S1, C1 + 9),
        c.seg("s", ACK | PSH, S1, C1 + 9, 18)]
    return c, segs


def test_an_ack_dropped_by_a_full_accept_queue_leaves_the_server_in_syn_rcvd():
    _, segs = listener_with_full_accept_queue()
    anns = run(segs)
    assert [a.server_after for a in anns] == ["SYN_RCVD"] * 7 + ["ESTABLISHED"] * 3
    assert [a.client_after for a in anns][1:] == ["ESTABLISHED"] * 9
    assert anns[7].server_path == ["SYN_RCVD", "ESTABLISHED"]       # the request that got in
    assert path(anns, "server") == ["LISTEN", "SYN_RCVD", "ESTABLISHED"]
    for a in anns[2:5] + [anns[6]]:
        assert "accept queue" in a.note and "tcp_abort_on_overflow" in a.note
    assert "again" in anns[5].note and "ESTABLISHED already" in anns[5].note


def test_unanswered_request_data_is_the_evidence_without_a_synack_again():
    """With SYN cookies the listener keeps no request: no SYN+ACK again, only the client's
    data sent again and not acknowledged until the queue has room."""
    c = Conv()
    segs = c.handshake() + [
        c.seg("c", ACK | PSH, C1, S1, 9), c.seg("c", ACK | PSH, C1, S1, 9, dt=0.2),
        c.seg("c", ACK | PSH, C1, S1, 9, dt=0.4), c.seg("s", ACK, S1, C1 + 9)]
    anns = run(segs)
    assert [a.server_after for a in anns] == ["SYN_RCVD"] * 5 + ["ESTABLISHED"] * 2
    assert anns[5].server_path == ["SYN_RCVD", "ESTABLISHED"]


def test_an_ack_that_completes_the_handshake_is_released_with_the_answer():
    c = Conv()
    tracker = Tracker()
    out = [a for s in c.handshake() for a in tracker.feed(s)]
    assert [a.seg.frame for a in out] == [1, 2]       # the ACK waits for the server's answer
    out += tracker.feed(c.seg("s", ACK | PSH, S1, C1, 5))
    assert [a.server_after for a in out] == ["SYN_RCVD", "SYN_RCVD", "ESTABLISHED",
                                             "ESTABLISHED"]
    assert out[2].server_path == ["SYN_RCVD", "ESTABLISHED"]


@pytest.mark.parametrize("segs_of,event,words", [
    (lambda c: c.handshake() + [c.seg("c", RST | ACK, C1, S1)], "RST (abort)", "SO_LINGER"),
    (lambda c: [c.seg("c", SYN, C_ISN), c.seg("s", RST | ACK, 0, C_ISN + 1)],
     "RST (refused)", "nothing listens"),
    (lambda c: c.handshake() + [
        c.seg("s", FIN | ACK, S1, C1), c.seg("c", ACK, C1, S1 + 1),
        c.seg("c", ACK | PSH, C1, S1 + 1, 5), c.seg("s", RST, S1 + 1)],
     "RST (after close)", "after close()"),
    (lambda c: c.handshake() + [
        c.seg("c", FIN | ACK, C1, S1), c.seg("s", FIN | ACK, S1, C1 + 1),
        c.seg("c", ACK, C1 + 1, S1 + 1), c.seg("c", ACK | PSH, C1 + 1, S1 + 1, 5, dt=1.0),
        c.seg("s", RST, S1 + 1)],
     "RST (no socket)", "no socket for that segment"),
    (lambda c: c.handshake() + [c.seg("s", ACK, S1, C1, window=1000),
                                c.seg("c", RST, C1 + 5_000_000)], "RST (ignored)", "RFC 5961"),
])
def test_whose_rst_and_why(segs_of, event, words):
    anns = run(segs_of(Conv()))
    assert anns[-1].event == event
    assert words in anns[-1].note
    assert "unexpected" not in anns[-1].note


def test_every_rst_kind_has_an_event_name_and_rules():
    for kind, name in T.RST_EVENTS.items():
        assert name.startswith("RST (") and any(t.event == kind for t in T.TRANSITIONS)


def test_request_data_unacknowledged_until_the_hold_ends_was_not_taken():
    """SYN cookies and a long retransmission timeout: the client's request goes unanswered
    longer than a hold; then the server's side is still SYN_RCVD, live and in replay."""
    c = Conv()
    segs = c.handshake() + [c.seg("c", ACK | PSH, C1, S1, 9),
                            c.seg("c", ACK | PSH, C1, S1, 9, dt=0.2),
                            c.seg("c", ACK | PSH, C1, S1, 9, dt=3.4),
                            c.seg("s", ACK, S1, C1 + 9)]
    anns = run(segs)
    assert [a.server_after for a in anns] == ["SYN_RCVD"] * 5 + ["ESTABLISHED"] * 2
    live = Tracker()
    out = [a for s in segs[:5] for a in live.feed(s)]
    out += live.flush(segs[4].ts + 3.5)
    assert [a.server_after for a in out] == ["SYN_RCVD"] * 5
