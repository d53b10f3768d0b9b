"""Build rawinspect, compiling the replay hot path to C with mypyc where it can.

The compiled modules are the same sources as the pure-Python ones (mypyc compiles type-annotated
Python); they only run faster. The pure-Python package is installed instead when:

- the install is editable (``pip install -e .``), so that edits to the sources take effect;
- ``RAWINSPECT_PURE=1`` is set;
- compiling fails (no C compiler or no Python headers): a warning says so, nothing else changes.

``python -m rawinspect --version`` says which one is installed.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The modules every replayed packet goes through: reading, decoding, tracking, analysis,
# the two per-segment formats people use most (jsonl, the default table), the views behind
# the connection summaries (--conns, zeek) and the findings' facts, fed every segment too.
HOT_MODULES = [
    "rawinspect/sources/capfile.py",
    "rawinspect/sources/decode.py",
    "rawinspect/core/options.py",
    "rawinspect/core/segment.py",
    "rawinspect/core/seqspace.py",
    "rawinspect/core/annotation.py",
    "rawinspect/core/transitions.py",
    "rawinspect/core/connection.py",
    "rawinspect/core/table.py",
    "rawinspect/core/inference.py",
    "rawinspect/core/holds.py",
    "rawinspect/core/tracker.py",
    "rawinspect/views/wireshark.py",
    "rawinspect/app/annotator.py",
    "rawinspect/app/pipeline.py",
    "rawinspect/render/jsonl.py",
    "rawinspect/render/table.py",
    "rawinspect/views/steps.py",
    "rawinspect/views/zeek.py",
    "rawinspect/views/summary.py",
    "rawinspect/views/conn_facts.py",
    "rawinspect/render/summaries.py",      # the summaries' rows, made at the end per connection
    "rawinspect/sources/ring.py",          # live capture: the ring's packets, one by one,
    "rawinspect/app/capture_loop.py",      # and the loop that decodes and tracks them
]
# Not views/findings.py: its rules run once per finished connection, and their docstrings
# are the lessons `rawinspect findings` prints (a compiled function keeps no docstring).


class CompileHotPath(build_ext):
    """Runs mypyc when the extensions are built (not for metadata); falls back to pure Python."""

    def finalize_options(self) -> None:
        if getattr(self, "editable_mode", False) or self.inplace or os.environ.get("RAWINSPECT_PURE"):
            self._go_pure("pure-Python build (editable install or RAWINSPECT_PURE)")
        else:
            try:
                from mypyc.build import mypycify

                self.distribution.ext_modules = mypycify(HOT_MODULES, opt_level="3",
                                                         debug_level="0")
            except (Exception, SystemExit) as exc:  # mypyc exits on a type error
                self._go_pure(f"mypyc failed ({exc})")
        self.extensions = self.distribution.ext_modules
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no C compiler, no Python headers
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            self._go_pure(f"compiling failed ({str(exc)[:160]})")

    def _go_pure(self, why: str) -> None:
        print(f"rawinspect: {why}: installing the pure-Python package", file=sys.stderr)
        self.extensions = self.distribution.ext_modules = []


# A placeholder so that setuptools runs build_ext and tags the wheel for this platform;
# CompileHotPath replaces it with mypyc's extensions.
setup(
    ext_modules=[Extension("rawinspect._hot_path", sources=[])],
    cmdclass={"build_ext": CompileHotPath},
)
