"""Tekton's signed-results wire format, byte for byte (spec §7.4-7.6).

Appended after a phase's results, all type 1: ``SVID`` (leaf PEM, then any intermediates),
``<name>.sig`` for each task result, ``RESULT_MANIFEST`` (comma-joined names) and
``RESULT_MANIFEST.sig``.  Each signature is
standard base64 (padded) over the result's canonical value.

What stands in place of ``SVID`` is the backend's (its ``evidence`` module): the oidc-sa-token
backend writes ``SA_TOKEN_KEY`` and ``SA_TOKEN`` and has the token signed like a result.
"""

from __future__ import annotations

import base64

from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity
from entrypoint.termination import ResultType, RunResult

_TASK = int(ResultType.TASK_RUN_RESULT)


class TektonFormat:
    """Tekton's format: signing entries appended per results phase."""

    name = "tekton"
    seals = False

    def __init__(self) -> None:
        self._signed_a_phase = False

    def warm_up(self, identity: Identity) -> None:
        """Exercise the signing path once (first uses are slow) without changing any state."""
        identity.evidence.warm_up()
        identity.sign(canonical_value("warm-up").encode())

    def sign(self, entries: list[RunResult], identity: Identity) -> list[RunResult]:
        task = [e for e in entries if e.type == _TASK]
        if not task and self._signed_a_phase:
            # Tekton appends an empty manifest for the step-results phase, which then supersedes
            # the task phase's manifest when the message is parsed (last key wins) and voids its
            # completeness guarantee (§10 item 24).  Verifiers need only one block: skip this one.
            return []
        self._signed_a_phase = True
        # The backend's entries first (SVID; or the key and the token), then one signature per
        # task result and per evidence entry the backend wants signed.
        out, signed_evidence = identity.evidence.tekton_entries(identity)
        out = list(out)
        for e in [*task, *signed_evidence]:
            sig = identity.sign(canonical_value(e.value).encode("utf-8", "surrogatepass"))
            out.append(RunResult(f"{e.key}.sig", base64.b64encode(sig).decode(), _TASK))
        # Result names only: a step's results never use reserved names (the lifecycle refuses them).
        manifest = ",".join(e.key for e in task if not e.key.endswith(".sig"))
        out.append(RunResult("RESULT_MANIFEST", manifest, _TASK))
        manifest_sig = identity.sign(manifest.encode("utf-8", "surrogatepass"))
        out.append(RunResult("RESULT_MANIFEST.sig", base64.b64encode(manifest_sig).decode(), _TASK))
        return out

    def after_write(self, written: list[RunResult]) -> None:
        """Nothing to tell later steps: each phase's block carries all it needs."""

    def seal_options(
        self,
        entries: list[RunResult],
        identity: Identity,
        embedded_elsewhere: frozenset[bytes] | None = None,
        *,
        exit_code: int | None = None,
    ) -> list[list[RunResult]]:
        raise SigningError("Tekton's format signs each results phase; it does not seal messages")
