"""The SPIRE backend: an X.509-SVID from the SPIFFE Workload API, via py-spiffe.

SPIRE registers a TaskRun's workload entry a few seconds after the pod starts (spiffe/spire#2760),
so a fetch is retried as Tekton retries it: an attempt at once, then one per tick of a fixed
interval (2 s) until a total budget (20 s) runs out.  Every call has a deadline.
"""

from __future__ import annotations

import threading
import time

from entrypoint._internal.backends.spire.evidence import x509_identity
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity


class SvidFetcher:
    """Fetches the default X.509-SVID from a SPIFFE Workload API, retrying as Tekton does."""

    name = "spire"

    def __init__(self, address: str, budget: float = 20.0, interval: float = 2.0) -> None:
        self.address = address
        self.budget = budget
        self.interval = max(interval, 0.01)  # a zero tick would spin without ever sleeping
        self._client: object | None = None
        self._lock = threading.Lock()

    def fetch(self, budget: float | None = None) -> Identity:
        """Fetch the default X.509-SVID, retrying until ``budget`` seconds have passed."""
        total = self.budget if budget is None else budget
        deadline = time.monotonic() + total
        last = "no attempt made"
        next_tick = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                identity = self._attempt(remaining)
            except SigningError as exc:
                last = str(exc)
            else:
                # gRPC keeps Python threads polling an open channel; they would compete for the
                # GIL with the step's own work after the command.  Re-opened if a re-fetch is due.
                self.close()
                return identity
            # Fixed ticks, not exponential: a tick that passed during a slow attempt is coalesced.
            next_tick += self.interval
            while next_tick <= time.monotonic():
                next_tick += self.interval
            pause = min(next_tick, deadline) - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        raise SigningError(f"failed to fetch SVID: {last}: context deadline exceeded")

    def _attempt(self, timeout: float) -> Identity:
        from spiffe import WorkloadApiClient
        from spiffe.errors import PySpiffeError

        with self._lock:
            try:
                if self._client is None:
                    # py-spiffe refuses a socket that does not exist yet: the agent may be late.
                    self._client = WorkloadApiClient(socket_path=self.address, default_timeout=timeout)
                client = self._client
                assert isinstance(client, WorkloadApiClient)
                svid = client.fetch_x509_svid(timeout=max(timeout, 0.001))
            except PySpiffeError as exc:
                raise SigningError(f"spire workload API ({self.address}): {exc}") from exc
        return x509_identity(svid.private_key, svid.cert_chain, str(svid.spiffe_id))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        close = getattr(client, "close", None)
        if callable(close):
            close()


Fetcher = SvidFetcher  # the name the backend registry looks up
