"""Fixtures for driving the real ``nemotron`` CLI in an isolated home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron.cli.main import main

REPO = Path(__file__).resolve().parents[2]
NEMOTRON_BIN = Path(sys.executable).parent / "nemotron"

ENV_TOML = """
[wandb]
project = "nemotron-tests"
mode = "disabled"

[cluster]
executor = "slurm"
account = "acct"
partition = "batch"
tunnel = "local"
container_image = ""
env_vars = { HF_TOKEN = "hf_supersecretvalue123", NCCL_DEBUG = "WARN" }

[big]
extends = "cluster"
nodes = 8
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh NEMOTRON_HOME plus an env.toml with a slurm profile carrying a secret."""
    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    env_file = tmp_path / "env.toml"
    env_file.write_text(ENV_TOML)
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(env_file))
    monkeypatch.setenv("WANDB_API_KEY", "wandb_secret_key_0123456789")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``nemotron ARGS`` in-process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        main(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def run_bin(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed ``nemotron`` entry point as a user would."""
    return subprocess.run(
        [str(NEMOTRON_BIN), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=os.getcwd(),
    )
