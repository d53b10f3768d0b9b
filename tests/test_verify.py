"""--verify's comparison (pure) and its tracepoint parsing, without privileges."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from rawinspect.sources import kernel_trace
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.app.annotator import Annotator
from rawinspect.core.kernel_event import KernelEvent
from rawinspect.views.verify import verify

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def annotations(name: str) -> list:
    return Annotator().feed_all(read_segments(str(CAPTURES / f"{name}.pcap"), Stats()))


def kernel_events_for_handshake(anns) -> list[KernelEvent]:
    """What Linux traces for the bundled handshake (client closes, 3-segment close)."""
    c, s = anns[0].client, anns[0].server
    host = c.rsplit(":", 1)[0]
    t = [a.seg.ts for a in anns]
    return [
        KernelEvent(t[0] - 2e-5, f"{host}:0", s, "CLOSED", "SYN_SENT"),   # unbound yet
        KernelEvent(t[1] + 1e-6, c, s, "SYN_SENT", "ESTABLISHED"),
        KernelEvent(t[0] + 1e-6, s, c, "LISTEN", "SYN_RCVD"),
        KernelEvent(t[2] + 1e-6, s, c, "SYN_RCVD", "ESTABLISHED"),
        KernelEvent(t[7] - 1e-6, c, s, "ESTABLISHED", "FIN_WAIT_1"),
        KernelEvent(t[7] + 1e-6, s, c, "ESTABLISHED", "CLOSE_WAIT"),
        KernelEvent(t[8] - 1e-6, s, c, "CLOSE_WAIT", "LAST_ACK"),
        KernelEvent(t[8] + 1e-6, c, s, "FIN_WAIT_1", "FIN_WAIT_2"),
        KernelEvent(t[8] + 2e-6, c, s, "FIN_WAIT_2", "CLOSED"),           # time-wait socket
        KernelEvent(t[9] + 1e-6, s, c, "LAST_ACK", "CLOSED"),
    ]


def test_kernel_and_wire_agree_with_named_fill_ins():
    anns = annotations("handshake")
    report = verify(anns, kernel_events_for_handshake(anns))
    assert report.disagreements == 0 and len(report.checks) == 2
    client = report.checks[0]
    assert client.role == "client" and client.agree
    text = "\n".join(report.lines())
    assert "TIME_WAIT is not traced" in text
    assert "passed FIN_WAIT_2 while processing one FIN+ACK" in text
    assert "9 of 9 transitions agreed, 0 disagreements" in text
    assert "traced with source port 0" in text
    assert "frame 9: → TIME_WAIT  ✓ kernel +2 µs" in text


def test_a_missing_or_different_kernel_state_is_a_disagreement():
    anns = annotations("handshake")
    events = kernel_events_for_handshake(anns)
    wrong = [e._replace(new="CLOSING") if e.new == "LAST_ACK" else
             e._replace(old="CLOSING") if e.old == "LAST_ACK" else e for e in events]
    report = verify(anns, wrong)
    assert report.disagreements == 1
    server = report.checks[1]
    assert not server.agree and "CLOSING" in [s.state for s in server.kernel]
    text = "\n".join(report.lines())
    assert "DISAGREE" in text and "✗ kernel: CLOSING" in text
    assert "no known gap between wire and kernel explains it" in text


def test_ss_confirms_time_wait_and_a_late_fin_is_explained():
    anns = annotations("handshake")
    events = kernel_events_for_handshake(anns)
    c, s = anns[0].client, anns[0].server
    # close() on the client 50 ms before its FIN left (FIN behind unsent data).
    late = [e._replace(ts=e.ts - 0.05) if e.new == "FIN_WAIT_1" else e for e in events]
    report = verify(anns, late, {(c, s): "TIME-WAIT"})
    text = "\n".join(report.lines())
    assert report.disagreements == 0
    assert "ss at the end of the capture shows it: TIME-WAIT" in text
    assert "entered FIN_WAIT_1 50 ms before its FIN left" in text


def test_refused_port_has_no_socket_and_agrees():
    anns = annotations("refused")
    c, s = anns[0].client, anns[0].server
    events = [KernelEvent(anns[0].seg.ts - 1e-5, c.rsplit(":", 1)[0] + ":0", s, "CLOSED",
                          "SYN_SENT"),
              KernelEvent(anns[1].seg.ts + 1e-6, c, s, "SYN_SENT", "CLOSED")]
    report = verify(anns, events)
    assert report.disagreements == 0
    assert "no socket on this side" in "\n".join(report.lines())


def test_parse_a_trace_line():
    line = ("  python3-15226 [000] ..s2. 1795487895.164714: inet_sock_set_state: "
            "family=AF_INET protocol=IPPROTO_TCP sport=56649 dport=39200 saddr=127.0.0.1 "
            "daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 "
            "oldstate=TCP_LISTEN newstate=TCP_SYN_RECV")
    ev = kernel_trace.parse_line(line, 0.5)
    assert ev == KernelEvent(1795487895.164714 - 0.5, "127.0.0.1:56649", "127.0.0.1:39200",
                             "LISTEN", "SYN_RCVD")
    v6 = line.replace("AF_INET ", "AF_INET6 ").replace("::ffff:127.0.0.1", "::1")
    assert kernel_trace.parse_line(v6, 0).local == "[::1]:56649"
    assert kernel_trace.parse_line("# tracer: nop", 0) is None


def test_without_tracefs_capture_goes_on(monkeypatch, tmp_path, capsys):
    from rawinspect.app import capture_cmd
    from rawinspect.sources import tracefs
    monkeypatch.setattr(tracefs, "TRACEFS", tmp_path)
    monkeypatch.setattr(tracefs.subprocess, "run", lambda *a, **k: None)
    assert capture_cmd._start_trace([1234]) is None
    err = capsys.readouterr().err
    assert "--verify unavailable" in err and "capturing without verification" in err


def test_a_lost_simultaneous_open_race_on_one_4_tuple_is_no_disagreement():
    """Each end's connect() refused while the other's is under way, on one 4-tuple: the
    endpoint that had no socket in one attempt must not take the other attempt's events."""
    from tcpseq import ACK, RST, SYN, Segment
    a, b = ("127.0.0.1", 52855), ("127.0.0.1", 35597)
    t = 100.0
    segs = [Segment(1, t, *a, *b, 1000, 0, SYN, 65495, 0),              # a connects
            Segment(2, t + 15e-6, *b, *a, 0, 1001, RST | ACK, 0, 0),    # refused
            Segment(3, t + 38e-6, *b, *a, 5000, 0, SYN, 65495, 0),      # b connects
            Segment(4, t + 50e-6, *a, *b, 0, 5001, RST | ACK, 0, 0)]    # refused
    anns = Annotator().feed_all(segs)
    assert [x.conn for x in anns] == [1, 1, 2, 2]
    ea, eb = "127.0.0.1:52855", "127.0.0.1:35597"
    events = [KernelEvent(t - 2e-6, ea, eb, "CLOSED", "SYN_SENT"),
              KernelEvent(t + 10e-6, eb, ea, "CLOSED", "SYN_SENT"),     # inside conn 1's span
              KernelEvent(t + 40e-6, ea, eb, "SYN_SENT", "CLOSED"),     # inside conn 2's span
              KernelEvent(t + 51e-6, eb, ea, "SYN_SENT", "CLOSED")]
    report = verify(anns, events)
    assert report.disagreements == 0, "\n".join(report.lines())


