"""The compact wire format (docs/compact-format.md): one ``cs2`` signature per termination message.

Unlike Tekton's format, nothing is appended per results phase; instead every write of the
termination file is *sealed*: the previous SIGNATURE entry is replaced by one over a statement of
everything the message then holds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from entrypoint._internal.bounded import read_file
from entrypoint._internal.formats.compact import (
    SIGNATURE_KEY,
    TAG_V2,
    UNSTATED_KEYS,
    SignatureValue,
    controller_view,
    observed_in,
    statement_of_view,
)
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity
from entrypoint.termination import ResultType, RunResult

_TASK = int(ResultType.TASK_RUN_RESULT)
# Left in the step's status directory: the SHA-256 of the material its final message embeds.
MATERIAL_MARKER = "signing-material.sha256"
# A SHA-256 in hex and a newline; a step can write anything there, so more is not read.
_MARKER_LIMIT = 128


def sign_jose(identity: Identity, data: bytes) -> tuple[str, bytes]:
    """Sign ``data`` and name the algorithm as JOSE does (RFC 7518 / 8037); ECDSA as raw r||s."""
    key = identity.key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        digest: hashes.HashAlgorithm
        if isinstance(key.curve, ec.SECP256R1):
            alg, digest = "ES256", hashes.SHA256()
        elif isinstance(key.curve, ec.SECP384R1):
            alg, digest = "ES384", hashes.SHA384()
        else:
            raise SigningError(f"unsupported ECDSA curve for the compact format: {key.curve.name}")
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return alg, r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", key.sign(data, PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key.sign(data)
    raise SigningError(f"unsupported signing key type: {type(key).__name__}")


class CompactFormat:
    """The compact format: every write of the termination file sealed by one signature."""

    name = "compact"
    seals = True

    def __init__(self, step: str, clock: Callable[[], float] = time.time, *, metadata_dir: str = "") -> None:
        self.step = step
        self.clock = clock
        # The step's /tekton/run/<index>/status: where this step tells later ones which material
        # its message embeds, and next to which the earlier steps told theirs.
        self.metadata_dir = metadata_dir
        self._earlier: frozenset[bytes] | None = None
        self._shared_kinds: set[str] = set()

    def sign(self, entries: list[RunResult], identity: Identity) -> list[RunResult]:
        return []  # nothing per phase: each write of the message is sealed instead

    def warm_up(self, identity: Identity) -> None:
        self.seal_options([], identity, frozenset())

    def seal_options(
        self,
        entries: list[RunResult],
        identity: Identity,
        embedded_elsewhere: frozenset[bytes] | None = None,
        *,
        exit_code: int | None = None,
    ) -> list[list[RunResult]]:
        """The message's entries with a fresh SIGNATURE: first with the material embedded, then, if
        an earlier step of the pod embedded the same material (its SHA-256 is among the earlier
        steps' markers, or in ``embedded_elsewhere`` when given), with a reference to it instead.
        ``exit_code`` is the process's exit status once the step has ended (None before)."""
        kind, material, ref_kind = identity.evidence.compact_material(identity)
        if ref_kind:
            self._shared_kinds.add(kind)
        digest = hashlib.sha256(material).digest()
        signed_at = int(self.clock())
        # An earlier seal's signature and log record are replaced, never stated.
        body = [e for e in entries if e.key not in UNSTATED_KEYS]
        view = controller_view(body)
        # Bound as the TaskRun will record them: Tekton lets an ExitCode entry (onError: continue)
        # override the container's exit status, and takes the start time from StartedAt.
        from_entries, started_at = observed_in(view)
        recorded_exit = from_entries if from_entries is not None else exit_code
        stmt = statement_of_view(
            view,
            step=self.step,
            signed_at=signed_at,
            material_digest=digest,
            tag=TAG_V2,
            exit_code=recorded_exit,
            started_at=started_at,
        )
        alg, signature = sign_jose(identity, stmt)
        earlier = self.earlier_material() if embedded_elsewhere is None else embedded_elsewhere
        options = []
        for option_kind, option_material in ((kind, material), (ref_kind, digest)):
            if not option_kind or (option_kind == ref_kind and digest not in earlier):
                continue
            value = SignatureValue(
                self.step,
                signed_at,
                alg,
                signature,
                option_kind,
                option_material,
                TAG_V2,
                recorded_exit,
                started_at,
            ).encode()
            options.append([*body, RunResult(SIGNATURE_KEY, value, _TASK)])
        return options

    def earlier_material(self) -> frozenset[bytes]:
        """The digests of the material that earlier steps of this pod embedded (their markers)."""
        if self._earlier is None:
            found: set[bytes] = set()
            index = self.step
            run_dir = os.path.dirname(os.path.dirname(self.metadata_dir.rstrip("/")))
            for j in range(int(index) if self.metadata_dir and index else 0):
                try:
                    marker = os.path.join(run_dir, str(j), "status", MATERIAL_MARKER)
                    found.add(bytes.fromhex(read_file(marker, _MARKER_LIMIT).decode("ascii").strip()))
                except (OSError, ValueError):
                    continue
            self._earlier = frozenset(found)
        return self._earlier

    def after_write(self, written: list[RunResult]) -> None:
        """Tell later steps which material this step's final message embeds, so that a later step
        short of space may refer to it instead of embedding it again (docs/compact-format.md §5).
        Best effort: without the marker a later step embeds its own copy."""
        if not self.metadata_dir:
            return
        for e in written:
            if e.key != SIGNATURE_KEY:
                continue
            try:
                value = SignatureValue.decode(e.value)
            except ValueError:
                continue
            if value.material_kind in self._shared_kinds:
                self._publish(value.material_digest.hex())

    def _publish(self, digest: str) -> None:
        from entrypoint._internal.go.errors import path_error

        path = os.path.join(self.metadata_dir, MATERIAL_MARKER)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            return  # no metadata directory: the step failed before its command, and said so
        except OSError as exc:
            raise SigningError(
                f"could not publish the signing material marker: {path_error('open', path, exc)}"
            ) from exc
        try:
            os.write(fd, digest.encode())
        except OSError as exc:
            raise SigningError(
                f"could not publish the signing material marker: {path_error('write', path, exc)}"
            ) from exc
        finally:
            os.close(fd)
