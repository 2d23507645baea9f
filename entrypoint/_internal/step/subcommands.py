"""The entrypoint's subcommands (spec §2.5): ``init``, ``cp``, ``step-init``, ``decode-script``.

A subcommand runs only when the first positional leftover names it *and* the arity matches;
otherwise the binary carries on as an entrypoint.  The init container uses ``init`` to copy this
very executable into the shared ``/tekton/bin`` volume.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

from entrypoint._internal.go.flag import go_quote
from entrypoint._internal.go.json import Base64Error, decode_go_base64
from entrypoint._internal.go.path import join
from entrypoint._internal.step.layout import Layout
from entrypoint.errors import EntrypointError, SubcommandError


class StepInitFatal(EntrypointError):
    """A fatal exit (Go's ``log.Fatalf``): the steps directory could not be created."""


def _errno_text(exc: OSError) -> str:
    """Go's syscall error text: the C library's message in lower case."""
    return (exc.strerror or str(exc)).lower()


def _os_error(op: str, path: str, exc: OSError) -> str:
    """Go's ``*PathError`` text: ``<op> <path>: <errno text>``."""
    return f"{op} {path}: {_errno_text(exc)}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def cp(src: str, dst: str) -> str:
    from entrypoint._internal.step.selfexec import launcher

    exe = launcher()
    if exe is not None and _same_file(src, exe):
        return copy_packaged(exe, dst)
    # Go opens SRC with os.Open, which succeeds on a directory; the failure then comes from read.
    try:
        fd_in = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SubcommandError(_os_error("open", src, exc)) from exc
    try:
        try:
            # Tekton neither truncates an existing destination nor changes its mode (0311 on create).
            fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o311)
        except OSError as exc:
            raise SubcommandError(_os_error("open", dst, exc)) from exc
        try:
            while True:
                try:
                    chunk = os.read(fd_in, 1 << 20)
                except OSError as exc:
                    raise SubcommandError(_os_error("read", src, exc)) from exc
                if not chunk:
                    break
                try:
                    _write_all(fd_out, chunk)
                except OSError as exc:
                    raise SubcommandError(_os_error("write", dst, exc)) from exc
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    return f"Copied {src} to {dst}"


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def copy_packaged(exe: str, dst: str) -> str:
    """``cp`` of the packaged executable itself: the launcher is one file, but it runs the bundle
    directory beside it, so that directory goes beside DST too (spec §0.3: Tekton's init
    container copies exactly one file, ``init /ko-app/entrypoint /tekton/bin/entrypoint``).

    A copy killed half-way must never be run: the bundle is copied under a temporary name and
    renamed into place, then the launcher likewise, so a launcher always finds a complete bundle
    (a restarted init container replaces it the same way, and first removes what a killed copy
    left: ``_remove_stale``).  Modes are the bundle's own (0755/0644, whatever the umask): steps
    run as other users.  Once per pod, but on the pod's way to its first step: it imports
    nothing that a step does not (no tempfile, no shutil but on failures).
    """
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    if _same_file(dst, exe):
        return f"Copied {exe} to {dst}"
    if os.path.isdir(dst):
        # Go's os.OpenFile(DST, O_WRONLY|O_CREATE) fails so, before anything is written.
        raise SubcommandError(f"open {dst}: is a directory")
    src_runtime = os.path.join(os.path.dirname(exe), RUNTIME_DIR)
    dst_dir = os.path.dirname(dst) or "."
    dst_runtime = os.path.join(dst_dir, RUNTIME_DIR)
    try:
        # Where Go would fail to open DST (a missing or read-only directory), fail as it does.
        fd, tmp_exe = _make_temporary(dst_dir, f".{RUNTIME_DIR}.launcher.", directory=False)
    except OSError as exc:
        raise SubcommandError(_os_error("open", dst, exc)) from exc
    try:
        # Held until the copy is in place (closing releases it, as does being killed): a concurrent
        # copy into the same directory then leaves our temporaries alone.
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)  # on our own temporary file: see _remove_stale
        _remove_stale(dst_dir, keep=tmp_exe)
        os.fchmod(fd, 0o755)  # every step's user runs it
        launcher = _Copy(exe, fd, 0, os.stat(exe).st_size)
        if _same_file(dst_runtime, src_runtime):
            _copy_files([launcher])
        else:
            _, tmp = _make_temporary(dst_dir, f".{RUNTIME_DIR}.new.", directory=True)
            try:
                _copy_tree(src_runtime, tmp, also=launcher)  # the launcher's bytes on the way
                _replace_dir(tmp, dst_runtime)
            except BaseException:
                _remove_tree(tmp)
                raise
        os.rename(tmp_exe, dst)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_exe)
        if not isinstance(exc, OSError):
            raise
        where = exc.filename if isinstance(exc.filename, str) else dst
        raise SubcommandError(_os_error("copy", where, exc)) from exc
    finally:
        os.close(fd)
    return f"Copied {exe} to {dst}"


