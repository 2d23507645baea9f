"""The packaged executable runs a step in any image: the acceptance matrix, with ``podman run``.

Every run is as strict as Tekton allows a step to be: read-only root filesystem, uid 1000, no network.
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

from tests.containers.conftest import TASKRUN_REF, TRUST_DOMAIN, Agent
from tests.containers.podman import (
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

_PRINT_ENV_PY = "import os; print(chr(10).join(k + '=' + v for k, v in os.environ.items()))"
COMMANDS = {
    "debian": ["-entrypoint", "/bin/sh", "--", "-c", f"printf %s debian-ok > /tekton/results/{RESULT}; env"],
    "musl": ["-entrypoint", "/bin/steptool", "--", "write", f"/tekton/results/{RESULT}", "musl-ok", "env"],
    "static": ["-entrypoint", "/bin/sh", "--", "-c", f"printf %s static-ok > /tekton/results/{RESULT}; env"],
    "empty": [
        "-entrypoint", ENTRYPOINT, "--", "--python", "-c",
        f"open('/tekton/results/{RESULT}', 'w').write('empty-ok'); {_PRINT_ENV_PY}",
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
        "run", "--rm", "--network", "none", "--read-only", "--user", "1000:1000",
        "-e", f"{MARK[0]}={MARK[1]}", *mounts,
        "--entrypoint", ENTRYPOINT, STEP_IMAGES[image], *args, *COMMANDS[image],
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"step failed in the {image} image:\n{proc.stdout}\n{proc.stderr}"

    assert (tekton / "run/0/out").exists(), "no post file"
    assert (tekton / "run/0/status/exitCode").read_text() == "0"
    message = tekton / "termination"
    assert results_of(message) == {RESULT: f"{image}-ok"}, message.read_text()

    env = child_environment(proc.stdout)
    assert env.get(MARK[0]) == MARK[1], f"the step's environment did not reach its command: {proc.stdout}"
    assert not leaked(env), f"the bundle's environment leaked into the step's command: {leaked(env)}"

    verdict = verify(message, TASKRUN_REF, TRUST_DOMAIN, spire_agent.bundle)
    if not signed:
        assert "SVID" not in keys_of(message)
        assert verdict.returncode == 1, f"an unsigned message verified:\n{verdict.stdout}{verdict.stderr}"
        return
    assert "SVID" in keys_of(message)
    assert verdict.returncode == 0, f"signed message did not verify:\n{verdict.stdout}{verdict.stderr}"
    forged = verify(
        tampered_copy(message, RESULT, "forged", tmp_path / "forged"),
        TASKRUN_REF,
        TRUST_DOMAIN,
        spire_agent.bundle,
    )
    assert forged.returncode == 1, f"a tampered message verified:\n{forged.stdout}{forged.stderr}"
