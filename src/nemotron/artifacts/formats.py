"""What an artifact's data *is*: one detector per on-disk format, used by ``artifacts add`` and by
every stage that receives a model.

Why one module: a Hugging Face directory given to a stage that loads Megatron checkpoints does not
fail — Megatron-Bridge finds no checkpoint and trains from random weights. The only defence is to
look at the files before a job starts, with the same rules wherever a format is checked (registering
a directory, submitting a stage, the node before it loads). Import-light: stdlib only at module top
(the CLI's ``--dry-run`` calls it); pyarrow is imported only to read a Parquet schema.

Formats (facts cited where they are read):
- ``hf``: a Hugging Face ``save_pretrained`` directory — ``config.json`` plus weights as
  ``model.safetensors`` or a ``model.safetensors.index.json`` whose ``weight_map`` names shards that
  all exist (transformers ``modeling_utils``: SAFE_WEIGHTS_NAME / SAFE_WEIGHTS_INDEX_NAME).
- ``megatron``: a Megatron checkpoint root — ``latest_checkpointed_iteration.txt`` naming an iteration
  whose ``iter_NNNNNNN/`` (or ``release/``) directory exists (Megatron-LM
  ``megatron/training/checkpointing.py`` get_checkpoint_tracker_filename / get_checkpoint_name).
- pretrain data: ``blend.json`` (``{"train": [w, prefix, ...], ...}``) whose prefixes have ``.bin``
  and ``.idx`` files; SFT data: packed Parquet with ``input_ids``, ``loss_mask``, ``seq_start_id``;
  RL data: ``train.jsonl`` (+ optional ``val.jsonl``) of ``{"prompt", "answer"}`` records; a
  tokenizer: ``tokenizer.json`` / ``tokenizer_config.json`` / ``tokenizer.model``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

HF = "hf"
MEGATRON = "megatron"
MODEL_FORMATS = (MEGATRON, HF)

TRACKER_FILE = "latest_checkpointed_iteration.txt"
HF_CONFIG = "config.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
BLEND = "blend.json"
PACKED_COLUMNS = ("input_ids", "loss_mask", "seq_start_id")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "tekken.json")

ADDABLE_KINDS = ("model", "pretrain-data", "sft-data", "rl-data", "tokenizer")
"""Kinds ``nemotron artifacts add`` registers (a quantized model or eval results come from stages)."""


@dataclass(frozen=True)
class Detected:
    """The format found at a path and the metadata a consumer needs to read it."""

    kind: str
    format: str  # hf | megatron | megatron+hf | blend | packed-parquet | jsonl | tokenizer
    metadata: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ models


def hf_problem(directory: Path) -> str | None:
    """Why ``directory`` is not a loadable HF checkpoint, or ``None`` when it is."""
    config = directory / HF_CONFIG
    if not config.is_file():
        return f"no {HF_CONFIG}"
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        return f"{HF_CONFIG} is not valid JSON ({exc})"
    index = directory / SAFE_WEIGHTS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text()).get("weight_map") or {}
        except (OSError, ValueError, AttributeError) as exc:
            return f"{SAFE_WEIGHTS_INDEX} is not valid JSON ({exc})"
        if not weight_map:
            return f"{SAFE_WEIGHTS_INDEX} has an empty weight_map"
        missing = sorted({f for f in weight_map.values() if not (directory / f).is_file()})
        if missing:
            return f"{SAFE_WEIGHTS_INDEX} names {len(missing)} missing shard(s), e.g. {missing[0]}"
        return None
    if (directory / SAFE_WEIGHTS).is_file() or any(directory.glob("*.safetensors")):
        return None
    return f"no safetensors weights ({SAFE_WEIGHTS} or {SAFE_WEIGHTS_INDEX})"


def _hf_info(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / HF_CONFIG).read_text())
    shards = sorted(p.name for p in directory.glob("*.safetensors"))
    return {
        "architectures": config.get("architectures") or [],
        "model_type": config.get("model_type"),
        "vocab_size": config.get("vocab_size"),
        "safetensors_files": len(shards),
        "has_tokenizer": any((directory / f).is_file() for f in TOKENIZER_FILES),
    }


def megatron_iteration(root: Path) -> int | None:
    """The complete iteration a Megatron checkpoint root holds (``0`` for ``release``), else ``None``."""
    try:
        text = (root / TRACKER_FILE).read_text().strip()
    except OSError:
        return None
    if text == "release":
        return 0 if (root / "release").is_dir() else None
    try:
        iteration = int(text)
    except ValueError:
        return None
    return iteration if (root / f"iter_{iteration:07d}").is_dir() else None


def _rel(base: Path, value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def find_model_dirs(path: str | Path, metadata: dict[str, Any] | None = None) -> dict[str, Path]:
    """``{format: directory}`` for each model format present in a model artifact.

    Metadata ``megatron_checkpoint`` / ``hf_dir`` (what stages publish) win; otherwise the layout is
    probed: ``checkpoints/`` or the directory itself for Megatron, ``hf/`` or the directory itself
    for HF. A format is listed only when its files are really there.
    """
    base = Path(path)
    meta = metadata or {}
    found: dict[str, Path] = {}
    megatron = [_rel(base, meta["megatron_checkpoint"])] if meta.get("megatron_checkpoint") else []
    for candidate in [*megatron, base / "checkpoints", base]:
        if megatron_iteration(candidate) is not None:
            found[MEGATRON] = candidate
            break
    hf = [_rel(base, meta["hf_dir"])] if meta.get("hf_dir") else []
    for candidate in [*hf, base / "hf", base]:
        if hf_problem(candidate) is None:
            found[HF] = candidate
            break
    return found


def model_formats(artifact: Any) -> set[str]:
    """The model formats a model artifact really holds (``{"megatron"}``, ``{"hf"}``, both or none)."""
    if "://" in str(artifact.path):
        return {f for f in MODEL_FORMATS if f in str((artifact.metadata or {}).get("format", ""))}
    return set(find_model_dirs(artifact.path, artifact.metadata))


def detect_model(path: Path) -> Detected | None:
    dirs = find_model_dirs(path)
    if not dirs:
        return None
    meta: dict[str, Any] = {"formats": sorted(dirs)}
    if MEGATRON in dirs:
        meta["megatron_checkpoint"] = _relative(dirs[MEGATRON], path)
        meta["iteration"] = megatron_iteration(dirs[MEGATRON])
    if HF in dirs:
        meta["hf_dir"] = _relative(dirs[HF], path)
        meta["hf"] = _hf_info(dirs[HF])
    fmt = "+".join(f for f in MODEL_FORMATS if f in dirs)
    return Detected("model", fmt, {"format": fmt, **meta})


def _relative(directory: Path, base: Path) -> str:
    return "." if directory == base else directory.relative_to(base).as_posix()


# -------------------------------------------------------------------------------------------- data


def detect_pretrain_data(path: Path) -> Detected | None:
    blend_file = path / BLEND
    if not blend_file.is_file():
        return None
    try:
        blend = json.loads(blend_file.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{blend_file} is not valid JSON ({exc})") from None
    if not isinstance(blend, dict) or not isinstance(blend.get("train"), list) or not blend["train"]:
        raise UserError(f"{blend_file} has no 'train' list", hint='blend.json is {"train": [weight, prefix, ...], ...}')
    prefixes = 0
    for split, flat in blend.items():
        if not isinstance(flat, list) or len(flat) % 2:
            raise UserError(f"{blend_file}: split {split!r} must be a flat [weight, prefix, ...] list")
        for prefix in flat[1::2]:
            p = _rel(path, prefix)
            missing = [s for s in (".bin", ".idx") if not Path(f"{p}{s}").is_file()]
            if missing:
                raise UserError(f"{blend_file}: dataset {prefix} has no {'/'.join(missing)} file")
            prefixes += 1
    return Detected("pretrain-data", "blend", {"format": "megatron-bin-idx", "datasets": prefixes})


def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.parquet")) if path.is_dir() else ([path] if path.suffix == ".parquet" else [])


def detect_sft_data(path: Path) -> Detected | None:
    files = _parquet_files(path)
    if not files:
        return None
    import pyarrow.parquet as pq

    for file in files:
        names = set(pq.read_schema(file).names)
        missing = [c for c in PACKED_COLUMNS if c not in names]
        if missing:
            raise UserError(
                f"{file} is not packed SFT Parquet: no column(s) {', '.join(missing)}",
                hint="pack chats with `nemotron super3 data prep sft` (columns input_ids, loss_mask, seq_start_id)",
            )
    rel = [f.relative_to(path).as_posix() if path.is_dir() else f.name for f in files]
    splits: dict[str, Any] = {}
    for split, names in (("train", ("train",)), ("valid", ("valid", "val", "validation"))):
        chosen = [r for r in rel if Path(r).stem in names or Path(r).parent.name in names]
        if chosen:
            splits[split] = {"files": chosen}
    if "train" not in splits:
        splits["train"] = {"files": [r for r in rel if r not in splits.get("valid", {}).get("files", [])]}
    return Detected("sft-data", "packed-parquet", {"format": "packed-parquet", "splits": splits})


def detect_rl_data(path: Path) -> Detected | None:
    train = path / "train.jsonl"
    if not train.is_file():
        return None
    with open(train, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        record = json.loads(first) if first.strip() else None
    except ValueError as exc:
        raise UserError(f"{train}: first line is not JSON ({exc})") from None
    if not isinstance(record, dict) or not {"prompt", "answer"} <= set(record):
        raise UserError(f"{train}: records need 'prompt' and 'answer' fields", hint="prepare it with data prep rl")
    val = path / "val.jsonl"
    return Detected(
        "rl-data",
        "jsonl",
        {"format": "jsonl", "train": "train.jsonl", "val": "val.jsonl" if val.is_file() else None},
    )


def detect_tokenizer(path: Path) -> Detected | None:
    names = [f for f in TOKENIZER_FILES if (path / f).is_file()] if path.is_dir() else []
    if path.is_file() and path.name in TOKENIZER_FILES:
        names = [path.name]
    if not names:
        return None
    return Detected("tokenizer", "tokenizer", {"format": "tokenizer", "files": names})


DETECTORS = {
    "model": detect_model,
    "pretrain-data": detect_pretrain_data,
    "sft-data": detect_sft_data,
    "rl-data": detect_rl_data,
    "tokenizer": detect_tokenizer,
}
WHAT = {
    "model": f"an HF checkpoint ({HF_CONFIG} + safetensors) or a Megatron checkpoint ({TRACKER_FILE})",
    "pretrain-data": f"{BLEND} with .bin/.idx datasets",
    "sft-data": "packed Parquet (input_ids, loss_mask, seq_start_id)",
    "rl-data": "train.jsonl of prompt/answer records",
    "tokenizer": "tokenizer.json, tokenizer_config.json or tokenizer.model",
}


def _looks_like(path: Path, skip: str) -> str | None:
    """The kind ``path`` does look like (for the error when ``--kind`` is wrong), quietly."""
    for kind, detector in DETECTORS.items():
        if kind == skip or kind == "tokenizer":
            continue
        try:
            if detector(path) is not None:
                return kind
        except UserError:
            return kind
    return None


def detect(path: str | Path, kind: str) -> Detected:
    """Check that ``path`` holds data of ``kind``; one-line ``UserError`` naming what it is otherwise."""
    if kind not in DETECTORS:
        raise UserError(f"cannot add artifacts of kind '{kind}'", hint=f"kinds: {', '.join(ADDABLE_KINDS)}")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist")
    found = DETECTORS[kind](p)
    if found is not None:
        return found
    other = _looks_like(p, kind)
    detail = f"it looks like {other}, use --kind {other}" if other else f"expected {WHAT[kind]}"
    if kind == "model" and p.is_dir() and (p / HF_CONFIG).is_file():
        detail = f"HF directory: {hf_problem(p)}"
    raise UserError(f"{p} is not {kind}: {detail}")
