"""Contracts with the pinned Megatron-Bridge in both directions, the pins, the node preflight, the plan.

Megatron-Bridge does not import on CPU (its peft/lora_layers.py imports Transformer Engine), so the
library side is the facts ``api_reference/record_megatron_bridge.py`` read at the pinned tags: every
key we emit must exist there, and every key the library requires (or the recipe leaves to its caller)
must be emitted. Each direction is shown to fail on a broken translation.
"""

from __future__ import annotations

import pytest
from super3.megatron import pretrain, quantize, sft
from super3.megatron.common import check_container

from nemotron.errors import UserError

from .recipes_support import (
    bridge_keys_problems,
    call_problems,
    hf_model,
    load_reference,
    megatron_model,
    missing_caller_keys,
    resolved_config,
    spec_problems,
)

BRIDGE = load_reference("megatron_bridge")


def _pretrain(tmp_path, pretrain_data, config="default"):
    cfg = resolved_config("pretrain", config, tmp_path)
    inputs = {"data": pretrain_data, "model": megatron_model(tmp_path / "prev")}
    return pretrain.build_pretrain_job(cfg, inputs, tmp_path / "out")


def _sft(tmp_path, sft_data, config="default"):
    cfg = resolved_config("sft", config, tmp_path)
    return sft.build_sft_job(cfg, {"model": megatron_model(tmp_path / "base"), "data": sft_data}, tmp_path / "out")


@pytest.mark.parametrize("config", ["default", "phase2", "long_context", "long_context_mixed"])
def test_pretrain_contract_both_directions(tmp_path, pretrain_data, config):
    job = _pretrain(tmp_path, pretrain_data, config)
    assert bridge_keys_problems(job.overrides, BRIDGE) == []
    assert missing_caller_keys(job.recipe, job.overrides, BRIDGE) == []
    # removing a key the recipe leaves to us (it would train on mock data) fails
    dropped = {k: v for k, v in job.overrides.items() if k != "dataset.blend_per_split"}
    assert missing_caller_keys(job.recipe, dropped, BRIDGE) == ["dataset.blend_per_split"]
    # adding a key the library does not have fails
    assert bridge_keys_problems({**job.overrides, "dataset.blend_per_splits": []}, BRIDGE) == [
        "dataset.blend_per_splits"
    ]


@pytest.mark.parametrize("config", ["default", "lora"])
def test_sft_contract_both_directions(tmp_path, sft_data, config):
    job = _sft(tmp_path, sft_data, config)
    assert bridge_keys_problems(job.overrides, BRIDGE) == []
    assert spec_problems(job.dataset, BRIDGE) == []
    assert missing_caller_keys(job.recipe, job.overrides, BRIDGE, job.dataset) == []
    name, kwargs = job.dataset
    without = (name, {k: v for k, v in kwargs.items() if k != "seq_length"})
    assert spec_problems(without, BRIDGE) == ["FinetuningDatasetConfig.seq_length (required)"]
    assert spec_problems((name, {**kwargs, "packed_sequence_size": 1}), BRIDGE) == [
        "FinetuningDatasetConfig.packed_sequence_size"
    ]
    no_base = {**job.overrides, "checkpoint.pretrained_checkpoint": None}
    assert missing_caller_keys(job.recipe, no_base, BRIDGE, job.dataset) == ["checkpoint.pretrained_checkpoint"]
    if config == "lora":
        assert bridge_keys_problems({**job.overrides, "peft.rank": 8}, BRIDGE) == ["peft.rank"]


