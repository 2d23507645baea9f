"""The companion controller: verifies every completed TaskRun as the cluster stores it and records
the verdict as its ``SignedResultsVerified`` condition (docs/controller.md).

    entrypoint controller --trust-domain example.org --trust-bundle /etc/spire/bundle.pem
    python -m entrypoint.controller ...

A thin layer over :class:`entrypoint.verify.Verifier`: a list-and-watch of ``tekton.dev/v1``
TaskRuns, a work queue, one reconciler that writes the condition, a Lease for leader election and
Prometheus metrics.  The step's executable never imports this package.
"""

from entrypoint.controller.reconciler import Mode, Reconciler

__all__ = ["Mode", "Reconciler"]
