"""Go ``filepath.Clean`` / ``filepath.Join`` on POSIX (spec §0.4, §11 item 11, Appendix A)."""

from __future__ import annotations

import os

import pytest

from entrypoint._internal.go.path import clean, join


@pytest.mark.parametrize(
    ("path", "want"),
    [
        # already clean
        ("abc", "abc"),
        ("abc/def", "abc/def"),
        ("a/b/c", "a/b/c"),
        (".", "."),
        ("..", ".."),
        ("../..", "../.."),
        ("../../abc", "../../abc"),
        ("/abc", "/abc"),
        ("/", "/"),
        # empty is current dir
        ("", "."),
        # trailing slash removed
        ("abc/", "abc"),
        ("abc/def/", "abc/def"),
        ("a/b/c/", "a/b/c"),
        ("./", "."),
        ("../", ".."),
        ("../../", "../.."),
        ("/abc/", "/abc"),
        # double slashes collapsed, including a leading "//" (posixpath.normpath keeps it)
        ("abc//def//ghi", "abc/def/ghi"),
        ("//abc", "/abc"),
        ("///abc", "/abc"),
        ("//abc//", "/abc"),
        ("abc//", "abc"),
        ("//", "/"),
        # "." elements removed
        ("abc/./def", "abc/def"),
        ("/./abc/def", "/abc/def"),
        ("abc/.", "abc"),
        # ".." elements resolved
        ("abc/def/ghi/../jkl", "abc/def/jkl"),
        ("abc/def/../ghi/../jkl", "abc/jkl"),
        ("abc/def/..", "abc"),
        ("abc/def/../..", "."),
        ("/abc/def/../..", "/"),
        ("abc/def/../../..", ".."),
        ("/abc/def/../../..", "/"),
        ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
        ("/../abc", "/abc"),
        ("/..", "/"),
        ("a/../..", ".."),
        # combinations
        ("abc/./../def", "def"),
        ("abc//./../def", "def"),
        ("abc/../../././../def", "../../def"),
    ],
)
def test_clean(path: str, want: str) -> None:
    assert clean(path) == want


@pytest.mark.parametrize(
    ("elems", "want"),
    [
        ((), ""),
        (("",), ""),
        (("", ""), ""),
        (("a",), "a"),
        (("a", "b"), "a/b"),
        (("a", ""), "a"),
        (("", "b"), "b"),
        (("/", "a"), "/a"),
        (("/", "a/b"), "/a/b"),
        (("/", ""), "/"),
        (("//", "a"), "/a"),
        (("/a", "b"), "/a/b"),
        (("a/", "b"), "a/b"),
        (("a/", ""), "a"),
        (("", "", "a", "", "b"), "a/b"),
        (("", "/a"), "/a"),
        # an absolute later element does NOT reset the path (unlike os.path.join)
        (("/tekton/results", "/x"), "/tekton/results/x"),
        (("/tekton/results", "../../etc/passwd"), "/etc/passwd"),
        (("/tekton/results", "../x"), "/tekton/x"),
        (("/tekton/run/0/status", "results"), "/tekton/run/0/status/results"),
        (
            ("/tekton/run/0/status", "artifacts", "provenance.json"),
            "/tekton/run/0/status/artifacts/provenance.json",
        ),
        # an empty step metadata dir gives relative paths
        (("", "results"), "results"),
        (("", "exitCode"), "exitCode"),
        (("", "artifacts", "provenance.json"), "artifacts/provenance.json"),
        ((".", "results"), "results"),
        (("a", ".."), "."),
        (("a", "..", ".."), ".."),
        (("dir/", "/name/"), "dir/name"),
    ],
)
def test_join(elems: tuple[str, ...], want: str) -> None:
    assert join(*elems) == want


def test_join_differs_from_os_path_join_for_absolute_second_element() -> None:
    assert os.path.join("/tekton/results", "/x") == "/x"
    assert join("/tekton/results", "/x") == "/tekton/results/x"
