"""job.yaml / train.yaml: full provenance, outside the repo, secrets never written or printed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nemotron.paths import REPO_ROOT
from tests.cli.conftest import run_bin, run_cli

SECRETS = ("hf_supersecretvalue123", "wandb_secret_key_0123456789")


def _only_job_dir(home: Path) -> Path:
    stage_dirs = [p.parent for p in (home / "jobs").glob("*/*/job.yaml")]
    assert len(stage_dirs) == 1, stage_dirs
    return stage_dirs[0]


def test_dry_run_writes_provenance_and_train_yaml(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["super3", "pretrain", "-d", "-c", "phase2", "train.train_iters=77"], capsys)
    assert code == 0, err
    job_dir = _only_job_dir(home)
    assert REPO_ROOT not in job_dir.parents  # job dirs live outside the checkout
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    train = yaml.safe_load((job_dir / "train.yaml").read_text())
    assert job["stage"] == "pretrain" and job["dry_run"] is True
    assert job["config"]["name"] == "phase2" and len(job["config"]["hash"]) == 64
    assert job["overrides"] == {"train.train_iters": 77}
    assert job["argv"][:3] == ["nemotron", "super3", "pretrain"] or "train.train_iters=77" in " ".join(job["argv"])
    assert job["profile"]["name"] == "local"
    assert job["versions"]["python"] and "nemotron" in job["versions"]
    assert "rev" in job["git"]
    assert train["train"]["train_iters"] == 77
    assert train["phase"] == "phase2"
    assert train["job"]["stage"] == "pretrain" and train["job"]["config_hash"] == job["config"]["hash"]
    assert train["job"]["output_dir"].endswith(train["job"]["id"])
    # the plan shows the diff with its source and the job files
    assert "train.train_iters" in out and "cli" in out and "config:phase2" in out
    assert str(job_dir / "job.yaml") in out.replace("\n", "")


def test_secrets_never_reach_files_or_output(home: Path) -> None:
    """Through the real entry point: the Slurm preview runs NeMo-Run's dryrun in the process."""
    done = run_bin(["super3", "pretrain", "-d", "-r", "cluster"])
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 0, err
    job_dir = _only_job_dir(home)
    written = "".join(p.read_text() for p in job_dir.rglob("*") if p.is_file())
    for secret in SECRETS:
        assert secret not in written
        assert secret not in out + err
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert "HF_TOKEN" in job["profile"]["env_vars"]  # the name is recorded, never the value


def test_secret_passed_as_override_is_redacted(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        ["super3", "data", "prep", "rl", "-d", "-c", "tiny", "--", "--api-key", "wandb_secret_key_0123456789"],
        capsys,
    )
    assert code == 0, err
    job_dir = _only_job_dir(home)
    for path in job_dir.rglob("*"):
        if path.is_file():
            assert "wandb_secret_key_0123456789" not in path.read_text()
    assert "wandb_secret_key_0123456789" not in out


def test_profile_resources_flow_into_the_config(home: Path) -> None:
    done = run_bin(["super3", "pretrain", "-d", "-r", "big"])
    assert done.returncode == 0, done.stderr
    train = yaml.safe_load((_only_job_dir(home) / "train.yaml").read_text())
    assert train["resources"]["nodes"] == 8  # from profile 'big' (extends 'cluster')
    assert train["resources"]["container"] is None  # container_image = "" -> the node's Python
