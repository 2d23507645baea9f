"""The identity backends: one package each, found by name through lazy import paths.

A backend package holds everything about one kind of identity, in modules of fixed names:

* ``common``   - what its signer and verifier agree on (names, codecs; light, optional);
* ``config``   - its arguments, read from the step's flags and environment (in the step's process);
* ``fetch``    - ``Fetcher``: gets a key and the evidence for it (in the identity helper process);
* ``evidence`` - ``decode``: the evidence as it crosses the helper's pipe, and what each wire
  format writes for it;
* ``verify``   - the checks of that evidence, for each wire format.

Nothing here imports a backend: the step imports only the one it signs with, and the verifier only
the one a message names.  Adding a backend is one line in ``BACKENDS`` and its package
(docs/architecture.md, "How to add a backend").
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from types import ModuleType


class Backend:
    """One identity backend: its flag value, its package, and what it owns in each wire format.

    ``tekton_entries``: the entries its evidence travels in, in Tekton's format, the first one
    marking its messages.  ``compact_kinds``: its cs1 material kinds, the full one first;
    ``compact_text``: whether that material is written as text (checked by its ``common``
    module) rather than as base64url of bytes.  ``log_entries``: what its post-sign hook adds.
    Known here, so that reserving and recognising
    them imports no backend.  A plain class: every signing step imports this module; a named tuple
    or a dataclass costs it a millisecond or more to define.
    """

    __slots__ = (
        "compact_kinds", "compact_text", "log_entries", "name", "package", "tekton_binds_step",
        "tekton_entries",
    )  # fmt: skip

    def __init__(self, name: str, package: str, *, tekton_entries: tuple[str, ...],
                 compact_kinds: tuple[str, ...], compact_text: bool = False,
                 log_entries: tuple[str, ...] = (), tekton_binds_step: bool = False) -> None:  # fmt: skip
        self.name, self.package = name, package
        self.tekton_entries, self.compact_kinds, self.compact_text = (
            tekton_entries,
            compact_kinds,
            compact_text,
        )
        # Entries a post-sign hook adds beside the signature (a transparency log's record): no
        # format's signature covers them, so each format leaves them out and the backend checks them.
        self.log_entries = log_entries
        # Whether its Tekton-format evidence names the step (then a verifier may ask for one).
        self.tekton_binds_step = tekton_binds_step

    def module(self, part: str) -> ModuleType:
        """One of the backend's modules (``config``, ``fetch``, ``evidence``, ``verify``)."""
        import importlib  # here: a plain step never loads a backend

        return importlib.import_module(f"{self.package}.{part}")


# The order is the order of recognition in Tekton's format: a message with the first backend's
# marker is that backend's, and one with no marker at all is judged as the first's (missing SVID).
BACKENDS = (
    Backend(
        "spire",
        "entrypoint._internal.backends.spire",
        tekton_entries=("SVID",),
        compact_kinds=("x509", "x509-ref"),
    ),
    Backend(
        "oidc-sa-token",
        "entrypoint._internal.backends.k8s_sat",
        tekton_entries=("SA_TOKEN", "SA_TOKEN_KEY"),
        compact_kinds=("k8s-sat",),
        compact_text=True,
    ),
    Backend(
        "sigstore-keyless",
        "entrypoint._internal.backends.sigstore",
        tekton_entries=("SIGSTORE_CERT", "SIGSTORE_BINDING", "SIGSTORE_LOG"),
        compact_kinds=("fulcio",),
        log_entries=("SIGSTORE_LOG",),
        tekton_binds_step=True,
    ),
)

NAMES = tuple(b.name for b in BACKENDS)


def get(name: str) -> Backend:
    """The backend of that flag value; KeyError names the known ones."""
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise KeyError(f"unknown signing backend {name!r} (known: {', '.join(NAMES)})")


def for_compact_kind(kind: str) -> Backend | None:
    """The backend whose cs1 material kind this is."""
    for backend in BACKENDS:
        if kind in backend.compact_kinds:
            return backend
    return None


def log_entry_names() -> frozenset[str]:
    """Every entry name a backend's post-sign hook adds (signed by no format's signature)."""
    return frozenset(name for backend in BACKENDS for name in backend.log_entries)


def tekton_entry_names() -> frozenset[str]:
    """Every entry name a backend's evidence travels in, in Tekton's format."""
    return frozenset(name for backend in BACKENDS for name in backend.tekton_entries)
