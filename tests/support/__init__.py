"""Fixtures and helpers shared by the test suites: the one place test modules import from."""
