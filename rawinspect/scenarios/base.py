"""What a scenario is: its lesson, its code, and what must be seen when it runs.

A scenario module defines ``SCENARIOS``, a list of ``Scenario(...)`` (a lesson and its
variants, such as the same over IPv6): ``run(ctx)`` holds the client and server code
(plain ``socket`` calls); ``expect`` lists, per TCP connection in the order they start,
the state sequence each endpoint must pass through, and the outcome of the socket calls
the lesson is about (``ctx.outcome("connect", "ECONNREFUSED")``), and the calls the
kernel must record them making (``Calls("connect", "ECONNREFUSED", cause="RST")``).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..core.annotation import Annotation
from ..core.call import Call
from ..views.steps import Step

Socket = socket.socket   # the Context's method socket() hides the module in its body


def states(text: str) -> tuple[str, ...]:
    """ "CLOSED SYN_SENT ESTABLISHED" → a tuple of state names; "FIN_WAIT_2?" is optional."""
    return tuple(text.split())


def expansions(seq: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Every sequence an expectation with optional ("X?") states admits. One that ends in
    TIME_WAIT may end in CLOSED after it: a later connection can take over the 4-tuple
    (on loopback Linux reuses a TIME_WAIT 4-tuple for connect() after 1 s:
    ``tcp_tw_reuse`` = 2, the default), as seen under load in CI."""
    out: set[tuple[str, ...]] = {()}
    for s in seq:
        name = s.rstrip("?")
        out = {o + (name,) for o in out} | (out if s.endswith("?") else set())
    return out | {o + ("CLOSED",) for o in out if o and o[-1] == "TIME_WAIT"}


@dataclass(frozen=True)
class Path:
    """One acceptable pair of state sequences for a connection, with a name for reports."""
    label: str
    client: tuple[str, ...]
    server: tuple[str, ...]


# The sequences the lessons keep coming back to.
# FIN_WAIT_2 is skipped when the peer's FIN carries the ACK of ours (3-segment close).
CLIENT_ACTIVE = states("CLOSED SYN_SENT ESTABLISHED FIN_WAIT_1 FIN_WAIT_2? TIME_WAIT")
SERVER_PASSIVE = states("LISTEN SYN_RCVD ESTABLISHED CLOSE_WAIT LAST_ACK CLOSED")
CLIENT_PASSIVE = states("CLOSED SYN_SENT ESTABLISHED CLOSE_WAIT LAST_ACK CLOSED")
SERVER_ACTIVE = states("LISTEN SYN_RCVD ESTABLISHED FIN_WAIT_1 FIN_WAIT_2? TIME_WAIT")
CLIENT_CLOSES = Path("client closes first", CLIENT_ACTIVE, SERVER_PASSIVE)
SERVER_CLOSES = Path("server closes first", CLIENT_PASSIVE, SERVER_ACTIVE)
# Zeek's history of a handshake, a request and its reply. The server's ACK of the request
# and its reply race on loopback: either may leave first ("ad" or "da").
REQUEST_REPLY = "ShAD(ad|da)"


@dataclass(frozen=True)
class Check:
    """One line of a scenario's verdict; ``ok`` None for a line of information."""
    ok: bool | None
    text: str


class CallExpectation(Protocol):
    """One expectation on the programs' recorded calls (``call_checks`` holds them)."""

    def text(self) -> str:
        """The expectation in words."""
        ...

    def check(self, calls: list[Call], anns: list[Annotation]) -> list[Check]:
        """The verdict's lines for it."""
        ...


@dataclass(frozen=True)
class Observed:
    """One connection as the tracker saw it."""
    conn: int
    client: tuple[str, ...]
    server: tuple[str, ...]
    frames: tuple[int, ...]
    client_steps: tuple[Step, ...]  # where each of the client's states began
    server_steps: tuple[Step, ...]
    analysis: tuple[str, ...]  # every analysis flag raised, with repeats
    data: tuple[tuple[int, bool, int, int], ...]  # (frame, from client, rel seq, length)


