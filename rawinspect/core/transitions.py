"""The TCP state machine as data: every rule that changes an endpoint's state.

The same table serves both endpoints: it never asks whether an endpoint is the client
or the server (h11's rule 2). The tracker classifies each segment into events for its
sender and its receiver and looks them up here; ``rawinspect states`` prints this table
and the README's state diagram is generated from it.
"""

from __future__ import annotations

from typing import Final, NamedTuple

CLOSED: Final = "CLOSED"
LISTEN: Final = "LISTEN"
SYN_SENT: Final = "SYN_SENT"
SYN_RCVD: Final = "SYN_RCVD"
ESTABLISHED: Final = "ESTABLISHED"
FIN_WAIT_1: Final = "FIN_WAIT_1"
FIN_WAIT_2: Final = "FIN_WAIT_2"
CLOSE_WAIT: Final = "CLOSE_WAIT"
CLOSING: Final = "CLOSING"
LAST_ACK: Final = "LAST_ACK"
TIME_WAIT: Final = "TIME_WAIT"

STATES: Final = (CLOSED, LISTEN, SYN_SENT, SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2,
          CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT)

# Events, seen from the endpoint whose state changes.
SEND_SYN: Final = "send SYN"
RECV_SYN: Final = "recv SYN"
SEND_SYNACK: Final = "send SYN+ACK"
RECV_SYNACK: Final = "recv SYN+ACK"
RECV_ACK_OF_SYN: Final = "recv ACK of SYN"
SEND_FIN: Final = "send FIN"
RECV_FIN: Final = "recv FIN"
RECV_ACK_OF_FIN: Final = "recv ACK of FIN"
RECV_FIN_ACK_OF_FIN: Final = "recv FIN+ACK of FIN"
RECV_OWN_SYN: Final = "recv own SYN"
RECV_OWN_FIN: Final = "recv own FIN"
RESEND_SYNACK: Final = "resend SYN+ACK"
RECV_ACK_QUEUE_FULL: Final = "recv ACK, accept queue full"
# Whose RST, and why: the kinds the wire tells apart (see inference._rst_kind).
SEND_RST_ABORT: Final = "send RST, abort"
SEND_RST_AFTER_CLOSE: Final = "send RST, after close"
SEND_RST_NO_SOCKET: Final = "send RST, no socket"
SEND_RST_REFUSED: Final = "send RST, refused"
RECV_RST: Final = "recv RST"
TIMEOUT_2MSL: Final = "2MSL timeout"
# Corrections: an endpoint's first state is assumed (a SYN's receiver is taken to be a
# listener) until its answer shows otherwise. They fix the state it had all along, so the
# annotation shows the corrected state as its state before, not as a change.
ANSWERED_SYN_WITH_RST: Final = "answered the SYN with RST"
SENT_OWN_SYN: Final = "sent its own SYN"

EVENTS: Final = (SEND_SYN, RECV_SYN, SEND_SYNACK, RECV_SYNACK, RECV_ACK_OF_SYN, SEND_FIN, RECV_FIN,
          RECV_ACK_OF_FIN, RECV_FIN_ACK_OF_FIN, RECV_OWN_SYN, RECV_OWN_FIN, RESEND_SYNACK,
          RECV_ACK_QUEUE_FULL, SEND_RST_ABORT, SEND_RST_AFTER_CLOSE, SEND_RST_NO_SOCKET,
          SEND_RST_REFUSED, RECV_RST, TIMEOUT_2MSL, ANSWERED_SYN_WITH_RST, SENT_OWN_SYN)

# The ``event`` an annotation of an RST carries, by the kind of RST (the README's
# vocabulary); an RST outside the receiver's window is RST_IGNORED.
RST_EVENTS: Final = {SEND_RST_ABORT: "RST (abort)", SEND_RST_AFTER_CLOSE: "RST (after close)",
                     SEND_RST_NO_SOCKET: "RST (no socket)", SEND_RST_REFUSED: "RST (refused)"}
RST_IGNORED: Final = "RST (ignored)"
CORRECTIONS: Final = (ANSWERED_SYN_WITH_RST, SENT_OWN_SYN)


class Transition(NamedTuple):
    """One rule: in ``state``, ``event`` moves the endpoint to ``new``; ``why`` says so."""
    state: str
    event: str
    new: str
    why: str


