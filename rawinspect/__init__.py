"""rawinspect: annotate every TCP segment with the TCP state of both endpoints."""

__version__ = "0.1.0"


def build() -> str:
    """How the replay path runs: "compiled" (mypyc, see setup.py) or "pure Python"."""
    from .core import tracker

    return "pure Python" if tracker.__file__.endswith(".py") else "compiled"
