"""The package's layering (STYLE.md "Layers"): no import circles, not even lazy ones.

Every module of ``fluxcompose`` (packages included, found generically) is parsed with
``ast``; every import counts: top-level, inside functions, under ``TYPE_CHECKING``,
relative and absolute. An edge goes to the module named (``from .x import y`` is an edge
to ``x``, or to ``x.y`` when that is a module; ``from . import y`` to ``y`` when it is a
module, else to the package itself). A cycle in that graph fails the test, printed.

Run it alone to see the graph's cycles: ``python -m pytest tests/test_layers.py -q``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fluxcompose

PACKAGE = "fluxcompose"
ROOT = Path(fluxcompose.__file__).resolve().parent


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (``pkg/__init__.py`` is ``pkg``)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: set[str]) -> str | None:
    """``name`` if it is a module of the package, else its longest prefix that is."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    target = _resolve(alias.name, modules)
                    if target:
                        out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".")
                if not is_package:
                    base_parts = base_parts[:-1]  # a module's "." is its package
                drop = node.level - 1
                if drop:
                    base_parts = base_parts[:-drop]
                base = ".".join(base_parts)
                full = f"{base}.{node.module}" if node.module else base
            else:
                full = node.module or ""
                if not (full == PACKAGE or full.startswith(PACKAGE + ".")):
                    continue
            for alias in node.names:
                sub = f"{full}.{alias.name}"
                target = sub if sub in modules else _resolve(full, modules)
                if target:
                    out.add(target)
    out.discard(module)
    return out


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    names = set(files)
    return {m: imports_of(m, p, names) for m, p in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in comps]


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A concrete cycle through the component's first module (breadth-first back to it)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)  # pragma: no cover - a component always holds a cycle


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The parser itself: lazy, TYPE_CHECKING, relative, absolute and package imports."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '1'\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .b import B\n"
        "def f():\n    from . import c\n    import fluxcompose.sub.d\n"
    )
    (pkg / "b.py").write_text("from fluxcompose import __version__\n")
    (pkg / "c.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .d import x\n")
    (pkg / "sub" / "d.py").write_text("from .. import a\nfrom ..sub import e\n")
    (pkg / "sub" / "e.py").write_text("")
    files = module_files(pkg, PACKAGE)
    names = set(files)
    graph = {m: imports_of(m, p, names) for m, p in files.items()}
    assert graph["fluxcompose.a"] == {"fluxcompose.b", "fluxcompose.c", "fluxcompose.sub.d"}
    assert graph["fluxcompose.b"] == {"fluxcompose"}
    assert graph["fluxcompose.sub"] == {"fluxcompose.sub.d"}
    assert graph["fluxcompose.sub.d"] == {"fluxcompose.a", "fluxcompose.sub.e"}
    assert find_cycles(graph) == [["fluxcompose.a", "fluxcompose.sub.d", "fluxcompose.a"]]


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 20  # the package was found
    cycles = find_cycles(graph)
    shown = "\n".join(" -> ".join(c) for c in cycles)
    assert not cycles, f"import cycles in {PACKAGE}:\n{shown}"


if __name__ == "__main__":  # pragma: no cover - a command to print the graph's cycles
    for cycle in find_cycles(import_graph()):
        print(" -> ".join(cycle))
