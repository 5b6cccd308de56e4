"""Quantize translation: the four Mamba-MoE PTQ configs, SFT calibration data, HF export layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from super3.megatron import quantize

from nemotron.errors import UserError

from .recipes_support import (
    SFT_ROWS,
    call_problems,
    hf_model,
    load_reference,
    megatron_model,
    resolved_config,
    write_packed_parquet,
)

MODELOPT = load_reference("modelopt")
BRIDGE = load_reference("megatron_bridge")
CONFIGS = ["fp8_conservative", "fp8_aggressive", "nvfp4_conservative", "nvfp4_aggressive"]


def _job(tmp_path, config, sft_data, **overrides):
    cfg = resolved_config("quantize", config, tmp_path, **overrides)
    inputs = {"model": hf_model(tmp_path / "model"), "calib": sft_data}
    return cfg, quantize.build_quantize_job(cfg, inputs, tmp_path / "out")


@pytest.mark.parametrize("config", CONFIGS)
def test_each_named_config_maps_to_its_modelopt_recipe(tmp_path, sft_data, config):
    import modelopt.torch.quantization as mtq

    _, job = _job(tmp_path, config, sft_data)
    (entry,) = job["configs"]
    name = f"mamba_moe_{config}"
    assert entry["name"] == name and entry["modelopt_config"] == MODELOPT["quant_configs"][name]
    assert isinstance(getattr(mtq, entry["modelopt_config"]), dict)
    assert entry["format"] == config.split("_")[0]
    assert entry["hf_dir"] == str(tmp_path / "out" / name / "hf")
    assert job["quantize_parallel"]["tensor_model_parallel_size"] == 8
    assert job["quantize_parallel"]["expert_model_parallel_size"] == 8
    # The unified HF exporter needs TP=1: the 8 GPUs shard the 88 layers by pipeline instead.
    assert job["export_parallel"]["tensor_model_parallel_size"] == 1
    assert job["export_parallel"]["pipeline_model_parallel_size"] == 8
    assert job["hf_model"] == str(tmp_path / "model" / "hf")


def test_several_configs_in_one_run(tmp_path, sft_data):
    overrides = {"quant.configs": ["mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"]}
    _, job = _job(tmp_path, "default", sft_data, **overrides)
    assert [c["format"] for c in job["configs"]] == ["fp8", "nvfp4"]


def test_calibration_unpacks_sft_sequences(tmp_path, sft_data):
    samples = quantize.calibration_samples(sft_data.path, size=100, seq_length=4)
    expected = [seq[:4] for row in SFT_ROWS for seq in row]
    assert samples == expected
    assert quantize.calibration_samples(sft_data.path, size=2, seq_length=512) == [[1, 2, 3, 4], [5, 6, 7]]
    glob_dir = tmp_path / "glob"
    write_packed_parquet(glob_dir / "train-0.parquet", [[[9, 9, 9]]])
    assert quantize.calibration_samples(glob_dir, size=5, seq_length=8) == [[9, 9, 9]]


def test_user_errors(tmp_path, sft_data):
    cfg = resolved_config("quantize", "default", tmp_path)
    with pytest.raises(UserError, match="run.calib"):
        quantize.build_quantize_job(cfg, {"model": hf_model(tmp_path / "m")}, tmp_path / "out")
    with pytest.raises(UserError, match="no Hugging Face export"):
        quantize.build_quantize_job(cfg, {"model": megatron_model(tmp_path / "mm"), "calib": sft_data}, tmp_path / "o")
    with pytest.raises(UserError, match="does not divide"):
        _job(
            tmp_path, "default", sft_data, **{"resources.gpus_per_node": 5, "parallel.tensor": 1, "parallel.expert": 1}
        )


def test_every_library_call_matches_the_pinned_signatures(tmp_path, sft_data):
    """What _launch passes (quantize.py + export.py of Megatron-Bridge v0.4.0): every argument exists
    in the pinned signature (ModelOpt: the installed one) and every required one is given."""
    _, job = _job(tmp_path, "default", sft_data)
    (entry,) = job["configs"]
    calls = entry["quantize"] + entry["export"]
    assert calls and all(call_problems(c, BRIDGE) == [] for c in calls), [call_problems(c, BRIDGE) for c in calls]
    names = [c.function for c in entry["export"]]
    # export.py: a fresh provider without weights, finalized and initialized, then load_megatron_model
    assert names[:2] == ["AutoBridge.from_hf_pretrained", "AutoBridge.to_megatron_provider"]
    assert entry["export"][1].kwargs == {"load_weights": False}
    assert names.index("ModelProviderMixin.initialize_model_parallel") < names.index("AutoBridge.load_megatron_model")
    assert "AutoBridge.get_model_config" not in names  # no Megatron-Bridge release has it
    assert all(c.function in BRIDGE["functions"] or c.function.startswith(("modelopt.", "provider.")) for c in calls)


def test_modelopt_calls_also_match_the_pinned_modelopt(tmp_path, sft_data):
    """ModelOpt 0.43.0 (the pin; read from its wheel) next to the installed one: same arguments work."""
    from .recipes_support import signature_problems

    pinned = MODELOPT["pinned_0_43_0"]
    _, job = _job(tmp_path, "default", sft_data)
    for cfg in job["configs"]:
        assert cfg["modelopt_config"] in pinned["quant_configs_present"]
        for call in cfg["quantize"] + cfg["export"]:
            if call.function in pinned["signatures"]:
                assert signature_problems(call.function, call.kwargs, pinned["signatures"][call.function]) == []


def test_a_wrong_argument_fails_the_signature_check(tmp_path, sft_data):
    from super3.megatron.common import LibraryCall

    assert call_problems(LibraryCall("AutoBridge.load_megatron_model", {"mp_overrides": {}}), BRIDGE) == [
        "AutoBridge.load_megatron_model: missing path"
    ]
    assert call_problems(LibraryCall("AutoBridge.get_model_config", {}), BRIDGE)
    bad = LibraryCall("modelopt.torch.export.export_mcore_gpt_to_hf", {"model": 1, "export_path": "x"})
    assert "modelopt.torch.export.export_mcore_gpt_to_hf(export_path=)" in call_problems(bad, BRIDGE)


def test_published_fp8_recipe_calibrates_on_256_samples_with_an_fp8_kv_cache(tmp_path, sft_data):
    import modelopt.torch.quantization as mtq

    cfg, job = _job(tmp_path, "default", sft_data)
    assert cfg["quant"]["calib_size"] == 256 and job["calibration"]["size"] == 256
    (entry,) = job["configs"]
    assert entry["kv_cache_fp8"] is True
    # ModelOpt 0.43 (the pin; what Megatron-Bridge v0.4.0 quantize_utils.py edits): a pattern dict
    pinned_shape = {"quant_cfg": {"*weight_quantizer": {"num_bits": (4, 3), "axis": None}}, "algorithm": "max"}
    built = quantize.modelopt_config(entry, pinned_shape)
    assert built["quant_cfg"]["*linear_qkv.output_quantizer"] == {"enable": True, "num_bits": (4, 3), "axis": None}
    assert "*linear_qkv.output_quantizer" not in pinned_shape["quant_cfg"]  # copied, not mutated
    # the installed ModelOpt's constant (a list of entries in newer releases) gets the same entry
    installed = quantize.modelopt_config(entry)
    assert entry["modelopt_config"] == "MAMBA_MOE_FP8_AGGRESSIVE_CFG"  # [NR]: Mamba GEMMs in FP8 too
    before = mtq.MAMBA_MOE_FP8_AGGRESSIVE_CFG["quant_cfg"]
    assert len(before) + 1 == len(installed["quant_cfg"]) if isinstance(before, list) else True
    assert "*linear_qkv.output_quantizer" in str(installed["quant_cfg"])
    assert "*linear_qkv.output_quantizer" not in str(before)


def test_metadata_is_the_shared_quantized_model_shape(tmp_path, sft_data):
    from nemotron.artifacts.quantized import quantized_exports

    from .recipes_support import artifact

    overrides = {"quant.configs": ["mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"]}
    _, job = _job(tmp_path, "default", sft_data, **overrides)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="HF export missing"):
        quantize.result_metadata(job, out, 6)
    for c in job["configs"]:
        Path(c["hf_dir"]).mkdir(parents=True)
        (Path(c["hf_dir"]) / "config.json").write_text("{}")
    meta = quantize.result_metadata(job, out, 6)
    exports = quantized_exports(artifact("q", "quantized-model", out, meta))
    assert [(e.config, e.format, e.path) for e in exports] == [
        ("mamba_moe_fp8_conservative", "fp8", out / "mamba_moe_fp8_conservative" / "hf"),
        ("mamba_moe_nvfp4_conservative", "nvfp4", out / "mamba_moe_nvfp4_conservative" / "hf"),
    ]
