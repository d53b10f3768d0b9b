"""The calls on the command line, without privileges: options refused before anything
runs, and replay of captures saved with their calls (pcapng blocks, a pcap's sidecar)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rawinspect.core.call import Call
from rawinspect.sources.calls_file import custom_block, read_calls, sidecar

ROOT = Path(__file__).resolve().parent.parent
HANDSHAKE = ROOT / "captures" / "handshake.pcap"


def rawinspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rawinspect", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--pid", "1", "handshake"], "only one"),
    (["--pid", "999999999"], "--pid 999999999: no such process"),
    (["--pid", "1", "--no-calls"], "cannot go with --no-calls"),
    (["--all-traffic"], "--all-traffic is for"),
])
def test_call_options_are_checked_before_capturing(args, message):
    res = rawinspect("capture", *args)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def _calls_of(anns_jsonl: str) -> list[dict]:
    return [json.loads(line) for line in anns_jsonl.splitlines()
            if json.loads(line).get("kind")]


def _handshake_calls() -> list[Call]:
    """A client's connect() and a failed write() on the bundled handshake capture's
    4-tuple, as a capture saves them: linked to their connection and side."""
    first = json.loads(rawinspect("replay", "-T", "jsonl", "-c", "1", "--no-calls",
                                  str(HANDSHAKE)).stdout.splitlines()[0])
    client, server, t = first["client"], first["server"], first["ts"]
    return [Call(ts=t - 0.0001, end=t + 0.0001, pid=7, comm="client", name="connect", fd=3,
                 args=server, ret=0, local=client, peer=server, conn=1, side="client"),
            Call(ts=t + 0.5, end=t + 0.5, pid=7, comm="client", name="write", fd=3,
                 args="5 bytes", ret=-1, errno="EPIPE", local=client, peer=server, conn=1,
                 side="client")]


def test_replay_shows_calls_saved_in_a_pcapng_custom_block(tmp_path):
    ng = tmp_path / "h.pcapng"
    assert rawinspect("replay", str(HANDSHAKE), "--annotate", "-w", str(ng),
                      "--no-calls").returncode == 0   # the packets only: our calls follow
    ng.write_bytes(ng.read_bytes() + custom_block(_handshake_calls()))
    assert [c.name for c in read_calls(str(ng))] == ["connect", "write"]
    res = rawinspect("replay", "-T", "jsonl", str(ng))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [("call" if r.get("kind") else "segment") for r in lines]
    assert kinds[0] == "call" and kinds[1] == "segment", "connect() comes before its SYN"
    connect = lines[0]
    assert connect["conn"] == 1 and connect["side"] == "client"
    assert lines[1]["cause"].startswith("SYN_SENT ← connect(fd 3), pid 7, client")
    assert "2 calls of the programs" in res.stderr
    assert "cause" not in lines[-1], "no RST, no shutdown: nothing explains the EPIPE"
    if shutil.which("tshark"):
        assert subprocess.run(["tshark", "-r", str(ng)], capture_output=True).returncode == 0
    assert "kind" not in rawinspect("replay", "-T", "jsonl", "--no-calls", str(ng)).stdout


def test_replay_reads_a_pcaps_sidecar_and_names_a_damaged_one(tmp_path):
    pcap = tmp_path / "h.pcap"
    shutil.copy(HANDSHAKE, pcap)
    side = Path(sidecar(str(pcap)))
    side.write_text("".join(json.dumps(c.as_dict()) + "\n" for c in _handshake_calls()))
    calls = _calls_of(rawinspect("replay", "-T", "jsonl", str(pcap)).stdout)
    assert [c["name"] for c in calls] == ["connect", "write"]
    side.write_text('{"kind": "call", "ts": \n')
    res = rawinspect("replay", str(pcap))
    assert res.returncode == 1
    assert res.stderr.startswith(f"rawinspect: error: {side}: saved call 1 is damaged")
