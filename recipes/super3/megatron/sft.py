"""Supervised fine-tuning (full or LoRA) with Megatron-Bridge, then export to Hugging Face.

``build_sft_job`` maps train.yaml onto ``nemotron_3_super_sft_config`` / ``_peft_config`` plus a
``FinetuningDatasetConfig`` over the packed Parquet of the sft-data artifact (Megatron-Bridge reads
``input_ids`` / ``loss_mask`` / ``seq_start_id`` Parquet natively); ``_launch`` runs ``finetune()``
and, for full SFT, exports the last checkpoint to HF with ``AutoBridge.export_ckpt``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nemotron.data_prep.packed_format import require_label_alignment
from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from nemotron.node.ranks import is_rank_zero
from super3.megatron.common import (
    SUPER_HF_MODEL_ID,
    BridgeJob,
    checkpoint_plan,
    iteration_dir,
    latest_iteration,
    locate_model,
    relative_to,
    require,
)
from super3.megatron.pretrain import RECIPE_MODULE, common_overrides

SFT_RECIPES = {"none": "nemotron_3_super_sft_config", "lora": "nemotron_3_super_peft_config"}
SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "val", "validation")}


def _has_parquet(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.parquet"))


def _files_spec(base: Path, files: list[str]) -> str | None:
    """One path or glob that matches exactly ``files`` (Megatron-Bridge takes a file, dir or glob)."""
    import glob as globlib

    paths = [str(Path(f) if Path(f).is_absolute() else base / f) for f in files]
    if not paths:
        return None
    if len(paths) == 1:
        return paths[0]
    parents = {str(Path(p).parent.parent) for p in paths}
    names = {Path(p).name for p in paths}
    if len(parents) == 1 and len(names) == 1:
        pattern = str(Path(parents.pop()) / "*" / names.pop())  # shards/*/train.parquet
        if sorted(globlib.glob(pattern)) == sorted(paths):
            return pattern
    dirs = {str(Path(p).parent) for p in paths}
    if len(dirs) == 1 and sorted(str(q) for q in Path(dirs.pop()).glob("*.parquet")) == sorted(paths):
        return str(Path(paths[0]).parent)
    raise UserError(
        f"the sft-data split files under {base} cannot be named by one path or glob",
        hint="keep one split per directory or one <split>.parquet per shard directory",
    )


def _declared(base: Path, value: Any) -> str | None:
    """A split from metadata: a path string, or data prep's ``{"files": [...], ...}`` entry."""
    if isinstance(value, dict):
        return _files_spec(base, list(value.get("files") or []))
    path = Path(str(value))
    return str(path if path.is_absolute() else base / path)


def packed_splits(data_dir: str | Path, metadata: dict[str, Any] | None = None) -> dict[str, str | None]:
    """Train/valid Parquet locations (file, directory or glob) inside an sft-data artifact.

    Metadata ``splits`` wins: data prep records ``splits.<name>.files`` (``shards/<key>/<name>.parquet``);
    a plain path also works. Otherwise the layout is probed: ``shards/*/<name>.parquet``,
    ``splits/<name>/``, ``<name>/`` or ``<name>*.parquet``; a bare directory of Parquet files is all train.
    """
    base = Path(data_dir)
    declared = (metadata or {}).get("splits") or {}
    found: dict[str, str | None] = {"train": None, "valid": None}
    for split, names in SPLIT_NAMES.items():
        in_meta = [name for name in (split, *names) if name in declared]
        if in_meta:
            found[split] = _declared(base, declared[in_meta[0]])
            continue
        for name in names:
            if any(base.glob(f"shards/*/{name}.parquet")):
                found[split] = str(base / "shards" / "*" / f"{name}.parquet")
                break
            for candidate in (base / "splits" / name, base / name):
                if _has_parquet(candidate):
                    found[split] = str(candidate)
                    break
            if found[split]:
                break
            if any(base.glob(f"{name}*.parquet")):
                found[split] = str(base / f"{name}*.parquet")
                break
    if found["train"] is None and _has_parquet(base) and found["valid"] is None:
        found["train"] = str(base)
    if found["train"] is None:
        raise UserError(
            f"the sft-data artifact at {base} holds no packed Parquet for training",
            hint="re-run `nemotron super3 data prep sft`",
        )
    return found