def test_time_wait_ended_by_an_rst_is_filled_in():
    """The time-wait socket is never traced: neither its start nor its end by an RST."""
    from tcpseq import RST, Segment
    segs = list(read_segments(str(CAPTURES / "handshake.pcap"), Stats()))
    last = segs[-1]                       # the client's last ACK: the client is in TIME_WAIT
    rst = Segment(last.frame + 1, last.ts + 0.5, last.dst, last.dport, last.src, last.sport,
                  last.ack, 0, RST, 0, 0)
    anns = Annotator().feed_all(segs + [rst])
    assert (anns[-1].client_before, anns[-1].client_after) == ("TIME_WAIT", "CLOSED")
    report = verify(anns, kernel_events_for_handshake(anns))
    assert report.disagreements == 0, "\n".join(report.lines())
    assert "time-wait socket's end is not traced" in "\n".join(report.lines())


REUSE_PROGRAM = '''
"""One 4-tuple, several connections: connect() refused twice from a fixed port, then
accepted twice, the second time from the client's TIME_WAIT (tcp_tw_reuse)."""
import socket, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

P, Q = free_port(), free_port()

def client():
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("127.0.0.1", P))
    return c

for i in range(2):
    c = client()
    try:
        c.connect(("127.0.0.1", Q))
    except ConnectionRefusedError:
        pass
    c.close()
    time.sleep(0.05)
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", Q))
lst.listen(4)
for i in range(2):
    c = client()
    c.connect(("127.0.0.1", Q))
    conn, _ = lst.accept()
    c.sendall(b"hi"); conn.recv(10)
    c.close(); conn.recv(10); conn.close()
    time.sleep(1.2)       # tcp_tw_reuse wants a second since the last timestamp
lst.close()
'''


