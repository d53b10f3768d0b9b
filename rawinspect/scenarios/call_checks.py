"""What the programs' recorded calls must show: a scenario's call expectations.

Each expectation describes itself (``text``, for ``rawinspect scenarios NAME``) and checks
the calls the kernel recorded beside the annotated segments (``check``): a call and its
result, a state change a call caused, message boundaries, children reaped. They judge
what the programs did, not what the programs say they did.

A result is "ok" (no errno), an errno name ("EPIPE"), a comparison of the return value
("=0", ">0", "<10") or "any". A call that waited shows as two rows; only the row with
the result counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.annotation import Annotation
from ..core.call import CALL, ENTERED, EXIT, SIGNAL, Call
from ..core.segment import FIN, RST, SYN
from ..views.calls import RECVS, SENDS, Flow
from .base import Check

_CAUSE = re.compile(r"← (RST|FIN), frame (\d+)")
_COMPARE = re.compile(r"(=|>=|<=|>|<)(-?\d+)")
_FLAG = {"RST": RST, "FIN": FIN}


def udp_calls(calls: list[Call]) -> list[Call]:
    """The successful calls on the programs' UDP sockets (socket(..., SOCK_DGRAM)), from
    the socket() to the close() of each descriptor (numbers are reused), in time order."""
    udp: set[tuple[int, int]] = set()
    out = []
    for c in finished(calls):
        if c.kind != CALL:
            continue
        if c.name == "socket" and c.ret is not None and c.ret >= 0:
            (udp.add if "SOCK_DGRAM" in c.args else udp.discard)((c.tgid, c.ret))
        elif c.fd is not None and (c.tgid, c.fd) in udp:
            if c.name == "close":
                udp.discard((c.tgid, c.fd))
            elif not c.errno:
                out.append(c)
    return out


def sizes_text(sizes: list[int]) -> str:
    """3+7+17."""
    return "+".join(map(str, sizes)) or "none"


def finished(calls: list[Call]) -> list[Call]:
    """The rows that carry a result (not "entered"), in time order."""
    return sorted((c for c in calls if c.phase != ENTERED), key=lambda c: c.at)


def result_holds(want: str, c: Call) -> bool:
    """Whether a call's result is the one wanted (see the module's doc)."""
    if want == "any":
        return True
    if want == "ok":
        return not c.errno
    m = _COMPARE.fullmatch(want)
    if m is None:
        return c.errno == want
    if c.errno or c.ret is None:
        return False
    op, n = m.group(1), int(m.group(2))
    return {"=": c.ret == n, ">=": c.ret >= n, "<=": c.ret <= n, ">": c.ret > n,
            "<": c.ret < n}[op]


def _result_text(want: str) -> str:
    return {"ok": "succeeds", "any": ""}.get(
        want, f"returns {want.lstrip('=')}" if _COMPARE.fullmatch(want) else f"= -1 {want}")


def _end(c: Call) -> float:
    """When a call returned (its entry when not known)."""
    return c.end if c.end is not None else c.ts


def _history(calls: list[Call]) -> dict[int, list[Call]]:
    """For each call (by id), the earlier calls on the same socket: same process and
    descriptor, since the socket() that returned it."""
    open_: dict[tuple[int, int], list[Call]] = {}
    out: dict[int, list[Call]] = {}
    for c in calls:
        if c.kind != CALL:
            continue
        if c.name == "socket" and c.ret is not None and c.ret >= 0:
            open_[(c.tgid, c.ret)] = []
            continue
        if c.fd is None:
            continue
        seen = open_.setdefault((c.tgid, c.fd), [])
        out[id(c)] = list(seen)
        seen.append(c)
    return out


def _has(history: list[Call], spec: str) -> bool:
    name, _, args = spec.partition(" ")
    return any(c.name == name and args in c.args and not c.errno for c in history)


@dataclass(frozen=True)
class Calls:
    """A call (``name``, alternatives as "write|send|sendto") with its result, made at
    least ``times`` times (exactly, with ``exact``; ``times=0, exact=True``: never).

    ``args``: text its arguments contain. ``side``: "client" or "server". ``cause``:
    "RST" or "FIN", the segment its result is linked to (``Call.cause`` names the frame:
    that segment of its connection, sent to it, came before the call returned), for at
    least ``times`` of the calls and wrongly for none; other text: a part of its cause. ``socket_has``/``socket_lacks``: an earlier successful
    call on the same socket ("setsockopt SO_REUSEADDR"). ``kind`` "signal": ``name`` is
    the signal, ``args`` a part of its action; "exit": ``args`` the signal that killed
    the process, or ``result`` the exit status ("=0").
    """
    name: str
    result: str = "ok"
    args: str = ""
    side: str = ""
    times: int = 1
    exact: bool = False
    cause: str = ""
    socket_has: str = ""
    socket_lacks: str = ""
    kind: str = CALL

    def text(self) -> str:
        who = f"{self.side}: " if self.side else ""
        if self.kind == EXIT:
            what = (f"a process killed by {self.args}" if self.args else
                    f"a process exits with status {self.result.lstrip('=')}")
        elif self.kind == SIGNAL:
            what = f"{self.name} delivered" + (f", action: {self.args}" if self.args else "")
        else:
            names = "|".join(f"{n}()" for n in self.name.split("|"))
            args = f" with {self.args}," if self.args else ""
            what = f"{names}{args} {_result_text(self.result)}".rstrip(" ,")
            for word, spec in (("after", self.socket_has), ("without", self.socket_lacks)):
                if spec:
                    what += f", {word} {spec} on that socket"
        if self.cause in _FLAG:
            what += f", linked to the {self.cause} that came before it"
        elif self.cause:
            what += f", cause: {self.cause}"
        many = ("never" if self.exact and self.times == 0 else
                f"exactly {self.times}×" if self.exact else
                "" if self.times == 1 else f"at least {self.times}×")
        return who + what + (f" ({many})" if many else "")

    def _matches(self, c: Call, history: dict[int, list[Call]]) -> bool:
        if c.kind != self.kind or (self.side and c.side != self.side):
            return False
        if self.kind == EXIT:
            return (c.args == self.args if self.args else
                    c.ret is not None and result_holds(self.result, c))
        if c.name not in self.name.split("|") or self.args not in c.args:
            return False
        if self.kind == SIGNAL:
            return True
        earlier = history.get(id(c), [])
        return (result_holds(self.result, c)
                and (not self.socket_has or _has(earlier, self.socket_has))
                and (not self.socket_lacks or not _has(earlier, self.socket_lacks)))

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        rows = finished(calls)
        history = _history(rows) if self.socket_has or self.socket_lacks else {}
        found = [c for c in rows if self._matches(c, history)]
        out = []
        n = len(found)
        ok = n == self.times if self.exact else n >= self.times
        shown = "; ".join(f"{c.text()} pid {c.pid}" for c in found[:3])
        out.append(Check(ok, f"calls: {self.text()}: seen {n}×" + (f": {shown}" if shown
                                                                   else "")))
        if self.cause and found:
            out.append(self._cause_check(found, anns))
        return out

    def _cause_check(self, found: list[Call], anns: list[Annotation]) -> Check:
        """Every matching call linked to its cause; a segment named must have come first."""
        frames = {a.seg.frame: a for a in anns}
        bad, wrong = [], False
        for c in found:
            problem = (_segment_cause(c, self.cause, frames) if self.cause in _FLAG
                       else "" if self.cause in c.cause else f"cause {c.cause or 'none'!r}")
            if problem:
                bad.append(f"{c.text()} pid {c.pid}: {problem}")
                wrong = wrong or bool(c.cause)
        good = len(found) - len(bad)
        ok = good >= (len(found) if self.exact else max(self.times, 1)) and not wrong
        return Check(ok, f"calls: {self.name.split('|')[0]}() linked to {self.cause}: "
                         f"{good} of {len(found)}" + (f"; {'; '.join(bad[:3])}" if bad else ""))


def _segment_cause(c: Call, flag: str, frames: dict[int, Annotation]) -> str:
    """Why a call's cause does not name a segment ``flag`` sent to it before it returned
    ("" when it does)."""
    m = _CAUSE.search(c.cause)
    if m is None or m.group(1) != flag:
        return f"cause {c.cause or 'none'!r}, not the {flag}"
    a = frames.get(int(m.group(2)))
    if a is None:
        return f"frame {m.group(2)} not captured"
    end = _end(c)
    if a.conn != c.conn or not a.seg.flags & _FLAG[flag]:
        return f"frame {a.seg.frame} is not a {flag} of conn {c.conn}"
    if a.from_client != (c.side == "server"):
        return f"frame {a.seg.frame} was sent by the {c.side}, not to it"
    if a.seg.ts > end:
        return f"frame {a.seg.frame} came {a.seg.ts - end:.6f} s after the call returned"
    return ""


_STATE_CAUSE = re.compile(r"^(\S+) ← (\w+)\(fd (-?\d+)\), pid (\d+), (client|server)$")


@dataclass(frozen=True)
class StateCause:
    """Every state change of ``side`` into ``state`` ("FIN_WAIT_1|CLOSING": one of them)
    by a SYN, FIN or RST it sent is linked to one of ``calls`` (``Annotation.cause``),
    a call that process entered before the segment left. At least one must be seen."""
    side: str
    state: str
    calls: tuple[str, ...] = ("close", "shutdown")

    def text(self) -> str:
        states = self.state.split("|")
        named = " or ".join(filter(None, (", ".join(states[:-1]), states[-1])))
        return f"{self.side} {named} ← {' or '.join(f'{c}()' for c in self.calls)}"

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        made: dict[tuple[int, int | None, str], list[Call]] = {}
        for c in calls:
            if c.kind == CALL and c.phase != ENTERED:
                made.setdefault((c.pid, c.fd, c.name), []).append(c)
        states = self.state.split("|")
        seen, bad = 0, []
        for a in anns:
            flags = a.seg.flags
            if (a.from_client != (self.side == "client") or not flags & (SYN | FIN | RST)
                    or (flags & SYN and a.event != "SYN")):
                continue
            path = a.client_path if self.side == "client" else a.server_path
            if not path or path[-1] not in states:
                continue
            seen += 1
            problem = self._problem(a, path[-1], made)
            if problem:
                bad.append(f"frame {a.seg.frame}: {problem}")
        return [Check(seen > 0 and not bad, f"calls: {self.text()}: {seen - len(bad)} of "
                                            f"{seen} changes linked"
                      + (f"; {'; '.join(bad[:3])}" if bad else ""))]

    def _problem(self, a: Annotation, state: str,
                 made: dict[tuple[int, int | None, str], list[Call]]) -> str:
        m = _STATE_CAUSE.match(a.cause or "")
        if m is None or m.group(1) != state or m.group(5) != self.side:
            return f"cause {a.cause or 'none'!r}"
        if m.group(2) not in self.calls:
            return f"caused by {m.group(2)}(), not {' or '.join(self.calls)}"
        named = made.get((int(m.group(4)), int(m.group(3)), m.group(2)), [])
        if not named:
            return f"{a.cause!r} names no recorded call"
        if all(c.ts > a.seg.ts for c in named):
            return f"{m.group(2)}() was entered after the segment"
        return ""


@dataclass(frozen=True)
class Boundaries:
    """Message boundaries on connection ``conn`` (1: the first seen), client → server:
    the sender's successful send calls and the receiver's recv calls (MSG_PEEK left out)
    against ``sends`` and ``recvs`` (comparisons like "=10", "<10"); every byte sent is
    received, and the segments carry exactly those bytes."""
    conn: int
    sends: str
    recvs: str

    def text(self) -> str:
        return (f"conn {self.conn} client → server: send calls {self.sends}, recv calls "
                f"{self.recvs}, the same bytes in all three")

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        numbers = sorted({a.conn for a in anns})
        if len(numbers) < self.conn:
            return [Check(False, f"calls: {self.text()}: no connection {self.conn}")]
        number = numbers[self.conn - 1]
        rows = finished(calls)
        flow = Flow()
        for c in rows:
            if (c.conn != number or c.ret is None or c.ret <= 0 or c.errno
                    or "MSG_PEEK" in c.args):
                continue
            if c.side == "client" and c.name in SENDS:
                flow.sends.add(c.ret)
            elif c.side == "server" and c.name in RECVS:
                flow.recvs.add(c.ret)
        for a in anns:
            if (a.conn == number and a.from_client and a.seg.payload
                    and "retransmission" not in a.analysis):
                flow.segments.add(a.seg.payload)
        probe = Call(ts=0.0, pid=0, name="", ret=flow.sends.count)
        ok = result_holds(self.sends, probe)
        probe.ret = flow.recvs.count
        ok = ok and result_holds(self.recvs, probe)
        same = flow.sends.total == flow.segments.total == flow.recvs.total
        return [Check(ok and same, f"calls: conn {number} client → server: {flow.text()} "
                                   f"(expected send calls {self.sends}, recv calls "
                                   f"{self.recvs}" + (")" if same else
                                                       "; the byte counts differ)"))]


@dataclass(frozen=True)
class Reaped:
    """Every process that exited, but the scenario's first (rawinspect reaps it), is
    reaped by a later wait4() returning its pid; at least ``in_handler`` of them by a
    wait4(WNOHANG) in a process that was delivered SIGCHLD, caught by its handler,
    after the exit."""
    in_handler: int

    def text(self) -> str:
        return (f"every child's exit followed by a wait4() returning its pid; "
                f"{self.in_handler} of them in the SIGCHLD handler (WNOHANG)")

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        rows = finished(calls)
        root = next((c.tgid for c in rows if c.kind == CALL), None)
        exits = [c for c in rows if c.kind == EXIT and c.pid != root]
        waits = [c for c in rows if c.name == "wait4" and c.kind == CALL]
        caught = [c for c in rows if c.kind == SIGNAL and c.name == "SIGCHLD"
                  and "handler" in c.args]
        unreaped, by_handler = [], 0
        for e in exits:
            w = next((w for w in waits if w.ret == e.pid and _end(w) >= e.ts), None)
            if w is None:
                unreaped.append(str(e.pid))
            elif "WNOHANG" in w.args and any(s.tgid == w.tgid and e.ts <= s.ts <= _end(w)
                                             for s in caught):
                by_handler += 1
        return [
            Check(bool(exits) and not unreaped,
                  f"calls: {len(exits) - len(unreaped)} of {len(exits)} child exits "
                  "followed by a wait4() returning the child's pid"
                  + (f"; never reaped: pid {', '.join(unreaped)}" if unreaped else "")),
            Check(by_handler >= self.in_handler,
                  f"calls: {by_handler} children reaped by wait4(WNOHANG) after SIGCHLD "
                  f"reached the handler (expected {self.in_handler})")]


@dataclass(frozen=True)
class Silence:
    """``side`` reads EOF (a recv call returns 0) and calls close() on that socket only
    ``seconds`` later; meanwhile no segment but pure ACKs passes on the connection."""
    side: str
    seconds: float

    def text(self) -> str:
        return (f"{self.side}: read() = 0 (EOF), then no close() for {self.seconds:g} s "
                "and no data, FIN or RST meanwhile")

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        rows = finished(calls)
        eof = next((c for c in rows if c.side == self.side and c.name in RECVS
                    and c.ret == 0 and not c.errno), None)
        if eof is None:
            return [Check(False, f"calls: {self.text()}: no read() = 0 on the {self.side}")]
        start = _end(eof)
        close = next((c for c in rows if c.name == "close" and c.tgid == eof.tgid
                      and c.fd == eof.fd and c.ts >= start), None)
        stop = close.ts if close is not None else float("inf")
        passed = [a.seg.frame for a in anns if a.conn == eof.conn and start < a.seg.ts < stop
                  and (a.seg.payload or a.seg.flags & (SYN | FIN | RST))]
        gap = stop - start
        return [Check(gap >= self.seconds and not passed,
                      f"calls: the {self.side} read EOF, then "
                      + (f"close() came {gap:.3f} s later" if close else "never closed")
                      + (f"; segments meanwhile: frames {passed}" if passed else
                         ", no data, FIN or RST meanwhile"))]


@dataclass(frozen=True)
class UdpCalls:
    """UDP message boundaries in the calls: on the programs' UDP sockets, one successful
    send call per message of ``sizes`` bytes, and one receive call returning each whole
    (the datagrams on the wire are checked by ``Expect.datagrams``)."""
    sizes: list[int]

    def text(self) -> str:
        n = len(self.sizes)
        return (f"UDP: {n} sendto() of {sizes_text(self.sizes)} bytes, and {n} recvfrom() "
                "returning the same, one message each")

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        rows = [c for c in udp_calls(calls) if c.ret]
        sent = [c.ret or 0 for c in rows if c.name in SENDS]
        got = [c.ret or 0 for c in rows if c.name in RECVS]
        ok = sent == self.sizes and got == self.sizes
        return [Check(ok, f"calls: UDP: {len(sent)} send calls of {sizes_text(sent)} bytes, "
                          f"{len(got)} receive calls of {sizes_text(got)} bytes"
                          + ("" if ok else f" (expected {self.text()})"))]
