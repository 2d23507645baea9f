"""entrypoint/_internal/packimport.py, the packaged build's importer, on packs written here (no
build needed): each case runs in a fresh interpreter, since it changes ``sys.meta_path``."""

from __future__ import annotations

import json
import marshal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoint._internal import packimport
from tests.support.paths import REPO

ROOTS = ("stdlib", "site-packages", "lib")


def code(source: str, name: str) -> bytes:
    return marshal.dumps(compile(source, f"entrypoint-runtime/{name}.py", "exec"))


def extension_module() -> tuple[str, Path] | None:
    """A compiled extension of the development environment that nothing here imports."""
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("_csv")
    if spec is None or spec.origin is None or not spec.origin.endswith(".so"):
        return None  # built into this interpreter
    return "_csv", Path(spec.origin)


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    """A bundle's runtime directory: a pack, and beside it what is not byte-code."""
    (tmp_path / "site-packages" / "pkg").mkdir(parents=True)
    (tmp_path / "site-packages" / "pkg" / "data.txt").write_text("data")
    (tmp_path / "lib").mkdir()
    modules = [
        ("top", 0, 0, code("X = 1", "stdlib/top")),
        (
            "pkg",
            1,
            packimport.PACKAGE,
            code("import os\nHERE = os.path.dirname(__file__)", "site-packages/pkg/__init__"),
        ),
        ("pkg.cold", 1, packimport.ZLIB, code("Y = 2\n" * 200, "site-packages/pkg/cold")),
        ("pkg.sub", 1, packimport.PACKAGE | packimport.ZLIB, code("", "site-packages/pkg/sub/__init__")),
        ("pkg.sub.leaf", 1, 0, code("Z = 3", "site-packages/pkg/sub/leaf")),
        ("ns", 1, packimport.NAMESPACE, b""),
        ("ns.inner", 1, 0, code("W = 4", "site-packages/ns/inner")),
        ("runme", 0, 0, code("import sys\nprint('ran', __name__, sys.argv[1:])", "stdlib/runme")),
    ]
    ext = extension_module()
    if ext is not None:
        name, path = ext
        shutil.copyfile(path, tmp_path / "lib" / f"pkg.{name}.so")
        modules.append((f"pkg.{name}", 2, packimport.EXTENSION, b".so"))
    packimport.write(str(tmp_path / "modules.pack"), ROOTS, modules)
    return tmp_path


