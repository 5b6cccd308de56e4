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


def test_dry_run_prints_and_writes_the_library_config(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`quantize --dry-run` with its inputs in the registry: the exact ModelOpt/Megatron-Bridge calls,
    printed and kept as library.yaml next to job.yaml and train.yaml."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nemotron.artifacts.registry import Registry

    root = tmp_path / "artifacts"
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(root))
    model = tmp_path / "rl-model" / "hf"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    data = tmp_path / "sft-data" / "splits" / "train"
    data.mkdir(parents=True)
    columns = {"input_ids": [[1, 2, 3]], "loss_mask": [[0, 1, 1]], "seq_start_id": [[0]]}
    pq.write_table(pa.table(columns), data / "shard_000.parquet")
    registry = Registry(root)
    registry.publish("rl-rlhf-model", "model", model.parent, {"format": "hf", "hf_dir": "hf"})
    registry.publish("sft-data", "sft-data", data.parent.parent, {"pack_size": 4096})

    code, out, err = run_cli(["super3", "quantize", "-d"], capsys)
    assert code == 0, err
    job_dir = _only_job_dir(home)
    library = yaml.safe_load((job_dir / "library.yaml").read_text())
    calls = library["configs"]["mamba_moe_fp8_aggressive"]
    assert [c["call"] for c in calls["export"]][-1] == "modelopt.torch.export.export_mcore_gpt_to_hf"
    assert library["calibration"]["size"] == 256 and library["library"]["megatron-bridge"] == "0.4.0"
    flat = out.replace("\n", "")
    assert "library.yaml" in flat and "export_mcore_gpt_to_hf" in flat
