"""Helpers shared by the test suites, one module a topic; the fixtures built on them are in tests/conftest.py.

The one place test modules import from: no test module imports another.
"""
