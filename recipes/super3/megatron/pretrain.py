"""Pretraining (phase 1, phase 2, long context) with Megatron-Bridge's Nemotron 3 Super recipe.

``build_pretrain_job`` maps train.yaml onto the recipe's ``ConfigContainer`` (pure, tested on CPU);
``_launch`` builds the recipe config, applies the overrides and calls ``pretrain()`` (GPU only).
The published model artifact is the job's output directory: ``checkpoints/`` (Megatron
``torch_dist``, with ``latest_checkpointed_iteration.txt``) plus the iteration in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from super3.megatron.common import (
    PRECISION_PRESETS,
    BridgeJob,
    build_bridge_config,
    check_container,
    checkpoint_plan,
    latest_iteration,
    library_preview,
    model_overrides,
    optimizer_overrides,
    parallel_overrides,
    recompute_overrides,
    relative_to,
    tokenizer_overrides,
    wandb_overrides,
)

SPLITS = ("train", "valid", "test")


def _parse_split(entries: list[Any], data_dir: Path, split: str) -> tuple[list[str], list[float]] | None:
    """``[w, prefix, w, prefix, ...]`` -> ``([prefix, ...], [w, ...])`` with absolute, existing prefixes."""
    if not entries:
        return None
    if len(entries) % 2:
        raise UserError(f"{data_dir}/blend.json: '{split}' must alternate weight, prefix (odd length)")
    prefixes: list[str] = []
    weights: list[float] = []
    for weight, prefix in zip(entries[0::2], entries[1::2], strict=True):
        try:
            weights.append(float(weight))
        except (TypeError, ValueError):
            raise UserError(f"{data_dir}/blend.json: '{split}' weight {weight!r} is not a number") from None
        path = Path(str(prefix))
        path = path if path.is_absolute() else data_dir / path
        for suffix in (".bin", ".idx"):
            if not path.with_name(path.name + suffix).is_file():
                raise UserError(
                    f"{data_dir}/blend.json: '{split}' names {path}{suffix}, which does not exist",
                    hint="re-run `nemotron super3 data prep pretrain`",
                )
        prefixes.append(str(path))
    return prefixes, weights


def blend_per_split(data_dir: str | Path) -> list[tuple[list[str], list[float]] | None]:
    """blend.json -> megatron-core ``blend_per_split`` (train, valid, test); train is required."""
    data_dir = Path(data_dir)
    path = data_dir / "blend.json"
    try:
        blend = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"the pretrain-data artifact has no blend.json at {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(blend, dict):
        raise UserError(f"{path} must map split names to [weight, prefix, ...] lists")
    out = [_parse_split(blend.get(split) or [], data_dir, split) for split in SPLITS]
    if out[0] is None:
        raise UserError(f"{path} has no 'train' blend")
    return out


def common_overrides(train_cfg: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Keys shared by pretrain and SFT: model, parallelism, batch, schedule, precision, logging, seed."""
    train, opt = train_cfg["train"], train_cfg["optimizer"]
    out: dict[str, Any] = {}
    out.update(model_overrides(train_cfg["model"]))
    out.update(parallel_overrides(train_cfg["parallel"]))
    out.update(recompute_overrides(train.get("recompute", "none")))
    out.update(
        {
            "model.seq_length": train["seq_length"],
            "train.train_iters": train["train_iters"],
            "train.global_batch_size": train["global_batch_size"],
            "train.micro_batch_size": train["micro_batch_size"],
            "validation.eval_interval": train["eval_interval"],
            "validation.eval_iters": train["eval_iters"],
            "mixed_precision": PRECISION_PRESETS[train_cfg["precision"]],
            "logger.log_interval": train_cfg["logging"]["log_interval"],
            "logger.tensorboard_dir": str(output_dir / "tb_logs"),
            "rng.seed": train_cfg["seed"],
        }
    )
    if train.get("exit_interval"):
        out["train.exit_interval"] = train["exit_interval"]
    out.update(optimizer_overrides(opt, train["train_iters"]))
    out.update(wandb_overrides(train_cfg, output_dir))
    return out


