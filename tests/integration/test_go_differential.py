"""Tekton's own Go entrypoint (v1.15.1, built by ``tools/peers.sh``) as a differential peer: each
row is one step, run through both executables as processes, each in its own fresh Tekton root, and
everything either leaves behind is compared (issue 14).

Compared per row: the exit status; the post files (``out``, ``out.err``, ...) and their contents;
the ``exitCode`` files; every other file, directory and symlink under the root (with its mode);
the termination message, both as written (entries in file order, byte for byte, ``StartedAt``
checked for its format and masked) and as Tekton's controller parses it (sorted ``(key, value,
type)``); the child's stdout and stderr as captured; and the fixed texts the spec says operators
rely on (§4.10, §2.5, §6.3), which must be on both stderrs.  Log lines (Go's ``log`` format) are
otherwise not compared: the spec says log text is not a compatibility surface (§0.4).

Tekton's binary hard-codes ``/tekton`` (task results, the cancel file, ``step-init``), so it runs
in a private mount namespace whose root is an overlay of ``/`` with its fresh root bind-mounted at
``/tekton`` (and the real ``/tmp``, ``/dev`` and ``/proc``); nothing outside the test's temporary
directory is created or changed.  Ours runs as the rest of the suite runs it
(:func:`tests.support.tekton.entrypoint_command`, root moved by ``SIGNED_ENTRYPOINT_ROOT``), so
in everything it leaves behind its root's path is replaced by ``/tekton`` before comparing.

A row whose outcome differs on purpose names the facet in ``differs`` with both values and where
the difference is documented; every other facet must be equal.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from entrypoint.errors import TerminationMessageError
from entrypoint.termination import COMPRESSED_PREFIX, decompress, parse_message
from tests.support.paths import REPO
from tests.support.tekton import ROOT_ENV, TektonRoot, entrypoint_command

R = "{root}"  # replaced by each executable's root: "/tekton" for Go, the temporary root for ours
GO_ROOT = "/tekton"
STARTED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (.*)$")
# The untimestamped continuation lines of Go's multi-line log messages: the breakpoint notices
# (§4.3) and cel-go's error report (its further "ERROR: <input>:..." and " | " source lines), not the
# child's stderr.  Ours logs each message on one line (its CEL errors come from cel-python, §4.5);
# log text is not a compatibility surface (§0.4), so neither is compared beyond the rows' ``texts``.
LOG_CONTINUATION = re.compile(
    r"^(\d\) (fail-)?continue, use cmd: /tekton/debug/scripts/| \| |ERROR: <input>:)"
)
LIMIT = 4096
ABOVE_LIMIT = "Termination message is above max allowed size 4096, caused by large task result."
# A fixed offset, so that StartedAt's length (and so the size-limit rows) is known: 24 characters.
TZ = "UTC"
STARTED_AT_LEN = len("2026-12-04T10:11:12.123Z")
LAYOUT = ("results", "run/0", "run/1", "run/2", "steps", "artifacts", "downward", "scripts", "bin")
NAMESPACE_SCRIPT = r"""
set -e
root=$1 scratch=$2 bindir=$3
shift 3
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/merged"
for d in /dev /proc /tmp "$bindir"; do
    mkdir -p "$scratch/merged$d"
    mount --rbind "$d" "$scratch/merged$d"
done
mkdir "$scratch/merged/tekton"
mount --bind "$root" "$scratch/merged/tekton"
exec chroot "$scratch/merged" /usr/bin/env --chdir=/tekton "$@"
"""


def step(i: int = 0) -> tuple[str, ...]:
    """The arguments Tekton's controller gives step ``i`` (§2.7), with the root left to fill in."""
    return tuple(TektonRoot(Path(R)).step_args(i))


def sh(script: str) -> tuple[str, ...]:
    return ("-entrypoint", "/bin/sh", "--", "-c", script)


def filler(total: int, *others: int) -> str:
    """A value that makes a message whose other bytes number ``sum(others)`` exactly ``total``."""
    return "x" * (total - sum(others))


# The bytes around one result's value in the termination message (§6.2 encoding).
ONE_RESULT = len('[{"key":"a","value":"","type":1}]')
STARTED_AT_ENTRY = len(',{"key":"StartedAt","value":"","type":3}') + STARTED_AT_LEN


@dataclass(frozen=True)
class Trigger:
    """Once ``after`` (under the root) exists, or after ``delay``: write ``content`` to ``path``
    (under the root), or send ``signal`` to the entrypoint."""

    path: str = ""
    content: str = ""
    after: str = ""
    delay: float = 0.0
    signal: int = 0


@dataclass(frozen=True)
class Differs:
    """An intended difference in one facet: both values, and where it is documented."""

    go: object
    ours: object
    documented: str


