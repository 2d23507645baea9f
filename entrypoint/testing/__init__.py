"""Test doubles that speak the real protocols: a SPIRE-shaped test CA, a SPIFFE Workload API server, and a
Kubernetes API server issuing and reviewing bound service-account tokens.

Used by the test suite, the demo and by people testing controllers against signed results.  The product
code never imports this package.
"""
