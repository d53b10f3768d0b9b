#!/usr/bin/env python3
"""Regenerate docs/architecture.md from the package's sources (never edit it by hand).

Reads every module of ``rawinspect/`` with ``ast`` (nothing is imported): its docstring's first
line and its imports, module-level and inside functions, relative ones resolved. ``--check``
exits 1 if the file on disk differs from what would be written.
"""

from __future__ import annotations

import argparse
import ast
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "rawinspect"
DOC = Path("docs") / "architecture.md"
ROOT_FOLDER = "(root)"
# The data path, left to right; any other folder (app, scenarios, new ones) sits around it.
PIPELINE = ("sources", "core", "views", "render")
ARROW = " ──► "
WIDTH = 100  # the picture's lines wrap here


@dataclass(frozen=True)
class Module:
    """One module of the package, as read from its source."""

    name: str  # dotted: rawinspect.core.tracker; a package's __init__ is the package's name
    path: Path  # relative to the checkout: rawinspect/core/tracker.py
    doc: str | None  # the docstring's first line
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        """Whether this is a package's __init__."""
        return self.path.stem == "__init__"

    @property
    def folder(self) -> str:
        """The package folder it lives in: core, or ROOT_FOLDER for rawinspect/ itself."""
        return self.path.parts[1] if len(self.path.parts) > 2 else ROOT_FOLDER

    @property
    def short(self) -> str:
        """Its name inside its folder: tracker, or __init__."""
        return self.path.stem


def scan(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the package by dotted name."""
    modules: dict[str, Module] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        doc = ast.get_docstring(tree)
        first = doc.strip().splitlines()[0] if doc and doc.strip() else None
        name = ".".join(parts)
        modules[name] = Module(name, rel, first, tree)
    return modules


def _base(mod: Module, node: ast.ImportFrom) -> str:
    """The absolute dotted name a ``from … import`` refers to."""
    if not node.level:
        return node.module or ""
    package = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imports(mod: Module, known: dict[str, Module]) -> set[str]:
    """The package's modules ``mod`` imports, anywhere in its body."""
    out: set[str] = set()
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = _base(mod, node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    out.add(target)
                elif base in known:
                    out.add(base)
    out.discard(mod.name)
    return out


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module name → the package's modules it imports."""
    return {name: imports(mod, modules) for name, mod in modules.items()}


def _by_folder(modules: dict[str, Module]) -> dict[str, list[Module]]:
    groups: dict[str, list[Module]] = defaultdict(list)
    for name in sorted(modules):
        groups[modules[name].folder].append(modules[name])
    return dict(sorted(groups.items()))


def picture(groups: dict[str, list[Module]]) -> list[str]:
    """The data path as it exists: one column per pipeline folder, the others around it."""
    cols = [f for f in PIPELINE if f in groups]
    names = [[m.short for m in groups[f] if not m.is_package] for f in cols]
    rows = [[f"{f}/" for f in cols], *zip_longest(*names, fillvalue="")]
    widths = [max(len(r[c]) for r in rows) for c in range(len(cols))]

    def row(cells: Sequence[str], sep: str) -> str:
        return sep.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [row(rows[0], ARROW), *(row(r, " " * len(ARROW)) for r in rows[1:])]
    lines += ["", "around the path:"]
    for f in (f for f in groups if f not in PIPELINE):
        title = f"{PACKAGE}/" if f == ROOT_FOLDER else f"{f}/"
        mods = ", ".join(m.short for m in groups[f] if not m.is_package)
        lines += textwrap.wrap(mods, WIDTH, initial_indent=f"  {title:<12}", subsequent_indent=" " * 14)
    return ["```", *lines, "```"]


def module_lists(groups: dict[str, list[Module]]) -> list[str]:
    """Per folder, one line per module from its docstring."""
    out: list[str] = []
    for f, mods in groups.items():
        title = f"`{PACKAGE}/`" if f == ROOT_FOLDER else f"`{PACKAGE}/{f}/`"
        out += [f"### {title}", ""]
        out += [f"- `{m.path.name}`: {m.doc or '(no docstring)'}" for m in mods]
        out.append("")
    return out


def folder_edges(modules: dict[str, Module], graph: dict[str, set[str]]) -> list[str]:
    """Which folder imports which, with the module imports behind each edge."""
    pairs: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            a, b = modules[src], modules[dst]
            if a.folder != b.folder:
                pairs[a.folder, b.folder][a.short].append(b.short)
    return [
        f"- `{a}` → `{b}`: " + "; ".join(f"{s} → {', '.join(sorted(d))}" for s, d in sorted(p.items()))
        for (a, b), p in sorted(pairs.items())
    ] or ["- none"]


def core_edges(modules: dict[str, Module], graph: dict[str, set[str]]) -> list[str]:
    """Imports between the modules of core."""
    out: list[str] = []
    for src in sorted(n for n in graph if modules[n].folder == "core"):
        inside = sorted(modules[d].short for d in graph[src] if modules[d].folder == "core")
        targets = ", ".join(f"`{d}`" for d in inside) or "nothing in core"
        out.append(f"- `{modules[src].short}` → {targets}")
    return out


def render(root: Path = ROOT) -> str:
    """The text of docs/architecture.md."""
    modules = scan(root)
    groups = _by_folder(modules)
    graph = import_graph(modules)
    lines = [
        "# rawinspect: architecture",
        "",
        "<!-- Generated by scripts/gen_architecture.py from the package's sources; do not edit. -->",
        "Generated from the code by `python scripts/gen_architecture.py` "
        "(`--check` tells whether this file is current). The picture to aim at is DESIGN.md's; "
        "this one shows what exists.",
        "",
        "## The data path",
        "",
        *picture(groups),
        "",
        "## Modules",
        "",
        *module_lists(groups),
        "## Imports between folders",
        "",
        "Imports at module level, in functions and under `TYPE_CHECKING` (not `importlib` calls); "
        "`a → b` means a module of `a` imports one of `b`.",
        "",
        *folder_edges(modules, graph),
        "",
        "## Imports inside core",
        "",
        *core_edges(modules, graph),
    ]
    return "\n".join(lines) + "\n"


def check(root: Path = ROOT) -> str | None:
    """None if docs/architecture.md is current, else a one-line message saying what to do."""
    path = root / DOC
    if path.exists() and path.read_text(encoding="utf-8") == render(root):
        return None
    return f"{DOC} is out of date: run python scripts/gen_architecture.py"


def main(argv: list[str] | None = None) -> int:
    """Write docs/architecture.md, or with --check only compare it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current")
    args = parser.parse_args(argv)
    if args.check:
        message = check()
        if message:
            print(message, file=sys.stderr)
            return 1
        return 0
    (ROOT / DOC).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
