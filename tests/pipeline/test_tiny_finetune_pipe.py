"""The fine-tune journey end to end on the CPU: an HF checkpoint added with ``artifacts add`` ->
tiny ``model import`` (identity conversion, verified) -> SFT -> RL -> quantize -> eval, as
``nemotron super3 pipe -c finetune_tiny``; lineage of the eval results reaches the added model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemotron.artifacts.registry import Registry
from tests.byo.test_byo_tiny import make_hf_checkpoint
from tests.pipeline.tiny_checks import nemotron


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_finetune_tiny_pipe_from_an_added_checkpoint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    checkpoint = make_hf_checkpoint(tmp_path / "released", seed=11)
    added = nemotron(["artifacts", "add", str(checkpoint), "--name", "byo-base", "--kind", "model"], home)
    assert added.returncode == 0, added.stderr
    done = nemotron(
        [
            "super3",
            "pipe",
            "-c",
            "finetune_tiny",
            "model.import.run.model=byo-base",
            # the journey, not the learning (tests/pipeline/test_tiny_pipe.py checks that): short stages
            "sft.train.train_iters=10",
            "rl.rlvr.grpo.max_num_steps=2",
            "rl.rlvr.grpo.val_period=2",
            "rl.rlvr.checkpoint.save_interval=2",
            "eval.eval.limit=20",
            "eval.eval.tolerance=1.0",
        ],
        home,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    registry = Registry(home / "artifacts")
    imported = registry.get("tiny-imported-model")
    assert imported.input_slots == {"model": "byo-base:v1"} and imported.metadata["verify"]["passed"] is True
    assert registry.get("tiny-sft-model").input_slots["model"] == imported.ref
    lineage = nemotron(["lineage", "tiny-eval-results", "--format", "json"], home)
    names = {node["name"] for node in json.loads(lineage.stdout)["nodes"]}
    assert {"byo-base", "tiny-imported-model", "tiny-sft-model", "tiny-rl-rlvr-model", "tiny-quantized-model"} <= names
    assert "tiny-pretrain-model" not in names  # nothing was pretrained: the journey starts at the added model