@dataclass(frozen=True)
class Row:
    name: str
    args: tuple[str, ...]
    status: int  # Go's exit status: a row never passes with both executables broken the same way
    files: Mapping[str, str] = field(default_factory=dict)  # set up under the root before the step
    modes: Mapping[str, int] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)  # symlinks set up (targets filled in)
    env: Mapping[str, str] = field(default_factory=dict)
    trigger: Trigger | None = None
    texts: tuple[str, ...] = ()  # fixed texts both print on stderr (spec: operators rely on them)
    termination: str = "termination"
    # The child's stderr is compared line by line unless it holds usage text (flag errors: ours
    # lists its own extra flags, README "Signed results"), when only ``texts`` are compared.
    child_stderr: bool = True
    sort_stdout_file: str = ""  # a -stdout_path = -stderr_path file: §4.7 gives no order
    differs: Mapping[str, Differs] = field(default_factory=dict)
    undefined_flags: tuple[str, ...] = ()  # flags the row passes *because* they do not exist
    timeout: float = 30


@dataclass
class Outcome:
    status: int
    stdout: str
    child_stderr: list[str]
    logs: list[str]
    post_files: dict[str, str]
    exit_code_files: dict[str, str]
    tree: dict[str, tuple[object, ...]]
    termination_raw: str | None
    termination: list[tuple[str, str, int]] | str | None

    def facets(self) -> dict[str, object]:
        return {
            "status": self.status,
            "stdout": self.stdout,
            "child_stderr": self.child_stderr,
            "post_files": self.post_files,
            "exit_code_files": self.exit_code_files,
            "tree": self.tree,
            "termination_raw": self.termination_raw,
            "termination": self.termination,
        }


def mask_started_at(raw: str) -> str:
    def one(m: re.Match[str]) -> str:
        value = m.group(1)
        return m.group(0).replace(value, "<timestamp>" if STARTED_AT.match(value) else f"<bad:{value}>")

    return re.sub(r'"key":"StartedAt","value":"([^"]*)"', one, raw)


def as_written(raw: str) -> str:
    """The termination file's JSON, ``StartedAt`` masked; a ``tknz:`` message inflated (and
    marked so): Go's and Python's DEFLATE streams differ in their bytes (§6.4), never the JSON."""
    if raw.startswith(COMPRESSED_PREFIX):
        try:
            return (
                COMPRESSED_PREFIX + "<inflated>" + mask_started_at(decompress(raw[len(COMPRESSED_PREFIX) :]))
            )
        except TerminationMessageError as error:
            return f"unreadable: {error}"
    return mask_started_at(raw)


def parsed(raw: str) -> list[tuple[str, str, int]] | str:
    try:
        entries = parse_message(raw)
    except TerminationMessageError as error:
        return f"unparsable: {error}"
    out = []
    for entry in entries:
        value = entry.value
        if entry.key == "StartedAt":
            value = "<timestamp>" if STARTED_AT.match(value) else f"<bad:{value}>"
        out.append((entry.key, value, int(entry.type)))
    return sorted(out)


def snapshot(
    root: Path, normalise: str, row: Row
) -> tuple[dict[str, str], dict[str, str], dict[str, tuple[object, ...]]]:
    """The post files, the ``exitCode`` files and everything else under ``root`` (not the
    termination file), with ``normalise`` (the root as the executable saw it) written ``/tekton``."""

    def text(data: bytes) -> str:
        return data.decode("utf-8", "backslashreplace").replace(normalise, GO_ROOT)

    post: dict[str, str] = {}
    exit_codes: dict[str, str] = {}
    tree: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if rel == row.termination:
            continue
        if stat.S_ISLNK(st.st_mode):
            tree[rel] = ("link", os.readlink(path).replace(normalise, GO_ROOT))
        elif stat.S_ISDIR(st.st_mode):
            tree[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)))
        else:
            content = path.read_bytes()
            if rel == row.sort_stdout_file:
                content = b"".join(sorted(content.splitlines(keepends=True)))
            if re.fullmatch(r"run/\d+/out(\..*)?", rel):
                post[rel] = text(content)
            elif re.fullmatch(r"run/\d+/status/exitCode", rel):
                exit_codes[rel] = text(content)
            else:
                tree[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), text(content))
    return post, exit_codes, tree


def fresh_root(base: Path, row: Row, seen_as: str) -> Path:
    root = base / "tekton"
    for d in LAYOUT:
        (root / d).mkdir(parents=True)
    for rel, content in row.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    for rel, mode in row.modes.items():
        (root / rel).chmod(mode)
    for rel, target in row.links.items():
        (root / rel).symlink_to(target.replace(R, seen_as))
    return root


def fill(args: tuple[str, ...], root: str) -> list[str]:
    return [a.replace(R, root) for a in args]


def fire(trigger: Trigger, root: Path, proc: subprocess.Popen[str], deadline: float) -> None:
    if trigger.after:
        while not (root / trigger.after).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(trigger.delay)
    if proc.poll() is not None:
        return
    if trigger.signal:
        proc.send_signal(trigger.signal)  # Go's pid: unshare, sh, chroot and env each exec the next
    else:
        (root / trigger.path).write_text(trigger.content)


