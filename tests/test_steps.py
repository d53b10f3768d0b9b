"""views/steps: an endpoint's steps and the change events, from hand-built annotations."""

from __future__ import annotations

import pickle

import pytest

from rawinspect.core.annotation import Annotation
from rawinspect.core.segment import ACK, FIN, SYN, Segment
from rawinspect.views.steps import Change, EndpointSteps, Step, StepLog

T0 = 100.0


class Conn:
    """Annotations of one connection, each endpoint's state carried from one to the next."""

    def __init__(self, client: str = "CLOSED", server: str = "LISTEN") -> None:
        self.state = {"client": client, "server": server}
        self.anns: list[Annotation] = []

    def seg(self, who: str, event: str, flags: int, client: list[str] | None = None,
            server: list[str] | None = None, payload: int = 0) -> Annotation:
        """The next segment, from "client" or "server", with each endpoint's path."""
        frame = len(self.anns) + 1
        ts = T0 + frame / 1000
        src, dst = (("10.0.0.1", 40000), ("10.0.0.2", 80))[::1 if who == "client" else -1]
        seg = Segment(frame, ts, src[0], src[1], dst[0], dst[1], 0, 0, flags, 65535, payload)
        before = dict(self.state)
        for side, path in (("client", client), ("server", server)):
            if path:
                self.state[side] = path[-1]
        a = Annotation(seg=seg, conn=1, client="10.0.0.1:40000", server="10.0.0.2:80",
                       from_client=who == "client", client_before=before["client"],
                       client_after=self.state["client"], server_before=before["server"],
                       server_after=self.state["server"], client_path=client,
                       server_path=server, event=event, analysis=[], note="", rel_seq=0,
                       rel_ack=0)
        self.anns.append(a)
        return a


def _ts(frame: int) -> float:
    return T0 + frame / 1000


def normal_close() -> Conn:
    """Handshake, then the client closes first in four segments."""
    c = Conn()
    c.seg("client", "SYN", SYN, ["CLOSED", "SYN_SENT"], ["LISTEN", "SYN_RCVD"])
    c.seg("server", "SYN+ACK", SYN | ACK, ["SYN_SENT", "ESTABLISHED"],
          ["SYN_RCVD", "SYN_RCVD"])
    c.seg("client", "ACK", ACK, None, ["SYN_RCVD", "ESTABLISHED"])
    c.seg("client", "data", ACK, payload=10)
    c.seg("client", "FIN", FIN | ACK, ["ESTABLISHED", "FIN_WAIT_1"],
          ["ESTABLISHED", "CLOSE_WAIT"])
    c.seg("server", "ACK", ACK, ["FIN_WAIT_1", "FIN_WAIT_2"])
    c.seg("server", "FIN", FIN | ACK, ["FIN_WAIT_2", "TIME_WAIT"],
          ["CLOSE_WAIT", "LAST_ACK"])
    c.seg("client", "ACK", ACK, None, ["LAST_ACK", "CLOSED"])
    return c


def test_normal_close():
    steps = EndpointSteps.of(normal_close().anns)
    assert steps.client == [Step("CLOSED", _ts(1), 1), Step("SYN_SENT", _ts(1), 1),
                            Step("ESTABLISHED", _ts(2), 2), Step("FIN_WAIT_1", _ts(5), 5),
                            Step("FIN_WAIT_2", _ts(6), 6), Step("TIME_WAIT", _ts(7), 7)]
    assert [(s.state, s.frame) for s in steps.server] == [
        ("LISTEN", 1), ("SYN_RCVD", 1), ("ESTABLISHED", 3), ("CLOSE_WAIT", 5),
        ("LAST_ACK", 7), ("CLOSED", 8)]
    assert steps.of_side("server") == steps.server
    # The SYN+ACK kept the server in SYN_RCVD: no change event for it.
    assert [(c.frame, c.who) for c in steps.changes] == [
        (1, "client"), (1, "server"), (2, "client"), (3, "server"), (5, "client"),
        (5, "server"), (6, "client"), (7, "client"), (7, "server"), (8, "server")]


