"""The package's imports form no cycle, counting those inside functions (a cycle makes import
order matter, and a lazy import is a cycle waiting for someone to hoist it)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import PACKAGE


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _runtime_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node that can run, skipping ``if TYPE_CHECKING:`` blocks (annotations only)."""
    out: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        if _is_type_checking(child):
            continue
        out.append(child)
        out += _runtime_nodes(child)
    return out


def _imports(tree: ast.Module, modules: set[str]) -> set[str]:
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules
            # ``from pkg import mod`` imports the module ``pkg.mod`` (the package is loaded first anyway).
            found |= submodules if len(submodules) == len(node.names) else {node.module, *submodules}
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph = {}
    for path in paths:
        name = _module_name(path)
        # A module's own packages are loaded before it, always: not an edge of a cycle.
        graph[name] = {
            m for m in _imports(ast.parse(path.read_text()), modules) if not name.startswith(m + ".")
        }
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
