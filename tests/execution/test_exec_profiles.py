"""env.toml: lookup order, extends chains, strict keys, overrides mapping, secrets never shown."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from nemotron.env.profiles import BUILTIN_LOCAL, Profile, find_env_file, load_env
from nemotron.env.secrets import REDACTED
from nemotron.errors import UserError

REPO = Path(__file__).resolve().parents[2]

ENV = """
[wandb]
project = "proj"
entity = "team"

[artifacts]
root = "arts"

[base]
executor = "slurm"
account = "acct"
partition = "batch"
time = "01:00:00"
container_image = "nvcr.io/nvidia/nemo:26.02"
container_mounts = ["/lustre:/lustre"]
env_vars = { HF_HOME = "/lustre/hf", WANDB_API_KEY = "wk-0123456789abcdef" }

[base.overrides]
"train.train_iters" = 7
logging = { log_interval = 3 }

[big]
extends = "base"
nodes = 4
gpus_per_node = 8
env_vars = { NCCL_DEBUG = "INFO" }

[nocontainer]
extends = "big"
container_image = ""

[remote]
executor = "slurm"
tunnel = "ssh"
host = "login.example.org"
remote_job_dir = "/lustre/me/jobs"
identity = "~/.ssh/id_ed25519"
"""


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "env.toml"
    path.write_text(ENV)
    return path


def test_extends_chain_merges_base_first(env_file: Path) -> None:
    env = load_env(env_file)
    big = env.profile("big")
    assert big.executor == "slurm" and big.account == "acct" and big.nodes == 4
    # env_vars and overrides merge along the chain instead of replacing each other
    assert big.env_vars == {"HF_HOME": "/lustre/hf", "WANDB_API_KEY": "wk-0123456789abcdef", "NCCL_DEBUG": "INFO"}
    assert big.config_overrides == {
        "train.train_iters": 7,
        "logging.log_interval": 3,
        "resources.nodes": 4,
        "resources.gpus_per_node": 8,
        "resources.time": "01:00:00",
        "resources.container": "nvcr.io/nvidia/nemo:26.02",
    }
    assert set(env.profiles) == {"base", "big", "nocontainer", "remote"}


def test_empty_container_image_removes_the_container(env_file: Path) -> None:
    profile = load_env(env_file).profile("nocontainer")
    assert profile.config_overrides["resources.container"] is None
    assert profile.nodes == 4


def test_sections_and_relative_artifacts_root(env_file: Path) -> None:
    env = load_env(env_file)
    assert env.wandb == {"project": "proj", "entity": "team"}
    assert env.artifacts_root == env_file.parent / "arts"
    assert env.path == env_file


def test_unknown_profile_lists_known_ones(env_file: Path) -> None:
    with pytest.raises(UserError) as err:
        load_env(env_file).profile("nope")
    assert "nope" in err.value.message
    for name in ("base", "big", "nocontainer", "remote", "local"):
        assert name in (err.value.hint or "")


def test_extends_cycle_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "env.toml"
    path.write_text('[a]\nextends = "b"\n[b]\nextends = "c"\n[c]\nextends = "a"\n')
    with pytest.raises(UserError, match="cycle: a -> b -> c -> a"):
        load_env(path).profile("a")


def test_extends_unknown_profile(tmp_path: Path) -> None:
    path = tmp_path / "env.toml"
    path.write_text('[a]\nextends = "ghost"\n')
    with pytest.raises(UserError, match="extends unknown profile 'ghost'"):
        load_env(path).profile("a")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[p]\npartiton = "x"\n', "unknown key"),
        ('[p]\nexecutor = "k8s"\n', "executor must be one of"),
        ("[p]\nnodes = 0\n", "positive integer"),
        ('[p]\ntime = "forever"\n', "Slurm time limit"),
        ('[p]\nexecutor = "slurm"\ntunnel = "ssh"\nremote_job_dir = "/x"\n', "needs host"),
        ('[p]\nexecutor = "slurm"\ntunnel = "ssh"\nhost = "h"\n', "needs remote_job_dir"),
        ("stray = 1\n", r"must be a \[section\]"),
        ("[p\n", "not valid TOML"),
    ],
)
def test_invalid_files_are_user_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "env.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_env(path).profile("p")


def test_ssh_profile_defaults(env_file: Path) -> None:
    remote = load_env(env_file).profile("remote")
    assert remote.tunnel == "ssh" and remote.user  # defaults to the local user name
    assert remote.identity == str(Path("~/.ssh/id_ed25519").expanduser())
    assert "ssh" in remote.describe() and "login.example.org" in remote.describe()


def test_secrets_are_listed_but_never_shown(env_file: Path) -> None:
    big = load_env(env_file).profile("big")
    assert big.secret_env_names() == ("WANDB_API_KEY",)
    assert "WANDB_API_KEY" not in big.public_env()
    assert big.secret_env() == {"WANDB_API_KEY": "wk-0123456789abcdef"}
    for text in (repr(big), str(big), big.describe()):
        assert "wk-0123456789abcdef" not in text
    assert REDACTED in repr(big)


def test_lookup_order(tmp_path: Path, env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    assert find_env_file(nested) == env_file  # upward from cwd
    other = tmp_path / "elsewhere.toml"
    other.write_text("[x]\n")
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(other))
    assert find_env_file(nested) == other.resolve()  # the variable wins
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(UserError, match="does not exist"):
        find_env_file(nested)


def test_no_env_file_still_has_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    if find_env_file() is not None:
        pytest.skip("an env.toml exists above the temporary directory")
    env = load_env()
    assert env.path is None and env.profile("local") == BUILTIN_LOCAL
    assert env.artifacts_root.name == "artifacts"
    with pytest.raises(UserError) as err:
        env.profile("cluster")
    assert err.value.hint == "known profiles: local"


def test_env_example_documents_every_key() -> None:
    """env.example.toml parses, every profile in it loads, and it mentions every Profile key."""
    path = REPO / "env.example.toml"
    text = path.read_text()
    data = tomllib.loads(text)
    env = load_env(path)
    for name in env.profiles:
        assert isinstance(env.profile(name), Profile)
    for f in fields(Profile):
        if f.name not in ("name",):
            assert f"{f.name} =" in text or f"[{f.name}" in text or f".{f.name}]" in text, f"{f.name} undocumented"
    assert "extends =" in text
    assert "[wandb]" in text and "artifacts" in data


def test_env_example_is_safe_to_copy(tmp_path, monkeypatch) -> None:
    """Copied unedited, it moves nothing: the default registry, W&B off."""
    monkeypatch.delenv("NEMOTRON_ARTIFACTS_ROOT", raising=False)
    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    env = load_env(REPO / "env.example.toml")
    assert env.artifacts_root == tmp_path / "home" / "artifacts"
    assert dict(env.wandb) == {}
