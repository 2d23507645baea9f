"""Verification of signed termination messages (spec §8.2), behind :mod:`entrypoint.verify`.

One job per module:

* ``reasons``    - the reason codes and the exception that carries one;
* ``formats``    - which wire format a message uses, and its verifier;
* ``tekton``     - Tekton's format (§7.4): the order of checks and the signing entries;
* ``svid``       - decoding the ``SVID`` entry;
* ``identity``   - the SPIFFE ID a TaskRun must present;
* ``chain``      - the SVID's chain of trust to the bundle's roots;
* ``signatures`` - one signature over one canonical value;
* ``trust``      - loading trust bundles (a PEM file, the Workload API).
"""
