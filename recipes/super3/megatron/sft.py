"""Supervised fine-tuning (full or LoRA) with Megatron-Bridge, then export to Hugging Face.

``build_sft_job`` maps train.yaml onto ``nemotron_3_super_sft_config`` / ``_peft_config`` plus a
``FinetuningDatasetConfig`` over the packed Parquet of the sft-data artifact (Megatron-Bridge reads
``input_ids`` / ``loss_mask`` / ``seq_start_id`` Parquet natively); ``_launch`` runs ``finetune()``
and exports the last checkpoint to HF with ``AutoBridge.export_ckpt``. LoRA first merges the adapter
into the base weights with Megatron-Bridge's ``examples/peft/merge_lora.py`` (v0.4.0), so a LoRA run
also ends in a usable HF model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from nemotron.data_prep.packed_format import require_label_alignment
from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from nemotron.node.ranks import is_rank_zero
from super3.megatron.common import (
    SUPER_HF_MODEL_ID,
    BridgeJob,
    build_bridge_config,
    check_container,
    checkpoint_plan,
    hf_export_call,
    iteration_dir,
    latest_iteration,
    library_preview,
    locate_model,
    relative_to,
    tokenizer_overrides,
)
from super3.megatron.common import build_dataset as build_dataset  # noqa: F401 - used by tests/gpu
from super3.megatron.pretrain import common_overrides

SFT_RECIPES = {"none": "nemotron_3_super_sft_config", "lora": "nemotron_3_super_peft_config"}
SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "val", "validation")}
BRIDGE_HOME = "/opt/Megatron-Bridge"
"""Where the NeMo container keeps the Megatron-Bridge checkout and its examples/ (v0.4.0
docs/models/llm/nemotron3-super.md); ``MEGATRON_BRIDGE_HOME`` overrides it."""


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
    check_container(train_cfg)
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
    # the tokenizer data prep packed with, not the recipe's hub id (no hub access needed on nodes)
    overrides.update(tokenizer_overrides(data_meta, train_cfg["model"]["vocab_size"], "sft"))
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
    if method == "lora" and not ckpt["checkpoint.pretrained_checkpoint"]:
        # a LoRA checkpoint holds the adapters only: a requeued run still loads the frozen base from
        # pretrained_checkpoint and the adapters + optimizer from load
        base = locate_model(inputs["model"]).megatron
        ckpt["checkpoint.pretrained_checkpoint"] = str(base) if base else None
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
    hf_export = lora_merge = None
    if train_cfg["export"]["hf"]:
        template = locate_model(inputs["model"]).hf
        hf_model_id = str(template) if template else SUPER_HF_MODEL_ID
        hf_export = {
            "hf_model_id": hf_model_id,
            "hf_dir": str(Path(train_cfg["export"]["hf_dir"] or output_dir / "hf")),
        }
        if method == "lora":
            merged = output_dir / "merged"
            par = train_cfg["parallel"]
            # v0.4.0 examples/peft/merge_lora.py flags; --cpu: it runs after training in one process
            lora_merge = {
                "--lora-checkpoint": "<last iteration of checkpoint.save>",
                "--output": str(merged),
                "--hf-model-path": hf_model_id,
                "--pretrained": ckpt["checkpoint.pretrained_checkpoint"],
                "--tp": 1,
                "--pp": 1,
                "--ep": 1,
                "--cpu": True,
            }
            hf_export["megatron_path"] = str(merged)
            notes.append(
                f"LoRA: the adapter is merged into the base (CPU, one process; TP{par['tensor']} ignored) and exported"
            )
    return BridgeJob(
        recipe=expected,
        entry="finetune",
        overrides=overrides,
        save_dir=save_dir,
        recipe_kwargs=recipe_kwargs,
        dataset=dataset,
        resume=resume,
        hf_export=hf_export,
        lora_merge=lora_merge,
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
    if job.lora_merge:
        # the usable model is the merged checkpoint; the adapter-only checkpoint stays for reference
        merged = Path(job.lora_merge["--output"])
        if latest_iteration(merged) is None:
            raise RuntimeError(f"LoRA merge left no checkpoint in {merged}; nothing to publish")
        meta["adapter_checkpoint"] = meta["megatron_checkpoint"]
        meta["megatron_checkpoint"] = relative_to(merged, output_dir)
    if job.hf_export:
        hf_dir = Path(job.hf_export["hf_dir"])
        if not (hf_dir / "config.json").is_file():
            raise RuntimeError(f"HF export missing at {hf_dir}; nothing to publish")
        meta["hf_dir"] = relative_to(hf_dir, output_dir)
    return meta


def merge_script() -> Path:
    return Path(os.environ.get("MEGATRON_BRIDGE_HOME", BRIDGE_HOME)) / "examples" / "peft" / "merge_lora.py"


def merge_argv(job: BridgeJob) -> list[str]:
    """The merge_lora.py command line for the job's last LoRA iteration (``--cpu`` is a bare flag)."""
    flags = dict(job.lora_merge)
    flags["--lora-checkpoint"] = str(iteration_dir(job.save_dir, latest_iteration(job.save_dir)))
    argv = [sys.executable, str(merge_script())]
    for flag, value in flags.items():
        if value is True:
            argv.append(flag)
        elif value not in (None, False):
            argv += [flag, str(value)]
    return argv