_RULES = [
    Transition(CLOSED, SEND_SYN, SYN_SENT, "connect() sends SYN"),
    Transition(CLOSED, RECV_SYN, CLOSED, "no listener on this port: the kernel refuses with RST"),
    Transition(LISTEN, RECV_SYN, SYN_RCVD, "SYN reaches the listener, which answers SYN+ACK"),
    Transition(SYN_SENT, RECV_SYN, SYN_RCVD, "SYN crossed ours: simultaneous open"),
    Transition(SYN_SENT, RECV_OWN_SYN, SYN_RCVD,
               "its own SYN came back: the socket connected to itself (its port is its "
               "peer's), a simultaneous open with itself"),
    Transition(LISTEN, SEND_SYNACK, SYN_RCVD, "answers a SYN with SYN+ACK"),
    Transition(SYN_RCVD, SEND_SYNACK, SYN_RCVD, "answers the SYN, waits for the final ACK"),
    Transition(SYN_RCVD, RESEND_SYNACK, SYN_RCVD,
               "no final ACK taken yet: its SYN+ACK timer sends the SYN+ACK again"),
    Transition(SYN_RCVD, RECV_ACK_QUEUE_FULL, SYN_RCVD,
               "the listener's accept queue (listen()'s backlog) is full: the kernel drops "
               "the ACK (tcp_abort_on_overflow = 0) and this side stays SYN_RCVD (a request "
               "in the SYN queue; with SYN cookies, none), while the peer believes it is "
               "ESTABLISHED"),
    Transition(ESTABLISHED, SEND_SYNACK, ESTABLISHED,
               "its SYN+ACK crossed the peer's (simultaneous open)"),
    Transition(SYN_SENT, RECV_SYNACK, ESTABLISHED, "SYN+ACK acknowledges our SYN: connect() returns"),
    Transition(SYN_RCVD, RECV_SYNACK, ESTABLISHED, "SYN+ACK acknowledges our SYN (simultaneous open)"),
    Transition(SYN_RCVD, RECV_ACK_OF_SYN, ESTABLISHED, "ACK completes the handshake: accept() can return"),
    Transition(ESTABLISHED, SEND_FIN, FIN_WAIT_1, "active close: close() or shutdown(SHUT_WR) sends FIN"),
    Transition(SYN_RCVD, SEND_FIN, FIN_WAIT_1, "closes before the handshake completed"),
    Transition(CLOSE_WAIT, SEND_FIN, LAST_ACK, "closes its side too, waits for the last ACK"),
    Transition(ESTABLISHED, RECV_FIN, CLOSE_WAIT, "peer's FIN: read() returns EOF, sending still allowed"),
    Transition(SYN_RCVD, RECV_FIN, CLOSE_WAIT, "peer's FIN right after the handshake: EOF"),
    Transition(FIN_WAIT_1, RECV_FIN, CLOSING, "peer's FIN crossed ours: simultaneous close"),
    Transition(FIN_WAIT_1, RECV_OWN_FIN, CLOSING,
               "its own FIN came back before its ACK: a close with itself"),
    Transition(FIN_WAIT_2, RECV_FIN, TIME_WAIT, "peer's FIN: both sides closed; the active closer waits in TIME_WAIT"),
    Transition(FIN_WAIT_1, RECV_FIN_ACK_OF_FIN, TIME_WAIT,
               "FIN+ACK acknowledges our FIN: straight to TIME_WAIT"),
    Transition(FIN_WAIT_1, RECV_ACK_OF_FIN, FIN_WAIT_2, "our FIN is acknowledged; waiting for the peer's FIN"),
    Transition(CLOSING, RECV_ACK_OF_FIN, TIME_WAIT, "our FIN is acknowledged after the crossing: TIME_WAIT"),
    Transition(LAST_ACK, RECV_ACK_OF_FIN, CLOSED, "last ACK: closed, no TIME_WAIT for the passive closer"),
    Transition(TIME_WAIT, TIMEOUT_2MSL, CLOSED, "2MSL elapsed: TIME_WAIT is over"),
    Transition(LISTEN, ANSWERED_SYN_WITH_RST, CLOSED,
               "nothing listened on this port: it was CLOSED, not LISTEN"),
    Transition(LISTEN, SENT_OWN_SYN, CLOSED,
               "it was not listening but connecting: CLOSED before its own SYN"),
    Transition(CLOSED, SEND_RST_NO_SOCKET, CLOSED,
               "no socket for that segment (it never had one, or closed fully): the kernel "
               "answers RST"),
    Transition(CLOSED, SEND_RST_REFUSED, CLOSED,
               "nothing listens on this port: the kernel refuses the SYN with RST"),
    Transition(LISTEN, SEND_RST_NO_SOCKET, CLOSED,
               "no connection for that segment: the listener's kernel answers RST"),
    Transition(LISTEN, RECV_RST, LISTEN, "RST to a listener is ignored"),
    Transition(SYN_SENT, RECV_RST, CLOSED, "RST answers our SYN: connection refused (ECONNREFUSED)"),
    Transition(SYN_RCVD, RECV_RST, LISTEN, "RST during the handshake: back to LISTEN"),
    Transition(CLOSED, RECV_RST, CLOSED, "RST to a closed endpoint is dropped"),
]
for _s in (SYN_SENT, SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING,
           LAST_ACK):
    _RULES.append(Transition(_s, SEND_RST_ABORT, CLOSED,
                             "abortive close: close() with SO_LINGER {on, 0}, or close() "
                             "with unread data, sends RST instead of FIN"))
for _s in (FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT):
    _RULES.append(Transition(_s, SEND_RST_AFTER_CLOSE, CLOSED,
                             "data arrived after close(): nobody can read it, so the "
                             "kernel answers RST (RFC 1122), not an abort by the program; "
                             "its FIN came from close(), not shutdown()"))
for _s in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT):
    _RULES.append(Transition(_s, RECV_RST, CLOSED,
                             "RST from the peer: connection reset (ECONNRESET/EPIPE)"))

TRANSITIONS: tuple[Transition, ...] = tuple(_RULES)
TABLE: dict[tuple[str, str], Transition] = {(t.state, t.event): t for t in TRANSITIONS}
assert len(TABLE) == len(TRANSITIONS), "duplicate rule in the transition table"


def step(state: str, event: str) -> Transition | None:
    """The rule for ``event`` in ``state``, or None when the table has none."""
    return TABLE.get((state, event))
