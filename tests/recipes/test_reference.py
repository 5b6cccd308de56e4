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


def test_megatron_core_fields_recorded_for_bridge_match_installed_megatron_core():
    """The ConfigContainer sections that are megatron-core classes use the installed names."""
    from megatron.core.datasets.gpt_dataset import GPTDatasetConfig
    from megatron.core.model_parallel_config import ModelParallelConfig
    from megatron.core.optimizer import OptimizerConfig
    from megatron.core.transformer.transformer_config import TransformerConfig

    ref = load_reference("megatron_bridge")["config_container"]
    mcore_model = {f.name for f in dataclasses.fields(TransformerConfig)} | {
        f.name for f in dataclasses.fields(ModelParallelConfig)
    }
    bridge_only = {
        "seq_length",
        "hybrid_override_pattern",
        "vocab_size",
        "share_embeddings_and_output_weights",
        "mamba_stack_spec",
    }
    assert set(ref["model"]["fields"]) - bridge_only <= mcore_model
    assert set(ref["optimizer"]["fields"]) <= {f.name for f in dataclasses.fields(OptimizerConfig)}
    dataset_mcore = {f.name for f in dataclasses.fields(GPTDatasetConfig)}
    dataloader_only = {
        "seq_length",
        "dataloader_type",
        "num_workers",
        "data_sharding",
        "skip_getting_attention_mask_from_dataset",
    }
    assert set(ref["dataset"]["fields"]) - dataloader_only <= dataset_mcore


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


def test_checkers_flag_unknown_names():
    """A renamed parameter must fail a test: the checkers are not vacuous."""
    bridge = load_reference("megatron_bridge")
    assert bridge_keys_problems({"train.train_iters": 1, "validation.eval_interval": 2}, bridge) == []
    assert bridge_keys_problems({"train.train_iter": 1, "trainer.max_steps": 2}, bridge) == [
        "train.train_iter",
        "trainer.max_steps",
    ]
    spec = (
        "FinetuningDatasetConfig",
        {"seq_length": 1, "packed_sequence_specs": ("PackedSequenceSpecs", {"pack_size": 1})},
    )
    assert spec_problems(spec, bridge) == ["PackedSequenceSpecs.pack_size"]
    rl = load_reference("nemo_rl")["master_config"]
    assert tree_problems({"grpo": {"num_prompts_per_step": 1, "prompts_per_step": 2}}, rl) == ["grpo.prompts_per_step"]


@pytest.mark.parametrize("preset", ["bf16", "fp8", "nvfp4"])
def test_precision_presets_are_published_bridge_presets(preset):
    from super3.megatron.common import PRECISION_PRESETS

    assert PRECISION_PRESETS[preset] in load_reference("megatron_bridge")["mixed_precision_presets"]