def build_sft_job(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> BridgeJob:
    """train.yaml + resolved inputs -> recipe call, ConfigContainer overrides, dataset and HF export."""
    output_dir = Path(output_dir)
    method = train_cfg["peft"]["method"]
    expected = SFT_RECIPES[method]
    if train_cfg["recipe"] != expected:
        raise UserError(
            f"peft.method={method} needs recipe {expected}, not {train_cfg['recipe']}",
            hint="use `-c lora` for LoRA, the default config for full SFT",
        )
    for slot in ("model", "data"):
        if slot not in inputs:
            raise UserError(f"sft needs run.{slot}")
    data = inputs["data"]
    data_meta = data.metadata or {}
    pack = train_cfg["data"]["pack_size"]
    if data_meta.get("pack_size") and int(data_meta["pack_size"]) != pack:
        raise UserError(
            f"the sft-data artifact was packed to {data_meta['pack_size']} tokens but data.pack_size is {pack}",
            hint=f"set data.pack_size={data_meta['pack_size']} or re-run data prep",
        )
    require_label_alignment(data_meta)  # Megatron-Bridge gates label j+1 with loss_mask[j]
    splits = packed_splits(data.path, data_meta)
    overrides = common_overrides(train_cfg, output_dir)
    recipe_kwargs: dict[str, Any] = {}
    if method == "lora":
        lora = train_cfg["peft"]["lora"]
        recipe_kwargs["peft_scheme"] = "lora"
        overrides.update(
            {
                "peft.dim": lora["rank"],
                "peft.alpha": lora["alpha"],
                "peft.dropout": lora["dropout"],
                "peft.target_modules": list(lora["target_modules"]),
            }
        )
    save_dir, ckpt, resume, notes = checkpoint_plan(train_cfg["checkpoint"], output_dir, inputs["model"])
    overrides.update(ckpt)
    dataset = (
        "FinetuningDatasetConfig",
        {
            "dataset_root": str(data.path),
            "seq_length": train_cfg["train"]["seq_length"],
            "seed": train_cfg["seed"],
            "dataloader_type": "batch",
            "do_validation": splits["valid"] is not None,
            "do_test": False,
            "packed_sequence_specs": (
                "PackedSequenceSpecs",
                {
                    "packed_sequence_size": pack,
                    "packed_train_data_path": splits["train"],
                    "packed_val_data_path": splits["valid"],
                },
            ),
        },
    )
    hf_export = None
    if train_cfg["export"]["hf"]:
        if method == "lora":
            notes.append("LoRA: the adapter checkpoint is published; HF export covers full SFT only")
        else:
            template = locate_model(inputs["model"]).hf
            hf_dir = Path(train_cfg["export"]["hf_dir"] or output_dir / "hf")
            hf_export = {"hf_model_id": str(template) if template else SUPER_HF_MODEL_ID, "hf_dir": str(hf_dir)}
    return BridgeJob(
        recipe=expected,
        entry="finetune",
        overrides=overrides,
        save_dir=save_dir,
        recipe_kwargs=recipe_kwargs,
        dataset=dataset,
        resume=resume,
        hf_export=hf_export,
        notes=notes,
    )


def result_metadata(job: BridgeJob, train_cfg: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    iteration = latest_iteration(job.save_dir)
    if iteration is None:
        raise RuntimeError(f"fine-tuning ended without a checkpoint in {job.save_dir}; nothing to publish")
    meta: dict[str, Any] = {
        "format": "megatron+hf" if job.hf_export else "megatron",
        "library": "megatron-bridge",
        "recipe": job.recipe,
        "peft": train_cfg["peft"]["method"],
        "megatron_checkpoint": relative_to(job.save_dir, output_dir),
        "iteration": iteration,
        "resumed": job.resume,
        "pack_size": train_cfg["data"]["pack_size"],
    }
    if job.hf_export:
        hf_dir = Path(job.hf_export["hf_dir"])
        if not (hf_dir / "config.json").is_file():
            raise RuntimeError(f"HF export missing at {hf_dir}; nothing to publish")
        meta["hf_dir"] = relative_to(hf_dir, output_dir)
    return meta


def _build_dataset(spec: tuple[str, dict[str, Any]]) -> Any:
    """Instantiate ``(class name, kwargs)`` specs from megatron.bridge (nested specs first)."""
    from megatron.bridge.data.datasets.packed_sequence import PackedSequenceSpecs
    from megatron.bridge.training.config import FinetuningDatasetConfig

    classes = {"FinetuningDatasetConfig": FinetuningDatasetConfig, "PackedSequenceSpecs": PackedSequenceSpecs}
    name, kwargs = spec
    built = {k: _build_dataset(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    return classes[name](**built)


def _export_hf(job: BridgeJob) -> None:
    """Megatron checkpoint -> HF safetensors (rank 0, one process), written to a temp dir then renamed."""
    from megatron.bridge import AutoBridge

    hf_dir = Path(job.hf_export["hf_dir"])
    iteration = latest_iteration(job.save_dir)
    tmp = hf_dir.with_name(hf_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    bridge = AutoBridge.from_hf_pretrained(job.hf_export["hf_model_id"], trust_remote_code=True)
    bridge.export_ckpt(megatron_path=str(iteration_dir(job.save_dir, iteration)), hf_path=str(tmp))
    shutil.rmtree(hf_dir, ignore_errors=True)
    tmp.rename(hf_dir)


def _launch(job: BridgeJob) -> None:
    """Recipe config + overrides + packed-Parquet dataset -> ``finetune()``; then HF export (GPU nodes only)."""
    require("megatron.bridge", "Megatron-Bridge")
    import importlib

    import torch
    from megatron.bridge.training.finetune import finetune
    from megatron.bridge.training.gpt_step import forward_step

    from super3.megatron.common import apply_overrides

    recipe = getattr(importlib.import_module(RECIPE_MODULE), job.recipe)
    cfg = recipe(**job.recipe_kwargs)
    cfg.dataset = _build_dataset(job.dataset)
    apply_overrides(cfg, job.overrides)
    finetune(config=cfg, forward_step_func=forward_step)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if job.hf_export and is_rank_zero():
        _export_hf(job)


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Node entry (``super3.megatron.sft``)."""
    log = get_logger()
    job = build_sft_job(train_cfg, inputs, output_dir)
    for note in job.notes:
        log.info(note)
    log.info("Megatron-Bridge %s(%s) -> finetune(), %d overrides", job.recipe, job.recipe_kwargs, len(job.overrides))
    _launch(job)
    if not is_rank_zero():
        return {}
    return result_metadata(job, train_cfg, Path(output_dir))
