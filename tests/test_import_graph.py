"""No import circle among edge/ modules (issue 24): the layout's layers only ever point one way.

The rule: module A imports module B when any import statement in A's file names B, wherever it stands: at module
level, under ``if TYPE_CHECKING:``, in ``try``/``if`` blocks, in a class body or inside a function. A type-only or
deferred import still ties the two modules together, so a helper that needs the service takes a small Protocol (see
edge/pipeline/workers.py) instead of importing ``Service`` back. Counted: ``import edge.x``, ``from edge.x import y``
(``edge.x.y`` when that is a module, else ``edge.x``) and relative imports, resolved against the importing package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a folder under ``root``) by dotted name; a package by its own name."""
    out: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, modules: dict[str, Path], package: str) -> set[str]:
    """The modules of ``modules`` that ``name`` (at ``path``) imports anywhere in its file (the rule above)."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]  # the package it sits in
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
                else node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import edge.a.b`` of a name inside a module: that module
                target = target.rpartition(".")[0]
            if target == package or target.startswith(package + "."):
                found.add(target)
    found.discard(name)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = module_names(root, package)
    return {name: imported(name, path, modules, package) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles as paths ``[a, b, ..., a]``: at least one whenever the graph has any (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in state:
            continue
        state[start] = 1
        path, stack = [start], [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return cycles


def test_no_import_circle_among_edge_modules() -> None:
    graph = import_graph(ROOT, "edge")
    assert len(graph) > 100 and graph["edge.pipeline.service"] >= {"edge.pipeline.workers", "edge.pipeline.status"}
    cycles = find_cycles(graph)
    assert not cycles, "import circles among edge/ modules (break them with a Protocol or by passing the pieces " \
                       "in):\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_find_cycles_on_synthetic_graphs() -> None:
    assert find_cycles({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) == []  # a diamond is no circle
    cycles = find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()})
    assert cycles == [["a", "b", "c", "a"]]
    assert find_cycles({"x": {"y"}, "y": {"x"}, "p": {"q"}, "q": {"p"}}) == [["p", "q", "p"], ["x", "y", "x"]]


def test_the_rule_counts_type_checking_deferred_and_relative_imports(tmp_path: Path) -> None:
    def write(rel: str, text: str) -> None:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)

    write("pkg/__init__.py", "")
    write("pkg/svc.py", "from pkg.helper import work\nimport os\n")
    write("pkg/helper.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.svc import Svc\n")
    write("pkg/sub/__init__.py", "from . import a\n")
    write("pkg/sub/a.py", "from ..lazy import f\nfrom . import b as _b\n")
    write("pkg/sub/b.py", "import pkg.svc.Svc\n")  # a name inside a module: that module
    write("pkg/lazy.py", "def f():\n    from pkg.sub.a import g\n    return g\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.svc": {"pkg.helper"}, "pkg.helper": {"pkg.svc"}, "pkg.sub": {"pkg.sub.a"},
                     "pkg.sub.a": {"pkg.lazy", "pkg.sub.b"}, "pkg.sub.b": {"pkg.svc"}, "pkg.lazy": {"pkg.sub.a"}}
    assert sorted(sorted(c[:-1]) for c in find_cycles(graph)) == [["pkg.helper", "pkg.svc"], ["pkg.lazy", "pkg.sub.a"]]
    write("pkg/helper.py", "def work():\n    pass\n")  # the helper no longer imports the service back
    write("pkg/lazy.py", "def f():\n    pass\n")
    assert find_cycles(import_graph(tmp_path, "pkg")) == []
