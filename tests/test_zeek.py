"""Zeek's conn_state and history, rule by rule, with hand-built segments."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from rawinspect.views.summary import ConnSummary, Summaries
from rawinspect.render import summaries as render
from rawinspect.app.annotator import Annotator
from rawinspect.core.tracker import Tracker
from rawinspect.views.zeek import ConnLog
from tcpseq import ACK, C_ISN, FIN, RST, S_ISN, SYN, Conv

PSH = 0x08
C1, S1 = C_ISN + 1, S_ISN + 1


def summary(segs):
    s = Summaries()
    s.feed(Tracker().feed_all(segs))
    results = s.results()
    assert len(results) == 1
    return results[0]


def close4(c: Conv, data: bool = True):
    """Handshake, a request and reply, client closes first: the normal SF."""
    segs = c.handshake()
    if data:
        segs += [c.seg("c", PSH | ACK, C1, S1, 10), c.seg("s", ACK, S1, C1 + 10),
                 c.seg("s", PSH | ACK, S1, C1 + 10, 20), c.seg("c", ACK, C1 + 10, S1 + 20)]
    dc, ds = (10, 20) if data else (0, 0)
    return segs + [c.seg("c", FIN | ACK, C1 + dc, S1 + ds),
                   c.seg("s", FIN | ACK, S1 + ds, C1 + dc + 1),
                   c.seg("c", ACK, C1 + dc + 1, S1 + ds + 1)]


def test_sf_normal_close():
    s = summary(close4(Conv()))
    assert (s.conn_state, s.history) == ("SF", "ShADadFf")
    assert s.bytes == (10, 20) and s.pkts == (6, 4)
    assert (s.client_final, s.server_final, s.closed_first) == ("TIME_WAIT", "CLOSED", "client")


def test_s0_attempt_without_reply():
    c = Conv()
    s = summary([c.seg("c", SYN, C_ISN)])
    assert (s.conn_state, s.history) == ("S0", "S")


def test_retransmitted_syn_is_one_s_but_a_new_isn_repeats_it():
    c = Conv()
    assert summary([c.seg("c", SYN, C_ISN), c.seg("c", SYN, C_ISN, dt=1.0)]).history == "S"


def test_rej_refused():
    c = Conv()
    s = summary([c.seg("c", SYN, C_ISN), c.seg("s", RST | ACK, 0, C1)])
    assert (s.conn_state, s.history) == ("REJ", "Sr")


def test_s1_established_not_closed():
    c = Conv()
    s = summary(c.handshake() + [c.seg("c", PSH | ACK, C1, S1, 5)])
    assert (s.conn_state, s.history) == ("S1", "ShAD")


def test_s2_and_s3_one_sided_close():
    c = Conv()
    s2 = summary(c.handshake() + [c.seg("c", FIN | ACK, C1, S1)])
    assert (s2.conn_state, s2.history) == ("S2", "ShAF")
    c = Conv()
    s3 = summary(c.handshake() + [c.seg("s", FIN | ACK, S1, C1)])
    assert (s3.conn_state, s3.history) == ("S3", "ShAf")


def test_rsto_and_rstr():
    c = Conv()
    o = summary(c.handshake() + [c.seg("c", RST | ACK, C1, S1)])
    assert (o.conn_state, o.history) == ("RSTO", "ShAR")
    c = Conv()
    r = summary(c.handshake() + [c.seg("s", RST | ACK, S1, C1)])
    assert (r.conn_state, r.history) == ("RSTR", "ShAr")


def test_rstos0_syn_then_rst_from_originator():
    c = Conv()
    s = summary([c.seg("c", SYN, C_ISN), c.seg("c", RST, C1)])
    assert (s.conn_state, s.history) == ("RSTOS0", "SR")


def test_rstrh_and_shr_responder_only():
    c = Conv()
    s = summary([c.seg("s", SYN | ACK, S_ISN, C1), c.seg("s", RST | ACK, S1, C1)])
    assert (s.conn_state, s.history) == ("RSTRH", "^hr")
    c = Conv()
    s = summary([c.seg("s", SYN | ACK, S_ISN, C1), c.seg("s", FIN | ACK, S1, C1)])
    assert (s.conn_state, s.history) == ("SHR", "^hf")


def test_sh_syn_then_fin():
    c = Conv()
    s = summary([c.seg("c", SYN, C_ISN), c.seg("c", FIN, C1)])
    assert (s.conn_state, s.history) == ("SH", "SF")


def test_oth_midstream():
    c = Conv()
    s = summary([c.seg("c", PSH | ACK, C1, S1, 10), c.seg("s", ACK, S1, C1 + 10)])
    assert (s.conn_state, s.history) == ("OTH", "Da")


def test_once_only_letters_and_repeats():
    c = Conv()
    segs = c.handshake() + [c.seg("c", PSH | ACK, C1, S1, 10),
                            c.seg("c", PSH | ACK, C1 + 10, S1, 10),
                            c.seg("c", ACK, C1 + 20, S1)]
    assert summary(segs).history == "ShAD"   # D and A once per direction


def test_fin_repeats_only_with_a_new_sequence_number():
    c = Conv()
    segs = c.handshake() + [c.seg("c", FIN | ACK, C1, S1), c.seg("c", FIN | ACK, C1, S1),
                            c.seg("c", PSH | FIN | ACK, C1, S1, 5)]
    assert summary(segs).history == "ShAFF"


def test_retransmissions_and_zero_windows_are_logarithmic():
    c = Conv()
    segs = c.handshake() + [c.seg("c", PSH | ACK, C1, S1, 10)]
    segs += [c.seg("c", PSH | ACK, C1, S1, 10, dt=0.5) for _ in range(12)]
    assert summary(segs).history == "ShADTT"      # 1st and 10th retransmission
    c = Conv()
    segs = c.handshake() + [c.seg("s", ACK, S1, C1, window=0) for _ in range(10)]
    assert summary(segs).history == "ShAaww"


def test_multi_flag_and_inconsistent_packets():
    c = Conv()
    s = summary(c.handshake() + [c.seg("c", FIN | RST | ACK, C1, S1)])
    assert "I" in s.history
    c = Conv()
    s = summary([c.seg("c", SYN | FIN, C_ISN)])
    assert s.history == "Q"


def test_content_gap_is_counted_when_acked():
    c = Conv()
    segs = c.handshake() + [c.seg("c", PSH | ACK, C1 + 100, S1, 10),
                            c.seg("s", ACK, S1, C1 + 110)]
    s = summary(segs)
    assert "G" in s.history and s.missed_bytes == 100


def test_simultaneous_close_and_rtt():
    c = Conv()
    segs = c.handshake() + [c.seg("c", FIN | ACK, C1, S1), c.seg("s", FIN | ACK, S1, C1),
                            c.seg("c", ACK, C1 + 1, S1 + 1), c.seg("s", ACK, S1 + 1, C1 + 1)]
    s = summary(segs)
    assert s.closed_first == "simultaneous" and s.conn_state == "SF"
    assert s.rtt == pytest.approx(0.002)
    assert [h.state for h in s.timing["client"]][-2:] == ["CLOSING", "TIME_WAIT"]


def zeek_text(summaries: list[ConnSummary]) -> str:
    out = io.StringIO()
    render.zeek(out, summaries)
    return out.getvalue()


def test_zeek_format_is_zeek_cut_compatible(tmp_path):
    text = zeek_text([summary(close4(Conv()))])
    lines = text.splitlines()
    fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    types = next(x for x in lines if x.startswith("#types")).split("\t")[1:]
    assert len(fields) == len(types) == len(render.ZEEK_FIELDS)
    row = [x for x in lines if not x.startswith("#")][0].split("\t")
    assert len(row) == len(fields)
    rec = dict(zip(fields, row))
    assert rec["conn_state"] == "SF" and rec["history"] == "ShADadFf"
    assert rec["id.orig_p"] == "40000" and rec["proto"] == "tcp"
    assert re.fullmatch(r"C[A-Z2-7]{17}", rec["uid"])


def test_cli_conns_jsonl_and_explain(tmp_path):
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    pcap = root / "captures" / "simultaneous-close.pcap"
    res = subprocess.run([sys.executable, "-m", "rawinspect", "replay", str(pcap), "--conns",
                          "-T", "jsonl", "-q"], capture_output=True, text=True, cwd=root)
    import json
    recs = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(recs) == 5 and all(r["conn_state"] == "SF" for r in recs)
    assert recs[0]["timing"]["client"][0]["state"] == "CLOSED"
    res = subprocess.run([sys.executable, "-m", "rawinspect", "replay", str(pcap), "--explain",
                          "1", "-q"], capture_output=True, text=True, cwd=root)
    assert "History letters:" in res.stdout and "frame 1" in res.stdout
    res = subprocess.run([sys.executable, "-m", "rawinspect", "replay", str(pcap), "--explain",
                          "99", "-q"], capture_output=True, text=True, cwd=root)
    assert res.returncode == 1 and "no such connection" in res.stderr


def test_matches_zeeks_own_baseline_for_a_missing_syn(public_dir):
    """Zeek's test suite baseline core.tcp.missing-syn/conn.log, on the same capture."""
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    res = subprocess.run([sys.executable, "-m", "rawinspect", "replay",
                          str(public_dir / "zeek-tcp-missing-syn.pcap"), "-T", "zeek", "-q"],
                         capture_output=True, text=True, cwd=root)
    row = [x for x in res.stdout.splitlines() if not x.startswith("#")][0].split("\t")
    rec = dict(zip(render.ZEEK_FIELDS, row))
    zeek = {"ts": "1128727435.633408", "id.orig_h": "141.42.64.125", "id.orig_p": "56730",
            "id.resp_h": "125.190.109.199", "id.resp_p": "80", "duration": "1.550793",
            "orig_bytes": "98", "resp_bytes": "9417", "conn_state": "SF",
            "missed_bytes": "0", "history": "^hADdFaf", "orig_pkts": "11", "resp_pkts": "10"}
    assert {k: rec[k] for k in zeek} == zeek