def refused_then_accepted() -> tuple[list, list[KernelEvent]]:
    """A client bound to port 40000 refused twice by port 5000, then accepted: three
    connections on one 4-tuple, and what the kernel traced for them (as recorded live)."""
    from tcpseq import ACK, FIN, RST, SYN, Segment
    c, s = ("127.0.0.1", 40000), ("127.0.0.1", 5000)
    t, x, y = 100.0, 1000, 7000
    segs = [Segment(1, t, *c, *s, x, 0, SYN, 65495, 0),
            Segment(2, t + 2e-5, *s, *c, 0, x + 1, RST | ACK, 0, 0),
            Segment(3, t + 0.05, *c, *s, x + 500, 0, SYN, 65495, 0),
            Segment(4, t + 0.05 + 2e-5, *s, *c, 0, x + 501, RST | ACK, 0, 0),
            Segment(5, t + 0.1, *c, *s, x + 900, 0, SYN, 65495, 0),
            Segment(6, t + 0.1 + 1e-5, *s, *c, y, x + 901, SYN | ACK, 65495, 0),
            Segment(7, t + 0.1 + 2e-5, *c, *s, x + 901, y + 1, ACK, 65495, 0),
            Segment(8, t + 0.1 + 3e-5, *c, *s, x + 901, y + 1, FIN | ACK, 65495, 0),
            Segment(9, t + 0.1 + 4e-5, *s, *c, y + 1, x + 902, FIN | ACK, 65495, 0),
            Segment(10, t + 0.1 + 5e-5, *c, *s, x + 902, y + 2, ACK, 65495, 0)]
    ce, se = "127.0.0.1:40000", "127.0.0.1:5000"
    events = [KernelEvent(t - 3e-6, ce, se, "CLOSED", "SYN_SENT"),
              KernelEvent(t + 2.1e-5, ce, se, "SYN_SENT", "CLOSED"),
              KernelEvent(t + 0.05 - 3e-6, ce, se, "CLOSED", "SYN_SENT"),
              KernelEvent(t + 0.05 + 2.1e-5, ce, se, "SYN_SENT", "CLOSED"),
              KernelEvent(t + 0.1 - 3e-6, ce, se, "CLOSED", "SYN_SENT"),
              KernelEvent(t + 0.1 + 1.1e-5, ce, se, "SYN_SENT", "ESTABLISHED"),
              KernelEvent(t + 0.1 + 2.1e-5, se, ce, "SYN_RCVD", "ESTABLISHED"),
              KernelEvent(t + 0.1 + 2.9e-5, ce, se, "ESTABLISHED", "FIN_WAIT_1"),
              KernelEvent(t + 0.1 + 3.1e-5, se, ce, "ESTABLISHED", "CLOSE_WAIT"),
              KernelEvent(t + 0.1 + 3.9e-5, se, ce, "CLOSE_WAIT", "LAST_ACK"),
              KernelEvent(t + 0.1 + 4.1e-5, ce, se, "FIN_WAIT_1", "FIN_WAIT_2"),
              KernelEvent(t + 0.1 + 4.2e-5, ce, se, "FIN_WAIT_2", "CLOSED"),
              KernelEvent(t + 0.1 + 5.1e-5, se, ce, "LAST_ACK", "CLOSED")]
    return Annotator().feed_all(segs), events


