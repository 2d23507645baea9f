"""SPIRE's OIDC Discovery Provider for tests: the discovery document and JWKS of a Workload API double.

A verifier of JWT-SVIDs that knows only the token's ``iss`` (Fulcio's ``spiffe`` issuer type, through
go-oidc) fetches ``<iss>/.well-known/openid-configuration``, follows its ``jwks_uri`` and checks the
token against those keys.  This double answers both from the :class:`WorkloadAPIServer` it is given,
reading the JWT authority at each request, so rotations show up at once (SPIRE's provider polls the
Workload API for them).

What it reproduces from SPIRE's provider: ``GET`` only (anything else is 405), the document's fixed
fields (``authorization_endpoint`` empty, ``response_types_supported`` ``["id_token"]``, no subject
types), a ``/keys`` answer that must not be cached, and keys as the Workload API bundle carries them,
without ``use`` (``set_key_use`` adds ``"use": "sig"``, for the clients that want it, spiffe/spire#2623).
Where it departs: ``id_token_signing_alg_values_supported`` lists the algorithms of the authority's
keys, where SPIRE hard-codes ``RS256``, ``ES256`` and ``ES384``, so that a verifier checking the token's
``alg`` against that list sees the authority's real choice; and an issuer with a path gets the document
under that path but ``jwks_uri`` stays ``<url>/keys``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from entrypoint.testing._https import Answer, HTTPError, HTTPSDouble, ServingCredentials, serving_credentials
from entrypoint.testing.workload_api import WorkloadAPIServer

__all__ = ["JWKS_PATH", "OPENID_CONFIG_PATH", "SpiffeOIDCDiscovery"]

OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/keys"

_JSON = "application/json"
# SPIRE's provider forbids caching the JWKS, so that a verifier picks a rotation up on its next fetch.
_NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}


class SpiffeOIDCDiscovery(HTTPSDouble):
    """An OIDC discovery endpoint over HTTPS serving the JWT-SVID keys of a Workload API double.

    ``issuer``: the document's ``issuer`` (default: this server's URL, known once started); a path in it
    also serves the document under that path, as OIDC discovery asks.  ``configure_issuer``: on
    :meth:`start`, set ``workload_api.jwt_issuer`` to :attr:`issuer`, so that the JWT-SVIDs it hands out
    name this server.  ``set_key_use``: add ``"use": "sig"`` to every key in ``/keys``.
    """

    server_version = "spire-oidc-discovery-provider"

    def __init__(
        self,
        workload_api: WorkloadAPIServer,
        *,
        issuer: str | None = None,
        configure_issuer: bool = True,
        set_key_use: bool = False,
        port: int = 0,
        credentials: ServingCredentials | None = None,
    ) -> None:
        if credentials is None:
            credentials = serving_credentials("spiffe-oidc-double CA", "spiffe-oidc-discovery")
        super().__init__(credentials, port=port, name="spiffe-oidc")
        self.workload_api = workload_api
        self.configure_issuer = configure_issuer
        self.set_key_use = set_key_use
        self._issuer = issuer
        # Made now rather than at the first request: a client that reads the Workload API's JWT bundle
        # before any JWT-SVID exists must already see the keys this server publishes.
        _ = workload_api.jwt_authority

    def __repr__(self) -> str:
        url = self.url if self._port else None
        return f"SpiffeOIDCDiscovery(url={url!r}, issuer={self._issuer!r})"

    @property
    def issuer(self) -> str:
        """The ``issuer`` of the document: the configured one, or this server's URL."""
        with self._lock:
            issuer = self._issuer
        return issuer if issuer is not None else self.url

    @issuer.setter
    def issuer(self, value: str | None) -> None:
        # The Workload API double's jwt_issuer is left alone: a test may want the two to disagree.
        with self._lock:
            self._issuer = value

    @property
    def jwks_uri(self) -> str:
        return self.url + JWKS_PATH

    def start(self) -> None:
        """Listen on 127.0.0.1; with ``configure_issuer``, make the Workload API double name this issuer."""
        super().start()
        if self.configure_issuer:
            self.workload_api.jwt_issuer = self.issuer

    def openid_configuration(self) -> dict[str, Any]:
        """The discovery document served at ``/.well-known/openid-configuration``."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "authorization_endpoint": "",
            "response_types_supported": ["id_token"],
            "subject_types_supported": [],
            "id_token_signing_alg_values_supported": self.workload_api.jwt_authority.algorithms,
        }

    def jwks(self) -> dict[str, Any]:
        """The JWKS served at ``/keys``: the Workload API double's JWT authority, as it is now."""
        keys = self.workload_api.jwt_authority.jwks()["keys"]
        if self.set_key_use:
            keys = [{**key, "use": "sig"} for key in keys]
        return {"keys": keys}

    def _discovery_paths(self) -> set[str]:
        prefix = urlsplit(self.issuer).path.rstrip("/")
        return {OPENID_CONFIG_PATH, prefix + OPENID_CONFIG_PATH}

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        route = urlsplit(path).path
        if route != JWKS_PATH and route not in self._discovery_paths():
            raise HTTPError(404, "404 page not found")
        if method != "GET":
            raise HTTPError(405, "method not allowed")
        if route == JWKS_PATH:
            return 200, self.jwks(), _JSON, dict(_NO_CACHE)
        return 200, self.openid_configuration(), _JSON, {}
