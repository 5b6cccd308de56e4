"""FP8 / NVFP4 post-training quantization of the model with ModelOpt through Megatron-Bridge.

Follows Megatron-Bridge's ``examples/quantization/quantize.py`` + ``export.py`` (HF model ->
Megatron model with the ModelOpt layer spec -> ``mtq.quantize`` with a calibration forward loop ->
Megatron checkpoint -> ``export_mcore_gpt_to_hf``), except that calibration samples come from the
SFT data artifact (packed Parquet) instead of a dataset download. One HF export per config in
``quant.configs`` (``mamba_moe_{fp8,nvfp4}_{conservative,aggressive}``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from nemotron.node.ranks import is_rank_zero
from super3.megatron.common import locate_model, relative_to, require
from super3.megatron.sft import packed_splits

MODELOPT_CONFIGS = {
    "mamba_moe_fp8_conservative": "MAMBA_MOE_FP8_CONSERVATIVE_CFG",
    "mamba_moe_fp8_aggressive": "MAMBA_MOE_FP8_AGGRESSIVE_CFG",
    "mamba_moe_nvfp4_conservative": "MAMBA_MOE_NVFP4_CONSERVATIVE_CFG",
    "mamba_moe_nvfp4_aggressive": "MAMBA_MOE_NVFP4_AGGRESSIVE_CFG",
}
"""Config names (Megatron-Bridge quantize_utils.QUANT_CFG_CHOICES) -> ``modelopt.torch.quantization`` constants."""


def calibration_samples(
    data_dir: str | Path, size: int, seq_length: int, metadata: dict | None = None
) -> list[list[int]]:
    """Up to ``size`` token sequences from the SFT Parquet, unpacked at ``seq_start_id`` and cut at ``seq_length``."""
    import glob

    import pyarrow.parquet as pq

    spec = packed_splits(data_dir, metadata)["train"]
    path = Path(spec)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else sorted(Path(f) for f in glob.glob(spec))
    samples: list[list[int]] = []
    for file in files:
        table = pq.read_table(file, columns=["input_ids", "seq_start_id"])
        for ids, starts in zip(
            table.column("input_ids").to_pylist(), table.column("seq_start_id").to_pylist(), strict=True
        ):
            bounds = [*(starts or [0]), len(ids)]
            for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
                seq = ids[begin:end][:seq_length]
                if len(seq) > 1:
                    samples.append(seq)
                if len(samples) >= size:
                    return samples
    if not samples:
        raise UserError(f"no calibration sequences found in {spec}")
    return samples


def build_quantize_job(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """train.yaml + inputs -> model, per-config outputs, Megatron layouts and calibration spec."""
    output_dir = Path(output_dir)
    if "model" not in inputs:
        raise UserError("quantize needs run.model")
    if "calib" not in inputs:
        raise UserError(
            "quantize needs run.calib (an sft-data artifact) for calibration samples",
            hint="set run.calib=sft-data:latest",
        )
    model = inputs["model"]
    hf = locate_model(model).hf
    if hf is None:
        raise UserError(
            f"run.model {model.name}:v{model.version} has no Hugging Face export",
            hint="quantization starts from an HF model (SFT/RL outputs with export)",
        )
    par, res, quant = train_cfg["parallel"], train_cfg["resources"], train_cfg["quant"]
    world = res["nodes"] * res["gpus_per_node"]
    layers = train_cfg["model"]["num_layers"]
    if layers % world:
        raise UserError(
            f"HF export shards {layers} layers over {world} GPUs with pipeline parallelism, which does not divide",
            hint="use a GPU count that divides model.num_layers",
        )
    configs = []
    for name in quant["configs"]:
        configs.append(
            {
                "name": name,
                "modelopt_config": MODELOPT_CONFIGS[name],
                "format": "nvfp4" if "nvfp4" in name else "fp8",
                "megatron_dir": str(output_dir / name / "megatron"),
                "hf_dir": str(output_dir / name / "hf"),
            }
        )
    calib = inputs["calib"]
    return {
        "hf_model": str(hf),
        "configs": configs,
        "quantize_parallel": {
            "tensor_model_parallel_size": par["tensor"],
            "pipeline_model_parallel_size": par["pipeline"],
            "expert_model_parallel_size": par["expert"],
            "expert_tensor_parallel_size": par["expert_tensor"],
        },
        # The unified HF exporter loads at TP=1: shard across the GPUs with pipeline parallelism instead.
        "export_parallel": {
            "tensor_model_parallel_size": 1,
            "pipeline_model_parallel_size": world,
            "expert_model_parallel_size": 1,
            "expert_tensor_parallel_size": 1,
        },
        "calibration": {
            "data_dir": str(calib.path),
            "metadata": calib.metadata or {},
            "size": quant["calib_size"],
            "seq_length": quant["calib_seq_length"],
            "batch_size": quant["calib_batch_size"],
        },
        "export_hf": bool(train_cfg["export"]["hf"]),
    }


def result_metadata(job: dict[str, Any], output_dir: Path, n_calib: int) -> dict[str, Any]:
    configs = {}
    for cfg in job["configs"]:
        entry = {"format": cfg["format"], "modelopt_config": cfg["modelopt_config"]}
        entry["megatron_dir"] = relative_to(Path(cfg["megatron_dir"]), output_dir)
        if job["export_hf"]:
            if not (Path(cfg["hf_dir"]) / "config.json").is_file():
                raise RuntimeError(f"HF export missing at {cfg['hf_dir']}; nothing to publish")
            entry["hf_dir"] = relative_to(Path(cfg["hf_dir"]), output_dir)
        configs[cfg["name"]] = entry
    first = configs[job["configs"][0]["name"]]
    meta = {"format": "hf" if job["export_hf"] else "megatron", "library": "modelopt+megatron-bridge"}
    meta.update({"configs": configs, "calibration_samples": n_calib, "source_model": job["hf_model"]})
    if "hf_dir" in first:
        meta["hf_dir"] = first["hf_dir"]
    return meta


def _launch(job: dict[str, Any], samples: list[list[int]]) -> None:
    """Quantize and export each config (every torchrun rank runs this; GPU nodes only)."""
    require("megatron.bridge", "Megatron-Bridge")
    require("modelopt", "NVIDIA ModelOpt")
    import modelopt.torch.export as mtex
    import modelopt.torch.quantization as mtq
    import torch
    from megatron.bridge import AutoBridge
    from megatron.bridge.models.mamba.mamba_provider import modelopt_mamba_stack_spec
    from megatron.core import parallel_state
    from megatron.core.utils import unwrap_model
    from modelopt.torch.utils.plugins.megatron_generate import megatron_generate

    batch = job["calibration"]["batch_size"]
    for cfg in job["configs"]:
        bridge = AutoBridge.from_hf_pretrained(job["hf_model"], trust_remote_code=True)
        provider = bridge.to_megatron_provider(load_weights=True)
        for key, value in job["quantize_parallel"].items():
            setattr(provider, key, value)
        provider.pipeline_dtype = torch.bfloat16
        provider.moe_permute_fusion = False
        provider.mamba_stack_spec = modelopt_mamba_stack_spec
        provider.finalize()
        provider.initialize_model_parallel(seed=0)
        model = provider.provide_distributed_model(wrap_with_ddp=False)
        unwrapped = unwrap_model(model)[0]

        def forward_loop(m: Any) -> None:
            for start in range(0, len(samples), batch):
                for seq in samples[start : start + batch]:
                    megatron_generate(m, torch.tensor([seq], dtype=torch.long).cuda(), osl=1)

        mtq.quantize(unwrapped, getattr(mtq, cfg["modelopt_config"]), forward_loop)
        bridge.save_megatron_model(model, cfg["megatron_dir"])
        del model, unwrapped
        parallel_state.destroy_model_parallel()
        if not job["export_hf"]:
            continue
        config = bridge.get_model_config()
        for key, value in job["export_parallel"].items():
            setattr(config, key, value)
        config.pipeline_dtype = torch.bfloat16
        config.finalize()
        bridge._get_or_initialize_pg_collection(config.transformer, seed=0)
        loaded = bridge.load_megatron_model(
            cfg["megatron_dir"], mp_overrides=job["export_parallel"], wrap_with_ddp=False
        )
        exported = unwrap_model(loaded)[0]
        tmp = Path(cfg["hf_dir"] + ".tmp")
        mtex.export_mcore_gpt_to_hf(
            exported,
            job["hf_model"],
            dtype=torch.bfloat16,
            export_dir=str(tmp),
            moe_router_dtype=getattr(exported.config, "moe_router_dtype", None),
            trust_remote_code=True,
        )
        torch.distributed.barrier()
        if is_rank_zero():
            shutil.rmtree(cfg["hf_dir"], ignore_errors=True)
            tmp.rename(cfg["hf_dir"])
        del loaded, exported
        parallel_state.destroy_model_parallel()


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Node entry (``super3.megatron.quantize``)."""
    output_dir = Path(output_dir)
    job = build_quantize_job(train_cfg, inputs, output_dir)
    cal = job["calibration"]
    samples = calibration_samples(cal["data_dir"], cal["size"], cal["seq_length"], cal["metadata"])
    get_logger().info("calibrating on %d SFT sequences; configs: %s", len(samples), [c["name"] for c in job["configs"]])
    _launch(job, samples)
    return result_metadata(job, output_dir, len(samples)) if is_rank_zero() else {}
