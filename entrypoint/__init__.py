"""signed-entrypoint: a drop-in replacement for Tekton's step entrypoint that signs results.

Importing this package must stay cheap: it is on the path of every step.
"""

__version__ = "0.1.0"
