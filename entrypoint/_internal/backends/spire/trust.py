"""Loading the roots of one trust domain: from a PEM file (offline, e.g. an archived bundle) or
from a SPIFFE Workload API endpoint (the live bundle, as Tekton's verifier does)."""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from entrypoint._internal.bounded import read_file
from entrypoint.errors import TrustError

# SPIFFE trust domain names: lowercase letters, digits, dots, dashes and underscores.
# A bundle of many roots is some KiB; a file far beyond that is not a bundle.
BUNDLE_FILE_LIMIT = 16 << 20
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")


class TrustBundleError(TrustError):
    """A trust bundle could not be loaded; the message names the file or endpoint."""


def check_trust_domain(trust_domain: str) -> None:
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise TrustBundleError(
            f"invalid trust domain {trust_domain!r}: "
            "only lowercase letters, digits, '.', '-' and '_' are allowed"
        )


def _ordered(certs: list[x509.Certificate] | set[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    # A bundle is a set; a fixed order makes TrustBundle values comparable and reproducible.
    unique = {cert.public_bytes(Encoding.DER): cert for cert in certs}
    return tuple(unique[der] for der in sorted(unique))


def roots_from_pem_file(path: str) -> tuple[x509.Certificate, ...]:
    try:
        data = read_file(path, BUNDLE_FILE_LIMIT)
    except OSError as exc:
        raise TrustBundleError(f"trust bundle {path}: cannot read: {exc.strerror or exc}") from exc
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TrustBundleError(f"trust bundle {path}: no certificates found (no PEM CERTIFICATE block)")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        detail = str(exc).split(". See ")[0]  # drop cryptography's FAQ link: one short line
        raise TrustBundleError(f"trust bundle {path}: not a PEM list of certificates: {detail}") from exc
    return _ordered(certs)


def roots_from_workload_api(address: str, trust_domain: str, timeout: float) -> tuple[x509.Certificate, ...]:
    # py-spiffe brings gRPC (~180 ms to import): only load it when this source is used.
    from spiffe import TrustDomain, WorkloadApiClient

    try:
        client = WorkloadApiClient(socket_path=address)
    except Exception as exc:
        raise TrustBundleError(f"workload API {address}: {exc}") from exc
    try:
        bundles = client.fetch_x509_bundles(timeout=timeout)
    except Exception as exc:
        raise TrustBundleError(f"workload API {address}: fetching X.509 bundles: {exc}") from exc
    finally:
        client.close()
    # Tekton takes whichever bundle comes first (§10 item 30); federation makes that a wrong
    # answer, so only the configured trust domain's bundle is acceptable.
    bundle = bundles.get_bundle_for_trust_domain(TrustDomain(trust_domain))
    if bundle is None:
        have = sorted(b.trust_domain.name for b in bundles.bundles)
        raise TrustBundleError(
            f"workload API {address}: no X.509 bundle for trust domain {trust_domain} "
            f"(bundles: {', '.join(have) or 'none'})"
        )
    return _ordered(bundle.x509_authorities)