def build_pretrain_job(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> BridgeJob:
    """train.yaml + resolved inputs -> the recipe call and the ConfigContainer overrides."""
    output_dir = Path(output_dir)
    check_container(train_cfg)
    if train_cfg["recipe"] != "nemotron_3_super_pretrain_config":
        raise UserError(
            f"recipe '{train_cfg['recipe']}' is not a pretraining recipe", hint="use nemotron_3_super_pretrain_config"
        )
    if "data" not in inputs:
        raise UserError("pretrain needs run.data (a pretrain-data artifact)")
    data = inputs["data"]
    overrides = common_overrides(train_cfg, output_dir)
    overrides.update(
        {
            "dataset.seq_length": train_cfg["train"]["seq_length"],
            "dataset.blend": None,
            "dataset.blend_per_split": blend_per_split(data.path),
            "dataset.split": None,
            "dataset.path_to_cache": str(output_dir / "index_cache"),
        }
    )
    overrides.update(tokenizer_overrides(data.metadata or {}, train_cfg["model"]["vocab_size"], "pretrain"))
    save_dir, ckpt, resume, notes = checkpoint_plan(train_cfg["checkpoint"], output_dir, inputs.get("model"))
    overrides.update(ckpt)
    return BridgeJob(
        recipe=train_cfg["recipe"], entry="pretrain", overrides=overrides, save_dir=save_dir, resume=resume, notes=notes
    )


def result_metadata(job: BridgeJob, train_cfg: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """The model artifact's metadata: where the checkpoint is and which iteration it holds."""
    iteration = latest_iteration(job.save_dir)
    if iteration is None:
        raise RuntimeError(f"training ended without a checkpoint in {job.save_dir}; nothing to publish")
    train = train_cfg["train"]
    return {
        "format": "megatron",
        "library": "megatron-bridge",
        "recipe": job.recipe,
        "phase": train_cfg.get("phase"),
        "megatron_checkpoint": relative_to(job.save_dir, output_dir),
        "iteration": iteration,
        "tokens_seen": iteration * train["global_batch_size"] * train["seq_length"],
        "resumed": job.resume,
        "precision": train_cfg["precision"],
        "parallel": train_cfg["parallel"],
    }


def library_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """What ``--dry-run`` prints and ``library.yaml`` keeps (``nemotron.launch.library`` hook)."""
    return library_preview(train_cfg, lambda cfg, inputs, out: build_pretrain_job(cfg, inputs, out).library_config())


def preflight(train_cfg: dict[str, Any]) -> list[Any]:
    """Node checks before torchrun: pinned versions, inputs and tokenizer, the recipe's own validation."""
    from super3.megatron import preflight as pf

    checks, job = pf.translation_checks(
        train_cfg,
        ("megatron-bridge", "megatron-core"),
        build_pretrain_job,
        lambda job: "; ".join(job.notes) or "inputs resolved, blend.json shards present",
    )
    if job is not None:
        checks.append(pf.guarded("tokenizer", lambda: pf.load_tokenizer(job, train_cfg)))
        checks.append(pf.guarded("config", lambda: pf.validate_bridge_config(job, train_cfg)))
    return checks
    output_dir = Path((train_cfg.get("job") or {}).get("output_dir") or ".")
    state: dict[str, Any] = {}

    def translate() -> str:
        state["job"] = build_pretrain_job(train_cfg, pf.resolved_inputs(train_cfg), output_dir)
        return "; ".join(state["job"].notes) or "inputs resolved, blend.json shards present"

    checks.append(pf.guarded("inputs", translate))
    if "job" in state:
        checks.append(pf.guarded("tokenizer", lambda: pf.load_tokenizer(state["job"], train_cfg)))
        checks.append(pf.guarded("config", lambda: pf.validate_bridge_config(state["job"], train_cfg)))
    return checks


def _launch(job: BridgeJob) -> None:
    """Build the recipe config, apply the overrides and run Megatron-Bridge (GPU nodes only)."""
    cfg = build_bridge_config(job)
    from megatron.bridge.training.gpt_step import forward_step
    from megatron.bridge.training.pretrain import pretrain

    pretrain(config=cfg, forward_step_func=forward_step)
    import torch

    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Node entry (``super3.megatron.pretrain``): translate, train, report the checkpoint."""
    log = get_logger()
    job = build_pretrain_job(train_cfg, inputs, output_dir)
    for note in job.notes:
        log.info(note)
    log.info("Megatron-Bridge %s(%s) with %d overrides", job.recipe, job.recipe_kwargs, len(job.overrides))
    _launch(job)
    return result_metadata(job, train_cfg, Path(output_dir))
