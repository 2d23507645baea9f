"""Our termination-message parser against Tekton's own (``pkg/termination.ParseMessage`` with Go's
``encoding/json``, built from the Go module proxy by ``tools/peers.sh``) on random and mutated
messages: every message parses to the same entries, or fails in both, or, where they differ, the
verifier refuses the message (a verdict is never given on entries some controller reads otherwise).
"""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import pytest

from entrypoint.errors import TerminationMessageError
from entrypoint.termination import RunResult, parse_message
from tests.support.paths import REPO
from tests.support.signed import SignedMessage, SignedMessageFactory

KEYS = ["a", "b", "commit", "A", "ä", "", "RESULT_MANIFEST", "a.sig", "SVID"]
VALUES = ["", "1", "x\ny", '["a","b"]', '{"k":"v"}', "<&>", "\u2028", "é", "null"]
TYPES: list[Any] = [0, 1, 3, 4, "TaskRunResult", "StepResult", "InternalTektonResult", "Bogus", None, 2, -1]
FIELD_SPELLINGS = [("key", "value", "type"), ("Key", "VALUE", "Type"), ("KEY", "value", "tYpe")]


@pytest.fixture(scope="module")
def go_parser() -> str:
    p = subprocess.run(
        ["bash", str(REPO / "tools" / "peers.sh"), "path", "termparse"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert p.returncode == 0, f"building Tekton's parser (tools/peers.sh path termparse): {p.stderr}"
    return p.stdout.strip()


def go_parse(parser: str, message: str) -> list[RunResult] | None:
    p = subprocess.run([parser], input=message, capture_output=True, text=True, timeout=30, check=False)
    if p.returncode == 1 and p.stdout.startswith("error:"):
        return None
    assert p.returncode == 0, p.stdout + p.stderr
    return [
        RunResult(o.get("key", ""), o.get("value", ""), o.get("type", 0), o.get("resourceName", ""))
        for o in json.loads(p.stdout) or []
    ]


def ours(message: str) -> list[RunResult] | None:
    try:
        return parse_message(message)
    except TerminationMessageError:
        return None


def random_message(rng: random.Random) -> str:
    objs: list[Any] = []
    for _ in range(rng.randint(0, 6)):
        roll = rng.random()
        if roll < 0.08:
            objs.append(None)
        elif roll < 0.14:
            objs.append({})
        elif roll < 0.18:
            objs.append({"unknownField": "x"})
        else:
            k, v, t = rng.choice(FIELD_SPELLINGS)
            obj: dict[str, Any] = {k: rng.choice(KEYS), v: rng.choice(VALUES)}
            if rng.random() < 0.8:
                obj[t] = rng.choice(TYPES)
            if rng.random() < 0.05:
                obj["resourceName"] = "r"
            objs.append(obj)
    return json.dumps(objs, ensure_ascii=rng.random() < 0.5)


def mutated(rng: random.Random, genuine: SignedMessage) -> str:
    text = genuine.text()
    i = rng.randrange(len(text))
    choice = rng.random()
    if choice < 0.4:
        return text[:i] + text[i + 1 :]
    if choice < 0.7:
        return text[:i] + rng.choice('{}[],:"\\0aZ ') + text[i:]
    return text[:i] + rng.choice('{}[],:"\\0aZ ') + text[i + 1 :]


def test_our_parser_agrees_with_tektons_or_the_verifier_refuses(
    go_parser: str, signed_message: SignedMessageFactory
) -> None:
    rng = random.Random(20261203)
    genuine = [signed_message(fmt) for fmt in ("tekton", "compact")]
    messages = [random_message(rng) for _ in range(250)]
    messages += [mutated(rng, rng.choice(genuine)) for _ in range(150)]
    messages += [g.text() for g in genuine]
    same = refused = 0
    for text in messages:
        theirs, mine = go_parse(go_parser, text), ours(text)
        if theirs == mine:
            same += 1
            continue
        # A difference: no verdict may be given on this message.
        verdict = genuine[0].verifier.verify_message(text, genuine[0].taskrun)
        assert not verdict.verified, (text, theirs, mine)
        assert verdict.reason in ("AmbiguousEntries", "MessageInvalid"), (text, verdict.reason, theirs, mine)
        refused += 1
    assert same + refused == len(messages)
    assert same > 0.9 * len(messages), f"{refused} of {len(messages)} messages differ"