def test_quantize_calls_fail_when_an_argument_is_dropped_or_invented(tmp_path, sft_data):
    from dataclasses import replace

    cfg = resolved_config("quantize", "default", tmp_path)
    job = quantize.build_quantize_job(cfg, {"model": hf_model(tmp_path / "m"), "calib": sft_data}, tmp_path / "o")
    for call in job["configs"][0]["quantize"] + job["configs"][0]["export"]:
        assert call_problems(call, BRIDGE) == [], call
        required = [
            p
            for p, kind in (BRIDGE["functions"].get(call.function) or {}).get("params", {}).items()
            if kind == "required"
        ]
        if required:
            dropped = replace(call, kwargs={k: v for k, v in call.kwargs.items() if k != required[0]})
            assert call_problems(dropped, BRIDGE), call.function
    invented = replace(job["configs"][0]["export"][5], kwargs={**job["configs"][0]["export"][5].kwargs, "strict": 1})
    assert invented.function == "AutoBridge.load_megatron_model" and call_problems(invented, BRIDGE) == []  # **kwargs
    provider = replace(job["configs"][0]["quantize"][2], kwargs={"tensor_parallel_size": 8})
    assert call_problems(provider, BRIDGE) == ["provider.tensor_parallel_size"]


# ---------------------------------------------------------------------------------------------- pins


def test_default_configs_use_the_pinned_container_and_the_branch_image_is_refused(tmp_path):
    from nemotron.upstream.pins import CONTAINERS, MEGATRON_STAGES_CONTAINER, container

    pins = container(MEGATRON_STAGES_CONTAINER)
    assert pins.pin("megatron-bridge").version == "0.4.0" and pins.pin("megatron-bridge").tag == "v0.4.0"
    assert pins.pin("megatron-core").accepts("0.17.0rc0") and not pins.pin("megatron-core").accepts("0.16.1")
    for stage, config in [("pretrain", "default"), ("sft", "default"), ("sft", "lora"), ("quantize", "default")]:
        cfg = resolved_config(stage, config, tmp_path)
        assert cfg["resources"]["container"] == MEGATRON_STAGES_CONTAINER, (stage, config)
        check_container(cfg)
    branch = "nvcr.io/nvidia/nemo:26.02.nemotron_3_super"
    assert CONTAINERS[branch].pin("megatron-bridge").version == "0.4.0rc0"
    cfg = resolved_config("sft", "default", tmp_path, **{"resources.container": branch})
    with pytest.raises(UserError, match=r"0\.4\.0rc0.*written for 0\.4\.0") as err:
        check_container(cfg)
    assert "resources.container=nvcr.io/nvidia/nemo:26.04" in err.value.one_line()


# ------------------------------------------------------------------------------------------ preflight


def test_preflight_hooks_import_on_cpu_and_report_the_missing_library(tmp_path):
    """No Megatron-Bridge here: each hook returns one failed check naming the container to use."""
    for module, stage in ((pretrain, "pretrain"), (sft, "sft"), (quantize, "quantize")):
        checks = module.preflight(resolved_config(stage, "default", tmp_path))
        bridge = [c for c in checks if c.name == "megatron-bridge"]
        assert len(bridge) == 1 and not bridge[0].ok
        assert "nvcr.io/nvidia/nemo:26.04" in bridge[0].detail and "\n" not in bridge[0].detail


def test_preflight_version_check_names_the_mismatch(monkeypatch):
    from super3.megatron import preflight as pf

    versions = {"megatron-bridge": "0.4.0rc0", "megatron-core": "0.17.0rc0"}
    monkeypatch.setattr(pf, "installed_version", lambda dist, mod: versions[dist])
    bridge, core = pf.version_checks(("megatron-bridge", "megatron-core"))
    assert not bridge.ok and "0.4.0rc0" in bridge.detail and "pinned to 0.4.0" in bridge.detail
    assert core.ok
    with pytest.raises(UserError, match=r"megatron-bridge 0\.4\.0rc0 in this container"):
        pf.ensure_pinned(("megatron-bridge", "megatron-core"))  # the launch path's own guard
    versions["megatron-bridge"] = "0.4.0"
    assert all(c.ok for c in pf.version_checks(("megatron-bridge", "megatron-core")))
    pf.ensure_pinned(("megatron-bridge", "megatron-core"))


