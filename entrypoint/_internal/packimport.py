"""The packaged build's importer: its modules from one index, ``entrypoint-runtime/modules.pack``.

Tekton's init container copies the executable into every TaskRun pod, and on a disk copying costs
per file and per directory (inodes, directory entries, the journal): ~1000 ``.pyc`` files in ~100
directories cost several times what their bytes do.  tools/build_binary.py therefore puts the
byte-code of the standard library and the dependencies into one pack, and every compiled extension
module into one directory (``lib/``, beside the shared libraries, named by its full module name:
``lib/cryptography.hazmat.bindings._rust.abi3.so``), and the pack's index names them all.  Only
directories that hold data files remain (certifi's CA file, the CEL grammar, gRPC's roots).

The bundle's ``encodings`` package, which the interpreter imports (from a file) while it starts,
before ``site``, ``-c`` code or ``-m``, in every mode of the launcher, embeds this module's
byte-code: its first lines run it (as ``_entrypoint_packimport``) and call ``install()``.  From
then on ``PackFinder``, on ``sys.meta_path`` just before the path-based finder, finds every module
of the bundle.  Nothing is unpacked: a module's code is one ``pread`` (and ``marshal.loads``) away,
where a ``.pyc`` file costs a stat, an open, an fstat, a read and a close.

Modules keep the names they had as files: ``__file__`` is ``<runtime>/site-packages/pkg/mod.pyc``
and a package's ``__path__`` is its directory, where its data files are (code that opens
``os.path.dirname(__file__)/data``, or ``pkgutil.get_data``, or ``importlib.resources.files(pkg)``
reads them from the disk).  Namespace packages (``google``) are in the index too.

A pack: ``MAGIC``, the index's length (4 bytes, little-endian), the index, then the entries.  The
index is marshal'd: ``(roots, suffixes, names, table)``: ``roots`` are the directories (relative to
the pack's) that the modules' files are named in; ``suffixes`` the extension modules' file name
endings; ``names`` the modules' names, sorted (a bisection finds one: loading a tuple of strings
costs a quarter of loading a dict of them); ``table`` three native unsigned 32-bit numbers per
name: the entry's offset (from the end of the index; an extension module's suffix number), its
size, and its flags: ``PACKAGE``, ``ZLIB``, ``EXTENSION``, ``NAMESPACE`` and the root's number
(``flags >> ROOT_SHIFT``).  An entry is a code object as ``marshal.dumps`` writes it (a ``.pyc``
file without its 16-byte header), zlib-compressed when flagged (the modules a step never
imports).

Only built-in and frozen modules are imported here (not even ``__future__``: annotations that
name other modules' types are strings): this runs before the import system can read the pack.
"""

import marshal
import posix
import sys
from _bisect import bisect_left
from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import ExtensionFileLoader

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: typing, types and collections are not built in
    from collections.abc import Iterable, Sequence
    from importlib.abc import Loader
    from types import CodeType, ModuleType
    from typing import Any

MAGIC = b"EPPACK2\n"
PACK_NAME = "modules.pack"  # beside the roots, in the runtime directory
PACKAGE = 1  # byte-code of a package: <root>/<name as a path>/__init__.pyc
ZLIB = 2  # compressed byte-code
EXTENSION = 4  # a compiled extension module: <root>/<name><suffix>, a file of its own
NAMESPACE = 8  # a namespace package: its directory is <root>/<name as a path>
ROOT_SHIFT = 4
_HEADER = len(MAGIC) + 4

Entry = tuple[int, int, int]  # offset (from the end of the index), size, flags


class PackError(ImportError):
    """The pack is missing, truncated or not a pack."""


