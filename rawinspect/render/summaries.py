"""Connection summaries as a table, JSON lines, or Zeek's conn.log (TSV for zeek-cut);
and ``--explain``: the segments behind one connection's verdicts."""

from __future__ import annotations

import json
import tempfile
import time
from typing import IO, Iterable, Sequence, TextIO

from ..views.spill import SortedSpill
from ..views.summary import ConnSummary
from ..views.udp_flows import UdpFlow
from ..views.zeek import uid as zeek_uid

ZEEK_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents")
ZEEK_TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
              "count", "count", "string", "bool", "bool", "count", "string", "count", "count",
              "count", "count", "set[string]")


def split_endpoint(ep: str) -> tuple[str, str]:
    """"1.2.3.4:80" or "[::1]:80" → (address, port)."""
    host, port = ep.rsplit(":", 1)
    return host.strip("[]"), port


def duration(x: float) -> str:
    """Seconds, in ms below one second."""
    return f"{x * 1e3:.3f} ms" if x < 1 else f"{x:.3f} s"


def _timing(s: ConnSummary, who: str) -> str:
    return " → ".join(f"{h.state} {duration(h.seconds)}" for h in s.timing[who])


def _found(findings: dict[int, list[str]] | None, conn: int) -> str:
    """A connection's findings: their count and rule names ("-" for none)."""
    rules = (findings or {}).get(conn, [])
    return f"{len(rules)}: {', '.join(rules)}" if rules else "-"


HEADERS = ("Conn", "Start", "Duration", "Client", "Server", "C→S pkts/bytes",
           "S→C pkts/bytes", "State", "History", "Client end", "Server end", "Closed first",
           "RTT ms")


def table(out: TextIO, summaries: Iterable[ConnSummary],
          findings: dict[int, list[str]] | None = None, udp: Sequence[UdpFlow] = ()) -> None:
    """One row per connection (with its findings when given), then each endpoint's time
    in each state.

    The columns are laid out as tabulate's "simple" format does (left-aligned, at least
    two wider than the header and two spaces apart, a dashed line under the header, no
    trailing blanks). The rows wait for the widths, their cells joined by NUL, in a
    temporary file once they pass a megabyte, and so does the timing."""
    headers = HEADERS + (("Findings",) if findings is not None else ())
    widths = [len(h) + 2 for h in headers]
    with _spooled() as rows, _spooled() as timing:
        for s in summaries:
            cells = [str(s.conn), f"{s.start:.6f}", f"{s.duration:.6f}", s.client.strip(),
                     s.server.strip(), f"{s.pkts[0]}/{s.bytes[0]}",
                     f"{s.pkts[1]}/{s.bytes[1]}", s.conn_state.strip(), s.history.strip(),
                     s.client_final, s.server_final, s.closed_first,
                     "-" if s.rtt is None else f"{s.rtt * 1e3:.3f}"]
            if findings is not None:
                cells.append(_found(findings, s.conn))
            widths = [max(w, len(c)) for w, c in zip(widths, cells)]
            rows.write("\0".join(cells) + "\n")
            timing.write(f"  conn {s.conn} client: {_timing(s, 'client')}\n"
                         f"  conn {s.conn} server: {_timing(s, 'server')}\n")
        out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip() + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        rows.seek(0)
        for row in rows:
            out.write("  ".join(c.ljust(w) for c, w in zip(row[:-1].split("\0"), widths))
                      .rstrip() + "\n")
        out.write("\nTime in each state (until the next change or the end of the capture):\n")
        timing.seek(0)
        out.writelines(timing)
    out.writelines(line + "\n" for line in udp_lines(udp))


SPOOL = 1 << 20   # characters of the table's rows (or timing) kept in memory


def _spooled() -> IO[str]:
    """Text kept in memory up to ``SPOOL``, then in a temporary file (already unlinked)."""
    return tempfile.SpooledTemporaryFile(SPOOL, mode="w+", encoding="utf-8", newline="\n")


def udp_lines(udp: Sequence[UdpFlow]) -> list[str]:
    """The UDP flows after the connections: no states, what each side sent."""
    if not udp:
        return []
    lines = ["", "UDP flows (no connection, no states; Zeek's conn_state and history):"]
    for f in udp:
        lines.append(f"  {f.orig} → {f.resp}: {f.pkts[0]} datagrams/{f.bytes[0]} bytes, "
                     f"back {f.pkts[1]}/{f.bytes[1]}, {f.duration:.6f} s, {f.conn_state} "
                     f"{f.history or '-'}")
    return lines


def jsonl(out: TextIO, summaries: Iterable[ConnSummary],
          findings: dict[int, list[str]] | None = None, udp: Sequence[UdpFlow] = ()) -> None:
    """The same fields as JSON, one connection per line (Zeek's names where they exist);
    with ``findings``, their count and rule names too."""
    for s in summaries:
        oh, op = split_endpoint(s.client)
        rh, rp = split_endpoint(s.server)
        d = {"ts": round(s.start, 6), "uid": s.uid, "conn": s.conn, "id.orig_h": oh,
             "id.orig_p": int(op), "id.resp_h": rh, "id.resp_p": int(rp), "proto": "tcp",
             "duration": round(s.duration, 6), "orig_bytes": s.bytes[0],
             "resp_bytes": s.bytes[1], "conn_state": s.conn_state,
             "missed_bytes": s.missed_bytes, "history": s.history, "orig_pkts": s.pkts[0],
             "resp_pkts": s.pkts[1], "client_final": s.client_final,
             "server_final": s.server_final, "closed_first": s.closed_first,
             "handshake_rtt": None if s.rtt is None else round(s.rtt, 6),
             "timing": {who: [{"state": h.state, "since": round(h.since, 6),
                               "frame": h.frame, "seconds": round(h.seconds, 6)}
                              for h in held]
                        for who, held in s.timing.items()}}
        if findings is not None:
            rules = findings.get(s.conn, [])
            d["findings_count"], d["findings"] = len(rules), rules
        out.write(json.dumps(d) + "\n")
    for f in udp:
        (oh, op), (rh, rp) = split_endpoint(f.orig), split_endpoint(f.resp)
        out.write(json.dumps({
            "kind": "udp_flow", "ts": round(f.ts, 6), "uid": f.uid, "id.orig_h": oh,
            "id.orig_p": int(op), "id.resp_h": rh, "id.resp_p": int(rp), "proto": "udp",
            "duration": round(f.duration, 6), "orig_bytes": f.bytes[0],
            "resp_bytes": f.bytes[1], "conn_state": f.conn_state, "history": f.history,
            "orig_pkts": f.pkts[0], "resp_pkts": f.pkts[1]}) + "\n")


