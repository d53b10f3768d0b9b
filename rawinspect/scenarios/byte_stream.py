"""TCP is a byte stream: message boundaries are not kept ("sticky packets").

Ten small messages sent back to back reach the server as one lump if it reads a bit
later: recv() returns whatever bytes have arrived, merged; a large message comes out of
recv() in pieces. TCP carries bytes, not messages; the application must frame them.
Three ways, each on its own connection: fixed-length records (read exactly N bytes),
a delimiter (peek with MSG_PEEK for the newline, then read exactly up to it), and a
4-byte length prefix in network byte order (struct "!I"). The report says which
messages each data segment carried.
"""

from __future__ import annotations

import socket
import struct
import time

from .call_checks import Boundaries, Calls, StateCause
from .base import CLIENT_CLOSES, Check, Context, Expect, Observed, Scenario, in_thread

MESSAGES = [b"message %d: %s" % (i, b"x" * i) for i in range(10)]
RECORD = 32


def recv_exact(s: socket.socket, n: int) -> bytes:
    """Exactly n bytes, however recv() splits them (b"" at EOF)."""
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def read_unframed(s: socket.socket) -> list[bytes]:
    time.sleep(0.2)                     # a busy server reads a little later
    return [c for c in iter(lambda: s.recv(65536), b"")]


def read_fixed(s: socket.socket) -> list[bytes]:
    return [r.rstrip(b"\0") for r in iter(lambda: recv_exact(s, RECORD), b"")]


def read_line(s: socket.socket) -> bytes:
    peek = s.recv(4096, socket.MSG_PEEK)    # look without taking
    while peek and b"\n" not in peek:
        time.sleep(0.001)
        peek = s.recv(4096, socket.MSG_PEEK)
    if not peek:
        return b""
    return recv_exact(s, peek.index(b"\n") + 1)[:-1]   # take exactly one line


def read_delimited(s: socket.socket) -> list[bytes]:
    return list(iter(lambda: read_line(s), b""))


def read_prefixed(s: socket.socket) -> list[bytes]:
    out = []
    while header := recv_exact(s, 4):
        out.append(recv_exact(s, struct.unpack("!I", header)[0]))
    return out


FRAMINGS = [
    ("unframed", lambda m: m, read_unframed),
    ("fixed-length", lambda m: m.ljust(RECORD, b"\0"), read_fixed),
    ("delimiter", lambda m: m + b"\n", read_delimited),
    ("length prefix", lambda m: struct.pack("!I", len(m)) + m, read_prefixed),
]


def server(ctx: Context, listener: socket.socket) -> None:
    for name, _encode, read in FRAMINGS:
        conn, _ = listener.accept()
        with conn:
            got = read(conn)            # until the client's FIN
            kept = got == MESSAGES
            ctx.outcome(f"{name}: messages recovered", "all 10" if kept else
                        f"no: {len(got)} recv() results for 10 messages")
            if not kept:
                ctx.say(f"{name}: the server read {[len(g) for g in got]} bytes per recv()")
            conn.sendall(b"done")


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    spans = []
    for _name, encode, _read in FRAMINGS:
        with ctx.connect() as s:
            offset, mine = 0, []
            for m in MESSAGES:          # back to back, no pause
                wire = encode(m)
                s.sendall(wire)
                mine.append((offset, offset + len(wire)))
                offset += len(wire)
            s.shutdown(socket.SHUT_WR)
            s.recv(16)
        spans.append(mine)
        time.sleep(0.05)
    ctx.data["spans"] = spans
    t.join(5)
    listener.close()


def carried(observed: list[Observed], report: dict) -> list[Check]:
    """Which application messages each client data segment carried."""
    out = []
    for obs, spans, (name, *_rest) in zip(observed, report.get("data", {}).get("spans", []),
                                          FRAMINGS):
        for frame, from_client, rel_seq, length in obs.data:
            if not from_client:
                continue
            lo, hi = rel_seq - 1, rel_seq - 1 + length
            hit = [i for i, (a, b) in enumerate(spans) if a < hi and b > lo]
            parts = [f"{i}" + ("" if spans[i][0] >= lo and spans[i][1] <= hi else " (part)")
                     for i in hit]
            out.append(Check(None, f"{name}: frame {frame} carried {length} bytes: "
                                   f"message{'s' if len(hit) > 1 else ''} {', '.join(parts)}"))
    return out


SCENARIOS = [Scenario(
    "byte-stream", "sticky packets: TCP keeps no message boundaries; fixed-length, "
    "delimiter (MSG_PEEK) and length-prefix framing fix it", __doc__, run,
    Expect(findings=('message-boundaries',),
           no_findings=('close-wait-leak', 'rst-on-close'),
           conns=[[CLIENT_CLOSES]] * len(FRAMINGS),
           zeek=[("SF", "ShAD(aF|Fa)df")] * len(FRAMINGS),  # the ACK and the FIN may cross
           outcomes={"unframed: messages recovered": "no: 1 recv() results for 10 messages",
                     "fixed-length: messages recovered": "all 10",
                     "delimiter: messages recovered": "all 10",
                     "length prefix: messages recovered": "all 10"},
           calls=[Boundaries(1, sends=f"={len(MESSAGES)}", recvs=f"<{len(MESSAGES)}"),
                  Boundaries(2, sends=f"={len(MESSAGES)}", recvs=f">={len(MESSAGES)}"),
                  Calls("recvfrom|recv", "any", args="MSG_PEEK", side="server",
                        times=len(MESSAGES)),
                  Boundaries(3, sends=f"={len(MESSAGES)}", recvs=f">={len(MESSAGES)}"),
                  Boundaries(4, sends=f"={len(MESSAGES)}", recvs=f">={2 * len(MESSAGES)}"),
                  StateCause("client", "FIN_WAIT_1", ("shutdown",))],
           extra=carried))]
