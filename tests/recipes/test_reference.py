"""The recorded library references: consistent, checked against the installed libraries, able to fail."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from .recipes_support import bridge_keys_problems, load_reference, spec_problems, tree_problems


def test_every_reference_names_its_source_and_version():
    for name in ("megatron_bridge", "nemo_rl", "modelopt", "nemo_evaluator"):
        ref = load_reference(name)
        assert ref["library"] and ref["recorded"] and ref["sources"], name
        for source in ref["sources"].values():
            assert source["path"], (name, source)
            assert "commit" in source or "note" in source, (name, source)


def test_megatron_bridge_facts_were_read_at_the_pinned_tags():
    """The recorded facts name the release tags of the pinned container, never a branch."""
    from nemotron.upstream.pins import MEGATRON_STAGES_CONTAINER, container

    ref = load_reference("megatron_bridge")
    pins = container(MEGATRON_STAGES_CONTAINER)
    assert ref["container"] == MEGATRON_STAGES_CONTAINER
    for library in ("megatron-bridge", "megatron-core"):
        pin, source = pins.pin(library), ref["sources"][library]
        assert (source["repo"], source["tag"]) == (pin.repo, pin.tag) and len(source["commit"]) == 40
    tags = {pins.pin("megatron-bridge").tag, pins.pin("megatron-core").tag}
    for cls in ref["classes"].values():
        assert {f.split(":")[0] for f in cls["read_from"]} <= tags, cls["read_from"]
    for fn in ref["functions"].values():
        assert fn["read_from"].split(":")[0] in tags


def test_megatron_core_sections_exist_in_the_installed_megatron_core():
    """Fields we emit under optimizer.* / model.* parallel keys are megatron-core's (installed 0.16 and
    recorded 0.17 agree on them): a rename in either fails here."""

    from megatron.core.model_parallel_config import ModelParallelConfig
    from megatron.core.optimizer import OptimizerConfig
    from super3.megatron.common import optimizer_overrides, parallel_overrides, recompute_overrides

    ref = load_reference("megatron_bridge")["classes"]
    parallel = {"tensor": 1, "pipeline": 1, "context": 1, "expert": 1, "expert_tensor": 1, "sequence_parallel": 0}
    model_keys = {k.split(".", 1)[1] for k in {**parallel_overrides(parallel), **recompute_overrides("full")}}
    installed = {f.name for f in dataclasses.fields(ModelParallelConfig)}
    from megatron.core.transformer.transformer_config import TransformerConfig

    installed |= {f.name for f in dataclasses.fields(TransformerConfig)}
    assert model_keys <= installed and model_keys <= set(ref["MambaModelProvider"]["fields"])
    opt = {
        "lr": 1,
        "min_lr": 0,
        "weight_decay": 0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.95,
        "clip_grad": 1,
        "lr_schedule": "cosine",
        "warmup_iters": 0,
    }
    opt_keys = {k.split(".", 1)[1] for k in optimizer_overrides(opt, 10) if k.startswith("optimizer.")}
    assert opt_keys <= {f.name for f in dataclasses.fields(OptimizerConfig)}
    assert opt_keys <= set(ref["OptimizerConfig"]["fields"])


def test_modelopt_reference_matches_installed_modelopt():
    import modelopt.torch.export as mtex
    import modelopt.torch.quantization as mtq
    from modelopt.torch.utils.plugins.megatron_generate import megatron_generate

    ref = load_reference("modelopt")
    for const in ref["quant_configs"].values():
        cfg = getattr(mtq, const)
        assert isinstance(cfg, dict) and "quant_cfg" in cfg, const
    funcs = {
        "modelopt.torch.quantization.quantize": mtq.quantize,
        "modelopt.torch.export.export_mcore_gpt_to_hf": mtex.export_mcore_gpt_to_hf,
        "modelopt.torch.utils.plugins.megatron_generate.megatron_generate": megatron_generate,
    }
    for name, params in ref["functions"].items():
        assert set(params) <= set(inspect.signature(funcs[name]).parameters), name


def test_checkers_flag_unknown_and_missing_names():
    """A renamed parameter or a dropped required one must fail a test: the checkers are not vacuous."""
    bridge = load_reference("megatron_bridge")
    assert bridge_keys_problems({"train.train_iters": 1, "validation.eval_interval": 2}, bridge) == []
    assert bridge_keys_problems({"train.train_iter": 1, "trainer.max_steps": 2, "mixed_precisions": 3}, bridge) == [
        "train.train_iter",
        "trainer.max_steps",
        "mixed_precisions",
    ]
    spec = (
        "FinetuningDatasetConfig",
        {"seq_length": 1, "packed_sequence_specs": ("PackedSequenceSpecs", {"pack_size": 1})},
    )
    assert spec_problems(spec, bridge) == ["PackedSequenceSpecs.pack_size"]
    # FinetuningDatasetConfig.seq_length has no default in Megatron-Bridge v0.4.0: leaving it out fails
    assert spec_problems(("FinetuningDatasetConfig", {"dataset_root": "/d"}), bridge) == [
        "FinetuningDatasetConfig.seq_length (required)"
    ]
    rl = load_reference("nemo_rl")["master_config"]
    assert tree_problems({"grpo": {"num_prompts_per_step": 1, "prompts_per_step": 2}}, rl) == ["grpo.prompts_per_step"]


@pytest.mark.parametrize("preset", ["bf16", "fp8", "nvfp4"])
def test_precision_presets_are_published_bridge_presets(preset):
    from super3.megatron.common import PRECISION_PRESETS

    assert PRECISION_PRESETS[preset] in load_reference("megatron_bridge")["mixed_precision_presets"]
