"""Subcommands: dispatch arity, cp, decode-script, step-init, init (spec §2.5, §9.3)."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint._internal.step.layout import Layout
from entrypoint._internal.step.subcommands import (
    StepInitFatal,
    cp,
    decode_base64_std,
    decode_script,
    dispatch,
    step_init,
)
from entrypoint.errors import SubcommandError


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(root=str(tmp_path / "tekton"))


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def links(layout: Layout) -> dict[str, str]:
    steps = Path(layout.steps_dir)
    return {p.name: os.readlink(p) for p in steps.iterdir()}


def expected_links(layout: Layout, names: list[str]) -> dict[str, str]:
    want: dict[str, str] = {}
    for i, name in enumerate(names):
        want[name] = want[str(i)] = f"{layout.root}/run/{i}/status"
    return want


# -- dispatch (§2.5, §9.3 Process) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["not", "a", "matching", "subcommand"],
        [],
        ["cp"],
        ["cp", "a"],
        ["cp", "a", "b", "c"],
        ["decode-script"],
        ["decode-script", "a", "b"],
        ["init"],
        ["init", "src"],
        ["echo", "hi"],
        ["CP", "a", "b"],
    ],
)
def test_not_a_subcommand(args: list[str], layout: Layout) -> None:
    assert dispatch(args, layout) is None


def test_dispatch_cp(tmp_path: Path, layout: Layout) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("hello")
    sub = dispatch(["cp", str(src), str(dst)], layout)
    assert sub is not None
    name, run = sub
    assert name == "cp"
    assert run() == f"Copied {src} to {dst}"
    assert dst.read_text() == "hello"


def test_dispatch_decode_script(tmp_path: Path, layout: Layout) -> None:
    script = tmp_path / "script"
    script.write_text("aGVsbG8gd29ybGQK")
    sub = dispatch(["decode-script", str(script)], layout)
    assert sub is not None
    name, run = sub
    assert name == "decode-script"
    assert run() == f"Decoded script {script}"
    assert script.read_text() == "hello world\n"


@pytest.mark.parametrize("steps", [[], ["foo", "bar"]])
def test_dispatch_step_init(layout: Layout, steps: list[str]) -> None:
    sub = dispatch(["step-init", *steps], layout)
    assert sub is not None
    name, run = sub
    assert name == "step-init"
    assert run() == "Setup /step directories"
    assert Path(layout.steps_dir).is_dir()
    assert links(layout) == expected_links(layout, steps)


def test_dispatch_init(tmp_path: Path, layout: Layout) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"\x7fELF binary")
    sub = dispatch(["init", str(src), str(dst), "step-a"], layout)
    assert sub is not None
    name, run = sub
    assert name == "init"
    assert run() == "Entrypoint initialization"
    assert dst.read_bytes() == b"\x7fELF binary"
    assert links(layout) == expected_links(layout, ["step-a"])


def test_dispatch_captures_arguments(tmp_path: Path, layout: Layout) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("x")
    args = ["cp", str(src), str(dst)]
    sub = dispatch(args, layout)
    assert sub is not None
    args[2] = str(tmp_path / "other")
    sub[1]()
    assert dst.exists()


# -- cp --------------------------------------------------------------------------------------------------


def test_cp_copies_bytes_and_creates_with_0311(tmp_path: Path, umask_022: None) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(3 << 20)
    src.write_bytes(data)
    assert cp(str(src), str(dst)) == f"Copied {src} to {dst}"
    assert dst.read_bytes() == data
    assert mode_of(dst) & ~0o311 == 0
    assert mode_of(dst) == 0o311 & ~0o022


def test_cp_mode_reduced_by_umask(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("x")
    old = os.umask(0o077)
    try:
        cp(str(src), str(dst))
    finally:
        os.umask(old)
    assert mode_of(dst) == 0o300


def test_cp_missing_source(tmp_path: Path) -> None:
    src, dst = tmp_path / "nope", tmp_path / "dst"
    with pytest.raises(SubcommandError) as info:
        cp(str(src), str(dst))
    assert str(info.value) == f"open {src}: no such file or directory"
    assert not dst.exists()


def test_cp_does_not_truncate_or_chmod_existing_destination(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("short")
    dst.write_text("a much longer existing content")
    dst.chmod(0o640)
    cp(str(src), str(dst))
    assert dst.read_text() == "shorth longer existing content"
    assert mode_of(dst) == 0o640


def test_cp_destination_directory_missing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "no" / "dst"
    src.write_text("x")
    with pytest.raises(SubcommandError) as info:
        cp(str(src), str(dst))
    assert str(info.value) == f"open {dst}: no such file or directory"


def test_cp_source_directory_fails_on_read(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    with pytest.raises(SubcommandError) as info:
        cp(str(tmp_path), str(dst))
    assert str(info.value) == f"read {tmp_path}: is a directory"
    assert dst.exists()  # Go opens (creates) the destination before the first read


def test_cp_empty_source(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"")
    cp(str(src), str(dst))
    assert dst.read_bytes() == b""


# -- decode-script ---------------------------------------------------------------------------------------


def test_decode_script_keeps_mode(tmp_path: Path) -> None:
    script = tmp_path / "script-0-abcde"
    script.write_text("IyEvdXNyL2Jpbi9lbnYgc2gKZWNobyAiSGVsbG8gV29ybGQhIgo=")
    script.chmod(0o600)
    assert decode_script(str(script)) == f"Decoded script {script}"
    assert script.read_bytes() == b'#!/usr/bin/env sh\necho "Hello World!"\n'
    assert mode_of(script) == 0o600


def test_decode_script_keeps_executable_mode(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text(base64.b64encode(b"#!/bin/sh\nset -e\necho hi\n").decode() + "\n")
    script.chmod(0o755)
    decode_script(str(script))
    assert script.read_bytes() == b"#!/bin/sh\nset -e\necho hi\n"
    assert mode_of(script) == 0o755


def test_decode_script_accepts_heredoc_newline_and_crlf(tmp_path: Path) -> None:
    encoded = base64.encodebytes(b"x" * 200).replace(b"\n", b"\r\n")  # wrapped lines, CRLF
    script = tmp_path / "script"
    script.write_bytes(encoded + b"\n")
    decode_script(str(script))
    assert script.read_bytes() == b"x" * 200


def test_decode_script_shrinks_file(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text(base64.b64encode(b"a" * 100).decode())
    decode_script(str(script))
    assert script.read_bytes() == b"a" * 100


def test_decode_script_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing"
    with pytest.raises(SubcommandError) as info:
        decode_script(str(path))
    assert str(info.value) == (
        f'error decoding script file "{path}": error reading from script file "{path}": '
        f"open {path}: no such file or directory"
    )
    assert not path.exists()


def test_decode_script_directory_fails_on_read(tmp_path: Path) -> None:
    with pytest.raises(SubcommandError) as info:
        decode_script(str(tmp_path))
    assert str(info.value) == (
        f'error decoding script file "{tmp_path}": error reading from script file "{tmp_path}": '
        f"read {tmp_path}: is a directory"
    )


def test_decode_script_bad_base64_leaves_file_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("!")
    with pytest.raises(SubcommandError) as info:
        decode_script(str(script))
    assert str(info.value) == (
        f'error decoding script file "{script}": error decoding script file "{script}": '
        "illegal base64 data at input byte 0"
    )
    assert script.read_text() == "!"


def test_decode_script_write_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "script"
    script.write_text("aGVsbG8=")
    real_open = os.open

    def fake_open(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_WRONLY:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(SubcommandError) as info:
        decode_script(str(script))
    assert str(info.value) == (
        f'error writing decoded script file "{script}": open {script}: permission denied'
    )


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"", b""),
        (b"\n", b""),
        (b"\r\n\r\n", b""),
        (b"QQ==", b"A"),
        (b"QUI=", b"AB"),
        (b"QUJD", b"ABC"),
        (b"QUJDREVG", b"ABCDEF"),
        (b"QUJD\r\nREVG\n", b"ABCDEF"),
        (b"Q\nU\nJ\nD", b"ABC"),
        (b"QQ=\n=", b"A"),
        (b"QQ=\r\n=\n", b"A"),
        (b"QUJ=\n\n", b"AB"),
        (b"QR==", b"A"),  # non-zero trailing bits are ignored (not strict)
        (b"aGVsbG8gd29ybGQK", b"hello world\n"),
        (b"+/+/", b"\xfb\xff\xbf"),
    ],
)
def test_base64_valid(encoded: bytes, decoded: bytes) -> None:
    assert decode_base64_std(encoded) == decoded


@pytest.mark.parametrize(
    ("encoded", "offset"),
    [
        (b"!", 0),
        (b" QUJD", 0),
        (b"QUJD!", 4),
        (b"QUJD QUJD", 4),
        (b"QUJD\tQUJD", 4),
        (b"QQ", 0),
        (b"QUJ", 0),
        (b"Q", 0),
        (b"QUJDQ", 4),
        (b"Q\nQ", 1),  # the offset counts skipped newlines: si - j
        (b"QUJ\n", 1),
        (b"QQ=", 3),  # not enough padding: the input length
        (b"QQ=\n", 4),
        (b"QQ=A", 2),  # incorrect padding: the byte before
        (b"QQ=\nA", 3),
        (b"=", 0),
        (b"Q=", 1),
        (b"Q===", 1),
        (b"QQ==A", 4),  # trailing garbage
        (b"QQ==\nA", 5),
        (b"QQ===", 4),
        (b"QUJ=QUJD", 4),
        (b"QUJD====", 4),
        (b"QUJD-_", 4),  # URL alphabet is not standard
        (b"QUJD\xc3\xa9", 4),
    ],
)
def test_base64_error_offsets(encoded: bytes, offset: int) -> None:
    with pytest.raises(ValueError, match=f"^illegal base64 data at input byte {offset}$"):
        decode_base64_std(encoded)


# -- step-init ------------------------------------------------------------------------------------------


def test_step_init_links(layout: Layout) -> None:
    assert step_init(layout, ["a", "b"]) == "Setup /step directories"
    assert links(layout) == {
        "a": f"{layout.root}/run/0/status",
        "0": f"{layout.root}/run/0/status",
        "b": f"{layout.root}/run/1/status",
        "1": f"{layout.root}/run/1/status",
    }
    # the targets need not exist
    assert not Path(layout.root, "run").exists()


def test_step_init_is_idempotent_and_keeps_existing_links(layout: Layout) -> None:
    step_init(layout, ["a", "b"])
    os.remove(os.path.join(layout.steps_dir, "b"))
    os.symlink("/elsewhere", os.path.join(layout.steps_dir, "b"))
    assert step_init(layout, ["a", "b"]) == "Setup /step directories"
    got = links(layout)
    assert got["b"] == "/elsewhere"
    assert got["a"] == got["0"] == f"{layout.root}/run/0/status"
    assert got["1"] == f"{layout.root}/run/1/status"


def test_step_init_tolerates_existing_regular_file(layout: Layout) -> None:
    os.makedirs(layout.steps_dir)
    Path(layout.steps_dir, "a").write_text("x")
    step_init(layout, ["a"])
    assert Path(layout.steps_dir, "a").read_text() == "x"
    assert os.readlink(os.path.join(layout.steps_dir, "0")) == f"{layout.root}/run/0/status"


def test_step_init_no_steps_creates_directory(layout: Layout) -> None:
    step_init(layout, [])
    assert Path(layout.steps_dir).is_dir()
    assert links(layout) == {}


def test_step_init_uses_go_join_for_link_names(layout: Layout) -> None:
    step_init(layout, ["/abs", "x/../y", ""])
    got = links(layout)
    assert got["abs"] == f"{layout.root}/run/0/status"
    assert got["y"] == f"{layout.root}/run/1/status"
    # "" joins to the steps directory itself, which exists: tolerated; the index link is still made
    assert got["2"] == f"{layout.root}/run/2/status"
    assert set(got) == {"abs", "0", "y", "1", "2"}


def test_step_init_other_symlink_error_is_subcommand_error(layout: Layout) -> None:
    with pytest.raises(SubcommandError) as info:
        step_init(layout, ["missing/x"])
    target = f"{layout.root}/run/0/status"
    assert str(info.value) == f"symlink {target} {layout.steps_dir}/missing/x: no such file or directory"


def test_step_init_mkdir_failure_is_fatal(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("not a dir")
    layout = Layout(root=str(root))
    with pytest.raises(StepInitFatal) as info:
        step_init(layout, ["a"])
    assert not isinstance(info.value, SubcommandError)
    assert str(info.value) == (
        f'Error creating steps directory "{root}/steps": mkdir {root}/steps: not a directory'
    )


def test_step_init_steps_path_is_a_file(layout: Layout) -> None:
    os.makedirs(layout.root)
    Path(layout.steps_dir).write_text("x")
    with pytest.raises(StepInitFatal, match=r"not a directory$"):
        step_init(layout, [])


# -- init -----------------------------------------------------------------------------------------------


def test_init_copies_then_links_and_is_idempotent(tmp_path: Path, layout: Layout) -> None:
    src = tmp_path / "entrypoint"
    src.write_bytes(b"binary")
    dst = Path(layout.root, "bin-entrypoint")
    os.makedirs(layout.root)
    for _ in range(2):
        sub = dispatch(["init", str(src), str(dst), "a", "b"], layout)
        assert sub is not None
        assert sub[1]() == "Entrypoint initialization"
    assert dst.read_bytes() == b"binary"
    assert mode_of(dst) & ~0o311 == 0
    assert links(layout) == expected_links(layout, ["a", "b"])


def test_init_cp_failure_skips_step_init(tmp_path: Path, layout: Layout) -> None:
    sub = dispatch(["init", str(tmp_path / "nope"), str(tmp_path / "dst"), "a"], layout)
    assert sub is not None
    with pytest.raises(SubcommandError, match=r"^open .*/nope: no such file or directory$"):
        sub[1]()
    assert not Path(layout.steps_dir).exists()


# -- init/cp of the packaged executable (tools/build_binary.py): the bundle goes along ------------------


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake packaged build: a launcher, its bundle beside it, and the interpreter option the
    launcher passes (so the running process believes it is that launcher)."""
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    exe = tmp_path / "dist" / "entrypoint"
    runtime = exe.parent / RUNTIME_DIR
    (runtime / "lib").mkdir(parents=True)
    exe.write_bytes(b"launcher")
    (runtime / "python").write_bytes(b"interpreter")
    (runtime / "lib" / "libc.so.6").write_bytes(b"libc")
    (runtime / "python").chmod(0o755)
    (runtime / "lib" / "libc.so.6").chmod(0o644)
    monkeypatch.setattr("sys._xoptions", {"entrypoint_launcher": str(exe)})
    return exe


def snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(path)): (mode_of(p), b"" if p.is_dir() else p.read_bytes())
        for p in sorted(path.rglob("*"))
    }


def test_cp_of_the_packaged_executable_copies_its_bundle(packaged: Path, tmp_path: Path) -> None:
    dst_dir = tmp_path / "tekton-bin"
    dst_dir.mkdir()
    old = os.umask(0o077)  # the bundle's own modes win: steps run as other users
    try:
        message = cp(str(packaged), str(dst_dir / "entrypoint"))
        assert message == f"Copied {packaged} to {dst_dir / 'entrypoint'}"
    finally:
        os.umask(old)
    want = snapshot(packaged.parent)
    want["entrypoint"] = (0o755, b"launcher")
    assert snapshot(dst_dir) == want


def test_cp_of_the_packaged_executable_replaces_stale_copies(packaged: Path, tmp_path: Path) -> None:
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    dst_dir = tmp_path / "tekton-bin"
    (dst_dir / RUNTIME_DIR / "lib").mkdir(parents=True)
    (dst_dir / RUNTIME_DIR / "stale").write_bytes(b"old")
    (dst_dir / RUNTIME_DIR / "python").write_bytes(b"half")
    (dst_dir / "entrypoint").write_bytes(b"a much longer old launcher")
    os.mkdir(dst_dir / "unrelated")
    cp(str(packaged), str(dst_dir / "entrypoint"))
    assert (dst_dir / "entrypoint").read_bytes() == b"launcher"  # replaced, not overwritten in place
    assert snapshot(dst_dir / RUNTIME_DIR) == snapshot(packaged.parent / RUNTIME_DIR)
    assert sorted(p.name for p in dst_dir.iterdir()) == sorted([RUNTIME_DIR, "entrypoint", "unrelated"])


