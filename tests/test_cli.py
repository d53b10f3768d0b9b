"""The command line as a user meets it: exit codes, one-line errors, formats, filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from frames import eth, ipv4, pcap, tcp
from rawinspect.render.jsonl import seconds6
from rawinspect.scenarios import all_scenarios
from rawinspect.core.transitions import EVENTS, TRANSITIONS

ROOT = Path(__file__).resolve().parent.parent
JSONL_KEYS = ["frame", "ts", "conn", "client", "server", "direction", "flags", "seq", "ack",
              "rel_seq", "rel_ack", "len", "win", "client_before", "client_after",
              "server_before", "server_after", "client_path", "server_path", "event",
              "analysis", "note", "win_scaled", "options"]


def rawinspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawinspect", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


@pytest.fixture
def two_conns(tmp_path: Path) -> Path:
    """Two short connections: port 40001 closes normally, port 40002 is refused."""
    recs = []
    t = 1000.0
    def add(sport, dport, seq, ack, flags, payload=b"", src="10.0.0.1", dst="10.0.0.2"):
        nonlocal t
        t += 0.001
        recs.append((t, eth(ipv4(tcp(sport, dport, seq, ack, flags, payload=payload), src, dst))))
    add(40001, 80, 100, 0, 0x02)
    add(80, 40001, 500, 101, 0x12, src="10.0.0.2", dst="10.0.0.1")
    add(40001, 80, 101, 501, 0x10)
    add(40001, 80, 101, 501, 0x18, b"hello")
    add(40001, 80, 106, 501, 0x11)
    add(80, 40001, 501, 107, 0x11, src="10.0.0.2", dst="10.0.0.1")
    add(40001, 80, 107, 502, 0x10)
    add(40002, 81, 900, 0, 0x02)
    add(81, 40002, 0, 901, 0x14, src="10.0.0.2", dst="10.0.0.1")
    p = tmp_path / "two.pcap"
    p.write_bytes(pcap(recs))
    return p


def test_jsonl_has_the_documented_keys(two_conns):
    res = rawinspect("replay", "--format", "jsonl", str(two_conns))
    assert res.returncode == 0, res.stderr
    lines = [r for r in map(json.loads, res.stdout.splitlines()) if "kind" not in r]
    assert len(lines) == 9
    assert list(lines[0]) == JSONL_KEYS
    first = lines[0]
    assert (first["frame"], first["conn"], first["client"], first["server"]) == (
        1, 1, "10.0.0.1:40001", "10.0.0.2:80")
    assert (first["direction"], first["flags"], first["event"]) == ("c>s", "S", "SYN")
    assert [ln["flags"] for ln in lines[:5]] == ["S", "S.", ".", "P.", "F."]
    assert lines[4]["client_after"] == "FIN_WAIT_1"
    assert "9 packets read, 9 TCP segments, 2 connections" in res.stderr


@pytest.mark.parametrize("sec, usec", [(0, 0), (0, 1), (0, 999_999), (1, 500_000), (59, 999_999),
                                       (1_700_000_000, 13_390), (2**31, 999_999),
                                       (2**32 - 1, 1)])
def test_jsonl_time_is_the_microsecond_read(sec: int, usec: int) -> None:
    ts = sec + usec * 1e-6  # as capfile computes it
    assert seconds6(ts) == f"{ts:.6f}" == f"{sec}.{usec:06d}"


def test_readme_documents_every_jsonl_key():
    readme = (ROOT / "README.md").read_text()
    for key in JSONL_KEYS:
        assert f"`{key}`" in readme, key


def test_table_is_the_default(two_conns):
    res = rawinspect("replay", str(two_conns))
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0].split()[:5] == ["No.", "Time", "Conn", "Dir", "Flags"]
    assert "CLOSED→" in res.stdout and "SYN_SENT" in res.stdout and "\x1b[" not in res.stdout
    assert "TIME_WAIT" in res.stdout


@pytest.mark.parametrize("args,frames", [
    (["--conn", "2"], [8, 9]),
    (["--port", "81"], [8, 9]),
    (["--host", "10.0.0.2", "-c", "3"], [1, 2, 3]),
    (["--conn", "1", "--count", "2"], [1, 2]),
])
def test_filters(two_conns, args, frames):
    res = rawinspect("replay", "--format", "jsonl", *args, str(two_conns))
    assert res.returncode == 0, res.stderr
    records = map(json.loads, res.stdout.splitlines())
    assert [r["frame"] for r in records if "kind" not in r] == frames


@pytest.mark.parametrize("args,code,message", [
    (["replay", "/nonexistent.pcap"], 1, "/nonexistent.pcap: cannot open"),
    (["replay", "--host", "not-an-ip", "X"], 2, "--host: not an IP address"),
    (["replay", "--count", "0", "X"], 2, "--count: must be positive"),
    (["replay", "--port", "70000", "X"], 2, "not a TCP port"),
    (["replay", "--format", "xml", "X"], 2, "invalid choice"),
    (["replay", "--format", "svg", "X"], 2, "--format svg needs -o"),
    # capture checks its output options before it opens a socket: no privileges needed
    (["capture", "--host", "not-an-ip"], 2, "--host: not an IP address"),
    (["capture", "--format", "svg"], 2, "--format svg needs -o"),
    (["capture", "--strict"], 2, "--strict needs --verify"),
    # every option works with the format or is refused before anything is read
    (["replay", "-o", "x.txt", "X"], 2, "-o FILE is for --format svg"),
    (["replay", "-T", "jsonl", "-o", "x.svg", "X"], 2, "-o FILE is for --format svg"),
    (["capture", "-o", "x.txt"], 2, "-o FILE is for --format svg"),
    (["replay", "--ascii", "X"], 2, "--ascii is for --format ladder, not table"),
    (["replay", "-v", "-T", "jsonl", "X"], 2, "--verbose is for --format table, not jsonl"),
    (["replay", "-v", "--conns", "X"], 2, "--verbose is for the per-segment table"),
    (["capture", "-T", "jsonl", "--ascii"], 2, "--ascii is for --format ladder, not jsonl"),
    (["replay", "--width", "90", "-T", "mermaid", "X"], 2,
     "--width is for --format table or ladder, not mermaid"),
    (["replay", "--time", "delta", "-T", "jsonl", "X"], 2,
     "--time is for --format table, not jsonl"),
    (["capture", "--time", "absolute", "-T", "ladder"], 2,
     "--time is for --format table, not ladder"),
    (["replay", "--time", "delta", "--conns", "X"], 2, "--time is for the per-segment table"),
    (["replay", "--time", "sometimes", "X"], 2, "invalid choice"),
    # -w: the same rules in replay and capture, checked first
    (["replay", "--annotate", "-w", "out.pcap", "X"], 2, "--annotate needs -w FILE.pcapng"),
    (["capture", "--annotate", "-w", "out.pcap"], 2, "--annotate needs -w FILE.pcapng"),
    (["replay", "-w", "out.pcapng", "X"], 2, "add --annotate"),
    (["replay", "--annotate", "-w", "/nonexistent/x.pcapng", "captures/handshake.pcap"], 1,
     "-w /nonexistent/x.pcapng: No such file or directory"),
    (["capture", "-w", "/nonexistent/x.pcap"], 1,
     "-w /nonexistent/x.pcap: No such file or directory"),
])
def test_bad_input_gets_one_line_and_no_traceback(args, code, message):
    res = rawinspect(*args)
    assert res.returncode == code
    assert message in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("mode,times", [
    ("relative", ["0.000000", "0.001000", "0.002000", "0.003000", "0.004000"]),
    ("delta", ["0.000000", "0.001000", "0.001000", "0.001000", "0.001000"]),
    ("conn-delta", ["0.000000", "0.001000", "0.001000", "0.001000", "0.001000"]),
])
def test_time_modes_on_the_command_line(two_conns, mode, times):
    res = rawinspect("replay", "--time", mode, "--width", "200", str(two_conns))
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line[:1].isdigit()]
    assert [r[1] for r in rows[:5]] == times
    if mode == "conn-delta":  # connection 2 starts again at zero
        assert [r[1] for r in rows if r[2] == "2"][0] == "0.000000"


def test_absolute_time_is_local_and_honours_tz(two_conns):
    for tz, stamp in (("UTC", "1970-01-01 00:16:40.001000"),
                      ("Asia/Tokyo", "1970-01-01 09:16:40.001000")):
        res = subprocess.run([sys.executable, "-m", "rawinspect", "replay", "--time",
                              "absolute", str(two_conns)], capture_output=True, text=True,
                             cwd=ROOT, timeout=120, env={**os.environ, "TZ": tz})
        assert res.returncode == 0, res.stderr
        first = [line for line in res.stdout.splitlines() if line.startswith("1 ")][0]
        assert first.startswith(f"1     {stamp} 1")


def test_a_missing_file_is_one_error_line():
    res = rawinspect("replay", "/nonexistent.pcap")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("rawinspect: error: /nonexistent.pcap: cannot open: No such file "
                          "or directory\n")


@pytest.mark.parametrize("args", [["--annotate", "-w", "/nonexistent/x.pcapng"],
                                  ["-o", "x.txt"], ["--ascii", "-T", "jsonl"]])
def test_bad_options_stop_before_anything_is_shown(two_conns, args):
    res = rawinspect("replay", *args, str(two_conns))
    assert res.returncode in (1, 2) and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1


def test_an_svg_output_file_means_svg(two_conns, tmp_path):
    out = tmp_path / "ladder.svg"
    res = rawinspect("replay", "-o", str(out), "--conn", "1", str(two_conns))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and out.read_text().lstrip().startswith(("<svg", "<?xml"))


@pytest.mark.parametrize("fmt", [["-T", "jsonl"], ["--conns"], ["-T", "zeek"]])
def test_a_connection_that_never_appeared_is_an_error(two_conns, fmt):
    res = rawinspect("replay", *fmt, "--conn", "2", "--conn", "99", str(two_conns))
    assert res.returncode == 1
    assert "rawinspect: error: --conn 99: no such connection (2 seen)" in res.stderr
    assert "9 packets read" in res.stderr  # the run itself is reported as usual
    ok = rawinspect("replay", *fmt, "--conn", "2", str(two_conns))
    assert ok.returncode == 0 and "error" not in ok.stderr


def test_garbage_file(tmp_path):
    p = tmp_path / "junk.pcap"
    p.write_bytes(b"this is not a capture file at all")
    res = rawinspect("replay", str(p))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(f"rawinspect: error: {p}: not a pcap")


def test_damaged_file_prints_what_was_read_then_the_error(tmp_path, two_conns):
    data = two_conns.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    res = rawinspect("replay", "--format", "jsonl", str(cut))
    assert res.returncode == 1
    assert len(res.stdout.splitlines()) == 8
    assert "record 9" in res.stderr and "Traceback" not in res.stderr


def test_states_prints_the_transition_table():
    res = rawinspect("states")
    assert res.returncode == 0
    table, events = res.stdout.strip().split("\n\n")
    assert len(table.splitlines()) == len(TRANSITIONS) + 2
    for event in EVENTS:
        assert event in events
    for t in TRANSITIONS:
        assert t.why in res.stdout


def test_readme_state_diagram_is_generated_from_the_table():
    res = rawinspect("states", "--format", "mermaid")
    readme = (ROOT / "README.md").read_text()
    assert res.stdout.strip() in readme, "run scripts/gen_readme_states.py"


@pytest.mark.parametrize("name", list(all_scenarios()))
def test_every_scenario_prints_each_endpoints_states(name):
    scenario = all_scenarios()[name]
    res = rawinspect("scenarios", name)
    assert res.returncode == 0, res.stderr
    expect = scenario.expect
    paths = expect.each or [p for alternatives in expect.conns for p in alternatives]
    assert paths
    for p in paths:
        assert f"client: {' → '.join(p.client)}" in res.stdout
        assert f"server: {' → '.join(p.server)}" in res.stdout
    for key, value in expect.outcomes.items():
        assert f"  {key}: {value}\n" in res.stdout
    for state, history in expect.zeek:
        assert f"{state}, history {history}" in res.stdout


def test_python_dash_m_and_version():
    res = rawinspect("--version")
    assert res.returncode == 0 and res.stdout.startswith("rawinspect ")


def test_broken_pipe_is_quiet(two_conns):
    res = subprocess.run(f"{sys.executable} -m rawinspect replay {two_conns} | head -1",
                         shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "Traceback" not in res.stderr


def test_replay_runs_with_the_cyclic_collector_paused_and_restores_it(monkeypatch):
    import gc
    from rawinspect.app import cli
    seen = []
    monkeypatch.setattr(cli, "replay_one", lambda args: seen.append(gc.isenabled()) or 0)
    assert gc.isenabled()
    assert cli.main(["replay", str(ROOT / "captures" / "handshake.pcap")]) == 0
    assert seen == [False] and gc.isenabled()
