"""``make binary``: the self-contained executable, ``dist/bin/``.

Layout (copy ``dist/bin/`` anywhere and it keeps working; ``entrypoint init``/``cp`` copy both)::

    dist/bin/entrypoint                   a tiny static launcher (tools/launcher.c)
    dist/bin/entrypoint-runtime/
        ld-linux-x86-64.so.2              glibc's dynamic loader, run explicitly by the launcher
        lib/                              the shared libraries the interpreter and extensions need,
                                          and every extension module (named by its module name)
        python, python._pth               Debian's CPython 3.11 and its isolated sys.path
        modules.pack                      the byte-code (no sources) of the standard library and
                                          the dependencies, in one file, and an index of every
                                          module (``pack_byte_code``)
        stdlib/encodings/__init__.pyc     the one module imported before the pack can be read; it
                                          installs the pack's importer (``install_importer``)
        site-packages/                    data files (CA roots, the CEL grammar) in their packages'
                                          directories
        site-packages.zip                 packages that read their data through importlib.resources
                                          (tzdata: ~600 files), and the distributions' metadata
        LICENSES, MANIFEST                Debian copyright files; what went in, with versions

Why not PyInstaller: a onedir build starts a ``/bin/true`` step in ~60 ms (its bootloader unpacks
nothing, but imports through its archive reader and sets ``LD_LIBRARY_PATH``/``_PYI_*`` variables
that leak into the step's child), against ~20 ms for a plain interpreter directory.  Why Debian's
interpreter: it is built without RPATH and linked only against glibc, zlib and expat, and
``apt-get download`` fetches it, with the glibc it was built for, reproducibly on any bookworm
machine (only packages from bookworm are taken, and libc6 must be 2.36).  Wheels are manylinux
cp311 binaries (compatible with Debian's 3.11.2) of the versions in the project's one lock,
``requirements.lock`` (tools/lock.py), each checked against the digests it records: the bundle
runs what the tests ran, and the build stops if the development environment differs from the
lock.  The project's own wheel is built without network or build isolation, by the locked build
backend in a throwaway virtual environment.

Downloads are cached in ``build/binary/`` (``.deb`` files and wheels, both checked at every
build): a rebuild needs no network.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/lock.py, however this is loaded
import lock as lockfile
from lock import Pin

from entrypoint._internal import packimport  # the pack's format (and, embedded, its importer)

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "binary"
DIST = REPO / "dist" / "bin"
RUNTIME = "entrypoint-runtime"  # tools/launcher.c has the same name
LOADER = "ld-linux-x86-64.so.2"
PROJECT = "signed-entrypoint"
WHEELS = BUILD / "wheels"
LOCK = lockfile.LOCK
LOCK_COMMAND = lockfile.RENEW_COMMAND

# Debian bookworm packages: the interpreter, its standard library, and the C libraries that it,
# the extension modules we keep and the wheels' extensions link against.  A library that a kept
# binary needs and none of these provides stops the build (see ``copy_libraries``).
DEBS = (
    "libc6",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "zlib1g",
    "libexpat1",
    "libssl3",  # _ssl, _hashlib
    "libffi8",  # _ctypes (selfexec.make_undumpable)
    "libbz2-1.0",
    "liblzma5",
    "libuuid1",
    "libstdc++6",  # grpcio, protobuf's upb, google-re2
    "libgcc-s1",  # cryptography's and pendulum's Rust code; glibc's thread cancellation
)

# Standard library parts no step can reach.  Debian already ships test/, tkinter, idlelib,
# lib2to3 and distutils in separate packages.
STDLIB_DROP = {
    "ensurepip", "venv", "pydoc_data", "sqlite3", "dbm", "curses", "turtledemo", "idlelib",
    "tkinter", "lib2to3", "distutils", "test", "site-packages", "dist-packages",
    "turtle.py", "EXTERNALLY-MANAGED", "sitecustomize.py", "architecture.rst", "LICENSE.txt",
}  # fmt: skip
# Extension modules that need libraries we do not ship, that only serve CPython's own tests, that
# decode East Asian legacy encodings (1 MB) which nothing in a step's entrypoint reads, or that
# only speed up what nothing of ours uses (decimal falls back to _pydecimal; lzma and bz2 serve
# archives; the three with their libraries take 1 MB).  Nor does anything of ours (or of the
# dependencies) import multiprocessing, resource, termios or cProfile: each file costs Tekton's
# init container 0.1-1 ms on a disk (``pack_byte_code``).  mmap stays: prometheus-client (the
# controller's metrics, never a step's) imports it when loaded.
DYNLOAD_DROP = re.compile(
    r"^(_test\w*|_ctypes_test|xx\w*|_xxsubinterpreters|_xxtestfuzz|_curses\w*|_dbm|_gdbm|_sqlite3"
    r"|readline|nis|ossaudiodev|audioop|_crypt|_tkinter|spwd|_codecs_\w+|_multibytecodec"
    r"|_decimal|_lzma|_bz2|_multiprocessing|_posixshmem|resource|termios|_lsprof)\."
)
# Optional extras that a dependency would pick up silently if they were present (httpx imports
# zstandard and brotli when installed): nothing of ours uses them.  cffi and pycparser only build
# C bindings: cryptography's compiled bindings need no more than the _cffi_backend module.
PACKAGES_DROP = {"zstandard", "brotli", "brotlicffi", "grpc_tools", "h2", "socksio", "bin", "cffi",
                 "pycparser"}  # fmt: skip
# Packages whose data files are read through importlib.resources or pkgutil, which read zips too:
# they stay in a zip (tzdata's data are ~600 files), with the distributions' metadata.
ZIP_SAFE_DATA = {"tzdata", "lark"}
# The byte-code pack and its importer, entrypoint/_internal/packimport.py (``install_importer``).
PACK = "modules.pack"
PACK_ROOTS = ("stdlib", "site-packages", "lib")  # where the pack's modules are named
FINDER = "_entrypoint_packimport"
# The one module imported before the pack can be read: it stays a file.
BEFORE_PACK = {"stdlib/encodings/__init__.pyc"}


def log(message: str) -> None:
    print(f"build_binary: {message}", flush=True)


def run(cmd: Sequence[str | Path], cwd: Path | None = None, quiet: bool = False) -> str:
    """Run a build command; its output is shown only when it fails (or when not quiet)."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"build_binary: failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    if not quiet and proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    return proc.stdout


