"""Which model format each stage loads and writes, and which stage converts between them.

Why a table: Megatron-Bridge's ``finetune()`` given a Hugging Face directory as
``checkpoint.pretrained_checkpoint`` finds no Megatron checkpoint and quietly trains from random
weights (Megatron-Bridge v0.4.0 ``training/checkpointing.py``: loading is skipped when no tracker file
exists). So every stage declares the format it loads; the submit side checks each model input
against it (``check``), and ``pipe`` inserts ``model import`` / ``model export`` where a producer's
format does not fit its consumer (``missing``).

Megatron backend (GPU): pretrain and SFT load Megatron distributed checkpoints (Megatron-Bridge
``checkpoint.pretrained_checkpoint`` / ``load``); NeMo-RL and NeMo-Evaluator (vLLM) load Hugging Face
directories, and so does quantize: Megatron-Bridge's PTQ entry (v0.4.0..v0.6.0
``examples/quantization/quantize.py``) takes ``--hf-model-id`` and loads it with
``AutoBridge.from_hf_pretrained`` + ``to_megatron_provider(load_weights=True)``; it has no Megatron
load path. Tiny backend (CPU): every stage trains and serves HF safetensors
directly, so HF is its one format (``model import`` there is an identity conversion with the same
checks and artifact hop).
"""

from __future__ import annotations

from typing import Any

from nemotron.artifacts.formats import HF, MEGATRON

IMPORT_STAGE = "model.import"
EXPORT_STAGE = "model.export"
CONVERTER = {MEGATRON: IMPORT_STAGE, HF: EXPORT_STAGE}
"""format a stage needs -> the stage that makes it from the other format."""

MEGATRON_LOADS = {
    "pretrain": MEGATRON,
    "sft": MEGATRON,
    "quantize": HF,  # MB examples/quantization/quantize.py --hf-model-id (v0.4.0, v0.6.0)
    "eval": HF,
    IMPORT_STAGE: HF,
    EXPORT_STAGE: MEGATRON,
}
"""stage -> format of its ``model`` input on the megatron backend (``rl.*``: HF, see ``needed``)."""

MEGATRON_WRITES = {
    "pretrain": {MEGATRON},
    "sft": {MEGATRON, HF},  # full SFT exports HF next to the checkpoint (export.hf, on by default)
    IMPORT_STAGE: {MEGATRON, HF},  # the Megatron checkpoint plus a reference to its HF source
    EXPORT_STAGE: {HF, MEGATRON},  # the HF export plus a reference to its Megatron source
}
"""stage -> formats its output model holds on the megatron backend (``rl.*``: HF)."""

NAMES = {MEGATRON: "a Megatron checkpoint", HF: "a Hugging Face checkpoint"}


def needed(stage_name: str, backend: str) -> str | None:
    """The model format ``stage_name`` loads on ``backend`` (None: it takes no model)."""
    if backend == "tiny":
        return HF if stage_name in MEGATRON_LOADS or stage_name.startswith("rl.") else None
    if stage_name.startswith("rl."):
        return HF
    return MEGATRON_LOADS.get(stage_name)


def written(stage_name: str, backend: str, config: dict[str, Any] | None = None) -> set[str]:
    """The formats the model ``stage_name`` publishes will hold."""
    if backend == "tiny":
        return {HF}
    if stage_name.startswith("rl."):
        return {HF}
    formats = set(MEGATRON_WRITES.get(stage_name, set()))
    if stage_name == "sft" and config is not None:
        lora = ((config.get("peft") or {}).get("method") or "none") != "none"
        if lora or not (config.get("export") or {}).get("hf", True):
            formats.discard(HF)
    return formats


def describe(formats: set[str]) -> str:
    if not formats:
        return "no loadable checkpoint (neither config.json + safetensors nor latest_checkpointed_iteration.txt)"
    return " and ".join(NAMES[f] for f in sorted(formats))


def convert_hint(fmt: str, ref: str) -> str:
    """The command that makes ``fmt`` from ``ref``."""
    stage = CONVERTER[fmt]
    return f"convert it first: nemotron super3 {stage.replace('.', ' ')} run.model={ref}"


def check(stage_name: str, backend: str, slot: str, ref: str, artifact: Any) -> str | None:
    """One line when the model artifact's format cannot be loaded by the stage; None when it can.

    Only the ``model`` kind is checked, and only data this machine can see (a URI or a path on a
    node-only filesystem is left to the node's own check).
    """
    from pathlib import Path

    from nemotron.artifacts.formats import model_formats

    fmt = needed(stage_name, backend)
    if fmt is None or artifact.kind != "model" or "://" in artifact.path or not Path(artifact.path).exists():
        return None
    have = model_formats(artifact)
    if fmt in have:
        return None
    where = f"run.{slot}={ref}"
    what = f"{where} ({artifact.ref}) holds {describe(have)}, but {stage_name} ({backend} backend) loads {NAMES[fmt]}"
    if have:
        return f"{what} — {convert_hint(fmt, artifact.ref)}"
    return f"{what} — point run.{slot} at a model artifact (nemotron artifacts add PATH --kind model checks one)"
