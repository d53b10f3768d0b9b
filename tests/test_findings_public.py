"""No finding on a public capture contradicts Wireshark's analysis or the states.

Each finding cites frames; on every public capture those frames must exist, belong to the
finding's connection, and show what the rule claims: the flags that tshark gives them
(our flags equal tshark's frame by frame, tests/test_public_captures.py) and the states
the tracker gives the connection.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Callable

import pytest

from conftest import PUBLIC, reference_rows
from rawinspect.app.cli import main

ROWS = reference_rows()
Segment = dict[str, Any]


def _flagged(*flags: str) -> Callable[[list[Segment]], bool]:
    def check(frames: list[Segment]) -> bool:
        return any(set(flags) & set(s["analysis"]) for s in frames)
    return check


def _has_flag(letter: str) -> Callable[[list[Segment]], bool]:
    return lambda frames: any(letter in s["flags"] for s in frames)


def _passes_through(state: str) -> Callable[[list[Segment]], bool]:
    def check(frames: list[Segment]) -> bool:
        return any(state in (s["client_path"] or []) + (s["server_path"] or [])
                   + [s["client_after"], s["server_after"]] for s in frames)
    return check


# What each rule's cited frames must show (rules not listed: the frames exist and belong
# to the connection).
CLAIMS: dict[str, Callable[[list[Segment]], bool]] = {
    "slow-reader": _flagged("zero_window", "window_full", "zero_window_probe"),
    "keep-alive": _flagged("keep_alive", "keep_alive_ack"),
    "retransmission-timeout": _flagged("retransmission", "spurious_retransmission"),
    "connection-refused": _has_flag("R"),
    # SYNs sent again, or the client's ACK or data the server dropped (it stays SYN_RCVD)
    "listen-overflow": lambda frames: _has_flag("S")(frames) or all(
        s["direction"] == "c>s" and s["server_after"] == "SYN_RCVD" for s in frames),
    "rst-on-close": _has_flag("R"),
    "close-wait-leak": _passes_through("CLOSE_WAIT"),
    "fin-wait-2-hang": _passes_through("FIN_WAIT_2"),
    "time-wait-on-server": _passes_through("TIME_WAIT"),
}


def _replay(name: str) -> tuple[dict[int, Segment], list[dict[str, Any]]]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        main(["replay", "--format", "jsonl", "-q", str(PUBLIC / name)])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    segments = {r["frame"]: r for r in records if "kind" not in r}
    return segments, [r for r in records if r.get("kind") == "finding"]


@pytest.mark.parametrize("name", [r["file"] for r in ROWS] or ["(none)"])
def test_findings_agree_with_tshark_and_the_states(public_dir, name):
    segments, findings = _replay(name)
    for f in findings:
        cited = [segments.get(n) for n in f["frames"]]
        assert all(s is not None for s in cited), f"{name}: {f['rule']} cites a missing frame"
        frames = [s for s in cited if s is not None]
        if f["conn"] is not None:
            assert all(s["conn"] == f["conn"] for s in frames), (name, f)
        claim = CLAIMS.get(f["rule"])
        if claim is not None and frames:
            assert claim(frames), f"{name}: {f['rule']} on frames {f['frames']}: {f['what']}"
