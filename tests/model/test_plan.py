"""estimate_from_config: the calculator driven by a resolved stage config, as dry-run plans use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nemotron.errors import UserError
from nemotron.model.plan import estimate_from_config

REPO = Path(__file__).resolve().parents[2]

PRETRAIN = {
    "train": {"train_iters": 1000, "global_batch_size": 3072, "micro_batch_size": 1, "seq_length": 8192},
    "parallel": {"tensor": 4, "pipeline": 1, "context": 1, "expert": 8, "expert_tensor": 1, "sequence_parallel": True},
    "precision": "nvfp4",
    "resources": {"nodes": 4, "gpus_per_node": 8},
}


def test_pretrain_estimate() -> None:
    est = estimate_from_config(PRETRAIN)
    assert est.num_gpus == 32 and est.tokens == 1000 * 3072 * 8192
    assert est.memory is not None and est.memory.params_per_gpu > 0
    assert est.hours is not None and est.hours.precision == "nvfp4"
    text = "\n".join(est.lines())
    assert "120.6B total, 12.7B active" in text and "GiB/GPU" in text and "GPU-hours" in text


def test_more_nodes_shrink_optimizer_and_time() -> None:
    base = estimate_from_config(PRETRAIN)
    bigger = estimate_from_config({**PRETRAIN, "resources": {"nodes": 16, "gpus_per_node": 8}})
    assert bigger.memory.optimizer < base.memory.optimizer
    assert bigger.hours.gpu_hours == pytest.approx(base.hours.gpu_hours)
    assert bigger.hours.wall_clock_hours == pytest.approx(base.hours.wall_clock_hours / 4)


def test_cpu_tiny_skips_memory_and_lora_counts_only_adapters_as_trainable() -> None:
    tiny = estimate_from_config({**PRETRAIN, "resources": {"nodes": 1, "gpus_per_node": 0}})
    assert tiny.memory is None and tiny.hours is None
    full = estimate_from_config(PRETRAIN).memory
    lora = estimate_from_config({**PRETRAIN, "peft": {"method": "lora", "lora": {"rank": 32}}})
    assert lora.memory is not None and "lora adapters" in "\n".join(lora.lines())
    assert lora.memory.grads < full.grads / 20 and lora.memory.optimizer < full.optimizer / 20
    assert lora.memory.activations == full.activations and lora.memory.weights > full.weights


def test_bad_combinations_are_user_errors() -> None:
    with pytest.raises(UserError, match="no nvfp4"):
        estimate_from_config(PRETRAIN, gpu="H100")
    with pytest.raises(UserError, match="not a multiple"):
        estimate_from_config({**PRETRAIN, "resources": {"nodes": 1, "gpus_per_node": 6}})


@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_shipped_default_configs(stage: str) -> None:
    path = REPO / "configs" / "super3" / stage / "default.yaml"
    assert path.exists(), f"{path} is shipped with the project"
    est = estimate_from_config(yaml.safe_load(path.read_text()))
    assert est.memory is not None and est.memory.total > 0
