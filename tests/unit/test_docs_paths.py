"""Every file of the repository that the documents name exists (a move must update its docs)."""

from __future__ import annotations

import re

from tests.support.paths import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A path inside this repository: one of its top-level folders, then a file with an extension.
_PATH = re.compile(
    r"(?<![\w/.])((?:entrypoint|tests|tools|docs|images|deploy)/[\w/.-]*\w\.(?:py|md|sh|json|txt|yaml))"
)


def test_every_path_named_in_the_documents_exists() -> None:
    missing = []
    for doc in DOCUMENTS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for path in _PATH.findall(line):
                if not (REPO / path).exists():
                    missing.append(f"{doc.relative_to(REPO)}:{number}: {path}")
    assert not missing, "\n".join(missing)


def test_the_scan_finds_paths() -> None:
    assert _PATH.findall("see `entrypoint/_internal/step/runner.py` and docs/x.md.") == [
        "entrypoint/_internal/step/runner.py",
        "docs/x.md",
    ]
    assert _PATH.findall("Tekton's cmd/entrypoint/README.md") == []
