"""The ``sigstore-keyless`` backend's arguments, from the step's environment (docs/sigstore.md)."""

from __future__ import annotations

from collections.abc import Mapping

from entrypoint._internal.backends.k8s_sat.common import config_from_env as kube_config
from entrypoint._internal.backends.sigstore import common as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from entrypoint._internal.formats.entries import RunResult
    from entrypoint._internal.signing.background import PostSignHook
    from entrypoint._internal.signing.forked import ForkedBackend
    from entrypoint._internal.signing.identity import Identity


def fetcher_args(*, spire_socket: str, environ: Mapping[str, str], step: str = "") -> dict[str, str | float]:
    # Read here, in the entrypoint: the helper process that fetches gets no environment of its own.
    kube = kube_config(environ)
    rekor = environ.get(c.ENV_TRANSPARENCY_URL, "")
    return {
        "fulcio_url": environ.get(c.ENV_FULCIO_ADDRESS, ""),
        "issuer": environ.get(c.ENV_FULCIO_ISSUER, ""),
        "provider": environ.get(c.ENV_FULCIO_PROVIDER, "") or "filesystem",
        "token_file": environ.get(c.ENV_TOKEN_FILE, "") or c.DEFAULT_TOKEN_FILE,
        "audience": environ.get(c.ENV_AUDIENCE, "") or c.DEFAULT_AUDIENCE,
        "proof": environ.get(c.ENV_PROOF, "") or "csr",
        "trusted_root": environ.get(c.ENV_TRUSTED_ROOT, ""),
        "tls_ca_file": environ.get(c.ENV_TLS_CA_FILE, ""),
        "rekor_url": rekor,
        # On by default once a log is named, as Chains' transparency.enabled.
        "transparency": environ.get(c.ENV_TRANSPARENCY_ENABLED, "") or ("true" if rekor else "false"),
        "taskrun": environ.get(c.ENV_TASKRUN, ""),
        "step": step,
        "spire_socket": spire_socket,
        # The kubernetes provider's TokenRequest, and the pod's identity, as oidc-sa-token reads them.
        **{f"kube_{name}": value for name, value in kube.items()},
    }


def post_sign_hooks(
    args: Mapping[str, str | float], helper: ForkedBackend, wire_format: str
) -> list[PostSignHook]:
    """The Rekor upload after each signature, when the transparency log is on."""
    if str(args.get("transparency", "")).lower() not in ("true", "1", "yes"):
        return []
    return [_LazyLogHook(helper, wire_format, float(args.get("budget", 20.0)))]


class _LazyLogHook:
    """The log hook, loaded when first called: built before the command starts, where its imports
    (the signer's cryptography, ~30 ms) would delay the command."""

    def __init__(self, helper: ForkedBackend, wire_format: str, budget: float) -> None:
        self.helper, self.wire_format, self.budget = helper, wire_format, budget
        self._hook: PostSignHook | None = None

    def warm_up(self) -> None:
        """Load the hook (the signer's prefetch thread calls this while the command runs)."""
        if self._hook is None:
            from entrypoint._internal.backends.sigstore.log import LogHook

            self._hook = LogHook(self.helper, self.wire_format, self.budget)

    def __call__(self, signed: list[RunResult], identity: Identity) -> list[RunResult]:
        self.warm_up()
        assert self._hook is not None
        return self._hook(signed, identity)