# tempfile's names (``_remove_stale`` recognises them): 8 of these characters after the prefix.
_TEMPORARY_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _make_temporary(parent: str, prefix: str, directory: bool) -> tuple[int, str]:
    """tempfile.mkstemp or mkdtemp (without importing tempfile, random and hashlib): a new file,
    open read-write with mode 0600 (its descriptor is returned), or a new directory (-1).  The
    directory's mode is 0755 less the umask: the bundle is public."""
    for _ in range(100):
        name = "".join(_TEMPORARY_CHARACTERS[b % len(_TEMPORARY_CHARACTERS)] for b in os.urandom(8))
        path = os.path.join(parent, prefix + name)
        try:
            if directory:
                os.mkdir(path, 0o755)  # every step's user reads the bundle
                return -1, path
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(17, "No usable temporary name found", os.path.join(parent, prefix))


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _remove_stale(dst_dir: str, keep: str) -> None:
    """Delete what a copy killed half-way left in ``dst_dir`` (a bundle is ~64 MB): temporaries
    named as ``copy_packaged`` and ``_replace_dir`` name them (``.entrypoint-runtime.KIND.XXXXXXXX``),
    and nothing else.  A copy that is still running holds a lock (flock) on its temporary launcher
    from before it creates its other temporaries until it is done: if one is locked, nothing is
    deleted."""
    import fcntl

    try:
        entries = list(os.scandir(dst_dir))
    except OSError:
        return
    for entry in entries:
        if (
            entry.name == os.path.basename(keep)
            or _temporary_kind(entry.name) != "launcher"
            or entry.is_symlink()
        ):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another copy is running here: leave its temporaries alone
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
    for entry in entries:
        # Without KIND: an earlier version's.
        if _temporary_kind(entry.name) in ("new", "old", "") and entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)


def _temporary_kind(name: str) -> str | None:
    """KIND of a temporary named ``.entrypoint-runtime.[KIND.]XXXXXXXX`` (tempfile's eight
    characters), "" without one, None for any other name."""
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    prefix = f".{RUNTIME_DIR}."
    if not name.startswith(prefix):
        return None
    kind, _, suffix = name[len(prefix) :].rpartition(".")
    if len(suffix) != 8 or suffix.strip(_TEMPORARY_CHARACTERS) or "." in kind:
        return None
    return kind


class _Copy:
    """One file to copy: source path, target (a path, or the descriptor of a file open for
    writing), the mode to create it with, and its size."""

    __slots__ = ("mode", "size", "source", "target")

    def __init__(self, source: str, target: str | int, mode: int, size: int) -> None:
        self.source, self.target, self.mode, self.size = source, target, mode, size


def _umask() -> int:
    mask = os.umask(0o777)  # the most restrictive while it is read: no thread runs yet
    os.umask(mask)
    return mask


def _copy_tree(src: str, dst: str, also: _Copy | None = None) -> None:
    """Copy the bundle into the new directory ``dst``: its directories and links first, then
    its files (and ``also``) on two threads, largest first.  The bundle is ~50 files (the
    byte-code is one pack: tools/build_binary.py), so its bytes, not per-file costs, dominate;
    copy_file_range(2) moves them in the kernel, without the GIL, and without a chmod or a
    stat per file unless the umask hides bits of the file's mode."""
    mask = _umask()
    if 0o755 & mask:
        os.chmod(dst, 0o755)  # noqa: S103 (whatever the umask; every step's user reads it)
    files = [] if also is None else [also]
    todo = [(src, dst)]
    while todo:
        here, there = todo.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                target = os.path.join(there, entry.name)
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                elif entry.is_dir():
                    os.mkdir(target, 0o755)  # every step's user reads it
                    if 0o755 & mask:
                        os.chmod(target, 0o755)  # noqa: S103 (whatever the umask)
                    todo.append((entry.path, target))
                else:
                    st = entry.stat()
                    files.append(_Copy(entry.path, target, stat.S_IMODE(st.st_mode), st.st_size))
    _copy_files(files, mask)


def _copy_files(files: list[_Copy], mask: int = 0) -> None:
    """Copy the files on two threads (the machine's cores; the copies run in the kernel), each
    taking the largest file left: ``list.pop`` is atomic."""
    import threading

    files.sort(key=lambda f: f.size)
    failed: list[BaseException] = []

    def work() -> None:
        try:
            while not failed:
                try:
                    job = files.pop()
                except IndexError:
                    return
                _copy_file(job, mask)
        except BaseException as exc:
            failed.append(exc)

    helper = threading.Thread(target=work, name="copy", daemon=True) if len(files) > 1 else None
    if helper is not None:
        helper.start()
    work()
    if helper is not None:
        helper.join()
    if failed:
        raise failed[0]


