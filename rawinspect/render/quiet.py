"""No per-segment output (when connection summaries replace it)."""

from __future__ import annotations

from ..core.annotation import Annotation


class Quiet:
    """Takes annotations and prints nothing."""

    def write(self, anns: list[Annotation]) -> None:
        """Nothing to print per segment."""

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing to finish."""