# -- Debian packages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deb:
    """A downloaded Debian package, as checked: its control fields, digest and apt suite."""

    path: Path
    package: str
    version: str
    architecture: str
    sha256: str
    suite: str

    def line(self) -> str:
        return f"{self.package} {self.version} {self.architecture} sha256:{self.sha256} ({self.suite})"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def apt_candidates(packages: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Package -> (candidate version, suite) from the machine's apt lists, failing unless every
    candidate comes from Debian bookworm (its point releases, -updates or -security): the runtime
    is bookworm's, and the wheels are chosen for its glibc 2.36 (``lock.BUNDLE_PLATFORM``)."""
    # Which suite (the Release file's codename) each Packages file belongs to.
    suites: dict[str, str] = {}
    key = ""
    for line in run(["apt-cache", "policy"], quiet=True).splitlines():
        words = line.split()
        if len(words) >= 4 and words[0].isdigit() and words[-1] == "Packages":
            key = " ".join(words[1:])
        elif words[:1] == ["release"] and key:
            fields = dict(f.split("=", 1) for f in words[1].split(",") if "=" in f)
            suites[key] = f"{fields.get('o', '?')} {fields.get('n', '?')}"
            key = ""
    found: dict[str, tuple[str, str]] = {}
    package, candidate, current = "", "", ""
    for line in run(["apt-cache", "policy", *packages], quiet=True).splitlines():
        words = line.split()
        if line and not line.startswith(" ") and line.endswith(":"):
            package, candidate, current = line[:-1], "", ""
        elif words[:1] == ["Candidate:"]:
            candidate = words[1]
        elif (len(words) == 2 and words[1].lstrip("-").isdigit()) or words[:1] == ["***"]:
            current = words[-2]
        elif current == candidate and len(words) >= 4 and words[-1] == "Packages":
            suite = suites.get(" ".join(words[1:]), "?")
            origin, _, codename = suite.partition(" ")
            if origin == "Debian" and (codename == "bookworm" or codename.startswith("bookworm-")):
                found.setdefault(package, (candidate, codename))
    wrong = [p for p in packages if p not in found]
    if wrong:
        raise SystemExit(
            f"build_binary: apt offers no Debian bookworm version of {' '.join(wrong)} "
            "(`apt-cache policy` shows what it offers): the runtime is bookworm's (glibc 2.36, "
            "CPython 3.11); build on a bookworm machine, or add bookworm to apt's sources"
        )
    return found


def deb_fields(path: Path) -> tuple[str, str, str]:
    out = run(["dpkg-deb", "-f", path, "Package", "Version", "Architecture"], quiet=True)
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return fields.get("Package", ""), fields.get("Version", ""), fields.get("Architecture", "")


def fetch_debs() -> list[Deb]:
    """The .deb files of DEBS, downloaded once into build/binary/debs/ (apt-get download needs
    no root, only package lists; a fresh machine may have none, so update them only then).

    Versions are not pinned (a Debian point release or security update replaces them), but what
    is downloaded must come from bookworm (``apt_candidates``); ``debs/ORIGINS`` records each
    file's digest and suite as checked, and every build checks the cache against it."""
    cache = BUILD / "debs"
    cache.mkdir(parents=True, exist_ok=True)
    origins_file = cache / "ORIGINS"
    origins: dict[str, tuple[str, str]] = {}  # file name -> (sha256, suite)
    if origins_file.exists():
        for line in origins_file.read_text().splitlines():
            name, digest, suite = line.split()
            origins[name] = (digest, suite)

    def cached(pkg: str) -> list[Path]:
        return sorted(p for p in cache.glob(f"{pkg}_*.deb") if p.name in origins)

    for stray in cache.glob("*.deb"):
        if stray.name not in origins:  # from an interrupted or unchecked download
            stray.unlink()
    missing = [p for p in DEBS if not cached(p)]
    if missing:
        if shutil.which("apt-get") is None:
            raise SystemExit("build_binary: apt-get is needed (the runtime is Debian bookworm's)")
        try:
            wanted = apt_candidates(missing)
        except SystemExit:
            if os.geteuid() != 0:
                raise
            log("no bookworm candidates in the apt lists; apt-get update, then again")
            run(["apt-get", "update"], quiet=True)
            wanted = apt_candidates(missing)
        log(f"apt-get download {' '.join(missing)}")
        run(["apt-get", "download", *(f"{p}={wanted[p][0]}" for p in missing)], cwd=cache, quiet=True)
        for pkg in missing:
            new = [p for p in cache.glob(f"{pkg}_*.deb") if p.name not in origins]
            fields = deb_fields(new[0]) if len(new) == 1 else None
            if fields != (pkg, wanted[pkg][0], "amd64"):
                raise SystemExit(
                    f"build_binary: apt-get download {pkg}={wanted[pkg][0]} gave {new}: {fields}"
                )
            origins[new[0].name] = (sha256_of(new[0]), wanted[pkg][1])
        origins_file.write_text("".join(f"{n} {d} {s}\n" for n, (d, s) in sorted(origins.items())))
    debs = []
    for pkg in DEBS:
        found = cached(pkg)
        if len(found) != 1:
            raise SystemExit(f"build_binary: expected one {pkg}_*.deb in {cache}, found {found}")
        digest, suite = origins[found[0].name]
        if sha256_of(found[0]) != digest:
            raise SystemExit(
                f"build_binary: {found[0]} changed since it was downloaded and checked "
                f"(sha256 {digest} in {origins_file}); delete it to download it again"
            )
        package, version, arch = deb_fields(found[0])
        debs.append(Deb(found[0], package, version, arch, digest, suite))
    libc = next(d for d in debs if d.package == "libc6")
    if not libc.version.startswith("2.36-"):
        raise SystemExit(
            f"build_binary: libc6 is {libc.version}, not bookworm's 2.36: the wheels are chosen for "
            "glibc 2.36 and older (manylinux_2_36), so they could need a newer one"
        )
    return debs


def extract_debs(debs: Sequence[Deb]) -> Path:
    root = BUILD / "debroot"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs:
        run(["dpkg-deb", "-x", deb.path, root])
    return root


# -- ELF dependencies -----------------------------------------------------------------------------


def elf_needed(path: Path) -> list[str] | None:
    """DT_NEEDED entries of a 64-bit little-endian ELF file, or None if it is not one."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []  # vaddr, offset, filesz
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []
    needed: list[int] = []
    strtab = None
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 1:
            needed.append(val)
        elif tag == 5:
            strtab = val
    if strtab is None:
        return []
    base = next(off + strtab - va for va, off, size in loads if va <= strtab < va + size)
    return [data[base + n : data.index(b"\0", base + n)].decode() for n in needed]


def copy_libraries(debroot: Path, binaries: Iterable[Path], libdir: Path) -> list[str]:
    """Copy into ``libdir`` every shared library the binaries need, transitively."""
    search = [debroot / "lib/x86_64-linux-gnu", debroot / "usr/lib/x86_64-linux-gnu"]
    libdir.mkdir(parents=True, exist_ok=True)
    todo = [name for b in binaries for name in (elf_needed(b) or [])]
    done: set[str] = {LOADER}
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        src = next((d / name for d in search if (d / name).exists()), None)
        if src is None:
            raise SystemExit(f"build_binary: no package in DEBS provides {name}; add it there")
        shutil.copyfile(src, libdir / name)  # follows the soname symlink
        todo.extend(elf_needed(src) or [])
    return sorted(done - {LOADER})


# -- Python packages ------------------------------------------------------------------------------


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(pin: Pin) -> str:
    return f"{pin.name}=={pin.version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(pin.hashes))


def wheel_pin(wheel: Path) -> Pin:
    """A wheel as a pin of its own digest (the project's own wheel, built here)."""
    name, version = wheel.name.split("-")[:2]
    return Pin(canonical(name), version, frozenset({sha256_of(wheel)}))


def closure(roots: Iterable[str], pins: dict[str, Pin]) -> list[Pin]:
    """The locked pins that ``roots`` need on the bundle's platform, from the installed metadata
    of the development environment (which came from the same lock): a dependency the lock lacks
    stops the build."""
    from packaging.requirements import Requirement

    wanted: dict[str, Pin] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonical(req.name)
        if name in wanted:
            continue
        if name not in pins:
            raise SystemExit(
                f"build_binary: {req.name} is needed but not in {LOCK.name}: run `{LOCK_COMMAND}`"
            )
        wanted[name] = pins[name]
        todo += [Requirement(r) for r in importlib.metadata.requires(req.name) or []]
    return sorted(wanted.values(), key=lambda p: p.name)


def read_lock() -> dict[str, list[Pin]]:
    """From the one lock: ``build``, the build backend for the project's own wheel, and
    ``runtime``, every wheel the bundle installs."""
    try:
        pins = lockfile.check()
    except lockfile.LockError as exc:
        raise SystemExit(f"build_binary: {exc}") from None
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {
        "build": closure(project["build-system"]["requires"], pins),
        "runtime": closure(project["project"]["dependencies"], pins),
    }


def requirements(name: str, pins: Iterable[Pin]) -> Path:
    path = BUILD / name
    path.write_text("".join(requirement(p) + "\n" for p in pins))
    return path


def cached_wheels(pin: Pin) -> list[Path]:
    return [w for w in WHEELS.glob("*.whl") if canonical(w.name.split("-")[0]) == pin.name
            and w.name.split("-")[1] == pin.version]  # fmt: skip


def verify_wheels(pins: Sequence[Pin]) -> None:
    """Every locked wheel is in build/binary/wheels/ with one of the digests the lock records."""
    for pin in pins:
        wheels = cached_wheels(pin)
        if not wheels:
            raise SystemExit(f"build_binary: no wheel of {pin.name}=={pin.version} in {WHEELS} after the "
                             "download (the index no longer serves the locked file?)")  # fmt: skip
        for path in wheels:
            digest = sha256_of(path)
            if digest not in pin.hashes:
                raise SystemExit(
                    f"build_binary: {path} has sha256 {digest}, which {LOCK.name} does not record for "
                    f"{pin.name}=={pin.version}.  Delete it to download it again; if the index serves "
                    f"these bytes, find out why before running `{LOCK_COMMAND}`"
                )


def fetch_wheels(pins: Sequence[Pin], platform: bool) -> None:
    """Download the locked wheels missing from the cache (pip checks their digests, in
    hash-checking mode), then check every one of them."""
    missing = [p for p in pins if not cached_wheels(p)]
    if missing:
        log(f"downloading {len(missing)} locked wheels into build/binary/wheels")
        with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--require-hashes", "-r", str(requirements("download.txt", missing)), "-d", tmp,
                 *(lockfile.BUNDLE_PLATFORM if platform else [])],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(
                    f"build_binary: pip could not download the wheels of {LOCK.name} "
                    "with their locked digests (see above)"
                )
            WHEELS.mkdir(parents=True, exist_ok=True)
            for wheel in Path(tmp).glob("*.whl"):
                wheel.replace(WHEELS / wheel.name)
    verify_wheels(pins)


def check_development_versions(pins: Sequence[Pin]) -> None:
    """The bundle runs what the tests ran: the development environment has the locked versions."""
    installed = {canonical(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions() if d.metadata["Name"]}  # fmt: skip
    differ = [f"{p.name} {p.version} (installed: {installed.get(p.name, 'nothing')})"
              for p in pins if installed.get(p.name) != p.version]  # fmt: skip
    if differ:
        raise SystemExit(f"build_binary: {LOCK.name} pins versions that differ from this "
                         f"environment's: {', '.join(differ)}; reinstall it from the lock "
                         "(`rm -rf .venv && make venv`)")  # fmt: skip


def build_backend(pins: Sequence[Pin]) -> Path:
    """A throwaway virtual environment (build/binary/build-env/) holding exactly the locked build
    backend, installed from checked wheels; the project's wheel is built in it without build
    isolation, so no build runs code fetched from the network."""
    env = BUILD / "build-env"
    python = env / "bin" / "python"
    stamp = env / "locked"
    wanted = "".join(requirement(p) + "\n" for p in pins)
    if not (stamp.exists() and stamp.read_text() == wanted and python.exists()):
        shutil.rmtree(env, ignore_errors=True)
        run([sys.executable, "-m", "venv", "--without-pip", env], quiet=True)
        run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-index",
             "--find-links", WHEELS, "--require-hashes", "-r", requirements("build.txt", pins)],
            quiet=True)  # fmt: skip
        stamp.write_text(wanted)
    return python


