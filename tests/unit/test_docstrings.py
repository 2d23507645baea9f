"""Every public class and protocol of the package says in one sentence what it is for."""

from __future__ import annotations

import ast

from tests.support.paths import PACKAGE


def test_every_public_class_has_a_docstring() -> None:
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and not ast.get_docstring(node)
            ):
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.name}")
    assert not missing, "\n".join(missing)