def test_preflight_inputs_check_fails_with_one_line(tmp_path, monkeypatch, pretrain_data):
    """Past the version checks, an input the translation refuses becomes one failed check."""
    from super3.megatron import preflight as pf

    monkeypatch.setattr(pf, "installed_version", lambda dist, mod: {"megatron-bridge": "0.4.0"}.get(dist, "0.17.0"))
    bad = type(pretrain_data)(**{**pretrain_data.__dict__, "metadata": {"tokenizer": {"vocab_size": 10**6}}})
    monkeypatch.setattr(pf, "resolved_inputs", lambda cfg: {"data": bad})
    checks = pretrain.preflight(resolved_config("pretrain", "default", tmp_path))
    inputs = [c for c in checks if c.name == "inputs"]
    assert len(inputs) == 1 and not inputs[0].ok and "vocabulary" in inputs[0].detail


# ------------------------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("stage", "config"),
    [
        ("pretrain", "default"),
        ("pretrain", "phase2"),
        ("pretrain", "long_context"),
        ("pretrain", "long_context_mixed"),
        ("sft", "default"),
        ("sft", "lora"),
    ],
)
def test_default_layouts_fit_by_the_plans_own_estimate(stage, config):
    from nemotron.config.loader import load_stage_config
    from nemotron.model.calculator import gpu_spec
    from nemotron.model.plan import estimate_from_config
    from nemotron.pipeline.stages import get_stage

    data = load_stage_config(get_stage(stage), config).data
    est = estimate_from_config(data, recompute=data["train"].get("recompute", "none"))
    assert est.memory is not None, est.note
    assert est.memory.total <= gpu_spec("B200").memory_gib, est.memory.summary()


def test_lora_memory_counts_frozen_weights_without_their_optimizer_state():
    from nemotron.config.loader import load_stage_config
    from nemotron.model.plan import estimate_from_config
    from nemotron.pipeline.stages import get_stage

    stage = get_stage("sft")
    same_layout = {"parallel.tensor": 4, "parallel.expert": 8, "resources.nodes": 4}
    full = estimate_from_config(load_stage_config(stage, "default", cli_overrides=same_layout).data).memory
    lora = estimate_from_config(load_stage_config(stage, "lora").data).memory
    assert lora.weights >= full.weights  # the frozen base stays, plus the adapters
    assert lora.grads < full.grads / 20 and lora.optimizer < full.optimizer / 20
    old_layout = {"parallel.tensor": 1, "parallel.expert": 1, "parallel.sequence_parallel": False}
    over = estimate_from_config(load_stage_config(stage, "lora", cli_overrides=old_layout).data).memory
    assert over.total > 179  # the recipe function's TP1 EP1 does not fit a B200


# ----------------------------------------------------------------------------------- library config


def test_library_config_is_the_overlay_the_node_applies(tmp_path, sft_data):
    job = _sft(tmp_path, sft_data, "lora")
    lib = job.library_config()
    assert lib["recipe"] == "megatron.bridge.recipes.nemotronh.nemotron_3_super.nemotron_3_super_peft_config"
    assert lib["recipe_kwargs"] == {"peft_scheme": "lora"} and lib["overrides"] == job.overrides
    assert lib["library"]["megatron-bridge"] == "0.4.0" and lib["entry"].endswith("finetune.finetune")
    assert lib["dataset"]["class"] == "FinetuningDatasetConfig"
    assert lib["dataset"]["packed_sequence_specs"]["class"] == "PackedSequenceSpecs"
    import yaml

    assert yaml.safe_load(yaml.safe_dump(lib)) == lib  # plain data: what library.yaml holds reads back


def test_library_hook_is_pending_until_the_inputs_resolve(tmp_path):
    """The launch hook (``library_config(train_cfg)``) resolves inputs through the job's registry."""
    cfg = resolved_config("sft", "lora", tmp_path)
    lib = sft.library_config(cfg)
    assert "sft-data" in lib["pending"] or "pretrain-model" in lib["pending"]
    assert lib["library"]["megatron-bridge"] == "0.4.0"
