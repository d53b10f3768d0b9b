"""Connecting to a port nobody listens on.

The SYN reaches a port with no listener; the kernel answers RST+ACK at once and
connect() fails with ECONNREFUSED. The "server" side never leaves CLOSED: nothing was
ever there.
"""

from __future__ import annotations

from .call_checks import Calls, StateCause
from .base import Context, Expect, Path, Scenario, states


def run(ctx: Context) -> None:
    s = ctx.socket()
    ctx.attempt("connect()", lambda: s.connect(ctx.addr))   # nobody bound this port
    s.close()


SCENARIOS = [Scenario(
    "refused", "connect() to a port with no listener: SYN answered by RST+ACK, "
    "ECONNREFUSED", __doc__, run,
    Expect(findings=('connection-refused',),
           no_findings=('listen-overflow', 'self-connect'),
           conns=[[Path("refused", states("CLOSED SYN_SENT CLOSED"), states("CLOSED"))]],
           zeek=[("REJ", "Sr")],
           outcomes={"connect()": "ECONNREFUSED"},
           calls=[StateCause("client", "SYN_SENT", ("connect",)),
                  Calls("connect", "ECONNREFUSED", side="client", cause="RST")]))]
