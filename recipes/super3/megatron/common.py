"""Translation pieces shared by the Megatron-Bridge stages (pretrain, SFT, quantize).

Everything here is pure: it maps train.yaml sections onto Megatron-Bridge ``ConfigContainer`` field
paths (``train.train_iters``, ``model.tensor_model_parallel_size``, ...) and finds checkpoints and
model directories on disk. The translation targets the Megatron-Bridge that
``nemotron.upstream.pins.MEGATRON_STAGES_CONTAINER`` ships; its names (and which ones the library
requires) are checked by tests against ``api_reference/megatron_bridge.json``, read at that pin's tag.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

SUPER_HF_MODEL_ID = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16"
"""``NEMOTRON_3_SUPER_HF_MODEL_ID`` of the Megatron-Bridge recipe: architecture template for HF export."""

RECIPE_MODULE = "megatron.bridge.recipes.nemotronh.nemotron_3_super"
"""Megatron-Bridge v0.4.0 src/megatron/bridge/recipes/nemotronh/nemotron_3_super.py."""

TRACKER_FILE = "latest_checkpointed_iteration.txt"
"""Megatron writes this next to ``iter_XXXXXXX/`` once a checkpoint is complete."""

PRECISION_PRESETS = {
    "bf16": "bf16_mixed",
    "fp8": "nemotron_h_bf16_with_fp8_current_scaling_mixed",
    "nvfp4": "nemotron_3_super_bf16_with_nvfp4_mixed",
}
"""train.yaml ``precision`` -> Megatron-Bridge ``mixed_precision`` preset (training/mixed_precision.py)."""

LR_DECAY_STYLES = {"wsd": "WSD", "cosine": "cosine", "constant": "constant", "linear": "linear"}

MODEL_FIELDS = {
    "num_layers": "num_layers",
    "hybrid_pattern": "hybrid_override_pattern",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "num_query_groups": "num_query_groups",
    "kv_channels": "kv_channels",
    "mamba_num_heads": "mamba_num_heads",
    "mamba_head_dim": "mamba_head_dim",
    "mamba_state_dim": "mamba_state_dim",
    "mamba_num_groups": "mamba_num_groups",
    "num_moe_experts": "num_moe_experts",
    "moe_router_topk": "moe_router_topk",
    "moe_ffn_hidden_size": "moe_ffn_hidden_size",
    "moe_latent_size": "moe_latent_size",
    "moe_shared_expert_intermediate_size": "moe_shared_expert_intermediate_size",
    "vocab_size": "vocab_size",
    "mtp_num_layers": "mtp_num_layers",
}
"""train.yaml ``model.*`` -> Megatron model-provider fields (megatron-core TransformerConfig / Bridge MambaModelProvider)."""


@dataclass(frozen=True)
class LibraryCall:
    """One call into a library, named as ``api_reference`` records it (``AutoBridge.export_ckpt``,
    ``modelopt.torch.quantization.quantize``) with the keyword arguments it receives. ``_launch``
    passes exactly these, and the tests check them against the pinned signature (no unknown argument,
    every required one present)."""

    function: str
    kwargs: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"call": self.function, "kwargs": self.kwargs}


@dataclass
class BridgeJob:
    """Everything ``_launch`` needs to build and run one Megatron-Bridge training job."""

    recipe: str  # function in megatron.bridge.recipes.nemotronh.nemotron_3_super
    entry: str  # "pretrain" | "finetune"
    overrides: dict[str, Any]  # dotted ConfigContainer paths -> values, applied after the recipe
    save_dir: Path
    recipe_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: tuple[str, dict[str, Any]] | None = None  # (config class, kwargs) replacing cfg.dataset
    resume: bool = False  # the save dir already held a checkpoint (requeued job)
    hf_export: dict[str, Any] | None = None  # {"hf_model_id", "hf_dir"} for SFT
    lora_merge: dict[str, Any] | None = None  # examples/peft/merge_lora.py flags for LoRA SFT
    notes: list[str] = field(default_factory=list)

    def library_config(self) -> dict[str, Any]:
        """The exact library-level configuration the node builds: ``--dry-run`` prints it and the job
        directory keeps it as ``library.yaml``. Values are plain (paths as strings)."""
        pins = stage_container()
        out: dict[str, Any] = {
            "library": {p.library: p.version for p in pins.pins} | {"container": pins.image},
            "recipe": f"{RECIPE_MODULE}.{self.recipe}",
            "recipe_kwargs": dict(self.recipe_kwargs),
            "overrides": {k: _plain(v) for k, v in self.overrides.items()},
        }
        if self.dataset is not None:
            out["dataset"] = _spec_dict(self.dataset)
        out["entry"] = f"megatron.bridge.training.{self.entry}.{self.entry}"
        after = []
        if self.lora_merge:
            after.append({"script": "examples/peft/merge_lora.py", "flags": dict(self.lora_merge)})
        if self.hf_export:
            after.append(hf_export_call(self).describe())
        if after:
            out["then"] = after
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _spec_dict(spec: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    name, kwargs = spec
    return {"class": name} | {k: _spec_dict(v) if isinstance(v, tuple) else _plain(v) for k, v in kwargs.items()}


def library_preview(train_cfg: dict[str, Any], translate: Any) -> dict[str, Any]:
    """``library.yaml`` for a Megatron-Bridge stage (``nemotron.launch.library`` hook): the node's own
    translation run on the inputs as the registry resolves them now.

    Why resolve here: the overrides depend on the inputs (blend shards, checkpoint paths, tokenizer),
    so the preview is exact only on real inputs. An input not in the registry yet (a stage planned
    ahead of its producer) gives a ``pending`` note instead; any other translation error is the same
    one-line ``UserError`` the node would raise, and stops the submit.
    """
    from nemotron.artifacts.node import resolve_inputs

    output_dir = Path((train_cfg.get("job") or {}).get("output_dir") or "<output_dir>")
    try:
        inputs = resolve_inputs(train_cfg)
    except UserError as exc:
        pins = stage_container()
        return {
            "library": {p.library: p.version for p in pins.pins} | {"container": pins.image},
            "pending": f"built on the node once the inputs resolve: {exc.one_line()}",
        }
    return translate(train_cfg, inputs, output_dir)


def hf_export_call(job: BridgeJob) -> LibraryCall:
    """``AutoBridge.export_ckpt`` of the job's last checkpoint (v0.4.0 models/conversion/auto_bridge.py)."""
    source = job.hf_export.get("megatron_path") or str(job.save_dir)
    return LibraryCall("AutoBridge.export_ckpt", {"megatron_path": source, "hf_path": job.hf_export["hf_dir"]})


