"""Verification of signed termination messages (spec §8.2), behind :mod:`entrypoint.verify`.

One job per module:

* ``reasons``    - the reason codes, the exception that carries one, the fail-closed guard;
* ``formats``    - which wire format a message uses, and its verifier;
* ``tekton``     - Tekton's format (§7.4): the order of checks and the signing entries;
* ``compact``    - the compact format ``cs1`` (docs/compact-format.md): its checks and its entry;
* ``svid``       - decoding an SVID's chain (Tekton's PEM entry, cs1's DER material);
* ``identity``   - the SPIFFE ID a TaskRun must present;
* ``chain``      - the SVID's chain of trust to the bundle's roots, and the validity window;
* ``signatures`` - one signature over one message (Tekton's or JOSE's conventions);
* ``trust``      - loading trust bundles (a PEM file, the Workload API).
"""
