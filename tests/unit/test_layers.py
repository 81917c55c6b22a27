"""Imports run downward only, and in no circle (ARCHITECTURE.md, "Layers"): the library (``mobivision``, no
Lightning, no Hydra) -> the Lightning layer (``tasks/``, installed as ``mobivision.tasks``) -> the application layer
(``mobivision/commands``, ``mobivision/__main__``) -> ``tools/``. Read from the source with ``ast``: every import,
at module level or inside a function, counts."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("library", "tasks", "application")


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in ((REPO / "mobivision", "mobivision"), (REPO / "tasks", "mobivision.tasks")):
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            found[".".join((package, *parts)).removesuffix(".__init__")] = path
    return found


def _layer(module: str) -> int | None:
    if module.startswith(("mobivision.commands", "mobivision.__main__")):
        return 2
    if module.startswith("mobivision.tasks"):
        return 1
    return 0 if module.split(".")[0] == "mobivision" else None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _imports(path):
            while name and name not in modules:  # ``from a.b import c``: the module a.b
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(f"{name}."):  # a package's own __init__
                targets.add(name)
        graph[module] = targets
    return graph


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)]}) imports {target} ({LAYERS[_layer(target)]})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _layer(target) is not None and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_circle() -> None:
    graph = _graph()
    circles = []
    for start in graph:  # a depth-first walk from each module back to itself (the graph is small)
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, path = stack.pop()
            for target in graph.get(module, ()):
                if target == start:
                    circles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert circles == []


def test_the_library_imports_neither_lightning_nor_hydra() -> None:
    found = sorted(
        f"{module} imports {name}"
        for module, path in _modules().items()
        if _layer(module) == 0
        for name in _imports(path)
        if name.split(".")[0] in ("lightning", "hydra", "omegaconf")
    )
    assert found == []