def _merge_lora(job: BridgeJob) -> None:
    """Adapter + base -> one dense Megatron checkpoint (rank 0, a separate process, no process group)."""
    merged = Path(job.lora_merge["--output"])
    shutil.rmtree(merged, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    subprocess.run(merge_argv(job), check=True, env=env)


def _export_hf(job: BridgeJob) -> None:
    """Megatron checkpoint -> HF safetensors (rank 0, one process), written to a temp dir then renamed."""
    from megatron.bridge import AutoBridge

    call = hf_export_call(job)
    hf_dir = Path(call.kwargs["hf_path"])
    source = Path(call.kwargs["megatron_path"])
    iteration = latest_iteration(source)
    tmp = hf_dir.with_name(hf_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    bridge = AutoBridge.from_hf_pretrained(job.hf_export["hf_model_id"], trust_remote_code=True)
    kwargs = call.kwargs | {"hf_path": str(tmp)}
    if iteration is not None:
        kwargs["megatron_path"] = str(iteration_dir(source, iteration))
    bridge.export_ckpt(**kwargs)
    shutil.rmtree(hf_dir, ignore_errors=True)
    tmp.rename(hf_dir)


def library_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """What ``--dry-run`` prints and ``library.yaml`` keeps (``nemotron.launch.library`` hook)."""
    return library_preview(train_cfg, lambda cfg, inputs, out: build_sft_job(cfg, inputs, out).library_config())


def preflight(train_cfg: dict[str, Any]) -> list[Any]:
    """Node checks before torchrun: pinned versions, inputs, merge script, the recipe's own validation."""
    from super3.megatron import preflight as pf

    checks, job = pf.translation_checks(
        train_cfg,
        ("megatron-bridge", "megatron-core"),
        build_sft_job,
        lambda job: "; ".join(job.notes) or "inputs resolved",
    )
    if job is not None and job.lora_merge:
        script = merge_script()
        checks.append(pf.check("merge_lora", script.is_file(), str(script)))
    if job is not None:
        checks.append(pf.guarded("tokenizer", lambda: pf.load_tokenizer(job, train_cfg)))
        checks.append(pf.guarded("config", lambda: pf.validate_bridge_config(job, train_cfg)))
    return checks


def _launch(job: BridgeJob) -> None:
    """Recipe config + overrides + packed-Parquet dataset -> ``finetune()``; then merge/export (GPU nodes only)."""
    cfg = build_bridge_config(job)
    import torch
    from megatron.bridge.training.finetune import finetune
    from megatron.bridge.training.gpt_step import forward_step

    finetune(config=cfg, forward_step_func=forward_step)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if is_rank_zero():
        if job.lora_merge:
            _merge_lora(job)
        if job.hf_export:
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
