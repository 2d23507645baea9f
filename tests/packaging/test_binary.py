"""The self-contained executable (``make binary``), run as a process from a copy made by its own
``init``, as Tekton's init container makes it (spec §0.3, §2.5)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoint._internal.step.selfexec import RUNTIME_DIR
from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support.packaging import Installed, base_env, init_copy, require_root, tree
from tests.support.pki import NS, SPIFFE_ID, TASKRUN
from tests.support.tekton import ROOT_ENV, TektonRoot

GO_ENTRYPOINT_BYTES = 66.5e6  # Tekton's default (SPIRE-enabled) Go build: the size to stay under


def step(root: TektonRoot, *command: str, results: str = "") -> list[str]:
    args = [*root.step_args(0), "-entrypoint", command[0], "--", *command[1:]]
    return ["-results", results, *args] if results else args


def test_layout(built: Path) -> None:
    runtime = built.parent / RUNTIME_DIR
    files = tree(built.parent)
    assert {"entrypoint", RUNTIME_DIR} == {p.name for p in built.parent.iterdir()}
    # Readable and runnable by any step user; only the three programs are executable.
    programs = {"entrypoint", f"{RUNTIME_DIR}/python", f"{RUNTIME_DIR}/ld-linux-x86-64.so.2"}
    for rel, (mode, _) in files.items():
        is_dir = (built.parent / rel).is_dir()
        assert mode == (0o755 if is_dir or rel in programs else 0o644), rel
    # Byte-code only, compiled in advance (a read-only root cannot cache it), and in one file but
    # for the package the interpreter imports before it can read that file.
    assert not [rel for rel in files if rel.endswith(".py") or "__pycache__" in rel]
    assert [rel for rel in files if rel.endswith(".pyc")] == [f"{RUNTIME_DIR}/stdlib/encodings/__init__.pyc"]
    assert sum(size for _, size in files.values()) < GO_ENTRYPOINT_BYTES
    # Tekton's init container copies it into every pod: on a disk, each file and directory costs.
    assert len(files) < 60, len(files)
    # The pack's index names every module the zip does not hold (tools/build_binary.py).
    assert (runtime / "python._pth").read_text().split() == ["stdlib", "site-packages.zip"]


# -- init / cp ---------------------------------------------------------------------------------------


def test_init_copies_the_launcher_and_its_bundle(built: Path, installed: Installed) -> None:
    bin_dir = installed.exe.parent
    assert sorted(p.name for p in bin_dir.iterdir()) == ["entrypoint", RUNTIME_DIR]  # no temporaries
    assert tree(bin_dir) == tree(built.parent)
    assert installed.exe.read_bytes() == built.read_bytes()
    steps = installed.root / "steps"
    assert os.readlink(steps / "step-b") == str(installed.root.run_dir(1) / "status")


def test_init_replaces_a_stale_or_half_copied_bundle(built: Path, root: TektonRoot) -> None:
    bin_dir = root / "bin"
    (bin_dir / RUNTIME_DIR / "stdlib").mkdir(parents=True)
    (bin_dir / RUNTIME_DIR / "stale").write_text("old")
    (bin_dir / RUNTIME_DIR / "python").write_text("truncated")
    # Longer than the launcher: Tekton's cp would keep the tail; a replaced file cannot.
    (bin_dir / "entrypoint").write_bytes(b"\0" * (built.stat().st_size + 4096))
    old_umask = os.umask(0o077)
    try:
        p = init_copy(built, bin_dir / "entrypoint", root.path, "step-a")
    finally:
        os.umask(old_umask)
    assert p.returncode == 0, p.stderr
    assert tree(bin_dir) == tree(built.parent)
    assert (bin_dir / "entrypoint").read_bytes() == built.read_bytes()


def test_init_again_from_the_copy_and_onto_itself(installed: Installed, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    for dst in (other / "ep", installed.exe):
        p = init_copy(installed.exe, dst, installed.root.path)
        assert p.returncode == 0, p.stderr
    assert sorted(p.name for p in other.iterdir()) == [RUNTIME_DIR, "ep"]
    assert (other / "ep").read_bytes() == installed.exe.read_bytes()
    assert tree(other / RUNTIME_DIR) == tree(installed.exe.parent / RUNTIME_DIR)
    p = installed.run(step(installed.root, "/bin/true"))
    assert p.returncode == 0, p.stderr


def test_cp_of_another_file_is_tekton_s_cp(installed: Installed, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"new")
    dst.write_bytes(b"older and longer")
    p = installed.run(["cp", str(src), str(dst)])
    assert p.returncode == 0, p.stderr
    assert dst.read_bytes() == b"newer and longer"  # not truncated, as Tekton's
    assert not (tmp_path / RUNTIME_DIR).exists()


def test_init_into_a_missing_directory_fails_as_tekton_does(built: Path, tmp_path: Path) -> None:
    dst = tmp_path / "nope" / "entrypoint"
    p = init_copy(built, dst, tmp_path)
    assert p.returncode == 1
    assert f"init error: open {dst}: no such file or directory" in p.stderr


def test_init_removes_a_killed_copy_s_temporaries(built: Path, root: TektonRoot) -> None:
    bin_dir = root / "bin"
    for name in (f".{RUNTIME_DIR}.new.abcd1234", f".{RUNTIME_DIR}.old.abcd1234"):
        (bin_dir / name / "stdlib").mkdir(parents=True)
    (bin_dir / f".{RUNTIME_DIR}.launcher.abcd1234").write_bytes(b"half")
    p = init_copy(built, bin_dir / "entrypoint", root.path)
    assert p.returncode == 0, p.stderr
    assert tree(bin_dir) == tree(built.parent)


def test_init_onto_a_directory_fails_as_tekton_does(built: Path, root: TektonRoot) -> None:
    dst = root / "bin" / "entrypoint"
    dst.mkdir(parents=True)
    p = init_copy(built, dst, root.path)
    assert p.returncode == 1
    assert f"init error: open {dst}: is a directory" in p.stderr
    assert sorted(p.name for p in dst.parent.iterdir()) == ["entrypoint"]


# -- the step's process ------------------------------------------------------------------------------


def test_the_child_gets_exactly_the_step_s_environment(installed: Installed) -> None:
    env = base_env(
        FOO="bar",
        # The step's own settings: ours must neither obey nor disturb them.
        LD_LIBRARY_PATH="/nonexistent/lib",
        PYTHONHOME="/nonexistent",
        PYTHONPATH="/nonexistent",
        PYTHONINSPECT="1",
        PYTHONSAFEPATH="1",
    )
    p = installed.run(step(installed.root, "/usr/bin/env", "-0"), env=env)
    assert p.returncode == 0, p.stderr
    seen = dict(line.split("=", 1) for line in p.stdout.split("\0") if line)
    assert seen == {**env, ROOT_ENV: str(installed.root.path)}


def test_a_python_step_is_not_confused_by_the_bundle(installed: Installed) -> None:
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None
    code = (
        "import json, os, sys; print(json.dumps([sys.executable, sys.prefix, sys.path, "
        "open('/proc/self/maps').read(), os.environ.get('LD_LIBRARY_PATH')]))"
    )
    p = installed.run(step(installed.root, python, "-c", code))
    assert p.returncode == 0, p.stderr
    executable, prefix, path, maps, ld_path = json.loads(p.stdout)
    assert (executable, prefix, ld_path) == (python, "/usr", None)
    assert not [x for x in path if RUNTIME_DIR in x]
    assert RUNTIME_DIR not in maps  # the system's own C library and loader, not the bundle's


def test_only_a_first_argument_selects_the_bare_interpreter(installed: Installed) -> None:
    p = installed.run(step(installed.root, "/bin/echo", "--python", "-c", "x"))
    assert (p.returncode, p.stdout) == (0, "--python -c x\n"), p.stderr
    code = "import sys; print(sys.flags.isolated, sys._xoptions['entrypoint_launcher'], sys.argv[1:])"
    p = installed.run(["--python", "-I", "-c", code, "a", "--python"])
    assert p.stdout.split(" ", 2) == ["1", str(installed.exe), "['a', '--python']\n"], p.stderr


def test_usage_names_the_program_as_invoked(installed: Installed) -> None:
    p = installed.run(["-nope"])
    assert p.returncode == 2
    assert p.stderr.startswith("flag provided but not defined: -nope\nUsage of entrypoint:\n")


def test_results_and_exit_code(installed: Installed) -> None:
    root = installed.root
    script = f"printf hello > {root / 'results' / 'greeting'}; exit 3"
    p = installed.run(step(root, "/bin/sh", "-c", script, results="greeting"))
    assert p.returncode == 3, p.stderr
    assert root.values()["greeting"] == ("hello", 1)
    assert (root.run_dir(0) / "out.err").exists()
    p = installed.run(["-on_error", "continue", *step(root, "/bin/sh", "-c", "exit 7")])
    assert p.returncode == 0, p.stderr
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "7"


def verify(exe: Path, termination: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), "verify", "--taskrun", f"{NS}/{TASKRUN}", "--trust-domain", "example.org",
         "--trust-bundle", str(bundle), str(termination)],
        capture_output=True, text=True, timeout=60, check=False, env=base_env(),
    )  # fmt: skip


def test_a_spire_signed_step_verifies(
    installed: Installed, agent: WorkloadAPIServer, ca: TestCA, tmp_path: Path
) -> None:
    root = installed.root
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca.bundle_pem())
    script = f"printf sha256:1234 > {root / 'results' / 'digest'}"
    signing = ["-enable_spire", "-spire_socket_path", agent.address, "-signing_timeout", "10s"]
    p = installed.run([*signing, *step(root, "/bin/sh", "-c", script, results="digest")])
    assert p.returncode == 0, p.stderr
    assert {"digest", "digest.sig", "SVID", "RESULT_MANIFEST"} <= root.values().keys()
    v = verify(installed.exe, root.termination, bundle)
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.startswith("VERIFIED tekton "), v.stdout
    assert SPIFFE_ID in v.stdout


# -- an empty root: nothing but the bundle and /proc; read-only; another user -------------------------------


def run_in_empty_root(
    built: Path, tmp_path: Path, args: list[str], socket_dir: str | None = None, foreign_libc: bool = False
) -> tuple[subprocess.CompletedProcess[str], TektonRoot]:
    """Copy the executable into ``<R>/tekton/bin`` with ``init``, then run it chrooted into R as
    uid 1000, with R read-only and holding only that copy, ``/proc`` and an empty, writable
    ``/w`` (the step's Tekton root: run dirs, results, termination file).

    With ``socket_dir`` (a signed step), also the agent's socket directory at
    ``/spiffe-workload-api`` and ``/dev/null`` and ``/dev/urandom``: gRPC's abseil seeds its
    random generator from ``/dev/urandom`` and aborts without it.  Every container has them (the
    OCI runtime specification requires them), so only this chroot has to add them.

    With ``foreign_libc``, the root also has a C library, loader and loader cache where a glibc
    system keeps them, all of them garbage: a step image's own libraries must never be loaded."""
    require_root("an empty-root run")
    new_root, writable = tmp_path / "empty-root", tmp_path / "w"
    for d in ("tekton/bin", "proc", "w"):
        (new_root / d).mkdir(parents=True)
    for d in ("tekton/run/0", "tekton/results"):
        (writable / d).mkdir(parents=True)
    p = init_copy(built, new_root / "tekton/bin/entrypoint", tmp_path / "init-root")
    assert p.returncode == 0, p.stderr
    subprocess.run(["chown", "-R", "1000:1000", str(writable)], check=True)
    mounts = [
        f"mount --bind {new_root} {new_root}",  # first: the mounts below must be on top of it
        f"mount -t proc proc {new_root}/proc",
        f"mount --bind {writable} {new_root}/w",
    ]
    if socket_dir:
        (new_root / "spiffe-workload-api").mkdir()
        (new_root / "dev").mkdir()
        mounts.append(f"mount --bind {socket_dir} {new_root}/spiffe-workload-api")
        for dev in ("null", "urandom"):
            (new_root / "dev" / dev).touch()
            mounts.append(f"mount --bind /dev/{dev} {new_root}/dev/{dev}")
    if foreign_libc:
        for lib in ("lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6",
                    "usr/lib/x86_64-linux-gnu/libstdc++.so.6", "etc/ld.so.cache"):  # fmt: skip
            (new_root / lib).parent.mkdir(parents=True, exist_ok=True)
            (new_root / lib).write_bytes(b"\x7fELF not a library")
    mounts.append(f"mount -o remount,bind,ro {new_root}")
    command = shlex.join(["chroot", "--userspec=1000:1000", str(new_root), "/tekton/bin/entrypoint", *args])
    script = "PATH=/usr/sbin:/usr/bin:/sbin:/bin; " + " && ".join([*mounts, f"exec {command}"])
    env = {"PATH": "/nonexistent", "LANG": "C.UTF-8", ROOT_ENV: "/w/tekton"}
    p = subprocess.run(
        ["/usr/bin/unshare", "--mount", "--pid", "--fork", "/bin/sh", "-c", script],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return p, TektonRoot(writable / "tekton")


def empty_root_step(results: str, code: str) -> list[str]:
    """A step in a root without any program but ours: its command is our bare interpreter."""
    return [
        "-post_file", "/w/tekton/run/0/out", "-termination_path", "/w/tekton/termination",
        "-step_metadata_dir", "/w/tekton/run/0/status", "-results", results,
        "-entrypoint", "/tekton/bin/entrypoint", "--", "--python", "-I", "-c", code,
    ]  # fmt: skip


WRITE_UID = (
    "import os; open('/w/tekton/results/uid', 'w').write(str(os.getuid())); "
    "open('/tekton/bin/x', 'w')"  # must fail: the root is read-only
)


@pytest.mark.parametrize("foreign_libc", [False, True], ids=["empty", "broken-system-libc"])
def test_empty_read_only_root_as_uid_1000(built: Path, tmp_path: Path, foreign_libc: bool) -> None:
    p, root = run_in_empty_root(built, tmp_path, empty_root_step("uid", WRITE_UID), foreign_libc=foreign_libc)
    assert p.returncode == 1, p.stderr
    assert "Read-only file system: '/tekton/bin/x'" in p.stderr
    assert root.values()["uid"] == ("1000", 1)
    assert (root.run_dir(0) / "out.err").exists()


def test_empty_read_only_root_as_uid_1000_signed(
    built: Path, tmp_path: Path, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    socket_dir = os.path.dirname(agent.socket_path)
    # uid 1000 must reach the socket, as every workload reaches SPIRE's.
    os.chmod(socket_dir, 0o755)
    os.chmod(agent.socket_path, 0o777)
    code = "import os; open('/w/tekton/results/uid', 'w').write(str(os.getuid()))"
    signing = ["-enable_spire", "-spire_socket_path", "unix:///spiffe-workload-api/agent.sock"]
    p, root = run_in_empty_root(built, tmp_path, [*signing, *empty_root_step("uid", code)], socket_dir)
    assert p.returncode == 0, p.stderr
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca.bundle_pem())
    v = verify(built, root.termination, bundle)
    assert v.returncode == 0, v.stdout + v.stderr
    assert root.values()["uid"] == ("1000", 1)


def test_the_dev_interpreter_is_not_what_runs(built: Path) -> None:
    """Guard against a packaging test passing through the development install by accident."""
    code = "import sys, entrypoint; print(sys.version.split()[0], entrypoint.__file__)"
    p = subprocess.run(
        [str(built), "--python", "-c", code],
        capture_output=True, text=True, timeout=60, check=False, env=base_env(),
    )  # fmt: skip
    version, where = p.stdout.split()
    assert version != sys.version.split()[0] or "site-packages" in where, p.stderr
    assert where.startswith(str(built.parent / RUNTIME_DIR)), where


@pytest.mark.parametrize("lang", ["C.UTF-8", "en_US.UTF-8", "POSIX"])
def test_locales_without_locale_files(installed: Installed, lang: str) -> None:
    p = installed.run(step(installed.root, "/bin/true"), env=base_env(LANG=lang, LC_ALL=lang))
    assert p.returncode == 0, p.stderr


# -- the byte-code pack (entrypoint/_internal/packimport.py) -----------------------------------------------


def test_every_module_comes_from_the_bundle_s_index_in_the_bare_interpreter(installed: Installed) -> None:
    """The helpers' interpreter (``--python -I -S``) has the pack too: ``encodings`` installs it."""
    runtime = installed.exe.parent / RUNTIME_DIR
    code = (
        "import json, sys, certifi, cryptography.hazmat.bindings._rust as rust, google.protobuf, pendulum\n"
        "import importlib.resources as r, entrypoint.cli\n"
        "print(json.dumps(dict(loader=type(entrypoint.cli.__loader__).__name__,\n"
        "    cli=entrypoint.cli.__file__, rust=rust.__file__, google=list(google.__path__),\n"
        "    ca=certifi.where(), locale=r.files('pendulum.locales').joinpath('de').is_dir(),\n"
        "    format=pendulum.datetime(2026, 12, 3).format('dddd', locale='de'), path=sys.path)))"
    )
    p = installed.run(["--python", "-I", "-S", "-c", code])
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["loader"] == "PackFinder"
    assert out["cli"] == f"{runtime}/site-packages/entrypoint/cli.pyc"
    assert out["rust"] == f"{runtime}/lib/cryptography.hazmat.bindings._rust.abi3.so"
    assert out["google"] == [f"{runtime}/site-packages/google"]  # a namespace package, without a directory
    assert out["ca"] == f"{runtime}/site-packages/certifi/cacert.pem"
    assert Path(out["ca"]).is_file()
    assert (out["locale"], out["format"]) == (True, "Donnerstag")
    assert out["path"] == [f"{runtime}/stdlib", f"{runtime}/site-packages.zip"]


def test_the_step_s_command_inherits_no_descriptor_of_the_pack(installed: Installed) -> None:
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None
    code = (
        "import os; fds = [f'/proc/self/fd/{n}' for n in range(3, 64)]; "
        "print([os.readlink(fd) for fd in fds if os.path.lexists(fd)])"
    )
    p = installed.run(step(installed.root, python, "-c", code))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "[]\n"  # none of ours at all (the pack is opened close-on-exec)
