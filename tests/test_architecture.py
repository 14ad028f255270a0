"""The shape of the package, read from the source with ``ast`` (nothing is imported).

The import graph counts every import, at module level and inside functions; imports under
``if TYPE_CHECKING:`` are left out because they never run. The rules:

- no import cycle;
- no core module imports a platform module (only ``platforms/``, the composition root
  ``app.py`` and the command line may);
- a platform module never touches the store;
- only the store imports the database driver;
- ``import queue`` is the standard library's, and ``queue/`` (runtime data) is no package.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "autopublish"

DB_DRIVERS = {"sqlite3", "sqlalchemy", "psycopg", "psycopg2", "alembic"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = source_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: the bodies of ``if TYPE_CHECKING:`` are skipped (their ``else`` is kept)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_names(module: str, path: Path) -> set[str]:
    """Dotted names this module imports at run time, absolute, as written (``from a import b`` gives ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


def _own_module(name: str) -> str | None:
    """The autopublish module an imported dotted name lands in (the longest known prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


IMPORTS = {module: imported_names(module, path) for module, path in MODULES.items()}
GRAPH = {module: {own for name in names if (own := _own_module(name)) and own != module} for module, names in IMPORTS.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan, then a path inside the component)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def connect(start: str) -> None:  # iterative Tarjan: no recursion limit to worry about
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        start = min(component)
        # breadth-first inside the component from start back to start: the shortest cycle through it
        paths = {start: [start]}
        queue_ = [start]
        cycle: list[str] = []
        while queue_ and not cycle:
            node = queue_.pop(0)
            for child in sorted(graph[node] & component):
                if child == start:
                    cycle = paths[node] + [start]
                    break
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    queue_.append(child)
        cycles.append(cycle)
    return cycles


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones() -> None:
    # daemon_runtime imports the app builder inside a function and the App type only for type checking
    assert "autopublish.app" in GRAPH["autopublish.daemon_runtime"]
    assert "autopublish.metrics" in GRAPH["autopublish.daemon_runtime"]
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlite3\nelse:\n    import json\ndef f():\n    import csv\n"
    names = {node.names[0].name for node in _runtime_nodes(ast.parse(source)) if isinstance(node, ast.Import)}
    assert names == {"json", "csv"}


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    cycles = find_cycles(GRAPH)
    for cycle in cycles:
        print("import cycle: " + " -> ".join(cycle))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def is_platform_module(module: str) -> bool:
    """A platform adapter or its helpers; the registry (``platforms``) and the interface (``platforms.base``) are not."""
    return module.startswith("autopublish.platforms.") and module != "autopublish.platforms.base"


def may_import_platforms(module: str) -> bool:
    return (is_platform_module(module) or module == "autopublish.platforms"
            or module == "autopublish.app"  # the composition root
            or module == "autopublish.cli" or module.startswith("autopublish.cli."))


def test_no_core_module_imports_a_platform_module() -> None:
    offenders = sorted(f"{module} imports {target}" for module, targets in GRAPH.items() if not may_import_platforms(module)
                       for target in targets if is_platform_module(target))
    assert not offenders, offenders


def test_a_platform_module_never_touches_the_store() -> None:
    offenders = sorted(f"{module} imports {target}" for module, targets in GRAPH.items() if is_platform_module(module)
                       for target in targets if target in ("autopublish.state", "autopublish.store") or target.startswith("autopublish.store."))
    assert not offenders, offenders


def is_store(module: str) -> bool:
    return module == "autopublish.state" or module == "autopublish.store" or module.startswith("autopublish.store.")


def test_only_the_store_imports_the_database_driver() -> None:
    offenders = sorted(f"{module} imports {name}" for module, names in IMPORTS.items() if not is_store(module)
                       for name in names if name.split(".")[0] in DB_DRIVERS)
    assert not offenders, offenders
    assert any(name.split(".")[0] in DB_DRIVERS for module, names in IMPORTS.items() if is_store(module) for name in names), \
        "the store module was not found: this test would pass for the wrong reason"


def test_queue_is_the_standard_librarys() -> None:
    assert not (ROOT / "queue" / "__init__.py").exists(), "queue/ is runtime data and must not become a package"
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    spec = importlib.util.find_spec("queue")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().is_relative_to(stdlib), spec.origin
    # As a script run from the checkout sees it (the working directory comes first on sys.path):
    origin = subprocess.run([sys.executable, "-c", "import queue; print(queue.__file__)"], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60).stdout.strip()
    assert Path(origin).resolve().is_relative_to(stdlib), origin



def test_own_modules_are_imported_by_name_not_by_string() -> None:
    """Imports from strings hide edges from this graph (the CLI once re-registered commands that way); only the platform
    registry imports by name from a table, so that a platform's libraries load only when a channel uses it."""
    offenders = []
    for module, path in MODULES.items():
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name in ("import_module", "__import__") and module != "autopublish.platforms":
                    offenders.append(f"{module} line {node.lineno}")
    assert not offenders, offenders
