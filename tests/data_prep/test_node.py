"""The node entry recipes/super3/data_prep.py: train.yaml in, data out, one artifact published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nemotron.paths import CONFIGS_DIR, REPO_ROOT
from tests.slurm.conftest import require_slurm

SCRIPT = REPO_ROOT / "recipes" / "super3" / "data_prep.py"


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def train_yaml(tmp_path: Path, stage: str, **over) -> Path:
    folder = CONFIGS_DIR / "super3" / "data_prep" / stage
    cfg = _merge(
        yaml.safe_load((folder / "default.yaml").read_text()), yaml.safe_load((folder / "tiny.yaml").read_text())
    )
    cfg = _merge(cfg, over)
    cfg["job"] = {
        "id": f"20261123-000000-data_prep.{stage}-abc123",
        "experiment": "20261123-000000-abc123",
        "stage": f"data_prep.{stage}",
        "config_name": "tiny",
        "config_hash": "0" * 64,
        "dir": str(tmp_path / "job"),
        "output_dir": str(tmp_path / "outputs" / stage),
        "artifacts_root": str(tmp_path / "artifacts"),
        "git_rev": "unknown",
    }
    path = tmp_path / f"train-{stage}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "WANDB_"))}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl"])
def test_node_entry_runs_tiny_and_publishes(tmp_path: Path, stage: str) -> None:
    assert (REPO_ROOT / "recipes/super3/assets/tiny/rl_prompts.jsonl").exists(), "shipped tiny asset"
    from nemotron.artifacts import registry as registry_mod

    proc = run(train_yaml(tmp_path, stage), cwd=tmp_path)  # relative asset paths resolve against the repo
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "outputs" / stage
    manifest = json.loads((out / "manifest.json").read_text())
    art = registry_mod.Registry(tmp_path / "artifacts").get(f"tiny-{stage}-data:latest")
    assert art.kind == f"{stage}-data" and Path(art.path) == out
    assert art.metadata["plan_hash"] == manifest["plan_hash"]
    assert "files" not in art.metadata  # per-file checksums stay in manifest.json
    # A rerun finds every shard done and publishes the same data again (a new version, same digest).
    again = run(train_yaml(tmp_path, stage), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    versions = registry_mod.Registry(tmp_path / "artifacts").versions(f"tiny-{stage}-data")
    assert len(versions) == 2


def test_node_entry_user_error_is_one_line(tmp_path: Path) -> None:
    proc = run(train_yaml(tmp_path, "pretrain", data={"inputs": [str(tmp_path / "missing/*.jsonl")]}), cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: data.inputs[0]: no input files match") and "Traceback" not in proc.stderr


def _two_tasks_env(rank: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "WANDB_"))}
    return env | {"SLURM_PROCID": str(rank), "SLURM_NTASKS": "2", "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0"}


def test_two_concurrent_tasks_share_shards_and_publish_once(tmp_path: Path) -> None:
    """Two tasks of one Slurm step (SLURM_PROCID 0/1 of 2) running at the same time."""
    from nemotron.artifacts import registry as registry_mod

    from .conftest import assert_same_tree

    config = train_yaml(tmp_path, "pretrain", data={"shard_size_mb": 0.01})
    solo = run(config, cwd=tmp_path)
    assert solo.returncode == 0, solo.stderr
    out = tmp_path / "outputs" / "pretrain"
    out.rename(tmp_path / "solo")
    cmd = [sys.executable, str(SCRIPT), "--config", str(config), "--no-progress"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=_two_tasks_env(r), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for r in (0, 1)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert_same_tree(tmp_path / "solo", out)
    published = [err.count("published tiny-pretrain-data") for _, err in results]
    assert sum(published) == 1, results
    versions = registry_mod.Registry(tmp_path / "artifacts").versions("tiny-pretrain-data")
    assert len(versions) == 2  # the solo run's and exactly one from the two-task run


@pytest.mark.slurm
def test_srun_two_tasks(tmp_path: Path) -> None:
    """A real Slurm step: `srun -n 2` runs the node entry; shard i goes to task i mod 2, one task publishes."""
    require_slurm()  # skips without a cluster; under CI=true fails instead
    from nemotron.artifacts import registry as registry_mod

    config = train_yaml(tmp_path, "pretrain", data={"shard_size_mb": 0.01})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "WANDB_"))}
    cmd = [
        "srun",
        "-n",
        "2",
        "-N",
        "1",
        "--cpus-per-task=1",
        "-t",
        "5",
        sys.executable,
        str(SCRIPT),
        "--config",
        str(config),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "outputs" / "pretrain"
    assert (out / ".finalized").read_text().startswith("slurm-")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_shards"] >= 20
    text = proc.stdout + proc.stderr
    assert text.count("published tiny-pretrain-data") == 1
    assert len(registry_mod.Registry(tmp_path / "artifacts").versions("tiny-pretrain-data")) == 1


def test_relative_paths_resolve_from_submit_cwd(tmp_path: Path) -> None:
    """`data.inputs=[a.jsonl] output_dir=out` typed in the user's directory, run from elsewhere."""
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "a.jsonl").write_text(json.dumps({"prompt": "What is 1 + 1?", "answer": "2"}) + "\n")
    config = train_yaml(tmp_path, "rl", data={"inputs": ["a.jsonl"]}, output_dir="out")
    cfg = yaml.safe_load(config.read_text())
    cfg["job"]["submit_cwd"] = str(user_dir)
    config.write_text(yaml.safe_dump(cfg))
    proc = run(config, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (user_dir / "out" / "manifest.json").exists()