def build_own_wheel(backend: Path) -> Path:
    """The project's wheel, built offline with the locked backend from a clean copy of its
    sources (an in-tree build would reuse whatever an earlier build left in build/lib)."""
    src, own = BUILD / "own-src", BUILD / "own-wheel"
    for d in (src, own):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(
        REPO / "entrypoint", src / "entrypoint", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, src / name)
    run([sys.executable, "-m", "pip", "--python", backend, "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--check-build-dependencies", "-w", own, src], quiet=True)  # fmt: skip
    shutil.rmtree(src)
    (wheel,) = own.glob("*.whl")
    return wheel


def install_packages(lock: dict[str, list[Pin]]) -> Path:
    """The locked runtime wheels (checked) and the project's own wheel into build/binary/site,
    offline and in pip's hash-checking mode: a dependency missing from the lock stops the build."""
    check_development_versions([*lock["build"], *lock["runtime"]])
    fetch_wheels(lock["build"], platform=False)
    fetch_wheels(lock["runtime"], platform=True)
    own = wheel_pin(build_own_wheel(build_backend(lock["build"])))
    site = BUILD / "site"
    shutil.rmtree(site, ignore_errors=True)
    reqs = requirements("install.txt", [*lock["runtime"], own])
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "--only-binary=:all:",
         "--no-compile", "--no-index", "--find-links", str(BUILD / "own-wheel"), "--find-links", str(WHEELS),
         "--require-hashes", "-r", str(reqs), *lockfile.BUNDLE_PLATFORM],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"build_binary: installing the locked wheels failed (see above); if the project's "
                         f"dependencies changed, run `{LOCK_COMMAND}`")  # fmt: skip
    for name in PACKAGES_DROP:
        shutil.rmtree(site / name, ignore_errors=True)
        for info in site.glob(f"{name}-*.dist-info"):
            shutil.rmtree(info)
    # Test doubles (the Workload API and Kubernetes API servers) are for tests, not for steps.
    shutil.rmtree(site / "entrypoint" / "testing")
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and path.name in ("__pycache__", "tests", "test"):
            shutil.rmtree(path)
        elif path.suffix in (".pyi", ".h", ".c", ".cc", ".pyx", ".pxd", ".pxi") or path.name == "py.typed":
            path.unlink()
    return site