@dataclass(frozen=True)
class Executable:
    """How to start one of the two executables on a root (``seen_as`` is the root's path for it)."""

    name: str
    prefix: tuple[str, ...]
    sandboxed: bool

    def run(self, row: Row, base: Path) -> Outcome:
        root = base / "tekton"
        seen_as = GO_ROOT if self.sandboxed else str(root)
        fresh_root(base, row, seen_as)
        env = {k: v for k, v in os.environ.items() if k not in ("TEKTON_PLATFORM_COMMANDS", ROOT_ENV)}
        env.update({"TZ": TZ, **row.env})
        if self.sandboxed:
            scratch = base / "namespace"
            scratch.mkdir()
            command = [*namespace_prefix(str(root), str(scratch), self.prefix[0]), *fill(row.args, seen_as)]
            cwd: Path | None = None
        else:
            env[ROOT_ENV] = seen_as
            command = [*self.prefix, *fill(row.args, seen_as)]
            cwd = root
        env = {k: v.replace(R, seen_as) for k, v in env.items()}
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
        )
        firing = None
        if row.trigger is not None:
            firing = threading.Thread(
                target=fire, args=(row.trigger, root, proc, time.monotonic() + row.timeout), daemon=True
            )
            firing.start()
        try:
            stdout, stderr = proc.communicate(timeout=row.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            pytest.fail(f"{self.name} did not finish row {row.name!r} in {row.timeout} s:\n{stdout}{stderr}")
        if firing is not None:
            firing.join()
        stdout, stderr = stdout.replace(seen_as, GO_ROOT), stderr.replace(seen_as, GO_ROOT)
        logs: list[str] = []
        child: list[str] = []
        for line in stderr.splitlines():
            if m := LOG_LINE.match(line):
                logs.append(m.group(1))
            elif logs and LOG_CONTINUATION.match(line):
                logs[-1] += "\n" + line
            else:
                child.append(line)
        post, exit_codes, tree = snapshot(root, seen_as, row)
        term = root / row.termination
        raw = term.read_bytes().decode("utf-8", "backslashreplace") if term.exists() else None
        raw = None if raw is None else raw.replace(seen_as, GO_ROOT)
        return Outcome(
            status=proc.returncode,
            stdout=stdout,
            child_stderr=child,
            logs=logs,
            post_files=post,
            exit_code_files=exit_codes,
            tree=tree,
            termination_raw=None if raw is None else as_written(raw),
            termination=None if raw is None else parsed(raw),
        )


def namespace_prefix(root: str, scratch: str, go: str) -> list[str]:
    """Run ``go`` with ``root`` at ``/tekton``, in a mount namespace of its own (see the docstring)."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [
        "unshare",
        *user,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        NAMESPACE_SCRIPT,
        "sh",
        root,
        scratch,
        str(Path(go).parent),
        go,
    ]


# -- the rows ----------------------------------------------------------------------------------------

S0 = step(0)
S1 = step(1)
MARK = f"{R}/started"  # the child says it is running (triggers wait for it)

# §5.4 / §10 item 19 / §6.3: results sized so the message is exactly at, or one byte over, 4096.
AT_LIMIT = filler(LIMIT, ONE_RESULT, STARTED_AT_ENTRY)
RESULTS_PHASE_AT_LIMIT = filler(LIMIT, ONE_RESULT)
HALF_LIMIT_TASK = "t" * 2100
HALF_LIMIT_STEP = "s" * 2100
STARTED_AT_RAW = '{"key":"StartedAt","value":"<timestamp>","type":3}'

ROWS: list[Row] = [
    # -- exit statuses (§4.9, §4.10) -----------------------------------------------------------------
    Row("exit 0: out, exitCode 0, StartedAt", (*S0, *sh("echo hello; echo warn >&2")), 0),
    Row("exit 1: out.err, no exitCode", (*S0, *sh("exit 1")), 1),
    Row("exit 3: the child's status", (*S0, *sh("echo partial; exit 3")), 3),
    Row("exit 127: command not found in the shell", (*S0, *sh("no-such-command-xyz")), 127),
    Row(
        "start failure: -entrypoint not on PATH exits 1",
        (*S0, "-entrypoint", "no-such-command-xyz"),
        1,
        texts=('Error executing command: exec: "no-such-command-xyz": executable file not found in $PATH',),
    ),
    Row("signal-killed child exits 255 (§10 item 5)", (*S0, *sh("kill -TERM $$")), 255),
    # -- -on_error (§4.1 R7 row 5) ----------------------------------------------------------------------
    Row("-on_error continue: exit 7 recorded, exit 0", (*S0, "-on_error", "continue", *sh("exit 7")), 0),
    Row("-on_error continue: success", (*S0, "-on_error", "continue", *sh("echo ok")), 0),
    Row(
        "-on_error continue: signal-killed child records ExitCode -1",
        (*S0, "-on_error", "continue", *sh("kill -TERM $$")),
        0,
    ),
    Row(
        "-on_error continue: a start failure is not continuable",
        (*S0, "-on_error", "continue", "-entrypoint", "no-such-command-xyz"),
        1,
        texts=('exec: "no-such-command-xyz": executable file not found in $PATH',),
    ),
    Row("-on_error stopAndFail: exit 1 fails", (*S0, "-on_error", "stopAndFail", *sh("exit 1")), 1),
    Row("-on_error stopAndFail: success", (*S0, "-on_error", "stopAndFail", *sh("true")), 0),
    # -- waiting (§4.2) ---------------------------------------------------------------------------------
    Row("-wait_file present: step 1 runs", (*S1, *sh("echo ran")), 0, files={"run/0/out": ""}),
    Row(
        "-wait_file absent, created later",
        (*S1, *sh("echo ran")),
        0,
        trigger=Trigger("run/0/out", "", delay=0.3),
    ),
    Row(
        "-wait_file_content: empty file waits until it has content",
        ("-wait_file", f"{R}/downward/ready", "-wait_file_content", *S0, *sh("echo ran")),
        0,
        files={"downward/ready": ""},
        trigger=Trigger("downward/ready", "READY", delay=0.3),
    ),
    Row(
        "-wait_file_content: file with content does not wait",
        ("-wait_file", f"{R}/downward/ready", "-wait_file_content", *S0, *sh("echo ran")),
        0,
        files={"downward/ready": "READY"},
    ),
    Row(
        "-wait_file comma list, each waited for in order",
        ("-wait_file", f"{R}/a,{R}/b", *S0, *sh("echo ran")),
        0,
        files={"a": ""},
        trigger=Trigger("b", "", delay=0.3),
    ),
    Row(
        "previous step failed (.err): skipped, Reason Skipped",
        (*S1, *sh(f"touch {R}/ran")),
        1,
        files={"run/0/out.err": ""},
        texts=("Skipping step because a previous step failed",),
    ),
    Row(
        "wait file and its .err both present: success wins",
        (*S1, *sh("echo ran")),
        0,
        files={"run/0/out": "", "run/0/out.err": ""},
    ),
    # -- -debug_before_step (§4.3)
    Row(
        "-debug_before_step: .beforestepexit present, the step runs",
        (*S0, "-debug_before_step", *sh("echo ran")),
        0,
        files={"run/0/out.beforestepexit": "0"},
    ),
    Row(
        "-debug_before_step: .beforestepexit.err present, not run, exit 1",
        (*S0, "-debug_before_step", *sh(f"touch {R}/ran")),
        1,
        files={"run/0/out.beforestepexit.err": "1"},
        texts=("Skipping execute step script because before step breakpoint fail-continue",),
    ),
    # -- -breakpoint_on_failure (§4.3) ------------------------------------------------------------------
    Row(
        "-breakpoint_on_failure: failure writes no post file, exits with .breakpointexit's code",
        (*S0, "-breakpoint_on_failure", *sh("echo child-err >&2; exit 3")),
        5,
        files={"run/0/out.breakpointexit": "5\n"},
    ),
    Row(
        "-breakpoint_on_failure: a previous step's .err does not skip",
        (*S1, "-breakpoint_on_failure", *sh("echo ran")),
        0,
        files={"run/0/out.err": ""},
    ),
    # -- results (§5) -----------------------------------------------------------------------------------
    Row(
        "-results: task results read raw, in list order",
        ("-results", "b,a", *S0, *sh(f"printf 'one' > {R}/results/a; echo two > {R}/results/b")),
        0,
    ),
    Row(
        "-step_results: step results (type 4) from <smd>/results",
        (
            "-step_results",
            "s",
            *S0,
            *sh(f"mkdir -p {R}/run/0/status/results; echo -n v > {R}/run/0/status/results/s"),
        ),
        0,
    ),
    Row(
        "-results and -step_results: one name in both, the step result wins (§10 item 19)",
        (
            "-results",
            "t,same",
            "-step_results",
            "same",
            *S0,
            *sh(
                f"echo -n T > {R}/results/t; echo -n task > {R}/results/same; "
                f"echo -n step > {R}/run/0/status/results/same"
            ),
        ),
        0,
        # Go appends the step result after the task result of the same key; ours drops the
        # superseded entry when it appends, so that its own messages are never ambiguous to a
        # verifier (docs/security.md, "AmbiguousEntries"; entrypoint/termination.py,
        # TerminationFile.append).  Parsed (last wins, §6.5), the two messages are the same.
        differs={
            "termination_raw": Differs(
                '[{"key":"t","value":"T","type":1},{"key":"same","value":"task","type":1},'
                '{"key":"same","value":"step","type":4},' + STARTED_AT_RAW + "]",
                '[{"key":"t","value":"T","type":1},{"key":"same","value":"step","type":4},'
                + STARTED_AT_RAW
                + "]",
                "docs/security.md (the step drops superseded entries)",
            )
        },
    ),
    Row(
        "one name in both, each half the limit: Go's second phase overflows, ours fits",
        ("-results", "same", "-step_results", "same", *S0, *sh("true")),
        1,
        files={"results/same": HALF_LIMIT_TASK, "run/0/status/results/same": HALF_LIMIT_STEP},
        # The same pruning as the row above, near the limit: Go's step-results write holds both
        # entries (> 4096 bytes) and fails the step (its log: ABOVE_LIMIT); ours holds only the
        # step result and succeeds.
        differs={
            "status": Differs(1, 0, "docs/security.md (the step drops superseded entries)"),
            "termination_raw": Differs(
                f'[{{"key":"same","value":"{HALF_LIMIT_TASK}","type":1}},{STARTED_AT_RAW}]',
                f'[{{"key":"same","value":"{HALF_LIMIT_STEP}","type":4}},{STARTED_AT_RAW}]',
                "docs/security.md (the step drops superseded entries)",
            ),
            "termination": Differs(
                [("StartedAt", "<timestamp>", 3), ("same", HALF_LIMIT_TASK, 1)],
                [("StartedAt", "<timestamp>", 3), ("same", HALF_LIMIT_STEP, 4)],
                "docs/security.md (the step drops superseded entries)",
            ),
        },
    ),
    Row(
        "the command pre-wrote an entry a result supersedes, and an empty entry",
        (
            "-results",
            "a",
            *S0,
            *sh(
                f"""echo '[{{}},{{"key":"a","value":"forged","type":1}}]' > {R}/termination; """
                f"echo -n real > {R}/results/a"
            ),
        ),
        0,
        # Go re-serialises what it finds (the empty entry as {"key":"","value":""}) and appends;
        # ours drops empty and superseded entries first (docs/security.md).  Parsed: the same.
        differs={
            "termination_raw": Differs(
                '[{"key":"","value":""},{"key":"a","value":"forged","type":1},{"key":"a","value":"real","type":1},'
                + STARTED_AT_RAW
                + "]",
                '[{"key":"a","value":"real","type":1},' + STARTED_AT_RAW + "]",
                "docs/security.md (the step drops empty and superseded entries a command pre-wrote)",
            )
        },
    ),
    Row(
        "-results '../x,/abs': names are Go-joined under /tekton/results (§0.4)",
        (
            "-results",
            "../x,/abs",
            *S0,
            *sh(f"echo -n up > {R}/x; echo -n in > {R}/results/abs"),
        ),
        0,
    ),
    Row(
        "-results: a result that is a directory aborts the phase, exit 1",
        ("-results", "d", *S0, *sh(f"mkdir {R}/results/d")),
        1,
    ),
    Row(
        "no -step_metadata_dir: ./results, ./artifacts and ./exitCode in the working directory",
        ("-post_file", f"{R}/run/0/out", "-termination_path", f"{R}/termination", *sh("true")),
        0,
    ),
    Row(
        "step-result references substituted in env and in the command (§4.4.1)",
        (*S1, *sh('echo "$V" "$1"'), "$(steps.foo.results.res)"),
        0,
        files={"run/0/out": "", "run/0/status/results/res": "hello", "run/0/status/results/arr": '["a","b"]'},
        links={"steps/step-foo": f"{R}/run/0/status"},
        env={"V": "v=$(steps.foo.results.res) arr=$(steps.foo.results.arr[1])"},
    ),
    Row(
        "-results: missing files are skipped",
        ("-results", "gone,a", *S0, *sh(f"echo -n A > {R}/results/a")),
        0,
    ),
    Row("-results: an empty file gives an empty value", ("-results", "e", *S0, *sh(f": > {R}/results/e")), 0),
    Row(
        "-results ',a': an empty first name reads nothing (§10 item 2)",
        ("-results", ",a", *S0, *sh(f"echo -n A > {R}/results/a")),
        0,
    ),
    Row(
        "-results: HTML-unsafe, non-ASCII and U+2028 encoded as Go does (§6.2)",
        ("-results", "a", *S0, *sh(f"printf '<&> é \\342\\200\\250 \\t\\001\\n' > {R}/results/a")),
        0,
    ),
    Row(
        "-results: written by a failing child, still read (exit 4)",
        ("-results", "a", *S0, *sh(f"echo -n A > {R}/results/a; exit 4")),
        4,
    ),
    Row(
        "size: whole message exactly 4096 bytes",
        ("-results", "a", *S0, *sh("true")),
        0,
        files={"results/a": AT_LIMIT},
    ),
    Row(
        "size: 4097 bytes once StartedAt is added: finaliser fails, exit 1",
        ("-results", "a", *S0, *sh("true")),
        1,
        files={"results/a": AT_LIMIT + "x"},
        texts=(f"Error while writing message: {ABOVE_LIMIT}",),
    ),
    Row(
        "size: the results phase alone exactly 4096 bytes: finaliser fails, exit 1",
        ("-results", "a", *S0, *sh("true")),
        1,
        files={"results/a": RESULTS_PHASE_AT_LIMIT},
        texts=(f"Error while writing message: {ABOVE_LIMIT}",),
    ),
    Row(
        "size: the results phase over 4096: phase fails, StartedAt still written, exit 1",
        ("-results", "a", *S0, *sh("true")),
        1,
        files={"results/a": RESULTS_PHASE_AT_LIMIT + "x"},
        texts=(ABOVE_LIMIT,),
    ),
    Row(
        "size: over the limit after a failing child exits 1, not the child's 3 (§10 item 12)",
        ("-results", "a", *S0, *sh("exit 3")),
        1,
        files={"results/a": RESULTS_PHASE_AT_LIMIT + "x"},
        texts=(ABOVE_LIMIT,),
    ),
    Row(
        "size: step result making the message exactly 4096 bytes",
        ("-step_results", "a", *S0, *sh("true")),
        0,
        files={"run/0/status/results/a": filler(LIMIT, ONE_RESULT, STARTED_AT_ENTRY)},
    ),
    Row(
        "size: step result over 4096 fails the phase",
        ("-step_results", "a", *S0, *sh("true")),
        1,
        files={"run/0/status/results/a": RESULTS_PHASE_AT_LIMIT + "x"},
        texts=(ABOVE_LIMIT,),
    ),
    Row(
        "-compress_termination_message: results compressed with tknz: (§6.4)",
        ("-compress_termination_message", "-results", "a,b", *S0, *sh("true")),
        0,
        # Compared inflated (see ``as_written``): the DEFLATE streams need not be the same
        # bytes (§6.4), the JSON inside must be.
        files={"results/a": "ab" * 900, "results/b": "cd" * 900},
    ),
    Row(
        "-result_from sidecar-logs: no results in the termination message (§6.7)",
        ("-result_from", "sidecar-logs", "-results", "a", *S0, *sh(f"echo -n A > {R}/results/a")),
        0,
    ),
    Row(
        "artifacts: step and task provenance.json, keys are the full paths (§4.1 R10)",
        (
            *S0,
            *sh(
                f"mkdir -p {R}/run/0/status/artifacts; "
                f"echo -n '{{\"outputs\":[]}}' > {R}/run/0/status/artifacts/provenance.json; "
                f"echo -n '{{\"inputs\":[]}}' > {R}/artifacts/provenance.json"
            ),
        ),
        0,
    ),
    # -- the termination file (§6.1) --------------------------------------------------------------------
    Row(
        "-termination_path elsewhere: existing entries kept, new ones appended",
        (
            "-termination_path",
            f"{R}/custom-term",
            "-results",
            "a",
            *S0[:2],
            *S0[4:],
            *sh(f"echo -n A > {R}/results/a"),
        ),
        0,
        files={"custom-term": '[{"key":"old","value":"1","type":1}]'},
        termination="custom-term",
    ),
    Row(
        "-termination_path: unparsable existing content is dropped (§10 item 21)",
        (*S0, *sh("true")),
        0,
        files={"termination": "not json"},
    ),
    # -- timeout (§4.6) ---------------------------------------------------------------------------------
    Row(
        "-timeout expiry: killed, Reason TimeoutExceeded, exit 1",
        (*S0, "-timeout", "500ms", *sh("exec sleep 10")),
        1,
        texts=("context deadline exceeded",),
    ),
    Row("-timeout not reached", (*S0, "-timeout", "1m", *sh("echo ok")), 0),
    Row(
        "-timeout negative: not run, exit 1",
        (*S0, "-timeout", "-10s", *sh(f"touch {R}/ran")),
        1,
        texts=("negative timeout specified",),
    ),
    # -- cancellation through the downward file (§4.6); -keep_pod_on_cancel is the controller's
    # feature flag that mounts that file, not an entrypoint flag (it is not in -help) ------------------
    Row(
        "cancel file gets content: killed, exitCode killed, Reason Cancelled, exit 9",
        (*S0, *sh(f": > {MARK}; exec sleep 10")),
        9,
        trigger=Trigger("downward/cancel", "CANCEL", after="started"),
        texts=("Step was cancelled",),
    ),
    Row(
        "a signal to the entrypoint is forwarded to the child's process group (§4.7)",
        # No child process at all, the mark included (a redirection, not `touch`): a child hit by
        # the group's SIGTERM makes the shell print "Terminated" or not, depending on the moment.
        # CI showed it twice, for Go and ours alike: first with a `sleep`, then with the `touch`
        # that made the mark, still exiting when the trigger saw its file.
        (*S0, *sh(f"trap 'echo got-term; exit 42' TERM; : > {MARK}; while :; do :; done")),
        42,
        trigger=Trigger(after="started", signal=signal.SIGTERM),
    ),
    # -- output copies (§4.7) ---------------------------------------------------------------------------
    Row(
        "-stdout_path and -stderr_path: streams copied (nested parent created)",
        (
            "-stdout_path",
            f"{R}/logs/out.log",
            "-stderr_path",
            f"{R}/logs/deeper/err.log",
            *S0,
            *sh("echo to-out; echo to-err >&2"),
        ),
        0,
    ),
    Row(
        "-stdout_path = -stderr_path: both streams in one file, appended",
        (
            "-stdout_path",
            f"{R}/logs/both.log",
            "-stderr_path",
            f"{R}/logs/both.log",
            *S0,
            *sh("echo o; echo e >&2"),
        ),
        0,
        files={"logs/both.log": "existing\n"},
        sort_stdout_file="logs/both.log",
    ),
    # -- the command (§2.1, §2.6) -----------------------------------------------------------------------
    Row(
        "-entrypoint with args after --, a later -- kept literally",
        (*S0, "-entrypoint", "/bin/echo", "--", "a", "b c", "--", "-d"),
        0,
    ),
    Row(
        "-entrypoint with positional args but no --: dropped (§10 item 1)",
        (*S0, "-entrypoint", "/bin/echo", "dropped", "too"),
        0,
    ),
    Row(
        "TEKTON_PLATFORM_COMMANDS gives the command when -entrypoint is absent",
        (*S0, "--", "from-args"),
        0,
        env={
            "TEKTON_PLATFORM_COMMANDS": '{"linux/amd64":["/bin/echo","amd64"],'
            '"linux/arm64":["/bin/echo","arm64"],"linux/arm64/v8":["/bin/echo","arm64/v8"]}'
        },
    ),
    Row(
        "environment passed to the child unchanged",
        # SIGNED_ENTRYPOINT_ROOT is this harness's own (ours is given it to find its root; Go runs
        # with the real /tekton and is not), so it is left out of the listing.
        (*S0, *sh("env | grep -v '^SIGNED_ENTRYPOINT_ROOT=' | sort")),
        0,
        env={"DIFF_VAR": "a value with spaces", "EMPTY_VAR": ""},
    ),
    Row("working directory inherited", (*S0, *sh("pwd")), 0),
    # -- when expressions (§4.5) ------------------------------------------------------------------------
    Row(
        "--when_expressions false: skipped successfully",
        (
            *S0,
            "--when_expressions",
            '[{"input":"foo","operator":"in","values":["bar"]}]',
            *sh(f"touch {R}/ran"),
        ),
        0,
        texts=("Step was skipped due to when expressions were evaluated to false.",),
    ),
    Row(
        "--when_expressions true (in, and CEL)",
        (
            *S0,
            "--when_expressions",
            '[{"input":"foo","operator":"in","values":["foo"]},{"cel":"1 < 2"}]',
            *sh("echo ran"),
        ),
        0,
    ),
    Row(
        "--when_expressions: a CEL error fails the step without running it",
        (*S0, "--when_expressions", '[{"cel":"foo==foo"}]', *sh(f"touch {R}/ran")),
        1,
    ),
    Row(
        "--when_expressions: invalid JSON is fatal before anything runs",
        (*S0, "--when_expressions", "[{", *sh(f"touch {R}/ran")),
        1,
    ),
    # -- flags (§2.2, §2.3) -----------------------------------------------------------------------------
    Row(
        "undefined flag -wait_file_contents: exit 2 (§2.3)",
        (*S0, "-wait_file_contents", *sh("echo ran")),
        2,
        texts=("flag provided but not defined: -wait_file_contents",),
        child_stderr=False,
        undefined_flags=("wait_file_contents",),
    ),
    # -- subcommands (§2.5) -----------------------------------------------------------------------------
    Row(
        "cp SRC DST: copied with mode 0311",
        ("cp", f"{R}/src", f"{R}/bin/entrypoint"),
        0,
        files={"src": "#!/bin/sh\necho binary\n"},
        texts=(f"Copied {R}/src to {R}/bin/entrypoint",),
    ),
    Row(
        "cp onto a longer existing file: not truncated (§10 item 14)",
        ("cp", f"{R}/src", f"{R}/bin/entrypoint"),
        0,
        files={"src": "short", "bin/entrypoint": "a much longer existing file"},
    ),
    Row(
        "cp with a missing source: exit 1",
        ("cp", f"{R}/nope", f"{R}/bin/entrypoint"),
        1,
        texts=(f"cp error: open {R}/nope: no such file or directory",),
    ),
    Row(
        "init SRC DST STEP...: copies and creates the /tekton/steps links",
        ("init", f"{R}/src", f"{R}/bin/entrypoint", "step-a", "step-b"),
        0,
        files={"src": "binary"},
        texts=("Entrypoint initialization",),
    ),
    Row(
        "step-init: links kept when they exist (idempotent)",
        ("step-init", "step-a"),
        0,
        links={"steps/step-a": f"{R}/run/7/status"},
        texts=("Setup /step directories",),
    ),
    Row(
        "decode-script: base64 with a trailing newline decoded in place, mode kept",
        ("decode-script", f"{R}/scripts/script-0-abcde"),
        0,
        files={"scripts/script-0-abcde": "IyEvdXNyL2Jpbi9lbnYgc2gKZWNobyAi\nSGVsbG8gV29ybGQhIgo=\n"},
        modes={"scripts/script-0-abcde": 0o750},
        texts=(f"Decoded script {R}/scripts/script-0-abcde",),
    ),
    Row(
        "decode-script: bad base64 exits 1",
        ("decode-script", f"{R}/scripts/bad"),
        1,
        files={"scripts/bad": "!"},
        texts=(
            f'decode-script error: error decoding script file "{R}/scripts/bad": error decoding script file '
            f'"{R}/scripts/bad": illegal base64 data at input byte 0',
        ),
    ),
    Row(
        "-- at index 0: the args after it go to the subcommands (§2.1)",
        ("--", "cp", f"{R}/src", f"{R}/bin/copied"),
        0,
        files={"src": "x"},
    ),
]


# -- the peer and the test ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_entrypoint() -> str:
    p = subprocess.run(
        ["bash", str(REPO / "tools" / "peers.sh"), "path", "entrypoint"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert p.returncode == 0, f"building Tekton's entrypoint (tools/peers.sh path entrypoint): {p.stderr}"
    return p.stdout.strip()


@pytest.fixture(scope="module")
def go_help(go_entrypoint: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Go's ``-help`` output, run in the namespace the rows use (so this also proves it works)."""
    base = tmp_path_factory.mktemp("go-help")
    (base / "tekton").mkdir()
    (base / "namespace").mkdir()
    prefix = namespace_prefix(str(base / "tekton"), str(base / "namespace"), go_entrypoint)
    p = subprocess.run([*prefix, "-help"], capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0 and "-wait_file_content" in p.stderr, (
        "Tekton's entrypoint did not run with /tekton bind-mounted in a private mount namespace "
        f"(unshare --mount, overlay, chroot): {p.returncode}\n{p.stdout}{p.stderr}"
    )
    return p.stderr


def row_flags(row: Row) -> set[str]:
    """The flag names a row passes (the part before ``--``; values that look like flags excluded)."""
    args = list(row.args)
    if "--" in args[1:]:
        args = args[: args.index("--", 1)]
    return {m.group(1) for a in args if (m := re.fullmatch(r"--?([a-z][a-z_-]*)(=.*)?", a))} - {"c"}


def test_every_flag_is_one_tekton_has(go_help: str) -> None:
    documented = set(re.findall(r"^  -([a-z_-]+)", go_help, re.MULTILINE))
    for row in ROWS:
        flags = row_flags(row)
        assert flags & set(row.undefined_flags) == set(row.undefined_flags), row.name
        assert flags - set(row.undefined_flags) <= documented, (row.name, flags - documented)
        assert not set(row.undefined_flags) & documented, row.name


def test_rows_are_named_uniquely() -> None:
    assert len({r.name for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_same_step_same_outcome(row: Row, go_entrypoint: str, go_help: str, tmp_path: Path) -> None:
    del go_help  # the namespace works
    go = Executable("Go", (go_entrypoint,), sandboxed=True)
    ours = Executable("ours", tuple(entrypoint_command()), sandboxed=False)
    (tmp_path / "go").mkdir()
    (tmp_path / "ours").mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        go_future = pool.submit(go.run, row, tmp_path / "go")
        ours_future = pool.submit(ours.run, row, tmp_path / "ours")
        theirs, mine = go_future.result(), ours_future.result()

    assert theirs.status == row.status, f"Go's own status is not what the row expects:\n{theirs}"
    for text in row.texts:
        wanted = text.replace(R, GO_ROOT)
        assert any(wanted in line for line in theirs.logs + theirs.child_stderr), ("Go", wanted, theirs.logs)
        assert any(wanted in line for line in mine.logs + mine.child_stderr), ("ours", wanted, mine.logs)
    go_facets, our_facets = theirs.facets(), mine.facets()
    if not row.child_stderr:
        del go_facets["child_stderr"], our_facets["child_stderr"]
    for facet, differs in row.differs.items():
        assert (go_facets[facet], our_facets[facet]) == (differs.go, differs.ours), facet
        del go_facets[facet], our_facets[facet]
    differences = {f: (go_facets[f], our_facets[f]) for f in go_facets if go_facets[f] != our_facets[f]}
    assert not differences, "\n".join(
        f"{f}:\n  Go:   {g!r}\n  ours: {o!r}" for f, (g, o) in differences.items()
    )
