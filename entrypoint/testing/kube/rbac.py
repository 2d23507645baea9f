"""What the Kubernetes API double's callers may not do: RBAC reduced to the denials a test sets."""

from __future__ import annotations

import threading

VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "*"})


class Denials:
    """Requests matching a rule (verb, resource[/subresource], namespace) are forbidden; others allowed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[str, str, str | None]] = []

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """``verb`` and ``resource`` may be ``"*"``; ``namespace`` None matches every namespace."""
        if verb not in VERBS:
            raise ValueError(f"verb must be one of {sorted(VERBS)}, got {verb!r}")
        with self._lock:
            self._rules.append((verb, resource, namespace))

    def allow_all(self) -> None:
        with self._lock:
            self._rules.clear()

    def denies(self, verb: str, resource: str, namespace: str | None) -> bool:
        with self._lock:
            rules = list(self._rules)
        return any(
            v in ("*", verb) and r in ("*", resource) and (ns is None or ns == namespace)
            for v, r, ns in rules
        )
