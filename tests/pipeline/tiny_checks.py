"""What a finished tiny pipeline must have produced: every artifact, a complete lineage graph, and
numbers that show each stage really learned (shared by the local and the Slurm pipeline tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nemotron.artifacts.registry import Registry

NEMOTRON = str(Path(sys.executable).parent / "nemotron")
OUTPUTS = {
    "tiny-pretrain-data": "pretrain-data",
    "tiny-sft-data": "sft-data",
    "tiny-rl-data": "rl-data",
    "tiny-pretrain-model": "model",
    "tiny-sft-model": "model",
    "tiny-rl-rlvr-model": "model",
    "tiny-quantized-model": "quantized-model",
    "tiny-eval-results": "eval-results",
}


def nemotron(args: list[str], home: Path, env: dict[str, str] | None = None, timeout: float = 1500):
    """Run the real CLI as a user would, in an isolated NEMOTRON_HOME."""
    return subprocess.run(
        [NEMOTRON, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, "NEMOTRON_HOME": str(home), **(env or {})},
    )


def check_artifacts_and_lineage(home: Path) -> Registry:
    registry = Registry(home / "artifacts")
    for name, kind in OUTPUTS.items():
        art = registry.get(f"{name}:latest")
        assert art.kind == kind, (name, art.kind)
        assert Path(art.path).is_dir(), art.path
    done = nemotron(["lineage", "tiny-eval-results", "--format", "json"], home)
    assert done.returncode == 0, done.stderr
    graph = json.loads(done.stdout)
    names = {node["name"] for node in graph["nodes"]}
    assert names == set(OUTPUTS), names  # every upstream artifact reached from the eval results
    return registry


def check_learning(registry: Registry) -> dict[str, float]:
    """The tiny run's numbers are real: each stage moved its metric the right way."""
    pre = registry.get("tiny-pretrain-model:latest").metadata
    sft = registry.get("tiny-sft-model:latest").metadata
    rl = registry.get("tiny-rl-rlvr-model:latest").metadata
    ev = registry.get("tiny-eval-results:latest").metadata
    assert pre["final_train_loss"] < 0.8 * pre["initial_train_loss"], pre
    assert pre["final_valid_loss"] < pre["initial_valid_loss"], pre
    assert sft["masked_loss_after"] < 0.5 * sft["masked_loss_before"], sft
    assert rl["reward_last"] > rl["reward_first"], rl
    assert ev["passed"] is True, ev
    from nemotron.node.results import read_results

    results = read_results(registry.get("tiny-eval-results:latest").path)  # every stage's model, side by side
    assert [m["label"] for m in results["models"]] == ["pretrain", "sft", "rl.rlvr", "fp8", "nvfp4"], results
    assert [m["baseline"] for m in results["models"]] == [None, None, "sft", "rl.rlvr", "rl.rlvr"]
    from nemotron.node.results import primary_scores

    addition = {m["label"]: primary_scores(m, results["primary"])["tiny_addition"] for m in results["models"]}
    assert addition["sft"] > addition["pretrain"] + 0.3, addition  # SFT teaches the task
    assert addition["rl.rlvr"] >= addition["sft"], addition  # RL publishes no policy worse at its task
    assert rl["val_source"] == "train" and rl["num_val_prompts"] == 100, rl  # the closed task, all of it
    return {
        "pretrain_loss": (pre["initial_train_loss"], pre["final_train_loss"]),
        "sft_masked_loss": (sft["masked_loss_before"], sft["masked_loss_after"]),
        "rl_reward": (rl["reward_first"], rl["reward_last"]),
    }
