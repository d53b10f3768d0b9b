"""A socket connected to itself: connect() to a local port where nothing listens.

A client that connects to a port of this host in the ephemeral range
(net.ipv4.ip_local_port_range) where nothing listens can be given that very port as
its own source port. Its SYN then comes back to itself: the socket in SYN_SENT
receives a SYN, as in a simultaneous open, answers SYN+ACK and moves to SYN_RCVD; the
SYN+ACK comes back too and completes the open. connect() succeeds, and whatever the
program sends it reads back. One socket is both ends: client and server are one
endpoint, CLOSED → SYN_SENT → SYN_RCVD → ESTABLISHED, and its FIN comes back before
its ACK, FIN_WAIT_1 → CLOSING → TIME_WAIT.

Here it is set up on purpose: the client binds a free port P and connects to P. By
chance it happens to a program that retries connect() to a local service that is
down, until the kernel picks the service's port for the client. Avoid it: bind the
client to a port outside the ephemeral range (or give the service a port outside
it), or check after connect() that getsockname() != getpeername().
"""

from __future__ import annotations

from .base import Context, Expect, Path, Scenario, states
from .call_checks import Calls


def run(ctx: Context) -> None:
    s = ctx.socket()
    s.bind(ctx.addr)                    # port P, where nothing listens
    ctx.attempt("connect to its own port", lambda: s.connect(ctx.addr))
    itself = s.getsockname() == s.getpeername()
    ctx.outcome("getsockname() == getpeername()", "yes" if itself else "no")
    s.sendall(b"hello, me")
    ctx.say(f"sent 'hello, me' to {ctx.host}:{ctx.port}, read back {s.recv(1024)!r}")
    s.close()                           # its own FIN comes back: CLOSING, then TIME_WAIT


ITSELF = states("CLOSED SYN_SENT SYN_RCVD ESTABLISHED FIN_WAIT_1 CLOSING TIME_WAIT")
SCENARIOS = [Scenario(
    "self-connect", "connect() to its own port: one socket is both ends, a simultaneous "
    "open and close with itself", __doc__, run,
    Expect(findings=('self-connect',),
           no_findings=('connection-refused', 'listen-overflow'),
           conns=[[Path("connected to itself", ITSELF, ITSELF)]],
           outcomes={"connect to its own port": "ok",
                     "getsockname() == getpeername()": "yes"},
           calls=[Calls("bind"), Calls("connect"), Calls("sendto|send|write", ">0"),
                  Calls("recvfrom|recv|read", ">0"), Calls("close")]))]
