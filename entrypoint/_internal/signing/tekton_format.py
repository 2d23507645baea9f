"""Tekton's signed-results wire format, byte for byte (spec §7.4-7.6).

Appended after a phase's results, all type 1: ``SVID`` (leaf PEM, then any intermediates),
``<name>.sig`` for each task result, ``RESULT_MANIFEST`` (comma-joined names) and
``RESULT_MANIFEST.sig``.  Each signature is
standard base64 (padded) over the result's canonical value.

With a token identity (``oidc-sa-token``) ``SVID`` gives way to ``SA_TOKEN_KEY`` (the public key,
PEM) and ``SA_TOKEN`` (the JWT), and ``SA_TOKEN.sig`` signs the token like a result, so that the
token cannot be swapped for another one naming the same key.
"""

from __future__ import annotations

import base64

from entrypoint._internal.backends.k8s_sat.common import KEY_ENTRY, TOKEN_ENTRY
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity
from entrypoint.termination import ResultType, RunResult

_TASK = int(ResultType.TASK_RUN_RESULT)


class TektonFormat:
    name = "tekton"
    seals = False

    def __init__(self) -> None:
        self._signed_a_phase = False

    def warm_up(self, identity: Identity) -> None:
        """Exercise the signing path once (first uses are slow) without changing any state."""
        if not identity.token:
            identity.chain_pem()
        identity.sign(canonical_value("warm-up").encode())

    def sign(self, entries: list[RunResult], identity: Identity) -> list[RunResult]:
        task = [e for e in entries if e.type == _TASK]
        if not task and self._signed_a_phase:
            # Tekton appends an empty manifest for the step-results phase, which then supersedes
            # the task phase's manifest when the message is parsed (last key wins) and voids its
            # completeness guarantee (§10 item 24).  Verifiers need only one block: skip this one.
            return []
        self._signed_a_phase = True
        if identity.token:
            out = [
                RunResult(KEY_ENTRY, identity.public_key_pem(), _TASK),
                RunResult(TOKEN_ENTRY, identity.token, _TASK),
            ]
            task = [*task, out[1]]
        else:
            out = [RunResult("SVID", identity.chain_pem(), _TASK)]
        for e in task:
            sig = identity.sign(canonical_value(e.value).encode("utf-8", "surrogatepass"))
            out.append(RunResult(f"{e.key}.sig", base64.b64encode(sig).decode(), _TASK))
        manifest = ",".join(
            e.key for e in task if not e.key.endswith(".sig") and e.key not in ("SVID", TOKEN_ENTRY)
        )
        out.append(RunResult("RESULT_MANIFEST", manifest, _TASK))
        manifest_sig = identity.sign(manifest.encode("utf-8", "surrogatepass"))
        out.append(RunResult("RESULT_MANIFEST.sig", base64.b64encode(manifest_sig).decode(), _TASK))
        return out

    def seal_options(
        self, entries: list[RunResult], identity: Identity, embedded_elsewhere: frozenset[bytes]
    ) -> list[list[RunResult]]:
        raise SigningError("Tekton's format signs each results phase; it does not seal messages")
