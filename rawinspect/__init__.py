"""rawinspect: annotate every TCP segment with the TCP state of both endpoints."""

__version__ = "0.1.0"
