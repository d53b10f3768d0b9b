"""Live capture on loopback, for real: every scenario, `-- COMMAND`, Ctrl-C, privileges.

Marked ``privileged``: skipped without root/CAP_NET_RAW on a developer's machine, a
failure under CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from rawinspect.scenarios import all_scenarios

from conftest import cannot_run

pytestmark = pytest.mark.privileged

ROOT = Path(__file__).resolve().parent.parent
RACY = {"simultaneous-close", "simultaneous-open", "backlog"}
RUNS = [(name, i) for name in all_scenarios() for i in range(3 if name in RACY else 1)]
ATTEMPTS = 3  # runs of one scenario before the wire's turn counts as a failure


def rawinspect(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rawinspect", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kw)


def drops(stderr: str) -> int:
    m = re.search(r"; (\d+) packets dropped by kernel", stderr)
    assert m, f"no drop count in: {stderr}"
    return int(m.group(1))


def capture_scenario(name: str, pcap: Path, report: Path) -> subprocess.CompletedProcess:
    """``capture NAME --verify --strict``, run again (at most ATTEMPTS times) when the wire
    took a turn the lesson does not expect: real timing on loopback decides which segment
    leaves first (a reply before an ACK, a lost race). Each rerun is reported as a warning;
    the last attempt must meet every expectation."""
    for attempt in range(1, ATTEMPTS + 1):
        live = rawinspect("capture", name, "-w", str(pcap), "--report", str(report),
                          "-T", "jsonl", "--verify", "--strict")
        if live.returncode != 1 or attempt == ATTEMPTS:
            return live
        missed = [line.strip() for line in (live.stdout + live.stderr).splitlines()
                  if "FAIL" in line or "DISAGREE" in line]
        warnings.warn(f"{name}: attempt {attempt} of {ATTEMPTS} did not meet the lesson, "
                      f"run again: {'; '.join(missed[:3])}")
    raise AssertionError("unreachable")


@pytest.mark.parametrize("name,run", RUNS, ids=[f"{n}-{i}" for n, i in RUNS])
def test_scenario_live(name, run, tmp_path):
    pcap, report = tmp_path / "live.pcap", tmp_path / "report.json"
    live = capture_scenario(name, pcap, report)
    assert live.returncode == 0, live.stdout + live.stderr
    # --verify --strict: the kernel's tracepoint agrees on every endpoint's states.
    m = re.search(r"verify: \d+ endpoints checked, (\d+) of (\d+) transitions agreed, "
                  r"0 disagreements; 0 kernel events lost", live.stderr)
    assert m and m.group(1) == m.group(2), live.stderr
    saved = json.loads(report.read_text())
    assert saved["ok"] and not saved["programs"].get("error")
    assert drops(live.stderr) == 0
    # The live annotations equal those of replaying the file the capture wrote.
    replay = rawinspect("replay", str(pcap), "-T", "jsonl", "-q")
    assert replay.returncode == 0
    assert live.stdout == replay.stdout
    records = map(json.loads, live.stdout.splitlines())
    frames = [r["frame"] for r in records if "frame" in r]  # calls, findings: no frame
    assert frames == list(range(1, len(frames) + 1))


@pytest.fixture
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


@pytest.fixture
def tcp_capture_ports(listener):
    """The port rawinspect's pytest plugin (tcp_capture) captures."""
    return [listener.getsockname()[1]]


def test_loopback_packets_are_seen_once(listener, tcp_capture):
    """Kernel-side dedupe, through our own pytest plugin: each segment once, none flagged."""
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    client.sendall(b"ping")
    assert server.recv(4) == b"ping"
    server.sendall(b"pong")
    assert client.recv(4) == b"pong"
    client.close()
    assert server.recv(1) == b""
    server.close()
    segments = tcp_capture.annotations
    assert not any(s.analysis for s in segments)
    assert len({(s.direction, s.seq, s.ack, s.flags) for s in segments}) == len(segments) >= 8
    tcp_capture.assert_closed_cleanly()
    (conn,) = tcp_capture.connections
    # The client's FIN_WAIT_2 shows only when the server's ACK comes before its FIN.
    conn.assert_states(server=["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK",
                               "CLOSED"])
    assert conn.client.final == "TIME_WAIT"


CLIENT = """
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
c.sendall(b"hi"); a.recv(2); c.close(); a.close(); srv.close()
import os; print(os.getuid(), file=sys.stderr); sys.exit(3)
"""
# The program prints to stderr: it shares stdout with rawinspect, and a print there (two
# writes when unbuffered) can land in the middle of a jsonl line.


