"""The Python API: read, annotate (scapy's packets), printer, Capture and its views; live.

The API runs the command line's own pipeline, so on every bundled and public capture it
must give what ``rawinspect replay -T jsonl`` prints, and its attribute names must be the
jsonl keys. The live tests are marked ``privileged``.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Ether, Loopback
from scapy.utils import rdpcap

import rawinspect
from rawinspect.app import cli
from rawinspect.api.scapy_io import PacketError

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = sorted((ROOT / "captures").glob("*.pcap*"))
CLI_ONLY = ("finding", "socket")  # jsonl records the command line adds after the segments


def replay_jsonl(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    cli.main(["replay", str(path), "-T", "jsonl", "-q"])
    return capsys.readouterr().out.splitlines()


def check_same_as_replay(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = replay_jsonl(path, capsys)
    capture = rawinspect.read(path, partial=True)
    records = [json.loads(line) for line in lines]
    assert capture.jsonl().splitlines() == [
        line for line, r in zip(lines, records) if r.get("kind") not in CLI_ONLY]
    found = [r for r in records if r.get("kind") == "finding"]
    if found:
        assert found == [f.as_dict() for f in capture.findings]
    for seg, r in zip(capture.annotations, (r for r in records if "kind" not in r)):
        assert seg.as_dict() == r
        for key, value in r.items():
            got = getattr(seg, key)
            assert abs(got - value) <= 1e-6 if key == "ts" else got == value, key


@pytest.mark.parametrize("path", BUNDLED, ids=[p.name for p in BUNDLED])
def test_read_gives_replays_annotations_on_every_bundled_capture(path, capsys):
    check_same_as_replay(path, capsys)


def test_read_gives_replays_annotations_on_every_public_capture(public_dir, capsys):
    files = sorted(p for p in public_dir.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert len(files) >= 30
    for path in files:
        check_same_as_replay(path, capsys)


def test_a_damaged_file_raises_unless_partial():
    from rawinspect.sources.capfile import CaptureFileError
    damaged = ROOT / "tests" / "data"
    with pytest.raises(CaptureFileError, match="nothing.pcap"):
        rawinspect.read(damaged / "nothing.pcap")


def test_connections_endpoints_and_summaries():
    cap = rawinspect.read(ROOT / "captures" / "never-close.pcap")
    (conn,) = cap.connections
    assert conn is cap.connection(1)
    assert conn.client.states == ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1",
                                  "FIN_WAIT_2", "TIME_WAIT"]
    assert conn.server.states[:4] == ["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT"]
    assert (conn.client.address, conn.server.address) == ("127.0.0.1", "127.0.0.1")
    assert conn.server.port == int(conn.segments[0].server.rsplit(":", 1)[1])
    assert conn.server.state_at(frame=6) == "CLOSE_WAIT"
    assert conn.server.state_at(frame=1) == "SYN_RCVD"
    assert conn.client.state_at(time=conn.segments[0].ts - 1) == "CLOSED"
    assert conn.server.time_in()["CLOSE_WAIT"] > 0.5
    assert (conn.conn_state, conn.history) == (conn.summary.conn_state, conn.summary.history)
    assert conn.summary.conn_state == "SF"
    assert [f.rule for f in conn.findings][:1] == ["close-wait-leak"]
    assert [s.frame for s in conn.segments] == list(range(1, 10))
    with pytest.raises(KeyError, match="no connection 7; there are: 1"):
        cap.connection(7)
    with pytest.raises(TypeError):
        conn.client.state_at()


def test_on_keeps_the_connections_of_a_port():
    cap = rawinspect.read(ROOT / "captures" / "server-close.pcap")
    port = cap.connections[2].server.port
    assert [c.number for c in cap.on(port=port).connections] == [
        c.number for c in cap.connections if c.server.port == port]
    assert cap.on(port=1).connections == []


def test_renderers_are_the_command_lines(capsys):
    path = ROOT / "captures" / "handshake.pcap"
    # The renderers' part: the command line's reports after them (the sockets left behind
    # and the message boundaries saved with the calls) are the Capture's attributes.
    cap = rawinspect.read(path, calls=False)
    cli.main(["replay", str(path), "-T", "ladder", "--width", "100", "--color", "never", "-q",
              "--no-calls"])
    assert cap.ladder() == capsys.readouterr().out
    cli.main(["replay", str(path), "--width", "120", "--color", "never", "-q", "--no-calls"])
    assert cap.table() == capsys.readouterr().out
    with_calls = rawinspect.read(path)
    cli.main(["replay", str(path), "--width", "120", "--color", "never", "-q"])
    assert capsys.readouterr().out.startswith(with_calls.table())
    assert with_calls.calls and with_calls.left_behind
    (svg,) = cap.svg()
    assert "<svg" in svg and "TIME_WAIT" in svg
    assert cap.html().startswith("<!DOCTYPE html>") and svg in cap.html()
    assert svg in cap._repr_html_()
    assert "sequenceDiagram" in cap.mermaid()


def test_write_pcap_and_annotated_pcapng(tmp_path):
    cap = rawinspect.read(ROOT / "captures" / "abortive-close.pcap")
    cap.write(tmp_path / "a.pcap")
    assert rawinspect.read(tmp_path / "a.pcap").jsonl() == cap.jsonl()
    cap.write(tmp_path / "a.pcapng")
    comments = [p.comments for p in rdpcap(str(tmp_path / "a.pcapng"))]
    assert comments[0] and b"rawinspect conn 1 c>s SYN" in comments[0][0]
    cap.write(tmp_path / "plain.pcapng", annotated=False)
    assert not any(p.comments for p in rdpcap(str(tmp_path / "plain.pcapng")))
    with pytest.raises(ValueError, match="only pcapng"):
        cap.write(tmp_path / "b.pcap", annotated=True)


# A connection built with scapy's layers: handshake, 5 bytes, the client's FIN answered by
# an ACK only: the server is left in CLOSE_WAIT.
def conversation(ip=IP, src="10.0.0.1", dst="10.0.0.2"):
    c, s = dict(sport=40000, dport=80), dict(sport=80, dport=40000)
    segs = [(True, TCP(flags="S", seq=100, **c)),
            (False, TCP(flags="SA", seq=500, ack=101, **s)),
            (True, TCP(flags="A", seq=101, ack=501, **c)),
            (True, TCP(flags="PA", seq=101, ack=501, **c) / b"hello"),
            (False, TCP(flags="A", seq=501, ack=106, **s)),
            (True, TCP(flags="FA", seq=106, ack=501, **c)),
            (False, TCP(flags="A", seq=501, ack=107, **s))]
    out = []
    for i, (from_client, tcp) in enumerate(segs):
        p = (ip(src=src, dst=dst) if from_client else ip(src=dst, dst=src)) / tcp
        p = p.__class__(bytes(p))
        p.time = 1_700_000_000 + i * 0.01
        out.append(p)
    return out


def with_link(link, packets):
    out = []
    for p in packets:
        q = link / p
        q = q.__class__(bytes(q))
        q.time = p.time
        out.append(q)
    return out


LINKS = {
    "raw IPv4": lambda: conversation(),
    "raw IPv6": lambda: conversation(IPv6, "fd00::1", "fd00::2"),
    "Ethernet": lambda: with_link(Ether(), conversation()),
    "BSD loopback": lambda: with_link(Loopback(type=2), conversation()),
    "Linux cooked": lambda: with_link(CookedLinux(proto=0x0800), conversation()),
    "Linux cooked v2": lambda: with_link(CookedLinuxV2(proto=0x0800), conversation()),
}


@pytest.mark.parametrize("link", LINKS)
def test_annotate_takes_scapys_packets_on_every_link_type(link):
    cap = rawinspect.annotate(LINKS[link]())
    assert (cap.stats.packets, cap.stats.segments) == (7, 7)
    (conn,) = cap.connections
    assert conn.server.states == ["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT"]
    assert conn.client.final == "FIN_WAIT_2"


def test_annotate_equals_read_for_rdpcap_and_tuples(tmp_path):
    for name in ("handshake.pcap", "handshake6.pcap", "write-after-close.pcap"):
        path = ROOT / "captures" / name
        expected = rawinspect.read(path, calls=False).jsonl()
        assert rawinspect.annotate(rdpcap(str(path))).jsonl() == expected
        tuples = [(ts, data, lt) for lt, ts, data, _ in rawinspect.read(path)._packets.records()]
        assert rawinspect.annotate(tuples).jsonl() == expected


def test_loopbacks_second_copy_is_dropped():
    once = with_link(Ether(), conversation())
    twice = []
    for p in once:
        for _ in range(2):
            q = p.copy()
            q.time, q.sniffed_on = p.time, "lo"
            twice.append(q)
    assert rawinspect.annotate(twice).jsonl() == rawinspect.annotate(once).jsonl()


def test_annotate_refuses_what_is_not_a_packet():
    with pytest.raises(PacketError, match="packet 2: expected a scapy packet"):
        rawinspect.annotate([conversation()[0], "hello"])


def test_assertion_messages_show_states_side_by_side_and_the_ladder():
    cap = rawinspect.annotate(conversation())
    with pytest.raises(AssertionError) as e:
        cap.assert_closed_cleanly()
    text = str(e.value)
    assert "the server was left in CLOSE_WAIT" in text and "the server sent no FIN" in text
    assert "conn 1: client 10.0.0.1:40000 <-> server 10.0.0.2:80" in text  # the ladder
    with pytest.raises(AssertionError) as e:
        cap.connections[0].assert_states(server=["LISTEN", "SYN_RCVD", "ESTABLISHED",
                                                 "CLOSE_WAIT", "LAST_ACK", "CLOSED"])
    lines = str(e.value).splitlines()
    assert lines[0] == "conn 1 (10.0.0.1:40000 → 10.0.0.2:80): the server's states are not " \
                       "the expected ones"
    assert lines[6].split() == ["5", "LAST_ACK", "-", "<<"]
    cap.assert_no_reset()
    cap.connections[0].assert_states(client=["CLOSED", "SYN_SENT", "ESTABLISHED",
                                             "FIN_WAIT_1", "FIN_WAIT_2"])
    rst = rawinspect.read(ROOT / "captures" / "abortive-close.pcap")
    with pytest.raises(AssertionError, match=r"2 RST segment\(s\), expected none"):
        rst.assert_no_reset()
    rst.assert_finding("rst-on-close", conn=1)
    with pytest.raises(AssertionError, match="rst-on-close"):
        rst.assert_no_findings(severity="warning")
    with pytest.raises(AssertionError, match="expected a finding 'epipe'"):
        rst.assert_finding("epipe")
    rawinspect.read(ROOT / "captures" / "handshake.pcap").assert_no_findings()


def test_printer_prints_each_segment_as_it_is_annotated():
    out = io.StringIO()
    prn = rawinspect.printer("jsonl", out)
    for p in conversation():
        assert prn(p) is None  # sniff() prints what prn returns
    before_close = len(out.getvalue().splitlines())
    cap = prn.close()
    assert before_close >= 5
    assert out.getvalue() == cap.jsonl() == rawinspect.annotate(conversation()).jsonl()


def test_live_without_privileges_names_the_fix(monkeypatch):
    from rawinspect.sources import sniffer

    def refuse(*args, **kw):
        raise sniffer.NoPrivilegeError(sniffer.privilege_hint())
    monkeypatch.setattr(sniffer, "Sniffer", refuse)
    with pytest.raises(rawinspect.CapturePermissionError, match="CAP_NET_RAW") as e:
        with rawinspect.live(ports=[1]):
            pass
    assert "setcap" in str(e.value) and isinstance(e.value, PermissionError)


def echo_once(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"


@pytest.fixture
def echo_port():
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(5)


@pytest.mark.privileged
def test_live_captures_while_the_block_runs_and_scapy_sniffs_the_same(echo_port, tmp_path):
    from scapy.sendrecv import AsyncSniffer
    ready = threading.Event()
    sniffer = AsyncSniffer(iface="lo", filter=f"tcp port {echo_port}",
                           started_callback=ready.set)
    sniffer.start()
    assert ready.wait(10), "scapy's sniffer did not start"
    with rawinspect.live(ports=[echo_port], linger=0.3) as cap:
        echo_once(echo_port)
    sniffed = sniffer.stop()
    (conn,) = cap.connections
    assert conn.server.states == ["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT",
                                  "LAST_ACK", "CLOSED"]
    cap.assert_closed_cleanly()
    cap.assert_no_reset()
    assert cap.stats.dropped == 0
    # scapy's sniff() saw every packet twice on lo: annotate() keeps one copy of each.
    from_scapy = rawinspect.annotate(sniffed)
    assert [(a.flags, a.client_after, a.server_after) for a in from_scapy.annotations] == [
        (a.flags, a.client_after, a.server_after) for a in cap.annotations]
    cap.write(tmp_path / "live.pcap")
    assert rawinspect.read(tmp_path / "live.pcap").jsonl() == cap.jsonl()


@pytest.mark.privileged
def test_live_records_a_commands_calls(tmp_path):
    import sys
    client = ("import socket; s = socket.create_server(('127.0.0.1', 0)); "
              "c = socket.create_connection(s.getsockname()); a, _ = s.accept(); "
              "c.close(); a.close(); s.close()")
    with rawinspect.live(command=[sys.executable, "-c", client], linger=0.3) as cap:
        pass
    (conn,) = cap.connections
    names = [c.name for c in conn.calls]
    assert "connect" in names and "close" in names
    assert any(s.cause for s in conn.segments)


@pytest.mark.privileged
def test_live_with_a_missing_command_says_so_at_once():
    with pytest.raises(rawinspect.CaptureError, match="cannot run '/no/such/program'"):
        with rawinspect.live(command=["/no/such/program"]):
            pass


def test_ipv6_endpoints_keep_their_brackets_wherever_they_are_written():
    c = rawinspect.read(ROOT / "captures" / "handshake6.pcap").connections[0]
    assert (c.client.address, c.client.endpoint) == ("::1", f"[::1]:{c.client.port}")
    assert repr(c).startswith(f"<connection 1 [::1]:{c.client.port} → [::1]:{c.server.port} ")
