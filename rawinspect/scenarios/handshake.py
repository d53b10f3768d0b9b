"""Three-way handshake, one request and its response, then the client closes first.

connect() sends SYN (client SYN_SENT); the listener answers SYN+ACK (server SYN_RCVD);
the client's ACK completes the handshake and accept() returns. After the response the
client calls close() first: it is the active closer, goes FIN_WAIT_1 → FIN_WAIT_2 and
ends in TIME_WAIT, where it stays for 2MSL (60 s on Linux). The server reads EOF
(CLOSE_WAIT), closes too (LAST_ACK) and is CLOSED when the last ACK arrives.
"""

from __future__ import annotations

from .call_checks import Calls, StateCause
from .base import CLIENT_CLOSES, REQUEST_REPLY, Context, Expect, Scenario, in_thread, recv_all

def server(ctx: Context, listener) -> None:
    conn, _ = listener.accept()
    request = conn.recv(1024)
    conn.sendall(b"response to " + request)
    recv_all(conn)          # EOF: the client has closed
    conn.close()
    listener.close()


def client(ctx: Context) -> None:
    s = ctx.connect()
    s.sendall(b"request")
    ctx.say(f"client got {s.recv(1024)!r}")
    s.close()               # client closes first: it will hold TIME_WAIT


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    client(ctx)
    t.join(5)


EXPECT = Expect(no_findings=('close-wait-leak', 'rst-on-close', 'write-after-peer-close',
                             'time-wait-on-server'),
                conns=[[CLIENT_CLOSES]], zeek=[("SF", REQUEST_REPLY + "Ff")],
                calls=[StateCause("client", "SYN_SENT", ("connect",)),
                       Calls("accept|accept4", ">=0", side="server"),
                       StateCause("client", "FIN_WAIT_1", ("close",)),
                       Calls("recvfrom|recv|read", "=0", side="server", cause="FIN"),
                       StateCause("server", "LAST_ACK", ("close",))])
SCENARIOS = [
    Scenario("handshake", "3-way handshake, request/response, client closes first "
             "and holds TIME_WAIT", __doc__, run, EXPECT),
    Scenario("handshake6", "the same over IPv6 (::1)", __doc__, run, EXPECT, host="::1"),
]
