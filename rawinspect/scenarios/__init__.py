"""The bundled lessons: one module each, registered here in teaching order."""

from __future__ import annotations

from importlib import import_module

from .base import Scenario

MODULES = ("handshake", "server_close", "simultaneous_close", "half_close", "never_close",
           "write_after_close", "abortive_close", "refused", "backlog",
           "simultaneous_open", "self_connect", "byte_stream", "datagrams", "short_long", "forking_server",
           "nagle", "close_wait_leak")


def all_scenarios() -> dict[str, Scenario]:
    """Every bundled scenario by name, in teaching order."""
    out: dict[str, Scenario] = {}
    for mod in MODULES:
        for sc in import_module(f"{__name__}.{mod}").SCENARIOS:
            out[sc.name] = sc
    return out
