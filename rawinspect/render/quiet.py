"""No per-segment output (when connection summaries replace it)."""

from __future__ import annotations

from ..core.annotation import Annotation
from ..core.call import Call


class Quiet:
    """Takes annotations and calls, and prints nothing."""

    def write(self, anns: list[Annotation]) -> None:
        """Nothing to print per segment."""

    def write_calls(self, calls: list[Call]) -> None:
        """Nothing to print per call."""

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing to finish."""
