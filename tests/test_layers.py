"""The package stacks: every import between molvae modules points down the layers of ARCHITECTURE.md.

An AST pass over ``molvae/`` records every intra-package import (module-level, function-local,
``TYPE_CHECKING``-only, and ``importlib.import_module("molvae....")`` with a literal name), so a lazy
import cannot hide an upward edge or a circle.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "molvae"


def layers() -> list[list[str]]:
    """The layers of ARCHITECTURE.md's ``layers`` block, bottom first, as full module names in order."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    out: list[list[str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        head = re.match(r"L(\d+)\s+", line)
        if head:
            assert int(head.group(1)) == len(out), f"layers must be numbered L0, L1, ... in order: {line!r}"
            out.append([])
            line = line[head.end():]
        out[-1] += [name if name == "molvae" else f"molvae.{name}" for name in line.split()]
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def imports(path: Path) -> list[tuple[str, int]]:
    """``(imported molvae module, line)`` for every import in a file, wherever it sits."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if is_module(f"{mod}.{a.name}")]
            found += [(s, node.lineno) for s in subs]
            if len(subs) < len(node.names):  # names defined in the module (or package) itself
                found.append((mod, node.lineno))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))
    return [(m, line) for m, line in found if (m == "molvae" or m.startswith("molvae.")) and m != me]


def edges() -> dict[str, list[tuple[str, int]]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    listed = [m for layer in layers() for m in layer]
    assert len(listed) == len(set(listed)), "a module is listed twice in ARCHITECTURE.md"
    actual = set(edges())
    assert sorted(actual - set(listed)) == [], "modules missing from ARCHITECTURE.md's layers block"
    assert sorted(set(listed) - actual) == [], "ARCHITECTURE.md lists modules that do not exist"


def test_no_upward_or_circular_import():
    order = {m: (i, j) for i, layer in enumerate(layers()) for j, m in enumerate(layer)}
    graph = edges()
    bad = []
    for src, targets in graph.items():
        for dst, line in targets:
            if dst not in order or src not in order:
                continue  # test_every_module_has_a_layer reports it
            if order[dst] >= order[src]:
                kind = "the same layer, listed after it" if order[dst][0] == order[src][0] else "a higher layer"
                path = src.replace(".", "/") + ("/__init__.py" if (ROOT / src.replace(".", "/")).is_dir() else ".py")
                bad.append(f"{path}:{line}: {src} (L{order[src][0]}) imports {dst} (L{order[dst][0]}), "
                           f"from {kind}")
    circles = cycles({src: {dst for dst, _ in targets} for src, targets in graph.items()})
    assert not bad and not circles, "\n".join(bad + [f"circle: {' <-> '.join(c)}" for c in circles])


def test_moved_names_resolve_and_are_not_used_inside_molvae():
    """A name that moved up stays importable from its old module (``_MOVED``); molvae itself uses the new one."""
    moved = {}
    for name in edges():
        if name.endswith("__main__"):
            continue  # running it is the CLI
        module = importlib.import_module(name)
        for attr, target in getattr(module, "_MOVED", {}).items():
            assert hasattr(importlib.import_module(target), attr), f"{name}._MOVED: {target}.{attr} does not exist"
            moved[(name, attr)] = target
    users = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                users += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name} (now in {moved[node.module, a.name]})"
                          for a in node.names if (node.module, a.name) in moved]
    assert users == []
