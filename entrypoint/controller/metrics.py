"""The controller's Prometheus metrics and its /metrics, /healthz and /readyz endpoints."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from entrypoint._internal.verification.taskrun import TaskRunVerdict

PREFIX = "signed_entrypoint"


class Metrics:
    """Verifications by outcome, reason, backend and format; latency; queue depth; watch restarts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.verifications = Counter(
            f"{PREFIX}_taskrun_verifications",
            "TaskRun verifications by outcome, reason, identity backend and signature format.",
            ["namespace", "outcome", "reason", "backend", "format"],
            registry=self.registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_verification_duration_seconds",
            "Time to verify one TaskRun (all its steps).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.completion_to_condition = Histogram(
            f"{PREFIX}_completion_to_condition_seconds",
            "From a TaskRun's completionTime to its SignedResultsVerified condition being written.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "TaskRuns waiting for a worker.", registry=self.registry
        )
        self.watch_restarts = Counter(
            f"{PREFIX}_watch_restarts", "Watch restarts by cause.", ["cause"], registry=self.registry
        )
        self.leader = Gauge(
            f"{PREFIX}_leader", "1 while this replica holds the lease.", registry=self.registry
        )
        self.retries = Counter(f"{PREFIX}_retries", "TaskRuns queued again after a transient failure.",
                               ["cause"], registry=self.registry)  # fmt: skip

    def observe(self, verdict: TaskRunVerdict, seconds: float) -> None:
        backends = sorted(
            {
                s.verdict.backend or _backend(s.verdict.identity)
                for s in verdict.steps
                if s.verdict and s.verdict.identity
            }
        )
        formats = sorted({s.verdict.format for s in verdict.steps if s.verdict and s.verdict.format})
        self.verifications.labels(
            verdict.namespace,
            str(verdict.outcome),
            str(verdict.reason),
            ",".join(backends) or "none",
            ",".join(formats) or "none",
        ).inc()
        self.duration.observe(seconds)


def _backend(identity: str) -> str:
    # A message that failed: the backend is a guess from who presented it.
    if identity.startswith("spiffe://"):
        return "spire"
    return "sigstore-keyless" if identity.startswith("https://") else "oidc-sa-token"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(
    metrics: Metrics, address: str, port: int, ready: Callable[[], bool]
) -> tuple[WSGIServer, threading.Thread]:
    """/metrics, /healthz (the process serves) and /readyz (``ready()``: the watch has listed)."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = ready()
            start("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not ready: the TaskRuns are not listed yet\n"]
        return prometheus(environ, start)  # type: ignore[no-any-return]

    server = make_server(address, port, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
