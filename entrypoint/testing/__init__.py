"""Test doubles that speak the real protocols: a SPIRE-shaped test CA and a SPIFFE Workload API server.

Used by the test suite, the demo and by people testing controllers against signed results.  The product
code never imports this package.
"""
