"""From ftrace lines to Calls: the programs' socket calls, signals and exits.

The trace (``sources/call_trace``) records, for the traced process tree, the syscall
tracepoints (``sys_enter_*``/``sys_exit_*``: fd, arguments, result), forks, signals and
exits, and for every TCP socket its state changes (``sock:inet_sock_set_state``: which
kernel socket, its ports and addresses, and the task it happened in), printed with the
``fields`` option (every field as ``name=0xHEX (DEC)``). ``CallAssembler`` pairs each call's entry with its
return, keeps each process's table of socket descriptors (copied on fork), and names a
call's socket by the kernel socket seen inside it, so that a call joins its connection
by addresses and ports. Reads, writes and closes of descriptors that are not TCP/UDP
sockets are left out.
"""

from __future__ import annotations

import errno
import re
import signal
import socket
import struct
from collections import deque
from typing import NamedTuple

from ..core.call import ENTERED, EXIT, RETURNED, SIGNAL, Call

_HEAD = re.compile(r"^\s*(.*?)-(\d+)\s+\(\s*(\d+|-+)\)\s+\[\d+\]\s+(\S+)\s+(\d+\.\d+): "
                   r"(\w+): (.*)$")
_FIELD = re.compile(r"(\w+)=(\S*)(?: \((-?\d+)\))?")
# A task's name as its events give it, spaces and all: the field up to the next field
_NAMES = {"task_rename": re.compile(r"newcomm=(.*) oom_score_adj="),
          "sched_process_fork": re.compile(r"child_comm=(.*) child_pid=")}
LISTEN, ESTABLISHED, SYN_RECV = 10, 1, 3
INET = (socket.AF_INET, socket.AF_INET6)
PURE_V6 = "127.0.0.6"   # what a pure IPv6 socket shows in the IPv4 address fields
SOCKET_ONLY = frozenset({"bind", "listen", "connect", "accept", "accept4", "shutdown",
                         "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg",
                         "recvmsg"})
ON_ANY_FD = frozenset({"read", "write", "readv", "writev", "close"})
SHUT = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}
MSG = ((0x1, "MSG_OOB"), (0x2, "MSG_PEEK"), (0x40, "MSG_DONTWAIT"), (0x100, "MSG_WAITALL"),
       (0x4000, "MSG_NOSIGNAL"))
LEVELS = {1: "SOL_SOCKET", 6: "IPPROTO_TCP", 0: "IPPROTO_IP", 41: "IPPROTO_IPV6"}
OPTIONS = {(1, 2): "SO_REUSEADDR", (1, 15): "SO_REUSEPORT", (1, 13): "SO_LINGER",
           (1, 9): "SO_KEEPALIVE", (1, 8): "SO_RCVBUF", (1, 7): "SO_SNDBUF",
           (1, 4): "SO_ERROR", (6, 1): "TCP_NODELAY", (41, 26): "IPV6_V6ONLY"}
KERNEL_ERRNOS = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                 516: "ERESTART_RESTARTBLOCK"}
IGNORED = 1          # signal_generate's result: the target ignores the signal
HARMLESS = {"SIGCHLD", "SIGURG", "SIGWINCH", "SIGCONT"}  # ignored by default


class TraceEvent(NamedTuple):
    """One trace line: time (trace clock), thread, process, context, event and fields."""
    ts: float
    tid: int
    tgid: int
    comm: str
    softirq: bool
    name: str
    fields: dict[str, int | str]


def parse_event(line: str) -> TraceEvent | None:
    """One ``fields``-option trace line → a TraceEvent (None for other lines)."""
    m = _HEAD.match(line)
    if m is None:
        return None
    comm, tid, tgid, flags, ts, name, rest = m.groups()
    fields: dict[str, int | str] = {}
    for key, raw, dec in _FIELD.findall(rest):
        if dec:
            fields[key] = int(dec)
        elif raw.startswith("0x"):
            fields[key] = int(raw, 16)
        else:
            fields[key] = raw.strip("()")
    named = _NAMES.get(name)
    found = named.search(rest) if named is not None else None
    if found is not None:
        fields["name"] = found.group(1)
    return TraceEvent(float(ts), int(tid), int(tgid) if tgid.isdigit() else int(tid), comm,
                      "s" in flags, name, fields)


def _num(fields: dict[str, int | str], key: str) -> int:
    value = fields.get(key, 0)
    return value if isinstance(value, int) else int(value) if value.lstrip("-").isdigit() else 0


def _address(family: int, raw: int, port: int) -> str:
    """An endpoint from the tracepoint's IPv4 field ("[?]" for a pure IPv6 socket)."""
    addr = socket.inet_ntoa(struct.pack("<I", raw & 0xFFFFFFFF))
    if family == socket.AF_INET6 and addr in (PURE_V6, "0.0.0.0"):
        return f"[?]:{port}"
    return f"{addr}:{port}"


