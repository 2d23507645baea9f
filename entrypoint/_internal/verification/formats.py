"""Which signed-results wire format a message uses, and the verifier of each.

Tekton's format (``SVID``, ``*.sig``, ``RESULT_MANIFEST``) and the compact format ``cs1`` (one
``SIGNATURE`` entry, docs/compact-format.md).  Each is recognised by its own marker entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from entrypoint._internal.verification import compact, tekton
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint.termination import RunResult


@dataclass(frozen=True)
class Format:
    """One wire format as the verifier sees it: how to recognise it, verify it, hide its entries."""

    name: str
    recognises: Callable[[Sequence[RunResult]], bool]
    verify: Callable[[Sequence[RunResult], Request], Outcome]
    # The entries that carry the signature rather than results; hidden from users.
    is_signing_entry: Callable[[RunResult], bool]


# Most specific first: a newer format's markers must be looked for before Tekton's generic ones
# (a cs1 message may well carry a result named ``*.sig`` or ``SVID`` as an ordinary entry).
_FORMATS: tuple[Format, ...] = (
    Format(compact.NAME, compact.recognises, compact.verify, compact.is_signing_entry),
    Format(tekton.NAME, tekton.recognises, tekton.verify, tekton.is_signing_entry),
)


def detect_format(entries: Sequence[RunResult]) -> Format | None:
    """The format whose signing entries the message carries; ``None`` when it carries none we
    know (an unsigned message, or one signed in a format this version does not understand)."""
    for fmt in _FORMATS:
        if fmt.recognises(entries):
            return fmt
    return None


def known_formats() -> tuple[str, ...]:
    return tuple(fmt.name for fmt in _FORMATS)
