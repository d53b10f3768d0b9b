"""The Call record: one socket system call of a traced program, a signal, or an exit.

Calls come from the kernel's syscall tracepoints (``sources/call_trace``) or from a saved
capture; ``views/calls`` joins them to connections and links causes. Everything here is
plain data on the packets' clock, like a Segment.
"""

from __future__ import annotations

from typing import Any

CALL, SIGNAL, EXIT = "call", "signal", "exit"
ENTERED, RETURNED = "entered", "returned"
WAIT_SHOWN = 0.001  # a call that waits this long shows as two rows: entered, returned
_FIELDS = ("kind", "phase", "ts", "end", "pid", "tgid", "ppid", "comm", "name", "fd", "args",
           "ret", "errno", "local", "peer", "conn", "side", "cause")


class Call:
    """One call: when it entered and returned, who made it, on which socket, and its result.

    A call that waited (an ``accept()`` until a client came, a ``read()`` until the
    peer's FIN) is shown twice, like strace's unfinished and resumed lines: ``phase``
    "entered" at ``ts`` and "returned" at ``end``; "" for a call shown once.
    ``kind`` is "call", "signal" (``name`` is the signal, ``args`` its action) or "exit"
    (``ret`` the exit status, or ``args`` the signal that killed the process; ``ppid``
    its parent when the parent is traced too, None for the process the capture started).
    ``local``/``peer`` are the socket's addresses ("127.0.0.1:5000") once known; ``sk``
    is the kernel's socket identity while tracing (not saved). ``conn``, ``side`` and
    ``cause`` are filled in by the calls view: the connection, "client" or "server", and
    the segment that explains a failed or surprising result ("← RST, frame 6").
    """

    __slots__ = _FIELDS + ("sk",)

    def __init__(self, *, kind: str = CALL, phase: str = "", ts: float,
                 end: float | None = None, pid: int, tgid: int = 0, ppid: int | None = None,
                 comm: str = "", name: str, fd: int | None = None, args: str = "",
                 ret: int | None = None, errno: str = "", local: str = "", peer: str = "",
                 conn: int | None = None, side: str = "", cause: str = "",
                 sk: int = 0) -> None:
        self.kind = kind
        self.phase = phase
        self.ts = ts
        self.end = end
        self.pid = pid
        self.tgid = tgid or pid
        self.ppid = ppid
        self.comm = comm
        self.name = name
        self.fd = fd
        self.args = args
        self.ret = ret
        self.errno = errno
        self.local = local
        self.peer = peer
        self.conn = conn
        self.side = side
        self.cause = cause
        self.sk = sk

    @property
    def failed(self) -> bool:
        """A call that returned -1 with an errno."""
        return bool(self.errno)

    @property
    def at(self) -> float:
        """Where the row sits on the timeline: the return for a returned row, else entry."""
        return self.end if self.phase == RETURNED and self.end is not None else self.ts

    def split(self, force: bool = False) -> list[Call]:
        """This finished call as its rows: one, or entered and returned if it waited (or
        if ``force``d: a segment came in while it ran)."""
        if self.phase or (self.waited < WAIT_SHOWN and not force):
            return [self]
        entered = Call.from_dict(self.as_dict())
        entered.phase, entered.sk = ENTERED, self.sk
        entered.ret, entered.errno = None, ""   # not known while it waits
        self.phase = RETURNED
        return [entered, self]

    @property
    def waited(self) -> float:
        """Seconds between entering and returning (0 when not known)."""
        return self.end - self.ts if self.end is not None else 0.0

    def text(self) -> str:
        """strace's way: ``write(fd 4, 5 bytes) = -1 EPIPE``, ``SIGPIPE (default: dies)``."""
        if self.kind == SIGNAL:
            return f"{self.name} ({self.args})" if self.args else self.name
        if self.kind == EXIT:
            return f"exited with {self.ret}" if self.ret is not None else f"killed by {self.args}"
        inner = ", ".join(p for p in (f"fd {self.fd}" if self.fd is not None else "",
                                      self.args) if p)
        if self.phase == ENTERED:
            return f"{self.name}({inner}) ... waits"
        result = "?" if self.ret is None else (f"-1 {self.errno}" if self.errno
                                               else str(self.ret))
        text = f"{self.name}({inner}) = {result}"
        if self.name in ("accept", "accept4") and self.peer and not self.errno:
            text += f" from {self.peer}"
        if self.phase == RETURNED:
            waited = self.waited
            took = f"{waited * 1e6:.0f} µs" if waited < 0.001 else f"{waited:.3f} s"
            text = f"... {text} after {took}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The record as jsonl and the saved capture keep it (empty fields left out)."""
        d: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and value != "":
                d[name] = value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Call:
        """Read back ``as_dict``; unknown keys are ignored, missing ones take defaults."""
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})

    def __repr__(self) -> str:
        return f"Call({self.ts:.6f} pid {self.pid} {self.text()})"