# -- Assembly -------------------------------------------------------------------------------------


def copy_stdlib(debroot: Path, out: Path) -> Path:
    src = debroot / "usr/lib/python3.11"
    stdlib = out / "stdlib"
    dropped = {*STDLIB_DROP, "lib-dynload"}
    shutil.copytree(src, stdlib, symlinks=True, ignore=lambda _, names: [n for n in names if n in dropped])
    dynload = out / "lib-dynload"
    dynload.mkdir()
    for ext in sorted((src / "lib-dynload").iterdir()):
        if not DYNLOAD_DROP.match(ext.name):
            shutil.copyfile(ext, dynload / ext.name)
    for link in [p for p in stdlib.rglob("*") if p.is_symlink()]:
        link.unlink()  # Debian points a few at /etc (sitecustomize): nothing of ours
    return stdlib


def strip(paths: Iterable[Path]) -> None:
    """Drop the symbol tables some wheels ship (~5 MB).  Required (binutils; installed as root when
    missing, as gcc is for the launcher), so that the same inputs always give the same bundle."""
    tool = shutil.which("strip")
    if tool is None:
        apt_install(["binutils"])
        tool = shutil.which("strip") or "strip"
    for path in paths:
        run([tool, "--strip-unneeded", path])


def interpreter(runtime: Path) -> list[str]:
    return [str(runtime / LOADER), "--library-path", str(runtime / "lib"), "--inhibit-cache",
            str(runtime / "python")]  # fmt: skip