def test_feed_returns_the_change_events_of_that_segment():
    anns = normal_close().anns
    steps = EndpointSteps(anns[0])
    got = [steps.feed(a) for a in anns]
    assert got[1] == [Change(2, "client", ["SYN_SENT", "ESTABLISHED"])]
    assert got[3] == []                     # data changes nothing
    assert [c for new in got for c in new] == steps.changes


def test_simultaneous_close_passes_two_states_on_one_segment():
    c = Conn("ESTABLISHED", "ESTABLISHED")
    c.seg("client", "FIN", FIN | ACK, ["ESTABLISHED", "FIN_WAIT_1"])
    # The server's FIN crossed the client's: the server sends its FIN, then gets ours.
    c.seg("server", "FIN", FIN | ACK, ["FIN_WAIT_1", "CLOSING"],
          ["ESTABLISHED", "FIN_WAIT_1", "CLOSING"])
    c.seg("client", "ACK", ACK, None, ["CLOSING", "TIME_WAIT"])
    c.seg("server", "ACK", ACK, ["CLOSING", "TIME_WAIT"])
    steps = EndpointSteps.of(c.anns)
    assert [(s.state, s.frame) for s in steps.server] == [
        ("ESTABLISHED", 1), ("FIN_WAIT_1", 2), ("CLOSING", 2), ("TIME_WAIT", 3)]
    assert [(s.state, s.frame) for s in steps.client] == [
        ("ESTABLISHED", 1), ("FIN_WAIT_1", 1), ("CLOSING", 2), ("TIME_WAIT", 4)]
    assert Change(2, "server", ["ESTABLISHED", "FIN_WAIT_1", "CLOSING"]) in steps.changes
    assert len(steps.changes) == 5


def test_connection_with_no_change():
    c = Conn("ESTABLISHED", "ESTABLISHED")      # a capture begun mid-stream
    c.seg("client", "data", ACK, payload=100)
    c.seg("server", "ACK", ACK)
    steps = EndpointSteps.of(c.anns)
    assert steps.client == [Step("ESTABLISHED", _ts(1), 1)]
    assert steps.server == [Step("ESTABLISHED", _ts(1), 1)]
    assert steps.changes == []


def test_a_state_changed_between_segments_opens_a_step_at_the_next_path():
    """TIME_WAIT ran out before frame 2 (no path for it): the RST's path starts in CLOSED."""
    c = Conn("TIME_WAIT", "CLOSED")
    c.seg("server", "FIN", FIN | ACK)
    c.state["client"] = "CLOSED"
    c.seg("client", "RST", 0, ["CLOSED", "CLOSED"])
    steps = EndpointSteps.of(c.anns)
    assert [(s.state, s.frame) for s in steps.client] == [("TIME_WAIT", 1), ("CLOSED", 2)]
    assert steps.changes == [Change(2, "client", ["CLOSED", "CLOSED"])]


def test_a_step_log_reads_as_its_steps_and_survives_pickling() -> None:
    """The compact log of an endpoint's steps: the same Steps as a list, also after a
    pickle round trip (replay -j's workers, the retired summaries written to disk)."""
    log = StepLog("LISTEN", 100.25, 1)
    log.add("SYN_RCVD", 100.5, 2)
    log.add("ESTABLISHED", 101.125, 2**40)
    want = [Step("LISTEN", 100.25, 1), Step("SYN_RCVD", 100.5, 2),
            Step("ESTABLISHED", 101.125, 2**40)]
    assert log.steps() == list(log) == want and len(log) == 3 and log.last == "ESTABLISHED"
    assert log[-1] == want[-1] and log[0] == want[0] and log.first == "LISTEN"
    assert log.has("SYN_RCVD") and not log.has("CLOSE_WAIT") and not log.has("NO_SUCH")
    with pytest.raises(IndexError):
        log[3]
    again = pickle.loads(pickle.dumps(log))
    assert again.steps() == want and type(again) is StepLog and again.has("ESTABLISHED")
