"""Signing errors (kept apart from the heavy modules so the lifecycle can name them cheaply)."""

from __future__ import annotations

from entrypoint.errors import EntrypointError


class SigningError(EntrypointError):
    """The step's results could not be signed (no identity, unusable key, reserved name, ...)."""


class ReservedResultError(SigningError):
    """A step wrote a result whose name belongs to the signing entries."""