def compile_pyc(runtime: Path, dirs: Sequence[Path]) -> None:
    """Byte-code for everything, in advance and without sources: a read-only root cannot cache
    it, a step would otherwise compile its imports at every start, and sources would add 17 MB.
    Unchecked hash-based .pyc files do not depend on modification times, which a copy (Tekton's
    init container) does not keep; the legacy layout (``mod.pyc`` beside ``mod.py``) is the one
    CPython imports without a source."""
    # Paths in tracebacks name the bundle, not this build's staging directory.
    run([*interpreter(runtime), "-m", "compileall", "-q", "-b", "-j", "0", "--invalidation-mode",
         "unchecked-hash", "-s", str(runtime), "-p", RUNTIME, *map(str, dirs)], quiet=True)  # fmt: skip


def zip_tree(tree: Path, archive: Path) -> None:
    """A tree of byte-code and data files as one compressed zip (sources left out), with fixed
    timestamps so that the same inputs give the same bytes."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(tree.rglob("*")):
            if path.suffix == ".py" and path.with_suffix(".pyc").exists():
                continue
            name = path.relative_to(tree).as_posix()
            # Directory entries too: zipimport recognises a namespace package portion by them.
            info = zipfile.ZipInfo(name + "/" if path.is_dir() else name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o40755 if path.is_dir() else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, b"" if path.is_dir() else path.read_bytes())
    shutil.rmtree(tree)


def top_name(entry: Path) -> str:
    return entry.name if entry.is_dir() else entry.name.split(".", 1)[0]


def is_namespace(entry: Path) -> bool:
    return entry.is_dir() and not any((entry / f"__init__.{ext}").exists() for ext in ("py", "pyc"))


def module_name(relative: Path) -> tuple[str, bool]:
    """The module a byte-code file under a path entry holds, and whether it is a package."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def zip_cold_data(runtime: Path) -> list[str]:
    """The packages of ZIP_SAFE_DATA and the distributions' metadata into ``site-packages.zip``:
    everything else is byte-code for the pack, or files that stay where they are."""
    tree = runtime / "site-packages"
    cold = runtime / "site-packages.cold"
    for entry in sorted(tree.iterdir()):
        zipped = top_name(entry) in ZIP_SAFE_DATA and not any(entry.rglob("*.so"))
        if zipped or entry.name.endswith(".dist-info"):
            cold.mkdir(exist_ok=True)
            entry.rename(cold / entry.name)
    zip_tree(cold, runtime / "site-packages.zip")
    # The pack's index names every other module; the interpreter finds encodings in stdlib/.
    return ["stdlib", "site-packages.zip"]


