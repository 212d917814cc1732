"""bot/ is layered: imports point one way (README, "Layout").

The import graph is read from the source (ast), not by importing: every ``import`` and ``from ...
import`` of a module under bot/ that names a module under bot/, at module level and inside functions
(a lazy import is still a dependency), except under ``if TYPE_CHECKING:`` (types only, never run).
Importing ``bot.a.b`` runs the package ``bot.a`` first, so it counts as importing both.
"""
from __future__ import annotations

import ast
from pathlib import Path

from knowledge_base.config import PROJECT_ROOT

BOT = PROJECT_ROOT / "bot"

# What bot/store may import from the rest of bot: leaves that import nothing of bot themselves.
STORE_MAY_IMPORT = {"bot.clock"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def bot_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(BOT.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.Module, module: str, is_package: bool):
    """(dotted name, line) of every import statement, TYPE_CHECKING blocks left out; for ``from X
    import a`` both ``X.a`` (when a is a module) and ``X`` are candidates, the caller decides."""
    package = module if is_package else module.rpartition(".")[0]

    def walk(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from walk(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield [alias.name], node.lineno
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    yield [f"{source}.{alias.name}", source], node.lineno
            yield from walk(ast.iter_child_nodes(node))

    yield from walk(tree.body)


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported bot module: line of the first such import}."""
    modules = bot_modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for candidates, line in _imported_names(tree, module, path.name == "__init__.py"):
            target = next((c for c in candidates if c in modules), None)
            if target is None:
                continue
            # bot.a.b runs bot.a first
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                name = ".".join(parts[:i])
                if name in modules and name != module and not module.startswith(name + "."):
                    edges.setdefault(name, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, {})):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def describe(graph, cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert "bot.app" in graph and "bot.store.models" in graph
    assert "bot.router" in graph["bot.app"]  # a module-level import
    assert "bot.keys" in graph["bot.events"]  # only inside a function


def test_bot_has_no_import_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in bot/: {describe(graph, cycle)}"


def test_the_store_imports_nothing_above_it():
    wrong = {f"{m} imports {n} (line {line})"
             for m, edges in import_graph().items() if m.startswith("bot.store")
             for n, line in edges.items() if not n.startswith("bot.store") and n not in STORE_MAY_IMPORT}
    assert not wrong, "bot/store may import only bot/store and " + ", ".join(sorted(STORE_MAY_IMPORT)) + \
        ":\n" + "\n".join(sorted(wrong))


def test_the_leaves_import_nothing_of_bot():
    graph = import_graph()
    for leaf in sorted(STORE_MAY_IMPORT | {"bot.messages"}):
        assert not graph[leaf], f"{leaf} imports {', '.join(sorted(graph[leaf]))}"


def test_the_handoff_desk_and_the_channels_never_import_the_router():
    wrong = {f"{m} imports bot.router (line {edges['bot.router']})"
             for m, edges in import_graph().items()
             if m.startswith(("bot.handoff.", "bot.channels.")) and "bot.router" in edges}
    assert not wrong, "\n".join(sorted(wrong))