def test_time_in_time_wait_is_2msl_when_a_late_fin_ends_it():
    """--msl 5: a FIN retransmitted 20 s after the close finds TIME_WAIT over after 10 s."""
    c = Conv()
    segs = close4(c, data=False) + [c.seg("s", FIN | ACK, S1, C1 + 1, dt=20.0)]
    s = Summaries()
    s.feed(Tracker(msl=5.0).feed_all(segs))
    client = s.results()[0].timing["client"]
    assert [h.state for h in client][-2:] == ["TIME_WAIT", "CLOSED"]
    assert client[-2].seconds == pytest.approx(10.0)


def test_handshake_rtt_is_wiresharks_and_a_retransmitted_syn_restarts_it():
    """One definition (tcp.analysis.initial_rtt): the latest SYN to the ACK of the SYN+ACK;
    the second the first SYN waited in a full queue is not round-trip time."""
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("c", SYN, C_ISN, dt=1.0),
            c.seg("s", SYN | ACK, S_ISN, C_ISN + 1, dt=0.004), c.seg("c", ACK, C1, S1, dt=0.002)]
    s = summary(segs)
    assert s.rtt == pytest.approx(0.006)
    anns = Annotator().feed_all(segs)
    assert "out_of_order" not in anns[-1].analysis


def test_no_handshake_no_rtt():
    c = Conv()
    assert summary([c.seg("c", ACK | PSH, C1, S1, 10), c.seg("s", ACK, S1, C1 + 10)]).rtt is None


