"""Findings: each rule on a case that shows it and on a near miss that must not."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rawinspect.app.annotator import Annotator
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.core.annotation import Annotation
from rawinspect.core.call import EXIT, Call
from rawinspect.core.segment import ACK, FIN, PSH, SYN, Segment
from rawinspect.views import spill
from rawinspect.views.findings import RULES, Diagnoser, Finding, diagnose

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
C, S = "127.0.0.1:40000", "127.0.0.1:5000"


def bundled(name: str) -> list[Annotation]:
    return Annotator().feed_all(read_segments(str(CAPTURES / f"{name}.pcap"), Stats()))


def rules(found: list[Finding]) -> set[str]:
    return {f.rule for f in found}


def ann(frame: int, ts: float, from_client: bool, flags: int = ACK, payload: int = 0, *,
        conn: int = 1, state: tuple[str, str] = ("ESTABLISHED", "ESTABLISHED"),
        after: tuple[str, str] | None = None, event: str = "", analysis: tuple[str, ...] = (),
        seq: int = 1, ack: int = 1, client: str = C, server: str = S) -> Annotation:
    """A hand-built annotation: ``state`` (client, server) before, ``after`` after."""
    after = after or state
    src, dst = (client, server) if from_client else (server, client)
    seg = Segment(frame, ts, src.rsplit(":", 1)[0], int(src.rsplit(":", 1)[1]),
                  dst.rsplit(":", 1)[0], int(dst.rsplit(":", 1)[1]), seq, ack, flags, 65535,
                  payload)
    paths = [[b, a] if a != b else None for b, a in zip(state, after)]
    return Annotation(seg=seg, conn=conn, client=client, server=server,
                      from_client=from_client, client_before=state[0], client_after=after[0],
                      server_before=state[1], server_after=after[1], client_path=paths[0],
                      server_path=paths[1], event=event or ("data" if payload else "ACK"),
                      analysis=list(analysis), note="", rel_seq=seq, rel_ack=ack)


def call(name: str, ts: float, *, side: str = "client", conn: int | None = 1, ret: int = 0,
         errno: str = "", args: str = "", fd: int = 3, pid: int = 100, kind: str = "call"
         ) -> Call:
    c = Call(kind=kind, ts=ts, end=ts, pid=pid, name=name, fd=fd, args=args, ret=ret,
             errno=errno, conn=conn, side=side)
    return c


# The bundled captures: each rule where the lesson shows it, and a near miss.
@pytest.mark.parametrize("rule, shows, near_miss", [
    ("close-wait-leak", "never-close", "half-close"),
    ("fin-wait-2-hang", "never-close", "half-close"),
    ("rst-on-close", "abortive-close", "write-after-close"),
    ("write-after-peer-close", "write-after-close", "abortive-close"),
    ("connection-refused", "refused", "self-connect"),
    ("listen-overflow", "backlog", "simultaneous-open"),
    ("time-wait-on-server", "server-close", "simultaneous-open"),
    ("self-connect", "self-connect", "simultaneous-open"),
    ("retransmission-timeout", "backlog", "handshake"),
])
def test_rule_on_the_bundled_captures(rule, shows, near_miss):
    assert rule in rules(diagnose(bundled(shows)))
    assert rule not in rules(diagnose(bundled(near_miss)))


def test_every_rule_is_documented_and_names_its_findings():
    for name, rule in RULES.items():
        assert rule.name == name and len(rule.doc) > 80 and "Fix" in rule.doc
        assert rule.severity in ("error", "warning", "note")


def test_close_wait_text_names_the_frame_and_the_time_and_the_socket_left():
    anns = bundled("never-close")
    leak = next(f for f in diagnose(anns) if f.rule == "close-wait-leak")
    assert "frame 6" in leak.what and "1.0 s" in leak.what and "from the wire only" in leak.what
    assert leak.fix == "Call close() when read() returns 0."
    left = [{"state": "CLOSE_WAIT", "local": anns[0].server, "owners": [{"pid": 812}]}]
    held = next(f for f in diagnose(anns, [], left) if f.rule == "close-wait-leak")
    assert "still held it at the end (pid 812)" in held.what
    assert "from the wire only" not in held.what


def test_close_wait_with_the_calls_quotes_the_read_that_returned_0():
    anns = bundled("never-close")
    eof = call("read", anns[5].seg.ts + 0.0001, side="server", ret=0, args="65536 bytes")
    leak = next(f for f in diagnose(anns, [eof]) if f.rule == "close-wait-leak")
    assert "never called close() after read() returned 0" in leak.what
    assert leak.calls and leak.calls[0].startswith("read(fd 3, 65536 bytes) = 0")


def test_rst_on_close_says_which_cause_from_the_calls():
    anns = bundled("abortive-close")
    t1, t2 = anns[0].seg.ts, anns[6].seg.ts
    linger = [call("socket", t1 - 0.01, conn=None, ret=3, args="AF_INET, SOCK_STREAM"),
              call("setsockopt", t1 + 0.05, args="SOL_SOCKET, SO_LINGER"),
              call("close", t1 + 0.06)]
    unread = [call("socket", t2 - 0.01, conn=None, ret=4, fd=None),
              call("recvfrom", t2 + 0.05, conn=2, fd=4, ret=1, args="1 bytes, MSG_PEEK"),
              call("close", t2 + 0.06, conn=2, fd=4)]
    found = [f for f in diagnose(anns, linger + unread) if f.rule == "rst-on-close"]
    assert [f.conn for f in found] == [1, 2]
    assert "SO_LINGER {on, 0}" in found[0].what and "unread" not in found[0].what
    assert "31 bytes the server sent were still unread" in found[1].what


def test_write_after_close_is_an_error_once_epipe_or_sigpipe_is_seen():
    anns = bundled("write-after-close")
    epipe = call("write", anns[5].seg.ts + 0.1, ret=-1, errno="EPIPE", args="6 bytes")
    child_write = call("write", anns[10].seg.ts - 0.0001, conn=2, pid=101, ret=5)
    death = call("exit", anns[11].seg.ts + 0.1, conn=None, kind=EXIT, pid=101, args="SIGPIPE")
    found = [f for f in diagnose(anns, [epipe, child_write, death])
             if f.rule == "write-after-peer-close"]
    assert [f.severity for f in found] == ["error", "error"]
    assert "EPIPE" in found[0].what and "SIGPIPE killed it" in found[1].what
    wire = [f for f in diagnose(anns) if f.rule == "write-after-peer-close"]
    assert [f.severity for f in wire] == ["warning", "warning"]
    assert wire[0].frames == (4, 5, 6)


def test_half_close_misuse_needs_shutdown_then_close_in_the_calls():
    anns = [a for a in bundled("half-close") if a.conn == 2]
    fin = next(a for a in anns if a.seg.flags & FIN)
    misuse = [call("shutdown", fin.seg.ts - 0.0001, conn=2, args="SHUT_WR"),
              call("close", fin.seg.ts + 0.0001, conn=2)]
    found = rules(diagnose(anns, misuse))
    assert "half-close-misuse" in found and "write-after-peer-close" not in found
    plain = rules(diagnose(anns, misuse[1:]))
    assert "half-close-misuse" not in plain and "write-after-peer-close" in plain
    assert "half-close-misuse" not in rules(diagnose(anns))  # needs the calls


def test_eaddrinuse_only_without_so_reuseaddr():
    anns = bundled("server-close")
    t = anns[9].seg.ts + 0.0002   # after conn 1's TIME_WAIT, before conn 2 (0.7 ms later)
    bare = [call("socket", t, conn=None, side="server", ret=7, fd=None),
            call("bind", t + 0.00005, conn=None, side="server", fd=7, ret=-1, errno="EADDRINUSE")]
    found = [f for f in diagnose(anns, bare) if f.rule == "eaddrinuse"]
    assert len(found) == 1 and found[0].conn == 1 and "TIME_WAIT" in found[0].what
    reuse = bare[:1] + [call("setsockopt", t, conn=None, side="server", fd=7,
                             args="SOL_SOCKET, SO_REUSEADDR")] + bare[1:]
    assert "eaddrinuse" not in rules(diagnose(anns, reuse))


def _exchange() -> list[Annotation]:
    return [ann(1, 1.0, True, PSH | ACK, 10, seq=1, ack=1),
            ann(2, 1.001, True, PSH | ACK, 10, seq=11, ack=1)]


def test_message_boundaries_when_one_read_takes_two_writes():
    anns = _exchange()
    sends = [call("write", 0.999, ret=10, args="10 bytes"), call("write", 1.0, ret=10)]
    merged = sends + [call("read", 1.01, side="server", ret=20, args="1024 bytes", fd=4)]
    found = [f for f in diagnose(anns, merged) if f.rule == "message-boundaries"]
    assert len(found) == 1 and "several of the client's 2 writes" in found[0].what
    framed = sends + [call("read", 1.01, side="server", ret=10, args="10 bytes", fd=4),
                      call("read", 1.02, side="server", ret=10, args="10 bytes", fd=4)]
    assert "message-boundaries" not in rules(diagnose(anns, framed))


def _nagle(ack_delay: float) -> list[Annotation]:
    return [ann(1, 1.0, True, PSH | ACK, 5, seq=1, ack=1),
            ann(2, 1.0 + ack_delay, False, ACK, 0, seq=1, ack=6),
            ann(3, 1.0 + ack_delay + 0.0001, True, PSH | ACK, 5, seq=6, ack=1)]


def test_nagle_meets_delayed_ack():
    found = [f for f in diagnose(_nagle(0.041)) if f.rule == "nagle-delayed-ack"]
    assert len(found) == 1 and found[0].frames == (1, 2, 3) and "41 ms" in found[0].what
    assert "nagle-delayed-ack" not in rules(diagnose(_nagle(0.0005)))   # ACK at once
    late = _nagle(0.041)
    late[2] = ann(3, 1.2, True, PSH | ACK, 5, seq=6, ack=1)              # data much later
    assert "nagle-delayed-ack" not in rules(diagnose(late))


def test_slow_reader_and_keep_alive_from_the_analysis_flags():
    zero = [ann(1, 1.0, True, PSH | ACK, 100), ann(2, 1.1, False, analysis=("zero_window",)),
            ann(3, 1.5, True, PSH | ACK, 1, analysis=("zero_window_probe",)),
            ann(4, 2.0, False, analysis=("window_update",))]
    found = {f.rule: f for f in diagnose(zero)}
    assert "slow-reader" in found and "1 persist probes" in found["slow-reader"].what
    assert "slow-reader" not in rules(diagnose([zero[0], zero[3]]))
    ka = [ann(1, 1.0, True), ann(2, 8.0, True, analysis=("keep_alive",))]
    assert "keep-alive" in rules(diagnose(ka)) and "keep-alive" not in rules(diagnose(ka[:1]))


def test_retransmission_timeout_costs_time_fast_retransmission_not():
    rto = [ann(1, 1.0, True, PSH | ACK, 100, seq=1),
           ann(2, 1.4, True, PSH | ACK, 100, seq=1, analysis=("retransmission",))]
    found = [f for f in diagnose(rto) if f.rule == "retransmission-timeout"]
    assert len(found) == 1 and "0.4 s lost" in found[0].what
    fast = [rto[0], ann(2, 1.01, True, PSH | ACK, 100, seq=1, analysis=("retransmission",))]
    assert "retransmission-timeout" not in rules(diagnose(fast))


def test_connect_retried_on_the_same_local_port():
    syn = dict(flags=SYN, state=("CLOSED", "LISTEN"), after=("SYN_SENT", "SYN_RCVD"),
               event="SYN")
    same = [ann(1, 1.0, True, conn=1, **syn), ann(2, 2.0, True, conn=2, **syn)]
    assert "connect-same-port" in rules(diagnose(same))
    other = [same[0], ann(2, 2.0, True, conn=2, client="127.0.0.1:40001", **syn)]
    assert "connect-same-port" not in rules(diagnose(other))
    three = [*same, ann(3, 3.0, True, conn=3, **syn)]
    for retired in ([1], [2], [3, 1]):     # retired early: the same findings at the end
        d = Diagnoser()
        d.feed(three)
        d.retire(retired)
        assert d.results() == diagnose(three), retired
        assert sorted(d.collector.facts) == sorted({1, 2, 3} - set(retired))


def test_retired_findings_and_origins_kept_on_disk_give_the_same_findings(monkeypatch):
    """Sixty connections from five client ports, retired in shuffled batches, their
    findings and origins written to disk every few: the same findings, in the same order
    (connect-same-port's by the first connection of each four-tuple)."""
    syn = dict(flags=SYN, state=("CLOSED", "LISTEN"), after=("SYN_SENT", "SYN_RCVD"),
               event="SYN")
    anns = []
    for n in range(1, 61):
        client = f"127.0.0.1:{40000 + (n * 7) % 5}"
        anns.append(ann(n, float(n), True, conn=n, client=client, **syn))
        if n % 2:   # and a retransmission timeout: a finding of the connection's own
            anns += [ann(100 + 2 * n, n + 0.1, True, PSH | ACK, 100, conn=n, client=client),
                     ann(101 + 2 * n, n + 0.5, True, PSH | ACK, 100, conn=n, client=client,
                         analysis=("retransmission",))]
    monkeypatch.setattr(spill, "LIMIT", 4)
    monkeypatch.setattr(spill, "BLOCK", 3)
    conns = list(range(1, 61))
    random.Random(2).shuffle(conns)
    d = Diagnoser()
    d.feed(anns)
    for start in range(0, 50, 10):
        d.retire(conns[start:start + 10])
    assert d.origins.runs and d.retired.runs
    want = diagnose(anns)
    assert d.results() == want
    assert [f.conn for f in want if f.rule == "connect-same-port"] == [6, 7, 8, 9, 10]


def test_zombies_are_children_never_reaped():
    first = call("socket", 1.0, conn=None, pid=100, ret=3)
    child = call("exit", 2.0, conn=None, kind=EXIT, pid=101, ret=0)
    child.ppid = 100
    found = [f for f in diagnose([], [first, child]) if f.rule == "zombies"]
    assert len(found) == 1 and found[0].conn is None and "pid 101" in found[0].what
    started = call("exit", 3.0, conn=None, kind=EXIT, pid=100, ret=0)  # no traced parent
    assert "zombies" not in rules(diagnose([], [first, started]))
    reaped = call("wait4", 2.1, conn=None, pid=100, ret=101, args="WNOHANG")
    assert "zombies" not in rules(diagnose([], [first, child, reaped]))
    assert "zombies" not in rules(diagnose([]))   # no calls: not checked


def rawinspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawinspect", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


def test_findings_command_lists_every_rule():
    res = rawinspect("findings")
    assert res.returncode == 0
    for name in RULES:
        assert f"\n{name} (" in "\n" + res.stdout
    one = rawinspect("findings", "zombies")
    assert one.stdout.startswith("zombies (warning, needs the calls)")
    bad = rawinspect("findings", "nope")
    assert bad.returncode == 2 and "no rule 'nope'" in bad.stderr


def test_findings_only_and_jsonl_records():
    pcap = str(CAPTURES / "write-after-close.pcap")
    # From the wire alone (the capture's saved calls left out): a warning.
    only = rawinspect("replay", pcap, "-q", "--findings-only", "--color", "never", "--no-calls")
    assert only.returncode == 0 and only.stdout.startswith("findings, conn 1:")
    assert "WARNING write-after-peer-close" in only.stdout and "P." not in only.stdout
    # With the calls, the EPIPE they show makes it an error.
    calls = rawinspect("replay", pcap, "-q", "--findings-only", "--color", "never")
    assert "ERROR write-after-peer-close" in calls.stdout and "EPIPE" in calls.stdout
    records = [json.loads(x) for x in rawinspect("replay", pcap, "-q", "--findings-only",
                                                 "-T", "jsonl", "--no-calls").stdout.splitlines()]
    assert [r["kind"] for r in records] == ["finding", "finding"]
    assert records[0]["frames"] == [4, 5, 6] and records[0]["conn"] == 1
    table = rawinspect("replay", pcap, "-q", "--color", "never").stdout
    assert table.index("findings, conn 1:") > table.index("conn 2:")
    conns = rawinspect("replay", pcap, "-q", "--conns", "-T", "jsonl").stdout.splitlines()
    assert json.loads(conns[0])["findings"] == ["write-after-peer-close"]
    bad = rawinspect("replay", pcap, "--findings-only", "--conns")
    assert bad.returncode == 2 and "--findings-only" in bad.stderr


def test_nagle_scenario_stalls_without_tcp_nodelay_only():
    found = [f for f in diagnose(bundled("nagle")) if f.rule == "nagle-delayed-ack"]
    assert [f.conn for f in found] == [1]      # conn 2 set TCP_NODELAY


def test_close_wait_leak_scenario_spares_the_fixed_handler():
    found = [f for f in diagnose(bundled("close-wait-leak")) if f.rule == "close-wait-leak"]
    assert [f.conn for f in found] == [1, 2, 3]   # conn 4's server called close()


def test_findings_wrap_as_textwrap_does():
    """The fast wrap of the findings' lines gives textwrap's lines, on the usual text
    (hyphens too) and on every kind it hands to textwrap (double spaces, tabs, long
    words)."""
    import random
    import textwrap
    from rawinspect.render.findings import wrapped
    rng = random.Random(5)
    usual = ["frame", "12345", "SO_LINGER", "{on,", "0}", "close()", "→", "a", "ECONNRESET",
             "RST", "x" * 30, "rst-on-close:", "well-known", "a-b", "12-34", "x-", "-y",
             "ab--cd", "--", "SO-LINGER-x", "e.g.-like"]
    others = usual + ["x" * 45, "ab-" * 20, " ", "\t", ""]
    for i in range(6000):
        pieces = usual if i % 2 else others
        text = " " * rng.choice([0, 2, 4]) + " ".join(rng.choice(pieces) for _ in range(
            rng.randint(0, 30)))
        if rng.random() < 0.2:
            text += " "
        width = rng.randint(20, 120)
        indent = " " * rng.choice([0, 3, 6])
        assert wrapped(text, width, indent) == textwrap.wrap(
            text, width, subsequent_indent=indent), (text, width, indent)
