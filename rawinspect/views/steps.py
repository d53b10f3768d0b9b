"""An endpoint's steps: the states each side of a connection went through, and where.

Shared by the views that read state sequences from the annotation stream (the
summaries, the kernel comparison, the scenario checks), so they cannot drift apart.

One definition: an endpoint starts in its state before the connection's first segment
(stamped with that segment's time and frame); every state of a segment's path
(``client_path``/``server_path``, its first entry included) that differs from the last
step's state opens a new step at that segment. A path that opened at least one step is
a change event. A path that stays put (``["SYN_RCVD", "SYN_RCVD"]``: the listener
sends its SYN+ACK) opens none. The first entry of a path is the state before the segment, which is
the last step's state unless the tracker changed the state between segments (an expired
TIME_WAIT is CLOSED when the next segment comes): then that state opens a step too. A
TIME_WAIT ended by its 2MSL timer (``Annotation.timer_ts``) ends at the timer's time.
"""

from __future__ import annotations

from typing import NamedTuple

from ..core.annotation import Annotation


class Step(NamedTuple):
    """One state of one endpoint: entered at ``ts``, on the segment of ``frame``."""
    state: str
    ts: float
    frame: int


class Change(NamedTuple):
    """A segment that changed an endpoint's state: the states it passed through."""
    frame: int
    who: str            # "client" or "server"
    path: list[str]


def _extend(steps: list[Step], path: list[str], ts: float, frame: int,
            timer_ts: float = 0.0) -> bool:
    """Add the states of ``path`` that differ from the last step; True if any did.

    A TIME_WAIT that ran out before this segment (``timer_ts``, the 2MSL rule) ended
    when its timer fired, not when the segment came.
    """
    last = steps[-1].state
    moved = False
    for i, state in enumerate(path):
        if state != last:
            expired = timer_ts and i == 1 and last == "TIME_WAIT" and state == "CLOSED"
            steps.append(Step(state, timer_ts if expired else ts, frame))
            last = state
            moved = True
    return moved


class EndpointSteps:
    """Both endpoints' steps and the change events of one connection, fed in order
    (``keep_changes`` False: each feed returns its change events, none are kept)."""

    __slots__ = ("client", "server", "changes", "keep_changes")

    def __init__(self, first: Annotation, keep_changes: bool = True) -> None:
        ts, frame = first.seg.ts, first.seg.frame
        self.client: list[Step] = [Step(first.client_before, ts, frame)]
        self.server: list[Step] = [Step(first.server_before, ts, frame)]
        self.changes: list[Change] = []
        self.keep_changes = keep_changes

    @classmethod
    def of(cls, anns: list[Annotation]) -> EndpointSteps:
        """The steps of one connection's annotations (at least one), in capture order."""
        steps = cls(anns[0])
        for a in anns:
            steps.feed(a)
        return steps

    def feed(self, a: Annotation) -> list[Change]:
        """Take the next annotation of the connection; return its change events."""
        if not a.client_path and not a.server_path:  # most segments change nothing
            return []
        new: list[Change] = []
        ts, frame = a.seg.ts, a.seg.frame
        for who, path, steps in (("client", a.client_path, self.client),
                                 ("server", a.server_path, self.server)):
            if path and _extend(steps, path, ts, frame, a.timer_ts):
                new.append(Change(frame, who, path))
        if self.keep_changes:
            self.changes.extend(new)
        return new

    def of_side(self, who: str) -> list[Step]:
        """The steps of "client" or "server"."""
        return self.client if who == "client" else self.server