def test_time_wait_ends_after_2msl_when_the_capture_runs_longer():
    c = Conv()
    s = Summaries(time_wait=10.0)
    anns = Tracker(msl=5.0).feed_all(close4(c, data=False))
    s.feed(anns)
    s.end = anns[-1].seg.ts + 30.0
    result = s.results()[0]
    client = result.timing["client"]
    assert [h.state for h in client][-2:] == ["TIME_WAIT", "CLOSED"]
    assert client[-2].seconds == pytest.approx(10.0)
    assert result.client_final == "CLOSED"


def test_explain_has_a_legend_of_the_letters_that_occur():
    from rawinspect.render.summaries import HISTORY_MEANINGS, history_legend
    lines = history_legend("ShADadFf")
    assert lines[0].startswith("Legend (upper case: the originator")
    body = {line.split()[0]: line for line in lines[1:]}
    assert list(body) == ["S", "h", "A", "D", "F"]  # one line per letter, first seen first
    assert body["A"].split()[:2] == ["A", "a"] and "pure ACK" in body["A"]
    assert body["D"].split()[:2] == ["D", "d"] and "data" in body["D"]
    assert "SYN+ACK" in body["h"] and "RST" not in " ".join(lines)
    flipped = history_legend("^hADdFaf")
    assert any(line.split()[0] == "^" and "flipped" in line for line in flipped)
    assert history_legend("") == []
    every = history_legend("ShADFRGTWIQC^")
    assert len(every) == 1 + len(HISTORY_MEANINGS) and not any("?" in x for x in every)


