"""Test doubles that speak the real protocols: a SPIRE-shaped test CA, a SPIFFE Workload API server (X.509-
and JWT-SVIDs) with an OIDC discovery provider, a Kubernetes API server issuing and reviewing bound
service-account tokens, and Sigstore's services: Fulcio (``fulcio``), a CT log (``ctlog``), Rekor v1
(``rekor``) and the trusted root that matches them (``sigstore_root``).

Used by the test suite, the demo and by people testing controllers against signed results.  The product
code never imports this package.
"""