def _flags(value: int) -> str:
    return "|".join(name for bit, name in MSG if value & bit)


def _errno_name(code: int) -> str:
    return errno.errorcode.get(code) or KERNEL_ERRNOS.get(code, f"errno {code}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Sock:
    """A socket descriptor as the traced process sees it; ``sk`` once the kernel names it,
    and its addresses as they were then (the kernel reuses a freed socket's memory, so
    ``sk`` alone may name a later socket)."""
    __slots__ = ("family", "sk", "local", "peer")

    def __init__(self, family: int, sk: int = 0) -> None:
        self.family = family
        self.sk = sk
        self.local = ""
        self.peer = ""

    def learn(self, addrs: tuple[str, str] | None) -> None:
        """Keep the addresses the kernel gave the socket (if any yet)."""
        if addrs is not None:
            if addrs[0]:
                self.local = addrs[0]
            if addrs[1]:
                self.peer = addrs[1]


class _Open:
    """A call entered and not yet returned; ``shown`` once its entered row is out."""
    __slots__ = ("name", "ev", "fields", "sk", "family", "shown")

    def __init__(self, name: str, ev: TraceEvent) -> None:
        self.name = name
        self.ev = ev
        self.fields = ev.fields
        self.sk = 0
        self.family = 0
        self.shown = False


class CallAssembler:
    """Trace events in, Calls out: ``feed`` each event, ``take`` the calls now complete.

    ``offset`` turns the trace clock into the packets' clock (subtracted).
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self._open: dict[int, _Open] = {}
        self._fds: dict[int, dict[int, _Sock]] = {}
        self._addrs: dict[int, tuple[str, str]] = {}      # sk → (local, peer)
        self._accepted: dict[int, deque[int]] = {}        # listening port → established sks
        self._exit_code: dict[int, int] = {}
        self._fatal: dict[int, str] = {}
        self._sent: dict[int, str] = {}                   # pid → signal sent, not delivered
        self._parent: dict[int, int] = {}                 # pid → its traced parent's
        self._names: dict[int, str] = {}                  # task → its name (comm)
        self._done: deque[tuple[Call, _Sock | None]] = deque()

    def _clock(self, trace_ts: float) -> float:
        """A trace time on the packets' clock, to the microsecond as the trace gives it."""
        return round(trace_ts - self.offset, 6)

    def name(self, tid: int, comm: str) -> None:
        """A task's name (from /proc for ``capture --pid``, or a fork or rename event)."""
        if comm:
            self._names[tid] = comm

    def _comm(self, ev: TraceEvent) -> str:
        """The task's name when the event happened. The trace prints the name it has
        cached for the pid when the line is read: just after a fork or an ``exec`` that
        is the parent's name, the shell's, or ``<...>``; forks and renames tell the truth."""
        return self._names.get(ev.tid, ev.comm)

    def known_socket(self, tgid: int, fd: int, family: int, local: str, peer: str) -> None:
        """A socket the process had before tracing began (``capture --pid``)."""
        sock = self._fds.setdefault(tgid, {})[fd] = _Sock(family)
        sock.local, sock.peer = local, peer

    def feed(self, ev: TraceEvent) -> None:
        """Take in one event."""
        name = ev.name
        if name.startswith("sys_enter_"):
            self._enter(ev, name[10:])
        elif name.startswith("sys_exit_"):
            self._exit(ev, name[9:])
        elif name == "inet_sock_set_state":
            self._state(ev)
        elif name == "sched_process_fork":
            child = _num(ev.fields, "child_pid")
            self._fds[child] = dict(self._fds.get(ev.tgid, {}))
            self._parent[child] = ev.tgid
            self.name(child, str(ev.fields.get("name", "")))
        elif name == "task_rename":
            self.name(_num(ev.fields, "pid"), str(ev.fields.get("name", "")))
        elif name == "signal_generate":
            self._generated(ev)
        elif name == "signal_deliver":
            self._signal(ev)
        elif name == "sched_process_exit":
            self._process_exit(ev)

    def _enter(self, ev: TraceEvent, call: str) -> None:
        self._fds.setdefault(ev.tgid, {})
        if call == "exit_group":
            self._exit_code[ev.tgid] = _num(ev.fields, "error_code") & 0xFF
            return
        self._open[ev.tid] = _Open(call, ev)

    def _in_call(self, ev: TraceEvent, sk: int, family: int) -> None:
        """A socket event in a call's own context names the call's socket."""
        op = self._open.get(ev.tid)
        if op is not None and not ev.softirq and not op.sk:
            op.sk, op.family = sk, family

    def _state(self, ev: TraceEvent) -> None:
        f = ev.fields
        sk, family = _num(f, "skaddr"), _num(f, "family")
        old, new, sport, dport = (_num(f, "oldstate"), _num(f, "newstate"), _num(f, "sport"),
                                  _num(f, "dport"))
        if sport and (dport or new == LISTEN):
            self._addrs[sk] = (_address(family, _num(f, "saddr"), sport),
                               _address(family, _num(f, "daddr"), dport) if dport else "")
        if old == SYN_RECV and new == ESTABLISHED:
            self._accepted.setdefault(sport, deque(maxlen=4096)).append(sk)
        self._in_call(ev, sk, family)

    def _generated(self, ev: TraceEvent) -> None:
        """A signal sent: kept until delivered (a fatal one is delivered as SIGKILL);
        one the target ignores is shown now."""
        name, target = _signal_name(_num(ev.fields, "sig")), _num(ev.fields, "pid")
        if target not in self._fds:
            return  # sent to a process outside the traced tree (the capture itself)
        if _num(ev.fields, "result") == IGNORED:
            self._emit(Call(kind=SIGNAL, ts=self._clock(ev.ts), pid=target,
                            comm=str(ev.fields.get("comm", "")), name=name,
                            args="ignored by the process"), None)
        elif name != "SIGKILL":
            self._sent[target] = name

    def _signal(self, ev: TraceEvent) -> None:
        name = _signal_name(_num(ev.fields, "sig"))
        sent = self._sent.pop(ev.tid, "")
        if name == "SIGKILL" and sent:
            name = sent  # a fatal signal without a handler ends the process as SIGKILL
        handler = _num(ev.fields, "sa_handler")
        if handler == 0 and name not in HARMLESS:
            self._fatal[ev.tgid] = name
        action = ("default action: ignored" if handler == 0 and name in HARMLESS else
                  "default action: the process dies" if handler == 0 else
                  "ignored" if handler == 1 else "caught by a handler")
        self._emit(Call(kind=SIGNAL, ts=self._clock(ev.ts), pid=ev.tid, tgid=ev.tgid,
                        comm=self._comm(ev), name=name, args=action), None)

    def _process_exit(self, ev: TraceEvent) -> None:
        pid = _num(ev.fields, "pid")
        comm = self._comm(ev)
        self._names.pop(pid, None)
        if pid != ev.tgid:  # a thread ended, not the process: forget what its fork left
            self._fds.pop(pid, None)
            self._parent.pop(pid, None)
            return
        code = self._exit_code.pop(pid, None)
        killer = self._fatal.pop(pid, "") if code is None else ""
        self._fds.pop(pid, None)
        self._emit(Call(kind=EXIT, ts=self._clock(ev.ts), pid=pid,
                        ppid=self._parent.pop(pid, None), comm=comm,
                        name="exit", ret=code, args=killer or ("" if code is not None
                                                               else "an unknown cause")),
                   None)

    def _emit(self, call: Call, sock: _Sock | None) -> None:
        self._done.append((call, sock))

    def _exit(self, ev: TraceEvent, name: str) -> None:
        op = self._open.pop(ev.tid, None)
        if op is None or op.name != name:
            return
        ret = _num(ev.fields, "ret")
        if name == "wait4":
            self._wait4(ev, op, ret)
            return
        sock, fd = self._socket(ev.tgid, op, ret)
        if sock is None:
            return
        call = Call(phase=RETURNED if op.shown else "", ts=self._clock(op.ev.ts),
                    end=self._clock(ev.ts), pid=ev.tid, tgid=ev.tgid, comm=self._comm(ev),
                    name=name, fd=fd, args=_args(name, op.fields),
                    ret=ret if ret >= 0 else -1, errno=_errno_name(-ret) if ret < 0 else "")
        if name in ("accept", "accept4") and ret >= 0:
            child = self._fds[ev.tgid][ret]
            child.learn(self._addrs.get(child.sk))
            call.sk = child.sk
            call.local, call.peer = child.local, child.peer
        else:
            sock.learn(self._addrs.get(sock.sk))
            call.local, call.peer = sock.local, sock.peer
        if name == "close" and ret == 0 and fd is not None:
            self._fds.get(ev.tgid, {}).pop(fd, None)
        self._emit(call, sock)

    def _socket(self, tgid: int, op: _Open, ret: int) -> tuple[_Sock | None, int | None]:
        """The socket a call worked on (None: not a TCP/UDP socket) and its descriptor."""
        fds = self._fds.setdefault(tgid, {})
        if op.name == "socket":
            family = _num(op.fields, "family")
            if family not in INET:
                return None, None
            sock = _Sock(family)
            if ret >= 0:
                fds[ret] = sock
            return sock, None
        fd = _num(op.fields, "fd")
        found = fds.get(fd)
        if found is None and op.sk and op.family in INET:
            found = fds[fd] = _Sock(op.family)
        if found is None or found.family not in INET:
            return None, fd
        sock = found
        if op.sk:
            sock.sk = op.sk
        if op.name in ("accept", "accept4") and ret >= 0:
            fds[ret] = _Sock(sock.family, self._accepted_sk(sock))
        return sock, fd

    def _accepted_sk(self, listener: _Sock) -> int:
        """The oldest connection established on the listener's port: the one accepted."""
        local = self._addrs.get(listener.sk, ("", ""))[0]
        port = int(local.rsplit(":", 1)[1]) if local else 0
        queue = self._accepted.get(port)
        return queue.popleft() if queue else 0

    def _wait4(self, ev: TraceEvent, op: _Open, ret: int) -> None:
        if ret == 0:
            return  # WNOHANG with nothing to reap: not worth a row
        upid = _num(op.fields, "upid")
        upid = upid - (1 << 32) if upid >= 1 << 31 else upid
        args = f"pid {upid}" + (", WNOHANG" if _num(op.fields, "options") & 1 else "")
        self._emit(Call(ts=self._clock(op.ev.ts), end=self._clock(ev.ts), pid=ev.tid,
                        tgid=ev.tgid, comm=self._comm(ev), name="wait4", args=args,
                        ret=ret if ret >= 0 else -1,
                        errno=_errno_name(-ret) if ret < 0 else ""), None)

    def _resolve(self, call: Call, sock: _Sock | None) -> Call:
        """Fill in the socket's addresses, if the call came before the kernel named them
        (socket(), bind() before listen()); the call's own socket's, never its sk's now."""
        if sock is not None and call.name not in ("accept", "accept4"):
            call.sk = call.sk or sock.sk
            call.local = call.local or sock.local
            call.peer = call.peer or sock.peer
        peer, local = call.peer, call.local
        if call.name == "connect" and peer:
            call.args = ", ".join(p for p in (peer, call.args) if p)
        elif call.name in ("bind", "listen") and local:
            call.args = ", ".join(p for p in (local, call.args) if p)
        return call

    def _announce(self, horizon: float) -> list[Call]:
        """Calls still waiting since before the horizon, shown once as entered."""
        out = []
        for op in self._open.values():
            ev = op.ev
            if op.shown or ev.ts - self.offset > horizon or op.name == "wait4":
                continue
            sock = self._fds.get(ev.tgid, {}).get(_num(op.fields, "fd"))
            if sock is None or sock.family not in INET:
                continue
            op.shown = True
            call = Call(phase=ENTERED, ts=self._clock(ev.ts), pid=ev.tid, tgid=ev.tgid,
                        comm=self._comm(op.ev), name=op.name, fd=_num(op.fields, "fd"),
                        args=_args(op.name, op.fields))
            out.append(self._resolve(call, sock))
        return out

    def take(self, upto: float | None) -> list[Call]:
        """The rows complete by ``upto`` (packets' clock; None: everything, at the end):
        calls finished by then with their sockets' addresses filled in, and calls still
        waiting since before it as entered rows. In timeline order."""
        out: list[Call] = []
        done = self._done
        while done and (upto is None or (done[0][0].end or done[0][0].ts) <= upto):
            call, sock = done.popleft()
            out.extend(self._resolve(call, sock).split())
        if upto is not None:
            out.extend(self._announce(upto))
        out.sort(key=lambda c: c.at)
        return out


def _args(name: str, f: dict[str, int | str]) -> str:
    """A call's arguments as text (the socket's addresses are added when known)."""
    if name == "socket":
        family = {2: "AF_INET", 10: "AF_INET6"}.get(_num(f, "family"), str(_num(f, "family")))
        kind = {1: "SOCK_STREAM", 2: "SOCK_DGRAM"}.get(_num(f, "type") & 0xF, "?")
        return f"{family}, {kind}"
    if name == "listen":
        return f"backlog {_num(f, 'backlog')}"
    if name == "shutdown":
        return SHUT.get(_num(f, "how"), str(_num(f, "how")))
    if name in ("setsockopt", "getsockopt"):
        level, opt = _num(f, "level"), _num(f, "optname")
        return f"{LEVELS.get(level, level)}, {OPTIONS.get((level, opt), opt)}"
    if name in ("read", "write", "sendto", "recvfrom"):
        size = _num(f, "count") or _num(f, "len") or _num(f, "size")
        return ", ".join(p for p in (f"{size} bytes", _flags(_num(f, "flags"))) if p)
    if name in ("sendmsg", "recvmsg"):
        return _flags(_num(f, "flags"))
    return ""
