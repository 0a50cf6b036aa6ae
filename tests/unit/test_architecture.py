"""The architecture the README draws, checked on the source: layers, cycles, module sizes.

Imports point one way (``ledger`` <- ``projections`` <- ``risk`` <- ``scheduler`` <-
``permanence``), module-level imports form no cycle, and a module stays small enough to read
unless it is one cohesive thing named in :data:`LONG_MODULES` with the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support import SRC

LAYERS: dict[str, frozenset[str]] = {
    "ledger": frozenset({"ledger"}),
    "projections": frozenset({"ledger", "projections"}),
    "risk": frozenset({"ledger", "projections", "risk"}),
    "scheduler": frozenset({"ledger", "projections", "risk", "scheduler"}),
    "permanence": frozenset({"ledger", "projections", "risk", "scheduler", "permanence"}),
}
"""Which of the project's packages each package may import (lazily or not)."""

MAX_LINES = 500
LONG_MODULES: dict[str, str] = {
    "risk/assessment.py": "the risk tool's schema, an assessment's parsing and its evaluation: "
                          "one document model read top to bottom",
}
"""Modules allowed past :data:`MAX_LINES`, each with why it is one cohesive thing."""


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] not in LAYERS or "migrations" in rel.parts:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Project modules named by an import statement (relative imports resolved)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        yield base
        for alias in node.names:
            yield f"{base}.{alias.name}"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def top_level_imports(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements run when the module is imported (not inside functions or TYPE_CHECKING)."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody
                         + [s for h in node.handlers for s in h.body])


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = []
    for name, path in modules():
        package = name.split(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for target in imported(node, name, path.name == "__init__.py"):
                top = target.split(".")[0]
                if top in LAYERS and top not in LAYERS[package]:
                    wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_module_level_imports_form_no_cycle() -> None:
    known = dict(modules())
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges = set()
        for node in top_level_imports(tree):
            for target in imported(node, name, path.name == "__init__.py"):
                if target in known and target != name:
                    edges.add(target)
        graph[name] = edges
    assert find_cycles(graph) == []


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_modules_stay_small_unless_cohesive() -> None:
    long = {}
    for _, path in modules():
        rel = path.relative_to(SRC).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in LONG_MODULES:
            long[rel] = lines
    assert long == {}


def test_every_allowed_long_module_exists() -> None:
    assert [m for m in LONG_MODULES if not (SRC / m).exists()] == []
