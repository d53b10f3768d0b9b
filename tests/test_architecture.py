"""The package's structure: current docs/architecture.md, no import cycle, layering, short functions.

Read from the checkout's sources with ``ast`` (scripts/gen_architecture.py), nothing imported.
Each rule has at most one set of known violations, listed by name; a violation that is fixed
must leave its set (the test says so), and the sets are meant to become empty.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, TypeVar

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60
T = TypeVar("T")

# folder → the folders its modules may import; folders not listed (app, scenarios, the root) may
# import anything.
ALLOWED_IMPORTS: dict[str, set[str]] = {
    "core": {"core"},
    "sources": {"sources", "core"},
    "views": {"views", "core"},
    # pcapng_comments copies the capture it annotates, block by block, through capfile.
    "render": {"render", "core", "views", "sources"},
}

# Known violations, being fixed now; each entry must go once the code no longer has it.
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_LAYER_VIOLATIONS: set[tuple[str, str]] = set()
KNOWN_LONG_CORE_FUNCTIONS: set[str] = set()


def _load_generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_architecture.py"
    spec = importlib.util.spec_from_file_location("gen_architecture", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while building Module
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
MODULES = GEN.scan(ROOT)
GRAPH: dict[str, set[str]] = GEN.import_graph(MODULES)


def _ratchet(found: set[T], known: set[T], what: str, known_name: str,
             label: Callable[[T], str] = str) -> None:
    """Fail on a new violation, and on a known one that is gone (so the set shrinks)."""
    new, fixed = found - known, known - found
    assert not new, f"{what}: {sorted(map(label, new))}"
    assert not fixed, f"fixed, remove from {known_name}: {sorted(map(label, fixed))}"


def test_architecture_doc_is_current() -> None:
    message = GEN.check(ROOT)
    assert message is None, message


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = {v}
            while (w := stack.pop()) != v:
                component.add(w)
            if len(component) > 1:
                out.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == {frozenset("abc")}


def test_no_import_cycles() -> None:
    _ratchet(_cycles(GRAPH), KNOWN_CYCLES, "import cycles", "KNOWN_CYCLES", lambda c: " ↔ ".join(sorted(c)))


def test_layering() -> None:
    found = {
        (src, dst)
        for src, targets in GRAPH.items()
        for dst in targets
        if MODULES[src].folder in ALLOWED_IMPORTS
        and MODULES[dst].folder not in ALLOWED_IMPORTS[MODULES[src].folder]
    }
    _ratchet(found, KNOWN_LAYER_VIOLATIONS, "imports against the layering", "KNOWN_LAYER_VIOLATIONS",
             lambda edge: " → ".join(edge))


def _function_lengths(tree: ast.AST, prefix: str = "") -> dict[str, int]:
    """Qualified name → lines from the def to its last line, nested functions included."""
    out: dict[str, int] = {}
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                out[name] = node.end_lineno - node.lineno + 1
            out.update(_function_lengths(node, f"{name}."))
        else:
            out.update(_function_lengths(node, prefix))
    return out


def test_core_functions_are_short() -> None:
    lengths = {
        f"{mod.path.as_posix()}:{name}": n
        for mod in MODULES.values() if mod.folder == "core"
        for name, n in _function_lengths(mod.tree).items()
    }
    long = {name for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    _ratchet(long, KNOWN_LONG_CORE_FUNCTIONS, f"functions over {MAX_FUNCTION_LINES} lines in core",
             "KNOWN_LONG_CORE_FUNCTIONS", lambda name: f"{name} ({lengths.get(name, 0)} lines)")


def test_every_module_has_a_docstring() -> None:
    missing = sorted(str(mod.path) for mod in MODULES.values() if mod.doc is None)
    assert not missing, f"modules without a docstring: {missing}"