def test_command_mode_captures_its_traffic_and_returns_its_status(tmp_path):
    pcap = tmp_path / "cmd.pcapng"
    res = rawinspect("capture", "-w", str(pcap), "-T", "jsonl", "--",
                     sys.executable, "-c", CLIENT)
    assert res.returncode == 3, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    anns = [r for r in records if "frame" in r]
    assert [a["flags"] for a in anns][:3] == ["S", "S.", "."]
    assert anns[-1]["client_after"] == "TIME_WAIT"
    replay = rawinspect("replay", str(pcap), "-T", "jsonl", "-q")
    assert [json.loads(x) for x in replay.stdout.splitlines()] == records


def test_command_runs_as_the_invoking_user(tmp_path):
    if os.geteuid() != 0:
        cannot_run("needs root to act as sudo would")
    env = dict(os.environ, SUDO_UID="65534", SUDO_GID="65534")
    out = tmp_path / "as-nobody.pcap"
    res = rawinspect("capture", "-w", str(out), "-q", "--", "/usr/bin/id", "-u", env=env)
    assert "65534" in res.stdout.split(), res.stderr   # the program's line among the calls
    assert out.stat().st_uid == 65534
    res = rawinspect("capture", "-q", "--as-root", "--", "/usr/bin/id", "-u", env=env)
    assert "0" in res.stdout.split() and "65534" not in res.stdout.split()


def _traffic(port: int) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen()
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = srv.accept()
    c.sendall(b"x" * 100)
    a.recv(100)
    c.close()
    a.close()
    srv.close()


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_flushes_the_pcap(tmp_path, signum, code):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pcap = tmp_path / "stop.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "rawinspect", "capture", "-f",
                             f"tcp port {port}", "-w", str(pcap), "-T", "jsonl", "--verify"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # printed once sniffer and trace are ready
        assert first.startswith("rawinspect: capturing on lo"), first
        _traffic(port)
        time.sleep(0.5)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
        err = first + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "packets captured" in err and "Traceback" not in err
    assert not list(Path("/sys/kernel/tracing/instances").glob(f"rawinspect-*-{proc.pid}"))
    assert "0 disagreements" in err, err
    live = [json.loads(x) for x in out.splitlines()]
    assert len([r for r in live if "frame" in r]) >= 8
    replay = rawinspect("replay", str(pcap), "-T", "jsonl", "-q")
    assert [json.loads(x) for x in replay.stdout.splitlines()] == live


def test_count_and_duration_stop_the_capture(tmp_path):
    res = rawinspect("capture", "-c", "3", "-q", "-T", "jsonl", "--duration", "20", "--",
                     sys.executable, "-c", CLIENT.replace("sys.exit(3)", "time.sleep(1)")
                     .replace("import os;", "import os, time;"))
    assert res.returncode == 0, res.stderr
    records = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert len([r for r in records if "frame" in r]) == 3  # and the calls around them
    t0 = time.monotonic()
    res = rawinspect("capture", "--duration", "0.5", "-f", "tcp port 9", "-q")
    assert res.returncode == 0 and time.monotonic() - t0 < 10


def test_capture_errors_are_one_line(tmp_path):
    res = rawinspect("capture", "-f", "tcp port", "-q")
    assert res.returncode == 1 and "bad capture filter" in res.stderr
    assert "Traceback" not in res.stderr
    res = rawinspect("capture", "handshake", "-w", str(tmp_path / "no/such/dir.pcap"))
    assert res.returncode == 1 and "no/such/dir.pcap" in res.stderr
    assert "Traceback" not in res.stderr
    res = rawinspect("capture", "-i", "nosuchif0", "-q")
    assert res.returncode == 1 and "nosuchif0" in res.stderr
    res = rawinspect("capture", "nosuchscenario")
    assert res.returncode == 2 and "handshake" in res.stderr


def test_without_privileges_exit_77():
    """Root without CAP_NET_RAW (dropped from the bounding set) cannot open the socket."""
    if shutil.which("setpriv") is None:
        cannot_run("setpriv (util-linux) is needed to drop CAP_NET_RAW")
    res = subprocess.run(["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw",
                          sys.executable, "-m", "rawinspect", "capture", "-q"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 77, res.stderr
    assert "sudo" in res.stderr and "setcap" in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("rawinspect: live capture needs root or CAP_NET_RAW")
    assert "Traceback" not in res.stderr and len(lines) <= 8


def test_capture_writes_annotated_pcapng(tmp_path):
    from test_pictures import _pcapng_comments
    out = tmp_path / "live.pcapng"
    res = rawinspect("capture", "handshake", "-w", str(out), "--annotate", "-q", "-T", "jsonl")
    assert res.returncode == 0, res.stderr
    comments = _pcapng_comments(out)
    live = [r for r in map(json.loads, res.stdout.splitlines()) if "frame" in r]
    assert len(comments) == len(live) == 10
    assert all(c.startswith("rawinspect conn 1 ") for c in comments)
    assert "TIME_WAIT" in comments[-1]