def test_cli_explain_prints_the_legend_after_the_letters():
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    res = subprocess.run([sys.executable, "-m", "rawinspect", "replay",
                          str(root / "captures" / "abortive-close.pcap"), "--explain", "1",
                          "-q"], capture_output=True, text=True, cwd=root)
    text = res.stdout
    assert res.returncode == 0
    assert text.index("History letters:") < text.index("Legend") < text.index("State changes:")
    history = re.search(r"history (\S+);", text).group(1)
    legend = text[text.index("Legend"):text.index("State changes:")]
    for letter in history:
        assert re.search(rf"^  (\S )*{re.escape(letter)}(?=\s)", legend, re.M), letter


def zeek_rows(segs):
    """The conn.log rows Zeek's rules give for ``segs``: (reversed, conn_state, history, pkts)."""
    log = ConnLog()
    anns = Tracker().feed_all(segs)
    for a in anns:
        log.feed(a)
    assert len(log.conns) == 1      # the tracker's own idea is unchanged: one connection
    return [(r.reversed, r.conn_state, r.history, r.pkts)
            for cid in sorted(log.conns) for r in log.rows(cid)]


def test_an_unanswered_syn_ends_after_tcp_attempt_delay():
    """Zeek's AttemptTimer (5 s): packets after it start a new, partial connection."""
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("c", SYN, C_ISN, dt=3.0),
            c.seg("c", PSH | ACK, C1, S1, 10, dt=2.5), c.seg("c", FIN | ACK, C1 + 10, S1)]
    assert zeek_rows(segs) == [(False, "S0", "S", (2, 0)), (False, "SH", "DF", (2, 0))]
    c = Conv()   # answered in time: one connection
    segs = [c.seg("c", SYN, C_ISN), c.seg("c", SYN, C_ISN, dt=3.0),
            c.seg("s", SYN | ACK, S_ISN, C1, dt=1.0), c.seg("c", ACK, C1, S1)]
    assert zeek_rows(segs) == [(False, "S1", "ShA", (3, 1))]


