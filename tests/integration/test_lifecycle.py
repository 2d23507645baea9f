"""The step lifecycle through the real ``entrypoint`` process (spec §4, §4.9 outcome table, §9.1)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from entrypoint.termination import ResultType
from tests.support.tekton import TektonRoot

STARTED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def sh(script: str) -> list[str]:
    return ["-entrypoint", "/bin/sh", "--", "-c", script]


def status(root: TektonRoot, i: int = 0) -> Path:
    return root.run_dir(i) / "status"


# -- outcome table (§4.9) ----------------------------------------------------------------------------


def test_success_writes_post_exitcode_and_started_at(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), *sh("echo hello")])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hello\n"
    assert (root.run_dir(0) / "out").exists()
    assert not (root.run_dir(0) / "out.err").exists()
    assert (status(root) / "exitCode").read_text() == "0"
    assert (status(root) / "results").is_dir() and (status(root) / "artifacts").is_dir()
    entries = root.entries()
    assert [(e.key, e.type) for e in entries] == [("StartedAt", 3)]
    assert STARTED_AT.match(entries[0].value)


def test_child_failure_exits_with_its_code_and_fails_post_file(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), *sh("exit 3")])
    assert p.returncode == 3
    assert (root.run_dir(0) / "out.err").exists()
    assert not (root.run_dir(0) / "out").exists()
    assert not (status(root) / "exitCode").exists()
    assert set(root.values()) == {"StartedAt"}


def test_on_error_continue_records_exit_code_and_succeeds(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-on_error", "continue", *sh("exit 7")])
    assert p.returncode == 0, p.stderr
    assert (root.run_dir(0) / "out").exists()
    assert (status(root) / "exitCode").read_text() == "7"
    assert root.values()["ExitCode"] == ("7", 3)


def test_on_error_stop_and_fail_is_the_default(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-on_error", "stopAndFail", *sh("exit 1")])
    assert p.returncode == 1
    assert (root.run_dir(0) / "out.err").exists()


def test_killed_child_exits_255_and_continue_records_minus_one(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), *sh("kill -TERM $$")])
    assert p.returncode == 255
    assert (root.run_dir(0) / "out.err").exists()
    (root.run_dir(0) / "out.err").unlink()
    p = root.run([*root.step_args(0), "-on_error", "continue", *sh("kill -TERM $$")])
    assert p.returncode == 0
    assert (root.run_dir(0) / "out").exists()
    assert (status(root) / "exitCode").read_text() == "-1"


def test_previous_step_failure_skips_this_step(root: TektonRoot) -> None:
    (root.run_dir(0) / "out.err").write_text("")
    marker = root.path / "ran"
    p = root.run([*root.step_args(1), *sh(f"touch {marker}")])
    assert p.returncode == 1
    assert "Skipping step because a previous step failed" in p.stderr
    assert not marker.exists()
    assert (root.run_dir(1) / "out.err").exists()
    assert not (status(root, 1) / "exitCode").exists()
    assert root.values()["Reason"] == ("Skipped", 3)


def test_when_expressions_false_skip_successfully(root: TektonRoot) -> None:
    when = json.dumps([{"input": "foo", "operator": "in", "values": ["bar"]}])
    marker = root.path / "ran"
    p = root.run([*root.step_args(0), "--when_expressions", when, *sh(f"touch {marker}")])
    assert p.returncode == 0, p.stderr
    assert not marker.exists()
    assert (root.run_dir(0) / "out").exists()
    assert (status(root) / "exitCode").read_text() == "0"
    assert root.values()["Reason"] == ("Skipped", 3)


def test_when_expressions_true_with_cel_run(root: TektonRoot) -> None:
    when = json.dumps([{"input": "foo", "operator": "in", "values": ["foo", "bar"]}, {"cel": "'a'=='a'"}])
    p = root.run([*root.step_args(0), "--when_expressions", when, *sh("echo ran")])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ran\n"


def test_when_expression_cel_error_fails_step(root: TektonRoot) -> None:
    when = json.dumps([{"cel": "foo==foo"}])
    p = root.run([*root.step_args(0), "--when_expressions", when, *sh("echo ran")])
    assert p.returncode == 1
    assert "ran" not in p.stdout
    assert (root.run_dir(0) / "out.err").exists()


def test_invalid_when_json_is_fatal_before_anything_runs(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "--when_expressions", "[{", *sh("echo ran")])
    assert p.returncode == 1
    assert not root.termination.exists()
    assert not (root.run_dir(0) / "out").exists()


def test_timeout_kills_and_reports_timeout_exceeded(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-timeout", "300ms", *sh("sleep 30")])
    assert p.returncode == 1
    assert "context deadline exceeded" in p.stderr
    assert (root.run_dir(0) / "out.err").exists()
    assert not (status(root) / "exitCode").exists()
    assert root.values()["Reason"] == ("TimeoutExceeded", 3)


def test_timeout_kills_grandchildren_holding_the_output(root: TektonRoot, tmp_path: Path) -> None:
    # Tekton would hang here: the grandchild keeps the tee pipe open.
    out = tmp_path / "out.log"
    p = root.run(
        [*root.step_args(0), "-timeout", "300ms", "-stdout_path", str(out), *sh("sleep 30 & sleep 30")]
    )
    assert p.returncode == 1
    assert root.values()["Reason"] == ("TimeoutExceeded", 3)


def test_negative_timeout_fails_without_running(root: TektonRoot) -> None:
    marker = root.path / "ran"
    p = root.run([*root.step_args(0), "-timeout", "-10s", *sh(f"touch {marker}")])
    assert p.returncode == 1
    assert "negative timeout specified" in p.stderr
    assert not marker.exists()
    assert (root.run_dir(0) / "out.err").exists()


def test_bad_timeout_is_a_flag_error(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-timeout", "10", *sh("true")])
    assert p.returncode == 2
    assert 'invalid value "10" for flag -timeout: parse error' in p.stderr


def test_cancel_file_kills_step_and_exits_9(root: TektonRoot) -> None:
    proc = root.popen([*root.step_args(0), *sh("echo started; sleep 30")])
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    (root / "downward" / "cancel").write_text("CANCEL")
    proc.wait(timeout=30)
    assert proc.returncode == 9
    assert (root.run_dir(0) / "out.err").exists()
    assert (status(root) / "exitCode").read_text() == "killed"
    assert root.values()["Reason"] == ("Cancelled", 3)


def test_empty_cancel_file_does_not_cancel(root: TektonRoot) -> None:
    (root / "downward" / "cancel").write_text("")
    p = root.run([*root.step_args(0), *sh("sleep 0.3; echo done")])
    assert p.returncode == 0
    assert p.stdout == "done\n"


def test_start_failure_is_not_continuable(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-on_error", "continue", "-entrypoint", "no-such-command-xyz"])
    assert p.returncode == 1
    assert 'exec: "no-such-command-xyz": executable file not found in $PATH' in p.stderr
    assert (root.run_dir(0) / "out.err").exists()


def test_signals_are_forwarded_to_the_child_process_group(root: TektonRoot) -> None:
    proc = root.popen(
        [
            *root.step_args(0),
            *sh("trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"),
        ]
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "got-term" in out
    assert proc.returncode == 42


def test_signal_delivered_to_another_thread_is_still_forwarded(root: TektonRoot) -> None:
    # The kernel may hand a process-directed signal to any thread; Python handles it on the main
    # thread only.  Aim SIGTERM at a tee thread (copying the output to -stdout_path) itself: it
    # must still reach the child.
    import ctypes
    import os

    script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    proc = root.popen([*root.step_args(0), "-stdout_path", str(root / "teed"), *sh(script)])
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
    assert others, "expected the entrypoint to run a second thread (a tee copier)"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.tgkill(proc.pid, others[0], signal.SIGTERM) == 0
    out, _ = proc.communicate(timeout=30)
    assert "got-term" in out
    assert proc.returncode == 42


def test_stdout_and_stderr_are_teed(root: TektonRoot, tmp_path: Path) -> None:
    out, err = tmp_path / "stdout", tmp_path / "sub" / "path" / "stderr"
    p = root.run(
        [
            *root.step_args(0),
            "-stdout_path",
            str(out),
            "-stderr_path",
            str(err),
            *sh("echo hello world; echo oops >&2"),
        ]
    )
    assert p.returncode == 0
    assert p.stdout == "hello world\n" and p.stderr.endswith("oops\n")
    assert out.read_text() == "hello world\n"
    assert err.read_text() == "oops\n"


def test_same_path_for_both_streams_appends_both(root: TektonRoot, tmp_path: Path) -> None:
    both = tmp_path / "both"
    p = root.run(
        [
            *root.step_args(0),
            "-stdout_path",
            str(both),
            "-stderr_path",
            str(both),
            *sh("echo hello world; echo hello world >&2"),
        ]
    )
    assert p.returncode == 0
    assert len(both.read_bytes()) == 2 * (len("hello world") + 1)


# -- waiting -------------------------------------------------------------------------------------------


def test_wait_file_content_requires_a_non_empty_file(root: TektonRoot) -> None:
    ready = root / "downward" / "ready"
    ready.write_text("")
    proc = root.popen(["-wait_file", str(ready), "-wait_file_content", *root.step_args(0), *sh("echo go")])
    time.sleep(0.3)
    assert proc.poll() is None  # still waiting: the file is empty
    ready.write_text("READY")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "go\n"


def test_chained_steps_run_in_order(root: TektonRoot) -> None:
    log = root.path / "order"
    procs = [root.popen([*root.step_args(i), *sh(f"echo {i} >> {log}")]) for i in (2, 1, 0)]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    assert log.read_text() == "0\n1\n2\n"


def test_breakpoint_on_failure_ignores_previous_error(root: TektonRoot) -> None:
    (root.run_dir(0) / "out.err").write_text("")
    p = root.run([*root.step_args(1), "-breakpoint_on_failure", *sh("echo ran")])
    assert p.returncode == 0 and p.stdout == "ran\n"


def test_breakpoint_on_failure_exits_with_the_debugger_decision(root: TektonRoot) -> None:
    post = root.run_dir(0) / "out"
    proc = root.popen([*root.step_args(0), "-breakpoint_on_failure", *sh("exit 5")])
    time.sleep(0.3)
    assert proc.poll() is None  # waiting for the user's decision
    Path(str(post) + ".breakpointexit").write_text("1\n")
    proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert not post.exists() and not Path(str(post) + ".err").exists()


def test_debug_before_step_fail_continue(root: TektonRoot) -> None:
    post = root.run_dir(0) / "out"
    Path(str(post) + ".beforestepexit.err").write_text("1")
    marker = root.path / "ran"
    p = root.run([*root.step_args(0), "-debug_before_step", *sh(f"touch {marker}")])
    assert p.returncode == 1
    assert "before step breakpoint fail-continue" in p.stderr
    assert not marker.exists()
    assert Path(str(post) + ".err").exists()


def test_debug_before_step_continue(root: TektonRoot) -> None:
    post = root.run_dir(0) / "out"
    Path(str(post) + ".beforestepexit").write_text("0")
    p = root.run([*root.step_args(0), "-debug_before_step", *sh("echo ran")])
    assert p.returncode == 0 and p.stdout == "ran\n"


# -- results (§5) ---------------------------------------------------------------------------------------


def test_task_and_step_results_are_raw_bytes_in_order(root: TektonRoot) -> None:
    script = (
        f"printf 'sha256:abc\\n' > {root / 'results' / 'digest'}; "
        f'printf \'["a","b"]\' > {root / "results" / "list"}; '
        f"printf 'v' > {status(root) / 'results' / 'sub'}"
    )
    p = root.run([*root.step_args(0), "-results", "list,missing,digest", "-step_results", "sub", *sh(script)])
    assert p.returncode == 0, p.stderr
    raw = json.loads(root.termination.read_text())
    assert [(e["key"], e.get("type")) for e in raw] == [
        ("list", 1),
        ("digest", 1),
        ("sub", 4),
        ("StartedAt", 3),
    ]
    assert raw[1]["value"] == "sha256:abc\n"


def test_results_with_empty_first_name_are_not_read(root: TektonRoot) -> None:
    (root / "results" / "a").write_text("x")
    p = root.run([*root.step_args(0), "-results", ",a", *sh("true")])
    assert p.returncode == 0
    assert set(root.values()) == {"StartedAt"}


def test_results_are_collected_after_failure(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-results", "r", *sh(f"printf x > {root / 'results' / 'r'}; exit 4")])
    assert p.returncode == 4
    assert root.values()["r"] == ("x", 1)


def test_artifacts_are_reported_with_their_full_paths(root: TektonRoot) -> None:
    prov = '{"outputs":[{"name":"image","values":[{"uri":"x","digest":{"sha256":"a"}}]}]}'
    (root / "artifacts" / "provenance.json").write_text(prov)
    p = root.run(
        [*root.step_args(0), *sh(f"printf '{{}}' > {status(root) / 'artifacts' / 'provenance.json'}")]
    )
    assert p.returncode == 0
    values = root.values()
    assert values[str(status(root) / "artifacts" / "provenance.json")] == ("{}", ResultType.STEP_ARTIFACTS)
    assert values[str(root / "artifacts" / "provenance.json")] == (prov, ResultType.TASK_RUN_ARTIFACTS)


def test_oversized_results_exit_1_after_post_file_is_written(root: TektonRoot) -> None:
    (root / "results" / "big").write_text("a" * 4096)
    p = root.run([*root.step_args(0), "-results", "big", *sh("true")])
    assert p.returncode == 1
    assert "Termination message is above max allowed size 4096, caused by large task result." in p.stderr
    assert (root.run_dir(0) / "out").exists()
    assert (status(root) / "exitCode").read_text() == "0"
    assert set(root.values()) == {"StartedAt"}  # the finaliser still wrote the internal entries


def test_compressed_termination_message_fits_more_results(root: TektonRoot) -> None:
    names = [f"IMAGE{i}_DIGEST" for i in range(50)]
    for i, n in enumerate(names):
        (root / "results" / n).write_text(f"sha256:{i:064x}")
    plain = root.run([*root.step_args(0), "-results", ",".join(names), *sh("true")])
    assert plain.returncode == 1  # 50 digests do not fit in 4096 bytes of JSON
    root.termination.unlink()
    packed = root.run(
        [*root.step_args(1), "-compress_termination_message", "-results", ",".join(names), *sh("true")]
    )
    assert packed.returncode == 0, packed.stderr
    text = root.termination.read_text()
    assert text.startswith("tknz:") and len(text) <= 4096
    assert {k for k, (_, t) in root.values().items() if t == 1} == set(names)


def test_sidecar_logs_mode_keeps_results_out_of_the_message(root: TektonRoot) -> None:
    (root / "results" / "r").write_text("x")
    (root / "artifacts" / "provenance.json").write_text("{}")
    p = root.run([*root.step_args(0), "-result_from", "sidecar-logs", "-results", "r", *sh("true")])
    assert p.returncode == 0
    assert set(root.values()) == {"StartedAt"}


def test_existing_termination_content_is_kept(root: TektonRoot) -> None:
    root.termination.write_text('[{"key":"earlier","value":"v","type":1}]')
    p = root.run([*root.step_args(0), *sh("true")])
    assert p.returncode == 0
    assert set(root.values()) == {"earlier", "StartedAt"}


# -- substitution (§4.4) -----------------------------------------------------------------------------


def test_step_result_references_are_substituted_in_command_and_env(root: TektonRoot) -> None:
    res = root / "steps" / "step-foo" / "results"
    res.mkdir(parents=True)
    (res / "res").write_text('["Hello","World"]')
    (res / "obj").write_text('{"first":"hello","second":"world"}')
    p = root.run(
        [
            *root.step_args(0),
            "-entrypoint",
            "/bin/sh",
            "--",
            "-c",
            'echo "$@" "$GREETING"',
            "sh",
            "start",
            "$(steps.foo.results.res[*])",
            "stop",
        ],
        env={"GREETING": "$(steps.foo.results.obj.first)-$(steps.foo.results.obj.second)"},
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "start Hello World stop hello-world\n"


def test_out_of_range_index_crashes_like_go(root: TektonRoot) -> None:
    res = root / "steps" / "step-foo" / "results"
    res.mkdir(parents=True)
    (res / "res").write_text('["Hello"]')
    p = root.run([*root.step_args(0), *sh("echo $(steps.foo.results.res[3])")])
    assert p.returncode == 2


# -- command resolution (§2.6) and argument split (§2.1) ----------------------------------------------


def test_platform_commands_are_used_without_entrypoint(root: TektonRoot) -> None:
    import platform as _platform

    from entrypoint._internal.step.platforms import current_platform

    assert _platform.system() == "Linux"
    cmds = json.dumps({current_platform(): ["/bin/echo", "from-platform"]})
    p = root.run([*root.step_args(0), "--", "extra"], env={"TEKTON_PLATFORM_COMMANDS": cmds})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "from-platform extra\n"


def test_missing_platform_commands_is_fatal(root: TektonRoot) -> None:
    p = root.run(root.step_args(0))
    assert p.returncode == 1
    assert "unexpected end of JSON input" in p.stderr


def test_positional_args_without_separator_are_dropped(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-entrypoint", "/bin/echo", "not", "passed"])
    assert p.returncode == 0
    assert p.stdout == "\n"


def test_separator_at_index_zero_does_not_split(root: TektonRoot, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("data")
    p = root.run(["--", "cp", str(src), str(dst)])
    assert p.returncode == 0, p.stderr
    assert dst.read_text() == "data"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-dont_send_results_to_termination_path"],
            "flag provided but not defined: -dont_send_results_to_termination_path",
        ),
        (["-wait_file_contents"], "flag provided but not defined: -wait_file_contents"),
        (["-secret_mask_file", "x"], "flag provided but not defined: -secret_mask_file"),
        (["-post_file"], "flag needs an argument: -post_file"),
        (["---x"], "bad flag syntax: ---x"),
        (["-wait_file_content=maybe"], 'invalid boolean value "maybe" for -wait_file_content: parse error'),
    ],
)
def test_flag_errors_exit_2(root: TektonRoot, args: list[str], message: str) -> None:
    p = root.run(["-entrypoint", "/bin/true", *args])
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == message
    assert "Usage of" in p.stderr


def test_help_exits_0(root: TektonRoot) -> None:
    p = root.run(["-help"])
    assert p.returncode == 0
    assert "-post_file" in p.stderr


def test_legacy_basic_docker_credentials_are_written_and_copied_home(
    root: TektonRoot, tmp_path: Path
) -> None:
    secret = root / "creds-secrets" / "reg"
    secret.mkdir(parents=True)
    (secret / "username").write_text("user")
    (secret / "password").write_text("pass")
    home = tmp_path / "home"
    home.mkdir()
    p = root.run(
        [*root.step_args(0), "-basic-docker=reg=https://registry.example", *sh("true")],
        env={"HOME": str(home)},
    )
    assert p.returncode == 0, p.stderr
    config = json.loads((home / ".docker" / "config.json").read_text())
    assert config["auths"]["https://registry.example"]["auth"] == "dXNlcjpwYXNz"
    assert (home / ".docker" / "config.json").stat().st_mode & 0o777 == 0o600


def test_missing_credential_secret_is_a_flag_error(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-basic-git=nosuch=https://github.com", *sh("true")])
    assert p.returncode == 2


def test_subprocess_runs_with_python_m(root: TektonRoot) -> None:
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "entrypoint", "-help"], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0


# -- hermetic mode (§4.7.6, namespaces_test) ----------------------------------------------------------------

IDENTITY_SCRIPT = "env | grep -v -e '^_=' -e '^SHLVL=' -e '^PWD=' | sort; id -u; pwd; uname -a"


def test_hermetic_mode_isolates_the_network_but_nothing_else(root: TektonRoot) -> None:
    plain = root.run([*root.step_args(0), *sh(IDENTITY_SCRIPT)], env={"TEKTON_HERMETIC": "0"})
    assert plain.returncode == 0, plain.stderr
    isolated = root.run([*root.step_args(1), *sh(IDENTITY_SCRIPT)], env={"TEKTON_HERMETIC": "1"})
    assert isolated.returncode == 0, isolated.stderr
    # Identical apart from the variable that switched the mode on.
    assert plain.stdout.replace("TEKTON_HERMETIC=0", "") == isolated.stdout.replace("TEKTON_HERMETIC=1", "")

    nets = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort; echo pid=$$"
    inside = root.run([*root.step_args(2), *sh(nets)], env={"TEKTON_HERMETIC": "1"})
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout == "lo\npid=1\n"


def test_hermetic_mode_keeps_exit_codes_and_is_off_for_resource_steps(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), *sh("exit 3")], env={"TEKTON_HERMETIC": "1"})
    assert p.returncode == 3
    (root.run_dir(0) / "out.err").unlink()
    p = root.run(
        [*root.step_args(0), *sh("echo pid=$$")],
        env={"TEKTON_HERMETIC": "1", "TEKTON_RESOURCE_NAME": "r"},
    )
    assert p.returncode == 0
    assert p.stdout != "pid=1\n"


def test_plain_step_path_imports_nothing_heavy(root: TektonRoot, tmp_path: Path) -> None:
    # Every step pays for its imports at start-up; the plain path (with a result, a wait file and
    # no credentials, CEL or substitutions) must stay on a lean set of the standard library.
    import os
    import sys
    import sysconfig

    import entrypoint

    package_dir = str(Path(entrypoint.__file__).parent.parent)
    report = tmp_path / "modules"
    code = (
        f"import sys; sys.path[:0] = [{package_dir!r}, {sysconfig.get_paths()['purelib']!r}]; "
        "from entrypoint.cli import main; rc = main(sys.argv[1:]); "
        f"open({str(report)!r}, 'w').write(','.join(sorted(sys.modules))); sys.exit(rc)"
    )
    (root.run_dir(0) / "out").write_text("")
    result_file = root / "results" / "r"
    p = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, *root.step_args(1), "-results", "r",
         *sh(f"printf x > {result_file}")],
        env={**os.environ, "SIGNED_ENTRYPOINT_ROOT": str(root.path)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert root.values()["r"] == ("x", 1)
    mods = set(report.read_text().split(","))
    heavy = {"subprocess", "dataclasses", "inspect", "typing", "json", "re", "celpy", "datetime", "zlib"}
    assert not (heavy & mods), sorted(heavy & mods)
    lazy = {f"entrypoint._internal.step.creds.{m}" for m in ("_flags", "gitcreds", "dockercreds")}
    lazy |= {
        "entrypoint._internal.go.url",
        "entrypoint._internal.step.substitution",
        "entrypoint._internal.step.when",
        "entrypoint._internal.step.hermetic",
    }
    lazy |= {"entrypoint.controller", "prometheus_client"}  # the controller's, never a step's
    assert not (lazy & mods), sorted(lazy & mods)