class PackFinder:
    """Finder of the bundle's modules, and loader of those it holds as byte-code
    (``importlib.abc.MetaPathFinder`` and ``importlib.abc.InspectLoader``).  The pack stays open
    (close-on-exec) for the process's life."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            head = self._read(0, _HEADER)
            if head[: len(MAGIC)] != MAGIC:
                raise PackError(f"{path}: not a module pack of this version")
            size = int.from_bytes(head[len(MAGIC) :], "little")
            index = marshal.loads(self._read(_HEADER, size))  # noqa: S302 (the bundle's own)
        except BaseException:
            posix.close(self._fd)
            raise
        roots, suffixes, names, table = index
        self._base = _HEADER + size
        here = path.rpartition("/")[0]
        self._roots: tuple[str, ...] = tuple(f"{here}/{root}/" for root in roots)
        self._suffixes: tuple[str, ...] = suffixes
        self._names: tuple[str, ...] = names
        self._table = memoryview(table).cast("I")
        self._reader: Any = None  # get_resource_reader's class, made on first use

    def __repr__(self) -> str:
        return f"<PackFinder {self.path!r}: {len(self._names)} modules>"

    def __len__(self) -> int:
        return len(self._names)

    def _read(self, offset: int, size: int) -> bytes:
        data = posix.pread(self._fd, size, offset)
        if len(data) != size:
            raise PackError(f"{self.path}: truncated ({size} bytes at {offset}, read {len(data)})")
        return data

    def _find(self, fullname: str) -> Entry | None:
        names = self._names
        i = bisect_left(names, fullname)
        if i == len(names) or names[i] != fullname:
            return None
        table, i = self._table, 3 * i
        return table[i], table[i + 1], table[i + 2]

    def _entry(self, fullname: str) -> Entry:
        entry = self._find(fullname)
        if entry is None or entry[2] & (EXTENSION | NAMESPACE):
            raise ImportError(f"no byte-code for {fullname!r} in {self.path}", name=fullname)
        return entry

    def _origin(self, fullname: str, entry: Entry) -> tuple[str | None, str | None]:
        """The module's file and, for a package, its directory."""
        offset, _, flags = entry
        root = self._roots[flags >> ROOT_SHIFT]
        if flags & EXTENSION:
            return f"{root}{fullname}{self._suffixes[offset]}", None
        where = root + fullname.replace(".", "/")
        if flags & NAMESPACE:
            return None, where
        if flags & PACKAGE:
            return f"{where}/__init__.pyc", where
        return f"{where}.pyc", None

    # -- finder ----------------------------------------------------------------------------------

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> ModuleSpec | None:
        entry = self._find(fullname)
        if entry is None:
            return None
        origin, directory = self._origin(fullname, entry)
        flags = entry[2]
        if flags & NAMESPACE:
            # No loader and a search path: the import system makes it a namespace package.
            assert directory is not None
            spec = ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [directory]
            return spec
        if flags & EXTENSION:
            assert origin is not None
            spec = ModuleSpec(fullname, ExtensionFileLoader(fullname, origin), origin=origin)
            spec.has_location = True
            return spec
        # A loader by its methods (importlib.abc cannot be imported before the pack is served).
        loader: Loader = self  # type: ignore[assignment]
        package = directory is not None
        spec = ModuleSpec(fullname, loader, origin=origin, loader_state=entry, is_package=package)
        if directory is not None:
            spec.submodule_search_locations = [directory]
        spec.has_location = True  # __file__ is set
        spec.cached = origin  # as for a .pyc file without its source
        return spec

    def invalidate_caches(self) -> None:
        pass  # a pack does not change

    # -- loader ----------------------------------------------------------------------------------

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        state = getattr(module.__spec__, "loader_state", None)
        entry = state if isinstance(state, tuple) else self._entry(module.__name__)
        exec(self._code(entry), module.__dict__)  # noqa: S102 (the module's own code)

    def _code(self, entry: Entry) -> "CodeType":
        offset, size, flags = entry
        data = self._read(self._base + offset, size)
        if flags & ZLIB:
            import zlib

            data = zlib.decompress(data)
        code: CodeType = marshal.loads(data)  # noqa: S302 (the bundle's own byte-code)
        return code

    def get_code(self, fullname: str) -> "CodeType":
        return self._code(self._entry(fullname))

    def get_source(self, fullname: str) -> None:
        """None: byte-code only, as the bundle's .pyc files were."""
        self._entry(fullname)

    def is_package(self, fullname: str) -> bool:
        return bool(self._entry(fullname)[2] & PACKAGE)

    def get_filename(self, fullname: str) -> str:
        origin = self._origin(fullname, self._entry(fullname))[0]
        assert origin is not None
        return origin

    def get_data(self, path: str) -> bytes:
        """A data file beside a module (``pkgutil.get_data``): from the disk."""
        import _io

        with _io.FileIO(path, "r") as f:
            return f.readall()

    def get_resource_reader(self, fullname: str) -> "Any":
        """``importlib.resources`` for a package: its directory, as a ``pathlib.Path`` (so that
        ``as_file`` copies nothing), on which the directories of the packages in the index exist
        even where the disk has none (they hold no data, so the build leaves them out): pendulum
        checks that ``files("pendulum.locales") / "de"`` exists before it imports that locale."""
        entry = self._find(fullname)
        if entry is None or not entry[2] & PACKAGE:
            return None
        if self._reader is None:
            self._reader = _resource_reader_type(self)
        return self._reader(self._origin(fullname, entry)[1])

    def package_directories(self) -> "frozenset[str]":
        """The directories of the packages in the index (whether the disk has them or not)."""
        t = self._table
        entries = ((t[i], t[i + 1], t[i + 2]) for i in range(0, len(t), 3))
        origins = (self._origin(name, entry) for name, entry in zip(self._names, entries, strict=True))
        return frozenset(d for _, d in origins if d is not None)


