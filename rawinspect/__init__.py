"""rawinspect: annotate every TCP segment with the TCP state of both endpoints.

The Python API (see the README, "Python API")::

    import rawinspect
    capture = rawinspect.read("trace.pcap")          # or annotate(packets), or live(...)
    for conn in capture.connections:
        print(conn.number, conn.client.states, conn.server.states, conn.summary.conn_state)
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["AnnotatedSegment", "Capture", "CaptureError", "CapturePermissionError",
           "Connection", "Endpoint", "Printer", "__version__", "annotate", "build", "live",
           "printer", "read"]


def build() -> str:
    """How the replay path runs: "compiled" (mypyc, see setup.py) or "pure Python"."""
    from .core import tracker

    return "pure Python" if tracker.__file__.endswith(".py") else "compiled"


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use: the command line does not pay for them."""
    if name in __all__ and name not in ("__version__", "build"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'rawinspect' has no attribute {name!r}")
