"""The kernel's TCP sockets now, as ``ss -tanoep`` shows them, read through netlink sock_diag.

One SOCK_DIAG_BY_FAMILY dump per address family (``inet_diag_req_v2`` in, one
``inet_diag_msg`` per socket out): state, addresses, the pending timer and its time left,
Recv-Q, Send-Q, uid and inode. Listing needs no privilege. The owning processes come from
/proc/*/fd (``socket:[inode]``); another user's descriptors need root, so their owner stays
unknown. A socket with inode 0 has no file any more (TIME_WAIT, an orphan after close()):
only the kernel holds it.

There is no fallback to ``ss`` or /proc/net/tcp: sock_diag is in every Linux since 3.3
(``ss`` is built on it), and where it is missing the capture itself cannot run either.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_HDR = struct.Struct("=IHHII")            # nlmsghdr: len, type, flags, seq, pid
DIAG_REQ = struct.Struct("=BBBxI48s")          # inet_diag_req_v2 with an empty sockid
SOCKID = struct.Struct(">HH16s16sI8s")         # inet_diag_sockid: ports big-endian
DIAG_MSG = struct.Struct("=BBBB48sIIIII")      # inet_diag_msg without its attributes
ALL_STATES = 0xFFFFFFFF
RECV_BUFFER = 1 << 16
MAX_READS = 100_000                            # a dump of millions of sockets still ends
READ_TIMEOUT = 5.0                             # seconds to wait for the kernel's next part
MAX_FDS = 500_000                              # descriptors looked at in /proc, at most
# include/net/tcp_states.h; TCP_NEW_SYN_RECV is a request socket: SYN_RCVD to the user.
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RCVD", 4: "FIN_WAIT_1", 5: "FIN_WAIT_2",
          6: "TIME_WAIT", 7: "CLOSED", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "SYN_RCVD"}
# idiag_timer (net/ipv4/inet_diag.c): 1 the retransmission timer (also loss probe and
# reordering), 2 sk_timer (keepalive, and an orphan's FIN_WAIT_2 timeout beyond 60 s),
# 3 a time-wait mini-socket's timer (TIME_WAIT, or FIN_WAIT_2 after close()), 4 the
# zero-window probe. ``ss`` calls them on, keepalive, timewait, persist.
TIMERS = {0: "", 1: "retransmission", 2: "keepalive", 3: "time-wait", 4: "zero-window probe"}


class SocketsUnavailable(Exception):
    """No sock_diag here (a kernel without it, a sandbox): a one-line reason."""


class Owner(NamedTuple):
    """A process holding the socket's file: its pid and its name (/proc/PID/comm)."""
    pid: int
    name: str


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """One TCP socket as the kernel sees it; times in seconds, queues in bytes."""
    state: str
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    timer: str          # "" when none is pending (see TIMERS)
    expires: float      # seconds until the timer fires
    retrans: int        # retransmissions, or keepalive / zero-window probes, sent so far
    recv_q: int         # unread bytes; for LISTEN the accept queue's length
    send_q: int         # bytes not yet acknowledged; for LISTEN the backlog
    uid: int
    inode: int          # 0: no file holds it any more, only the kernel
    owners: tuple[Owner, ...] = ()

    @property
    def local(self) -> str:
        """``addr:port``, ``[addr]:port`` for IPv6, as ``ss`` writes it."""
        return _endpoint(self.local_addr, self.local_port)

    @property
    def remote(self) -> str:
        """The peer as ``addr:port``; ``*`` for the port of a listener."""
        return _endpoint(self.remote_addr, self.remote_port)


def _endpoint(addr: str, port: int) -> str:
    host = f"[{addr}]" if ":" in addr else addr
    return f"{host}:{port if port else '*'}"


