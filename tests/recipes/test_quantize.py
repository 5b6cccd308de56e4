"""Quantize translation: the four Mamba-MoE PTQ configs, SFT calibration data, HF export layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from super3.megatron import quantize

from nemotron.errors import UserError

from .recipes_support import SFT_ROWS, hf_model, load_reference, megatron_model, resolved_config, write_packed_parquet

MODELOPT = load_reference("modelopt")
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
    assert set(job["quantize_parallel"]) <= set(MODELOPT["provider_fields"])
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


def test_run_publishes_every_export(tmp_path, sft_data, monkeypatch):
    cfg = resolved_config("quantize", "nvfp4_conservative", tmp_path)
    seen = {}

    def fake_launch(job, samples):
        seen["samples"] = samples
        for c in job["configs"]:
            Path(c["hf_dir"]).mkdir(parents=True)
            (Path(c["hf_dir"]) / "config.json").write_text("{}")

    monkeypatch.setattr(quantize, "_launch", fake_launch)
    meta = quantize.run(cfg, {"model": hf_model(tmp_path / "model"), "calib": sft_data}, tmp_path / "out")
    assert meta["hf_dir"] == "mamba_moe_nvfp4_conservative/hf" and meta["calibration_samples"] == 6
    assert meta["configs"]["mamba_moe_nvfp4_conservative"]["format"] == "nvfp4"
    assert all(len(s) <= 512 for s in seen["samples"])