def test_a_syn_after_a_rejected_attempt_is_a_new_connection():
    """IsReuse: any SYN once a side has closed (here, the RST of a refusal)."""
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("s", RST | ACK, 0, C1),
            c.seg("c", SYN, C_ISN, dt=0.5), c.seg("s", RST | ACK, 0, C1)]
    assert zeek_rows(segs) == [(False, "REJ", "Sr", (1, 1))] * 2


def test_data_after_a_reset_connection_was_removed_starts_a_new_one():
    """The RST's close removes the connection tcp_close_delay (5 s) later."""
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("s", SYN | ACK, S_ISN, C1), c.seg("c", RST, C1),
            c.seg("c", PSH | ACK, C1, S1, 10, dt=15.0), c.seg("s", RST, S1)]
    assert zeek_rows(segs) == [(False, "RSTO", "ShR", (2, 1)), (False, "RSTRH", "Dr", (1, 1))]


def test_a_syn_with_another_isn_is_port_reuse_and_opens_the_other_way():
    """Simultaneous open: the peer's own SYN is a new connection, from the peer."""
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("s", SYN, S_ISN), c.seg("c", SYN | ACK, C_ISN, S1),
            c.seg("s", SYN | ACK, S_ISN, C1), c.seg("c", ACK, C1, S1)]
    rows = zeek_rows(segs)
    assert rows[0] == (False, "S0", "S", (1, 0))
    assert rows[1][:3] == (True, "S1", "Sha")
    s = summary(segs)    # the summary keeps the tracker's one connection
    assert s.history.startswith("Ss") and len(s.zeek) == 2


def test_inactivity_timeout_splits_a_silent_connection():
    c = Conv()
    segs = c.handshake() + [c.seg("c", PSH | ACK, C1, S1, 5, dt=301.0)]
    assert [r[1:3] for r in zeek_rows(segs)] == [("S1", "ShA"), ("OTH", "D")]


def test_gap_below_the_peers_fin_is_counted_but_not_after_a_reset():
    """AckReceived caps at the peer's FIN; gaps are logged only on clean endpoints."""
    c = Conv()
    segs = c.handshake() + [c.seg("s", FIN | ACK, S1 + 100, C1),
                            c.seg("c", ACK, C1, S1 + 101)]
    s = summary(segs)
    assert s.history == "ShAfg" and s.missed_bytes == 100
    c = Conv()
    segs = c.handshake() + [c.seg("s", RST, S1), c.seg("s", PSH | ACK, S1 + 100, C1, 5),
                            c.seg("c", ACK, C1, S1 + 105)]
    assert "g" not in summary(segs).history


def test_zeek_format_writes_every_row_in_time_order_with_its_own_tuple():
    c = Conv()
    segs = [c.seg("c", SYN, C_ISN), c.seg("s", SYN, S_ISN), c.seg("c", SYN | ACK, C_ISN, S1),
            c.seg("s", SYN | ACK, S_ISN, C1), c.seg("c", ACK, C1, S1)]
    lines = [x.split("\t") for x in zeek_text([summary(segs)]).splitlines()
             if not x.startswith("#")]
    recs = [dict(zip(render.ZEEK_FIELDS, x)) for x in lines]
    assert [(r["id.orig_p"], r["id.resp_p"], r["history"]) for r in recs] == [
        ("40000", "80", "S"), ("80", "40000", "Sha")]
    assert recs[0]["uid"] != recs[1]["uid"]
    assert float(recs[0]["ts"]) <= float(recs[1]["ts"])


def test_uids_are_the_first_17_base32_characters_of_the_sha1() -> None:
    """The uid made by hand is Zeek's look as base64 writes it: "C" and 17 characters."""
    import base64
    import hashlib
    import random
    from rawinspect.views.zeek import uid
    rng = random.Random(3)
    for i in range(3000):
        text = "".join(rng.choice("0123456789.:[]abcdef→") for _ in range(rng.randint(0, 60)))
        want = "C" + base64.b32encode(hashlib.sha1(text.encode()).digest()).decode()[:17]
        assert uid(text) == want, text
