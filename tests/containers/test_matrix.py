"""The packaged executable runs a step in any image: the acceptance matrix, with ``podman run``.

Every run is as strict as Tekton allows a step to be: read-only root filesystem, uid 1000, no network.
The root is read-only as Kubernetes' ``readOnlyRootFilesystem`` makes it, with no writable /tmp: podman's
``--read-only`` alone mounts a tmpfs on /tmp, /var/tmp and /run, so the runs add
``--read-only-tmpfs=false``, and each checks that the step cannot write /tmp (a shell redirection in the
Debian and static images, the bundled interpreter in the empty one, and, because steptool stops at its
first failing operation, a second container with the same flags running ``/bin/steptool write`` in the
musl one).  In the images without a /tmp (musl, static, empty) the write fails because the directory
does not exist and cannot be made; in Debian's, with "Read-only file system".
/tekton/bin is what the entrypoint image's ``init`` copied (the ``tekton_bin`` fixture); the other
/tekton paths are host directories, so that the test reads what the step left behind.

The step's command in each image:
  debian  /bin/sh (dash) and coreutils, on Debian's glibc;
  musl    steptool, dynamically linked against musl (images/musl/steptool.c): there is no glibc;
  static  busybox's sh, statically linked: no C library in the image at all;
  empty   nothing at all: the image has no files, so the only program there is the entrypoint
          itself.  Its bundled interpreter (``/tekton/bin/entrypoint --python``) is the step's
          command.  That still runs through the whole lifecycle (the child is spawned, results are
          read, the post file and termination message written, results signed); what it cannot show
          is running a program of the image, which the other three rows show.
Each command writes a task result and prints its environment, which must be the step's own: the
variable the step sets arrives, and nothing of the bundle's (LD_LIBRARY_PATH, PYTHONHOME, ...) leaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.containers import Agent
from tests.support.pki import TASKRUN_REF, TD
from tests.support.podman import (
    ENTRYPOINT,
    SPIFFE_MOUNT,
    STEP_IMAGES,
    TEKTON_BIN,
    child_environment,
    keys_of,
    leaked,
    podman,
    results_of,
    tampered_copy,
    verify,
)

RESULT = "greeting"
MARK = ("STEP_MARK", "set-by-the-step")

# As strict as Tekton allows a step to be; --read-only-tmpfs=false: no writable /tmp, /var/tmp, /run.
STRICT = ["--network", "none", "--read-only", "--read-only-tmpfs=false", "--user", "1000:1000"]
TMP_PROBE = "/tmp/probe"
TMP_REFUSED, TMP_WRITTEN = "tmp probe: refused", "tmp probe: written"

_PRINT_ENV_PY = "import os; print(chr(10).join(k + '=' + v for k, v in os.environ.items()))"
_TMP_PROBE_SH = f"if printf x > {TMP_PROBE}; then echo '{TMP_WRITTEN}'; else echo '{TMP_REFUSED}'; fi"
_TMP_PROBE_PY = (
    "try:\n"
    f"    open({TMP_PROBE!r}, 'w').close()\n"
    "except OSError as e:\n"
    f"    print({TMP_REFUSED!r}, e)\n"
    "else:\n"
    f"    print({TMP_WRITTEN!r})\n"
)
COMMANDS = {
    "debian": [
        "-entrypoint", "/bin/sh", "--", "-c",
        f"printf %s debian-ok > /tekton/results/{RESULT}; {_TMP_PROBE_SH}; env",
    ],
    "musl": ["-entrypoint", "/bin/steptool", "--", "write", f"/tekton/results/{RESULT}", "musl-ok", "env"],
    "static": [
        "-entrypoint", "/bin/sh", "--", "-c",
        f"printf %s static-ok > /tekton/results/{RESULT}; {_TMP_PROBE_SH}; env",
    ],
    "empty": [
        "-entrypoint", ENTRYPOINT, "--", "--python", "-c",
        f"open('/tekton/results/{RESULT}', 'w').write('empty-ok')\n{_TMP_PROBE_PY}{_PRINT_ENV_PY}",
    ],
}  # fmt: skip


def host_tekton(base: Path) -> Path:
    """The writable /tekton paths of one step, on the host, open to the step's uid as emptyDirs are."""
    for d in ("run/0", "results"):
        (base / d).mkdir(parents=True)
        (base / d).chmod(0o777)
    term = base / "termination"
    term.touch()
    term.chmod(0o666)
    return base


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("image", ["empty", "musl", "debian", "static"])
def test_step_runs_in_image(
    image: str, signed: bool, tekton_bin: Path, spire_agent: Agent, tmp_path: Path
) -> None:
    tekton = host_tekton(tmp_path / "tekton")
    mounts = [
        "-v", f"{tekton_bin}:{TEKTON_BIN}:ro",
        "-v", f"{tekton / 'run'}:/tekton/run",
        "-v", f"{tekton / 'results'}:/tekton/results",
        # The kubelet mounts a host file at terminationMessagePath; so does this.
        "-v", f"{tekton / 'termination'}:/tekton/termination",
    ]  # fmt: skip
    args = [
        "-post_file", "/tekton/run/0/out",
        "-termination_path", "/tekton/termination",
        "-step_metadata_dir", "/tekton/run/0/status",
        "-results", RESULT,
    ]  # fmt: skip
    if signed:
        mounts += ["-v", f"{spire_agent.socket_dir}:{SPIFFE_MOUNT}:ro"]
        args.append("-enable_spire")  # the socket is the default one, as in a Tekton pod
    proc = podman(
        "run", "--rm", *STRICT,
        "-e", f"{MARK[0]}={MARK[1]}", *mounts,
        "--entrypoint", ENTRYPOINT, STEP_IMAGES[image], *args, *COMMANDS[image],
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"step failed in the {image} image:\n{proc.stdout}\n{proc.stderr}"

    assert (tekton / "run/0/out").exists(), "no post file"
    assert (tekton / "run/0/status/exitCode").read_text() == "0"
    message = tekton / "termination"
    assert results_of(message) == {RESULT: f"{image}-ok"}, message.read_text()

    assert_tmp_is_not_writable(image, proc.stdout, proc.stderr)

    env = child_environment(proc.stdout)
    assert env.get(MARK[0]) == MARK[1], f"the step's environment did not reach its command: {proc.stdout}"
    assert not leaked(env), f"the bundle's environment leaked into the step's command: {leaked(env)}"

    verdict = verify(message, TASKRUN_REF, TD, spire_agent.bundle)
    if not signed:
        assert "SVID" not in keys_of(message)
        assert verdict.returncode == 1, f"an unsigned message verified:\n{verdict.stdout}{verdict.stderr}"
        return
    assert "SVID" in keys_of(message)
    assert verdict.returncode == 0, f"signed message did not verify:\n{verdict.stdout}{verdict.stderr}"
    forged = verify(
        tampered_copy(message, RESULT, "forged", tmp_path / "forged"),
        TASKRUN_REF,
        TD,
        spire_agent.bundle,
    )
    assert forged.returncode == 1, f"a tampered message verified:\n{forged.stdout}{forged.stderr}"


def assert_tmp_is_not_writable(image: str, stdout: str, stderr: str) -> None:
    """The step's command could not write /tmp (probed in the step's own container), or, in the musl
    image, a container with the same flags could not."""
    if image == "musl":
        probe = podman(
            "run", "--rm", *STRICT, "--entrypoint", "/bin/steptool", STEP_IMAGES[image],
            "write", TMP_PROBE, "x",
            check=False,
        )  # fmt: skip
        assert probe.returncode == 1, f"/tmp is writable in the musl image:\n{probe.stdout}{probe.stderr}"
        assert f"steptool: write {TMP_PROBE}: " in probe.stderr, probe.stderr
        return
    assert TMP_WRITTEN not in stdout, f"/tmp is writable in the {image} image"
    assert TMP_REFUSED in stdout, f"the {image} step did not probe /tmp:\n{stdout}\n{stderr}"
