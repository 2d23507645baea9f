"""Section references in the code resolve to headings of the documents they cite.

Comments and docstrings cite the behavioural contract, docs/contract.md, by section: a section
sign and a number, optionally a range, items or lifecycle labels ("spec <sign>4.10",
"<sign>7.4-7.6", "<sign>10 item 24", "<sign>4.1 R8-R10").  Which document a reference cites is
decided by the last marker before it on the same line:

* a path ending in ``.md`` (``docs/compact-format.md``): that document of this repository, which
  must exist; its numbered headings are the targets;
* "spec", "specification" or "contract", or no marker at all: docs/contract.md;
* "survey": the field survey, whose cited parts are docs/contract.md's Appendix S (headings
  ``S.<n>``);
* "RFC <n>": an RFC, not checked.

"<sign>N of docs/x.md" cites docs/x.md, and "<sign>N of that document" the last ``.md`` path
before it.  Items ("item 24", "items 8 and 9") must be numbered list items of the section's own
text, and labels ("R8") must appear in it.  "Appendix" followed by a capital letter must name an
appendix heading of the cited document.  The section sign is spelled as an escape here, so that
this file cites nothing itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.support.paths import REPO

CONTRACT = "docs/contract.md"
SCANNED = ("entrypoint", "tools", "tests")
SECTION_SIGN = "\N{SECTION SIGN}"
SURVEY = "survey"  # a pseudo-document: Appendix S of the contract
EXTERNAL = "external"  # an RFC: not checked

_NUMBER = r"\d+(?:\.\d+)*"
_REFERENCE = re.compile(rf"{SECTION_SIGN}\s?(?P<first>{_NUMBER})(?:\s?[-\u2013]\s?(?P<last>{_NUMBER}))?")
_APPENDIX = re.compile(r"\bAppendix\s+(?P<letter>[A-Z])\b")
_DOC_PATH = r"(?<![\w/.-])(?:[\w.-]+/)*[\w-]+\.md\b"
_MARKER = re.compile(
    rf"(?P<doc>{_DOC_PATH})"
    r"|(?P<survey>\bsurvey\b)"
    r"|(?P<spec>\b(?:spec|specification|contract)\b)"
    r"|(?P<external>\bRFC\s?\d+)",
    re.IGNORECASE,
)
_OF_DOCUMENT = re.compile(rf"\s+of\s+(?:the\s+)?(?P<doc>{_DOC_PATH})")
_OF_THAT_DOCUMENT = re.compile(r"\s+of\s+that\s+(?:document|doc|page)\b")
_ITEMS = re.compile(r"\s+items?\s+(?P<list>\d+(?:\s*(?:,|and|to|-|\u2013)\s*\d+)*)")
_LABELS = re.compile(r",?\s+(?P<list>R\d+(?:\s*(?:,|and|then|to|-|\u2013)\s*R\d+)*)")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.*\S)\s*$")
_HEADING_ANCHOR = re.compile(
    r"^(?:Appendix\s+(?P<appendix>[A-Z])\b|(?P<survey>S\.\d+(?:\.\d+)*)\b|(?P<number>\d+(?:\.\d+)*)\.?(?:\s|$))"
)


@dataclass(frozen=True)
class Reference:
    """One cited anchor: ``document`` is a repository path, :data:`SURVEY` or :data:`EXTERNAL`."""

    path: str  # the citing file, relative to the repository
    line: int
    text: str  # the reference as written
    document: str
    anchor: str  # "4.10", "Appendix A"
    items: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    level: int
    body: str  # the section's own text, up to the next heading of the same or a higher level


def _document_of(marker: re.Match[str]) -> str:
    if marker.group("doc"):
        return _repository_document(marker.group("doc"))
    if marker.group("survey"):
        return SURVEY
    if marker.group("external"):
        return EXTERNAL
    return CONTRACT


def _repository_document(name: str) -> str:
    """The repository path a document name means ("compact-format.md" is docs/compact-format.md)."""
    if (REPO / name).is_file() or "/" in name:
        return name
    return f"docs/{name}" if (REPO / "docs" / name).is_file() else name


def _cited_document(line: str, start: int, end: int) -> str:
    """The document the reference at ``line[start:end]`` cites (see the module docstring)."""
    after = line[end:]
    of_doc = _OF_DOCUMENT.match(after)
    if of_doc:
        return _repository_document(of_doc.group("doc"))
    markers = list(_MARKER.finditer(line, 0, start))
    if _OF_THAT_DOCUMENT.match(after):
        docs = [m for m in markers if m.group("doc")]
        return _document_of(docs[-1]) if docs else CONTRACT
    return _document_of(markers[-1]) if markers else CONTRACT


def _numbers(text: str, pattern: str) -> tuple[str, ...]:
    return tuple(re.findall(pattern, text))


def references_in_line(path: str, number: int, line: str) -> list[Reference]:
    """Every section and appendix reference on one line of source text."""
    found: list[Reference] = []
    for match in _REFERENCE.finditer(line):
        document = _cited_document(line, match.start(), match.end())
        rest = line[match.end() :]
        items = _ITEMS.match(rest)
        labels = _LABELS.match(rest)
        text = match.group(0) + (items.group(0) if items else "") + (labels.group(0) if labels else "")
        for anchor in filter(None, (match.group("first"), match.group("last"))):
            found.append(
                Reference(
                    path,
                    number,
                    text.strip(),
                    document,
                    anchor,
                    _numbers(items.group("list"), r"\d+") if items else (),
                    _numbers(labels.group("list"), r"R\d+") if labels else (),
                )
            )
    for match in _APPENDIX.finditer(line):
        document = _cited_document(line, match.start(), match.end())
        found.append(Reference(path, number, match.group(0), document, f"Appendix {match.group('letter')}"))
    return found


def scanned_files() -> list[Path]:
    return sorted(p for top in SCANNED for p in (REPO / top).rglob("*.py") if "__pycache__" not in p.parts)


def all_references() -> list[Reference]:
    found: list[Reference] = []
    for file in scanned_files():
        relative = file.relative_to(REPO).as_posix()
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if SECTION_SIGN in line or "Appendix" in line:
                found += references_in_line(relative, number, line)
    return found


def parse_sections(markdown: str) -> dict[str, Section]:
    """The numbered headings of a Markdown document: "4.10", "Appendix A", "S.3" (fenced code
    blocks skipped: a shell comment there is not a heading)."""
    headings: list[tuple[int, str, int]] = []  # (line index, anchor, level)
    lines = markdown.splitlines()
    fenced = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        heading = _HEADING.match(line) if not fenced else None
        if heading is None:
            continue
        level = len(heading.group("level"))
        numbered = _HEADING_ANCHOR.match(heading.group("title"))
        if numbered is None:
            headings.append((index, "", level))
        elif numbered.group("appendix"):
            headings.append((index, f"Appendix {numbered.group('appendix')}", level))
        else:
            headings.append((index, numbered.group("survey") or numbered.group("number"), level))
    sections: dict[str, Section] = {}
    for position, (index, anchor, level) in enumerate(headings):
        end = next((i for i, _, lv in headings[position + 1 :] if lv <= level), len(lines))
        if anchor:
            sections[anchor] = Section(level, "\n".join(lines[index + 1 : end]))
    return sections


@cache
def sections_of(document: str) -> dict[str, Section] | None:
    path = REPO / document
    return parse_sections(path.read_text(encoding="utf-8")) if path.is_file() else None


def problem(ref: Reference) -> str | None:
    """Why ``ref`` does not resolve, or ``None`` when it does."""
    if ref.document == EXTERNAL:
        return None
    document = CONTRACT if ref.document == SURVEY else ref.document
    sections = sections_of(document)
    if sections is None:
        return f"cites {document}, which is not a document of this repository"
    anchor = f"S.{ref.anchor}" if ref.document == SURVEY and ref.anchor[0].isdigit() else ref.anchor
    section = sections.get(anchor)
    if section is None:
        return f"{document} has no heading {anchor}"
    missing = [i for i in ref.items if not re.search(rf"(?m)^\s*{i}\.\s", section.body)]
    missing += [label for label in ref.labels if not re.search(rf"\b{label}\b", section.body)]
    if missing:
        return f"section {anchor} of {document} has no {', '.join(missing)}"
    return None


def test_every_section_reference_resolves() -> None:
    assert (REPO / CONTRACT).is_file(), f"{CONTRACT} is missing"
    unresolved = [
        f"{ref.path}:{ref.line}: {ref.text!r}: {reason}"
        for ref in all_references()
        if (reason := problem(ref)) is not None
    ]
    assert not unresolved, "section references that do not resolve:\n" + "\n".join(unresolved)


def test_the_scan_finds_the_references() -> None:
    """Guards against a scanner that passes by finding nothing."""
    refs = all_references()
    assert len(refs) >= 100
    documents = {ref.document for ref in refs}
    assert {CONTRACT, "docs/compact-format.md", "docs/oidc-sa-token.md"} <= documents


S = SECTION_SIGN
# (document, anchor, items, labels) of each reference found on a line
Found = list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"(spec {S}4.10)", [(CONTRACT, "4.10", (), ())]),
        (f"(spec {S}8.2, field survey {S}0)", [(CONTRACT, "8.2", (), ()), (SURVEY, "0", (), ())]),
        (f"format ({S}7.4-7.6)", [(CONTRACT, "7.4", (), ()), (CONTRACT, "7.6", (), ())]),
        (
            f"(docs/compact-format.md {S}3-{S}5)",
            [("docs/compact-format.md", "3", (), ()), ("docs/compact-format.md", "5", (), ())],
        ),
        (
            f"(docs/compact-format.md) is checked as {S}6 of that document says",
            [("docs/compact-format.md", "6", (), ())],
        ),
        (f"as {S}6 of docs/compact-format.md says", [("docs/compact-format.md", "6", (), ())]),
        (f"docs/oidc-sa-token.md {S}6's policy", [("docs/oidc-sa-token.md", "6", (), ())]),
        (
            f"{S}3: base64url without padding (RFC 4648 {S}5).",
            [(CONTRACT, "3", (), ()), (EXTERNAL, "5", (), ())],
        ),
        (f"quirks ({S}10 items 8 and 9)", [(CONTRACT, "10", ("8", "9"), ())]),
        (f"(Tekton {S}10 item 6);", [(CONTRACT, "10", ("6",), ())]),
        (f"(spec {S}5.1, {S}4.1 R8-R10)", [(CONTRACT, "5.1", (), ()), (CONTRACT, "4.1", (), ("R8", "R10"))]),
        (f"(spec {S}4.1, R0-R11): wait", [(CONTRACT, "4.1", (), ("R0", "R11"))]),
        ("Go durations (Appendix A).", [(CONTRACT, "Appendix A", (), ())]),
    ],
)
def test_references_in_line(line: str, expected: Found) -> None:
    found = [(r.document, r.anchor, r.items, r.labels) for r in references_in_line("x.py", 1, line)]
    assert found == expected


def test_parse_sections_numbers_levels_and_bodies() -> None:
    markdown = "\n".join(
        [
            "# Title",
            "## 1. One",
            "text of one",
            "### 1.2 One two",
            "1. first item",
            "```sh",
            "# not a heading",
            "```",
            "## Appendix A. Recipes",
            "### S.3 Survey part",
        ]
    )
    sections = parse_sections(markdown)
    assert set(sections) == {"1", "1.2", "Appendix A", "S.3"}
    assert "first item" in sections["1"].body
    assert sections["1.2"].body.startswith("1. first item")
    assert "# not a heading" in sections["1.2"].body


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"spec {S}4.10", None),
        (f"spec {S}99.1", "docs/contract.md has no heading 99.1"),
        (f"{S}10 items 24 and 99", "section 10 of docs/contract.md has no 99"),
        (f"{S}4.1 R8-R99", "section 4.1 of docs/contract.md has no R99"),
        (f"field survey {S}3", None),
        (f"field survey {S}5", "docs/contract.md has no heading S.5"),
        (f"docs/compact-format.md {S}6", None),
        (f"docs/compact-format.md {S}6.9", "docs/compact-format.md has no heading 6.9"),
        (f"docs/missing.md {S}1", "cites docs/missing.md, which is not a document of this repository"),
        (f"RFC 4648 {S}99", None),
    ],
)
def test_problem_names_what_does_not_resolve(line: str, reason: str | None) -> None:
    (ref,) = references_in_line("x.py", 1, line)
    assert problem(ref) == reason
