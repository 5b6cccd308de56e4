"""FP8 / NVFP4 post-training quantization of the model with ModelOpt through Megatron-Bridge.

Follows Megatron-Bridge v0.4.0 ``examples/quantization/quantize.py`` + ``export.py``: HF model ->
Megatron model (``to_megatron_provider(load_weights=True)``, parallel sizes, ``finalize()``,
``initialize_model_parallel``) -> ``mtq.quantize`` with a calibration forward loop -> Megatron
checkpoint; then for the HF export a fresh provider (``load_weights=False``) at the export layout ->
``load_megatron_model(mp_overrides=...)`` -> ``export_mcore_gpt_to_hf``. Calibration samples come
from the SFT data artifact (packed Parquet) instead of a dataset download, as the published
checkpoints did (NVIDIA-NeMo/Nemotron v0.1.0 docs/nemotron/super3/quantization.md: 256 SFT samples,
FP8 KV cache). One HF export per config in ``quant.configs``.

``build_quantize_job`` lists every library call with its arguments (``LibraryCall``); ``_launch``
makes exactly those calls, and the tests check them against the pinned signatures.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nemotron.artifacts.quantized import quantized_entry
from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from nemotron.node.ranks import is_rank_zero
from super3.megatron.common import (
    LibraryCall,
    check_container,
    library_preview,
    locate_model,
    relative_to,
    require,
    stage_container,
)
from super3.megatron.sft import packed_splits

MODELOPT_CONFIGS = {
    "mamba_moe_fp8_conservative": "MAMBA_MOE_FP8_CONSERVATIVE_CFG",
    "mamba_moe_fp8_aggressive": "MAMBA_MOE_FP8_AGGRESSIVE_CFG",
    "mamba_moe_nvfp4_conservative": "MAMBA_MOE_NVFP4_CONSERVATIVE_CFG",
    "mamba_moe_nvfp4_aggressive": "MAMBA_MOE_NVFP4_AGGRESSIVE_CFG",
}
"""Config names (Megatron-Bridge v0.4.0 examples/quantization/quantize_utils.py QUANT_CFG_CHOICES)
-> ``modelopt.torch.quantization`` constants."""

KV_CACHE_FP8 = {"*linear_qkv.output_quantizer": {"enable": True, "num_bits": [4, 3], "axis": None}}
"""What ``--export-kv-cache-quant`` adds to the ModelOpt config (v0.4.0 quantize_utils.py
get_modelopt_torch_quantization_config): FP8 (E4M3) on the QKV output, i.e. the KV cache."""


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


def _layout(tp: int, pp: int, ep: int, etp: int) -> dict[str, int]:
    return {
        "tensor_model_parallel_size": tp,
        "pipeline_model_parallel_size": pp,
        "expert_model_parallel_size": ep,
        "expert_tensor_parallel_size": etp,
    }


def quantize_calls(hf_model: str, cfg: dict[str, Any], layout: dict[str, int]) -> list[LibraryCall]:
    """The library calls that quantize one config (v0.4.0 examples/quantization/quantize.py main())."""
    return [
        LibraryCall("AutoBridge.from_hf_pretrained", {"path": hf_model, "trust_remote_code": True}),
        LibraryCall("AutoBridge.to_megatron_provider", {"load_weights": True}),
        LibraryCall("provider.<set>", layout | {"pipeline_dtype": "bfloat16"}),
        LibraryCall("MambaModelProvider.finalize", {}),
        LibraryCall("ModelProviderMixin.initialize_model_parallel", {"seed": 0}),
        LibraryCall("ModelProviderMixin.provide_distributed_model", {"wrap_with_ddp": False}),
        LibraryCall(
            "modelopt.torch.quantization.quantize",
            {
                "model": "<unwrapped model>",
                "config": f"mtq.{cfg['modelopt_config']}" + (" + KV_CACHE_FP8" if cfg["kv_cache_fp8"] else ""),
                "forward_loop": "<calibration loop>",
            },
        ),
        LibraryCall("AutoBridge.save_megatron_model", {"model": "<model>", "path": cfg["megatron_dir"]}),
    ]


def export_calls(hf_model: str, cfg: dict[str, Any], layout: dict[str, int]) -> list[LibraryCall]:
    """The library calls that export one quantized checkpoint to HF (v0.4.0 examples/quantization/export.py)."""
    return [
        LibraryCall("AutoBridge.from_hf_pretrained", {"path": hf_model, "trust_remote_code": True}),
        LibraryCall("AutoBridge.to_megatron_provider", {"load_weights": False}),
        LibraryCall("provider.<set>", layout | {"pipeline_dtype": "bfloat16"}),
        LibraryCall("MambaModelProvider.finalize", {}),
        LibraryCall("ModelProviderMixin.initialize_model_parallel", {"seed": 0}),
        LibraryCall(
            "AutoBridge.load_megatron_model",
            {"path": cfg["megatron_dir"], "mp_overrides": layout, "wrap_with_ddp": False},
        ),
        LibraryCall(
            "modelopt.torch.export.export_mcore_gpt_to_hf",
            {
                "model": "<unwrapped model>",
                "pretrained_model_name_or_path": hf_model,
                "export_extra_modules": False,
                "dtype": "bfloat16",
                "export_dir": cfg["hf_dir"] + ".tmp",
                "moe_router_dtype": "<model.config.moe_router_dtype>",
                "trust_remote_code": True,
            },
        ),
    ]


def build_quantize_job(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """train.yaml + inputs -> model, per-config outputs and library calls, calibration spec."""
    output_dir = Path(output_dir)
    check_container(train_cfg)
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
    quantize_layout = _layout(par["tensor"], par["pipeline"], par["expert"], par["expert_tensor"])
    # export.py loads the quantized checkpoint for export_mcore_gpt_to_hf with pipeline parallelism only
    # (the published Super3 command: --pp 8 on 8 GPUs, v0.4.0 docs/models/llm/nemotron3-super.md)
    export_layout = _layout(1, world, 1, 1)
    configs = []
    for name in quant["configs"]:
        cfg = {
            "name": name,
            "modelopt_config": MODELOPT_CONFIGS[name],
            "kv_cache_fp8": bool(quant["kv_cache_fp8"]),
            "format": "nvfp4" if "nvfp4" in name else "fp8",
            "megatron_dir": str(output_dir / name / "megatron"),
            "hf_dir": str(output_dir / name / "hf"),
        }
        cfg["quantize"] = quantize_calls(str(hf), cfg, quantize_layout)
        cfg["export"] = export_calls(str(hf), cfg, export_layout) if train_cfg["export"]["hf"] else []
        configs.append(cfg)
    calib = inputs["calib"]
    return {
        "hf_model": str(hf),
        "configs": configs,
        "quantize_parallel": quantize_layout,
        "export_parallel": export_layout,
        "calibration": {
            "data_dir": str(calib.path),
            "metadata": calib.metadata or {},
            "size": quant["calib_size"],
            "seq_length": quant["calib_seq_length"],
            "batch_size": quant["calib_batch_size"],
        },
        "export_hf": bool(train_cfg["export"]["hf"]),
    }


def library_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """What ``--dry-run`` prints and ``library.yaml`` keeps (``nemotron.launch.library`` hook)."""
    return library_preview(train_cfg, quantize_library_config)


def quantize_library_config(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Every quantize and export call per config, with the calibration settings."""
    job = build_quantize_job(train_cfg, inputs, output_dir)
    pins = stage_container()
    return {
        "library": {p.library: p.version for p in pins.pins} | {"container": pins.image},
        "calibration": {k: v for k, v in job["calibration"].items() if k != "metadata"},
        "configs": {
            cfg["name"]: {
                "quantize": [c.describe() for c in cfg["quantize"]],
                "export": [c.describe() for c in cfg["export"]],
            }
            for cfg in job["configs"]
        },
    }


