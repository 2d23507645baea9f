"""End-to-end fixtures: the real control plane of tools/peers.sh (etcd + kube-apiserver built from the
Go module proxy), started once for the session on free ports with its state in a temporary directory,
and stopped at the end.

``make e2e`` and ``make test`` build the peers first (``tools/peers.sh build etcd kube-apiserver
tekton-controller``, ~15 minutes cold on two cores) and then run this suite.  Where they are not built
(pytest run by hand), every test here is skipped with
that reason, and only then: a control plane that is built but fails to start fails the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.realkube import ControlPlane, free_ports, not_built, peers, read_env
from tests.support.paths import REPO
from tests.support.podman import ENTRYPOINT_IMAGE, STEP_IMAGES, podman_env

DIST_ENTRYPOINT = REPO / "dist" / "bin" / "entrypoint"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    why = not_built()
    if why:
        pytest.skip(f"the real control plane is not built ({why}); `make e2e` builds it")
    run_dir = tmp_path_factory.mktemp("peers-run")
    api, etcd, etcd_peer = free_ports(3)
    env = {
        "PEERS_RUN_DIR": str(run_dir),
        "PEERS_API_PORT": str(api),
        "PEERS_ETCD_PORT": str(etcd),
        "PEERS_ETCD_PEER_PORT": str(etcd_peer),
    }
    started = peers("start", env=env, timeout=240)
    try:
        assert started.returncode == 0, f"tools/peers.sh start failed:\n{started.stdout}{started.stderr}"
        described = peers("env", env=env)
        assert described.returncode == 0, described.stderr
        yield ControlPlane.from_env(read_env(described.stdout), run_dir, env)
    finally:
        stopped = peers("stop", env=env, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        _keep_logs(run_dir)


@dataclass(frozen=True)
class Tekton:
    """Tekton's controller, reconciling TaskRuns on the control plane."""

    namespace: str
    entrypoint_image: str
    version: str


@pytest.fixture(scope="session")
def tekton(control_plane: ControlPlane) -> Tekton:
    """Tekton's CRDs and ConfigMaps (from the Go module cache) and its controller, started once on
    the session's control plane (``tools/peers.sh start tekton``) and stopped with it."""
    why = not_built("tekton-controller")
    if why:
        pytest.skip(f"Tekton's controller is not built ({why}); `make e2e` builds it")
    probes, profiling = free_ports(2)
    env = {
        **control_plane.peers_env,
        "PEERS_TEKTON_PROBES_PORT": str(probes),
        "PEERS_TEKTON_PROFILING_PORT": str(profiling),
    }
    started = peers("start", "tekton", env=env, timeout=240)
    assert started.returncode == 0, f"tools/peers.sh start tekton failed:\n{started.stdout}{started.stderr}"
    found = read_env(peers("env", env=env).stdout)
    return Tekton(
        found["PEERS_TEKTON_NAMESPACE"], found["PEERS_ENTRYPOINT_IMAGE"], found["PEERS_TEKTON_VERSION"]
    )


def _keep_logs(run_dir: Path) -> None:
    """The peers' logs stay in the temporary directory (pytest keeps the last three runs)."""
    for log in sorted(run_dir.glob("*.log")):
        if log.stat().st_size:
            print(f"control plane log: {log}")


@pytest.fixture(scope="session")
def images() -> Iterator[None]:
    """podman, rootful, with the images of images/build.sh; and the executable they were built from."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: run `bash images/ensure-tools.sh` as root (`make image` does)")
    missing = [
        image
        for image in (ENTRYPOINT_IMAGE, STEP_IMAGES["debian"], STEP_IMAGES["musl"])
        if subprocess.run(["podman", "image", "exists", image], env=podman_env(), check=False).returncode
    ]
    if missing:
        pytest.skip(f"the images {missing} are not built: `make image` builds them")
    assert os.geteuid() == 0, (
        "the pod executor runs rootful podman (hostPath volumes, host uids): run as root"
    )
    # `entrypoint verify` is the executable the entrypoint image holds, unless ENTRYPOINT_BIN says otherwise.
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("ENTRYPOINT_BIN"):
            assert DIST_ENTRYPOINT.is_file(), f"{DIST_ENTRYPOINT} is missing: `make binary` builds it"
            mp.setenv("ENTRYPOINT_BIN", str(DIST_ENTRYPOINT))
        yield