def pack_byte_code(runtime: Path, hot: set[str]) -> tuple[int, int, int]:
    """All byte-code under stdlib/ and site-packages/ (but BEFORE_PACK) into one file, PACK, and
    every compiled extension module into lib/ (``lib/<module name><suffix>``), all named by
    PACK's index and found by entrypoint/_internal/packimport.py (which ``encodings`` installs:
    ``install_importer``).

    On a disk, Tekton's init container pays for every file and directory it copies (0.1-1 ms
    each on this project's VM, depending on the journal's state, against ~0.3 ms per MB): ~1000
    small files in ~100 directories cost it several times what their bytes do.  Reading a module
    from the pack is one pread instead of FileFinder's stat, open, fstat, read and close.  The
    modules of ``hot`` packages (what a plain or signed step imports, and ``init``) are stored as
    they are; the rest (~70%: CEL, gRPC's helpers, HTTP, most of the standard library) is
    compressed, as the zips held it.

    What is neither byte-code nor an extension (data files) stays in its package's directory,
    which is the package's ``__path__``; directories left empty are removed (the importer's
    ``importlib.resources`` still shows the directories of the packages it names).  Returns the
    number of modules stored as they are, compressed, and of extension modules."""
    rows: list[tuple[str, int, int, bytes]] = []
    lib = PACK_ROOTS.index("lib")
    sources = [("stdlib", runtime / "stdlib"), ("site-packages", runtime / "site-packages"),
               ("lib-dynload", runtime / "lib-dynload")]  # fmt: skip
    namespaces: list[tuple[int, str]] = []
    for root_name, root in sources:
        number = PACK_ROOTS.index(root_name) if root_name in PACK_ROOTS else lib
        namespaces += [
            (number, ".".join(d.relative_to(root).parts)) for d in root.rglob("*") if is_namespace(d)
        ]
        for so in sorted(root.rglob("*.so")):
            relative = so.relative_to(root)
            stem, suffix = so.name.split(".", 1)
            name = ".".join((*relative.parent.parts, stem))
            so.rename(runtime / "lib" / (name + "." + suffix))
            rows.append((name, lib, packimport.EXTENSION, ("." + suffix).encode()))
        for pyc in sorted(root.rglob("*.pyc")):
            relative = pyc.relative_to(root)
            if f"{root_name}/{relative.as_posix()}" in BEFORE_PACK:
                continue
            name, package = module_name(relative)
            data = pyc.read_bytes()
            if data[:4] != importlib.util.MAGIC_NUMBER or data[4:8] != b"\1\0\0\0":
                raise SystemExit(f"build_binary: {pyc} is not unchecked-hash byte-code of this Python")
            flags = packimport.PACKAGE if package else 0
            if name.split(".")[0] not in hot:
                flags |= packimport.ZLIB
            rows.append((name, number, flags, data[16:]))
            pyc.unlink()
        for source in root.rglob("*.py"):
            source.unlink()  # compiled and packed above (compileall fails on what it cannot compile)
    names = {name for name, *_ in rows}
    for number, name in namespaces:  # those that hold modules: the dirs of data files are not
        if any(n.startswith(name + ".") for n in names):
            rows.append((name, number, packimport.NAMESPACE, b""))
    try:
        packimport.write(str(runtime / PACK), PACK_ROOTS, rows)
    except ValueError as exc:  # an extension module and byte-code of the same name
        raise SystemExit(f"build_binary: {exc}") from None
    for _, root in sources:
        for d in sorted([root, *root.rglob("*")], reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    code = [flags for _, _, flags, _ in rows if not flags & (packimport.EXTENSION | packimport.NAMESPACE)]
    raw = sum(1 for flags in code if not flags & packimport.ZLIB)
    return raw, len(code) - raw, sum(1 for _, _, flags, _ in rows if flags & packimport.EXTENSION)


def install_importer(runtime: Path, stdlib: Path) -> None:
    """Make the standard library's ``encodings`` package install the pack's importer first.

    The interpreter imports ``encodings`` while it starts, in every mode (before ``site``, ``-c``
    code, ``-m``, whether the launcher runs the entrypoint or the bare interpreter for a helper)
    and from a file: so a few lines after its docstring run the importer's byte-code, compiled
    above and embedded in them (no file of its own to open at every start), and install it
    before ``encodings`` imports anything else."""
    finder = stdlib / f"{FINDER}.pyc"
    code = finder.read_bytes()[16:]
    finder.unlink()
    finder.with_suffix(".py").unlink()
    encodings = stdlib / "encodings" / "__init__.py"
    source = encodings.read_text()
    docstring = ast.parse(source).body[0]
    if not (isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)):
        raise SystemExit(f"build_binary: {encodings} no longer starts with its docstring")
    lines = source.splitlines(keepends=True)
    assert docstring.end_lineno is not None
    prologue = (
        "\n# Added by signed-entrypoint's tools/build_binary.py: the bundle's byte-code is one file,\n"
        f"# {PACK}, served from here on by entrypoint/_internal/packimport.py (its byte-code).\n"
        "def _entrypoint_pack():\n"
        "    import marshal, sys\n"
        f"    module = sys.modules[{FINDER!r}] = type(sys)({FINDER!r})\n"
        f"    exec(marshal.loads({code!r}), module.__dict__)\n"
        f"    module.install(__file__.rsplit('/', 3)[0] + '/{PACK}')\n"
        "_entrypoint_pack()\n"
        "del _entrypoint_pack\n"
    )
    encodings.write_text("".join([*lines[: docstring.end_lineno], prologue, *lines[docstring.end_lineno :]]))
    compile_pyc(runtime, [encodings])