def result_metadata(job: dict[str, Any], output_dir: Path, n_calib: int) -> dict[str, Any]:
    """The quantized-model metadata (``nemotron.artifacts.quantized``: ``models.<config>.dir``)."""
    models = {}
    for cfg in job["configs"]:
        details = {
            "modelopt_config": cfg["modelopt_config"],
            "kv_cache_fp8": cfg["kv_cache_fp8"],
            "megatron_dir": relative_to(Path(cfg["megatron_dir"]), output_dir),
        }
        if job["export_hf"]:
            if not (Path(cfg["hf_dir"]) / "config.json").is_file():
                raise RuntimeError(f"HF export missing at {cfg['hf_dir']}; nothing to publish")
            directory = relative_to(Path(cfg["hf_dir"]), output_dir)
        else:
            directory = details["megatron_dir"]
        models[cfg["name"]] = quantized_entry(directory, cfg["format"], **details)
    return {
        "backend": "megatron",
        "library": "modelopt+megatron-bridge",
        "format": "hf" if job["export_hf"] else "megatron",
        "configs": [cfg["name"] for cfg in job["configs"]],
        "models": models,
        "calibration_samples": n_calib,
        "source_model": job["hf_model"],
    }


def preflight(train_cfg: dict[str, Any]) -> list[Any]:
    """Node checks before torchrun: pinned versions (ModelOpt too), inputs, the ModelOpt configs."""
    from super3.megatron import preflight as pf

    def describe(job: dict[str, Any]) -> str:
        cal = job["calibration"]
        n = len(calibration_samples(cal["data_dir"], cal["size"], cal["seq_length"], cal["metadata"]))
        return f"model {job['hf_model']}; {n} calibration sequences"

    checks, job = pf.translation_checks(
        train_cfg, ("megatron-bridge", "megatron-core", "nvidia-modelopt"), build_quantize_job, describe
    )

    def modelopt_configs() -> str:
        import modelopt.torch.quantization as mtq

        names = [cfg["modelopt_config"] for cfg in job["configs"]]
        missing = [n for n in names if not isinstance(getattr(mtq, n, None), dict)]
        if missing:
            raise UserError(f"ModelOpt in this container has no {', '.join(missing)}")
        return ", ".join(names)

    if job is not None:
        checks.append(pf.guarded("modelopt configs", modelopt_configs))
    return checks


