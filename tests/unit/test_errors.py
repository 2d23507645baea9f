"""The exception tree drawn in entrypoint/errors.py is the tree the package has."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import entrypoint
from entrypoint import errors
from entrypoint.errors import EntrypointError

# Raised and handled by the import system, which expects an ImportError.
OUTSIDE_THE_TREE = {"PackError"}


def _modules() -> list[str]:
    # Not __main__ (importing it runs the command).
    names = [i.name for i in pkgutil.walk_packages(entrypoint.__path__, "entrypoint.")]
    return [n for n in names if not n.endswith("__main__")]


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        if name.startswith("entrypoint.testing"):
            continue  # the doubles' own errors never reach a user
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name:
                found[attr] = obj
    return found


def _drawing() -> dict[str, str]:
    """Each class of the drawing, and its parent in it."""
    doc = errors.__doc__ or ""
    tree = doc[doc.index("EntrypointError\n") :].split("\n\n")[0].splitlines()
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in tree:
        match = re.match(r"^([\s│├└─]*)(\w+)", line)
        assert match, line
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_every_exception_class_derives_from_the_one_base() -> None:
    classes = _exception_classes()
    assert len(classes) > 30
    strays = [
        n for n, c in classes.items() if not issubclass(c, EntrypointError) and n not in OUTSIDE_THE_TREE
    ]
    assert not strays, strays


def test_the_drawing_names_every_class_with_its_true_parent() -> None:
    classes = _exception_classes()
    drawn = _drawing()
    public = {
        n for n in classes if not n.startswith("_") and n not in OUTSIDE_THE_TREE and n != "EntrypointError"
    }
    assert sorted(public - set(drawn)) == []
    for name, parent in drawn.items():
        assert name in classes, f"the drawing names {name}, which does not exist"
        bases = {b.__name__ for b in classes[name].__bases__}
        assert parent in bases, f"{name} derives from {sorted(bases)}, the drawing says {parent}"


def test_no_two_exception_classes_share_a_name() -> None:
    seen: dict[str, str] = {}
    for module_name in _modules():
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module_name:
                assert name not in seen, f"{name} is defined in {seen.get(name)} and {module_name}"
                seen[name] = module_name
