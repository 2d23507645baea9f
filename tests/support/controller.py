"""``entrypoint controller`` as a process against the Kubernetes API double (or any API server):
started with a service-account token of its own, its output kept in files, its metrics address
read from its log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.tekton import entrypoint_command

T = TypeVar("T")
CONTROLLER_NS, CONTROLLER_SA = "signed-entrypoint", "signed-entrypoint-controller"
# Fast leader election for tests: a replica that stops renewing loses the Lease within 2 s.
FAST_LEASE = ("--lease-duration", "2", "--renew-deadline", "1.5", "--retry-period", "0.2")


def wait_for(what: str, check: Callable[[], T | None], seconds: float = 30, interval: float = 0.05) -> T:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(interval)


class ControllerProcess:
    """One replica; ``args`` are its command-line arguments after ``entrypoint controller``."""

    def __init__(self, directory: Path, args: Sequence[str], *, name: str = "controller") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.stdout, self.stderr = directory / f"{name}.out", directory / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [*entrypoint_command(), "controller", "--metrics-address", "127.0.0.1", "--metrics-port", "0",
                 *args],
                stdout=out, stderr=err, env=env,
            )  # fmt: skip
        self._metrics_url: str | None = None

    @property
    def metrics_url(self) -> str:
        if self._metrics_url is None:

            def port() -> str | None:
                assert self.process.poll() is None, f"the controller exited: {self.log()}"
                found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/", self.log())
                return found[1] if found else None

            self._metrics_url = f"http://127.0.0.1:{wait_for('the metrics address', port)}"
        return self._metrics_url

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def audit_lines(self) -> list[dict[str, Any]]:
        lines = self.stdout.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.metrics_url + path, timeout=5)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include ``labels`` (0 when none)."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            m = re.fullmatch(r"([a-z_:]+)(?:\{(.*)\})? (\S+)", line)
            if not m or m[1] != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m[2] or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(m[3])
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)
