"""Writing to a peer that has closed: RST, then EPIPE, or death by SIGPIPE.

The server closes at once. The client reads EOF (CLOSE_WAIT) but writes anyway: the
first write succeeds locally, the data reaches a socket that no longer exists, and the
peer answers RST. The second write then fails with EPIPE, and the kernel also raises
SIGPIPE, whose default action kills the process. Python ignores SIGPIPE, so here the
second write raises BrokenPipeError (EPIPE); a child process that restores the default
action dies from SIGPIPE instead.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from .call_checks import Calls, StateCause
from .base import Context, Expect, Path, Scenario, in_thread


def server(listener: socket.socket) -> None:
    for _ in range(2):
        conn, _ = listener.accept()
        conn.close()        # closes at once: FIN
    listener.close()


def write_twice(ctx: Context, s: socket.socket, who: str) -> None:
    s.recv(1024)            # b"": EOF, the server has closed
    ctx.attempt(f"{who}: first write", lambda: s.send(b"first"))
    time.sleep(0.1)         # the RST comes back
    ctx.attempt(f"{who}: second write", lambda: s.send(b"second"))


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, listener)
    s = ctx.connect()
    write_twice(ctx, s, "SIGPIPE ignored")
    s.close()
    pid = os.fork()
    if pid == 0:            # child: the C default, SIGPIPE kills
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        s = ctx.connect()
        s.recv(1024)
        s.send(b"first")
        time.sleep(0.1)
        s.send(b"second")   # never returns
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    ctx.outcome("SIGPIPE default: child", f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
                if os.WIFSIGNALED(status) else f"exited {os.WEXITSTATUS(status)}")
    t.join(5)


WRITE_AFTER_CLOSE = Path("write after the peer closed",
                         ("CLOSED", "SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"),
                         ("LISTEN", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                          "CLOSED"))
SCENARIOS = [Scenario(
    "write-after-close", "writing to a peer that closed: RST, then EPIPE (SIGPIPE "
    "ignored) or death by SIGPIPE (default action)", __doc__, run,
    Expect(findings=('write-after-peer-close',),
           no_findings=('rst-on-close', 'close-wait-leak', 'half-close-misuse'),
           conns=[[WRITE_AFTER_CLOSE], [WRITE_AFTER_CLOSE]],
           zeek=[("RSTR", "ShAfDr"), ("RSTR", "ShAfDr")],
           outcomes={"SIGPIPE ignored: first write": "ok",
                     "SIGPIPE ignored: second write": "EPIPE",
                     "SIGPIPE default: child": "killed by SIGPIPE"},
           calls=[StateCause("server", "FIN_WAIT_1", ("close",)),
                  Calls("recvfrom|recv|read", "=0", side="client", times=2),
                  Calls("sendto|send|write", ">0", side="client", times=2),
                  Calls("sendto|send|write", "EPIPE", side="client", times=2, cause="RST"),
                  Calls("SIGPIPE", kind="signal", args="ignored", side="client"),
                  Calls("SIGPIPE", kind="signal", args="dies", side="client"),
                  Calls("exit", kind="exit", args="SIGPIPE")]))]
