"""Verification of signed termination messages (spec §8.2), behind :mod:`entrypoint.verify`.

One job per module:

* ``reasons``    - the reason codes, the exception that carries one, the fail-closed guard;
* ``request``    - what a format verifier is asked, and what it reports back;
* ``formats``    - which wire format a message uses, and its verifier;
* ``tekton``     - Tekton's format (§7.4): the order of checks and the signing entries;
* ``compact``    - the compact format ``cs1`` (docs/compact-format.md): its checks and its entry;
* ``chain``      - an X.509 chain of trust to the roots, and the validity window;
* ``signatures`` - one signature over one message (Tekton's or JOSE's conventions).

Each backend's own checks (the SVID and the SPIFFE ID; the token and its binding) are in its
package, ``entrypoint._internal.backends.<name>.verify``.
"""
