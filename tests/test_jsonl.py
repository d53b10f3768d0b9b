"""JSON lines: the keys consumers rely on, the scaled window and the TCP options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from frames import pcap
from rawinspect.app import cli
from rawinspect.sources.capfile import open_capture

CAPTURES = ROOT / "captures"
KEYS = ["frame", "ts", "conn", "client", "server", "direction", "flags", "seq", "ack",
        "rel_seq", "rel_ack", "len", "win", "client_before", "client_after", "server_before",
        "server_after", "client_path", "server_path", "event", "analysis", "note",
        "win_scaled", "options"]


def jsonl(capsys: pytest.CaptureFixture[str], path: Path) -> list[dict[str, object]]:
    assert cli.main(["replay", str(path), "-T", "jsonl", "-q", "--no-calls"]) == 0
    records = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    return [r for r in records if "kind" not in r]   # the segments, not calls or findings


@pytest.mark.parametrize("name", ["handshake.pcap", "handshake6.pcap"])
def test_new_keys_come_last_and_options_are_on_every_segment(capsys, name):
    rows = jsonl(capsys, CAPTURES / name)
    assert rows and all(list(row) == KEYS for row in rows)
    for row in rows:   # Linux sends timestamps on every segment
        opts = row["options"]
        assert isinstance(opts, dict) and len(opts["ts"]) == 2
    syn = rows[0]["options"]
    assert syn["mss"] > 0 and syn["sack_perm"] is True and 0 <= syn["wscale"] <= 14
    assert list(syn) == ["mss", "wscale", "sack_perm", "ts"]


def test_win_scaled_is_the_window_the_receiver_reads(capsys):
    rows = jsonl(capsys, CAPTURES / "handshake.pcap")
    shift = {r["direction"]: r["options"]["wscale"] for r in rows if "S" in str(r["flags"])}
    assert set(shift) == {"c>s", "s>c"}
    for row in rows:
        if "S" in str(row["flags"]):   # a SYN's own window is never scaled
            assert row["win_scaled"] == row["win"]
        else:
            assert row["win_scaled"] == row["win"] << shift[str(row["direction"])]
    assert any(r["win_scaled"] != r["win"] for r in rows)


def test_without_both_syns_the_window_stays_raw(capsys, tmp_path):
    records = list(open_capture(str(CAPTURES / "handshake.pcap")))[2:]   # no SYN, no SYN+ACK
    frames = [(ts, bytes(buf[off:off + caplen])) for _, ts, buf, off, caplen, _ in records]
    path = tmp_path / "midstream.pcap"
    path.write_bytes(pcap(frames, linktype=records[0][0]))
    rows = jsonl(capsys, path)
    assert rows and all(r["win_scaled"] == r["win"] for r in rows)
    assert all("ts" in r["options"] for r in rows)


def test_state_paths_and_flag_lists_are_written_as_json_dumps_writes_them():
    import re
    from rawinspect.core.transitions import STATES
    from rawinspect.render.jsonl import names_json
    flags = set()
    for path in [ROOT / "rawinspect" / "views" / "wireshark.py",
                 ROOT / "rawinspect" / "core" / "inference.py"]:
        flags |= set(re.findall(r'append\(f?"([^"]+)"\)', path.read_text()))
    assert {"retransmission", "duplicate_ack", "state_inferred"} <= flags
    for names in ([*STATES], [*STATES][::-1], sorted(flags), ["duplicate_ack_num={n}"],
                  ["ESTABLISHED"]):
        assert names_json(names) == json.dumps(names)
