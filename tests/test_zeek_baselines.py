"""``--format zeek`` against Zeek's own conn.log baselines, on the traces they came from.

The set is ../shared/pcaps/zeek-baselines (48 traces of Zeek's test suite, 152 TCP rows);
its README.md says how to compare, and this follows it: TCP rows only, paired by 4-tuple
(addresses normalised), rows that share a 4-tuple in the baseline's order against ours in
``ts`` order; conn_state, history, packets, bytes and duration (within 1e-5 s) must agree,
Zeek's ``-`` only with ``-`` or an empty field; and we must log no TCP row Zeek does not.
"""

from __future__ import annotations

import io
import ipaddress
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from conftest import ROOT, cannot_run
from rawinspect.app.cli import main

BASELINES = ROOT.parent / "shared" / "pcaps" / "zeek-baselines"
CASES = sorted(p.name for p in BASELINES.iterdir() if (p / "conn.log").is_file()) \
    if BASELINES.is_dir() else []
COMPARED = ("conn_state", "history", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes",
            "duration")
Row = dict[str, str]
Key = tuple[str, str, str, str]


def read_log(text: str, proto: str = "tcp") -> list[Row]:
    """The rows of one protocol of a conn.log, by its #fields header."""
    fields: list[str] = []
    rows = []
    for line in text.splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            row = dict(zip(fields, line.split("\t")))
            if row.get("proto") == proto:
                rows.append(row)
    return rows


def key(row: Row) -> Key:
    """The 4-tuple, addresses normalised (IPv6 spelling does not matter)."""
    return (str(ipaddress.ip_address(row["id.orig_h"])), row["id.orig_p"],
            str(ipaddress.ip_address(row["id.resp_h"])), row["id.resp_p"])


def same(field: str, zeek: str, ours: str) -> bool:
    if zeek == "-":
        return ours in ("-", "")
    if field == "duration":
        return ours not in ("-", "") and abs(float(zeek) - float(ours)) <= 1e-5
    return zeek == ours


def trace(case: str) -> Path:
    return next(p for p in (BASELINES / case).iterdir() if p.name.startswith("trace."))


def replay_zeek(path: Path, proto: str = "tcp") -> list[Row]:
    """Our conn.log for ``path`` (``rawinspect replay PATH --format zeek``), in-process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["replay", "--format", "zeek", str(path)])
    assert rc == 0, err.getvalue()
    return read_log(out.getvalue(), proto)


def differences(case: str, proto: str = "tcp") -> list[str]:
    """Every baseline field of ``proto`` we get wrong in ``case``, one line each."""
    ours: dict[Key, list[Row]] = defaultdict(list)
    for row in sorted(replay_zeek(trace(case), proto), key=lambda r: float(r["ts"])):
        ours[key(row)].append(row)
    taken: dict[Key, int] = defaultdict(int)
    out = []
    for z in read_log((BASELINES / case / "conn.log").read_text(), proto):
        k = key(z)
        i = taken[k]
        taken[k] += 1
        if i >= len(ours[k]):
            rev = (k[2], k[3], k[0], k[1])
            out.append(f"{k}: no row (ours has it reversed)" if rev in ours
                       else f"{k}: no row #{i + 1}")
            continue
        mine = ours[k][i]
        out += [f"{k} #{i + 1} {f}: zeek {z[f]!r}, ours {mine.get(f)!r}"
                for f in COMPARED if not same(f, z[f], mine.get(f, ""))]
    out += [f"{k}: {len(rows) - taken[k]} row(s) that Zeek does not log"
            for k, rows in ours.items() if len(rows) > taken[k]]
    return out


@pytest.fixture
def baselines() -> Path:
    if not CASES:
        cannot_run(f"Zeek's baselines not found at {BASELINES} (they live beside the "
                   "project, not in it)")
    return BASELINES


def test_the_set_is_whole(baselines):
    assert len(CASES) == 48
    rows = sum(len(read_log((baselines / c / "conn.log").read_text())) for c in CASES)
    assert rows == 152


@pytest.mark.parametrize("case", CASES or ["(no set)"])
def test_conn_log_equals_zeeks(baselines, case):
    assert differences(case) == []


UDP_CASES = [c for c in CASES if read_log((BASELINES / c / "conn.log").read_text(), "udp")]


def test_the_set_has_udp_rows(baselines):
    assert sum(len(read_log((baselines / c / "conn.log").read_text(), "udp"))
               for c in UDP_CASES) == 26


@pytest.mark.parametrize("case", UDP_CASES or ["(no set)"])
def test_udp_rows_equal_zeeks(baselines, case):
    """UDP flows too: originator, conn_state, history, packets, bytes and duration."""
    assert differences(case, "udp") == []
