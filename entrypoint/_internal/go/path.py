"""Go ``path/filepath`` Join and Clean on POSIX.

Python's ``os.path.join`` discards earlier parts when a later one is absolute and ``normpath``
keeps a leading ``//``; Go does neither.  Result and metadata paths must match Go's exactly.
"""

from __future__ import annotations


def clean(path: str) -> str:
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def join(*elems: str) -> str:
    parts = [e for e in elems if e != ""]
    if not parts:
        return ""
    return clean("/".join(parts))
