"""Coverage-guided fuzzing (atheris) of the termination-message parser and the verifier.

    python tools/fuzz.py [--runs N] [--seconds S]

Each input is taken as a termination message: parsed as the controller parses it, then verified
against the trust of genuine messages of both formats and backends (the seed corpus, so that
mutations start next to a valid signature).  A crash is any exception from the verifier (which
must answer every input with a verdict) or any exception but TerminationMessageError from the
parser; a false accept is a verified verdict that shows a result no genuine message carries.
Prints the inputs tried, crashes and false accepts; exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tests.support.signed import SignedMessage


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="inputs to try (default 100000)")
    parser.add_argument("--seconds", type=int, default=0, help="stop after this long (0: no limit)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _fuzz(args.runs, args.seconds)
    return _supervise(argv)


def _supervise(argv: list[str]) -> int:
    """Run the fuzzer as a child and sum up: libFuzzer ends the process itself (no Python exit
    hooks run) and stops at the first crash, leaving that input in a crash-* file."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *argv], capture_output=True, text=True, check=False, cwd=REPO
    )
    out = proc.stdout + proc.stderr
    done = re.findall(r"Done (\d+) runs", out)
    executed = re.findall(r"#(\d+)\s", out)
    tried = int(done[-1]) if done else int(executed[-1]) if executed else 0
    false_accepts = out.count("false accept:")
    crashes = 0 if proc.returncode == 0 else 1 - min(false_accepts, 1)
    if proc.returncode != 0:
        sys.stderr.write(out[-4000:])
    print(f"fuzz: {tried} inputs tried, {crashes} crashes, {false_accepts} false accepts")
    return 0 if proc.returncode == 0 else 1


def _genuine() -> list[SignedMessage]:
    from entrypoint.testing.ca import TestCA
    from tests.support.signed import BACKENDS, FORMATS, make_signed_message
    from tests.support.tokens import Issuer

    ca, issuer = TestCA("example.org"), Issuer("ES256")
    return [make_signed_message(ca, issuer, fmt, backend) for fmt in FORMATS for backend in BACKENDS]


def _fuzz(runs: int, seconds: int) -> int:
    import atheris  # type: ignore[import-untyped]  # ships no type information

    with atheris.instrument_imports():
        from entrypoint.errors import TerminationMessageError
        from entrypoint.termination import parse_entries

    genuine = _genuine()
    known = {e for g in genuine for e in g.entries}
    corpus = Path(tempfile.mkdtemp(prefix="fuzz-corpus-"))
    for i, g in enumerate(genuine):
        (corpus / f"genuine-{i}").write_text(g.text())
        (corpus / f"genuine-{i}-tknz").write_text(g.text(compressed=True))

    def one_input(data: bytes) -> None:
        text = data.decode("utf-8", "surrogateescape")
        # The parser's one documented error; anything else propagates as a crash.
        with contextlib.suppress(TerminationMessageError):
            parse_entries(text)
        g = genuine[len(data) % len(genuine)]
        verdict = g.verifier.verify_message(text, g.taskrun)
        if verdict.verified and any(r not in known for r in verdict.results):
            raise AssertionError(f"false accept: {verdict.results}")

    # A crashing input is kept under build/ (git-ignored), named in libFuzzer's report.
    artifacts = REPO / "build" / "fuzz"
    artifacts.mkdir(parents=True, exist_ok=True)
    libfuzzer = [sys.argv[0], f"-runs={runs}", "-max_len=8192", f"-artifact_prefix={artifacts}/", str(corpus)]
    if seconds:
        libfuzzer.insert(1, f"-max_total_time={seconds}")
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
