"""The Python API: ``rawinspect.read``, ``annotate``, ``live`` and ``printer`` give a
``Capture`` (``results``), made by the very stages the command line uses; ``assertions``
and ``pytest_plugin`` turn it into tests; ``scapy_io`` takes scapy's packets; ``saving``
writes them out again."""

from .entry import (CaptureError, CapturePermissionError, Printer, annotate, live, printer,
                    read)
from .results import AnnotatedSegment, Capture, Connection, Endpoint

__all__ = ["AnnotatedSegment", "Capture", "CaptureError", "CapturePermissionError",
           "Connection", "Endpoint", "Printer", "annotate", "live", "printer", "read"]
