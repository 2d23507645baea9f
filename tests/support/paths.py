"""Where the repository and its package are, for tests that read their files or run their tools."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "entrypoint"
