"""The node runner end to end: a real entry script, a fake backend module, the real artifact registry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from nemotron.artifacts.registry import Registry
from nemotron.node.ranks import global_rank

from .recipes_support import resolved_config

FAKE_BACKEND = """
import os


def run(train_cfg, inputs, output_dir):
    (output_dir / "weights.txt").write_text(inputs["data"].name)
    if os.environ.get("FAKE_MODE") == "raise":
        raise RuntimeError("boom in backend")
    return {"iteration": train_cfg["train"]["train_iters"], "wrote": sorted(p.name for p in output_dir.iterdir())}
"""

ENTRY = """
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nemotron.node.runner import main

if __name__ == "__main__":
    main("{stage}")
"""


@pytest.fixture
def world(tmp_path: Path):
    """A recipes/ tree with a fake tiny pretrain backend, a registry holding the input, a train.yaml."""
    recipes = tmp_path / "recipes"
    (recipes / "super3" / "tiny").mkdir(parents=True)
    (recipes / "super3" / "__init__.py").write_text("")
    (recipes / "super3" / "tiny" / "__init__.py").write_text("")
    (recipes / "super3" / "tiny" / "pretrain.py").write_text(FAKE_BACKEND)
    for stage in ("pretrain", "sft"):
        (recipes / "super3" / f"{stage}.py").write_text(textwrap.dedent(ENTRY.format(stage=stage)))
    cfg = resolved_config("pretrain", "tiny", tmp_path)
    registry = Registry(cfg["job"]["artifacts_root"])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    registry.publish("tiny-pretrain-data", "pretrain-data", data_dir, {"tokenizer": {"vocab_size": 4096}})
    train_yaml = Path(cfg["job"]["dir"]) / "train.yaml"
    train_yaml.parent.mkdir(parents=True)
    train_yaml.write_text(yaml.safe_dump(cfg))
    return {"recipes": recipes, "cfg": cfg, "train_yaml": train_yaml, "registry": registry}


def _run(world, stage="pretrain", train_yaml=None, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("RANK", "SLURM_PROCID")} | env
    script = world["recipes"] / "super3" / f"{stage}.py"
    return subprocess.run(
        [sys.executable, str(script), "--config", str(train_yaml or world["train_yaml"])],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def test_runs_the_backend_then_publishes_with_lineage(world):
    proc = _run(world)
    assert proc.returncode == 0, proc.stderr
    art = world["registry"].get("tiny-pretrain-model:latest")
    out = Path(world["cfg"]["job"]["output_dir"])
    assert Path(art.path) == out and (out / "weights.txt").read_text() == "tiny-pretrain-data"
    assert art.metadata == {"iteration": world["cfg"]["train"]["train_iters"], "wrote": ["weights.txt"]} and art.kind == "model"
    assert art.inputs == ["tiny-pretrain-data:v1"] and art.input_slots == {"data": "tiny-pretrain-data:v1"}
    assert art.run.stage == "pretrain" and art.run.job_id == world["cfg"]["job"]["id"]
    lines = [line for line in proc.stderr.splitlines() if "[rank 0]" in line]
    assert any("published tiny-pretrain-model:v1" in line for line in lines)
    assert all(line[:4].isdigit() and line[4] == "-" for line in lines)  # timestamped


def test_nothing_is_published_when_the_backend_fails(world):
    proc = _run(world, FAKE_MODE="raise")
    assert proc.returncode == 1 and "boom in backend" in proc.stderr
    assert not world["registry"].exists("tiny-pretrain-model:latest")


def test_only_global_rank_zero_publishes(world):
    proc = _run(world, RANK="3", SLURM_PROCID="0")
    assert proc.returncode == 0, proc.stderr
    assert "[rank 3]" in proc.stderr and "rank 0 publishes" in proc.stderr
    assert not world["registry"].exists("tiny-pretrain-model:latest")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda cfg: cfg["train"].update(trian_iters=5), "unknown config key 'train.trian_iters'"),
        (lambda cfg: cfg.pop("job"), "no job: section"),
        (lambda cfg: cfg["run"].update(data="no-such-data:latest"), "no-such-data"),
        (lambda cfg: cfg.update(backend="gpu"), "backend"),
    ],
)
def test_bad_train_yaml_is_one_line_exit_2(world, mutate, message):
    cfg = yaml.safe_load(world["train_yaml"].read_text())
    mutate(cfg)
    world["train_yaml"].write_text(yaml.safe_dump(cfg))
    proc = _run(world)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in proc.stderr


def test_wrong_entry_script_and_missing_file(world, tmp_path):
    proc = _run(world, stage="sft")
    assert proc.returncode == 2 and "for stage 'pretrain', not 'sft'" in proc.stderr
    proc = _run(world, train_yaml=tmp_path / "nope.yaml")
    assert proc.returncode == 2 and "train.yaml not found" in proc.stderr
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    proc = _run(world, train_yaml=tmp_path / "broken.yaml")
    assert proc.returncode == 2 and "broken.yaml:" in proc.stderr


def test_rank_detection_prefers_torchrun_rank():
    assert global_rank({"RANK": "5", "SLURM_PROCID": "1"}) == 5
    assert global_rank({"SLURM_PROCID": "2"}) == 2
    assert global_rank({}) == 0 and global_rank({"RANK": "x", "SLURM_PROCID": "4"}) == 4
