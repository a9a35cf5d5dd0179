"""Checks pyrec_pg's layering: every import points down a layer, and no import cycle exists.

Run by `make check`. Function-local imports count like module-level ones, so a cycle cannot
hide inside a function. Exit status 1 lists each offending import and each cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Lowest first. A module may import the package face (FACE), modules of its own folder, and
# modules of a lower layer; nothing of its own rank in another folder, nothing higher.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("dev",),  # throwaway clusters and sample data: used by the CLI and tests only
    ("db",),
    ("ml",),
    ("catalog",),
    ("store",),
    ("filters",),
    ("jobs",),
    ("analysis",),
    ("entrypoints",),
    ("cli", "integrations", "runtime"),
)
FACE = ("pyrec_pg", "pyrec_pg.errors")
# public import paths kept at the root, each re-exporting one layer module
FACADES = {"pyrec_pg.sqlalchemy": "pyrec_pg.integrations.sqlalchemy"}
# who may import a layer besides the layers above it (dev stays out of the server's Python)
ONLY_FROM = {"dev": ("cli",)}

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pyrec_pg"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported pyrec_pg module, line) for every import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("pyrec_pg")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("pyrec_pg"):
                continue
            for a in node.names:  # `from pkg import mod` imports the module pkg.mod
                sub = f"{target}.{a.name}"
                out.append((sub if sub in known else target, node.lineno))
    return [(t, line) for t, line in out if t in known]


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and name not in FACE and name not in FACADES else None


def rank(layer: str) -> int:
    for i, group in enumerate(LAYERS):
        if layer in group:
            return i
    raise KeyError(layer)


def violations(graph: dict[str, list[tuple[str, int]]], paths: dict[str, Path]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        here = layer_of(src)
        if src in FACADES:
            bad += [f"{src}: a facade imports {t}" for t, _ in targets if t != FACADES[src]]
            continue
        if here is None:
            if src in FACE and src != "pyrec_pg" and any(t not in FACE for t, _ in targets):
                bad.append(f"{src}: the package face imports a layer")
            continue
        if here not in {n for g in LAYERS for n in g}:
            bad.append(f"{paths[src]}: {here}/ is not a declared layer (tools/check_layers.py)")
            continue
        for dst, line in targets:
            there = layer_of(dst)
            if there is None or there == here:
                continue
            where = f"{paths[src].relative_to(ROOT)}:{line}: {src} imports {dst}"
            if there not in {n for g in LAYERS for n in g}:
                bad.append(f"{where} (undeclared layer {there})")
            elif rank(there) >= rank(here):
                bad.append(f"{where}: {there}/ is not below {here}/")
            elif there in ONLY_FROM and here not in ONLY_FROM[there]:
                bad.append(f"{where}: only {', '.join(ONLY_FROM[there])} may import {there}/")
    return bad


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _ in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def build() -> tuple[dict[str, list[tuple[str, int]]], dict[str, Path]]:
    paths = modules()
    known = set(paths)
    graph = {}
    for name, path in paths.items():
        # a package's own __init__ is imported by each of its modules: not an edge to follow
        graph[name] = [(t, n) for t, n in imports(name, path, known) if t != name]
    return graph, paths


def main() -> int:
    graph, paths = build()
    bad = violations(graph, paths)
    loops = cycles(graph)
    for line in bad:
        print(f"layers: {line}")
    for comp in loops:
        print(f"layers: import cycle: {' <-> '.join(comp)}")
    if bad or loops:
        return 1
    n = sum(map(len, graph.values()))
    print(f"layers: {len(paths)} modules, {n} imports, all pointing down, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
