"""The sockets left behind: what the kernel still holds on the captured ports, and why (pure).

The ``netstat -na | grep PORT`` exercise of socket courses, done for the user: the records
of ``sources.sockets`` grouped by state, each state with its lesson in one line, each
socket with its timer, queues and owner. Numbers are Linux's: TIME_WAIT lasts 60 s
(TCP_TIMEWAIT_LEN, include/net/tcp.h); an orphan's FIN_WAIT_2 lasts net.ipv4.tcp_fin_timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

TIME_WAIT_LEN = 60  # seconds, TCP_TIMEWAIT_LEN: fixed, no sysctl changes it

# Grouping order: the way a connection goes, opening, open, closing.
ORDER = ("SYN_SENT", "SYN_RCVD", "LISTEN", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
         "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "CLOSED")
LESSONS = {
    "SYN_SENT": "connect() waits for the SYN+ACK; the SYN is resent (tcp_syn_retries), then "
                "it gives up",
    "SYN_RCVD": "half-open: SYN+ACK sent, the client's ACK not here yet (lost, or a SYN flood)",
    "LISTEN": "the server socket is still open; Recv-Q is its accept queue, Send-Q the backlog",
    "ESTABLISHED": "never closed: no FIN either way; it lasts until close() or its process exits",
    "FIN_WAIT_1": "our FIN is not acknowledged yet (Send-Q counts it 1): the peer is slow or gone",
    "FIN_WAIT_2": "our FIN is acked, the peer's FIN not here; after close() this lasts "
                  "tcp_fin_timeout{fin}, after shutdown() until close()",
    "CLOSING": "the FINs crossed (simultaneous close): waiting for the ACK of ours, then "
               "TIME_WAIT",
    "TIME_WAIT": f"the side that closed first keeps it {TIME_WAIT_LEN} s (TCP_TIMEWAIT_LEN) to "
                 "resend its last ACK and let stray segments die: normal; SO_REUSEADDR lets "
                 "bind() reuse the port",
    "CLOSE_WAIT": "the peer closed and this program never called close(): a leak no timer ends",
    "LAST_ACK": "closed after the peer's FIN; waiting for the ACK of ours, resent until it comes",
    "CLOSED": "being freed by the kernel",
}
# States in which the peer's FIN has arrived: until read, it counts 1 in Recv-Q.
FIN_RECEIVED = ("CLOSE_WAIT", "LAST_ACK", "CLOSING")


class SocketOwner(Protocol):
    """A process holding a socket (``sources.sockets.Owner``)."""
    @property
    def pid(self) -> int: ...
    @property
    def name(self) -> str: ...


class Socket(Protocol):
    """What this view reads of a socket (``sources.sockets.SocketRecord``)."""
    @property
    def state(self) -> str: ...
    @property
    def local(self) -> str: ...
    @property
    def remote(self) -> str: ...
    @property
    def remote_port(self) -> int: ...
    @property
    def timer(self) -> str: ...
    @property
    def expires(self) -> float: ...
    @property
    def retrans(self) -> int: ...
    @property
    def recv_q(self) -> int: ...
    @property
    def send_q(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def inode(self) -> int: ...
    @property
    def owners(self) -> Sequence[SocketOwner]: ...


def lesson(state: str, fin_timeout: int | None = None) -> str:
    """The one-line lesson of a state ("" for a state without one)."""
    fin = f" ({fin_timeout} s here)" if fin_timeout is not None else ""
    return LESSONS.get(state, "").format(fin=fin)


def _timer(s: Socket) -> str:
    if not s.timer:
        return ""
    if s.timer == "time-wait":
        name = "tcp_fin_timeout" if s.state == "FIN_WAIT_2" else "timer"
    else:
        name = f"{s.timer} timer"
    count = ""
    if s.retrans:
        count = (f", {s.retrans} sent again" if s.timer == "retransmission"
                 else f", {s.retrans} probes unanswered")
    return f"{name} {s.expires:.1f} s left{count}"


def _owner(s: Socket) -> str:
    if s.owners:
        return ", ".join(f"pid {o.pid} {o.name}" for o in s.owners)
    if not s.inode:
        return "no process: the kernel keeps it"
    return f"owner not visible (uid {s.uid}; another user's /proc/PID/fd needs root)"


def _queues(s: Socket) -> list[str]:
    """Recv-Q and Send-Q when they say something, in words."""
    if s.state == "LISTEN":
        return [f"accept queue {s.recv_q} of {s.send_q}"]
    out = []
    fin = s.state in FIN_RECEIVED and s.recv_q > 0
    unread = s.recv_q - fin
    if unread:
        out.append(f"Recv-Q {s.recv_q}: {unread} bytes unread{' and the FIN' if fin else ''}, "
                   "close() sends RST")
    elif fin:
        out.append("Recv-Q 1: the FIN, not yet read")
    if s.send_q:
        out.append(f"Send-Q {s.send_q}: not yet acknowledged")
    return out


def socket_line(s: Socket) -> str:
    """One socket: its ends, timer, queues and owner, as short as they allow."""
    ends = s.local if s.state == "LISTEN" and not s.remote_port else f"{s.local} → {s.remote}"
    parts = [ends, _timer(s), *_queues(s), _owner(s)]
    return "  ".join(p for p in parts if p)


def _rank(state: str) -> int:
    return ORDER.index(state) if state in ORDER else len(ORDER)


def left_behind_lines(sockets: Sequence[Socket], fin_timeout: int | None = None) -> list[str]:
    """The block to print at the end of a capture, or [] when nothing is left.

    Grouped by state: a line with the state, its count and its lesson, then one indented
    line per socket. ``fin_timeout`` is net.ipv4.tcp_fin_timeout, when known.
    """
    if not sockets:
        return []
    lines = ["sockets left on the captured ports (the kernel's view, as `ss -tanoep`):"]
    for state in sorted({s.state for s in sockets}, key=lambda st: (_rank(st), st)):
        group = sorted((s for s in sockets if s.state == state), key=lambda s: (s.local, s.remote))
        text = lesson(state, fin_timeout)
        lines.append(f"  {state} ({len(group)})" + (f": {text}" if text else ""))
        lines.extend(f"    {socket_line(s)}" for s in group)
    return lines


def as_dict(s: Socket, fin_timeout: int | None = None) -> dict[str, Any]:
    """One socket as JSON: the kernel's fields, its owners, and the lesson of its state."""
    return {"state": s.state, "local": s.local, "remote": s.remote, "timer": s.timer or None,
            "expires": round(s.expires, 3) if s.timer else None, "retrans": s.retrans,
            "recv_q": s.recv_q, "send_q": s.send_q, "uid": s.uid, "inode": s.inode,
            "owners": [{"pid": o.pid, "name": o.name} for o in s.owners],
            "lesson": lesson(s.state, fin_timeout), "fin_timeout": fin_timeout}


class _Owner(NamedTuple):
    pid: int
    name: str


class _Saved:
    """A socket read back from its ``as_dict`` (saved with a capture)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.state: str = d["state"]
        self.local: str = d["local"]
        self.remote: str = d["remote"]
        port = self.remote.rsplit(":", 1)[-1]
        self.remote_port = int(port) if port.isdigit() else 0
        self.timer: str = d.get("timer") or ""
        self.expires: float = d.get("expires") or 0.0
        self.retrans: int = d.get("retrans", 0)
        self.recv_q: int = d.get("recv_q", 0)
        self.send_q: int = d.get("send_q", 0)
        self.uid: int = d.get("uid", 0)
        self.inode: int = d.get("inode", 0)
        self.owners = [_Owner(o["pid"], o["name"]) for o in d.get("owners", [])]


def saved_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """``left_behind_lines`` of sockets saved as ``as_dict`` records (capture and replay
    print the same)."""
    timeout = next((r.get("fin_timeout") for r in records), None)
    return left_behind_lines([_Saved(r) for r in records], timeout)
