"""Property tests (hypothesis) for the termination-message codec, the value codec and the verifier:
what the step writes reads back the same, no input makes the parser or the verifier raise anything
but their documented errors, and no change to a genuine message verifies as other values.

``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) runs many more examples than the default.
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint.errors import EntrypointError
from entrypoint.termination import RunResult, encode_message, parse_entries, parse_message
from entrypoint.testing.ca import TestCA
from entrypoint.verify import Verdict
from tests.support.signed import FORMATS, SignedMessage, make_signed_message
from tests.support.tokens import Issuer

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Text as a step can write it (result files are bytes; the entrypoint decodes them as Go does,
# so lone surrogates never reach an entry).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
TYPES = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 10, -1, 2**53, 2**63 - 1])
ENTRY = st.builds(RunResult, TEXT, TEXT, TYPES, st.sampled_from(["", "r"]))
ENTRIES = st.lists(ENTRY, max_size=8)


@given(ENTRIES, st.booleans())
def test_what_the_step_writes_reads_back_the_same(entries: list[RunResult], compressed: bool) -> None:
    text = encode_message(entries, compressed).decode("utf-8", "surrogatepass")
    assert parse_entries(text) == entries


@given(ENTRIES)
def test_the_controller_view_keeps_the_last_entry_per_key_sorted(entries: list[RunResult]) -> None:
    view = parse_message(encode_message(entries).decode())
    keys = [e.key for e in view]
    assert keys == sorted(set(keys), key=lambda k: k.encode("utf-8", "surrogatepass"))
    last = {e.key: e for e in entries if not e.is_zero()}
    assert view == [last[k] for k in keys]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


@given(st.one_of(TEXT, JSONISH.map(json.dumps)))
def test_the_parser_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(EntrypointError):
        parse_entries(text)


@given(TEXT)
def test_the_value_codec_never_raises(raw: str) -> None:
    assert isinstance(canonical_value(raw), str)


@pytest.fixture(scope="module")
def genuine_messages(ca: TestCA, token_issuer: Issuer) -> dict[str, SignedMessage]:
    return {fmt: make_signed_message(ca, token_issuer, fmt) for fmt in FORMATS}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(TEXT, JSONISH.map(json.dumps)))
def test_the_verifier_never_raises_and_never_verifies_noise(
    genuine_messages: dict[str, SignedMessage], text: str
) -> None:
    g = genuine_messages["tekton"]
    verdict = g.verifier.verify_message(text, g.taskrun)
    assert isinstance(verdict, Verdict)
    assert not verdict.verified


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(FORMATS),
    index=st.integers(min_value=0, max_value=20),
    change=st.sampled_from(["value", "key", "type", "drop", "duplicate", "insert"]),
    new=TEXT,
    rtype=TYPES,
    compressed=st.booleans(),
)
def test_no_change_to_a_genuine_message_verifies_as_other_values(
    genuine_messages: dict[str, SignedMessage],
    fmt: str,
    index: int,
    change: str,
    new: str,
    rtype: int,
    compressed: bool,
) -> None:
    g = genuine_messages[fmt]
    entries = list(g.entries)
    i = index % len(entries)
    e = entries[i]
    if change == "value":
        entries[i] = e._replace(value=new)
    elif change == "key":
        entries[i] = e._replace(key=new)
    elif change == "type":
        entries[i] = e._replace(type=rtype)
    elif change == "drop":
        del entries[i]
    elif change == "duplicate":
        entries.insert(i, e._replace(value=new))
    else:
        entries.insert(i, RunResult(new, new, rtype))
    verdict = g.verifier.verify_message(g.text(entries, compressed=compressed), g.taskrun)
    if verdict.verified:
        # Only what the signature does not cover may have changed: every result shown as signed
        # is one of the genuine entries, unchanged.
        genuine = set(g.entries)
        assert all(r in genuine for r in verdict.results), verdict.results


def test_the_default_profile_is_active_unless_asked() -> None:
    expected = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 150
    assert settings().max_examples == expected