def test_cp_of_the_packaged_executable_onto_itself_or_beside_it(packaged: Path) -> None:
    before = snapshot(packaged.parent)
    cp(str(packaged), str(packaged))
    assert snapshot(packaged.parent) == before
    cp(str(packaged), str(packaged.parent / "second"))  # same directory: the bundle is shared
    assert snapshot(packaged.parent) == {**before, "second": (0o755, b"launcher")}


def test_cp_of_the_packaged_executable_into_a_missing_directory(packaged: Path, tmp_path: Path) -> None:
    dst = tmp_path / "nope" / "entrypoint"
    with pytest.raises(SubcommandError, match=rf"^open {dst}: no such file or directory$"):
        cp(str(packaged), str(dst))


def test_cp_of_another_file_stays_tekton_s_when_packaged(packaged: Path, tmp_path: Path) -> None:
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    src, dst = tmp_path / "entrypoint", tmp_path / "out" / "entrypoint"
    dst.parent.mkdir()
    src.write_bytes(b"abc")
    dst.write_bytes(b"123456")
    cp(str(src), str(dst))
    assert dst.read_bytes() == b"abc456"
    assert not (dst.parent / RUNTIME_DIR).exists()


def test_cp_of_the_development_entrypoint_copies_one_file(tmp_path: Path) -> None:
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    src = tmp_path / "src" / "entrypoint"
    (src.parent / RUNTIME_DIR).mkdir(parents=True)  # ignored: no launcher is running
    src.write_bytes(b"script")
    cp(str(src), str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_bytes() == b"script"
    assert not (tmp_path / RUNTIME_DIR).exists()


def test_cp_of_the_packaged_executable_onto_a_directory_fails_as_go_does(
    packaged: Path, tmp_path: Path
) -> None:
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    dst_dir = tmp_path / "tekton-bin"
    (dst_dir / "entrypoint").mkdir(parents=True)
    with pytest.raises(SubcommandError, match=rf"^open {dst_dir / 'entrypoint'}: is a directory$"):
        cp(str(packaged), str(dst_dir / "entrypoint"))
    assert [p.name for p in dst_dir.iterdir()] == ["entrypoint"]  # nothing copied, as Go's open fails first
    link = dst_dir / "link"
    link.symlink_to("entrypoint")
    with pytest.raises(SubcommandError, match=rf"^open {link}: is a directory$"):
        cp(str(packaged), str(link))
    assert not (dst_dir / RUNTIME_DIR).exists()


def test_cp_of_the_packaged_executable_removes_what_a_killed_copy_left(
    packaged: Path, tmp_path: Path
) -> None:
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    dst_dir = tmp_path / "tekton-bin"
    dst_dir.mkdir()
    stale = [f".{RUNTIME_DIR}.new.abc_1234", f".{RUNTIME_DIR}.old.zz9_zz9z", f".{RUNTIME_DIR}.k2j4h5g6"]
    for name in stale:
        (dst_dir / name / "lib").mkdir(parents=True)
        (dst_dir / name / "lib" / "libc.so.6").write_bytes(b"half")
    (dst_dir / f".{RUNTIME_DIR}.old.zz9_zz9z" / "lib").chmod(0o555)  # removed all the same
    (dst_dir / f".{RUNTIME_DIR}.launcher.q1w2e3r4").write_bytes(b"half a launcher")
    # Not ours: other names, or ours but not of tempfile's shape.
    kept = ["entrypoint.new", f".{RUNTIME_DIR}.new.toolong123", f"{RUNTIME_DIR}.new.abc_1234", ".entrypoint"]
    for name in kept:
        (dst_dir / name).mkdir()
    cp(str(packaged), str(dst_dir / "entrypoint"))
    assert sorted(p.name for p in dst_dir.iterdir()) == sorted([*kept, RUNTIME_DIR, "entrypoint"])
    assert snapshot(dst_dir / RUNTIME_DIR) == snapshot(packaged.parent / RUNTIME_DIR)


def test_cp_of_the_packaged_executable_leaves_a_running_copy_s_temporaries(
    packaged: Path, tmp_path: Path
) -> None:
    import fcntl

    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    dst_dir = tmp_path / "tekton-bin"
    dst_dir.mkdir()
    running = [f".{RUNTIME_DIR}.launcher.q1w2e3r4", f".{RUNTIME_DIR}.new.abc_1234"]
    (dst_dir / running[0]).write_bytes(b"")
    (dst_dir / running[1]).mkdir()
    fd = os.open(dst_dir / running[0], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the other copy holds it
        cp(str(packaged), str(dst_dir / "entrypoint"))
        assert sorted(p.name for p in dst_dir.iterdir()) == sorted([*running, RUNTIME_DIR, "entrypoint"])
    finally:
        os.close(fd)
    cp(str(packaged), str(dst_dir / "entrypoint"))  # that copy has died
    assert sorted(p.name for p in dst_dir.iterdir()) == sorted([RUNTIME_DIR, "entrypoint"])


@pytest.mark.parametrize("failing", ["bundle", "launcher"])
def test_cp_of_the_packaged_executable_keeps_the_old_copy_when_replacing_fails(
    packaged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """If the new bundle cannot be renamed into place (after the old one was moved aside), the old
    one is put back; if the launcher cannot be, the old launcher stays.  No temporaries remain."""
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    dst_dir = tmp_path / "tekton-bin"
    (dst_dir / RUNTIME_DIR / "lib").mkdir(parents=True)
    (dst_dir / RUNTIME_DIR / "python").write_bytes(b"old interpreter")
    (dst_dir / "entrypoint").write_bytes(b"old launcher")
    before = snapshot(dst_dir)
    real_rename = os.rename

    kind = "new" if failing == "bundle" else "launcher"

    def rename(src: str, dst: str) -> None:
        if os.path.basename(src).startswith(f".{RUNTIME_DIR}.{kind}."):  # the new copy, into place
            raise OSError(28, "No space left on device", dst)
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(SubcommandError, match=r"^copy .*: no space left on device$"):
        cp(str(packaged), str(dst_dir / "entrypoint"))
    after = snapshot(dst_dir)
    if failing == "bundle":
        assert after == before  # the old bundle is back; the launcher is copied after the bundle
    else:
        assert after[f"{RUNTIME_DIR}/python"] == snapshot(packaged.parent)[f"{RUNTIME_DIR}/python"]
        assert after["entrypoint"] == before["entrypoint"]
    assert sorted(p.name for p in dst_dir.iterdir()) == sorted([RUNTIME_DIR, "entrypoint"])
