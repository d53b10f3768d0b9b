"""No per-segment output (when connection summaries replace it)."""

from __future__ import annotations

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram


class Quiet:
    """Takes annotations, calls and datagrams, and prints nothing."""

    def write(self, anns: list[Annotation]) -> None:
        """Nothing to print per segment."""

    def write_calls(self, calls: list[Call]) -> None:
        """Nothing to print per call."""

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """Nothing to print per datagram."""

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing to finish."""
