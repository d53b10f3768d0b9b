"""A forking server whose children exit together, reaped in a SIGCHLD handler.

The server forks a child per connection. When children exit at the same moment, the
kernel may deliver one SIGCHLD for several of them (signals do not queue), so the
handler must loop: waitpid(-1, WNOHANG) until it returns 0 or ECHILD. A handler that
reaps one child per signal leaves zombies. At the end the server counts its zombie
children in /proc: none.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path as FsPath

from .call_checks import Calls, Reaped, StateCause
from .base import CLIENT_CLOSES, REQUEST_REPLY, Context, Expect, Scenario, recv_all

CHILDREN = 4


def zombies_of(pid: int) -> int:
    """Children of ``pid`` in state Z (zombie), from /proc."""
    count = 0
    for stat in FsPath("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            count += 1
    return count


def server(listener: socket.socket, report_w: int) -> None:
    """The forking server, in a process of its own; reports its counts on a pipe."""
    reaped: list[int] = []

    def on_sigchld(_signum: int, _frame: object) -> None:
        while True:                     # one signal may stand for several children
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:   # ECHILD: no children left
                return
            if pid == 0:                # children left, none finished
                return
            reaped.append(pid)

    signal.signal(signal.SIGCHLD, on_sigchld)
    release_r, release_w = os.pipe()    # children wait on it, then exit together
    for _ in range(CHILDREN):
        conn, _ = listener.accept()
        if os.fork() == 0:              # the child serves one client
            listener.close()
            os.close(release_w)
            conn.sendall(b"reply to " + conn.recv(1024))
            recv_all(conn)
            conn.close()
            os.read(release_r, 1)       # blocks until the parent closes the pipe
            os._exit(0)
        conn.close()                    # the parent's copy; the child holds the socket
    time.sleep(0.3)                     # let the clients finish
    os.close(release_w)                 # all children exit now, together
    for _ in range(500):                # wait up to 5 s for the handler to reap them
        if len(reaped) == CHILDREN:
            break
        time.sleep(0.01)
    os.write(report_w, f"{len(reaped)} {zombies_of(os.getpid())}".encode())


def run(ctx: Context) -> None:
    listener = ctx.listener()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        server(listener, report_w)
        os._exit(0)
    os.close(report_w)
    listener.close()
    clients = [threading.Thread(target=client, args=(ctx,), daemon=True)
               for _ in range(CHILDREN)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(5)
    reaped, zombies = os.read(report_r, 64).decode().split()
    os.waitpid(pid, 0)
    ctx.outcome("children reaped by the SIGCHLD handler", reaped)
    ctx.outcome("zombie children left", zombies)


def client(ctx: Context) -> None:
    with ctx.connect() as s:
        s.sendall(b"request")
        s.recv(1024)


SCENARIOS = [Scenario(
    "forking-server", "a forking server reaps its children in a SIGCHLD handler with a "
    "waitpid(WNOHANG) loop: no zombies", __doc__, run,
    Expect(no_findings=('zombies', 'close-wait-leak'),
           conns=[[CLIENT_CLOSES]] * CHILDREN, zeek=[("SF", REQUEST_REPLY + "Ff")] * CHILDREN,
           outcomes={"children reaped by the SIGCHLD handler": str(CHILDREN),
                     "zombie children left": "0"},
           calls=[StateCause("client", "FIN_WAIT_1", ("close",)),
                  StateCause("server", "LAST_ACK", ("close",)),
                  Calls("SIGCHLD", kind="signal", args="handler", side="server"),
                  Reaped(in_handler=CHILDREN)]))]