def _resource_reader_type(finder: PackFinder) -> "Any":
    import pathlib
    from importlib.resources.readers import FileReader

    directories = {str(pathlib.PurePosixPath(d)) for d in finder.package_directories()}

    class PackPath(pathlib.PosixPath):
        """A path where the directories of the bundle's packages exist."""

        def exists(self) -> bool:
            return str(self) in directories or super().exists()

        def is_dir(self) -> bool:
            return str(self) in directories or super().is_dir()

    class PackReader(FileReader):
        """Reads module code objects from a pack file by name, one ``pread`` each."""

        def __init__(self, directory: str) -> None:
            self.path = PackPath(directory)

    return PackReader


def install(path: str) -> PackFinder:
    """Put a finder of the pack at ``path`` on ``sys.meta_path``, before the path-based finder:
    built-in and frozen modules keep precedence, files and zips on ``sys.path`` serve what the
    pack does not name."""
    finder = PackFinder(path)
    names = [getattr(f, "__name__", "") for f in sys.meta_path]
    sys.meta_path.insert(names.index("PathFinder") if "PathFinder" in names else len(names), finder)
    return finder


def write(path: str, roots: "Sequence[str]", modules: "Iterable[tuple[str, int, int, bytes]]") -> int:
    """Write a pack (tools/build_binary.py).  ``modules``: (name, root number, flags, data):
    ``data`` is marshal'd code (``flags`` may include ``PACKAGE`` and ``ZLIB``: it is then
    compressed here), an extension module's file name suffix (``EXTENSION``), or nothing
    (``NAMESPACE``).  Stored in the order of the names; the same input gives the same bytes.
    Returns the number of modules."""
    import zlib
    from array import array

    rows = sorted(modules)
    names = tuple(name for name, *_ in rows)
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"two modules of the same name: {', '.join(twice)}")
    suffixes = tuple(sorted({data.decode() for _, _, flags, data in rows if flags & EXTENSION}))
    table = array("I")
    assert table.itemsize == 4, "the reader's memoryview.cast('I') reads 32-bit numbers"
    blobs: list[bytes] = []
    offset = 0
    for _, root, flags, data in rows:
        if flags & EXTENSION:
            table.extend((suffixes.index(data.decode()), 0, flags | root << ROOT_SHIFT))
            continue
        blob = zlib.compress(data, 9) if flags & ZLIB else data
        table.extend((offset, len(blob), flags | root << ROOT_SHIFT))
        blobs.append(blob)
        offset += len(blob)
    head = marshal.dumps((tuple(roots), suffixes, names, table.tobytes()), 4)
    with open(path, "wb") as f:
        f.write(MAGIC + len(head).to_bytes(4, "little") + head)
        for blob in blobs:
            f.write(blob)
    return len(names)