def assemble(stage: Path, debroot: Path, site: Path) -> list[str]:
    runtime = stage / RUNTIME
    runtime.mkdir(parents=True)
    shutil.copyfile(debroot / "usr/bin/python3.11", runtime / "python")
    shutil.copyfile(debroot / "lib/x86_64-linux-gnu" / LOADER, runtime / LOADER)
    (runtime / "python").chmod(0o755)
    (runtime / LOADER).chmod(0o755)
    stdlib = copy_stdlib(debroot, runtime)
    packages = runtime / "site-packages"
    shutil.copytree(site, packages)
    extensions = sorted(runtime.rglob("*.so"))
    strip(p for p in extensions if "lib-dynload" not in p.parts)
    libs = copy_libraries(debroot, [runtime / "python", *extensions], runtime / "lib")
    shutil.copyfile(REPO / "entrypoint" / "_internal" / "packimport.py", stdlib / f"{FINDER}.py")
    compile_pyc(runtime, [stdlib, packages])
    install_importer(runtime, stdlib)
    # Until pack_byte_code, the sources stay, everything is a directory and the pack is empty.
    (runtime / "python._pth").write_text("stdlib\nlib-dynload\nsite-packages\n")
    packimport.write(str(runtime / PACK), PACK_ROOTS, [])
    # One file: Debian's copyright files and Python's license.
    texts = [(f"{c.parent.name} (/usr/share/doc/{c.parent.name}/copyright)", c.read_text())
             for c in sorted(debroot.glob("usr/share/doc/*/copyright"))]  # fmt: skip
    python_license = debroot / "usr/lib/python3.11/LICENSE.txt"
    texts.append(("CPython 3.11 (/usr/lib/python3.11/LICENSE.txt)", python_license.read_text()))
    (runtime / "LICENSES").write_text("".join(f"==> {name} <==\n{text.rstrip()}\n\n" for name, text in texts))
    return libs


# -- Which modules a step imports -----------------------------------------------------------------

RUN_CODE = "import sys; del sys.argv[0]; from entrypoint.cli import run; run()"  # as in launcher.c


