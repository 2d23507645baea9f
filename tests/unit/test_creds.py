"""Legacy credential flags and files (spec §2.4): parsing, byte-exact file formats, copy to $HOME."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint._internal.go.flag import FlagSet, go_quote
from entrypoint._internal.go.url import URLError, Userinfo, parse
from entrypoint._internal.step.creds import CredentialFlags, copy_to_home
from entrypoint._internal.step.creds.dockercreds import go_json_string
from entrypoint._internal.step.creds.gitcreds import parse_ssh_url
from entrypoint.errors import HelpRequested, UsageError


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    # Modes below are what Go produces under the usual container umask.
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    d = tmp_path / "creds-secrets"
    d.mkdir()
    return d


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    d = tmp_path / "creds"
    d.mkdir()
    return d


def add_secret(secrets: Path, name: str, **files: str | bytes) -> Path:
    d = secrets / name
    d.mkdir()
    for key, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        # "ssh-privatekey" is not a Python identifier; every other key is used as given.
        filename = "ssh-privatekey" if key == "ssh_privatekey" else key
        (d / filename).write_bytes(data)
    return d


def basic_secret(secrets: Path, name: str, username: str, password: str) -> None:
    add_secret(secrets, name, username=username, password=password)


def parsed(secrets: Path, *args: str) -> tuple[CredentialFlags, FlagSet, io.StringIO]:
    out = io.StringIO()
    fs = FlagSet("entrypoint", output=out)
    flags = CredentialFlags(str(secrets))
    flags.register(fs)
    leftovers = fs.parse(list(args))
    assert leftovers == []
    return flags, fs, out


def parse_error(secrets: Path, *args: str) -> str:
    out = io.StringIO()
    fs = FlagSet("entrypoint", output=out)
    CredentialFlags(str(secrets)).register(fs)
    with pytest.raises(UsageError) as info:
        fs.parse(list(args))
    assert not isinstance(info.value, HelpRequested)
    message = str(info.value)
    # Go prints the error, then the usage text, before exiting 2.
    assert out.getvalue().startswith(message + "\nUsage of entrypoint:\n")
    return message


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- flag parsing ------------------------------------------------------------------------------------


def test_register_adds_the_five_flags_with_go_usage(secrets: Path) -> None:
    _, fs, out = parsed(secrets)
    fs.print_usage()
    assert out.getvalue() == (
        "Usage of entrypoint:\n"
        "  -basic-docker value\n    \tList of secret=url pairs.\n"
        "  -basic-git value\n    \tList of secret=url pairs.\n"
        "  -docker-cfg value\n    \tDocker .dockercfg secret file.\n"
        "  -docker-config value\n    \tDocker config.json secret file.\n"
        "  -ssh-git value\n    \tList of secret=url pairs.\n"
    )


@pytest.mark.parametrize("flag", ["basic-git", "ssh-git", "basic-docker"])
@pytest.mark.parametrize("value", ["bar", "bar=baz=blah", "s=https://x/?a=b"])
def test_secret_url_must_split_into_exactly_two(secrets: Path, flag: str, value: str) -> None:
    message = parse_error(secrets, f"-{flag}={value}")
    assert message == (
        f'invalid value "{value}" for flag -{flag}: expect entries of the form secret=url, got: {value}'
    )


@pytest.mark.parametrize("flag", ["basic-git", "basic-docker"])
def test_repeated_url_is_rejected(secrets: Path, flag: str) -> None:
    basic_secret(secrets, "a", "u1", "p1")
    basic_secret(secrets, "b", "u2", "p2")
    message = parse_error(secrets, f"-{flag}=a=https://github.com", f"--{flag}", "b=https://github.com")
    assert message == (
        f'invalid value "b=https://github.com" for flag -{flag}: multiple entries for url: https://github.com'
    )


@pytest.mark.parametrize("flag", ["basic-git", "basic-docker"])
def test_missing_username_is_a_usage_error_naming_the_file(secrets: Path, flag: str) -> None:
    add_secret(secrets, "nouser", password="p")
    message = parse_error(secrets, f"-{flag}=nouser=https://github.com")
    assert message == (
        f'invalid value "nouser=https://github.com" for flag -{flag}: '
        f"open {secrets}/nouser/username: no such file or directory"
    )


def test_missing_password_is_reported_after_username_is_read(secrets: Path) -> None:
    add_secret(secrets, "nopass", username="u")
    message = parse_error(secrets, "-basic-git=nopass=https://github.com")
    assert message.endswith(f": open {secrets}/nopass/password: no such file or directory")


def test_secret_key_that_is_a_directory_fails_on_read(secrets: Path) -> None:
    d = add_secret(secrets, "dir", password="p")
    (d / "username").mkdir()
    message = parse_error(secrets, "-basic-docker=dir=registry.example.com")
    assert message.endswith(f": read {secrets}/dir/username: is a directory")


def test_basic_git_url_is_parsed_as_go_does(secrets: Path) -> None:
    basic_secret(secrets, "s", "u", "p")
    message = parse_error(secrets, "-basic-git=s=https://host:1:2/repo")
    assert message == (
        'invalid value "s=https://host:1:2/repo" for flag -basic-git: '
        'parse "https://host:1:2/repo": invalid port ":1:2" after host'
    )


def test_secret_files_are_read_before_the_url_is_parsed(secrets: Path) -> None:
    message = parse_error(secrets, "-basic-git=absent=https://host:1:2/")
    assert message.endswith(f": open {secrets}/absent/username: no such file or directory")


def test_ssh_key_is_required_and_known_hosts_optional(secrets: Path) -> None:
    add_secret(secrets, "nokey", known_hosts="h")
    message = parse_error(secrets, "-ssh-git=nokey=github.com")
    assert message.endswith(f": open {secrets}/nokey/ssh-privatekey: no such file or directory")

    add_secret(secrets, "keyonly", ssh_privatekey="KEY")
    flags, _, _ = parsed(secrets, "-ssh-git=keyonly=github.com")
    assert [e.known_hosts for e in flags.ssh_git.entries["github.com"]] == [b""]


def test_flags_accumulate_and_render_like_go(secrets: Path) -> None:
    basic_secret(secrets, "a", "u1", "p1")
    basic_secret(secrets, "b", "u2", "p2")
    add_secret(secrets, "k1", ssh_privatekey="K1")
    add_secret(secrets, "k2", ssh_privatekey="K2")
    flags, _, _ = parsed(
        secrets,
        "-basic-git=a=https://github.com",
        "-basic-git=b=https://gitlab.com",
        "-ssh-git=k1=github.com",
        "-ssh-git=k2=github.com",
        "-basic-docker=a=reg.io",
        "-docker-config=cfg1",
        "-docker-config",
        "cfg2",
        "-docker-cfg=old",
    )
    assert flags.basic_git.string() == "a=https://github.com,b=https://gitlab.com"
    assert flags.ssh_git.string() == "k1=github.com,k2=github.com"
    assert flags.basic_docker.string() == "a=reg.io"
    assert flags.docker_config.string() == "cfg1,cfg2"
    assert flags.docker_cfg.string() == "old"


def test_docker_config_secrets_are_not_read_at_parse_time(secrets: Path, creds: Path) -> None:
    flags, _, _ = parsed(secrets, "-docker-config=absent")
    assert flags.docker_config.values == ["absent"]
    assert flags.write(str(creds)) == [
        f"Error initializing credentials: open {secrets}/absent/.dockerconfigjson: no such file or directory"
    ]
    assert list(creds.iterdir()) == []


# -- writing -----------------------------------------------------------------------------------------


def test_nothing_is_written_without_flags(secrets: Path, creds: Path) -> None:
    flags, _, _ = parsed(secrets)
    assert flags.write(str(creds)) == []
    assert list(creds.iterdir()) == []


def test_basic_git_files_byte_exact(secrets: Path, creds: Path) -> None:
    basic_secret(secrets, "repo", "repo-user", "repo-pass")
    basic_secret(secrets, "host", "host-user", "host-pass")
    basic_secret(secrets, "slash", "slash-user", "slash-pass")
    flags, _, _ = parsed(
        secrets,
        "-basic-git=repo=https://github.com/org/repo",
        "-basic-git=host=https://github.com",
        "-basic-git=slash=https://gitlab.com/",
    )
    assert flags.write(str(creds)) == []

    gitconfig = creds / ".gitconfig"
    assert gitconfig.read_bytes() == (
        b"[credential]\n\thelper = store\n"
        b'[credential "https://github.com/org/repo"]\n\tusername = repo-user\n\tuseHttpPath = true\n'
        b'[credential "https://github.com"]\n\tusername = host-user\n'
        b'[credential "https://gitlab.com/"]\n\tusername = slash-user\n'
    )
    # Host-only URLs first (they are fallbacks), then URLs with a path; stable otherwise.
    assert (creds / ".git-credentials").read_bytes() == (
        b"https://host-user:host-pass@github.com\n"
        b"https://slash-user:slash-pass@gitlab.com/\n"
        b"https://repo-user:repo-pass@github.com/org/repo\n"
    )
    assert mode(gitconfig) == 0o600
    assert mode(creds / ".git-credentials") == 0o600


def test_basic_git_escaping(secrets: Path, creds: Path) -> None:
    basic_secret(secrets, "s", "dom\\user", "p@ss:w/rd +&=$,?")
    flags, _, _ = parsed(secrets, '-basic-git=s=https://example.com/caf\u00e9"x')
    assert flags.write(str(creds)) == []
    assert (creds / ".gitconfig").read_text(encoding="utf-8") == (
        "[credential]\n\thelper = store\n"
        '[credential "https://example.com/caf\u00e9\\"x"]\n'
        "\tusername = dom\\\\user\n\tuseHttpPath = true\n"
    )
    assert (creds / ".git-credentials").read_bytes() == (
        b"https://dom%5Cuser:p%40ss%3Aw%2Frd%20+&=$,%3F@example.com/caf%C3%A9%22x\n"
    )


def test_ssh_files_byte_exact(secrets: Path, creds: Path) -> None:
    add_secret(secrets, "gh1", ssh_privatekey=b"KEY-1\x00\xff\n", known_hosts="github.com ssh-rsa AAA")
    add_secret(secrets, "gh2", ssh_privatekey="KEY-2")
    add_secret(secrets, "repo", ssh_privatekey="KEY-3", known_hosts="gitlab.example.com ssh-ed25519 BBB\n")
    add_secret(secrets, "deploy", ssh_privatekey="KEY-4")
    flags, _, _ = parsed(
        secrets,
        "-ssh-git=repo=gitlab.example.com:2222/group/sub/project",
        "-ssh-git=gh1=github.com",
        "-ssh-git=deploy=github.com/org/app",
        "-ssh-git=gh2=github.com",
    )
    assert flags.write(str(creds)) == []

    ssh = creds / ".ssh"
    assert (ssh / "config").read_text() == (
        "Host github.com\n    HostName github.com\n    Port 22\n"
        f"    IdentityFile {ssh}/id_gh1\n    IdentityFile {ssh}/id_gh2\n"
        "Host gitlab.example.com--group--sub--project\n    HostName gitlab.example.com\n    Port 2222\n"
        f"    IdentityFile {ssh}/id_repo\n"
        "Host github.com--org--app\n    HostName github.com\n    Port 22\n"
        f"    IdentityFile {ssh}/id_deploy\n"
    )
    assert (ssh / "known_hosts").read_bytes() == (
        b"github.com ssh-rsa AAA\ngitlab.example.com ssh-ed25519 BBB\n"
    )
    assert (ssh / "id_gh1").read_bytes() == b"KEY-1\x00\xff\n"
    assert (ssh / "id_deploy").read_bytes() == b"KEY-4"
    for name in ("config", "known_hosts", "id_gh1", "id_gh2", "id_repo", "id_deploy"):
        assert mode(ssh / name) == 0o600, name
    assert (creds / ".gitconfig").read_text() == (
        '[url "git@gitlab.example.com--group--sub--project:group/sub/project.git"]\n'
        "\tinsteadOf = git@gitlab.example.com:group/sub/project.git\n"
        '[url "ssh://gitlab.example.com--group--sub--project/group/sub/project.git"]\n'
        "\tinsteadOf = ssh://gitlab.example.com:2222/group/sub/project.git\n"
        '[url "git@github.com--org--app:org/app.git"]\n'
        "\tinsteadOf = git@github.com:org/app.git\n"
        '[url "ssh://github.com--org--app/org/app.git"]\n'
        "\tinsteadOf = ssh://github.com/org/app.git\n"
    )
    assert mode(creds / ".gitconfig") == 0o600


def test_ssh_without_known_hosts_or_repo_paths(secrets: Path, creds: Path) -> None:
    add_secret(secrets, "k", ssh_privatekey="KEY")
    flags, _, _ = parsed(secrets, "-ssh-git=k=git.example.com:7999")
    assert flags.write(str(creds)) == []
    assert (creds / ".ssh" / "config").read_text() == (
        f"Host git.example.com\n    HostName git.example.com\n    Port 7999\n"
        f"    IdentityFile {creds}/.ssh/id_k\n"
    )
    assert not (creds / ".ssh" / "known_hosts").exists()
    assert not (creds / ".gitconfig").exists()


def test_ssh_rewrites_are_appended_to_the_basic_gitconfig(secrets: Path, creds: Path) -> None:
    basic_secret(secrets, "b", "user", "pass")
    add_secret(secrets, "k", ssh_privatekey="KEY")
    flags, _, _ = parsed(secrets, "-ssh-git=k=github.com/org/repo", "-basic-git=b=https://github.com")
    assert flags.write(str(creds)) == []
    assert (creds / ".gitconfig").read_text() == (
        "[credential]\n\thelper = store\n"
        '[credential "https://github.com"]\n\tusername = user\n'
        '[url "git@github.com--org--repo:org/repo.git"]\n'
        "\tinsteadOf = git@github.com:org/repo.git\n"
        '[url "ssh://github.com--org--repo/org/repo.git"]\n'
        "\tinsteadOf = ssh://github.com/org/repo.git\n"
    )


@pytest.mark.parametrize(
    ("url", "host", "port", "repo", "alias"),
    [
        ("github.com", "github.com", "22", "", "github.com"),
        ("github.com/", "github.com", "22", "", "github.com"),
        ("host:2222", "host", "2222", "", "host"),
        ("host:2222/a/b", "host", "2222", "a/b", "host--a--b"),
        ("[::1]:2222/x", "::1", "2222", "x", "::1--x"),
        ("a:b:c", "a:b:c", "22", "", "a:b:c"),  # SplitHostPort fails: the whole text is the host
    ],
)
def test_ssh_url_parsing(url: str, host: str, port: str, repo: str, alias: str) -> None:
    target = parse_ssh_url(url)
    assert (target.host, target.port, target.repo, target.alias) == (host, port, repo, alias)


def test_basic_docker_config_json_byte_exact(secrets: Path, creds: Path) -> None:
    basic_secret(secrets, "reg", "user", "pass")
    flags, _, _ = parsed(secrets, "-basic-docker=reg=https://index.docker.io/v1/")
    assert flags.write(str(creds)) == []
    config = creds / ".docker" / "config.json"
    assert config.read_bytes() == (
        b'{"auths":{"https://index.docker.io/v1/":'
        b'{"username":"user","password":"pass","auth":"dXNlcjpwYXNz","email":"not@val.id"}}}'
    )
    assert mode(config) == 0o600
    assert mode(creds / ".docker") == 0o755


def test_docker_merge_precedence(secrets: Path, creds: Path) -> None:
    add_secret(
        secrets,
        "old",
        **{
            ".dockercfg": '{"a.io": {"auth": "YTpi", "email": "a@x"},'
            ' "b.io": {"username": "cfg", "password": "cfg", "auth": "Y2ZnOmNmZw=="}}'
        },
    )
    add_secret(
        secrets,
        "new",
        **{
            ".dockerconfigjson": '{"auths": {"b.io": {"Username": "cfgjson", "AUTH": "eDp5",'
            ' "identitytoken": "dropped"}, "c.io": {"auth": "ignored"}}, "credsStore": "x"}'
        },
    )
    basic_secret(secrets, "basic", "bu", "bp")
    flags, _, _ = parsed(secrets, "-docker-cfg=old", "-docker-config=new", "-basic-docker=basic=c.io")
    assert flags.write(str(creds)) == []
    assert (creds / ".docker" / "config.json").read_bytes() == (
        b'{"auths":{'
        b'"a.io":{"auth":"YTpi","email":"a@x"},'
        b'"b.io":{"username":"cfgjson","auth":"eDp5"},'
        b'"c.io":{"username":"bu","password":"bp","auth":"YnU6YnA=","email":"not@val.id"}}}'
    )


def test_docker_json_null_entry_and_sorted_keys(secrets: Path, creds: Path) -> None:
    add_secret(secrets, "cfg", **{".dockercfg": '{"z.io": {"auth": "eg=="}, "B.io": null, "a.io": {}}'})
    flags, _, _ = parsed(secrets, "-docker-cfg=cfg")
    assert flags.write(str(creds)) == []
    # Go sorts bytewise (upper case first) and keeps a null entry as an empty one.
    assert (creds / ".docker" / "config.json").read_bytes() == (
        b'{"auths":{"B.io":{"auth":""},"a.io":{"auth":""},"z.io":{"auth":"eg=="}}}'
    )


def test_docker_json_escapes_like_go(secrets: Path, creds: Path) -> None:
    basic_secret(secrets, "s", "<a&b>\u2028caf\u00e9", 'q"\\\t\x01\x08')
    flags, _, _ = parsed(secrets, "-basic-docker=s=r.io")
    assert flags.write(str(creds)) == []
    text = (creds / ".docker" / "config.json").read_text(encoding="utf-8")
    assert text.startswith(
        '{"auths":{"r.io":{"username":"\\u003ca\\u0026b\\u003e\\u2028caf\u00e9",'
        '"password":"q\\"\\\\\\t\\u0001\\b",'
    )


def test_docker_json_invalid_utf8_is_escaped_as_replacement_char() -> None:
    assert go_json_string("a\udcffb\ufffd") == '"a\\ufffdb\ufffd"'


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", "unexpected end of JSON input"),
        ('{"r": {"auth": ', "unexpected end of JSON input"),
        ("{'r': 1}", "invalid character '\\'' looking for beginning of object key string"),
        ('{"r": {"auth": "x"} "s": 1}', "invalid character '\"' after object key:value pair"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ("[]", "json: cannot unmarshal array into Go value of type map[string]dockercreds.entry"),
        ('{"r": "x"}', "json: cannot unmarshal string into Go value of type dockercreds.entry"),
        (
            '{"r": {"username": 5}}',
            "json: cannot unmarshal number into Go struct field entry.username of type string",
        ),
    ],
)
def test_docker_cfg_decode_errors_are_non_fatal(secrets: Path, creds: Path, content: str, error: str) -> None:
    add_secret(secrets, "bad", **{".dockercfg": content})
    basic_secret(secrets, "git", "u", "p")
    flags, _, _ = parsed(secrets, "-docker-cfg=bad", "-basic-git=git=https://github.com")
    assert flags.write(str(creds)) == [f"Error initializing credentials: {error}"]
    assert not (creds / ".docker").exists()
    assert (creds / ".git-credentials").read_bytes() == b"https://u:p@github.com\n"


def test_dockerconfigjson_auths_of_wrong_type(secrets: Path, creds: Path) -> None:
    add_secret(secrets, "bad", **{".dockerconfigjson": '{"auths": []}'})
    flags, _, _ = parsed(secrets, "-docker-config=bad")
    assert flags.write(str(creds)) == [
        "Error initializing credentials: json: cannot unmarshal array into Go struct field "
        "configFile.auths of type map[string]dockercreds.entry"
    ]


def test_basic_git_failure_skips_ssh_but_not_docker(secrets: Path, creds: Path) -> None:
    basic_secret(secrets, "b", "u", "p")
    add_secret(secrets, "k", ssh_privatekey="KEY")
    flags, _, _ = parsed(
        secrets, "-basic-git=b=https://github.com", "-ssh-git=k=github.com", "-basic-docker=b=r.io"
    )
    (creds / ".gitconfig").mkdir()
    assert flags.write(str(creds)) == [
        f"Error initializing credentials: open {creds}/.gitconfig: is a directory"
    ]
    assert (creds / ".docker" / "config.json").exists()
    assert not (creds / ".ssh").exists()


# -- copy to $HOME -----------------------------------------------------------------------------------


def _populated_creds(creds: Path) -> None:
    (creds / ".docker").mkdir(mode=0o755)
    (creds / ".docker" / "config.json").write_text('{"auths":{}}')
    (creds / ".gitconfig").write_text("[credential]\n")
    (creds / ".gitconfig").chmod(0o644)
    (creds / ".ssh").mkdir(mode=0o777)
    (creds / ".ssh" / "id_k").write_bytes(b"KEY")
    (creds / ".ssh" / "nested").mkdir()
    (creds / ".ssh" / "nested" / "f").write_text("deep")
    (creds / "unrelated").write_text("not copied")


def test_copy_to_home_copies_known_items_with_private_modes(creds: Path, tmp_path: Path) -> None:
    _populated_creds(creds)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("a much longer pre-existing content\n")

    assert copy_to_home(str(creds), str(home)) == []

    assert (home / ".docker" / "config.json").read_text() == '{"auths":{}}'
    assert (home / ".gitconfig").read_text() == "[credential]\n"  # truncated, not appended
    assert (home / ".ssh" / "id_k").read_bytes() == b"KEY"
    assert (home / ".ssh" / "nested" / "f").read_text() == "deep"
    assert not (home / ".git-credentials").exists()  # missing source is skipped
    assert not (home / "unrelated").exists()
    for d in (".docker", ".ssh", ".ssh/nested"):
        assert mode(home / d) == 0o700, d
    for f in (".docker/config.json", ".ssh/id_k", ".ssh/nested/f"):
        assert mode(home / f) == 0o600, f


def test_copy_to_home_without_creds_dir_does_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert copy_to_home(str(tmp_path / "absent"), str(home)) == []
    assert copy_to_home(str(tmp_path / "absent"), None) == []
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert copy_to_home(str(not_a_dir), str(home)) == []
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("home", [None, ""])
def test_copy_to_home_with_home_unset(creds: Path, home: str | None) -> None:
    _populated_creds(creds)
    assert copy_to_home(str(creds), home) == [
        "non-fatal error copying credentials: "
        '"error getting the user\'s home directory: $HOME is not defined"'
    ]


def test_copy_to_home_one_failure_does_not_stop_the_others(creds: Path, tmp_path: Path) -> None:
    _populated_creds(creds)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".ssh").write_text("a file where a directory is needed")
    assert copy_to_home(str(creds), str(home)) == [
        f'warning: unsuccessful cred copy: ".ssh" from "{creds}" to "{home}": '
        f"unable to create destination directory: mkdir {home}/.ssh: not a directory"
    ]
    assert (home / ".docker" / "config.json").exists()
    assert (home / ".gitconfig").exists()


def test_end_to_end_write_then_copy(secrets: Path, creds: Path, tmp_path: Path) -> None:
    basic_secret(secrets, "b", "u", "p")
    flags, _, _ = parsed(secrets, "-basic-git=b=https://github.com", "-basic-docker=b=r.io")
    assert flags.write(str(creds)) == []
    home = tmp_path / "home"
    home.mkdir()
    assert copy_to_home(str(creds), str(home)) == []
    assert (home / ".git-credentials").read_bytes() == b"https://u:p@github.com\n"
    assert (home / ".docker" / "config.json").read_bytes() == (creds / ".docker" / "config.json").read_bytes()


# -- Go compatibility helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("https://example.com", '"https://example.com"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\a\b\f\n\r\t\v\x00\x7f", '"\\a\\b\\f\\n\\r\\t\\v\\x00\\x7f"'),
        ("caf\u00e9 \u4e2d", '"caf\u00e9 \u4e2d"'),
        ("\u00ad\u2028\U000e0001", '"\\u00ad\\u2028\\U000e0001"'),
        ("bad\udcffbyte", '"bad\\xffbyte"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize(
    ("raw", "serialised"),
    [
        ("https://github.com", "https://u:p@github.com"),
        ("HTTPS://GitHub.com/Org/Repo.git", "https://u:p@GitHub.com/Org/Repo.git"),
        ("github.com", "//u:p@github.com"),
        ("https://x.io/a%2Fb", "https://u:p@x.io/a%2Fb"),  # a valid raw path is kept
        # A raw path with a space is not validly encoded: Go re-escapes the decoded path.
        ("https://x.io/a b/%2F?q=1#f g", "https://u:p@x.io/a%20b//?q=1#f%20g"),
        ("http://[fe80::1%25eth0]:8080/", "http://u:p@[fe80::1%25eth0]:8080/"),
        ("https://old:cred@host/", "https://u:p@host/"),
        ("scheme:opaque", "scheme:opaque"),
    ],
)
def test_go_url_string_with_user(raw: str, serialised: str) -> None:
    url = parse(raw)
    url.user = Userinfo("u", "p")
    assert url.string() == serialised


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("http://x/%zz", 'parse "http://x/%zz": invalid URL escape "%zz"'),
        ("http://[1.2.3.4]/", 'parse "http://[1.2.3.4]/": invalid IP-literal'),
        ("http://[::1/", "parse \"http://[::1/\": missing ']' in host"),
        ("http://a b/", 'parse "http://a b/": invalid character " " in host name'),
        (
            "git@github.com:org/repo",
            'parse "git@github.com:org/repo": first path segment in URL cannot contain colon',
        ),
        (":foo", 'parse ":foo": missing protocol scheme'),
        ("http://x/\n", 'parse "http://x/\\n": net/url: invalid control character in URL'),
        ("http://x/#%zz", 'parse "http://x/#%zz": invalid URL escape "%zz"'),
    ],
)
def test_go_url_parse_errors(raw: str, error: str) -> None:
    with pytest.raises(URLError) as info:
        parse(raw)
    assert str(info.value) == error
