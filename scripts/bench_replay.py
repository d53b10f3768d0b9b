#!/usr/bin/env python3
"""Replay benchmark: rawinspect against tshark on the same synthetic capture, same run.

Generates a deterministic capture (seeded; IPv4 and IPv6; thousands of interleaved
connections; every kind of close; retransmissions and out-of-order segments), then times
``rawinspect replay --format jsonl FILE > /dev/null`` and
``tshark -r FILE -T fields -e frame.number -e tcp.flags -e tcp.analysis.flags > /dev/null``
and prints packets per second for both, the ratio, and rawinspect's peak memory. Also
times a 10-packet file (start-up cost). Not part of the test suite.

It measures the rawinspect that this Python has installed (``python -P``: not the sources
beside it) and says which build that is: compiled by setup.py, or pure Python.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

S, A, F, R, P = 0x02, 0x10, 0x01, 0x04, 0x08
CLOSES = ("client_first", "three_way", "server_first", "simultaneous", "rst_abort",
          "refused", "half_close")


def conversation(rng: random.Random, kind: str, exchanges: int) -> list[tuple[bool, int, int, int, int]]:
    """Packets of one connection as (from_client, flags, seq, ack, length)."""
    c, s = rng.getrandbits(32), rng.getrandbits(32)
    out: list[tuple[bool, int, int, int, int]] = [(True, S, c, 0, 0)]
    if kind == "refused":
        return out + [(False, R | A, 0, c + 1, 0)]
    c += 1
    out += [(False, S | A, s, c, 0), (True, A, c, s + 1, 0)]
    s += 1
    for _ in range(exchanges):
        req, resp = rng.randint(20, 400), rng.randint(100, 1400)
        out.append((True, P | A, c, s, req))
        c += req
        out.append((False, P | A, s, c, resp))
        s += resp
        out.append((True, A, c, s, 0))
        if rng.random() < 0.02:               # a retransmission of the response
            out.append((False, P | A, s - resp, c, resp))
        if rng.random() < 0.02 and len(out) > 6:  # two segments swapped: out of order
            out[-2], out[-3] = out[-3], out[-2]
    if kind == "client_first":
        out += [(True, F | A, c, s, 0), (False, A, s, c + 1, 0), (False, F | A, s, c + 1, 0),
                (True, A, c + 1, s + 1, 0)]
    elif kind == "three_way":
        out += [(True, F | A, c, s, 0), (False, F | A, s, c + 1, 0), (True, A, c + 1, s + 1, 0)]
    elif kind == "server_first":
        out += [(False, F | A, s, c, 0), (True, A, c, s + 1, 0), (True, F | A, c, s + 1, 0),
                (False, A, s + 1, c + 1, 0)]
    elif kind == "simultaneous":
        out += [(True, F | A, c, s, 0), (False, F | A, s, c, 0), (True, A, c + 1, s + 1, 0),
                (False, A, s + 1, c + 1, 0)]
    elif kind == "rst_abort":
        out += [(True, R | A, c, s, 0)]
    elif kind == "half_close":
        out += [(True, F | A, c, s, 0), (False, A, s, c + 1, 0), (False, P | A, s, c + 1, 500),
                (True, A, c + 1, s + 500, 0), (False, F | A, s + 500, c + 1, 0),
                (True, A, c + 1, s + 501, 0)]
    return out


def frame(v6: bool, caddr: bytes, saddr: bytes, cport: int, sport: int,
          pkt: tuple[bool, int, int, int, int]) -> bytes:
    from_client, flags, seq, ack, length = pkt
    src, dst, sp, dp = (caddr, saddr, cport, sport) if from_client else (saddr, caddr, sport, cport)
    opts = b"\x02\x04\x05\xb4\x01\x03\x03\x07" if flags & S else b""
    th = struct.pack("!HHIIHHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                     ((20 + len(opts)) // 4) << 12 | flags, 512, 0, 0) + opts + b"\0" * length
    if v6:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(th), 6, 64, src, dst)
        return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip + th
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(th), 0, 0x4000, 64, 6, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + th


def packets(n: int, seed: int, concurrent: int) -> Iterator[bytes]:
    """n packets from interleaved connections, deterministic for a seed."""
    rng = random.Random(seed)
    active: list[list] = []
    made = conn_no = 0
    while made < n:
        while len(active) < concurrent:
            conn_no += 1
            v6 = conn_no % 3 == 0
            if v6:
                caddr = socket.inet_pton(socket.AF_INET6, f"fd00::{conn_no % 250 + 1:x}")
                saddr = socket.inet_pton(socket.AF_INET6, "fd00::1:1")
            else:
                caddr = bytes((10, 1, conn_no % 250, 1 + conn_no % 200))
                saddr = bytes((10, 2, 0, 1))
            kind = CLOSES[conn_no % len(CLOSES)]
            pkts = conversation(rng, kind, rng.randint(5, 60))
            active.append([v6, caddr, saddr, 1024 + conn_no % 60000, 80 + conn_no % 7, pkts, 0])
        i = rng.randrange(len(active))
        conn = active[i]
        yield frame(conn[0], conn[1], conn[2], conn[3], conn[4], conn[5][conn[6]])
        made += 1
        conn[6] += 1
        if conn[6] == len(conn[5]):
            active[i] = active[-1]
            active.pop()


def write_pcap(path: Path, n: int, seed: int, concurrent: int) -> None:
    t = 1_700_000_000.0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        batch = []
        for i, data in enumerate(packets(n, seed, concurrent)):
            t += 0.00001
            sec = int(t)
            batch.append(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(data), len(data)) + data)
            if len(batch) >= 10000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))


# The rawinspect this Python has installed. -P: run from the checkout, `python -m rawinspect`
# would import the sources here (pure Python) instead of the installed, compiled package.
RAWINSPECT = [sys.executable, "-P", "-m", "rawinspect"]


def say_which_rawinspect() -> None:
    """Print the version and build being measured; stop if rawinspect is not installed."""
    version = subprocess.run(RAWINSPECT + ["--version"], capture_output=True, text=True)
    if version.returncode:
        raise SystemExit("rawinspect is not installed for this Python: run scripts/setup.sh "
                         "and use .venv/bin/python")
    print(f"measuring {version.stdout.strip()}", flush=True)


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command whose output goes to /dev/null."""
    t0 = time.perf_counter()
    pid = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed with status {status}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrent", type=int, default=2000, help="connections open at once")
    ap.add_argument("--keep", metavar="FILE", help="write the capture here and keep it")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rawinspect-bench-"))
    path = Path(args.keep) if args.keep else tmp / "bench.pcap"
    t0 = time.perf_counter()
    write_pcap(path, args.packets, args.seed, args.concurrent)
    print(f"capture: {path} ({args.packets} packets, {path.stat().st_size / 1e6:.0f} MB, "
          f"written in {time.perf_counter() - t0:.1f} s)")
    small = tmp / "small.pcap"
    write_pcap(small, 10, args.seed, 2)

    say_which_rawinspect()
    ours = RAWINSPECT + ["replay", "--format", "jsonl", "-q"]
    secs, rss = timed(ours + [str(path)])
    pps = args.packets / secs
    print(f"rawinspect: {secs:.2f} s, {pps:,.0f} packets/s, peak RSS {rss / 1024:.0f} MB")
    small_secs = min(timed(ours + [str(small)])[0] for _ in range(3))
    print(f"rawinspect on a 10-packet file: {small_secs:.3f} s")
    tshark = shutil.which("tshark")
    if tshark:
        tsecs, trss = timed([tshark, "-r", str(path), "-T", "fields", "-e", "frame.number",
                             "-e", "tcp.flags", "-e", "tcp.analysis.flags"])
        tpps = args.packets / tsecs
        print(f"tshark:     {tsecs:.2f} s, {tpps:,.0f} packets/s, peak RSS {trss / 1024:.0f} MB")
        print(f"ratio rawinspect/tshark: {pps / tpps:.2f}x packets per second")
    else:
        print("tshark not installed: no ratio (apt-get install tshark)")
    if not args.keep:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
