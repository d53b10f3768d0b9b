"""``capture --pid``: following a process that was already running, live on loopback.

Marked ``privileged``: skipped without root on a developer's machine, a failure under CI.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

ROOT = Path(__file__).resolve().parent.parent
# A server already listening when the capture starts: it accepts two clients (echo, close)
# and forks a child for the second one, then exits.
SERVER = r"""
import os, socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
print(l.getsockname()[1], flush=True)
s, _ = l.accept(); s.send(s.recv(10)); s.close()
s, _ = l.accept()
pid = os.fork()
if pid == 0:
    s.send(s.recv(10)); s.close(); os._exit(0)
s.close(); os.waitpid(pid, 0); l.close()
"""


def _client(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"ping")
        assert c.recv(10) == b"ping"


def test_a_running_server_and_its_child_are_followed(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        capture = subprocess.Popen(
            [sys.executable, "-m", "rawinspect", "capture", "--pid", str(server.pid),
             "-T", "jsonl", "-w", str(tmp_path / "pid.pcapng"), "--duration", "20"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # the trace is set up
        _client(port)
        _client(port)
        out, err = capture.communicate(timeout=60)
    finally:
        server.kill()
        server.wait()
    assert capture.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    calls = [r for r in records if r.get("kind") == "call"]
    segments = [r for r in records if "frame" in r]
    assert {s["server"] for s in segments} == {f"127.0.0.1:{port}"}
    accepted = [c for c in calls if c["name"] in ("accept", "accept4") and c.get("ret", -1) >= 0]
    assert len(accepted) >= 1 and all(c["side"] == "server" for c in accepted)
    child_sends = [c for c in calls if c["name"] == "sendto" and c["pid"] != server.pid]
    assert child_sends and child_sends[0]["ret"] == 4, "the forked child's send is traced"
    assert any(r.get("kind") == "exit" and r["pid"] == server.pid for r in records)
    assert "calls of the programs" in err