def run(runtime: Path, body: str) -> dict[str, object]:
    """``body`` after installing the pack, in a fresh isolated interpreter; it sets ``out``."""
    source = (
        f"import sys, json; sys.path.insert(0, {str(REPO)!r})\n"
        "from entrypoint._internal import packimport\n"
        f"finder = packimport.install({str(runtime / 'modules.pack')!r})\n"
        f"{body}\n"
        "print(json.dumps(out))"
    )
    p = subprocess.run(
        [sys.executable, "-I", "-S", "-c", source], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    result: dict[str, object] = json.loads(p.stdout.splitlines()[-1])
    return result


def test_modules_keep_the_names_and_paths_they_had_as_files(runtime: Path) -> None:
    out = run(
        runtime,
        "import top, pkg, pkg.cold, pkg.sub.leaf\n"
        "out = dict(top=[top.X, top.__file__, top.__cached__, top.__spec__.origin],\n"
        "    pkg=[pkg.__file__, pkg.__path__, pkg.HERE, pkg.__package__],\n"
        "    cold=pkg.cold.Y, leaf=[pkg.sub.leaf.Z, pkg.sub.leaf.__file__],\n"
        "    loader=type(pkg.__loader__).__name__,\n"
        "    where=[getattr(f, '__name__', type(f).__name__) for f in sys.meta_path][-2:])",
    )
    stdlib, site = f"{runtime}/stdlib", f"{runtime}/site-packages"
    assert out["top"] == [1, f"{stdlib}/top.pyc", f"{stdlib}/top.pyc", f"{stdlib}/top.pyc"]
    assert out["pkg"] == [f"{site}/pkg/__init__.pyc", [f"{site}/pkg"], f"{site}/pkg", "pkg"]
    assert out["cold"] == 2
    assert out["leaf"] == [3, f"{site}/pkg/sub/leaf.pyc"]
    assert out["loader"] == "PackFinder"
    assert out["where"] == ["PackFinder", "PathFinder"]  # after built-in and frozen modules


def test_data_files_stay_readable_where_they_are(runtime: Path) -> None:
    out = run(
        runtime,
        "import importlib.resources as r, pkgutil\n"
        "files = r.files('pkg')\n"
        "out = dict(text=files.joinpath('data.txt').read_text(),\n"
        "    get_data=pkgutil.get_data('pkg', 'data.txt').decode(),\n"
        "    path=isinstance(files, __import__('pathlib').Path),\n"
        # pkg/sub has no directory on the disk (byte-code only): it still shows as one.
        "    sub=[(files / 'sub').exists(), (files / 'sub').is_dir(), (files / 'nope').exists()])",
    )
    assert out == {"text": "data", "get_data": "data", "path": True, "sub": [True, True, False]}


def test_namespace_packages_and_extension_modules(runtime: Path) -> None:
    ext = extension_module()
    body = "import ns.inner\nout = dict(ns=[ns.inner.W, list(ns.__path__), ns.__file__])\n"
    if ext is not None:
        body += f"import pkg.{ext[0]} as e\nout['ext'] = [e.__file__, type(e.__loader__).__name__]\n"
    out = run(runtime, body)
    assert out["ns"] == [4, [f"{runtime}/site-packages/ns"], None]
    if ext is not None:
        assert out["ext"] == [f"{runtime}/lib/pkg.{ext[0]}.so", "ExtensionFileLoader"]


def test_missing_modules_reload_and_run_as_main(runtime: Path) -> None:
    out = run(
        runtime,
        "import importlib, runpy, top\n"
        "try:\n    import pkg.nothere\nexcept ModuleNotFoundError as e:\n    missing = e.name\n"
        "top.X = 5; importlib.reload(top)\n"
        "runpy.run_module('runme', run_name='__main__')\n"
        "out = dict(missing=missing, reloaded=top.X, source=finder.get_source('top'),\n"
        "    package=[finder.is_package('pkg'), finder.is_package('top')], count=len(finder))",
    )
    count = 9 if extension_module() is not None else 8
    assert out == {
        "missing": "pkg.nothere",
        "reloaded": 1,
        "source": None,
        "package": [True, False],
        "count": count,
    }


def test_a_damaged_pack_is_refused(tmp_path: Path) -> None:
    pack = tmp_path / "modules.pack"
    packimport.write(str(pack), ROOTS, [("top", 0, 0, code("X = 1", "top"))])
    data = pack.read_bytes()
    pack.write_bytes(data[:-3])
    finder = packimport.PackFinder(str(pack))
    with pytest.raises(packimport.PackError, match="truncated"):
        finder.get_code("top")
    pack.write_bytes(b"not a pack" + data[10:])
    with pytest.raises(packimport.PackError, match="not a module pack"):
        packimport.PackFinder(str(pack))


def test_writing_is_reproducible_and_refuses_duplicates(tmp_path: Path) -> None:
    modules = [("b", 0, packimport.ZLIB, code("B = 1", "b")), ("a", 1, 0, code("A = 1", "a"))]
    packimport.write(str(tmp_path / "one"), ROOTS, modules)
    packimport.write(str(tmp_path / "two"), ROOTS, reversed(modules))
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()
    with pytest.raises(ValueError, match="two modules of the same name: a"):
        packimport.write(str(tmp_path / "three"), ROOTS, [*modules, ("a", 0, packimport.EXTENSION, b".so")])
