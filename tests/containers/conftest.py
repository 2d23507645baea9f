"""Session fixtures of the container tests: podman that works, the images, the executable as Tekton's
init container leaves it, and a Workload API server that containers can reach.

Nothing here skips: a machine that cannot run these tests fails them with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support.containers import Agent
from tests.support.paths import REPO
from tests.support.pki import SPIFFE_ID, TD
from tests.support.podman import (
    ENTRYPOINT,
    ENTRYPOINT_IMAGE,
    SPIFFE_SOCKET_NAME,
    TEKTON_BIN,
    podman,
    podman_env,
)

DIST_BIN = REPO / "dist" / "bin"
# A cold build of every image takes ~10 s; a cached one ~3 s.  Tool installation may come first.
BUILD_TIMEOUT = 900


@pytest.fixture(scope="session")
def container_images() -> None:
    """The entrypoint image (from dist/bin/) and the step images, built or brought up to date."""
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed, so no container can run here: run `bash images/ensure-tools.sh` as root"
            " (`make image` and `make test` do), or `apt-get install podman buildah runc catatonit`"
        )
    if os.geteuid() != 0:
        pytest.fail(
            "the container tests run rootful podman (runc, host uids, hostPath volumes) and need root;"
            " run them as root"
        )
    if not (DIST_BIN / "entrypoint").is_file():
        pytest.fail(f"{DIST_BIN / 'entrypoint'} is missing: run `make image` (it builds `make binary` first)")
    # The tests drive podman, so the images must be podman's even where `make image` chose docker.
    proc = subprocess.run(
        ["bash", str(REPO / "images" / "build.sh")],
        env={**podman_env(), "IMAGE_ENGINE": "podman"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        cwd=REPO,
    )
    if proc.returncode != 0:
        pytest.fail(
            "building the images failed (IMAGE_ENGINE=podman bash images/build.sh):\n"
            f"{proc.stdout}{proc.stderr}"
        )


@pytest.fixture(scope="session")
def tekton_bin(container_images: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host directory holding what the entrypoint image's ``init`` copied into /tekton/bin."""
    out = tmp_path_factory.mktemp("tekton-bin")
    out.chmod(0o777)  # as a Kubernetes emptyDir is: steps of any uid reach the executable
    podman(
        "run", "--rm", "--network", "none", "-v", f"{out}:{TEKTON_BIN}", ENTRYPOINT_IMAGE,
        "init", "/ko-app/entrypoint", ENTRYPOINT,
    )  # fmt: skip
    # Whatever layout the bundle has, the copy must hold all of it: compare with dist/bin/.
    missing = []
    for path in DIST_BIN.rglob("*"):
        copy = out / path.relative_to(DIST_BIN)
        if path.is_symlink():
            ok = copy.is_symlink()
        elif path.is_dir():
            ok = copy.is_dir()
        else:
            ok = copy.is_file() and copy.stat().st_size == path.stat().st_size
        if not ok:
            missing.append(str(path.relative_to(DIST_BIN)))
    assert not missing, f"`init` did not copy these parts of dist/bin/ into /tekton/bin: {missing[:10]}"
    return out


@pytest.fixture(scope="session")
def spire_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """A Workload API server serving the TaskRun's SPIFFE ID to every caller, as SPIRE serves every
    container of a registered TaskRun pod.  Its socket directory is what the SPIFFE CSI driver would
    mount at /spiffe-workload-api.  Rootful podman keeps host uids, so a step running as uid 1000 is
    uid 1000 here: the directory and socket are opened to all users, as the CSI driver's are."""
    ca = TestCA(TD)
    socket_dir = Path(tempfile.mkdtemp(prefix="wlc", dir="/tmp"))  # sun_path is short
    socket_dir.chmod(0o755)
    server = WorkloadAPIServer(str(socket_dir / SPIFFE_SOCKET_NAME), ca, SPIFFE_ID)
    bundle = tmp_path_factory.mktemp("trust") / "bundle.pem"
    bundle.write_bytes(ca.bundle_pem())
    server.start()
    try:
        (socket_dir / SPIFFE_SOCKET_NAME).chmod(0o666)
        yield Agent(server, socket_dir, bundle)
    finally:
        server.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
