"""The layout shows the architecture: few top-level modules, small modules, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import deployer

PACKAGE = Path(deployer.__file__).parent
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_at_load(path: Path, known: set[str]) -> set[str]:
    """The deployer modules `path` imports when it is loaded: module-level imports, not those
    inside functions (imported when called) nor under `if TYPE_CHECKING:` (never at run time).
    """
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return {name for name in found if name in known}


def cycle_in(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return []


def test_no_module_is_over_400_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_deployer_has_about_ten_top_level_modules_and_packages():
    top = [p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()]
    assert len(top) <= 16, sorted(top)
    assert {"core", "aws", "release", "ops", "infra", "output", "cli", "config"} <= set(top)


def import_graph(imports_of) -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    graph = {}
    for name, path in known.items():
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        # importing a.b.c loads a and a.b first: a package's __init__ is not a cycle of its own
        graph[name] = imports_of(path, names) - {name} - parents
    return graph


def imports_anywhere(path: Path, known: set[str]) -> set[str]:
    """Every deployer module `path` imports, inside functions too (a lazy import that closes a
    cycle is still a cycle: the two modules cannot be understood apart), except under
    `if TYPE_CHECKING:`.
    """
    tree = ast.parse(path.read_text())
    hidden = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def test_no_import_cycles():
    assert cycle_in(import_graph(imports_at_load)) == []


def test_no_import_cycles_counting_imports_inside_functions():
    assert cycle_in(import_graph(imports_anywhere)) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) == []


def journal_writers() -> set[str]:
    """The modules that write a release record: call `records.write(...)` (the fenced write),
    or the adapter's `Journal.write` (only deployer.release.records may: it is the fence).
    """
    writers = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.unparse(node.func.value)
                if node.func.attr == "write" and owner.split(".")[-1] in ("records", "journal"):
                    writers.add(name)
    return writers


def test_the_loop_is_the_only_writer_of_the_journal():
    """Steps hand the loop their checkpoints (Run.checkpoint); compensation and a rollback's
    listener change are the loop's too. Exec records (`journal.write_exec`) are not releases.
    """
    assert journal_writers() == {"deployer.release.loop", "deployer.release.records"}