def imported_modules(launcher: Path, args: Sequence[str], root: Path) -> set[str]:
    """Top-level names of the modules the entrypoint process imports for a step."""
    proc = subprocess.run(
        [str(launcher), "--python", "-X", "importtime", "-I", "-c", RUN_CODE, "entrypoint", *args],
        env={**os.environ, "SIGNED_ENTRYPOINT_ROOT": str(root)}, capture_output=True, text=True,
        check=False, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"build_binary: a probe step failed ({proc.returncode}): {args}")
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def probe_steps(launcher: Path) -> set[str]:
    """Run Tekton's init (copying the staged bundle), a plain step and a SPIRE-signed one (the
    test Workload API server of this repository standing in for the agent) with the staged
    bundle, and see what they import."""
    with tempfile.TemporaryDirectory(prefix="probe", dir="/tmp") as tmp:
        root = Path(tmp)
        (root / "results").mkdir()
        (root / "results" / "r").write_text("v")
        (root / "bin").mkdir()
        hot = imported_modules(launcher, ["init", str(launcher), f"{tmp}/bin/entrypoint", "step-a"], root)
        common = ["-post_file", f"{tmp}/out", "-termination_path", f"{tmp}/termination", "-step_metadata_dir",
                  f"{tmp}/status", "-results", "r", "-entrypoint", "/bin/true", "--"]  # fmt: skip
        hot |= imported_modules(launcher, common, root)
        sock = root / "agent.sock"
        agent = subprocess.Popen(
            [sys.executable, "-m", "entrypoint.testing.workload_api", "--socket", str(sock),
             "--spiffe-id", "spiffe://example.org/ns/probe/taskrun/probe"],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        try:
            assert agent.stdout is not None
            if not agent.stdout.readline().startswith("ready"):
                raise SystemExit("build_binary: the test Workload API server did not start")
            signed = ["-enable_spire", "-spire_socket_path", f"unix://{sock}", *common]
            hot |= imported_modules(launcher, signed, root)
            if "RESULT_MANIFEST" not in (root / "termination").read_text():
                raise SystemExit("build_binary: the signed probe step wrote no signature")
        finally:
            agent.terminate()
            agent.wait(10)
    return hot


def apt_install(packages: Sequence[str]) -> None:
    """Install build tools on a fresh Debian machine (as root; package lists only if needed)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"build_binary: install {' '.join(packages)} (apt-get install, as root)")
    log(f"apt-get install {' '.join(packages)}")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    os.environ.setdefault("DEBIAN_FRONTEND", "noninteractive")
    if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
        run(["apt-get", "update"], quiet=True)
        run(cmd, quiet=True)


def compile_launcher(out: Path) -> None:
    # Static, so that it runs in images without a C library; glibc's static libc is fine for a
    # program that only calls readlink and execv (no NSS, no locale).
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists():
        apt_install(["gcc", "libc6-dev"])
        cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    run([cc, "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", out, REPO / "tools" / "launcher.c"])


def normalise_modes(tree: Path) -> None:
    """Steps run as any user: everything readable, the three programs and directories executable."""
    programs = {tree / "entrypoint", tree / RUNTIME / LOADER, tree / RUNTIME / "python"}
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path in programs else 0o644)


def tool_version(tool: str) -> str:
    path = shutil.which(tool) if tool != "cc" else os.environ.get("CC") or shutil.which("cc") or "gcc"
    return run([path or tool, "--version"], quiet=True).splitlines()[0]


def manifest(
    runtime: Path, debs: Sequence[Deb], libs: Sequence[str], site: Path, build: Sequence[Pin],
    packed: tuple[int, int, int],
) -> None:  # fmt: skip
    lines = ["# Debian bookworm packages: name, version, architecture, digest of the .deb, apt suite"]
    lines += [deb.line() for deb in debs]
    lines += ["", f"# Python distributions (wheels checked against {LOCK.name})"]
    lines += sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))
    lines += ["", "# Shared libraries in lib/", *libs]
    lines += ["", f"# Modules: {PACK} holds the byte-code of {packed[0]} as it is and of {packed[1]} "
              f"compressed, and names the {packed[2]} extension modules in lib/; site-packages.zip "
              f"holds {', '.join(sorted(ZIP_SAFE_DATA))} and the distributions' metadata"]  # fmt: skip
    lines += ["", "# Build tools", *(f"{p.name}=={p.version}" for p in build)]
    lines += [f"{tool}: {tool_version(tool)}" for tool in ("cc", "strip")]
    (runtime / "MANIFEST").write_text("\n".join(lines) + "\n")


def tree_size(tree: Path) -> tuple[int, int]:
    files = [p for p in tree.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def smoke_test(launcher: Path) -> None:
    """The bundle imports what a step may need, from its own files only."""
    code = ("import entrypoint.cli, entrypoint._internal.signing.forked, cryptography.x509, "
            "grpc, spiffe, httpx, jwt, celpy, ssl, ctypes, decimal, os, sys, zoneinfo, pendulum\n"
            "assert type(entrypoint.__loader__).__name__ == 'PackFinder', entrypoint.__loader__\n"
            "import certifi, celpy.celparser, importlib.metadata, grpc._cython.cygrpc as cy\n"
            "assert os.path.isfile(certifi.where()) and celpy.celparser.CELParser()\n"  # data files
            "assert zoneinfo.ZoneInfo('Europe/Paris') and pendulum.now().format('dddd', locale='de')\n"
            "assert importlib.metadata.version('grpcio')\n"
            "import yaml, re2, google.protobuf, google._upb._message, _cffi_backend, _ssl\n"  # extensions
            "assert yaml.__with_libyaml__ and re2.compile('a+').match('aa')\n"
            "print('ok')")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = run([launcher, "--python", "-I", "-S", "-c", code], cwd=Path(tmp))
    if out.strip() != "ok":
        raise SystemExit(f"build_binary: the bundle's smoke test printed {out!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DIST, help="output directory (default: dist/bin)")
    ns = parser.parse_args(argv)
    start = time.monotonic()
    BUILD.mkdir(parents=True, exist_ok=True)
    lock = read_lock()
    debs = fetch_debs()
    debroot = extract_debs(debs)
    site = install_packages(lock)
    out: Path = ns.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".bin-", dir=out.parent))
    try:
        libs = assemble(stage, debroot, site)
        runtime = stage / RUNTIME
        compile_launcher(stage / "entrypoint")
        hot = probe_steps(stage / "entrypoint")
        path = zip_cold_data(runtime)
        packed = pack_byte_code(runtime, hot)
        # With python._pth next to the interpreter, CPython ignores PYTHONHOME, PYTHONPATH and
        # the rest of the environment, imports no site module and uses exactly these paths.
        (runtime / "python._pth").write_text("\n".join(path) + "\n")
        manifest(runtime, debs, libs, site, lock["build"], packed)
        normalise_modes(stage)
        smoke_test(stage / "entrypoint")
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    size, count = tree_size(out)
    log(f"{out}: {size / 1e6:.1f} MB in {count} files ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
