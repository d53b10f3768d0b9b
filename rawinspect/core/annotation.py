"""The Annotation record: what the tracker says about one segment."""

from __future__ import annotations

from .segment import Segment

# The analysis of every annotation without a flag (most): shared, so never appended to; an
# annotation that gets a flag gets a list of its own.
NO_FLAGS: list[str] = []


class Annotation:
    """One segment with both endpoints' states before and after it, and why.

    ``client_path``/``server_path`` list every state an endpoint passed through on this
    segment (None when it did not change), e.g. a crossing FIN's
    ``["ESTABLISHED", "FIN_WAIT_1", "CLOSING"]``. ``analysis`` holds flags such as
    "retransmission", "keep_alive", "rst_out_of_window", "state_inferred". ``timer_ts``
    is when a timer (TIME_WAIT's 2MSL) moved an endpoint before this segment arrived, the
    first step of its path; 0.0 when none did. ``win_scaled`` is the window as the
    receiver understands it: the field shifted by the sender's window scale once both SYNs
    offered scaling, never on a SYN (the raw field when not given). ``cause`` is the
    program's call that made the sender's state change ("FIN_WAIT_1 ← close(fd 4), pid
    812, server"), filled in by the calls view when calls were recorded.
    """

    __slots__ = ("seg", "conn", "client", "server", "from_client", "client_before",
                 "client_after", "server_before", "server_after", "client_path",
                 "server_path", "event", "analysis", "note", "rel_seq", "rel_ack", "timer_ts",
                 "win_scaled", "cause")

    def __init__(self, *, seg: Segment, conn: int, client: str, server: str,
                 from_client: bool, client_before: str, client_after: str,
                 server_before: str, server_after: str, client_path: list[str] | None,
                 server_path: list[str] | None, event: str, analysis: list[str], note: str,
                 rel_seq: int, rel_ack: int, timer_ts: float = 0.0,
                 win_scaled: int = -1) -> None:
        self.seg = seg
        self.conn = conn
        self.client = client
        self.server = server
        self.from_client = from_client
        self.client_before = client_before
        self.client_after = client_after
        self.server_before = server_before
        self.server_after = server_after
        self.client_path = client_path
        self.server_path = server_path
        self.event = event
        self.analysis = analysis
        self.note = note
        self.rel_seq = rel_seq
        self.rel_ack = rel_ack
        self.timer_ts = timer_ts
        self.win_scaled = win_scaled if win_scaled >= 0 else seg.window
        self.cause = ""

    @property
    def direction(self) -> str:
        """"c>s" for client to server, "s>c" the other way."""
        return "c>s" if self.from_client else "s>c"