def request(family: int) -> bytes:
    """The netlink message asking for every TCP socket of ``family``, all states."""
    body = DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, ALL_STATES, bytes(SOCKID.size))
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), SOCK_DIAG_BY_FAMILY,
                          NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def parse_diag_msg(payload: bytes) -> SocketRecord:
    """One ``inet_diag_msg`` (attributes after it are ignored) → a SocketRecord."""
    if len(payload) < DIAG_MSG.size:
        raise SocketsUnavailable(f"sock_diag: a message of {len(payload)} bytes, "
                                 f"expected at least {DIAG_MSG.size}")
    family, state, timer, retrans, sockid, expires, rq, wq, uid, inode = \
        DIAG_MSG.unpack_from(payload)
    sport, dport, src, dst, _, _ = SOCKID.unpack(sockid)
    size = 16 if family == socket.AF_INET6 else 4
    return SocketRecord(
        STATES.get(state, f"state {state}"),
        socket.inet_ntop(family, src[:size]), sport,
        socket.inet_ntop(family, dst[:size]), dport,
        TIMERS.get(timer, f"timer {timer}"), expires / 1000 if timer else 0.0,
        retrans, rq, wq, uid, inode)


def parse_messages(data: bytes) -> tuple[list[SocketRecord], bool]:
    """The sockets in one netlink read, and whether the dump is done (NLMSG_DONE).

    The kernel's refusal (NLMSG_ERROR) is raised as OSError with its errno.
    """
    out: list[SocketRecord] = []
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, kind, _, _, _ = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > len(data):
            raise SocketsUnavailable(f"sock_diag: a truncated netlink message at byte {offset}")
        payload = data[offset + NLMSG_HDR.size:offset + length]
        if kind == NLMSG_DONE:
            return out, True
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
            if code:
                raise OSError(code, os.strerror(code))
        elif kind == SOCK_DIAG_BY_FAMILY:
            out.append(parse_diag_msg(payload))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return out, False


def dump(family: int) -> list[SocketRecord]:
    """Every TCP socket of one address family in this network namespace."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(READ_TIMEOUT)
            nl.send(request(family))
            out: list[SocketRecord] = []
            for _ in range(MAX_READS):
                records, done = parse_messages(nl.recv(RECV_BUFFER))
                out.extend(records)
                if done:
                    return out
    except OSError as e:
        if e.errno == errno.ENOENT:  # no inet_diag handler for this family (IPv6 off)
            return []
        raise SocketsUnavailable(f"sock_diag: {e.strerror or e}") from None
    raise SocketsUnavailable(f"sock_diag: no end after {MAX_READS} reads")


def _fd_links(proc: Path) -> Iterator[tuple[int, str]]:
    """(pid, link target) of every descriptor we may read; vanished processes skipped."""
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with os.scandir(os.path.join(entry.path, "fd")) as fds:
                links = [os.readlink(fd.path) for fd in fds]
        except OSError:  # gone meanwhile, or another user's (needs root)
            continue
        for link in links:
            yield int(entry.name), link


def owners_by_inode(inodes: Collection[int], proc: Path = Path("/proc"),
                    max_fds: int = MAX_FDS) -> dict[int, tuple[Owner, ...]]:
    """The processes whose descriptors hold these socket inodes (``socket:[N]``)."""
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    found: dict[int, list[int]] = {}
    if not wanted:
        return {}
    for n, (pid, link) in enumerate(_fd_links(proc)):
        if n >= max_fds:
            break
        inode = wanted.get(link)
        if inode is not None and pid not in found.setdefault(inode, []):
            found[inode].append(pid)
    return {inode: tuple(Owner(pid, _comm(proc, pid)) for pid in pids)
            for inode, pids in found.items()}


def _comm(proc: Path, pid: int) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def fin_timeout(path: Path = Path("/proc/sys/net/ipv4/tcp_fin_timeout")) -> int | None:
    """net.ipv4.tcp_fin_timeout in seconds: how long an orphan waits in FIN_WAIT_2."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def tcp_sockets(ports: Collection[int]) -> list[SocketRecord]:
    """The TCP sockets (IPv4 and IPv6) with either end on one of ``ports``, with owners.

    Raises SocketsUnavailable when the kernel cannot be asked.
    """
    wanted = set(ports)
    found = [r for family in (socket.AF_INET, socket.AF_INET6) for r in dump(family)
             if r.local_port in wanted or r.remote_port in wanted]
    owners = owners_by_inode({r.inode for r in found})
    return [replace(r, owners=owners.get(r.inode, ())) for r in found]
