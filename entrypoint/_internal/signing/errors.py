"""Signing errors (kept apart from the heavy modules so the lifecycle can name them cheaply)."""

from __future__ import annotations

# Defined with the rest of the tree; re-exported here, where the signing code has always found them.
from entrypoint.errors import ReservedResultError, SigningError

__all__ = ["ReservedResultError", "SigningError"]
