"""Which signed-results wire format a message uses, and the verifier of each.

Only Tekton's format exists today.  A second one (say, signatures that also cover the key) adds an
entry to ``_FORMATS`` with its own marker entries; ``detect_format`` then tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from entrypoint._internal.verification import tekton
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint.termination import RunResult


@dataclass(frozen=True)
class Format:
    name: str
    recognises: Callable[[Sequence[RunResult]], bool]
    verify: Callable[[Sequence[RunResult], Request], Outcome]
    # The entries that carry the signature rather than results; hidden from users.
    is_signing_entry: Callable[[RunResult], bool]


# Most specific first: a newer format's markers must be looked for before Tekton's generic ones.
_FORMATS: tuple[Format, ...] = (
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
