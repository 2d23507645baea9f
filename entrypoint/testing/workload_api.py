"""A SPIFFE Workload API server for tests: real gRPC on a unix socket, behaving as a SPIRE agent does.

What it reproduces from SPIRE (so clients are tested against the behaviour they meet in a cluster):

* every call must carry exactly one ``workload.spiffe.io: true`` metadata entry, otherwise
  ``INVALID_ARGUMENT "security header missing from request"`` (SPIRE's workload API interceptor);
* a workload without a registration entry gets ``PERMISSION_DENIED "no identity issued"`` (``deny_for``:
  the window between pod start and the agent learning about the entry, spiffe/spire#2760);
* ``FetchX509SVID``/``FetchX509Bundles``/``FetchJWTBundles`` are server streams: the first message is
  sent at once, later ones when the material changes (CA rotation, a new SPIFFE ID or TTL, or the SVID
  passing half its lifetime, when SPIRE re-issues it), and the stream stays open until the client
  cancels or the server stops;
* ``FetchJWTSVID`` signs a JWT-SVID per call with the trust domain's :class:`JWTAuthority`, with the
  claims SPIRE's server puts in one (``sub``, ``aud`` as a list, ``exp``, ``iat``, and ``iss`` only when
  a ``jwt_issuer`` is configured, as SPIRE's ``jwt_issuer`` setting does); an empty audience is
  ``INVALID_ARGUMENT "audience must be specified"``, and a requested ``spiffe_id`` other than the
  workload's yields an empty answer, as SPIRE's agent filters its entries.  ``ValidateJWTSVID`` checks
  a token against the same authority.

Run standalone with ``python -m entrypoint.testing.workload_api --socket PATH --spiffe-id ID``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import secrets
import stat
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc  # grpcio ships no type information
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from spiffe._proto import workload_pb2, workload_pb2_grpc

from entrypoint.testing._serving import Serving, serve_until, stop_on_signals
from entrypoint.testing.ca import Svid, TestCA, generate_key

__all__ = [
    "DEFAULT_JWT_SVID_TTL",
    "HEADER_KEY",
    "HEADER_VALUE",
    "JWT_KEY_TYPES",
    "JWTAuthority",
    "JWTKey",
    "WorkloadAPIServer",
    "main",
]

HEADER_KEY = "workload.spiffe.io"
HEADER_VALUE = "true"

# Each open stream holds a worker thread.  maximum_concurrent_rpcs equal to the pool size makes
# the call beyond the limit fail fast with RESOURCE_EXHAUSTED instead of queueing forever.
MAX_CONCURRENT_CALLS = 64
# How quickly an open stream notices a cancelled client, a stopping server or new material.
_POLL_SECONDS = 0.05
_STOP_GRACE_SECONDS = 2.0
# sun_path is 108 bytes including the terminating NUL.
_MAX_UNIX_PATH_BYTES = 107
# Below this, re-issuing at half-life would turn an open stream into a busy loop.
_MIN_REFRESH_SECONDS = 0.5
_EMPTY_JWKS = b'{"keys":[]}'

# SPIRE's default_jwt_svid_ttl.
DEFAULT_JWT_SVID_TTL = datetime.timedelta(minutes=5)
# Key types of a JWT authority (ca.KEY_TYPES names) and the JOSE algorithm each signs with: those of
# SPIRE's server's jwt_key_type choices that tests need (ec-p256 is its default).
JWT_KEY_TYPES: Mapping[str, str] = {"ec-p256": "ES256", "ec-p384": "ES384", "rsa-2048": "RS256"}
# SPIRE's key IDs are 32 random alphanumerics.
_KID_ALPHABET = string.ascii_letters + string.digits
_KID_LENGTH = 32

_T = TypeVar("_T")
_R = TypeVar("_R")


def _new_kid() -> str:
    return "".join(secrets.choice(_KID_ALPHABET) for _ in range(_KID_LENGTH))


def _spiffe_trust_domain(spiffe_id: str) -> str | None:
    rest = spiffe_id.removeprefix("spiffe://")
    if rest == spiffe_id or not rest:
        return None
    return rest.partition("/")[0] or None


@dataclass(frozen=True)
class JWTKey:
    """One JWT signing key of a trust domain: its ``kid``, JOSE algorithm and private key."""

    kid: str
    alg: str
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"JWTKey(kid={self.kid!r}, alg={self.alg!r})"

    @classmethod
    def generate(cls, key_type: str = "ec-p256", kid: str | None = None) -> JWTKey:
        if key_type not in JWT_KEY_TYPES:
            raise ValueError(f"unknown JWT key type {key_type!r}; expected one of {sorted(JWT_KEY_TYPES)}")
        key = generate_key(key_type)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        return cls(kid=kid if kid is not None else _new_kid(), alg=JWT_KEY_TYPES[key_type], private_key=key)

    def jwk(self) -> dict[str, Any]:
        """The public JWK as a SPIRE bundle carries it: ``kty``, ``kid`` and the key's parameters."""
        public = self.private_key.public_key()
        fields = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        # PyJWT adds key_ops; go-jose, which marshals SPIRE's bundles, writes neither key_ops nor alg.
        fields.pop("key_ops", None)
        return {"kty": fields.pop("kty"), "kid": self.kid, **fields}


