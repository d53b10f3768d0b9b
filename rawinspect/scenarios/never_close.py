"""A peer that does not call close(): FIN_WAIT_2 on one side, CLOSE_WAIT on the other.

The client closes; the server reads EOF but forgets to close its socket. The server's
socket sits in CLOSE_WAIT (its kernel says so: TCP_INFO), the client's in FIN_WAIT_2,
and no segment passes: the wire is silent for as long as the server keeps the socket
open. In a real server that leaks a descriptor per connection until accept() fails with
EMFILE, and only the program's exit ends it: the kernel closes every descriptor the
process left open, which sends the FIN the program never asked for. A lesson must end,
so here the server calls close() after a second, standing in for that exit; only then
does its FIN go out: CLOSE_WAIT → LAST_ACK on the server, FIN_WAIT_2 → TIME_WAIT on the
client. The second of silence before that FIN is the bug.
"""

from __future__ import annotations

import socket
import struct
import time

from .call_checks import Calls, Silence, StateCause
from .base import CLIENT_CLOSES, Context, Expect, Scenario, in_thread, recv_all

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING"}
HANG = 1.0


def kernel_state(s: socket.socket) -> str:
    """The socket's state as the kernel reports it (the first byte of TCP_INFO)."""
    return TCP_STATES.get(struct.unpack_from("B", s.getsockopt(socket.IPPROTO_TCP,
                                                                socket.TCP_INFO, 104))[0], "?")


def server(ctx: Context, listener: socket.socket) -> None:
    conn, _ = listener.accept()
    recv_all(conn)                      # EOF... and no close(): the bug
    ctx.outcome("server socket after EOF, never closed", kernel_state(conn))
    time.sleep(HANG)
    conn.close()                        # late, as the kernel would at the process's exit
    ctx.say(f"the server held its socket in CLOSE_WAIT for {HANG:g} s, then closed it "
            "(as the kernel does when the process exits)")
    listener.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    s = ctx.connect()
    s.sendall(b"bye")
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.2)
    ctx.outcome("client socket while the server never closes", kernel_state(s))
    s.close()
    t.join(5)


SCENARIOS = [Scenario(
    "never-close", "a peer that does not call close(): FIN_WAIT_2 and CLOSE_WAIT hang "
    "until it closes at last (here after 1 s, as if at its exit)", __doc__, run,
    # The server's ACK of the request and the client's FIN race each other on the wire.
    Expect(findings=('close-wait-leak', 'fin-wait-2-hang'),
           no_findings=('rst-on-close', 'write-after-peer-close'),
           conns=[[CLIENT_CLOSES]], zeek=[("SF", "ShAD(aF|Fa)f")],
           outcomes={"server socket after EOF, never closed": "CLOSE_WAIT",
                     "client socket while the server never closes": "FIN_WAIT2"},
           calls=[Calls("shutdown", args="SHUT_WR", side="client"),
                  StateCause("client", "FIN_WAIT_1", ("shutdown",)),
                  Silence("server", HANG * 0.9),
                  StateCause("server", "LAST_ACK", ("close",))]))]
