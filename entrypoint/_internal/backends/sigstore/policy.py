"""What a verifier trusts for the ``sigstore-keyless`` backend: a trusted root and an identity policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from entrypoint._internal.backends.sigstore.trust import TrustedRoot


@dataclass(frozen=True)
class SigstoreTrust:
    """A Sigstore trusted root, and who a certificate must name (SAN, exactly or by a full-match
    regular expression) and which OIDC issuer must have vouched for it.

    ``require_log``: a message without a Rekor record fails (LogMissing); without one, nothing but
    the signer's own word says the signature was made while the certificate was valid.
    """

    root: TrustedRoot
    issuer: str
    identity: str | None = None
    identity_regexp: str | None = None
    require_log: bool = True
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("a Sigstore identity policy needs the OIDC issuer (--certificate-oidc-issuer)")
        if (self.identity is None) == (self.identity_regexp is None):
            raise ValueError(
                "a Sigstore identity policy needs exactly one of the identity (--certificate-identity) "
                "or a regular expression for it (--certificate-identity-regexp)"
            )
        if self.identity_regexp is not None:
            try:
                object.__setattr__(self, "_pattern", re.compile(self.identity_regexp))
            except re.error as exc:
                raise ValueError(f"--certificate-identity-regexp {self.identity_regexp!r}: {exc}") from exc

    @classmethod
    def from_file(
        cls,
        path: str,
        *,
        issuer: str,
        identity: str | None = None,
        identity_regexp: str | None = None,
        require_log: bool = True,
    ) -> SigstoreTrust:
        """Read the trusted root at ``path`` (SigstoreTrustError names the file and the field)."""
        return cls(TrustedRoot.from_file(path), issuer, identity, identity_regexp, require_log)

    def allows(self, san: str) -> bool:
        if self._pattern is not None:
            return self._pattern.fullmatch(san) is not None
        return san == self.identity

    def describe(self) -> str:
        return repr(self.identity) if self.identity is not None else f"matching {self.identity_regexp!r}"
