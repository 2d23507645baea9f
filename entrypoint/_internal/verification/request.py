"""What a format verifier is asked to check, and what it reports back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class Request:
    namespace: str
    name: str
    trust_domain: str | None  # None: no trust was available at all
    roots: tuple[x509.Certificate, ...]
    at: dt.datetime  # aware, UTC
    check_chain: bool
    step: str | None = None  # the step index the message must claim; None: any (compact format)
    # Other termination messages of the same TaskRun, only to resolve a chain a message refers to.
    companions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    identity: str  # the SPIFFE ID that signed
    signed_keys: tuple[str, ...]  # every key whose signature was verified, in checking order
    # What a format binds beyond the entries (compact: the step index and the signing time).
    step: str | None = None
    signed_at: int | None = None