def _provider(bridge: Any, load_weights: bool, layout: dict[str, int]) -> Any:
    import torch

    provider = bridge.to_megatron_provider(load_weights=load_weights)
    for key, value in layout.items():
        setattr(provider, key, value)
    provider.pipeline_dtype = torch.bfloat16
    provider.finalize()
    provider.initialize_model_parallel(seed=0)
    return provider


def modelopt_config(cfg: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ModelOpt config dict for one entry: the mtq constant, plus the FP8 KV cache when asked.

    ModelOpt 0.43 (the pin) keeps ``quant_cfg`` as a pattern -> settings dict, which is what
    Megatron-Bridge v0.4.0's quantize_utils.py edits; later ModelOpt releases (0.47 in this repo's dev
    environment) use a list of ``{"quantizer_name", "cfg"}`` entries. Both get the same KV-cache entry.
    """
    import copy

    if base is None:
        import modelopt.torch.quantization as mtq

        base = getattr(mtq, cfg["modelopt_config"])
    out = copy.deepcopy(base)
    if cfg["kv_cache_fp8"]:
        for pattern, settings in KV_CACHE_FP8.items():
            settings = settings | {"num_bits": tuple(settings["num_bits"])}
            if isinstance(out["quant_cfg"], dict):
                out["quant_cfg"][pattern] = settings
            else:
                enabled = {k: v for k, v in settings.items() if k != "enable"}
                out["quant_cfg"].append({"quantizer_name": pattern, "cfg": enabled})
    return out


def _launch(job: dict[str, Any], samples: list[list[int]]) -> None:
    """Quantize and export each config (every torchrun rank runs this; GPU nodes only)."""
    require("megatron.bridge", "Megatron-Bridge")
    require("modelopt", "NVIDIA ModelOpt")
    from super3.megatron.preflight import ensure_pinned

    ensure_pinned(("megatron-bridge", "megatron-core", "nvidia-modelopt"))
    import modelopt.torch.export as mtex
    import modelopt.torch.quantization as mtq
    import torch
    from megatron.bridge import AutoBridge
    from megatron.core import parallel_state
    from megatron.core.utils import unwrap_model
    from modelopt.torch.utils.plugins.megatron_generate import megatron_generate

    batch = job["calibration"]["batch_size"]
    for cfg in job["configs"]:
        bridge = AutoBridge.from_hf_pretrained(job["hf_model"], trust_remote_code=True)
        provider = _provider(bridge, True, job["quantize_parallel"])
        model = provider.provide_distributed_model(wrap_with_ddp=False)
        unwrapped = unwrap_model(model)[0]

        def forward_loop(m: Any) -> None:
            for start in range(0, len(samples), batch):
                for seq in samples[start : start + batch]:
                    megatron_generate(m, torch.tensor([seq], dtype=torch.long).cuda(), osl=1)

        mtq.quantize(model=unwrapped, config=modelopt_config(cfg), forward_loop=forward_loop)
        bridge.save_megatron_model(model=model, path=cfg["megatron_dir"])
        del model, unwrapped
        parallel_state.destroy_model_parallel()
        if not job["export_hf"]:
            continue
        bridge = AutoBridge.from_hf_pretrained(job["hf_model"], trust_remote_code=True)
        _provider(bridge, False, job["export_parallel"])
        loaded = bridge.load_megatron_model(
            path=cfg["megatron_dir"], mp_overrides=job["export_parallel"], wrap_with_ddp=False
        )
        exported = unwrap_model(loaded)[0]
        tmp = Path(cfg["hf_dir"] + ".tmp")
        mtex.export_mcore_gpt_to_hf(
            model=exported,
            pretrained_model_name_or_path=job["hf_model"],
            export_extra_modules=False,
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