@dataclass
class Expect:
    """What a run must show.

    ``conns``: for each connection in order, the acceptable Paths (the first is the
    lesson's); or ``each``: any number of connections, every one matching one of these.
    ``zeek``: Zeek's (conn_state, history as a regular expression) for each connection in
    order, or with ``each`` the alternatives every connection must match one of.
    ``required``: a Path label that must occur at least once (racy lessons).
    ``outcomes``: socket-call outcomes the programs must report. ``calls``: what the
    programs' recorded calls must show (``call_checks``), beside the segments.
    ``extra``: further checks computed from the connections and the programs' report.
    ``findings``: the findings' rules (``views/findings``) the run must produce;
    ``no_findings``: the ones it must not. ``datagrams``: the sizes of the UDP datagrams
    the run must show on the wire, in order.
    """
    conns: list[list[Path]] = field(default_factory=list)
    each: list[Path] | None = None  # instead of conns: any number, each matching one
    outcomes: dict[str, str] = field(default_factory=dict)
    zeek: list[tuple[str, str]] = field(default_factory=list)
    required: str | None = None
    calls: list[CallExpectation] = field(default_factory=list)
    extra: Callable[[list[Observed], dict[str, Any]], list[Check]] | None = None
    findings: tuple[str, ...] = ()
    no_findings: tuple[str, ...] = ()
    datagrams: list[int] = field(default_factory=list)


@dataclass
class Scenario:
    """A bundled lesson."""
    name: str
    summary: str
    lesson: str
    run: Callable[["Context"], None]
    expect: Expect
    host: str = "127.0.0.1"
    ports: int = 1
    timeout: float = 30.0
    udp: bool = False   # its capture filter lets UDP on its ports in, beside TCP


class Context:
    """What the scenario code gets: where to listen, and where to report outcomes."""

    def __init__(self, host: str, ports: list[int]) -> None:
        self.host = host
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.ports = ports
        self.port = ports[0]
        self.outcomes: dict[str, str] = {}
        self.info: list[str] = []
        self.data: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def outcome(self, key: str, value: str) -> None:
        """Record what a socket call did: "ok", an errno name, "SIGPIPE"..."""
        with self._lock:
            self.outcomes[key] = value

    def say(self, text: str) -> None:
        """A line for the report: what the programs saw."""
        with self._lock:
            self.info.append(text)

    def attempt(self, key: str, call: Callable[[], Any]) -> Any:
        """Run ``call``; record "ok" or the errno name it failed with; return its result."""
        try:
            result = call()
        except OSError as e:
            self.outcome(key, errno.errorcode.get(e.errno or 0, str(e)))
            return None
        self.outcome(key, "ok")
        return result

    def socket(self) -> Socket:
        """A TCP socket of the scenario's address family."""
        return socket.socket(self.family, socket.SOCK_STREAM)

    def listener(self, backlog: int = 8, reuse: bool = True, port: int | None = None
                 ) -> Socket:
        """socket(), optional SO_REUSEADDR, bind(), listen()."""
        s = self.socket()
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port if port is None else port))
        s.listen(backlog)
        return s

    def connect(self, port: int | None = None) -> Socket:
        """A connected client socket."""
        s = self.socket()
        s.connect((self.host, self.port if port is None else port))
        return s

    def result(self) -> dict[str, Any]:
        return {"outcomes": self.outcomes, "info": self.info, "data": self.data}


def in_thread(fn: Callable[..., None], *args: Any) -> threading.Thread:
    """Start ``fn(*args)`` in a daemon thread."""
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def recv_all(s: socket.socket) -> bytes:
    """Read until EOF."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def spin_until(deadline_ns: int) -> None:
    """Busy-wait until CLOCK_MONOTONIC reaches ``deadline_ns``: microsecond precision."""
    now = time.monotonic_ns
    while now() < deadline_ns:
        pass


def unpin(cpus: set[int]) -> None:
    """Back to normal scheduling on ``cpus`` (undo pin_and_prioritise)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass
    os.sched_setaffinity(0, cpus)


def pin_and_prioritise(cpu: int) -> str:
    """Run on one CPU, at real-time priority where allowed; say what was granted."""
    granted = []
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})
        granted.append(f"cpu {cpus[cpu % len(cpus)]}")
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        granted.append("SCHED_FIFO")
    except (OSError, AttributeError):
        pass
    return ", ".join(granted) or "no pinning"