def _copy_file(job: _Copy, mask: int) -> None:
    import errno

    src = os.open(job.source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if isinstance(job.target, int):
            dst = job.target
        else:
            # Created with its final mode (whatever the umask) and never over an existing file.
            dst = os.open(job.target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, job.mode)
        try:
            if job.mode & mask:
                os.fchmod(dst, job.mode)
            # The size listed, without a last call to see the end: the bundle does not change.
            left = job.size
            try:
                while left > 0 and (n := os.copy_file_range(src, dst, left)):
                    left -= n
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.lseek(src, 0, os.SEEK_SET)
                os.lseek(dst, 0, os.SEEK_SET)
                os.ftruncate(dst, 0)
                while os.sendfile(dst, src, None, 1 << 30):
                    pass
        finally:
            if not isinstance(job.target, int):
                os.close(dst)
    finally:
        os.close(src)


def _replace_dir(new: str, path: str) -> None:
    """Put directory ``new`` at ``path``.  rename(2) cannot replace a non-empty directory, so an
    old bundle is first renamed away (nothing runs from /tekton/bin before the init container
    has finished), and deleted only once the new one is in place; if that fails, the old one is
    put back."""
    from entrypoint._internal.step.selfexec import RUNTIME_DIR

    if os.path.isdir(path) and not os.path.islink(path):
        _, old = _make_temporary(os.path.dirname(path), f".{RUNTIME_DIR}.old.", directory=True)
        stale = os.path.join(old, "stale")
        try:
            os.rename(path, stale)
        except BaseException:
            os.rmdir(old)
            raise
        try:
            os.rename(new, path)
        except BaseException:
            with contextlib.suppress(OSError):  # else the next copy deletes it (_remove_stale)
                os.rename(stale, path)
                os.rmdir(old)
            raise
        _remove_tree(old)
        return
    if os.path.lexists(path):
        os.unlink(path)
    os.rename(new, path)


def step_init(layout: Layout, steps: list[str]) -> str:
    steps_dir = layout.steps_dir
    try:
        os.makedirs(steps_dir, 0o777, exist_ok=True)
    except OSError as exc:
        failed = exc.filename if isinstance(exc.filename, str) else steps_dir
        errno_text = "not a directory" if isinstance(exc, FileExistsError) else _errno_text(exc)
        raise StepInitFatal(
            f"Error creating steps directory {go_quote(steps_dir)}: mkdir {failed}: {errno_text}"
        ) from exc
    for i, name in enumerate(steps):
        target = layout.run_status_dir(i)
        # Go-join, not os.path.join: an absolute or dotted step name stays under the steps dir.
        for link in (join(steps_dir, name), join(steps_dir, str(i))):
            try:
                os.symlink(target, link)
            except FileExistsError:
                continue  # container restarts must be idempotent; an existing link is kept
            except OSError as exc:
                raise SubcommandError(f"symlink {target} {link}: {_errno_text(exc)}") from exc
    return "Setup /step directories"


def decode_base64_std(data: bytes) -> bytes:
    """Padded standard base64 ignoring CR/LF, with Go's error offsets (raises ValueError)."""
    return decode_go_base64(data, padded=True)


def decode_script(path: str) -> str:
    prefix = f"error decoding script file {go_quote(path)}: "
    reading = f"error reading from script file {go_quote(path)}: "
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SubcommandError(prefix + reading + _os_error("open", path, exc)) from exc
    try:
        chunks: list[bytes] = []
        try:
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        except OSError as exc:
            raise SubcommandError(prefix + reading + _os_error("read", path, exc)) from exc
        try:
            mode = os.fstat(fd).st_mode & 0o777
        except OSError as exc:
            raise SubcommandError(
                prefix + f"error statting script file {go_quote(path)}: " + _os_error("stat", path, exc)
            ) from exc
    finally:
        os.close(fd)
    try:
        decoded = decode_base64_std(b"".join(chunks))
    except Base64Error as exc:
        raise SubcommandError(prefix + f"error decoding script file {go_quote(path)}: {exc}") from exc
    try:
        # os.WriteFile: create-or-truncate; the permission bits only apply if it has to create.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise SubcommandError(
            f"error writing decoded script file {go_quote(path)}: " + _os_error("open", path, exc)
        ) from exc
    try:
        _write_all(fd, decoded)
    except OSError as exc:
        raise SubcommandError(
            f"error writing decoded script file {go_quote(path)}: " + _os_error("write", path, exc)
        ) from exc
    finally:
        os.close(fd)
    return f"Decoded script {path}"


def dispatch(args: list[str], layout: Layout) -> tuple[str, Callable[[], str]] | None:
    """The subcommand named by ``args`` with its arity checked, or ``None`` (not a subcommand)."""
    if not args:
        return None
    name = args[0]
    if name == "init" and len(args) >= 3:
        src, dst, steps = args[1], args[2], args[3:]

        def run_init() -> str:
            cp(src, dst)
            step_init(layout, steps)
            return "Entrypoint initialization"

        return name, run_init
    if name == "cp" and len(args) == 3:
        src, dst = args[1], args[2]
        return name, lambda: cp(src, dst)
    if name == "decode-script" and len(args) == 2:
        script = args[1]
        return name, lambda: decode_script(script)
    if name == "step-init":
        steps = args[1:]
        return name, lambda: step_init(layout, steps)
    return None