def test_connections_on_one_4_tuple_each_take_their_own_kernel_events():
    anns, events = refused_then_accepted()
    assert sorted({a.conn for a in anns}) == [1, 2, 3]
    report = verify(anns, events)
    assert report.disagreements == 0, "\n".join(report.lines())
    clients = [c for c in report.checks if c.role == "client"]
    assert [[s.state for s in c.kernel] for c in clients] == [
        ["CLOSED", "SYN_SENT", "CLOSED"], ["CLOSED", "SYN_SENT", "CLOSED"],
        ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSED"]]


def test_a_life_left_over_goes_to_the_nearest_connection_in_time():
    """More lives than connections (an attempt outside the capture): each life goes to
    the connection nearest in time, so the extra one shows as a disagreement there."""
    anns, events = refused_then_accepted()
    t = events[0].ts
    extra = [KernelEvent(t + 0.03, events[0].local, events[0].remote, "CLOSED", "SYN_SENT"),
             KernelEvent(t + 0.031, events[0].local, events[0].remote, "SYN_SENT", "CLOSED")]
    report = verify(anns, events[:2] + extra + events[2:])
    assert [c.agree for c in report.checks if c.role == "client"] == [True, False, True]


def test_a_socket_connected_to_itself_is_checked_once():
    anns = annotations("self-connect")
    me = anns[0].client
    t = [a.seg.ts for a in anns]
    events = [KernelEvent(t[0] - 2e-5, me, me, "CLOSED", "SYN_SENT"),
              KernelEvent(t[0] + 1e-5, me, me, "SYN_SENT", "SYN_RCVD"),
              KernelEvent(t[1] + 1e-5, me, me, "SYN_RCVD", "ESTABLISHED"),
              KernelEvent(t[5] - 1e-6, me, me, "ESTABLISHED", "FIN_WAIT_1"),
              KernelEvent(t[5] + 5e-6, me, me, "FIN_WAIT_1", "CLOSING"),
              KernelEvent(t[6] + 5e-6, me, me, "CLOSING", "CLOSED")]
    report = verify(anns, events)
    assert [c.role for c in report.checks] == ["self"]
    assert report.disagreements == 0, "\n".join(report.lines())


@pytest.mark.privileged
def test_live_connections_on_one_4_tuple_agree_with_the_kernel(tmp_path):
    """A client bound to a fixed port, refused and retried, then reusing its 4-tuple after
    TIME_WAIT: --verify --strict finds no disagreement (each connection its own events)."""
    prog = tmp_path / "reuse.py"
    prog.write_text(REUSE_PROGRAM)
    for attempt in (1, 2):
        live = subprocess.run([sys.executable, "-m", "rawinspect", "capture", "--verify",
                               "--strict", "-T", "jsonl", "--", sys.executable, str(prog)],
                              cwd=CAPTURES.parent, capture_output=True, text=True, timeout=120)
        if ", 4 connections;" in live.stderr or attempt == 2:
            break
        # Seen once in CI, not reproduced since: exit 0 with nothing after the opening line.
        warnings.warn(f"attempt 1 ended without its closing line (exit {live.returncode}): "
                      f"{live.stderr!r}; run again")
    assert live.returncode == 0, live.stdout + live.stderr
    assert ", 4 connections;" in live.stderr, live.stderr
    m = re.search(r"verify: 8 endpoints checked, (\d+) of (\d+) transitions agreed, "
                  r"0 disagreements", live.stderr)
    assert m and m.group(1) == m.group(2), live.stderr