def stage_container():
    """The pinned container row the Megatron-Bridge stages are translated for."""
    from nemotron.upstream.pins import MEGATRON_STAGES_CONTAINER, container

    return container(MEGATRON_STAGES_CONTAINER)


def check_container(train_cfg: dict[str, Any]) -> None:
    """Refuse a container whose pinned Megatron-Bridge is not the one this translation targets.

    Checked on the submitting machine (dry-run, submit) for images in the pins table; images not in the
    table are checked by the node preflight, which reads the version inside the container.
    """
    from nemotron.upstream.pins import CONTAINERS

    image = (train_cfg.get("resources") or {}).get("container")
    target = stage_container()
    row = CONTAINERS.get(image or "")
    if row is None or row.image == target.image:
        return
    want, have = target.pin("megatron-bridge"), row.pin("megatron-bridge")
    if have.version != want.version:
        raise UserError(
            f"resources.container={image} ships Megatron-Bridge {have.version} ({have.tag}), "
            f"but this stage is written for {want.version} ({want.tag})",
            hint=f"set resources.container={target.image}",
        )


def require(module: str, what: str) -> None:
    """Fail with one line when a GPU library is missing (the job ran outside its container)."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise UserError(
            f"{what} ({module}) is not installed in this environment",
            hint="the megatron backend runs inside the stage container (resources.container) on GPU nodes",
        )


TOKENIZER_TYPES = {"hf": "HuggingFaceTokenizer", "tiktoken": "TikTokenizer"}
"""Data prep's ``tokenizer.kind`` -> Megatron-Bridge ``TokenizerConfig.tokenizer_type`` (v0.4.0
training/tokenizers/tokenizer.py builds both from ``tokenizer_model``)."""


def tokenizer_overrides(data_meta: dict[str, Any], model_vocab: int, data_stage: str) -> dict[str, Any]:
    """The tokenizer data prep used (``tokenizer.path``/``kind``/``vocab_size`` in the data's metadata).

    Why not the recipe's: it names a hub id (``nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16``), so nodes
    would need hub access and could tokenize differently from the data. Data prep records the
    tokenizer *file* (``tokenizer.json`` or a tiktoken rank file); an HF tokenizer loads from the
    directory holding it. A vocabulary larger than the model's embedding is refused.
    """
    tok = data_meta.get("tokenizer") or {}
    vocab = tok.get("vocab_size")
    if vocab and int(vocab) > model_vocab:
        raise UserError(
            f"the data was tokenized with a {vocab}-token vocabulary but model.vocab_size is {model_vocab}",
            hint="prepare the data with the model's tokenizer",
        )
    if not tok.get("path"):
        raise UserError(
            f"the {data_stage}-data artifact records no tokenizer (metadata tokenizer.path)",
            hint=f"re-run `nemotron super3 data prep {data_stage}`",
        )
    kind = tok.get("kind") or "hf"
    if kind not in TOKENIZER_TYPES:
        raise UserError(f"the {data_stage}-data tokenizer kind {kind!r} has no Megatron-Bridge tokenizer type")
    path = Path(str(tok["path"]))
    model = path.parent if kind == "hf" and path.name == "tokenizer.json" else path
    return {"tokenizer.tokenizer_type": TOKENIZER_TYPES[kind], "tokenizer.tokenizer_model": str(model)}


def latest_iteration(ckpt_dir: str | Path | None) -> int | None:
    """The iteration recorded in ``latest_checkpointed_iteration.txt``, or ``None`` when there is none."""
    if ckpt_dir is None:
        return None
    tracker = Path(ckpt_dir) / TRACKER_FILE
    try:
        text = tracker.read_text().strip()
    except OSError:
        return None
    if text == "release":
        return 0
    try:
        return int(text)
    except ValueError:
        return None


def iteration_dir(ckpt_dir: str | Path, iteration: int) -> Path:
    """Megatron's directory for one saved iteration: ``iter_0000200``."""
    return Path(ckpt_dir) / f"iter_{iteration:07d}"


@dataclass(frozen=True)
class ModelLocation:
    """Where a model artifact keeps its Megatron checkpoint and/or its Hugging Face export."""

    megatron: Path | None
    hf: Path | None
    iteration: int | None


def _rel(base: Path, value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def locate_model(artifact: Any) -> ModelLocation:
    """Find the Megatron checkpoint root and the HF directory of a model artifact.

    Metadata ``megatron_checkpoint`` / ``hf_dir`` win; otherwise the layout is probed: ``checkpoints/``
    or the artifact dir itself holding ``latest_checkpointed_iteration.txt``, and ``hf/`` or the dir
    itself holding ``config.json`` (tiny and HF-only artifacts).
    """
    base = Path(artifact.path)
    meta = artifact.metadata or {}
    megatron = _rel(base, meta["megatron_checkpoint"]) if meta.get("megatron_checkpoint") else None
    if megatron is None:
        for candidate in (base / "checkpoints", base):
            if (candidate / TRACKER_FILE).is_file():
                megatron = candidate
                break
    hf = _rel(base, meta["hf_dir"]) if meta.get("hf_dir") else None
    if hf is None:
        for candidate in (base / "hf", base):
            if (candidate / "config.json").is_file():
                hf = candidate
                break
    return ModelLocation(megatron, hf, latest_iteration(megatron))


def parallel_overrides(parallel: dict[str, Any]) -> dict[str, Any]:
    """``parallel:`` -> model-provider parallelism fields (megatron-core ModelParallelConfig names)."""
    return {
        "model.tensor_model_parallel_size": parallel["tensor"],
        "model.pipeline_model_parallel_size": parallel["pipeline"],
        "model.context_parallel_size": parallel["context"],
        "model.expert_model_parallel_size": parallel["expert"],
        "model.expert_tensor_parallel_size": parallel["expert_tensor"],
        "model.sequence_parallel": bool(parallel["sequence_parallel"]),
    }


def recompute_overrides(recompute: str) -> dict[str, Any]:
    """``train.recompute`` -> megatron-core TransformerConfig activation-recompute fields."""
    if recompute == "none":
        return {}
    if recompute == "selective":
        return {"model.recompute_granularity": "selective"}
    return {"model.recompute_granularity": "full", "model.recompute_method": "uniform", "model.recompute_num_layers": 1}


def model_overrides(model: dict[str, Any]) -> dict[str, Any]:
    """``model:`` keys that differ from Nemotron 3 Super -> provider fields; the recipe keeps the rest.

    The recipe builds the published architecture from its HF config, so the default train.yaml adds
    nothing here. A key without a verified provider field cannot be changed for this backend.
    """
    from nemotron.config.schemas.training import ModelSection

    published = ModelSection().model_dump()
    out: dict[str, Any] = {}
    for key, value in model.items():
        if published.get(key) == value:
            continue
        if key == "untie_embeddings":
            out["model.share_embeddings_and_output_weights"] = not value
        elif key in MODEL_FIELDS:
            out[f"model.{MODEL_FIELDS[key]}"] = value
        else:
            raise UserError(
                f"model.{key}={value!r} cannot be changed for the megatron backend",
                hint=f"the Megatron-Bridge recipe fixes it at {published.get(key)!r}",
            )
    return out


def optimizer_overrides(opt: dict[str, Any], train_iters: int) -> dict[str, Any]:
    """``optimizer:`` -> ``optimizer.*`` (megatron-core OptimizerConfig) and ``scheduler.*`` (Bridge SchedulerConfig)."""
    style = LR_DECAY_STYLES[opt["lr_schedule"]]
    decay_iters = opt.get("decay_iters") or train_iters
    out: dict[str, Any] = {
        "optimizer.lr": opt["lr"],
        "optimizer.min_lr": opt["min_lr"],
        "optimizer.weight_decay": opt["weight_decay"],
        "optimizer.adam_beta1": opt["adam_beta1"],
        "optimizer.adam_beta2": opt["adam_beta2"],
        "optimizer.clip_grad": opt["clip_grad"],
        "scheduler.lr_decay_style": style,
        "scheduler.lr_warmup_iters": opt["warmup_iters"],
        "scheduler.lr_decay_iters": decay_iters,
        "scheduler.start_weight_decay": opt["weight_decay"],
        "scheduler.end_weight_decay": opt["weight_decay"],
        # The config, not a loaded checkpoint, decides the schedule (phase 2 resumes phase 1 with the same one).
        "scheduler.override_opt_param_scheduler": True,
    }
    if style == "WSD":
        wsd = opt.get("wsd_decay_iters") or max(1, round(opt["decay_iters_fraction"] * decay_iters))
        out["scheduler.lr_wsd_decay_iters"] = wsd
        out["scheduler.lr_wsd_decay_style"] = opt["wsd_decay_style"]
    return out


def wandb_overrides(train_cfg: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Megatron's own W&B logging when the job carries ``[wandb]`` settings (secrets stay in the env)."""
    job = train_cfg.get("job") or {}
    settings = job.get("wandb") or train_cfg.get("wandb") or {}
    if not (train_cfg.get("logging") or {}).get("wandb") or not settings.get("project"):
        return {}
    if settings.get("mode") == "disabled":
        return {}
    return {
        "logger.wandb_project": settings["project"],
        "logger.wandb_entity": settings.get("entity"),
        "logger.wandb_exp_name": job.get("id") or job.get("stage"),
        "logger.wandb_save_dir": str(output_dir / "wandb"),
    }


def checkpoint_plan(
    ckpt: dict[str, Any], output_dir: Path, model_input: Any | None
) -> tuple[Path, dict[str, Any], bool, list[str]]:
    """Where to save, what to load, whether this is a resume — the requeue contract.

    A save directory that already holds a checkpoint (``latest_checkpointed_iteration.txt``) means a
    requeued job: load it with its optimizer and iteration and continue. Otherwise ``checkpoint.load``
    or the ``run.model`` input seeds the run: ``from_model: full`` continues that run (``load``),
    ``weights`` takes its weights only (``pretrained_checkpoint`` + ``finetune``).
    """
    save_dir = Path(ckpt["save"]) if ckpt.get("save") else output_dir / "checkpoints"
    out: dict[str, Any] = {
        "checkpoint.save": str(save_dir),
        "checkpoint.save_interval": ckpt["save_interval"],
        "checkpoint.async_save": bool(ckpt.get("async_save")),
        "checkpoint.load": None,
        "checkpoint.pretrained_checkpoint": None,
        "checkpoint.finetune": False,
    }
    notes: list[str] = []
    resumed = latest_iteration(save_dir)
    if resumed is not None:
        out["checkpoint.load"] = str(save_dir)
        notes.append(f"resuming from {save_dir} at iteration {resumed}")
        return save_dir, out, True, notes
    if ckpt.get("load"):
        out["checkpoint.load"] = str(ckpt["load"])
        notes.append(f"loading {ckpt['load']} (checkpoint.load)")
        return save_dir, out, False, notes
    if model_input is not None:
        where = locate_model(model_input)
        if ckpt.get("from_model") == "full":
            if where.megatron is None:
                raise UserError(
                    f"run.model {model_input.name}:v{model_input.version} has no Megatron checkpoint to continue",
                    hint="checkpoint.from_model=full needs a model published by a megatron pretrain stage",
                )
            out["checkpoint.load"] = str(where.megatron)
            notes.append(f"continuing {where.megatron} at iteration {where.iteration}")
        else:
            # Megatron-Bridge skips loading when pretrained_checkpoint holds no Megatron checkpoint and
            # trains from random weights, so an HF-only model is refused here (nemotron.pipeline.model_formats).
            if where.megatron is None:
                raise UserError(
                    f"run.model {model_input.name}:v{model_input.version} has no Megatron checkpoint"
                    + (" (it is a Hugging Face checkpoint)" if where.hf is not None else ""),
                    hint=f"convert it first: nemotron super3 model import run.model={model_input.name}:v{model_input.version}",
                )
            source = where.megatron
            out["checkpoint.pretrained_checkpoint"] = str(source)
            out["checkpoint.finetune"] = True
            notes.append(f"starting from the weights of {source}")
    return save_dir, out, False, notes


DATASET_CLASSES = {
    "FinetuningDatasetConfig": "megatron.bridge.training.config",
    "PackedSequenceSpecs": "megatron.bridge.data.datasets.packed_sequence",  # v0.4.0 path (moved in v0.6.0)
}


def build_dataset(spec: tuple[str, dict[str, Any]]) -> Any:
    """Instantiate a ``(class name, kwargs)`` dataset spec from megatron.bridge (nested specs first)."""
    import importlib

    name, kwargs = spec
    cls = getattr(importlib.import_module(DATASET_CLASSES[name]), name)
    return cls(**{k: build_dataset(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})


def build_bridge_config(job: BridgeJob) -> Any:
    """The recipe's own ConfigContainer with our dataset and overrides laid over it (GPU container only).

    Overlay, not construction: every field we do not set keeps the recipe's (and the library's) default,
    so a field the library requires is filled by upstream by construction.
    """
    require("megatron.bridge", "Megatron-Bridge")
    import importlib

    from super3.megatron.preflight import ensure_pinned

    ensure_pinned(("megatron-bridge", "megatron-core"))
    recipe = getattr(importlib.import_module(RECIPE_MODULE), job.recipe)
    cfg = recipe(**job.recipe_kwargs)
    if job.dataset is not None:
        cfg.dataset = build_dataset(job.dataset)
    apply_overrides(cfg, job.overrides)
    return cfg


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> None:
    """Set each dotted path on the (already built) config object; a path that does not exist is a bug."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for part in parents:
            node = getattr(node, part)
        if not hasattr(node, leaf):
            raise AttributeError(f"{type(node).__name__} has no field '{leaf}' (override {dotted})")
        setattr(node, leaf, value)


def relative_to(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (artifact metadata stays valid if the tree moves)."""
    try:
        return os.path.relpath(path, base) if Path(path).resolve().is_relative_to(Path(base).resolve()) else str(path)
    except ValueError:
        return str(path)
