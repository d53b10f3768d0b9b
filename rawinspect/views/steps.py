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

from array import array
from typing import Final, Iterator, NamedTuple

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


# The states' names by code, and their codes: a step keeps its state as a number.
_NAMES: Final[list[str]] = []
_CODES: Final[dict[str, int]] = {}


def _code(state: str) -> int:
    """The number of ``state``'s name (given it at its first use)."""
    code = _CODES.get(state)
    if code is None:
        code = len(_NAMES)
        _CODES[state] = code
        _NAMES.append(state)
    return code


class StepLog:
    """One endpoint's steps, compact: each step's state (by number), time and frame, three
    doubles in one array (a frame number is exact in a double). Tens of thousands of
    connections keep four of these each (the summaries', the findings' facts). Reads as a
    sequence of (state, time, frame) tuples, which compare equal to the Steps of
    ``steps``."""

    __slots__ = ("stamps",)

    def __init__(self, state: str, ts: float, frame: int) -> None:
        self.stamps = array("d", (_code(state), ts, frame))

    def add(self, state: str, ts: float, frame: int) -> None:
        """A new step."""
        stamps = self.stamps
        stamps.append(_code(state))
        stamps.append(ts)
        stamps.append(frame)

    @property
    def first(self) -> str:
        """The state the endpoint started in."""
        return _NAMES[int(self.stamps[0])]

    @property
    def last(self) -> str:
        """The state the endpoint is in."""
        return _NAMES[int(self.stamps[-3])]

    def __len__(self) -> int:
        return len(self.stamps) // 3

    def has(self, state: str) -> bool:
        """Whether the endpoint was ever in ``state`` (without a tuple made per step)."""
        code = _CODES.get(state)
        if code is None:
            return False
        stamps = self.stamps
        for i in range(0, len(stamps), 3):
            if stamps[i] == code:
                return True
        return False

    def __getitem__(self, i: int) -> tuple[str, float, int]:
        n = len(self.stamps) // 3
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("step index out of range")
        stamps = self.stamps
        return (_NAMES[int(stamps[3 * i])], stamps[3 * i + 1], int(stamps[3 * i + 2]))

    def __iter__(self) -> Iterator[tuple[str, float, int]]:
        stamps = self.stamps
        return iter([(_NAMES[int(stamps[i])], stamps[i + 1], int(stamps[i + 2]))
                     for i in range(0, len(stamps), 3)])

    def steps(self) -> list[Step]:
        """Every step, as Steps (a plain tuple is made faster: the findings' rules read
        the log itself)."""
        stamps = self.stamps
        return [Step(_NAMES[int(stamps[i])], stamps[i + 1], int(stamps[i + 2]))
                for i in range(0, len(stamps), 3)]

    def __reduce__(self) -> tuple[object, tuple[list[str], bytes]]:
        """Pickled (replay -j's workers, the retired summaries on disk) with the states'
        names, which another process numbers its own way, and without a call of
        ``__init__`` without its arguments, which a compiled class would make."""
        stamps = self.stamps
        return _restored, ([_NAMES[int(stamps[i])] for i in range(0, len(stamps), 3)],
                           stamps.tobytes())


def _restored(states: list[str], stamps: bytes) -> StepLog:
    """A pickled StepLog again: its states numbered as this process numbers them."""
    log = StepLog(states[0], 0.0, 0)
    log.stamps = array("d")
    log.stamps.frombytes(stamps)
    for i, state in enumerate(states):
        log.stamps[3 * i] = _code(state)
    return log


def _extend(log: StepLog, path: list[str], ts: float, frame: int,
            timer_ts: float = 0.0) -> bool:
    """Add the states of ``path`` that differ from the last step; True if any did.

    A TIME_WAIT that ran out before this segment (``timer_ts``, the 2MSL rule) ended
    when its timer fired, not when the segment came.
    """
    last = log.last
    moved = False
    for i, state in enumerate(path):
        if state != last:
            expired = timer_ts and i == 1 and last == "TIME_WAIT" and state == "CLOSED"
            log.add(state, timer_ts if expired else ts, frame)
            last = state
            moved = True
    return moved


class EndpointSteps:
    """Both endpoints' steps and the change events of one connection, fed in order
    (``keep_changes`` False: each feed returns its change events, none are kept)."""

    __slots__ = ("client_log", "server_log", "changes", "keep_changes")

    def __init__(self, first: Annotation, keep_changes: bool = True) -> None:
        ts, frame = first.seg.ts, first.seg.frame
        self.client_log = StepLog(first.client_before, ts, frame)
        self.server_log = StepLog(first.server_before, ts, frame)
        self.changes: list[Change] = []
        self.keep_changes = keep_changes

    @property
    def client(self) -> list[Step]:
        """The client's steps."""
        return self.client_log.steps()

    @property
    def server(self) -> list[Step]:
        """The server's steps."""
        return self.server_log.steps()

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
        for who, path, log in (("client", a.client_path, self.client_log),
                               ("server", a.server_path, self.server_log)):
            if path and _extend(log, path, ts, frame, a.timer_ts):
                new.append(Change(frame, who, path))
        if self.keep_changes:
            self.changes.extend(new)
        return new

    def of_side(self, who: str) -> list[Step]:
        """The steps of "client" or "server"."""
        return self.client if who == "client" else self.server
