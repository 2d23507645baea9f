"""``make demo``: a two-step "TaskRun" run locally through the real entrypoint, no cluster needed.

The steps are started at once with the arguments Tekton's controller would give them (spec §2.7),
under a temporary Tekton root: step 1 ("build") writes a task result and a step result; step 2
("report") waits for step 1's post file and reads step 1's result through a ``$(steps...)``
reference.  Each step's termination message is then printed as the controller would parse it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from entrypoint.termination import ResultType, parse_message  # noqa: E402

TYPE_NAMES = {int(t): t.name.lower().replace("_", "-") for t in ResultType}


def entrypoint_cmd() -> list[str]:
    script = Path(sys.executable).parent / "entrypoint"
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoint"]


def step_args(root: Path, i: int) -> list[str]:
    run = root / "run" / str(i)
    wait = ["-wait_file", str(root / "run" / str(i - 1) / "out")] if i else []
    return [
        *wait,
        "-post_file", str(run / "out"),
        "-termination_path", str(run / "termination"),
        "-step_metadata_dir", str(run / "status"),
    ]  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tekton-demo-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "SIGNED_ENTRYPOINT_ROOT": str(root)}
        for d in ("results", "run/0", "run/1"):
            (root / d).mkdir(parents=True)
        init = subprocess.run(
            [*entrypoint_cmd(), "step-init", "step-build", "step-report"], env=env, check=False
        )
        if init.returncode != 0:
            return init.returncode

        build = (
            'echo "building..."; '
            f"printf 'sha256:%064d' 42 > {root}/results/IMAGE_DIGEST; "
            f'printf \'["linux/amd64","linux/arm64"]\' > {root}/run/0/status/results/platforms'
        )
        report = 'echo "step 2 sees platforms: $1"; printf ok > ' + f"{root}/results/REPORT"
        steps = [
            ["-results", "IMAGE_DIGEST", "-step_results", "platforms",
             "-entrypoint", "/bin/sh", "--", "-c", build],
            ["-results", "REPORT", "-entrypoint", "/bin/sh", "--", "-c", report, "sh",
             "$(steps.build.results.platforms[1])"],
        ]  # fmt: skip
        print(f"Tekton root: {root}\nStarting both steps at once; step 2 waits for step 1's post file.\n")
        procs = [
            subprocess.Popen([*entrypoint_cmd(), *step_args(root, i), *args], env=env)
            for i, args in reversed(list(enumerate(steps)))
        ]
        codes = [p.wait() for p in procs]
        for i in range(len(steps)):
            path = root / "run" / str(i) / "termination"
            print(f"\n--- step {i} termination message ({len(path.read_bytes())} bytes of 4096) ---")
            for e in parse_message(path.read_text()):
                print(f"  {e.key:<16} {TYPE_NAMES.get(e.type, str(e.type)):<18} {e.value!r}")
        print(f"\nexit codes: {list(reversed(codes))}")
        return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
