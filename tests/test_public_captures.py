"""Every public capture replays without a traceback, with tshark's counts."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections import Counter, defaultdict
from contextlib import redirect_stderr, redirect_stdout

import pytest

from conftest import PUBLIC, cannot_run, reference_rows
from rawinspect.app.cli import main

ROWS = reference_rows()
ANALYSIS_COUNTED = ("retransmission", "out_of_order", "fast_retransmission",
                    "spurious_retransmission", "zero_window", "keep_alive", "lost_segment")
ANALYSIS = ("retransmission", "fast_retransmission", "spurious_retransmission",
            "out_of_order", "lost_segment", "duplicate_ack", "zero_window",
            "zero_window_probe", "zero_window_probe_ack", "window_full", "window_update",
            "keep_alive", "keep_alive_ack", "ack_lost_segment", "reused_ports")
DAMAGED = {"suricata-bug-1450-04-corrupt-record.pcap": "record 7",
           "suricata-http-mime-truncated.pcap": "record 2697"}
SIMULTANEOUS_CLOSES = {"zeek-tls13draft16-chrome55-aborted.pcap": 2,
                       "suricata-bug-5758-rawip.pcap": 1,
                       "suricata-output-multi-eve-sll.pcap": 1}


def replay_jsonl(name: str) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["replay", "--format", "jsonl", str(PUBLIC / name)])
    records = (json.loads(line) for line in out.getvalue().splitlines())
    return rc, [r for r in records if "kind" not in r], err.getvalue()  # segments only


def test_reference_covers_every_file(public_dir):
    files = sorted(p.name for p in public_dir.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert files == sorted(r["file"] for r in ROWS)
    assert len(files) == 31


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_counts_equal_tshark(public_dir, row):
    rc, anns, err = replay_jsonl(row["file"])
    assert "Traceback" not in err
    if row["file"] in DAMAGED:
        assert rc == 1
        assert DAMAGED[row["file"]] in err and "byte offset" in err
        assert len(err.strip().splitlines()) == 2  # the summary and one error line
    else:
        assert rc == 0, err
    flags = Counter(a["flags"] for a in anns)
    count = lambda pred: sum(n for f, n in flags.items() if pred(f))  # noqa: E731
    assert len(anns) == int(row["tcp_packets"])
    assert count(lambda f: "S" in f and "." not in f) == int(row["syn"])
    assert count(lambda f: "S" in f and "." in f) == int(row["syn_ack"])
    assert count(lambda f: "F" in f) == int(row["fin"])
    assert count(lambda f: "R" in f) == int(row["rst"])
    assert len({a["conn"] for a in anns}) == int(row["tcp_conversations"])
    assert f"{row['packets']} packets read" in err
    # Wireshark's analysis flags, counted as reference.tsv counts them.
    for flag in ANALYSIS_COUNTED:
        assert sum(flag in a["analysis"] for a in anns) == int(row[flag]), flag


@pytest.mark.parametrize("name,expected", sorted(SIMULTANEOUS_CLOSES.items()))
def test_simultaneous_closes_are_recognised(public_dir, name, expected):
    _, anns, _ = replay_jsonl(name)
    closing = defaultdict(set)
    for a in anns:
        for side in ("client", "server"):
            if "CLOSING" in (a[f"{side}_path"] or []):
                closing[a["conn"]].add(side)
    assert sum(1 for sides in closing.values() if sides == {"client", "server"}) == expected


def test_refused_connections_leave_the_server_closed(public_dir):
    _, anns, _ = replay_jsonl("chrissanders-tcp_refuseconnection.pcapng")
    assert [(a["client_after"], a["server_after"]) for a in anns] == [
        ("SYN_SENT", "CLOSED"), ("CLOSED", "CLOSED")]


def test_mid_stream_capture_is_inferred(public_dir):
    _, anns, _ = replay_jsonl("zeek-http-get_nosyn.pcap")
    assert "state_inferred" in anns[0]["analysis"]
    assert anns[0]["event"] == "data" and anns[0]["rel_seq"] == 1
    assert (anns[-1]["client_after"], anns[-1]["server_after"]) == ("TIME_WAIT", "CLOSED")


def test_frames_and_sequence_numbers_match_tshark(public_dir):
    if not shutil.which("tshark"):
        cannot_run("tshark is not installed: reference.tsv counts are checked instead")
    for row in ROWS:
        name = row["file"]
        if name == "zeek-echo-connections.pcap":
            continue  # 82k packets: covered by the counts above
        res = subprocess.run(["tshark", "-r", str(PUBLIC / name), "-Y", "tcp", "-T", "fields",
                              "-e", "frame.number", "-e", "tcp.seq_raw", "-e", "tcp.len"],
                             capture_output=True, text=True, check=False)
        theirs = [tuple(int(x) for x in line.split("\t")) for line in res.stdout.splitlines()]
        _, anns, _ = replay_jsonl(name)
        ours = [(a["frame"], a["seq"], a["len"]) for a in anns]
        assert ours == theirs, name


def tshark_analysis(path: str) -> dict[int, set[str]]:
    """tshark's tcp.analysis.* flags per frame (duplicate_ack with its number)."""
    fields = ["-e", "frame.number", "-e", "tcp.analysis.duplicate_ack_num"]
    for flag in ANALYSIS:
        fields += ["-e", f"tcp.analysis.{flag}"]
    res = subprocess.run(["tshark", "-r", path, "-Y", "tcp", "-T", "fields", "-E",
                          "occurrence=f", *fields], capture_output=True, text=True)
    out = {}
    for line in res.stdout.splitlines():
        frame, dup, *flags = line.split("\t")
        got = {f for f, v in zip(ANALYSIS, flags) if v}
        if dup:
            got.add(f"duplicate_ack_num={dup}")
        out[int(frame)] = got
    return out


def test_analysis_flags_match_tshark_frame_by_frame(public_dir):
    """Every Wireshark analysis flag, on every frame of every public and bundled capture."""
    if not shutil.which("tshark"):
        cannot_run("tshark is not installed: reference.tsv counts are checked instead")
    from pathlib import Path
    bundled = sorted((Path(__file__).resolve().parent.parent / "captures").glob("*.pcap"))
    paths = [str(PUBLIC / r["file"]) for r in ROWS] + [str(p) for p in bundled]
    for path in paths:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            main(["replay", "--format", "jsonl", "-q", path])
        ours = {}
        for line in out.getvalue().splitlines():
            a = json.loads(line)
            if "kind" in a:
                continue  # a finding, not a segment
            ours[a["frame"]] = {f for f in a["analysis"]
                                if f in ANALYSIS or f.startswith("duplicate_ack_num=")}
        theirs = tshark_analysis(path)
        differ = {f: (ours.get(f), theirs.get(f)) for f in set(ours) | set(theirs)
                  if ours.get(f, set()) != theirs.get(f, set())}
        assert not differ, (path, sorted(differ.items())[:5])