class JWTAuthority:
    """A trust domain's JWT-SVID signing keys: it signs JWT-SVIDs and publishes the JWKS verifying them."""

    def __init__(
        self, trust_domain: str = "example.org", key_type: str = "ec-p256", *, kid: str | None = None
    ) -> None:
        if not trust_domain or any(c in trust_domain for c in ":/ ") or trust_domain != trust_domain.lower():
            raise ValueError(f"invalid trust domain name {trust_domain!r} (expected e.g. 'example.org')")
        self.trust_domain = trust_domain
        self._lock = threading.Lock()
        self._keys: tuple[JWTKey, ...] = (JWTKey.generate(key_type, kid),)

    def __repr__(self) -> str:
        return f"JWTAuthority(trust_domain={self.trust_domain!r}, kid={self.kid!r}, alg={self.alg!r})"

    @property
    def signing_key(self) -> JWTKey:
        with self._lock:
            return self._keys[0]

    @property
    def kid(self) -> str:
        """``kid`` of the key that signs new JWT-SVIDs."""
        return self.signing_key.kid

    @property
    def alg(self) -> str:
        """JOSE algorithm of the key that signs new JWT-SVIDs."""
        return self.signing_key.alg

    @property
    def keys(self) -> tuple[JWTKey, ...]:
        """Every key in the JWKS, the signing one first."""
        with self._lock:
            return self._keys

    @property
    def algorithms(self) -> list[str]:
        """The algorithms of the keys in the JWKS, sorted: what a verifier must accept."""
        return sorted({key.alg for key in self.keys})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys]}

    def jwks_json(self) -> bytes:
        """The JWKS as the Workload API's ``JWTBundlesResponse`` carries it."""
        return json.dumps(self.jwks(), separators=(",", ":")).encode("ascii")

    def rotate(self, key_type: str | None = None, *, keep_previous: bool = True) -> JWTKey:
        """Sign with a fresh key (of ``key_type``, by default the current one's); returns it.

        The older keys stay in the JWKS, as SPIRE keeps a rotated-out key in the bundle until the tokens
        it signed have expired; ``keep_previous=False`` drops them, so that those tokens no longer verify.
        """
        if key_type is None:
            key_type = next(name for name, alg in JWT_KEY_TYPES.items() if alg == self.alg)
        key = JWTKey.generate(key_type)
        with self._lock:
            self._keys = (key, *self._keys) if keep_previous else (key,)
        return key

    def issue(
        self,
        spiffe_id: str,
        audience: Sequence[str],
        *,
        ttl: datetime.timedelta = DEFAULT_JWT_SVID_TTL,
        issuer: str | None = None,
        issued_at: datetime.datetime | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed JWT-SVID for ``spiffe_id``, as SPIRE's server mints it.

        ``iat`` is ``issued_at`` (default now) and ``exp`` is ``iat + ttl``; ``iss`` is present only with
        ``issuer``.  ``claims`` is merged last, a ``None`` value removing that claim, to craft invalid
        tokens on purpose; the ID and audience themselves are not validated for the same reason.
        """
        when = issued_at if issued_at is not None else datetime.datetime.now(datetime.UTC)
        iat = int(when.timestamp())
        payload: dict[str, Any] = {
            "sub": spiffe_id,
            # A list even for one audience: SPIRE builds the claims as a map holding a []string.
            "aud": list(audience),
            "exp": iat + int(ttl.total_seconds()),
            "iat": iat,
        }
        if issuer is not None:
            payload["iss"] = issuer
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        key = self.signing_key
        return jwt.encode(payload, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})

    def validate(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid JWT-SVID of this trust domain for ``audience``.

        Raises ValueError saying why not: the detail of ValidateJWTSVID's ``INVALID_ARGUMENT`` (worded after
        SPIRE's where a test may match on it: ``no keys found for trust domain``, ``token has expired``).
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as err:
            raise ValueError("unable to parse JWT token") from err
        kid = header.get("kid")
        if not kid:
            raise ValueError("token header missing key id")
        subject = unverified.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ValueError("token missing subject claim")
        trust_domain = _spiffe_trust_domain(subject)
        if trust_domain is None:
            raise ValueError(f"token has an invalid subject claim: {subject!r}")
        if trust_domain != self.trust_domain:
            raise ValueError(f'no keys found for trust domain "spiffe://{trust_domain}"')
        key = next((k for k in self.keys if k.kid == kid), None)
        if key is None:
            raise ValueError(f'public key "{kid}" not found in trust domain "spiffe://{trust_domain}"')
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                audience=audience,
                options={"require": ["sub", "aud", "exp"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise ValueError("token has expired") from err
        except jwt.InvalidAudienceError as err:
            raise ValueError(
                f"expected audience in {unverified.get('aud')!r} (audience={audience!r})"
            ) from err
        except jwt.PyJWTError as err:
            raise ValueError(f"unable to get claims from token: {err}") from err
        return claims


class _Servicer(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """Adapts grpc's generated servicer interface to :class:`WorkloadAPIServer`."""

    def __init__(self, owner: WorkloadAPIServer) -> None:
        self._owner = owner

    def FetchX509SVID(  # names fixed by the generated servicer
        self, request: workload_pb2.X509SVIDRequest, context: Any
    ) -> Iterator[workload_pb2.X509SVIDResponse]:
        return self._owner._fetch_x509_svid(context)

    def FetchX509Bundles(
        self, request: workload_pb2.X509BundlesRequest, context: Any
    ) -> Iterator[workload_pb2.X509BundlesResponse]:
        return self._owner._fetch_x509_bundles(context)

    def FetchJWTBundles(
        self, request: workload_pb2.JWTBundlesRequest, context: Any
    ) -> Iterator[workload_pb2.JWTBundlesResponse]:
        return self._owner._fetch_jwt_bundles(context)

    def FetchJWTSVID(
        self, request: workload_pb2.JWTSVIDRequest, context: Any
    ) -> workload_pb2.JWTSVIDResponse:
        return self._owner._fetch_jwt_svid(request, context)

    def ValidateJWTSVID(
        self, request: workload_pb2.ValidateJWTSVIDRequest, context: Any
    ) -> workload_pb2.ValidateJWTSVIDResponse:
        return self._owner._validate_jwt_svid(request, context)


class WorkloadAPIServer(Serving):
    """A Workload API on ``socket_path`` handing out ``spiffe_id``'s X509-SVIDs (from ``ca``) and JWT-SVIDs.

    ``deny_for``: for that many seconds after :meth:`start`, answer ``PERMISSION_DENIED "no identity
    issued"`` (to the JWT calls too); ``deny_first``: likewise for the first that many FetchX509SVID
    calls, however late they come, and ``jwt_deny_first`` for the first that many FetchJWTSVID calls.
    ``down``: accept connections but answer ``UNAVAILABLE`` to every call (an unhealthy agent);
    never starting the server simulates an absent agent instead.  ``svid_key_type`` and
    ``intermediate`` shape the served SVID as in :meth:`TestCA.issue_svid`.

    JWT-SVIDs are signed by ``jwt_authority`` (its trust domain must be ``ca``'s), live ``jwt_svid_ttl``
    and carry ``iss`` only when ``jwt_issuer`` is set.  Without ``jwt_authority`` or ``jwt_issuer`` the
    authority (ES256) is made on first use (a FetchJWTSVID or ValidateJWTSVID call, or reading
    :attr:`jwt_authority`); until then FetchJWTBundles answers an empty JWKS, as before JWT-SVIDs existed
    here, and open FetchJWTBundles streams receive the keys once it exists.
    """

    def __init__(
        self,
        socket_path: str,
        ca: TestCA,
        spiffe_id: str,
        *,
        deny_for: float = 0.0,
        deny_first: int = 0,
        svid_ttl: datetime.timedelta = datetime.timedelta(hours=1),
        down: bool = False,
        svid_key_type: str = "ec-p256",
        intermediate: bool = False,
        jwt_authority: JWTAuthority | None = None,
        jwt_issuer: str | None = None,
        jwt_svid_ttl: datetime.timedelta = DEFAULT_JWT_SVID_TTL,
        jwt_deny_first: int = 0,
    ) -> None:
        path = os.path.abspath(socket_path.removeprefix("unix://"))
        if len(os.fsencode(path)) > _MAX_UNIX_PATH_BYTES:
            raise ValueError(
                f"unix socket path is {len(os.fsencode(path))} bytes, over the {_MAX_UNIX_PATH_BYTES}-byte"
                f" limit: {path}"
            )
        if jwt_authority is not None and jwt_authority.trust_domain != ca.trust_domain:
            raise ValueError(
                f"the JWT authority is for trust domain {jwt_authority.trust_domain!r}, the CA for"
                f" {ca.trust_domain!r}"
            )
        self._socket_path = path
        self.ca = ca
        self.deny_for = deny_for
        self.deny_first = deny_first
        self.jwt_deny_first = jwt_deny_first
        self.down = down
        self._lock = threading.Lock()
        self._spiffe_id = spiffe_id
        self._svid_ttl = svid_ttl
        self._svid_key_type = svid_key_type
        self._intermediate = intermediate
        self._svid: Svid | None = None
        self._svid_refresh_at = 0.0
        self._calls = 0
        self._jwt_calls = 0
        if jwt_authority is None and jwt_issuer is not None:
            jwt_authority = JWTAuthority(ca.trust_domain)
        self._jwt_authority = jwt_authority
        self._jwt_issuer = jwt_issuer
        self._jwt_svid_ttl = jwt_svid_ttl
        self._server: Any = None
        self._started_at = 0.0
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"WorkloadAPIServer(address={self.address!r}, spiffe_id={self.spiffe_id!r})"

    # -- configuration (settable while serving; open streams pick changes up) -------------------------

    @property
    def address(self) -> str:
        """``unix://`` + the absolute socket path, the form ``SPIFFE_ENDPOINT_SOCKET`` and clients take."""
        return "unix://" + self._socket_path

    @property
    def socket_path(self) -> str:
        return self._socket_path

    @property
    def spiffe_id(self) -> str:
        return self._spiffe_id

    @spiffe_id.setter
    def spiffe_id(self, value: str) -> None:
        with self._lock:
            self._spiffe_id = value
            self._svid = None

    @property
    def svid_ttl(self) -> datetime.timedelta:
        return self._svid_ttl

    @svid_ttl.setter
    def svid_ttl(self, value: datetime.timedelta) -> None:
        with self._lock:
            self._svid_ttl = value
            self._svid = None

    @property
    def calls(self) -> int:
        """How many FetchX509SVID calls arrived, including rejected ones."""
        with self._lock:
            return self._calls

    @property
    def svid(self) -> Svid:
        """The SVID currently being served (issued on first use, re-issued as SPIRE would)."""
        with self._lock:
            return self._current_svid_locked()

    @property
    def jwt_authority(self) -> JWTAuthority:
        """The authority signing JWT-SVIDs (made on first use); assign one to replace it."""
        with self._lock:
            if self._jwt_authority is None:
                self._jwt_authority = JWTAuthority(self.ca.trust_domain)
            return self._jwt_authority

    @jwt_authority.setter
    def jwt_authority(self, value: JWTAuthority) -> None:
        if value.trust_domain != self.ca.trust_domain:
            raise ValueError(
                f"the JWT authority is for trust domain {value.trust_domain!r}, the CA for"
                f" {self.ca.trust_domain!r}"
            )
        with self._lock:
            self._jwt_authority = value

    @property
    def jwt_issuer(self) -> str | None:
        """The ``iss`` claim of new JWT-SVIDs; ``None`` leaves it out, as SPIRE without ``jwt_issuer``."""
        with self._lock:
            return self._jwt_issuer

    @jwt_issuer.setter
    def jwt_issuer(self, value: str | None) -> None:
        with self._lock:
            self._jwt_issuer = value

    @property
    def jwt_svid_ttl(self) -> datetime.timedelta:
        with self._lock:
            return self._jwt_svid_ttl

    @jwt_svid_ttl.setter
    def jwt_svid_ttl(self, value: datetime.timedelta) -> None:
        with self._lock:
            self._jwt_svid_ttl = value

    @property
    def jwt_calls(self) -> int:
        """How many FetchJWTSVID calls arrived, including rejected ones."""
        with self._lock:
            return self._jwt_calls

    def issue_jwt_svid(self, audience: Sequence[str]) -> str:
        """A JWT-SVID as FetchJWTSVID would answer it now, without a call (knobs do not apply)."""
        return self.jwt_authority.issue(
            self.spiffe_id, audience, ttl=self.jwt_svid_ttl, issuer=self.jwt_issuer
        )

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on the socket.  A stopped server may be started again (an agent restart)."""
        if self._server is not None:
            raise RuntimeError("WorkloadAPIServer is already running")
        self._remove_stale_socket()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="workload-api"),
            maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
        )
        workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(_Servicer(self), server)  # type: ignore[no-untyped-call]
        # Older grpcio reports a failed bind by returning 0 instead of raising.
        if server.add_insecure_port("unix:" + self._socket_path) == 0:
            raise OSError(f"cannot listen on unix socket {self._socket_path}")
        self._stopping.clear()
        self._started_at = time.monotonic()
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving: open streams end, new calls are refused, the socket file is removed."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.stop(_STOP_GRACE_SECONDS).wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._socket_path)

    def _remove_stale_socket(self) -> None:
        # A socket left by a killed run would make the bind fail; anything else at the path is not ours.
        try:
            mode = os.lstat(self._socket_path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"{self._socket_path} exists and is not a socket")
        os.unlink(self._socket_path)

    # -- the calls -------------------------------------------------------------------------------------

    def _admit(self, context: Any, call: int = 0) -> None:
        """Reject the call as SPIRE would; ``context.abort`` raises, ending the handler."""
        self._check_transport(context)
        self._check_identity(context, call, self.deny_first)

    def _check_transport(self, context: Any) -> None:
        # What SPIRE checks before a handler sees the request: its interceptor, and a live agent.
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "workload API is unavailable (agent unhealthy)")
        values = [value for key, value in context.invocation_metadata() if key == HEADER_KEY]
        if values != [HEADER_VALUE]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")

    def _check_identity(self, context: Any, call: int, deny_first: int) -> None:
        if time.monotonic() - self._started_at < self.deny_for or 0 < call <= deny_first:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no identity issued")

    def _current_svid_locked(self) -> Svid:
        now = time.monotonic()
        svid = self._svid
        # Root subjects are unique per root (TestCA puts a random serialNumber in them), so comparing the
        # chain's top issuer with the current root also catches a rotation racing with the issue.
        if svid is None or svid.chain[-1].issuer != self.ca.root_cert.subject or now >= self._svid_refresh_at:
            svid = self.ca.issue_svid(
                self._spiffe_id,
                key_type=self._svid_key_type,
                ttl=self._svid_ttl,
                intermediate=self._intermediate,
            )
            self._svid = svid
            self._svid_refresh_at = now + max(self._svid_ttl.total_seconds() / 2, _MIN_REFRESH_SECONDS)
        return svid

    def _trust_domain_id(self) -> str:
        return f"spiffe://{self.ca.trust_domain}"

    def _fetch_x509_svid(self, context: Any) -> Iterator[workload_pb2.X509SVIDResponse]:
        with self._lock:
            self._calls += 1
            call = self._calls
        self._admit(context, call)

        def response(svid: Svid) -> workload_pb2.X509SVIDResponse:
            return workload_pb2.X509SVIDResponse(
                svids=[
                    workload_pb2.X509SVID(
                        spiffe_id=svid.spiffe_id,
                        x509_svid=svid.chain_der(),
                        x509_svid_key=svid.key_der(),
                        bundle=self.ca.bundle_der(),
                    )
                ]
            )

        yield from self._stream(context, lambda: self.svid, lambda a, b: a is b, response)

    def _fetch_x509_bundles(self, context: Any) -> Iterator[workload_pb2.X509BundlesResponse]:
        self._admit(context)
        yield from self._stream(
            context,
            self.ca.bundle_der,
            lambda a, b: a == b,
            lambda der: workload_pb2.X509BundlesResponse(bundles={self._trust_domain_id(): der}),
        )

    def _jwt_bundle(self) -> bytes:
        with self._lock:
            authority = self._jwt_authority
        # Before any JWT authority exists clients still get a well-formed (empty) JWKS for the domain.
        return authority.jwks_json() if authority is not None else _EMPTY_JWKS

    def _fetch_jwt_bundles(self, context: Any) -> Iterator[workload_pb2.JWTBundlesResponse]:
        self._admit(context)
        yield from self._stream(
            context,
            self._jwt_bundle,
            lambda a, b: a == b,
            lambda jwks: workload_pb2.JWTBundlesResponse(bundles={self._trust_domain_id(): jwks}),
        )

    def _fetch_jwt_svid(
        self, request: workload_pb2.JWTSVIDRequest, context: Any
    ) -> workload_pb2.JWTSVIDResponse:
        with self._lock:
            self._jwt_calls += 1
            call = self._jwt_calls
        self._check_transport(context)
        # SPIRE's agent refuses an empty list; its server then drops empty values and refuses what is
        # left if nothing is, so a list of empty strings fails too (here with the agent's answer).
        audience = [aud for aud in request.audience if aud]
        if not audience:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience must be specified")
        self._check_identity(context, call, self.jwt_deny_first)
        spiffe_id = self.spiffe_id
        if request.spiffe_id and request.spiffe_id != spiffe_id:
            return workload_pb2.JWTSVIDResponse()
        token = self.jwt_authority.issue(spiffe_id, audience, ttl=self.jwt_svid_ttl, issuer=self.jwt_issuer)
        return workload_pb2.JWTSVIDResponse(svids=[workload_pb2.JWTSVID(spiffe_id=spiffe_id, svid=token)])

    def _validate_jwt_svid(
        self, request: workload_pb2.ValidateJWTSVIDRequest, context: Any
    ) -> workload_pb2.ValidateJWTSVIDResponse:
        self._check_transport(context)
        if not request.audience:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience must be specified")
        if not request.svid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "svid must be specified")
        try:
            claims = self.jwt_authority.validate(request.svid, request.audience)
        except ValueError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            raise  # unreachable: abort raises; keeps ``claims`` bound for the type checker
        response = workload_pb2.ValidateJWTSVIDResponse(spiffe_id=claims["sub"])
        response.claims.update(claims)
        return response

    def _stream(
        self,
        context: Any,
        current: Callable[[], _T],
        same: Callable[[_T, _T], bool],
        build: Callable[[_T], _R],
    ) -> Iterator[_R]:
        """Send ``build(current())`` now and again whenever it changes, until cancelled or stopped."""
        last = current()
        yield build(last)
        while not self._stopping.wait(_POLL_SECONDS) and context.is_active():
            now = current()
            if not same(now, last):
                last = now
                yield build(now)


def _write_atomically(path: str, data: bytes) -> None:
    # Whoever waits for the file (the demo, a test) must never read half of it.
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.workload_api",
        description="Serve a test SPIFFE Workload API (a fake SPIRE agent) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument("--trust-domain", default="example.org")
    parser.add_argument("--spiffe-id", required=True, help="SPIFFE ID of the SVID handed out")
    parser.add_argument(
        "--deny-for", type=float, default=0.0, metavar="S", help='answer "no identity issued" for S seconds'
    )
    parser.add_argument(
        "--svid-ttl", type=float, default=3600.0, metavar="S", help="SVID lifetime in seconds"
    )
    parser.add_argument("--bundle-out", metavar="FILE", help="write the trust bundle PEM here before 'ready'")
    args = parser.parse_args(argv)

    stop = stop_on_signals()

    try:
        ca = TestCA(args.trust_domain)
        server = WorkloadAPIServer(
            args.socket,
            ca,
            args.spiffe_id,
            deny_for=args.deny_for,
            svid_ttl=datetime.timedelta(seconds=args.svid_ttl),
        )
        server.start()
    except (ValueError, OSError, RuntimeError) as err:
        print(f"workload_api: {err}", file=sys.stderr)
        return 2
    try:
        if args.bundle_out:
            _write_atomically(args.bundle_out, ca.bundle_pem())
        serve_until(stop, server.address)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