def _udp_row(f: UdpFlow) -> list[str]:
    """A UDP flow's conn.log fields."""
    timed = f.duration > 0
    return [f"{f.ts:.6f}", f.uid, *split_endpoint(f.orig), *split_endpoint(f.resp), "udp",
            "-", f"{f.duration:.6f}" if timed else "-", str(f.bytes[0]) if timed else "-",
            str(f.bytes[1]) if timed else "-", f.conn_state, "-", "-", "0",
            f.history or "-", str(f.pkts[0]), "-", str(f.pkts[1]), "-", "-"]


def _row_uid(uid: str, n: int) -> str:
    """The uid of Zeek row ``n`` of a connection whose first row has ``uid``."""
    if n == 0:
        return uid
    return zeek_uid(f"{uid}/{n}")


def zeek(out: TextIO, summaries: Iterable[ConnSummary], udp: Sequence[UdpFlow] = ()) -> None:
    """Zeek's conn.log in its ASCII format, with the #fields/#types header: the rows Zeek
    would write, in order of their first packet (one connection may be several)."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             "#unset_field\t-", "#path\tconn", f"#open\t{stamp}",
             "#fields\t" + "\t".join(ZEEK_FIELDS), "#types\t" + "\t".join(ZEEK_TYPES)]
    rows: SortedSpill[str] = SortedSpill()   # by time, then as made (a stable sort)
    for s in summaries:
        oh, op = split_endpoint(s.client)
        rh, rp = split_endpoint(s.server)
        for n, z in enumerate(s.zeek):
            timed = z.duration > 0
            ends = (rh, rp, oh, op) if z.reversed else (oh, op, rh, rp)
            rows.add((z.ts, len(rows)), "\t".join((
                f"{z.ts:.6f}", _row_uid(s.uid, n), *ends, "tcp", "-",
                f"{z.duration:.6f}" if timed else "-", str(z.bytes[0]) if timed else "-",
                str(z.bytes[1]) if timed else "-", z.conn_state, "-", "-",
                str(z.missed_bytes), z.history or "-", str(z.pkts[0]), "-", str(z.pkts[1]),
                "-", "-")))
    for f in udp:
        rows.add((f.ts, len(rows)), "\t".join(_udp_row(f)))
    out.writelines(line + "\n" for line in lines)
    out.writelines(row + "\n" for _, row in rows.items())
    out.write(f"#close\t{stamp}\n")
    rows.close()


HISTORY_MEANINGS = {"s": "SYN (without ACK)", "h": "SYN+ACK", "a": "pure ACK",
                    "d": "data (payload)", "f": "FIN", "r": "RST", "g": "content gap",
                    "t": "retransmission", "w": "zero window",
                    "i": "inconsistent packet (e.g. FIN+RST)",
                    "q": "multi-flag packet (SYN+FIN or SYN+RST)", "c": "bad checksum",
                    "^": "direction flipped: the first packet came from the responder"}


def history_legend(history: str) -> list[str]:
    """What each letter of ``history`` means, one line per letter that occurs (Zeek's)."""
    if not history:
        return []
    kinds: dict[str, list[str]] = {}
    for letter in history:
        seen = kinds.setdefault(letter.lower(), [])
        if letter not in seen:
            seen.append(letter)
    lines = ["Legend (upper case: the originator, lower case: the responder):"]
    for kind, letters in kinds.items():
        shown = " ".join(sorted(letters, key=str.islower))
        lines.append(f"  {shown:<4} {HISTORY_MEANINGS.get(kind, '?')}")
    return lines


def explain(s: ConnSummary) -> str:
    """Which segments produced each history letter and each state change."""
    lines = [f"conn {s.conn} ({s.uid}): client {s.client}, server {s.server}",
             f"conn_state {s.conn_state}, history {s.history or '-'}; closed first: "
             f"{s.closed_first}; handshake RTT: "
             + ("-" if s.rtt is None else f"{s.rtt * 1e3:.3f} ms"), "", "History letters:"]
    for letter, frame in s.letters:
        side = ("direction flipped: the first packet came from the responder"
                if letter == "^" else "originator" if letter.isupper() else "responder")
        lines.append(f"  {letter}  frame {frame}  ({side})")
    legend = history_legend(s.history)
    if legend:
        lines += [""] + legend
    lines += ["", "State changes:"]
    for frame, who, path in s.changes:
        lines.append(f"  frame {frame}: {who} {' → '.join(path)}")
    lines += ["", "Time in each state:"]
    for who in ("client", "server"):
        for h in s.timing[who]:
            lines.append(f"  {who} {h.state:<12} from frame {h.frame:<6} {duration(h.seconds)}")
    return "\n".join(lines) + "\n"
